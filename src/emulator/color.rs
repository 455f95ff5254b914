//! The colour camera: UVC formats and frames, probe/commit negotiation, camera and processing
//! unit controls, and the isochronous payload stream on 0x81.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clock::TICKS_PER_SECOND;
use super::images;
use super::streams::{gate, Gate, Schedule};
use super::{ColorCam, Fault, FaultTarget, Unit};
use crate::protocol::descriptors::{
    color_configuration, UvcFormatKind, EP_UVC_VIDEO_IN, GUID_NV12, GUID_YUY2,
    UVC_ALT_BYTES_PER_INTERVAL,
};
use crate::protocol::uvc::{
    header_bits, request as uvc_req, CaptureStats, FrameAlignInfo, PayloadHeader, PowerLine,
    ProbeCommit, UvcControl, AE_MODE_AUTO, AE_MODE_MANUAL, CAPTURE_STATS_EXPOSURE_TIME,
    CAPTURE_STATS_ISO_SPEED, CAPTURE_STATS_WHITE_BALANCE, CT_AE_MODE, CT_EXPOSURE_TIME_ABSOLUTE,
    PU_BACKLIGHT_COMPENSATION, PU_BRIGHTNESS, PU_CONTRAST, PU_GAIN, PU_POWER_LINE_FREQUENCY,
    PU_SATURATION, PU_SHARPNESS, PU_WHITE_BALANCE_TEMPERATURE, PU_WHITE_BALANCE_TEMPERATURE_AUTO,
};
use crate::transport::{IsoCompletion, IsoInQueue, IsoPacket, TransferError};
use crate::types::{Stream, WiredSyncMode};

/// Largest bytes per service interval of the streaming endpoint.
pub const BYTES_PER_INTERVAL: usize = 49_152;

/// Pixel format of a UVC format descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pixels {
    /// Motion JPEG.
    Mjpeg,
    /// NV12.
    Nv12,
    /// YUY2.
    Yuy2,
}

/// One frame the camera offers.
#[derive(Clone, Debug)]
pub struct FrameDesc {
    /// Pixel format.
    pub pixels: Pixels,
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
    /// Offered intervals (100 ns).
    pub intervals_100ns: Vec<u32>,
    /// dwMaxVideoFrameBufferSize.
    pub max_frame_size: u32,
}

/// Number of streaming alternate settings besides 0.
pub fn alt_settings() -> usize {
    UVC_ALT_BYTES_PER_INTERVAL.len()
}

/// Bytes per interval of streaming alternate setting `alt` (0 for none).
pub fn bytes_per_interval(alt: u8) -> usize {
    (alt as usize)
        .checked_sub(1)
        .and_then(|i| UVC_ALT_BYTES_PER_INTERVAL.get(i))
        .map_or(0, |b| *b as usize)
}

/// The frame a probe names, from the descriptors the camera presents.
pub fn frame_for(p: &ProbeCommit) -> Option<FrameDesc> {
    let formats = color_configuration().uvc_formats();
    let fmt = formats.iter().find(|f| f.index == p.format_index)?;
    let pixels = match fmt.kind {
        UvcFormatKind::Mjpeg => Pixels::Mjpeg,
        UvcFormatKind::Uncompressed(g) if g == GUID_NV12 => Pixels::Nv12,
        UvcFormatKind::Uncompressed(g) if g == GUID_YUY2 => Pixels::Yuy2,
        UvcFormatKind::Uncompressed(_) => return None,
    };
    let fr = fmt.frames.iter().find(|f| f.index == p.frame_index)?;
    Some(FrameDesc {
        pixels,
        width: fr.width,
        height: fr.height,
        intervals_100ns: fr.intervals_100ns.clone(),
        max_frame_size: fr.max_frame_bytes,
    })
}

/// The device's answer to a probe: the interval snapped to an offered one, sizes filled in.
pub fn negotiate(p: &ProbeCommit) -> ProbeCommit {
    let Some(f) = frame_for(p) else { return *p };
    let interval = if f.intervals_100ns.contains(&p.frame_interval_100ns) {
        p.frame_interval_100ns
    } else {
        f.intervals_100ns[0]
    };
    ProbeCommit {
        frame_interval_100ns: interval,
        max_video_frame_size: f.max_frame_size,
        max_payload_transfer_size: BYTES_PER_INTERVAL as u32,
        uvc11: None,
        ..*p
    }
}

