//! The colour camera's UVC side: probe/commit control, payload headers, a push-bytes frame
//! assembler with libuvc's rules, the vendor metadata items (FrameAlignInfo, CaptureStats),
//! colour timestamps, colour control selectors and the exposure mapping table, and frame
//! intervals. See `protocol/color-stream.md`.

use thiserror::Error;

use super::descriptors::{
    UVC_CAMERA_TERMINAL_ID, UVC_CONTROL_INTERFACE, UVC_PROCESSING_UNIT_ID, UVC_STREAMING_INTERFACE,
};
use super::wire::{i32_at, u16_at, u32_at, u64_at, PutLe};
use crate::types::Fps;

/// A malformed UVC structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum UvcError {
    /// Too few bytes.
    #[error("{structure}: need {need} bytes, got {got}")]
    Truncated {
        /// The structure.
        structure: &'static str,
        /// Bytes required.
        need: usize,
        /// Bytes available.
        got: usize,
    },
    /// A metadata item whose Size runs past the end of the buffer (the SDK would read out of
    /// bounds; we stop).
    #[error("metadata item 0x{id:08X} at offset {offset} has size {size}, only {remaining} bytes remain")]
    MetadataOverrun {
        /// Item id.
        id: u32,
        /// Offset of the item.
        offset: usize,
        /// Its Size field.
        size: u32,
        /// Bytes left from its start.
        remaining: usize,
    },
}

fn need(structure: &'static str, b: &[u8], n: usize) -> Result<(), UvcError> {
    if b.len() < n {
        return Err(UvcError::Truncated {
            structure,
            need: n,
            got: b.len(),
        });
    }
    Ok(())
}

/// VS_PROBE_CONTROL selector.
pub const VS_PROBE_CONTROL: u8 = 0x01;
/// VS_COMMIT_CONTROL selector.
pub const VS_COMMIT_CONTROL: u8 = 0x02;
/// Probe/commit length for bcdUVC < 0x0110.
pub const PROBE_LEN_UVC10: usize = 26;
/// Probe/commit length for bcdUVC ≥ 0x0110.
pub const PROBE_LEN_UVC11: usize = 34;

/// The fields UVC 1.1 adds to probe/commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ProbeCommitUvc11 {
    /// Device clock, Hz.
    pub clock_frequency_hz: u32,
    /// bmFramingInfo.
    pub framing_info: u8,
    /// bPreferedVersion.
    pub prefered_version: u8,
    /// bMinVersion.
    pub min_version: u8,
    /// bMaxVersion.
    pub max_version: u8,
}

/// VS probe/commit control (26 bytes for UVC 1.0, 34 for 1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ProbeCommit {
    /// bmHint (libuvc sets 1: keep the frame interval).
    pub hint: u16,
    /// bFormatIndex (1-based).
    pub format_index: u8,
    /// bFrameIndex (1-based).
    pub frame_index: u8,
    /// dwFrameInterval, 100 ns units.
    pub frame_interval_100ns: u32,
    /// wKeyFrameRate.
    pub key_frame_rate: u16,
    /// wPFrameRate.
    pub p_frame_rate: u16,
    /// wCompQuality.
    pub comp_quality: u16,
    /// wCompWindowSize.
    pub comp_window_size: u16,
    /// wDelay, ms.
    pub delay_ms: u16,
    /// dwMaxVideoFrameSize.
    pub max_video_frame_size: u32,
    /// dwMaxPayloadTransferSize.
    pub max_payload_transfer_size: u32,
    /// UVC 1.1 tail, if present.
    pub uvc11: Option<ProbeCommitUvc11>,
}

impl ProbeCommit {
    /// Decodes 26 bytes (UVC 1.0) or 34 bytes (1.1); other lengths are refused.
    pub fn decode(b: &[u8]) -> Result<Self, UvcError> {
        need("probe/commit control", b, PROBE_LEN_UVC10)?;
        let uvc11 = if b.len() >= PROBE_LEN_UVC11 {
            Some(ProbeCommitUvc11 {
                clock_frequency_hz: u32_at(b, 26),
                framing_info: b[30],
                prefered_version: b[31],
                min_version: b[32],
                max_version: b[33],
            })
        } else if b.len() == PROBE_LEN_UVC10 {
            None
        } else {
            return Err(UvcError::Truncated {
                structure: "probe/commit control (UVC 1.1)",
                need: PROBE_LEN_UVC11,
                got: b.len(),
            });
        };
        Ok(ProbeCommit {
            hint: u16_at(b, 0),
            format_index: b[2],
            frame_index: b[3],
            frame_interval_100ns: u32_at(b, 4),
            key_frame_rate: u16_at(b, 8),
            p_frame_rate: u16_at(b, 10),
            comp_quality: u16_at(b, 12),
            comp_window_size: u16_at(b, 14),
            delay_ms: u16_at(b, 16),
            max_video_frame_size: u32_at(b, 18),
            max_payload_transfer_size: u32_at(b, 22),
            uvc11,
        })
    }

    /// Encodes 26 or 34 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(PROBE_LEN_UVC11);
        v.put_u16(self.hint);
        v.put_u8(self.format_index);
        v.put_u8(self.frame_index);
        v.put_u32(self.frame_interval_100ns);
        for x in [
            self.key_frame_rate,
            self.p_frame_rate,
            self.comp_quality,
            self.comp_window_size,
            self.delay_ms,
        ] {
            v.put_u16(x);
        }
        v.put_u32(self.max_video_frame_size);
        v.put_u32(self.max_payload_transfer_size);
        if let Some(t) = self.uvc11 {
            v.put_u32(t.clock_frequency_hz);
            v.extend_from_slice(&[
                t.framing_info,
                t.prefered_version,
                t.min_version,
                t.max_version,
            ]);
        }
        v
    }
}

