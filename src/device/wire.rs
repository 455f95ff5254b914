//! Wire structures the device layer and the emulator both need and that `crate::protocol` does
//! not provide yet (command framing, IMU packets, UVC headers and metadata, probe/commit,
//! descriptors). Each item is meant to move behind the protocol module's own type once it
//! lands; nothing here does I/O.

use std::fmt;

/// Command packet magic (`USB_CMD_PACKET_TYPE`).
pub const COMMAND_MAGIC: u32 = 0x0602_2009;
/// Status packet magic (`USB_CMD_PACKET_TYPE_RESPONSE`).
pub const STATUS_MAGIC: u32 = 0x0A6F_E000;
/// Command header length.
pub const COMMAND_HEADER_LEN: usize = 20;
/// Status packet length.
pub const STATUS_LEN: usize = 16;
/// Most command data bytes after the header.
pub const MAX_COMMAND_DATA: usize = 128;

/// Why bytes are not the structure expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Too few bytes.
    #[error("{what}: need {need} bytes, got {got}")]
    Truncated {
        /// Structure name.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        got: usize,
    },
    /// Magic value mismatch.
    #[error("{what}: bad magic 0x{got:08X}")]
    BadMagic {
        /// Structure name.
        what: &'static str,
        /// Value found.
        got: u32,
    },
    /// A field holds a value the structure does not allow.
    #[error("{what}: invalid {field} {value}")]
    Invalid {
        /// Structure name.
        what: &'static str,
        /// Field name.
        field: &'static str,
        /// Value found.
        value: u64,
    },
}

fn need(what: &'static str, b: &[u8], n: usize) -> Result<(), WireError> {
    if b.len() < n {
        Err(WireError::Truncated { what, need: n, got: b.len() })
    } else {
        Ok(())
    }
}
pub(crate) fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
pub(crate) fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
pub(crate) fn u64_at(b: &[u8], o: usize) -> u64 {
    u32_at(b, o) as u64 | (u32_at(b, o + 4) as u64) << 32
}

/// A command packet: header plus up to 128 bytes of command data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandPacket {
    /// Transaction id (echoed by the status packet).
    pub transaction_id: u32,
    /// Size of the data phase (read buffer or write length; 0 for none).
    pub payload_size: u32,
    /// Command code.
    pub command: u32,
    /// Command data.
    pub data: Vec<u8>,
}

impl CommandPacket {
    /// The bytes of one command OUT transfer.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(COMMAND_HEADER_LEN + self.data.len());
        for x in [COMMAND_MAGIC, self.transaction_id, self.payload_size, self.command, 0] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(&self.data);
        v
    }

    /// Parses one command OUT transfer.
    pub fn decode(b: &[u8]) -> Result<CommandPacket, WireError> {
        need("command packet", b, COMMAND_HEADER_LEN)?;
        let magic = u32_at(b, 0);
        if magic != COMMAND_MAGIC {
            return Err(WireError::BadMagic { what: "command packet", got: magic });
        }
        if b.len() > COMMAND_HEADER_LEN + MAX_COMMAND_DATA {
            return Err(WireError::Invalid { what: "command packet", field: "length", value: b.len() as u64 });
        }
        Ok(CommandPacket {
            transaction_id: u32_at(b, 4),
            payload_size: u32_at(b, 8),
            command: u32_at(b, 12),
            data: b[COMMAND_HEADER_LEN..].to_vec(),
        })
    }
}

/// A status packet (the last phase of every command).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusPacket {
    /// Echo of the command's transaction id.
    pub transaction_id: u32,
    /// 0 for success.
    pub status: u32,
}

