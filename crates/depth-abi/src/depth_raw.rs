//! The raw depth frame as **freek4a's emulator** lays it out.
//!
//! The real device's raw depth payload is undocumented (Microsoft declined to document it); the
//! SDK never parses it and hands it whole to the closed depth engine. This layout is therefore
//! *our own choice*, shared by the emulator (which writes it) and the emulated depth engine
//! (which reads it). It has the exact per-mode size the SDK accepts (`protocol/depth.md`), a
//! 64-byte header carrying what the real engine is documented to extract from a raw frame
//! (centre-of-exposure tick, USB SoF tick, sensor and laser temperatures), and a description of
//! a synthetic scene with known geometry so the emulated engine can render exact distances.
//!
//! All fields little-endian:
//!
//! | Offset | Type | Field |
//! |---|---|---|
//! | 0 | [u8; 8] | magic `FK4ARAW1` |
//! | 8 | u32 | sensor mode (the MODE_SET value: 3, 4, 5 or 7) |
//! | 12 | u32 | frame sequence number |
//! | 16 | u64 | centre of exposure, 90 kHz ticks |
//! | 24 | u64 | USB start-of-frame tick |
//! | 32 | f32 | sensor temperature, °C |
//! | 36 | f32 ×2 | laser temperatures, °C |
//! | 44 | u16 | wall distance, mm |
//! | 46 | u16 | box distance, mm |
//! | 48 | u16 ×4 | box rectangle x0, y0, x1, y1 in 1/65536 of the image width/height |
//! | 56 | u16 | IR brightness of the wall |
//! | 58 | u16 | IR brightness of the box |
//! | 60 | u32 | emulated engine processing delay, ms (0 normally; a test knob, see below) |
//!
//! The bytes after the header are filler derived from the sequence number; they carry nothing.
//!
//! The word at offset 60 lets tests make the emulated depth engine slow for one frame (it sleeps
//! that many milliseconds before rendering), to exercise the host's queue and "too slow" paths.
//! [`RawFrameHeader::encode_into`] always writes 0 there; set it with [`set_engine_delay_ms`].
//!
//! # Emulated calibration block (NV tag 2)
//!
//! The real device's NV tag-2 blob ("CCB") is opaque and only Microsoft's engine reads it. The
//! emulated unit serves its own block instead, which the emulated engine validates the way the
//! real one does (anything else → result 103, UPDATE_CALIBRATION_FAILED). Little-endian:
//!
//! | Offset | Type | Field |
//! |---|---|---|
//! | 0 | [u8; 8] | magic `FK4ACCB1` |
//! | 8 | u32 | format version, 1 |
//! | 12 | u32 | payload length `n` |
//! | 16 | [u8; n] | payload (free-form; the emulator puts the unit's serial number here) |
//! | 16 + n | u32 | CRC-32 (IEEE) of bytes 0 .. 16 + n |

/// Size of the header at the start of every emulated raw frame.
pub const HEADER_LEN: usize = 64;

/// Magic at offset 0 of every emulated raw frame.
pub const MAGIC: [u8; 8] = *b"FK4ARAW1";

/// Offset of the emulated engine's processing-delay word in the header.
pub const ENGINE_DELAY_OFFSET: usize = 60;

/// Exact raw frame size in bytes for a sensor mode (the MODE_SET value), as the SDK accepts it:
/// 3 PSEUDO_COMMON (passive IR), 4 LONG_THROW_NATIVE (both NFOV modes), 5 MEGA_PIXEL (WFOV
/// unbinned), 7 QUARTER_MEGA_PIXEL (WFOV binned).
pub fn raw_frame_size(sensor_mode: u32) -> Option<usize> {
    match sensor_mode {
        3 => Some(1_678_024),
        4 => Some(5_310_760),
        5 => Some(9_438_664),
        7 => Some(3_777_232),
        _ => None,
    }
}

/// Sets the emulated engine's processing delay (ms) in an encoded frame.
///
/// # Panics
/// If `frame` is shorter than [`HEADER_LEN`].
pub fn set_engine_delay_ms(frame: &mut [u8], delay_ms: u32) {
    frame[ENGINE_DELAY_OFFSET..ENGINE_DELAY_OFFSET + 4].copy_from_slice(&delay_ms.to_le_bytes());
}

/// The emulated engine's processing delay (ms) of an encoded frame; 0 when too short.
pub fn engine_delay_ms(frame: &[u8]) -> u32 {
    if frame.len() < HEADER_LEN {
        return 0;
    }
    u32_at(frame, ENGINE_DELAY_OFFSET)
}