/// bmHeaderInfo bits.
pub mod header_bits {
    /// Frame ID, toggles per frame.
    pub const FID: u8 = 0x01;
    /// End of frame.
    pub const EOF: u8 = 0x02;
    /// A 4-byte PTS follows.
    pub const PTS: u8 = 0x04;
    /// A 6-byte SCR follows.
    pub const SCR: u8 = 0x08;
    /// Still image.
    pub const STI: u8 = 0x20;
    /// Error: the packet is dropped.
    pub const ERR: u8 = 0x40;
    /// End of header.
    pub const EOH: u8 = 0x80;
}

/// A UVC payload header. Bytes after PTS/SCR up to bHeaderLength are `metadata` (the
/// Microsoft libuvc fork appends them to the frame's metadata buffer).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PayloadHeader {
    /// bmHeaderInfo (FID, EOF, PTS, SCR, STI, ERR, EOH bits).
    pub info: u8,
    /// dwPresentationTime, when the PTS bit is set.
    pub pts: Option<u32>,
    /// SCR (source time clock, 1 kHz SOF counter), when the SCR bit is set.
    pub scr: Option<(u32, u16)>,
    /// Extra header bytes (vendor metadata items).
    pub metadata: Vec<u8>,
}

impl PayloadHeader {
    /// Frame ID bit.
    pub fn fid(&self) -> bool {
        self.info & header_bits::FID != 0
    }
    /// End-of-frame bit.
    pub fn eof(&self) -> bool {
        self.info & header_bits::EOF != 0
    }
    /// Error bit.
    pub fn err(&self) -> bool {
        self.info & header_bits::ERR != 0
    }

    /// bHeaderLength this header encodes to.
    pub fn len(&self) -> usize {
        2 + self.pts.map_or(0, |_| 4) + self.scr.map_or(0, |_| 6) + self.metadata.len()
    }

    /// Always false: a header has at least its two fixed bytes.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Decodes the header at the start of a payload; returns it and the header length.
    pub fn decode(payload: &[u8]) -> Result<(Self, usize), UvcError> {
        need("payload header", payload, 2)?;
        let hlen = usize::from(payload[0]);
        let info = payload[1];
        let mut fixed = 2;
        if info & header_bits::PTS != 0 {
            fixed += 4;
        }
        if info & header_bits::SCR != 0 {
            fixed += 6;
        }
        need("payload header", payload, hlen)?;
        if hlen < fixed {
            return Err(UvcError::Truncated {
                structure: "payload header (bHeaderLength)",
                need: fixed,
                got: hlen,
            });
        }
        let h = &payload[..hlen];
        let mut off = 2;
        let pts = (info & header_bits::PTS != 0).then(|| {
            off += 4;
            u32_at(h, off - 4)
        });
        let scr = (info & header_bits::SCR != 0).then(|| {
            off += 6;
            (u32_at(h, off - 6), u16_at(h, off - 2))
        });
        Ok((
            PayloadHeader {
                info,
                pts,
                scr,
                metadata: h[off..].to_vec(),
            },
            hlen,
        ))
    }

    /// Encodes the header; PTS/SCR bits follow the options. Fails over 255 bytes.
    pub fn encode(&self) -> Result<Vec<u8>, UvcError> {
        let len = self.len();
        if len > 255 {
            return Err(UvcError::Truncated {
                structure: "payload header over 255 bytes",
                need: 255,
                got: len,
            });
        }
        let mut info = self.info & !(header_bits::PTS | header_bits::SCR);
        if self.pts.is_some() {
            info |= header_bits::PTS;
        }
        if self.scr.is_some() {
            info |= header_bits::SCR;
        }
        let mut v = vec![len as u8, info];
        if let Some(p) = self.pts {
            v.put_u32(p);
        }
        if let Some((stc, sof)) = self.scr {
            v.put_u32(stc);
            v.put_u16(sof);
        }
        v.extend_from_slice(&self.metadata);
        Ok(v)
    }
}

/// Largest frame libuvc assembles (16 MiB).
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// Size of libuvc's metadata buffer (4 KiB; libuvc does not bound it, we do).
pub const MAX_METADATA_BYTES: usize = 4096;

/// Why a frame was published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameEnd {
    /// A payload with data carried EOF.
    Eof,
    /// The FID toggled while data was pending.
    FidToggle,
}

/// A frame the assembler completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssembledFrame {
    /// Image bytes.
    pub data: Vec<u8>,
    /// Metadata bytes gathered from the frame's payload headers.
    pub metadata: Vec<u8>,
    /// True when the frame had no metadata and the previous frame's was kept (libuvc quirk).
    pub metadata_reused: bool,
    /// FID of the frame.
    pub fid: bool,
    /// Last PTS seen in the frame's headers.
    pub pts: Option<u32>,
    /// How it ended.
    pub end: FrameEnd,
}

/// Counters of what the assembler dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AssemblerStats {
    /// Payloads with the ERR bit.
    pub error_payloads: u64,
    /// Payloads whose header did not parse.
    pub malformed_payloads: u64,
    /// Frames dropped for exceeding 16 MiB.
    pub oversized_frames: u64,
    /// Metadata bytes beyond 4 KiB that were discarded.
    pub metadata_overflow_bytes: u64,
}