impl StatusPacket {
    /// The 16 status bytes, with `magic` (normally [`STATUS_MAGIC`]).
    pub fn encode_with_magic(&self, magic: u32) -> [u8; STATUS_LEN] {
        let mut v = [0u8; STATUS_LEN];
        v[0..4].copy_from_slice(&magic.to_le_bytes());
        v[4..8].copy_from_slice(&self.transaction_id.to_le_bytes());
        v[8..12].copy_from_slice(&self.status.to_le_bytes());
        v
    }
    /// The 16 status bytes.
    pub fn encode(&self) -> [u8; STATUS_LEN] {
        self.encode_with_magic(STATUS_MAGIC)
    }
    /// Parses exactly 16 status bytes.
    pub fn decode(b: &[u8]) -> Result<StatusPacket, WireError> {
        if b.len() != STATUS_LEN {
            return Err(WireError::Truncated { what: "status packet", need: STATUS_LEN, got: b.len() });
        }
        let magic = u32_at(b, 0);
        if magic != STATUS_MAGIC {
            return Err(WireError::BadMagic { what: "status packet", got: magic });
        }
        Ok(StatusPacket { transaction_id: u32_at(b, 4), status: u32_at(b, 8) })
    }
}

/// Status codes the emulated firmware answers with.
pub mod status {
    /// Success.
    pub const SUCCESS: u32 = 0x000;
    /// Generic error.
    pub const ERROR: u32 = 0x001;
    /// A parameter was out of range.
    pub const INVALID_PARAMETER: u32 = 0x003;
    /// Unknown command.
    pub const NOT_IMPLEMENTED: u32 = 0x008;
    /// Unknown NV tag.
    pub const PARAM_BAD_TAG: u32 = 0x00D;
    /// Data phase size does not fit.
    pub const INVALID_PAYLOAD_SIZE: u32 = 0x012;
    /// Command not valid in this state.
    pub const WRONG_COMMAND_STATE: u32 = 0x101;
}

/// Command codes.
pub mod cmd {
    /// Depth: start the sensor.
    pub const DEPTH_START: u32 = 0x09;
    /// Depth: stop the sensor.
    pub const DEPTH_STOP: u32 = 0x0A;
    /// Depth: read an NV block.
    pub const NV_DATA_GET: u32 = 0x22;
    /// Depth: set the sensor mode.
    pub const DEPTH_MODE_SET: u32 = 0xE1;
    /// Depth: power on (test tool only).
    pub const DEPTH_POWER_ON: u32 = 0xF0;
    /// Depth: start the stream.
    pub const DEPTH_STREAM_START: u32 = 0xF1;
    /// Depth: stop the stream.
    pub const DEPTH_STREAM_STOP: u32 = 0xF2;
    /// Depth: frames per second.
    pub const DEPTH_FPS_SET: u32 = 0x103;
    /// Depth: calibration JSON.
    pub const READ_CALIBRATION_DATA: u32 = 0x111;
    /// Depth: product serial number.
    pub const READ_PRODUCT_SN: u32 = 0x115;
    /// Depth: firmware versions.
    pub const COMPONENT_VERSION_GET: u32 = 0x201;
    /// Colour: sync configuration.
    pub const SET_SYS_CFG: u32 = 0x8000_0001;
    /// Colour: start IMU stream.
    pub const IMU_STREAM_START: u32 = 0x8000_0003;
    /// Colour: stop IMU stream.
    pub const IMU_STREAM_STOP: u32 = 0x8000_0004;
    /// Colour: read jack state.
    pub const GET_JACK_STATE: u32 = 0x8000_0006;
}

/// Human name of a command code (for errors and logs).
pub fn command_name(code: u32) -> &'static str {
    match code {
        0x00 => "DEV_CMD_RESET",
        cmd::DEPTH_START => "DEV_CMD_DEPTH_START",
        cmd::DEPTH_STOP => "DEV_CMD_DEPTH_STOP",
        cmd::NV_DATA_GET => "DEV_CMD_NV_DATA_GET",
        cmd::DEPTH_MODE_SET => "DEV_CMD_DEPTH_MODE_SET",
        cmd::DEPTH_POWER_ON => "DEV_CMD_DEPTH_POWER_ON",
        cmd::DEPTH_STREAM_START => "DEV_CMD_DEPTH_STREAM_START",
        cmd::DEPTH_STREAM_STOP => "DEV_CMD_DEPTH_STREAM_STOP",
        cmd::DEPTH_FPS_SET => "DEV_CMD_DEPTH_FPS_SET",
        cmd::READ_CALIBRATION_DATA => "DEV_CMD_DEPTH_READ_CALIBRATION_DATA",
        cmd::READ_PRODUCT_SN => "DEV_CMD_DEPTH_READ_PRODUCT_SN",
        cmd::COMPONENT_VERSION_GET => "DEV_CMD_COMPONENT_VERSION_GET",
        cmd::SET_SYS_CFG => "DEV_CMD_SET_SYS_CFG",
        cmd::IMU_STREAM_START => "DEV_CMD_IMU_STREAM_START",
        cmd::IMU_STREAM_STOP => "DEV_CMD_IMU_STREAM_STOP",
        cmd::GET_JACK_STATE => "DEV_CMD_GET_JACK_STATE",
        _ => "unknown command",
    }
}

