//! The two MCUs' command handling: parse the host's command packet, change state, queue the
//! data phase (if any) and the status packet on the response endpoint.
//!
//! Firmware choices where the hardware's behaviour is unknown (reference §10, questions 5
//! and 6): a read whose buffer is too small gets the truncated data and status
//! INVALID_PAYLOAD_SIZE; NV_DATA_GET before MODE_SET gets an empty data phase and
//! WRONG_COMMAND_STATE; commands out of order get WRONG_COMMAND_STATE.

use super::{Fault, FaultTarget, Function, Unit};
use crate::device::wire::{cmd, status, CommandPacket, StatusPacket, STATUS_MAGIC};
use crate::protocol::depth_raw;

/// What the OUT transfer itself does.
pub(crate) enum OutResult {
    /// Accepted.
    Ok,
    /// The OUT endpoint stalls.
    Stall,
}

struct Reply {
    data: Option<Vec<u8>>,
    status: u32,
}

fn ok() -> Reply {
    Reply { data: None, status: status::SUCCESS }
}
fn err(code: u32) -> Reply {
    Reply { data: None, status: code }
}

fn u32_arg(c: &CommandPacket) -> Option<u32> {
    (c.data.len() == 4).then(|| u32::from_le_bytes([c.data[0], c.data[1], c.data[2], c.data[3]]))
}

/// A read command's data phase: all of `bytes` when it fits in the host's buffer.
fn read(c: &CommandPacket, bytes: &[u8], must_leave_room: bool) -> Reply {
    let cap = c.payload_size as usize;
    let fits = if must_leave_room { bytes.len() < cap } else { bytes.len() <= cap };
    if fits {
        Reply { data: Some(bytes.to_vec()), status: status::SUCCESS }
    } else {
        Reply { data: Some(bytes[..cap.min(bytes.len())].to_vec()), status: status::INVALID_PAYLOAD_SIZE }
    }
}

impl Unit {
    /// Handles one command OUT transfer on `function`'s vendor interface.
    pub(crate) fn handle_command(&self, function: Function, bytes: &[u8]) -> OutResult {
        let chan = match function {
            Function::Depth => &self.depth_resp,
            Function::Color => &self.color_resp,
        };
        let packet = match CommandPacket::decode(bytes) {
            Ok(p) => p,
            // Not a command at all: the firmware ignores it and answers nothing.
            Err(_) => return OutResult::Ok,
        };
        let fault = self.take_fault(FaultTarget::Command(packet.command));
        let reply = match function {
            Function::Depth => self.depth_command(&packet),
            Function::Color => self.color_command(&packet),
        };
        let mut status_bytes = StatusPacket { transaction_id: packet.transaction_id, status: reply.status }.encode().to_vec();
        let mut data = reply.data;
        match fault {
            None => {}
            Some(Fault::Stall) => return OutResult::Stall,
            Some(Fault::Timeout) | Some(Fault::Disconnect) => return OutResult::Ok,
            Some(Fault::Short) => match &mut data {
                Some(d) if !d.is_empty() => d.truncate(d.len() / 2),
                _ => status_bytes.truncate(10),
            },
            Some(Fault::Oversized) => match &mut data {
                Some(d) => d.resize(c_cap(&packet) + 64, 0x5A),
                None => status_bytes.extend_from_slice(&[0; 8]),
            },
            Some(Fault::Corrupt) => match &mut data {
                Some(d) if !d.is_empty() => d.iter_mut().for_each(|b| *b ^= 0xA5),
                _ => status_bytes[8] ^= 0x3C,
            },
            Some(Fault::WrongTransactionId) => {
                let id = packet.transaction_id.wrapping_add(1);
                status_bytes = StatusPacket { transaction_id: id, status: reply.status }.encode().to_vec();
            }
            Some(Fault::WrongMagic) => {
                status_bytes = StatusPacket { transaction_id: packet.transaction_id, status: reply.status }
                    .encode_with_magic(STATUS_MAGIC ^ 0xFF)
                    .to_vec();
            }
            Some(Fault::BadStatus(code)) => {
                status_bytes = StatusPacket { transaction_id: packet.transaction_id, status: code }.encode().to_vec();
            }
        }
        let mut q = chan.queue.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = data {
            q.push_back(d);
        }
        q.push_back(status_bytes);
        chan.ready.notify_all();
        OutResult::Ok
    }