/// Push-bytes frame assembler following libuvc's per-payload rules.
#[derive(Clone, Debug, Default)]
pub struct FrameAssembler {
    data: Vec<u8>,
    metadata: Vec<u8>,
    last_metadata: Vec<u8>,
    fid: Option<bool>,
    pts: Option<u32>,
    oversized: bool,
    /// What was dropped so far.
    pub stats: AssemblerStats,
}

impl FrameAssembler {
    /// An empty assembler.
    pub fn new() -> Self {
        Self::default()
    }

    fn publish(&mut self, end: FrameEnd) -> Option<AssembledFrame> {
        let data = std::mem::take(&mut self.data);
        let meta = std::mem::take(&mut self.metadata);
        let fid = self.fid.unwrap_or(false);
        let pts = self.pts.take();
        if std::mem::take(&mut self.oversized) {
            self.stats.oversized_frames += 1;
            return None;
        }
        let reused = meta.is_empty();
        let metadata = if reused {
            self.last_metadata.clone()
        } else {
            self.last_metadata = meta.clone();
            meta
        };
        Some(AssembledFrame {
            data,
            metadata,
            metadata_reused: reused,
            fid,
            pts,
            end,
        })
    }

    /// Feeds one payload (one iso packet or one bulk transfer). Returns the frames it
    /// completed: at most two (one closed by a FID toggle, one by EOF).
    pub fn push(&mut self, payload: &[u8]) -> Vec<AssembledFrame> {
        let mut out = Vec::new();
        if payload.is_empty() {
            return out;
        }
        let (header, hlen) = match PayloadHeader::decode(payload) {
            Ok(h) => h,
            Err(_) => {
                self.stats.malformed_payloads += 1;
                return out;
            }
        };
        if header.err() {
            self.stats.error_payloads += 1;
            return out;
        }
        let fid = header.fid();
        if self.fid.is_some_and(|f| f != fid) && (!self.data.is_empty() || self.oversized) {
            out.extend(self.publish(FrameEnd::FidToggle));
        }
        self.fid = Some(fid);
        if header.pts.is_some() {
            self.pts = header.pts;
        }
        let room = MAX_METADATA_BYTES - self.metadata.len();
        let take = header.metadata.len().min(room);
        self.metadata.extend_from_slice(&header.metadata[..take]);
        self.stats.metadata_overflow_bytes += (header.metadata.len() - take) as u64;
        let body = &payload[hlen..];
        if self.data.len() + body.len() > MAX_FRAME_BYTES {
            self.oversized = true;
            self.data.clear();
        } else if !self.oversized {
            self.data.extend_from_slice(body);
        }
        if header.eof() && !body.is_empty() {
            out.extend(self.publish(FrameEnd::Eof));
        }
        out
    }
}

/// MetadataId of FrameAlignInfo.
pub const METADATA_FRAME_ALIGN_INFO: u32 = 0x8000_0001;
/// MetadataId of CaptureStats (`KSCAMERA_METADATA_CAPTURESTATS`).
pub const METADATA_CAPTURE_STATS: u32 = 0x0000_0003;

/// FrameAlignInfo item (44 bytes, the Linux layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FrameAlignInfo {
    /// Flags (not interpreted by the SDK).
    pub flags: u32,
    /// Reserved.
    pub reserved: u32,
    /// Frame timestamp, 90 kHz ticks (the only field the SDK uses).
    pub frame_pts_ticks: u64,
    /// PTSReference (not interpreted).
    pub pts_reference: u32,
    /// USB start-of-frame sequence number.
    pub usb_sof_seq_num: u64,
    /// USB start-of-frame PTS.
    pub usb_sof_pts: u64,
}

impl FrameAlignInfo {
    /// Item size including the 8-byte id/size header.
    pub const LEN: usize = 44;

    /// Encodes the whole item (id, size, fields).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::LEN);
        v.put_u32(METADATA_FRAME_ALIGN_INFO);
        v.put_u32(Self::LEN as u32);
        v.put_u32(self.flags);
        v.put_u32(self.reserved);
        v.put_u64(self.frame_pts_ticks);
        v.put_u32(self.pts_reference);
        v.put_u64(self.usb_sof_seq_num);
        v.put_u64(self.usb_sof_pts);
        v
    }

    /// Decodes a whole item (id and size checked).
    pub fn decode(b: &[u8]) -> Result<Self, UvcError> {
        need("FrameAlignInfo", b, Self::LEN)?;
        Ok(FrameAlignInfo {
            flags: u32_at(b, 8),
            reserved: u32_at(b, 12),
            frame_pts_ticks: u64_at(b, 16),
            pts_reference: u32_at(b, 24),
            usb_sof_seq_num: u64_at(b, 28),
            usb_sof_pts: u64_at(b, 36),
        })
    }
}

/// CaptureStats flag: ExposureTime valid.
pub const CAPTURE_STATS_EXPOSURE_TIME: u32 = 0x1;
/// CaptureStats flag: IsoSpeed valid.
pub const CAPTURE_STATS_ISO_SPEED: u32 = 0x4;
/// CaptureStats flag: WhiteBalance valid.
pub const CAPTURE_STATS_WHITE_BALANCE: u32 = 0x20;