/// The range the emulated camera offers for a control.
struct ControlDef {
    control: UvcControl,
    min: i32,
    max: i32,
    res: i32,
    def: i32,
}

const CONTROLS: [ControlDef; 11] = [
    ControlDef {
        control: CT_AE_MODE,
        min: 1,
        max: 8,
        res: 9,
        def: 8,
    },
    ControlDef {
        control: CT_EXPOSURE_TIME_ABSOLUTE,
        min: 3,
        max: 16383,
        res: 1,
        def: 333,
    },
    ControlDef {
        control: PU_BACKLIGHT_COMPENSATION,
        min: 0,
        max: 1,
        res: 1,
        def: 0,
    },
    ControlDef {
        control: PU_BRIGHTNESS,
        min: 0,
        max: 255,
        res: 1,
        def: 128,
    },
    ControlDef {
        control: PU_CONTRAST,
        min: 0,
        max: 10,
        res: 1,
        def: 5,
    },
    ControlDef {
        control: PU_GAIN,
        min: 0,
        max: 255,
        res: 1,
        def: 0,
    },
    ControlDef {
        control: PU_POWER_LINE_FREQUENCY,
        min: 0,
        max: 2,
        res: 1,
        def: 2,
    },
    ControlDef {
        control: PU_SATURATION,
        min: 0,
        max: 63,
        res: 1,
        def: 32,
    },
    ControlDef {
        control: PU_SHARPNESS,
        min: 0,
        max: 4,
        res: 1,
        def: 2,
    },
    ControlDef {
        control: PU_WHITE_BALANCE_TEMPERATURE,
        min: 2500,
        max: 12500,
        res: 10,
        def: 4500,
    },
    ControlDef {
        control: PU_WHITE_BALANCE_TEMPERATURE_AUTO,
        min: 0,
        max: 1,
        res: 1,
        def: 1,
    },
];

fn def(control: UvcControl) -> Option<&'static ControlDef> {
    CONTROLS.iter().find(|c| c.control == control)
}

/// Answers GET_CUR/MIN/MAX/RES/DEF.
pub fn control_get(cam: &ColorCam, control: UvcControl, request: u8) -> Option<i32> {
    let c = def(control)?;
    Some(match request {
        uvc_req::GET_CUR => cam.controls.get(&control).copied().unwrap_or(c.def),
        uvc_req::GET_MIN => c.min,
        uvc_req::GET_MAX => c.max,
        uvc_req::GET_RES => c.res,
        uvc_req::GET_DEF => c.def,
        _ => return None,
    })
}

/// Applies SET_CUR; `None` (a stall) for an unknown control, a wrong length or a value out of
/// range.
pub fn control_set(cam: &mut ColorCam, control: UvcControl, data: &[u8]) -> Option<()> {
    let c = def(control)?;
    if data.len() != usize::from(control.len) {
        return None;
    }
    let v = match control.len {
        1 => data[0] as i32,
        2 if c.min < 0 => i16::from_le_bytes([data[0], data[1]]) as i32,
        2 => u16::from_le_bytes([data[0], data[1]]) as i32,
        _ => i32::from_le_bytes([data[0], data[1], data[2], data[3]]),
    };
    if control == CT_AE_MODE {
        if !matches!(u8::try_from(v), Ok(AE_MODE_MANUAL | AE_MODE_AUTO)) {
            return None;
        }
    } else if v < c.min || v > c.max {
        return None;
    }
    cam.controls.insert(control, v);
    Some(())
}

/// Exposure the sensor uses, µs: manual value, or the auto default, clipped to the frame period.
fn exposure_usec(cam: &ColorCam, fps: u32) -> u64 {
    let ae = control_get(cam, CT_AE_MODE, uvc_req::GET_CUR).unwrap_or(AE_MODE_AUTO.into());
    let fifty_hz = control_get(cam, PU_POWER_LINE_FREQUENCY, uvc_req::GET_CUR)
        == Some(PowerLine::Hz50.uvc_value().into());
    let e = if ae == i32::from(AE_MODE_MANUAL) {
        control_get(cam, CT_EXPOSURE_TIME_ABSOLUTE, uvc_req::GET_CUR).unwrap_or(333) as u64 * 100
    } else if fifty_hz {
        30_000
    } else {
        33_330
    };
    e.min(1_000_000 / fps.max(1) as u64)
}

