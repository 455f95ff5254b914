//! The two MCUs' command handling: parse the host's command packet with the protocol module's
//! device-side parser, change state, queue the data phase (if any) and the status packet on
//! the response endpoint.
//!
//! Firmware choices where the hardware's behaviour is unknown (ours, like the refusals in
//! `protocol/commands.md`, "How the emulator refuses a command"): a read whose buffer is too small gets the truncated data and status
//! INVALID_PAYLOAD_SIZE (for the calibration JSON "too small" includes no room for a NUL, so
//! the SDK's growing retries succeed exactly when the JSON fits); NV_DATA_GET before MODE_SET
//! gets an empty data phase and WRONG_COMMAND_STATE; commands out of order get
//! WRONG_COMMAND_STATE; a packet that is not a command at all is ignored (no answer).

use super::pipe::Message;
use super::{Fault, FaultTarget, Function, Unit};
use crate::protocol::command::{
    parse_command_packet, DeviceCommand, DeviceStatus, Mcu, SensorMode, StatusPacket,
    STATUS_PACKET_TYPE,
};
use crate::protocol::payload::{FirmwareVersions, JackState, NvTag};
use crate::types::{Fps, WiredSyncMode};

/// What the OUT transfer itself does.
pub(crate) enum OutResult {
    /// Accepted.
    Ok,
    /// The OUT endpoint stalls.
    Stall,
}

struct Reply {
    data: Option<Vec<u8>>,
    status: DeviceStatus,
}

fn ok() -> Reply {
    Reply {
        data: None,
        status: DeviceStatus::Success,
    }
}
fn err(status: DeviceStatus) -> Reply {
    Reply { data: None, status }
}

/// A read command's data phase: `bytes` when they fit in the host's `cap`-byte buffer.
fn read(cap: usize, bytes: &[u8], must_leave_room: bool) -> Reply {
    if cap == 0 {
        // The host asked for no data phase.
        return err(DeviceStatus::InvalidPayloadSize);
    }
    let fits = if must_leave_room {
        bytes.len() < cap
    } else {
        bytes.len() <= cap
    };
    if fits {
        Reply {
            data: Some(bytes.to_vec()),
            status: DeviceStatus::Success,
        }
    } else {
        Reply {
            data: Some(bytes[..cap.min(bytes.len())].to_vec()),
            status: DeviceStatus::InvalidPayloadSize,
        }
    }
}

impl Unit {
    /// Handles one command OUT transfer on `function`'s vendor interface.
    pub(crate) fn handle_command(&self, function: Function, bytes: &[u8]) -> OutResult {
        let (chan, mcu) = match function {
            Function::Depth => (&self.depth_resp, Mcu::Depth),
            Function::Color => (&self.color_resp, Mcu::Color),
        };
        let (transaction_id, code, payload_size, reply) = match parse_command_packet(mcu, bytes) {
            Ok(received) => {
                let r = match function {
                    Function::Depth => self.depth_command(&received.command),
                    Function::Color => self.color_command(&received.command),
                };
                let h = received.header;
                (h.transaction_id, h.command, h.payload_size as usize, r)
            }
            Err(rejected) => match rejected.transaction_id {
                Some(id) => {
                    let code = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
                    (id, code, 0, err(rejected.status))
                }
                // Not a command packet at all: nothing to answer.
                None => return OutResult::Ok,
            },
        };
        let fault = self.take_fault(FaultTarget::Command(code));
        let mut status_bytes = StatusPacket::new(transaction_id, reply.status)
            .encode()
            .to_vec();
        let mut data = reply.data;
        let mut babble = false;
        match fault {
            None => {}
            Some(Fault::Babble) => babble = true,
            Some(Fault::Stall) => return OutResult::Stall,
            Some(Fault::Timeout) | Some(Fault::Disconnect) => return OutResult::Ok,
            Some(Fault::Short) => match &mut data {
                Some(d) if d.len() > 1 => d.truncate(d.len() / 2),
                _ => status_bytes.truncate(10),
            },
            Some(Fault::Oversized) => match &mut data {
                Some(d) => d.resize(d.len() + 2048, 0x5A),
                None => status_bytes.extend_from_slice(&[0; 8]),
            },
            Some(Fault::Corrupt) => match &mut data {
                Some(d) if !d.is_empty() => d.iter_mut().for_each(|b| *b ^= 0xA5),
                _ => status_bytes[8] ^= 0x3C,
            },
            Some(Fault::WrongTransactionId) => {
                status_bytes[4..8].copy_from_slice(&transaction_id.wrapping_add(1).to_le_bytes());
            }
            Some(Fault::WrongMagic) => {
                status_bytes[0..4].copy_from_slice(&(STATUS_PACKET_TYPE ^ 0xFF).to_le_bytes());
            }
            Some(Fault::BadStatus(code)) => {
                status_bytes[8..12].copy_from_slice(&code.to_le_bytes());
            }
        }
        let mut q = chan.queue.lock().unwrap_or_else(|e| e.into_inner());
        // The babble replaces the first thing sent: the data phase, or the status.
        if let Some(d) = data {
            // Data shorter than the host's buffer ends with a short packet, or a zero-length
            // one when it is whole packets (our choice; protocol/kernel.md).
            let zlp = d.len() < payload_size;
            q.push_back(Message {
                bytes: d,
                zlp,
                babble: std::mem::take(&mut babble),
            });
        }
        q.push_back(Message {
            babble,
            ..Message::terminated(status_bytes)
        });
        chan.ready.notify_all();
        OutResult::Ok
    }