/// CaptureStats item (80 bytes).
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CaptureStats {
    /// Validity flags.
    pub flags: u32,
    pub reserved: u32,
    /// Exposure, 100 ns units.
    pub exposure_time_100ns: u64,
    pub exposure_compensation_flags: u64,
    pub exposure_compensation_value: i32,
    pub iso_speed: u32,
    pub focus_state: u32,
    pub lens_position: u32,
    /// White balance, Kelvin.
    pub white_balance_k: u32,
    pub flash: u32,
    pub flash_power: u32,
    pub zoom_factor: u32,
    pub scene_mode: u64,
    pub sensor_framerate: u64,
}

impl CaptureStats {
    /// Item size including the 8-byte id/size header.
    pub const LEN: usize = 80;

    /// Encodes the whole item.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::LEN);
        v.put_u32(METADATA_CAPTURE_STATS);
        v.put_u32(Self::LEN as u32);
        v.put_u32(self.flags);
        v.put_u32(self.reserved);
        v.put_u64(self.exposure_time_100ns);
        v.put_u64(self.exposure_compensation_flags);
        v.put_i32(self.exposure_compensation_value);
        for x in [
            self.iso_speed,
            self.focus_state,
            self.lens_position,
            self.white_balance_k,
            self.flash,
            self.flash_power,
            self.zoom_factor,
        ] {
            v.put_u32(x);
        }
        v.put_u64(self.scene_mode);
        v.put_u64(self.sensor_framerate);
        v
    }

    /// Decodes a whole item.
    pub fn decode(b: &[u8]) -> Result<Self, UvcError> {
        need("CaptureStats", b, Self::LEN)?;
        Ok(CaptureStats {
            flags: u32_at(b, 8),
            reserved: u32_at(b, 12),
            exposure_time_100ns: u64_at(b, 16),
            exposure_compensation_flags: u64_at(b, 24),
            exposure_compensation_value: i32_at(b, 32),
            iso_speed: u32_at(b, 36),
            focus_state: u32_at(b, 40),
            lens_position: u32_at(b, 44),
            white_balance_k: u32_at(b, 48),
            flash: u32_at(b, 52),
            flash_power: u32_at(b, 56),
            zoom_factor: u32_at(b, 60),
            scene_mode: u64_at(b, 64),
            sensor_framerate: u64_at(b, 72),
        })
    }
}

/// What the SDK takes from a frame's metadata (the last value of each field wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ColorFrameMetadata {
    /// FramePTS from FrameAlignInfo, 90 kHz ticks.
    pub frame_pts_ticks: Option<u64>,
    /// Exposure in µs (ExposureTime / 10), when flagged valid.
    pub exposure_usec: Option<u64>,
    /// ISO speed, when flagged valid.
    pub iso_speed: Option<u32>,
    /// White balance in Kelvin, when flagged valid.
    pub white_balance_k: Option<u32>,
}

impl ColorFrameMetadata {
    /// Walks the items: stops when fewer than 8 bytes remain or Size is 0; a Size past the end
    /// is an error (no out-of-range read). Items too short for a field leave it unset.
    pub fn parse(meta: &[u8]) -> Result<Self, UvcError> {
        let mut out = ColorFrameMetadata::default();
        let mut off = 0;
        while meta.len() - off >= 8 {
            let id = u32_at(meta, off);
            let size = u32_at(meta, off + 4);
            if size == 0 {
                break;
            }
            let remaining = meta.len() - off;
            if size as usize > remaining {
                return Err(UvcError::MetadataOverrun {
                    id,
                    offset: off,
                    size,
                    remaining,
                });
            }
            let item = &meta[off..off + size as usize];
            match id {
                METADATA_FRAME_ALIGN_INFO if item.len() >= 24 => {
                    out.frame_pts_ticks = Some(u64_at(item, 16));
                }
                METADATA_CAPTURE_STATS if item.len() >= CaptureStats::LEN => {
                    let s = CaptureStats::decode(item)?;
                    if s.flags & CAPTURE_STATS_EXPOSURE_TIME != 0 {
                        out.exposure_usec = Some(s.exposure_time_100ns / 10);
                    }
                    if s.flags & CAPTURE_STATS_ISO_SPEED != 0 {
                        out.iso_speed = Some(s.iso_speed);
                    }
                    if s.flags & CAPTURE_STATS_WHITE_BALANCE != 0 {
                        out.white_balance_k = Some(s.white_balance_k);
                    }
                }
                _ => {}
            }
            off += size as usize;
        }
        Ok(out)
    }

    /// Device timestamp in µs (`FramePTS × 100 / 9`); `None` means the SDK drops the frame
    /// (no FrameAlignInfo, or FramePTS 0).
    pub fn device_timestamp_usec(&self) -> Option<u64> {
        match self.frame_pts_ticks {
            None | Some(0) => None,
            Some(t) => Some(super::wire::ticks_to_usec(t)),
        }
    }
}

/// The discrete frame interval the emulator advertises for a rate (100 ns units).
pub fn frame_interval_100ns(fps: Fps) -> u32 {
    match fps {
        Fps::Fps5 => 2_000_000,
        Fps::Fps15 => 666_666,
        Fps::Fps30 => 333_333,
    }
}

/// libuvc's match rule: an interval serves `fps` when `10_000_000 / interval == fps`
/// (integer division). 666667 gives 14 and does not match 15.
pub fn interval_matches(interval_100ns: u32, fps: u32) -> bool {
    interval_100ns != 0 && 10_000_000 / interval_100ns == fps
}

