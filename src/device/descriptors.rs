//! USB descriptors of the Azure Kinect functions as far as the host needs them (UVC format
//! and frame descriptors, the streaming endpoint's SuperSpeed companion, the BOS Container
//! ID, string descriptors). Builders for the emulator and parsers for the device layer; no I/O.
//! (These belong with the protocol module's descriptor builders once it has them.)

use std::fmt;

/// Why descriptor bytes are malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
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

pub(crate) fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
pub(crate) fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
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
const GUID_SUFFIX: [u8; 12] = [
    0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

/// Builds the class-specific VS descriptors for `frames` (grouped by format, in order).
pub fn build_vs_descriptors(frames: &[UvcFrameDesc]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < frames.len() {
        let f = &frames[i];
        let n = frames[i..]
            .iter()
            .take_while(|x| x.format_index == f.format_index)
            .count();
        match f.format {
            UvcFormat::Mjpeg => {
                out.extend_from_slice(&[11, 0x24, 0x06, f.format_index, n as u8, 1, 1, 0, 0, 0, 0])
            }
            UvcFormat::Nv12 | UvcFormat::Yuy2 => {
                let (tag, bpp) = if f.format == UvcFormat::Nv12 {
                    (*b"NV12", 12)
                } else {
                    (*b"YUY2", 16)
                };
                out.extend_from_slice(&[27, 0x24, 0x04, f.format_index, n as u8]);
                out.extend_from_slice(&tag);
                out.extend_from_slice(&GUID_SUFFIX);
                out.extend_from_slice(&[bpp, 1, 0, 0, 0, 0]);
            }
        }
        for fr in &frames[i..i + n] {
            let sub = if fr.format == UvcFormat::Mjpeg {
                0x07
            } else {
                0x05
            };
            let len = 26 + 4 * fr.intervals_100ns.len();
            out.extend_from_slice(&[len as u8, 0x24, sub, fr.frame_index, 0]);
            out.extend_from_slice(&fr.width.to_le_bytes());
            out.extend_from_slice(&fr.height.to_le_bytes());
            let rate = fr.max_frame_size.saturating_mul(8 * 30);
            out.extend_from_slice(&rate.to_le_bytes());
            out.extend_from_slice(&rate.to_le_bytes());
            out.extend_from_slice(&fr.max_frame_size.to_le_bytes());
            out.extend_from_slice(
                &fr.intervals_100ns
                    .first()
                    .copied()
                    .unwrap_or(333_333)
                    .to_le_bytes(),
            );
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
            return Err(WireError::Invalid {
                what: "configuration descriptor",
                field: "bLength",
                value: len as u64,
            });
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
                    let intervals = (0..n)
                        .filter(|k| 26 + 4 * k + 4 <= len)
                        .map(|k| u32_at(d, 26 + 4 * k))
                        .collect();
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
    let units: Vec<u16> = b[2..len]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
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
    fn vs_descriptors_round_trip() {
        let frames = vec![
            UvcFrameDesc {
                format: UvcFormat::Mjpeg,
                format_index: 1,
                frame_index: 1,
                width: 1280,
                height: 720,
                intervals_100ns: vec![333_333, 666_666],
                max_frame_size: 100,
            },
            UvcFrameDesc {
                format: UvcFormat::Nv12,
                format_index: 2,
                frame_index: 1,
                width: 1280,
                height: 720,
                intervals_100ns: vec![2_000_000],
                max_frame_size: 1_382_400,
            },
        ];
        let mut cfg = build_vs_descriptors(&frames);
        cfg.extend_from_slice(&[7, 5, 0x81, 0x05, 0, 4, 1, 6, 0x30, 15, 2, 0x00, 0xC0]);
        assert_eq!(&cfg[..11], &[11, 0x24, 0x06, 1, 1, 1, 1, 0, 0, 0, 0]);
        let (parsed, bpi) = parse_vs_descriptors(&cfg).unwrap();
        assert_eq!(parsed, frames);
        assert_eq!(bpi, 49_152);
    }

    #[test]
    fn container_id_and_strings() {
        let mut bos = vec![5, 0x0F, 25, 0, 1, 20, 0x10, 0x04, 0];
        bos.extend(0u8..16);
        assert_eq!(
            parse_container_id(&bos),
            Some(core::array::from_fn(|i| i as u8))
        );
        assert_eq!(
            parse_string_descriptor(&[6, 3, b'4', 0, b'2', 0]).as_deref(),
            Some("42")
        );
        assert_eq!(
            ContainerIdDisplay(&core::array::from_fn(|i| i as u8)).to_string(),
            "{03020100-0504-0706-0908-0a0b0c0d0e0f}"
        );
    }
}