/// Magic at offset 0 of the emulated calibration block.
pub const CAL_BLOCK_MAGIC: [u8; 8] = *b"FK4ACCB1";
/// Format version of the emulated calibration block.
pub const CAL_BLOCK_VERSION: u32 = 1;
/// Bytes of the emulated calibration block besides its payload (header 16 + CRC 4).
pub const CAL_BLOCK_OVERHEAD: usize = 20;

/// Why bytes are not a valid emulated calibration block.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CalBlockError {
    /// Shorter than the fixed header and CRC.
    #[error("calibration block: {0} bytes is shorter than the {CAL_BLOCK_OVERHEAD}-byte minimum")]
    Short(usize),
    /// Magic mismatch.
    #[error("calibration block: bad magic {0:02X?}")]
    BadMagic([u8; 8]),
    /// A format version this code does not know.
    #[error("calibration block: unsupported version {0}")]
    Version(u32),
    /// The payload length disagrees with the block's size.
    #[error("calibration block: payload length {declared} does not fit the {total}-byte block")]
    Length {
        /// Payload length the header declares.
        declared: u32,
        /// Size of the whole block.
        total: usize,
    },
    /// The CRC does not match the contents.
    #[error("calibration block: CRC-32 {stored:08X} does not match the contents ({computed:08X})")]
    Crc {
        /// CRC stored in the block.
        stored: u32,
        /// CRC of the contents.
        computed: u32,
    },
}

/// Builds an emulated calibration block around `payload`.
pub fn encode_cal_block(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + CAL_BLOCK_OVERHEAD);
    out.extend_from_slice(&CAL_BLOCK_MAGIC);
    out.extend_from_slice(&CAL_BLOCK_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks an emulated calibration block and returns its payload.
pub fn decode_cal_block(block: &[u8]) -> Result<&[u8], CalBlockError> {
    if block.len() < CAL_BLOCK_OVERHEAD {
        return Err(CalBlockError::Short(block.len()));
    }
    let mut magic = [0u8; 8];
    magic.copy_from_slice(&block[0..8]);
    if magic != CAL_BLOCK_MAGIC {
        return Err(CalBlockError::BadMagic(magic));
    }
    let version = u32_at(block, 8);
    if version != CAL_BLOCK_VERSION {
        return Err(CalBlockError::Version(version));
    }
    let declared = u32_at(block, 12);
    if declared as usize != block.len() - CAL_BLOCK_OVERHEAD {
        return Err(CalBlockError::Length {
            declared,
            total: block.len(),
        });
    }
    let body = block.len() - 4;
    let stored = u32_at(block, body);
    let computed = crc32fast::hash(&block[..body]);
    if stored != computed {
        return Err(CalBlockError::Crc { stored, computed });
    }
    Ok(&block[16..body])
}

/// A synthetic scene: a flat wall with a box in front of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scene {
    /// Distance of the wall, mm.
    pub wall_mm: u16,
    /// Distance of the box face, mm.
    pub box_mm: u16,
    /// Box rectangle (x0, y0, x1, y1), in 1/65536 of the image size; x1/y1 exclusive.
    pub box_rect: [u16; 4],
    /// IR brightness of the wall.
    pub wall_ir: u16,
    /// IR brightness of the box.
    pub box_ir: u16,
}

impl Default for Scene {
    /// A wall at 2 m and a box at 1 m covering the middle half of the view.
    fn default() -> Self {
        Scene {
            wall_mm: 2000,
            box_mm: 1000,
            box_rect: [16384, 16384, 49152, 49152],
            wall_ir: 300,
            box_ir: 900,
        }
    }
}

impl Scene {
    /// Whether output pixel (x, y) of a `width`×`height` image lies on the box.
    pub fn on_box(&self, x: u32, y: u32, width: u32, height: u32) -> bool {
        self.column_on_box(x, width) && self.row_on_box(y, height)
    }

    /// Whether column `x` of a `width`-pixel-wide image crosses the box.
    pub fn column_on_box(&self, x: u32, width: u32) -> bool {
        let fx = ((x as u64) << 16) / width.max(1) as u64;
        fx >= u64::from(self.box_rect[0]) && fx < u64::from(self.box_rect[2])
    }

    /// Whether row `y` of a `height`-pixel-high image crosses the box.
    pub fn row_on_box(&self, y: u32, height: u32) -> bool {
        let fy = ((y as u64) << 16) / height.max(1) as u64;
        fy >= u64::from(self.box_rect[1]) && fy < u64::from(self.box_rect[3])
    }

    /// Depth in mm at output pixel (x, y).
    pub fn depth_mm(&self, x: u32, y: u32, width: u32, height: u32) -> u16 {
        if self.on_box(x, y, width, height) {
            self.box_mm
        } else {
            self.wall_mm
        }
    }