struct Frame {
    bytes: Vec<u8>,
    offset: usize,
    metadata: Vec<u8>,
    pts_ticks: u64,
}

/// Isochronous colour payloads on 0x81.
pub(crate) struct ColorStream {
    unit: Arc<Unit>,
    packets: usize,
    packet_size: usize,
    pending: std::collections::VecDeque<(Vec<u8>, bool)>,
    sched: Option<Schedule>,
    frame: Option<Frame>,
    fid: u8,
    count: u64,
    jpegs: Option<((u32, u32), images::JpegSet)>,
    spare: Vec<u8>,
}

impl ColorStream {
    pub fn new(unit: Arc<Unit>, packets: usize, packet_size: usize) -> ColorStream {
        ColorStream {
            unit,
            packets,
            packet_size,
            pending: Default::default(),
            sched: None,
            frame: None,
            fid: 0,
            count: 0,
            jpegs: None,
            spare: Vec::new(),
        }
    }

    fn make_frame(
        &mut self,
        f: &FrameDesc,
        pts_ticks: u64,
        exposure_usec: u64,
        fault: Option<Fault>,
    ) -> Option<Frame> {
        let (w, h) = (f.width as u32, f.height as u32);
        let mut bytes = std::mem::take(&mut self.spare);
        match f.pixels {
            Pixels::Mjpeg => {
                if self.jpegs.as_ref().is_none_or(|(d, _)| *d != (w, h)) {
                    self.jpegs = Some(((w, h), images::jpeg_set(w, h).ok()?));
                }
                images::mjpeg_frame(&self.jpegs.as_ref()?.1, self.count, &mut bytes);
            }
            Pixels::Nv12 => images::draw_nv12(w, h, self.count, &mut bytes),
            Pixels::Yuy2 => images::draw_yuy2(w, h, self.count, &mut bytes),
        }
        let pts_sent = if fault == Some(Fault::Corrupt) {
            0
        } else {
            pts_ticks
        };
        let mut metadata = Vec::with_capacity(124);
        if fault != Some(Fault::Short) {
            let align = FrameAlignInfo {
                frame_pts_ticks: pts_sent,
                usb_sof_seq_num: self.count,
                usb_sof_pts: pts_ticks,
                ..Default::default()
            };
            metadata.extend_from_slice(&align.encode());
            let stats = CaptureStats {
                flags: CAPTURE_STATS_EXPOSURE_TIME
                    | CAPTURE_STATS_ISO_SPEED
                    | CAPTURE_STATS_WHITE_BALANCE,
                exposure_time_100ns: exposure_usec * 10,
                iso_speed: 100,
                white_balance_k: 4500,
                ..Default::default()
            };
            metadata.extend_from_slice(&stats.encode());
        }
        self.count += 1;
        Some(Frame {
            bytes,
            offset: 0,
            metadata,
            pts_ticks,
        })
    }
}

impl Drop for ColorStream {
    fn drop(&mut self) {
        self.unit.pacer.leave(Stream::Color);
    }
}