/// Raw frame size rounded up to 1024 (the host's transfer size for depth).
pub fn raw_depth_buffer_size(sensor_mode: u32) -> Option<usize> {
    crate::protocol::depth_raw::raw_frame_size(sensor_mode).map(|s| s.div_ceil(1024) * 1024)
}

// ---------------------------------------------------------------- IMU packets

/// IMU packet header length.
pub const IMU_HEADER_LEN: usize = 28;
/// Bytes per IMU sample.
pub const IMU_SAMPLE_LEN: usize = 14;
/// Largest IMU packet (8 gyro + 8 accel samples).
pub const IMU_MAX_PACKET: usize = 252;

/// One raw IMU sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawImuSample {
    /// 90 kHz ticks.
    pub pts: u64,
    /// Raw counts.
    pub xyz: [i16; 3],
}

/// One IMU packet on endpoint 0x82.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImuPacket {
    /// Temperature reporting period (unused).
    pub temperature_period_usec: u32,
    /// Temperature sensitivity (unused).
    pub temperature_sensitivity: u16,
    /// Raw temperature: °C = value / 256 + 15.
    pub temperature_raw: i16,
    /// Gyro sensitivity, µdeg/s per LSB.
    pub gyro_sensitivity: u16,
    /// Gyro sample period (unused).
    pub gyro_period_usec: u32,
    /// Gyro samples.
    pub gyro: Vec<RawImuSample>,
    /// Accelerometer sensitivity, µg per LSB.
    pub accel_sensitivity: u16,
    /// Accelerometer sample period (unused).
    pub accel_period_usec: u32,
    /// Accelerometer samples.
    pub accel: Vec<RawImuSample>,
}

impl ImuPacket {
    /// Encodes the packet.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(IMU_HEADER_LEN + IMU_SAMPLE_LEN * (self.gyro.len() + self.accel.len()));
        v.extend_from_slice(&self.temperature_period_usec.to_le_bytes());
        v.extend_from_slice(&self.temperature_sensitivity.to_le_bytes());
        v.extend_from_slice(&self.temperature_raw.to_le_bytes());
        v.extend_from_slice(&self.gyro_sensitivity.to_le_bytes());
        v.extend_from_slice(&self.gyro_period_usec.to_le_bytes());
        v.extend_from_slice(&(self.gyro.len() as u32).to_le_bytes());
        v.extend_from_slice(&self.accel_sensitivity.to_le_bytes());
        v.extend_from_slice(&self.accel_period_usec.to_le_bytes());
        v.extend_from_slice(&(self.accel.len() as u32).to_le_bytes());
        for s in self.gyro.iter().chain(&self.accel) {
            v.extend_from_slice(&s.pts.to_le_bytes());
            for a in s.xyz {
                v.extend_from_slice(&a.to_le_bytes());
            }
        }
        v
    }

    /// Decodes a packet, checking header, gyro and accel lengths as the SDK does.
    pub fn decode(b: &[u8]) -> Result<ImuPacket, WireError> {
        need("IMU packet header", b, IMU_HEADER_LEN)?;
        let g = u32_at(b, 14) as usize;
        let a = u32_at(b, 24) as usize;
        if g > 8 || a > 8 {
            return Err(WireError::Invalid { what: "IMU packet", field: "sample count", value: g.max(a) as u64 });
        }
        need("IMU packet samples", b, IMU_HEADER_LEN + IMU_SAMPLE_LEN * (g + a))?;
        let sample = |i: usize| {
            let o = IMU_HEADER_LEN + IMU_SAMPLE_LEN * i;
            RawImuSample {
                pts: u64_at(b, o),
                xyz: [0, 1, 2].map(|k| u16_at(b, o + 8 + 2 * k) as i16),
            }
        };
        Ok(ImuPacket {
            temperature_period_usec: u32_at(b, 0),
            temperature_sensitivity: u16_at(b, 4),
            temperature_raw: u16_at(b, 6) as i16,
            gyro_sensitivity: u16_at(b, 8),
            gyro_period_usec: u32_at(b, 10),
            gyro: (0..g).map(sample).collect(),
            accel_sensitivity: u16_at(b, 18),
            accel_period_usec: u32_at(b, 20),
            accel: (g..g + a).map(sample).collect(),
        })
    }
}