    /// IR brightness at output pixel (x, y).
    pub fn ir(&self, x: u32, y: u32, width: u32, height: u32) -> u16 {
        if self.on_box(x, y, width, height) {
            self.box_ir
        } else {
            self.wall_ir
        }
    }
}

/// The header of an emulated raw depth frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RawFrameHeader {
    /// Sensor mode the frame was captured in (MODE_SET value).
    pub sensor_mode: u32,
    /// Frame sequence number since stream start.
    pub sequence: u32,
    /// Centre of exposure in 90 kHz device ticks.
    pub center_of_exposure_ticks: u64,
    /// USB start-of-frame tick.
    pub usb_sof_tick: u64,
    /// Depth sensor temperature, °C.
    pub sensor_temp_c: f32,
    /// Laser temperatures, °C.
    pub laser_temp_c: [f32; 2],
    /// The scene in view.
    pub scene: Scene,
}

/// Why bytes are not an emulated raw depth frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RawFrameError {
    /// Fewer bytes than the header.
    #[error("raw depth frame: {0} bytes is shorter than the {HEADER_LEN}-byte header")]
    Short(usize),
    /// Magic mismatch: not a frame from freek4a's emulator.
    #[error("raw depth frame: bad magic {0:02X?} (not an emulated frame)")]
    BadMagic([u8; 8]),
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

impl RawFrameHeader {
    /// Writes the header into the first [`HEADER_LEN`] bytes of `out`.
    ///
    /// # Panics
    /// If `out` is shorter than [`HEADER_LEN`]; every raw frame size is far larger.
    pub fn encode_into(&self, out: &mut [u8]) {
        let h = &mut out[..HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..12].copy_from_slice(&self.sensor_mode.to_le_bytes());
        h[12..16].copy_from_slice(&self.sequence.to_le_bytes());
        h[16..24].copy_from_slice(&self.center_of_exposure_ticks.to_le_bytes());
        h[24..32].copy_from_slice(&self.usb_sof_tick.to_le_bytes());
        h[32..36].copy_from_slice(&self.sensor_temp_c.to_le_bytes());
        h[36..40].copy_from_slice(&self.laser_temp_c[0].to_le_bytes());
        h[40..44].copy_from_slice(&self.laser_temp_c[1].to_le_bytes());
        h[44..46].copy_from_slice(&self.scene.wall_mm.to_le_bytes());
        h[46..48].copy_from_slice(&self.scene.box_mm.to_le_bytes());
        for (i, v) in self.scene.box_rect.iter().enumerate() {
            h[48 + 2 * i..50 + 2 * i].copy_from_slice(&v.to_le_bytes());
        }
        h[56..58].copy_from_slice(&self.scene.wall_ir.to_le_bytes());
        h[58..60].copy_from_slice(&self.scene.box_ir.to_le_bytes());
        h[60..64].fill(0);
    }

    /// Reads the header from the start of a raw frame.
    pub fn decode(bytes: &[u8]) -> Result<RawFrameHeader, RawFrameError> {
        if bytes.len() < HEADER_LEN {
            return Err(RawFrameError::Short(bytes.len()));
        }
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&bytes[0..8]);
        if magic != MAGIC {
            return Err(RawFrameError::BadMagic(magic));
        }
        let f32_at = |o| f32::from_bits(u32_at(bytes, o));
        Ok(RawFrameHeader {
            sensor_mode: u32_at(bytes, 8),
            sequence: u32_at(bytes, 12),
            center_of_exposure_ticks: u64_at(bytes, 16),
            usb_sof_tick: u64_at(bytes, 24),
            sensor_temp_c: f32_at(32),
            laser_temp_c: [f32_at(36), f32_at(40)],
            scene: Scene {
                wall_mm: u16_at(bytes, 44),
                box_mm: u16_at(bytes, 46),
                box_rect: [
                    u16_at(bytes, 48),
                    u16_at(bytes, 50),
                    u16_at(bytes, 52),
                    u16_at(bytes, 54),
                ],
                wall_ir: u16_at(bytes, 56),
                box_ir: u16_at(bytes, 58),
            },
        })
    }
}