impl IsoInQueue for ColorStream {
    fn address(&self) -> u8 {
        EP_UVC_VIDEO_IN.address()
    }
    fn submit(&mut self, buffer: Vec<u8>) {
        self.pending.push_back((buffer, false));
    }
    fn wait_next_complete(&mut self, timeout: Duration) -> Option<IsoCompletion> {
        self.pending.front()?;
        let fail = |pending: &mut std::collections::VecDeque<(Vec<u8>, bool)>, e: TransferError| {
            let (mut data, _) = pending.pop_front()?;
            data.clear();
            Some(IsoCompletion {
                data,
                packets: Vec::new(),
                status: Err(e),
            })
        };
        if self.pending.front().is_some_and(|p| p.1) {
            return fail(&mut self.pending, TransferError::Cancelled);
        }
        let target = FaultTarget::Stream(Stream::Color);
        if self.frame.is_none() {
            let deadline = Instant::now() + timeout;
            let probe = std::cell::Cell::new(None);
            let exposure = std::cell::Cell::new(0u64);
            let g = gate(
                &self.unit,
                Stream::Color,
                target,
                &mut self.sched,
                deadline,
                |st, unit| {
                    let c = st.color.committed?;
                    if !st.color.streaming {
                        return None;
                    }
                    if st.sync_mode == WiredSyncMode::Subordinate && !unit.sync_pulses() {
                        return None;
                    }
                    let fps = 10_000_000 / c.frame_interval_100ns.max(1);
                    probe.set(Some(c));
                    exposure.set(exposure_usec(&st.color, fps));
                    let delay = if st.sync_mode == WiredSyncMode::Subordinate {
                        st.subordinate_delay_ticks as i64
                    } else {
                        0
                    };
                    Some((TICKS_PER_SECOND / fps.max(1) as u64, delay))
                },
            );
            let (s, ticks) = match g {
                Gate::Go(s, t) => (s, t),
                Gate::Idle => return None,
                Gate::Disconnected => return fail(&mut self.pending, TransferError::Disconnected),
            };
            if let Some(sc) = &mut self.sched {
                sc.index = s.index + 1;
            }
            if self.unit.lock().sync_mode == WiredSyncMode::Master
                && self.unit.sync_out
                && self
                    .unit
                    .bus
                    .pulse(self.unit.index, ticks, self.unit.pacer.epoch())
            {
                self.unit.log("first-pulse", format!("tick={ticks}"));
            }
            let fault = self.unit.take_fault(target);
            match fault {
                Some(Fault::Disconnect) => {
                    return fail(&mut self.pending, TransferError::Disconnected)
                }
                Some(Fault::Stall) => return fail(&mut self.pending, TransferError::Stall),
                Some(Fault::Timeout) => return None,
                _ => {}
            }
            let f = frame_for(&probe.get()?)?;
            let mut frame = self.make_frame(&f, ticks, exposure.get(), fault)?;
            if fault == Some(Fault::Oversized) && frame.metadata.len() >= 8 {
                // A metadata item claiming more bytes than the metadata holds.
                frame.metadata[4..8].copy_from_slice(&4000u32.to_le_bytes());
            }
            self.frame = Some(frame);
            self.fid ^= 1;
        }
        let (mut data, _) = self.pending.pop_front()?;
        data.clear();
        data.resize(self.packets * self.packet_size, 0);
        let mut packets = Vec::with_capacity(self.packets);
        let frame = self.frame.as_mut()?;
        for i in 0..self.packets {
            let offset = i * self.packet_size;
            if frame.offset >= frame.bytes.len() {
                packets.push(IsoPacket {
                    offset,
                    actual_len: 0,
                    status: Ok(()),
                });
                continue;
            }
            let first = frame.offset == 0;
            let extra: &[u8] = if first { &frame.metadata } else { &[] };
            let room = self.packet_size - 12 - extra.len();
            let n = room.min(frame.bytes.len() - frame.offset);
            let last = frame.offset + n == frame.bytes.len();
            let info = self.fid | header_bits::EOH | if last { header_bits::EOF } else { 0 };
            let pts = frame.pts_ticks as u32;
            let header = PayloadHeader {
                info,
                pts: Some(pts),
                scr: Some((pts, (i & 0x7FF) as u16)),
                metadata: extra.to_vec(),
            };
            let hdr = match header.encode() {
                Ok(h) => h,
                // Metadata too long for one header (the Oversized fault): a header whose
                // bHeaderLength overruns the payload, which hosts must reject.
                Err(_) => {
                    let mut h = PayloadHeader {
                        metadata: Vec::new(),
                        ..header
                    }
                    .encode()
                    .unwrap_or_default();
                    h[0] = 255;
                    h.truncate(12);
                    h
                }
            };
            let hl = hdr.len();
            data[offset..offset + hl].copy_from_slice(&hdr);
            data[offset + hl..offset + hl + n]
                .copy_from_slice(&frame.bytes[frame.offset..frame.offset + n]);
            frame.offset += n;
            packets.push(IsoPacket {
                offset,
                actual_len: hl + n,
                status: Ok(()),
            });
        }
        if frame.offset >= frame.bytes.len() {
            if let Some(f) = self.frame.take() {
                self.spare = f.bytes;
            }
        }
        Some(IsoCompletion {
            data,
            packets,
            status: Ok(()),
        })
    }
    fn pending(&self) -> usize {
        self.pending.len()
    }
    fn cancel_all(&mut self) {
        for p in self.pending.iter_mut() {
            p.1 = true;
        }
        self.unit.pacer.leave(Stream::Color);
    }
}