/// UVC request codes.
pub mod request {
    /// SET_CUR.
    pub const SET_CUR: u8 = 0x01;
    /// GET_CUR.
    pub const GET_CUR: u8 = 0x81;
    /// GET_MIN.
    pub const GET_MIN: u8 = 0x82;
    /// GET_MAX.
    pub const GET_MAX: u8 = 0x83;
    /// GET_RES.
    pub const GET_RES: u8 = 0x84;
    /// GET_DEF.
    pub const GET_DEF: u8 = 0x87;
    /// bmRequestType of class SET requests to an interface.
    pub const SET_REQUEST_TYPE: u8 = 0x21;
    /// bmRequestType of class GET requests to an interface.
    pub const GET_REQUEST_TYPE: u8 = 0xA1;
}

/// Which entity a colour control is addressed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControlUnit {
    /// The camera terminal.
    CameraTerminal,
    /// The first processing unit.
    ProcessingUnit,
}

impl ControlUnit {
    /// The entity's id in the VideoControl descriptors.
    pub const fn entity_id(self) -> u8 {
        match self {
            ControlUnit::CameraTerminal => UVC_CAMERA_TERMINAL_ID,
            ControlUnit::ProcessingUnit => UVC_PROCESSING_UNIT_ID,
        }
    }

    /// The entity with this id, if it carries controls.
    pub const fn from_entity_id(id: u8) -> Option<ControlUnit> {
        match id {
            UVC_CAMERA_TERMINAL_ID => Some(ControlUnit::CameraTerminal),
            UVC_PROCESSING_UNIT_ID => Some(ControlUnit::ProcessingUnit),
            _ => None,
        }
    }
}

/// One UVC control the SDK uses: entity, selector, data length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UvcControl {
    /// Entity.
    pub unit: ControlUnit,
    /// Selector (wValue high byte).
    pub selector: u8,
    /// Data length in bytes.
    pub len: u16,
}

/// Camera terminal AE mode (1 byte).
pub const CT_AE_MODE: UvcControl = UvcControl {
    unit: ControlUnit::CameraTerminal,
    selector: 0x02,
    len: 1,
};
/// Camera terminal absolute exposure, 100 µs units (4 bytes).
pub const CT_EXPOSURE_TIME_ABSOLUTE: UvcControl = UvcControl {
    unit: ControlUnit::CameraTerminal,
    selector: 0x04,
    len: 4,
};
/// Processing unit backlight compensation.
pub const PU_BACKLIGHT_COMPENSATION: UvcControl = UvcControl {
    unit: ControlUnit::ProcessingUnit,
    selector: 0x01,
    len: 2,
};
/// Processing unit brightness (signed).
pub const PU_BRIGHTNESS: UvcControl = UvcControl {
    unit: ControlUnit::ProcessingUnit,
    selector: 0x02,
    len: 2,
};
/// Processing unit contrast.
pub const PU_CONTRAST: UvcControl = UvcControl {
    unit: ControlUnit::ProcessingUnit,
    selector: 0x03,
    len: 2,
};
/// Processing unit gain.
pub const PU_GAIN: UvcControl = UvcControl {
    unit: ControlUnit::ProcessingUnit,
    selector: 0x04,
    len: 2,
};
/// Processing unit power line frequency (1 = 50 Hz, 2 = 60 Hz).
pub const PU_POWER_LINE_FREQUENCY: UvcControl = UvcControl {
    unit: ControlUnit::ProcessingUnit,
    selector: 0x05,
    len: 1,
};
/// Processing unit saturation.
pub const PU_SATURATION: UvcControl = UvcControl {
    unit: ControlUnit::ProcessingUnit,
    selector: 0x07,
    len: 2,
};
/// Processing unit sharpness.
pub const PU_SHARPNESS: UvcControl = UvcControl {
    unit: ControlUnit::ProcessingUnit,
    selector: 0x08,
    len: 2,
};
/// Processing unit white balance temperature, Kelvin.
pub const PU_WHITE_BALANCE_TEMPERATURE: UvcControl = UvcControl {
    unit: ControlUnit::ProcessingUnit,
    selector: 0x0A,
    len: 2,
};
/// Processing unit white balance auto.
pub const PU_WHITE_BALANCE_TEMPERATURE_AUTO: UvcControl = UvcControl {
    unit: ControlUnit::ProcessingUnit,
    selector: 0x0B,
    len: 1,
};

/// Every control the SDK uses.
pub const CONTROLS: [UvcControl; 11] = [
    CT_AE_MODE,
    CT_EXPOSURE_TIME_ABSOLUTE,
    PU_BACKLIGHT_COMPENSATION,
    PU_BRIGHTNESS,
    PU_CONTRAST,
    PU_GAIN,
    PU_POWER_LINE_FREQUENCY,
    PU_SATURATION,
    PU_SHARPNESS,
    PU_WHITE_BALANCE_TEMPERATURE,
    PU_WHITE_BALANCE_TEMPERATURE_AUTO,
];

impl UvcControl {
    /// wValue of a request on this control: the selector in the high byte.
    pub const fn w_value(self) -> u16 {
        (self.selector as u16) << 8
    }

    /// wIndex of a request on this control: entity id high, VideoControl interface low.
    pub const fn w_index(self) -> u16 {
        (self.unit.entity_id() as u16) << 8 | UVC_CONTROL_INTERFACE.get() as u16
    }

    /// The control a request's wValue and wIndex address, if it is one of [`CONTROLS`].
    pub fn addressed_by(w_value: u16, w_index: u16) -> Option<UvcControl> {
        let [selector, _] = w_value.to_be_bytes();
        let [entity, interface] = w_index.to_be_bytes();
        if interface != UVC_CONTROL_INTERFACE.get() {
            return None;
        }
        let unit = ControlUnit::from_entity_id(entity)?;
        CONTROLS
            .into_iter()
            .find(|c| c.unit == unit && c.selector == selector)
    }
}