/// Fills `frame` (a whole raw frame of the mode's exact size) with a header and filler.
pub fn fill_frame(header: &RawFrameHeader, frame: &mut [u8]) {
    header.encode_into(frame);
    let seed = header.sequence as u8;
    for (i, b) in frame[HEADER_LEN..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const LITERAL: [u8; 64] = [
        b'F', b'K', b'4', b'A', b'R', b'A', b'W', b'1',
        0x04, 0, 0, 0,                  // sensor mode 4
        0x07, 0, 0, 0,                  // sequence 7
        0x40, 0x42, 0x0F, 0, 0, 0, 0, 0, // centre of exposure 1 000 000 ticks
        0x01, 0, 0, 0, 0, 0, 0, 0,       // SoF tick 1
        0x00, 0x00, 0x20, 0x42,          // 40.0 °C
        0x00, 0x00, 0x10, 0x42,          // 36.0 °C
        0x00, 0x00, 0x14, 0x42,          // 37.0 °C
        0xD0, 0x07, 0xE8, 0x03,          // wall 2000 mm, box 1000 mm
        0x00, 0x40, 0x00, 0x40, 0x00, 0xC0, 0x00, 0xC0, // box rectangle
        0x2C, 0x01, 0x84, 0x03,          // IR 300 / 900
        0, 0, 0, 0,
    ];

    fn header() -> RawFrameHeader {
        RawFrameHeader {
            sensor_mode: 4,
            sequence: 7,
            center_of_exposure_ticks: 1_000_000,
            usb_sof_tick: 1,
            sensor_temp_c: 40.0,
            laser_temp_c: [36.0, 37.0],
            scene: Scene::default(),
        }
    }

    #[test]
    fn encodes_literal_bytes() {
        let mut out = [0u8; 64];
        header().encode_into(&mut out);
        assert_eq!(out, LITERAL);
    }

    #[test]
    fn decodes_literal_bytes() {
        assert_eq!(RawFrameHeader::decode(&LITERAL), Ok(header()));
    }

    #[test]
    fn rejects_short_and_foreign() {
        assert_eq!(
            RawFrameHeader::decode(&LITERAL[..10]),
            Err(RawFrameError::Short(10))
        );
        let mut bad = LITERAL;
        bad[0] = b'X';
        assert!(matches!(
            RawFrameHeader::decode(&bad),
            Err(RawFrameError::BadMagic(_))
        ));
    }

    #[rustfmt::skip]
    const CAL_LITERAL: [u8; 23] = [
        b'F', b'K', b'4', b'A', b'C', b'C', b'B', b'1',
        0x01, 0, 0, 0,                   // version 1
        0x03, 0, 0, 0,                   // payload length 3
        b'a', b'b', b'c',                // payload
        0x51, 0x06, 0x6A, 0x09,          // CRC-32 0x096A0651
    ];

    #[test]
    fn cal_block_literal_round_trip() {
        let block = encode_cal_block(b"abc");
        assert_eq!(block, CAL_LITERAL);
        assert_eq!(decode_cal_block(&CAL_LITERAL), Ok(&b"abc"[..]));
    }

    #[test]
    fn cal_block_rejects_damage() {
        let block = encode_cal_block(b"serial 000123");
        assert_eq!(decode_cal_block(&block[..5]), Err(CalBlockError::Short(5)));
        let mut bad = block.clone();
        bad[0] = b'X';
        assert!(matches!(
            decode_cal_block(&bad),
            Err(CalBlockError::BadMagic(_))
        ));
        let mut bad = block.clone();
        bad[8] = 2;
        assert_eq!(decode_cal_block(&bad), Err(CalBlockError::Version(2)));
        let mut bad = block.clone();
        bad[12] = 99;
        assert!(matches!(
            decode_cal_block(&bad),
            Err(CalBlockError::Length { .. })
        ));
        let mut bad = block.clone();
        bad[20] ^= 1;
        assert!(matches!(
            decode_cal_block(&bad),
            Err(CalBlockError::Crc { .. })
        ));
        assert!(matches!(
            decode_cal_block(&[7u8; 1000]),
            Err(CalBlockError::BadMagic(_))
        ));
    }

    #[test]
    fn engine_delay_word() {
        let mut frame = LITERAL;
        assert_eq!(engine_delay_ms(&frame), 0);
        set_engine_delay_ms(&mut frame, 250);
        assert_eq!(&frame[60..64], &[250, 0, 0, 0]);
        assert_eq!(engine_delay_ms(&frame), 250);
        assert_eq!(RawFrameHeader::decode(&frame), Ok(header()));
    }

    #[test]
    fn raw_sizes() {
        assert_eq!(raw_frame_size(4), Some(5_310_760));
        assert_eq!(raw_frame_size(7), Some(3_777_232));
        assert_eq!(raw_frame_size(5), Some(9_438_664));
        assert_eq!(raw_frame_size(3), Some(1_678_024));
        assert_eq!(raw_frame_size(6), None);
    }

    #[test]
    fn scene_geometry() {
        let s = Scene::default();
        assert_eq!(s.depth_mm(0, 0, 640, 576), 2000);
        assert_eq!(s.depth_mm(320, 288, 640, 576), 1000);
        assert_eq!(s.depth_mm(159, 288, 640, 576), 2000);
        assert_eq!(s.depth_mm(160, 288, 640, 576), 1000);
    }
}