// ---------------------------------------------------------------- UVC

/// UVC payload header bits.
pub mod uvc_bits {
    /// Frame id.
    pub const FID: u8 = 0x01;
    /// End of frame.
    pub const EOF: u8 = 0x02;
    /// PTS present.
    pub const PTS: u8 = 0x04;
    /// SCR present.
    pub const SCR: u8 = 0x08;
    /// Error.
    pub const ERR: u8 = 0x40;
    /// End of header.
    pub const EOH: u8 = 0x80;
}

/// Metadata item id of FrameAlignInfo.
pub const FRAME_ALIGN_INFO_ID: u32 = 0x8000_0001;
/// Metadata item id of CaptureStats.
pub const CAPTURE_STATS_ID: u32 = 0x0000_0003;

/// FrameAlignInfo item (44 bytes, Linux layout).
pub fn encode_frame_align_info(frame_pts_ticks: u64, sof_seq: u64, sof_pts: u64) -> [u8; 44] {
    let mut v = [0u8; 44];
    v[0..4].copy_from_slice(&FRAME_ALIGN_INFO_ID.to_le_bytes());
    v[4..8].copy_from_slice(&44u32.to_le_bytes());
    v[16..24].copy_from_slice(&frame_pts_ticks.to_le_bytes());
    v[28..36].copy_from_slice(&sof_seq.to_le_bytes());
    v[36..44].copy_from_slice(&sof_pts.to_le_bytes());
    v
}

/// CaptureStats item (80 bytes) carrying exposure (100 ns units), ISO and white balance.
pub fn encode_capture_stats(exposure_100ns: u64, iso: u32, white_balance_k: u32) -> [u8; 80] {
    let mut v = [0u8; 80];
    v[0..4].copy_from_slice(&CAPTURE_STATS_ID.to_le_bytes());
    v[4..8].copy_from_slice(&80u32.to_le_bytes());
    v[8..12].copy_from_slice(&(0x1u32 | 0x4 | 0x20).to_le_bytes());
    v[16..24].copy_from_slice(&exposure_100ns.to_le_bytes());
    v[36..40].copy_from_slice(&iso.to_le_bytes());
    v[48..52].copy_from_slice(&white_balance_k.to_le_bytes());
    v
}

/// What the colour path reads from a frame's metadata.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameMetadata {
    /// FramePTS (90 kHz), when a FrameAlignInfo item was present.
    pub frame_pts_ticks: Option<u64>,
    /// Exposure in µs, when CaptureStats said it is valid.
    pub exposure_usec: Option<u64>,
}

/// Walks metadata items as the SDK does (last value wins; stops at size 0 or < 8 bytes left),
/// but refuses an item whose size runs past the end instead of reading out of bounds.
pub fn parse_metadata(mut b: &[u8]) -> FrameMetadata {
    let mut m = FrameMetadata::default();
    while b.len() >= 8 {
        let id = u32_at(b, 0);
        let size = u32_at(b, 4) as usize;
        if size < 8 || size > b.len() {
            break;
        }
        let item = &b[..size];
        if id == FRAME_ALIGN_INFO_ID && size >= 24 {
            m.frame_pts_ticks = Some(u64_at(item, 16));
        } else if id == CAPTURE_STATS_ID && size >= 24 && u32_at(item, 8) & 1 != 0 {
            m.exposure_usec = Some(u64_at(item, 16) / 10);
        }
        b = &b[size..];
    }
    m
}