/// wValue of a VideoStreaming request: the selector in the high byte.
pub const fn vs_w_value(selector: u8) -> u16 {
    (selector as u16) << 8
}

/// wIndex of a VideoStreaming request: the VideoStreaming interface in the low byte.
pub const VS_W_INDEX: u16 = UVC_STREAMING_INTERFACE.get() as u16;

/// The selector a request's wValue carries (its high byte).
pub const fn selector_of(w_value: u16) -> u8 {
    (w_value >> 8) as u8
}

/// The interface a request's wIndex names (its low byte).
pub const fn interface_of(w_index: u16) -> u8 {
    (w_index & 0xFF) as u8
}

/// AE mode the SDK writes for manual exposure.
pub const AE_MODE_MANUAL: u8 = 1;
/// AE mode the SDK writes for auto exposure (aperture priority).
pub const AE_MODE_AUTO: u8 = 8;

/// Whether an AE mode read back means manual (1 or 4) — 2 and 8 mean auto.
pub fn ae_mode_is_manual(mode: u8) -> bool {
    matches!(mode, 1 | 4)
}

/// Power line frequency setting, which selects the exposure table column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PowerLine {
    /// 50 Hz (UVC value 1).
    Hz50,
    /// 60 Hz (UVC value 2), the SDK's initial assumption.
    #[default]
    Hz60,
}

impl PowerLine {
    /// The PU_POWER_LINE_FREQUENCY value selecting it.
    pub const fn uvc_value(self) -> u8 {
        match self {
            PowerLine::Hz50 => 1,
            PowerLine::Hz60 => 2,
        }
    }

    /// The setting a PU_POWER_LINE_FREQUENCY value selects (0, disabled, is none of them).
    pub const fn from_uvc_value(v: u8) -> Option<PowerLine> {
        match v {
            1 => Some(PowerLine::Hz50),
            2 => Some(PowerLine::Hz60),
            _ => None,
        }
    }
}

/// One row of the exposure mapping table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExposureEntry {
    /// Windows log2-seconds value.
    pub exp: i8,
    /// 2^exp seconds in µs.
    pub exp_usec: u32,
    /// 50 Hz column, µs.
    pub usec_50hz: u32,
    /// 60 Hz column, µs.
    pub usec_60hz: u32,
}

const fn e(exp: i8, exp_usec: u32, usec_50hz: u32, usec_60hz: u32) -> ExposureEntry {
    ExposureEntry {
        exp,
        exp_usec,
        usec_50hz,
        usec_60hz,
    }
}

/// The SDK's exposure mapping table.
pub const EXPOSURE_TABLE: [ExposureEntry; 13] = [
    e(-11, 488, 500, 500),
    e(-10, 977, 1250, 1250),
    e(-9, 1953, 2500, 2500),
    e(-8, 3906, 10000, 8330),
    e(-7, 7813, 20000, 16670),
    e(-6, 15625, 30000, 33330),
    e(-5, 31250, 40000, 41670),
    e(-4, 62500, 50000, 50000),
    e(-3, 125000, 60000, 66670),
    e(-2, 250000, 80000, 83330),
    e(-1, 500000, 100000, 100000),
    e(0, 1000000, 120000, 116670),
    e(1, 2000000, 130000, 133330),
];

impl ExposureEntry {
    /// The column for a power line setting, µs.
    pub fn usec(&self, pl: PowerLine) -> u32 {
        match pl {
            PowerLine::Hz50 => self.usec_50hz,
            PowerLine::Hz60 => self.usec_60hz,
        }
    }
}

/// Rounds a request up to the first table entry ≥ it in the active column; beyond the last
/// entry, the last entry.
pub fn map_exposure_usec(request_usec: u32, pl: PowerLine) -> &'static ExposureEntry {
    EXPOSURE_TABLE
        .iter()
        .find(|x| x.usec(pl) >= request_usec)
        .unwrap_or(&EXPOSURE_TABLE[EXPOSURE_TABLE.len() - 1])
}

/// The UVC absolute-exposure value (100 µs units) the SDK writes on Linux for a request.
pub fn exposure_usec_to_uvc(request_usec: u32, pl: PowerLine) -> u32 {
    map_exposure_usec(request_usec, pl).usec(pl) / 100
}

/// What the SDK reports for a UVC value read back: `× 100`, then mapped up to the table.
pub fn exposure_uvc_to_usec(uvc: u32, pl: PowerLine) -> u32 {
    map_exposure_usec(uvc.saturating_mul(100), pl).usec(pl)
}