    fn depth_command(&self, c: &DeviceCommand) -> Reply {
        let mut st = self.lock();
        let d = &mut st.depth;
        let reply = match *c {
            DeviceCommand::ComponentVersionGet { buffer_len } => read(
                buffer_len,
                &FirmwareVersions::from_hardware_version(&self.firmware).encode(),
                false,
            ),
            DeviceCommand::ReadProductSerial { buffer_len } => {
                let mut s = self.serial.as_bytes().to_vec();
                s.push(0);
                read(buffer_len, &s, false)
            }
            DeviceCommand::ReadCalibrationData { buffer_len } => {
                read(buffer_len, self.calibration_json.as_bytes(), true)
            }
            DeviceCommand::NvDataGet { tag, buffer_len } => match tag {
                NvTag::IrSensorCalibration if d.mode.is_some() => {
                    read(buffer_len, &self.cal_block, false)
                }
                NvTag::IrSensorCalibration => Reply {
                    data: Some(Vec::new()),
                    status: DeviceStatus::WrongCommandState,
                },
                _ => Reply {
                    data: Some(Vec::new()),
                    status: DeviceStatus::ParamBadTag,
                },
            },
            DeviceCommand::DepthPowerOn | DeviceCommand::DepthPowerOff => ok(),
            DeviceCommand::DepthModeSet(_) if d.started => err(DeviceStatus::WrongCommandState),
            DeviceCommand::DepthModeSet(m) => {
                d.mode = Some(m.value());
                ok()
            }
            DeviceCommand::DepthFpsSet(_) if d.started => err(DeviceStatus::WrongCommandState),
            DeviceCommand::DepthFpsSet(Fps::Fps30)
                if d.mode == Some(SensorMode::MegaPixel.value()) =>
            {
                err(DeviceStatus::InvalidParameter)
            }
            DeviceCommand::DepthFpsSet(f) => {
                d.fps = Some(f.hz());
                ok()
            }
            DeviceCommand::DepthStart if d.mode.is_none() || d.fps.is_none() => {
                err(DeviceStatus::WrongCommandState)
            }
            DeviceCommand::DepthStart => {
                d.started = true;
                ok()
            }
            DeviceCommand::DepthStreamStart if !d.started => err(DeviceStatus::WrongCommandState),
            DeviceCommand::DepthStreamStart => {
                d.streaming = true;
                self.log("depth-start", String::new());
                // A new session: in Max speed, let the idle virtual clock move on as real
                // time would, so this session's frames never carry the last session's stamps.
                self.pacer.advance_idle(10 * super::TICKS_PER_SECOND);
                ok()
            }
            DeviceCommand::DepthStreamStop => {
                if d.streaming {
                    self.log("depth-stop", String::new());
                }
                d.streaming = false;
                ok()
            }
            DeviceCommand::DepthStop => {
                d.streaming = false;
                d.started = false;
                ok()
            }
            _ => err(DeviceStatus::NotImplemented),
        };
        drop(st);
        self.notify();
        reply
    }

    fn color_command(&self, c: &DeviceCommand) -> Reply {
        let mut st = self.lock();
        let reply = match *c {
            DeviceCommand::SetSysCfg(cfg) => {
                st.sync_mode = cfg.mode;
                self.bus.set_mode(self.index, cfg.mode);
                self.log(
                    "sync-config",
                    format!(
                        "delay_ticks={} depth_delay_ticks={}",
                        cfg.subordinate_delay_off_master_ticks, cfg.depth_delay_off_color_ticks
                    ),
                );
                st.subordinate_delay_ticks = cfg.subordinate_delay_off_master_ticks;
                st.depth_delay_ticks = cfg.depth_delay_off_color_ticks;
                ok()
            }
            DeviceCommand::ImuStreamStart => {
                st.imu_streaming = true;
                ok()
            }
            DeviceCommand::ImuStreamStop => {
                st.imu_streaming = false;
                ok()
            }
            DeviceCommand::GetJackState { buffer_len } => {
                let jack = JackState {
                    sync_in_connected: self.sync_in,
                    sync_out_connected: self.sync_out,
                };
                read(buffer_len, &jack.encode(), false)
            }
            _ => err(DeviceStatus::NotImplemented),
        };
        drop(st);
        self.notify();
        reply
    }
}

/// Whether a unit in this sync mode waits for its master's pulses.
pub(crate) fn is_subordinate(mode: WiredSyncMode) -> bool {
    mode == WiredSyncMode::Subordinate
}