/// A parsed UVC payload header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadHeader<'a> {
    /// bmHeaderInfo.
    pub info: u8,
    /// Header bytes after PTS/SCR (vendor metadata).
    pub extra: &'a [u8],
    /// Payload data after the header.
    pub data: &'a [u8],
}

/// Splits one UVC payload into header and data.
pub fn parse_payload(b: &[u8]) -> Result<PayloadHeader<'_>, WireError> {
    need("UVC payload header", b, 2)?;
    let len = b[0] as usize;
    if len < 2 || len > b.len() {
        return Err(WireError::Invalid { what: "UVC payload header", field: "bHeaderLength", value: len as u64 });
    }
    let info = b[1];
    let mut o = 2;
    if info & uvc_bits::PTS != 0 {
        o += 4;
    }
    if info & uvc_bits::SCR != 0 {
        o += 6;
    }
    if o > len {
        return Err(WireError::Invalid { what: "UVC payload header", field: "bHeaderLength", value: len as u64 });
    }
    Ok(PayloadHeader { info, extra: &b[o..len], data: &b[len..] })
}

/// Writes a UVC payload header (PTS and SCR present) followed by `extra`; returns its length.
pub fn encode_payload_header(out: &mut Vec<u8>, info: u8, pts: u32, scr_stc: u32, scr_sof: u16, extra: &[u8]) -> usize {
    let len = 12 + extra.len();
    out.push(len as u8);
    out.push(info | uvc_bits::PTS | uvc_bits::SCR | uvc_bits::EOH);
    out.extend_from_slice(&pts.to_le_bytes());
    out.extend_from_slice(&scr_stc.to_le_bytes());
    out.extend_from_slice(&scr_sof.to_le_bytes());
    out.extend_from_slice(extra);
    len
}

/// UVC 1.0 probe/commit control (26 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeCommit {
    /// bmHint.
    pub hint: u16,
    /// bFormatIndex.
    pub format_index: u8,
    /// bFrameIndex.
    pub frame_index: u8,
    /// dwFrameInterval, 100 ns units.
    pub frame_interval_100ns: u32,
    /// dwMaxVideoFrameSize.
    pub max_video_frame_size: u32,
    /// dwMaxPayloadTransferSize.
    pub max_payload_transfer_size: u32,
}

/// Length of the UVC 1.0 probe control.
pub const PROBE_LEN: usize = 26;

impl ProbeCommit {
    /// The 26 bytes.
    pub fn encode(&self) -> [u8; PROBE_LEN] {
        let mut v = [0u8; PROBE_LEN];
        v[0..2].copy_from_slice(&self.hint.to_le_bytes());
        v[2] = self.format_index;
        v[3] = self.frame_index;
        v[4..8].copy_from_slice(&self.frame_interval_100ns.to_le_bytes());
        v[18..22].copy_from_slice(&self.max_video_frame_size.to_le_bytes());
        v[22..26].copy_from_slice(&self.max_payload_transfer_size.to_le_bytes());
        v
    }
    /// Parses at least 26 bytes.
    pub fn decode(b: &[u8]) -> Result<ProbeCommit, WireError> {
        need("probe/commit control", b, PROBE_LEN)?;
        Ok(ProbeCommit {
            hint: u16_at(b, 0),
            format_index: b[2],
            frame_index: b[3],
            frame_interval_100ns: u32_at(b, 4),
            max_video_frame_size: u32_at(b, 18),
            max_payload_transfer_size: u32_at(b, 22),
        })
    }
}

/// UVC request codes.
pub mod uvc_req {
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
    /// VS_PROBE_CONTROL selector.
    pub const VS_PROBE: u8 = 0x01;
    /// VS_COMMIT_CONTROL selector.
    pub const VS_COMMIT: u8 = 0x02;
}

// ---------------------------------------------------------------- descriptors

/// Colour frame formats as the emulated camera's descriptors list them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UvcFormat {
    /// Motion JPEG.
    Mjpeg,
    /// NV12 (uncompressed).
    Nv12,
    /// YUY2 (uncompressed).
    Yuy2,
}