/// The exposure the device reports under a frame period: the largest table entry ≤
/// `1e6 / fps` µs when the requested one is longer (observed on hardware).
pub fn clip_exposure_to_frame(usec: u32, fps: Fps, pl: PowerLine) -> u32 {
    let period = 1_000_000 / fps.hz();
    if usec <= period {
        return usec;
    }
    EXPOSURE_TABLE
        .iter()
        .map(|x| x.usec(pl))
        .filter(|&u| u <= period)
        .max()
        .unwrap_or(usec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const PROBE10: [u8; 26] = [
        0x01, 0x00,             // bmHint: frame interval fixed
        0x01,                   // format index 1
        0x02,                   // frame index 2
        0x15, 0x16, 0x05, 0x00, // interval 333333
        0x00, 0x00,             // key frame rate
        0x00, 0x00,             // P frame rate
        0x00, 0x00,             // comp quality
        0x00, 0x00,             // comp window
        0x00, 0x00,             // delay
        0x00, 0x48, 0x3f, 0x00, // max video frame 4147200
        0x00, 0x80, 0x00, 0x00, // max payload 32768
    ];

    #[test]
    fn probe_commit_round_trip() {
        let p = ProbeCommit::decode(&PROBE10).unwrap();
        assert_eq!(p.frame_interval_100ns, 333_333);
        assert_eq!(p.max_video_frame_size, 4_147_200);
        assert_eq!(p.max_payload_transfer_size, 32_768);
        assert_eq!(p.uvc11, None);
        assert_eq!(p.encode(), PROBE10);
        let mut p11 = PROBE10.to_vec();
        #[rustfmt::skip]
        p11.extend_from_slice(&[
            0x90, 0x5f, 0x01, 0x00, // clock 90000 Hz
            0x03, 0x01, 0x01, 0x01, // framing info, preferred/min/max version
        ]);
        let q = ProbeCommit::decode(&p11).unwrap();
        assert_eq!(q.uvc11.unwrap().clock_frequency_hz, 90_000);
        assert_eq!(q.encode(), p11);
        assert!(ProbeCommit::decode(&PROBE10[..25]).is_err());
        assert!(ProbeCommit::decode(&p11[..30]).is_err());
    }

    #[rustfmt::skip]
    const HEADER: [u8; 14] = [
        0x0e,                         // bHeaderLength 14
        0x8f,                         // EOH | SCR | PTS | EOF | FID
        0x78, 0x56, 0x34, 0x12,       // PTS
        0x01, 0x00, 0x00, 0x00,       // SCR: STC
        0x02, 0x00,                   // SCR: SOF
        0xaa, 0xbb,                   // trailing metadata bytes
    ];

    #[test]
    fn payload_header_round_trip() {
        let (h, n) = PayloadHeader::decode(&HEADER).unwrap();
        assert_eq!(n, 14);
        assert!(h.fid() && h.eof() && !h.err());
        assert_eq!(h.pts, Some(0x1234_5678));
        assert_eq!(h.scr, Some((1, 2)));
        assert_eq!(h.metadata, [0xaa, 0xbb]);
        assert_eq!(h.encode().unwrap(), HEADER);
        assert!(PayloadHeader::decode(&HEADER[..1]).is_err());
        assert!(PayloadHeader::decode(&HEADER[..13]).is_err()); // bHeaderLength past the end
        assert!(PayloadHeader::decode(&[0x04, 0x0c, 0, 0]).is_err()); // too short for PTS+SCR
    }

    fn payload(info: u8, meta: &[u8], body: &[u8]) -> Vec<u8> {
        let mut v = PayloadHeader {
            info,
            metadata: meta.to_vec(),
            ..Default::default()
        }
        .encode()
        .unwrap();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn assembler_rules() {
        let mut a = FrameAssembler::new();
        let align = FrameAlignInfo {
            frame_pts_ticks: 90_000,
            ..Default::default()
        }
        .encode();
        assert!(a.push(&payload(0, &align, b"ab")).is_empty());
        assert!(a.push(&payload(header_bits::ERR, &[], b"zz")).is_empty());
        let f = a.push(&payload(header_bits::EOF, &[], b"cd"));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].data, b"abcd");
        assert_eq!(f[0].end, FrameEnd::Eof);
        assert!(!f[0].metadata_reused);
        assert_eq!(
            ColorFrameMetadata::parse(&f[0].metadata)
                .unwrap()
                .device_timestamp_usec(),
            Some(1_000_000)
        );
        // Next frame: FID toggles, no EOF; the toggle after it publishes it with reused metadata.
        assert!(a.push(&payload(header_bits::FID, &[], b"ef")).is_empty());
        let f = a.push(&payload(0, &[], b"gh"));
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].data.as_slice(), f[0].end, f[0].fid),
            (&b"ef"[..], FrameEnd::FidToggle, true)
        );
        assert!(f[0].metadata_reused);
        assert_eq!(f[0].metadata, align);
        // EOF on a header-only payload does not complete.
        assert!(a.push(&payload(header_bits::EOF, &[], b"")).is_empty());
        assert_eq!(a.stats.error_payloads, 1);
        a.push(&[5, 0]);
        assert_eq!(a.stats.malformed_payloads, 1);
    }

    #[test]
    fn assembler_caps_frame_size() {
        let mut a = FrameAssembler::new();
        let chunk = vec![0u8; 1024 * 1024];
        for _ in 0..16 {
            assert!(a.push(&payload(0, &[], &chunk)).is_empty());
        }
        assert!(a.push(&payload(header_bits::EOF, &[], b"x")).is_empty());
        assert_eq!(a.stats.oversized_frames, 1);
        let f = a.push(&payload(header_bits::EOF, &[], b"ok"));
        assert_eq!(f[0].data, b"ok");
    }

    #[rustfmt::skip]
    const ALIGN: [u8; 44] = [
        0x01, 0x00, 0x00, 0x80,  // MetadataId FrameAlignInfo
        0x2c, 0x00, 0x00, 0x00,  // Size 44
        0x00, 0x00, 0x00, 0x00,  // Flags
        0x00, 0x00, 0x00, 0x00,  // Reserved
        0x10, 0x27, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // FramePTS 10000 ticks
        0x00, 0x00, 0x00, 0x00,  // PTSReference
        0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // USBSoFSeqNum 5
        0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // USBSoFPTS 6
    ];

    #[test]
    fn metadata_items_round_trip_and_walk() {
        let a = FrameAlignInfo::decode(&ALIGN).unwrap();
        assert_eq!(
            a,
            FrameAlignInfo {
                frame_pts_ticks: 10_000,
                usb_sof_seq_num: 5,
                usb_sof_pts: 6,
                ..Default::default()
            }
        );
        assert_eq!(a.encode(), ALIGN);
        let s = CaptureStats {
            flags: CAPTURE_STATS_EXPOSURE_TIME | CAPTURE_STATS_WHITE_BALANCE,
            exposure_time_100ns: 333_300,
            white_balance_k: 4500,
            iso_speed: 100,
            ..Default::default()
        };
        let bytes = s.encode();
        assert_eq!(bytes.len(), 80);
        assert_eq!(&bytes[..8], &[0x03, 0, 0, 0, 0x50, 0, 0, 0]);
        assert_eq!(CaptureStats::decode(&bytes).unwrap(), s);
        let mut meta = bytes.clone();
        meta.extend_from_slice(&ALIGN);
        meta.extend_from_slice(&[0; 7]); // under 8 bytes left: the walk stops
        let m = ColorFrameMetadata::parse(&meta).unwrap();
        assert_eq!(m.frame_pts_ticks, Some(10_000));
        assert_eq!(m.device_timestamp_usec(), Some(111_111));
        assert_eq!(m.exposure_usec, Some(33_330));
        assert_eq!(m.white_balance_k, Some(4500));
        assert_eq!(m.iso_speed, None);
        // Size 0 stops the walk; an overrunning size is an error.
        let mut z = ALIGN;
        z[4] = 0;
        assert_eq!(
            ColorFrameMetadata::parse(&z).unwrap(),
            ColorFrameMetadata::default()
        );
        let mut big = ALIGN;
        big[4] = 45;
        assert!(matches!(
            ColorFrameMetadata::parse(&big),
            Err(UvcError::MetadataOverrun {
                size: 45,
                remaining: 44,
                ..
            })
        ));
        let mut zero_pts = ALIGN;
        zero_pts[16] = 0;
        zero_pts[17] = 0;
        assert_eq!(
            ColorFrameMetadata::parse(&zero_pts)
                .unwrap()
                .device_timestamp_usec(),
            None
        );
        assert!(FrameAlignInfo::decode(&ALIGN[..43]).is_err());
        assert!(CaptureStats::decode(&bytes[..79]).is_err());
    }

    #[test]
    fn exposure_table_rules() {
        assert_eq!(exposure_usec_to_uvc(488, PowerLine::Hz60), 5);
        assert_eq!(exposure_usec_to_uvc(8330, PowerLine::Hz60), 83);
        assert_eq!(exposure_usec_to_uvc(8331, PowerLine::Hz60), 166);
        assert_eq!(exposure_usec_to_uvc(8331, PowerLine::Hz50), 100);
        assert_eq!(exposure_usec_to_uvc(5_000_000, PowerLine::Hz50), 1300);
        assert_eq!(exposure_uvc_to_usec(333, PowerLine::Hz60), 33_330);
        assert_eq!(exposure_uvc_to_usec(127, PowerLine::Hz60), 16_670);
        assert_eq!(
            clip_exposure_to_frame(133_330, Fps::Fps30, PowerLine::Hz60),
            33_330
        );
        assert_eq!(
            clip_exposure_to_frame(130_000, Fps::Fps30, PowerLine::Hz50),
            30_000
        );
        assert_eq!(
            clip_exposure_to_frame(10_000, Fps::Fps30, PowerLine::Hz50),
            10_000
        );
        assert!(ae_mode_is_manual(1) && ae_mode_is_manual(4) && !ae_mode_is_manual(8));
    }

    #[test]
    fn intervals() {
        for fps in [Fps::Fps5, Fps::Fps15, Fps::Fps30] {
            assert!(interval_matches(frame_interval_100ns(fps), fps.hz()));
        }
        assert!(!interval_matches(666_667, 15));
        assert!(!interval_matches(0, 15));
    }

    #[test]
    fn controls_are_addressed_by_wvalue_and_windex() {
        // PU_GAIN: selector 4 high in wValue; processing unit 2 high, interface 0 low in wIndex.
        assert_eq!((PU_GAIN.w_value(), PU_GAIN.w_index()), (0x0400, 0x0200));
        assert_eq!(
            (CT_AE_MODE.w_value(), CT_AE_MODE.w_index()),
            (0x0200, 0x0100)
        );
        for c in CONTROLS {
            assert_eq!(UvcControl::addressed_by(c.w_value(), c.w_index()), Some(c));
        }
        // Unknown selector, unknown entity, another interface.
        assert_eq!(UvcControl::addressed_by(0x0600, 0x0200), None);
        assert_eq!(UvcControl::addressed_by(0x0400, 0x0300), None);
        assert_eq!(UvcControl::addressed_by(0x0400, 0x0201), None);
        assert_eq!(
            (vs_w_value(VS_COMMIT_CONTROL), VS_W_INDEX),
            (0x0200, 0x0001)
        );
        assert_eq!(
            PowerLine::from_uvc_value(PowerLine::Hz50.uvc_value()),
            Some(PowerLine::Hz50)
        );
        assert_eq!(PowerLine::from_uvc_value(0), None);
    }
}