    fn depth_command(&self, c: &CommandPacket) -> Reply {
        let mut st = self.lock();
        let d = &mut st.depth;
        let reply = match c.command {
            cmd::COMPONENT_VERSION_GET => read(c, &versions_bytes(&self.firmware), false),
            cmd::READ_PRODUCT_SN => {
                let mut s = self.serial.as_bytes().to_vec();
                s.push(0);
                read(c, &s, false)
            }
            cmd::READ_CALIBRATION_DATA => read(c, self.calibration_json.as_bytes(), true),
            cmd::NV_DATA_GET => match u32_arg(c) {
                None => err(status::INVALID_PARAMETER),
                Some(2) if d.mode.is_some() => read(c, &self.cal_block, false),
                Some(2) => Reply { data: Some(Vec::new()), status: status::WRONG_COMMAND_STATE },
                Some(_) => Reply { data: Some(Vec::new()), status: status::PARAM_BAD_TAG },
            },
            cmd::DEPTH_POWER_ON => ok(),
            cmd::DEPTH_MODE_SET => match u32_arg(c) {
                None => err(status::INVALID_PARAMETER),
                Some(_) if d.started => err(status::WRONG_COMMAND_STATE),
                Some(m) if depth_raw::raw_frame_size(m).is_some() => {
                    d.mode = Some(m);
                    ok()
                }
                Some(_) => err(status::INVALID_PARAMETER),
            },
            cmd::DEPTH_FPS_SET => match u32_arg(c) {
                None => err(status::INVALID_PARAMETER),
                Some(_) if d.started => err(status::WRONG_COMMAND_STATE),
                Some(30) if d.mode == Some(5) => err(status::INVALID_PARAMETER),
                Some(f @ (5 | 15 | 30)) => {
                    d.fps = Some(f);
                    ok()
                }
                Some(_) => err(status::INVALID_PARAMETER),
            },
            cmd::DEPTH_START => {
                if d.mode.is_none() || d.fps.is_none() {
                    err(status::WRONG_COMMAND_STATE)
                } else {
                    d.started = true;
                    ok()
                }
            }
            cmd::DEPTH_STREAM_START => {
                if !d.started {
                    err(status::WRONG_COMMAND_STATE)
                } else {
                    d.streaming = true;
                    ok()
                }
            }
            cmd::DEPTH_STREAM_STOP => {
                d.streaming = false;
                ok()
            }
            cmd::DEPTH_STOP => {
                d.streaming = false;
                d.started = false;
                ok()
            }
            _ => err(status::NOT_IMPLEMENTED),
        };
        let bad_len = matches!(
            c.command,
            cmd::COMPONENT_VERSION_GET | cmd::READ_PRODUCT_SN | cmd::READ_CALIBRATION_DATA
        ) && !c.data.is_empty();
        drop(st);
        self.notify();
        if bad_len {
            return err(status::INVALID_PARAMETER);
        }
        if reply.data.is_some() && c.payload_size == 0 {
            // The host asked for no data phase.
            return err(status::INVALID_PAYLOAD_SIZE);
        }
        reply
    }

    fn color_command(&self, c: &CommandPacket) -> Reply {
        let mut st = self.lock();
        let reply = match c.command {
            cmd::SET_SYS_CFG => {
                if c.data.len() != 13 {
                    err(status::INVALID_PARAMETER)
                } else {
                    let w = |o: usize| u32::from_le_bytes([c.data[o], c.data[o + 1], c.data[o + 2], c.data[o + 3]]);
                    match w(0) {
                        m @ 0..=2 => {
                            st.sync_mode = m;
                            st.subordinate_delay_ticks = w(4);
                            st.depth_delay_ticks = w(8) as i32;
                            ok()
                        }
                        _ => err(status::INVALID_PARAMETER),
                    }
                }
            }
            cmd::IMU_STREAM_START => {
                st.imu_streaming = true;
                ok()
            }
            cmd::IMU_STREAM_STOP => {
                st.imu_streaming = false;
                ok()
            }
            cmd::GET_JACK_STATE => {
                let b = self.sync_in as u8 | (self.sync_out as u8) << 1;
                read(c, &[b], false)
            }
            _ => err(status::NOT_IMPLEMENTED),
        };
        drop(st);
        self.notify();
        if reply.data.is_some() && c.payload_size == 0 {
            return err(status::INVALID_PAYLOAD_SIZE);
        }
        reply
    }
}

fn c_cap(c: &CommandPacket) -> usize {
    c.payload_size as usize
}

/// The 18-byte COMPONENT_VERSION_GET result.
pub(crate) fn versions_bytes(hw: &crate::types::HardwareVersion) -> [u8; 18] {
    let mut v = [0u8; 18];
    let put = |v: &mut [u8], o: usize, x: &crate::types::Version| {
        v[o] = x.major as u8;
        v[o + 1] = x.minor as u8;
        v[o + 2..o + 4].copy_from_slice(&(x.iteration as u16).to_le_bytes());
    };
    put(&mut v, 0, &hw.rgb);
    put(&mut v, 4, &hw.depth);
    put(&mut v, 8, &hw.audio);
    v[12..14].copy_from_slice(&(hw.depth_sensor.major as u16).to_le_bytes());
    v[14..16].copy_from_slice(&(hw.depth_sensor.minor as u16).to_le_bytes());
    v[16] = if hw.release_build { 0 } else { 1 };
    v[17] = hw.signature_type;
    v
}