/// One (format, frame) pair found in a VS interface's descriptors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UvcFrameDesc {
    /// Format.
    pub format: UvcFormat,
    /// bFormatIndex.
    pub format_index: u8,
    /// bFrameIndex.
    pub frame_index: u8,
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
    /// Discrete intervals, 100 ns units.
    pub intervals_100ns: Vec<u32>,
    /// dwMaxVideoFrameBufferSize.
    pub max_frame_size: u32,
}

/// GUID suffix shared by the uncompressed formats.
const GUID_SUFFIX: [u8; 12] = [0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71];

/// Builds the class-specific VS descriptors for `frames` (grouped by format, in order).
pub fn build_vs_descriptors(frames: &[UvcFrameDesc]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < frames.len() {
        let f = &frames[i];
        let n = frames[i..].iter().take_while(|x| x.format_index == f.format_index).count();
        match f.format {
            UvcFormat::Mjpeg => out.extend_from_slice(&[11, 0x24, 0x06, f.format_index, n as u8, 1, 1, 0, 0, 0, 0]),
            UvcFormat::Nv12 | UvcFormat::Yuy2 => {
                let (tag, bpp) = if f.format == UvcFormat::Nv12 { (*b"NV12", 12) } else { (*b"YUY2", 16) };
                out.extend_from_slice(&[27, 0x24, 0x04, f.format_index, n as u8]);
                out.extend_from_slice(&tag);
                out.extend_from_slice(&GUID_SUFFIX);
                out.extend_from_slice(&[bpp, 1, 0, 0, 0, 0]);
            }
        }
        for fr in &frames[i..i + n] {
            let sub = if fr.format == UvcFormat::Mjpeg { 0x07 } else { 0x05 };
            let len = 26 + 4 * fr.intervals_100ns.len();
            out.extend_from_slice(&[len as u8, 0x24, sub, fr.frame_index, 0]);
            out.extend_from_slice(&fr.width.to_le_bytes());
            out.extend_from_slice(&fr.height.to_le_bytes());
            let rate = fr.max_frame_size.saturating_mul(8 * 30);
            out.extend_from_slice(&rate.to_le_bytes());
            out.extend_from_slice(&rate.to_le_bytes());
            out.extend_from_slice(&fr.max_frame_size.to_le_bytes());
            out.extend_from_slice(&fr.intervals_100ns.first().copied().unwrap_or(333_333).to_le_bytes());
            out.push(fr.intervals_100ns.len() as u8);
            for iv in &fr.intervals_100ns {
                out.extend_from_slice(&iv.to_le_bytes());
            }
        }
        i += n;
    }
    out
}

/// Walks a configuration descriptor and returns the VS formats/frames it lists plus the
/// largest SuperSpeed bytes-per-interval of an isochronous endpoint `0x81`.
pub fn parse_vs_descriptors(config: &[u8]) -> Result<(Vec<UvcFrameDesc>, usize), WireError> {
    let mut frames = Vec::new();
    let mut o = 0;
    let mut fmt: Option<(UvcFormat, u8)> = None;
    let mut bytes_per_interval = 0usize;
    let mut last_ep_iso_81 = false;
    while o + 2 <= config.len() {
        let len = config[o] as usize;
        if len < 2 || o + len > config.len() {
            return Err(WireError::Invalid { what: "configuration descriptor", field: "bLength", value: len as u64 });
        }
        let d = &config[o..o + len];
        match (d[1], d.get(2).copied()) {
            (0x24, Some(0x06)) if len >= 11 => fmt = Some((UvcFormat::Mjpeg, d[3])),
            (0x24, Some(0x04)) if len >= 27 => {
                let f = match &d[5..9] {
                    b"NV12" => UvcFormat::Nv12,
                    b"YUY2" => UvcFormat::Yuy2,
                    _ => UvcFormat::Yuy2,
                };
                fmt = Some((f, d[3]));
            }
            (0x24, Some(0x07 | 0x05)) if len >= 26 => {
                if let Some((format, format_index)) = fmt {
                    let n = d[25] as usize;
                    let intervals = (0..n).filter(|k| 26 + 4 * k + 4 <= len).map(|k| u32_at(d, 26 + 4 * k)).collect();
                    frames.push(UvcFrameDesc {
                        format,
                        format_index,
                        frame_index: d[3],
                        width: u16_at(d, 5),
                        height: u16_at(d, 7),
                        intervals_100ns: intervals,
                        max_frame_size: u32_at(d, 17),
                    });
                }
            }
            (0x05, _) if len >= 7 => last_ep_iso_81 = d[2] == 0x81 && d[3] & 3 == 1,
            (0x30, _) if len >= 6 && last_ep_iso_81 => {
                bytes_per_interval = bytes_per_interval.max(u16_at(d, 4) as usize);
            }
            _ => {}
        }
        o += len;
    }
    Ok((frames, bytes_per_interval))
}

/// Reads the Container ID from a BOS descriptor.
pub fn parse_container_id(bos: &[u8]) -> Option<[u8; 16]> {
    if bos.len() < 5 || bos[1] != 0x0F {
        return None;
    }
    let total = (u16_at(bos, 2) as usize).min(bos.len());
    let mut o = bos[0] as usize;
    while o + 3 <= total {
        let len = bos[o] as usize;
        if len < 3 || o + len > total {
            return None;
        }
        if bos[o + 1] == 0x10 && bos[o + 2] == 0x04 && len >= 20 {
            let mut id = [0u8; 16];
            id.copy_from_slice(&bos[o + 4..o + 20]);
            return Some(id);
        }
        o += len;
    }
    None
}

/// A string descriptor's text (UTF-16LE).
pub fn parse_string_descriptor(b: &[u8]) -> Option<String> {
    if b.len() < 2 || b[1] != 3 {
        return None;
    }
    let len = (b[0] as usize).min(b.len());
    let units: Vec<u16> = b[2..len].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    String::from_utf16(&units).ok()
}

/// Formats a Container ID as the SDK logs it.
pub struct ContainerIdDisplay<'a>(pub &'a [u8; 16]);

impl fmt::Display for ContainerIdDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{{{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}}}",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[9], b[8], b[10], b[11], b[12], b[13], b[14], b[15]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_and_status_round_trip_on_literal_bytes() {
        let c = CommandPacket { transaction_id: 5, payload_size: 18, command: 0x201, data: vec![] };
        let bytes = [0x09, 0x20, 0x02, 0x06, 5, 0, 0, 0, 18, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0, 0];
        assert_eq!(c.encode(), bytes);
        assert_eq!(CommandPacket::decode(&bytes), Ok(c));
        let s = StatusPacket { transaction_id: 5, status: 0x101 };
        let sb = [0x00, 0xE0, 0x6F, 0x0A, 5, 0, 0, 0, 0x01, 0x01, 0, 0, 0, 0, 0, 0];
        assert_eq!(s.encode(), sb);
        assert_eq!(StatusPacket::decode(&sb), Ok(s));
        assert!(StatusPacket::decode(&sb[..15]).is_err());
    }

    #[test]
    fn imu_packet_round_trip() {
        let p = ImuPacket {
            temperature_period_usec: 19230,
            temperature_sensitivity: 256,
            temperature_raw: 4096,
            gyro_sensitivity: 61000,
            gyro_period_usec: 600,
            gyro: vec![RawImuSample { pts: 54, xyz: [1, -2, 3] }],
            accel_sensitivity: 488,
            accel_period_usec: 600,
            accel: vec![RawImuSample { pts: 55, xyz: [0, 0, -2049] }],
        };
        let b = p.encode();
        assert_eq!(b.len(), 28 + 28);
        assert_eq!(&b[14..18], &[1, 0, 0, 0]);
        assert_eq!(ImuPacket::decode(&b), Ok(p));
        assert!(ImuPacket::decode(&b[..40]).is_err());
    }

    #[test]
    fn metadata_and_payload() {
        let mut extra = encode_frame_align_info(1234, 0, 0).to_vec();
        extra.extend_from_slice(&encode_capture_stats(333_300, 100, 4500));
        let mut p = Vec::new();
        encode_payload_header(&mut p, uvc_bits::FID, 1, 2, 3, &extra);
        p.extend_from_slice(b"data");
        let h = parse_payload(&p).unwrap();
        assert_eq!(h.data, b"data");
        let m = parse_metadata(h.extra);
        assert_eq!(m.frame_pts_ticks, Some(1234));
        assert_eq!(m.exposure_usec, Some(33_330));
    }
}
