//! Cluster contents: blocks, lacing, and the IMU sample payload.

use std::io::{Read, Seek};

use crate::mkv::ids;
use crate::mkv::read::{read_vint, Children, ElementReader, Error as EbmlError};

use crate::mkv::k4a::ClusterEntry;

/// One frame of a block: a byte range inside the cluster's in-memory buffer, or (for large
/// video frames, read straight into the image) a range of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub start: u64,
    pub len: u32,
    /// `start` is a file offset and the bytes were not read yet.
    pub in_file: bool,
}

/// One block (SimpleBlock or BlockGroup's Block) of a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    pub track: u64,
    /// Cluster timestamp + relative timecode, in TimestampScale ticks.
    pub time_ticks: i64,
    /// BlockDuration in ticks (BlockGroup only).
    pub duration_ticks: Option<u64>,
    pub frames: Vec<Frame>,
}

/// A cluster's block index, with the small elements (IMU runs, short blocks) held in memory.
#[derive(Debug)]
pub(crate) struct ParsedCluster {
    pub data: Vec<u8>,
    pub blocks: Vec<Block>,
    /// The first problem met while walking the children (the blocks before it are kept).
    pub error: Option<EbmlError>,
}

impl ParsedCluster {
    /// The bytes of an in-memory frame (empty for a frame left in the file).
    pub fn frame(&self, f: Frame) -> &[u8] {
        if f.in_file {
            return &[];
        }
        &self.data[f.start as usize..f.start as usize + f.len as usize]
    }
}

/// Parses a whole cluster payload held in memory (`data` starts at file offset `base`).
#[cfg(test)]
pub(crate) fn parse_cluster(data: Vec<u8>, base: u64) -> ParsedCluster {
    let mut blocks = Vec::new();
    let mut ts = 0;
    let error = walk(&data, base, 0, &mut ts, &mut blocks);
    ParsedCluster {
        data,
        blocks,
        error,
    }
}

/// SimpleBlocks larger than this stay in the file until their image is built.
const IN_FILE_MIN_BYTES: u64 = 4096;

/// Indexes a cluster from the file: element headers are read one by one, large unlaced
/// SimpleBlocks of `video_tracks` are left in the file (read later straight into the image),
/// everything else is read into memory and parsed.
pub(crate) fn index_cluster<R: Read + Seek>(
    r: &mut ElementReader<R>,
    c: &ClusterEntry,
    video_tracks: &[u64],
) -> Result<ParsedCluster, EbmlError> {
    let mut data = Vec::new();
    let mut blocks = Vec::new();
    let mut ts = 0i64;
    let mut error = None;
    let mut pos = c.data_offset;
    while pos < c.end {
        let h = match r.header_at(pos) {
            Ok(h) => h,
            Err(e @ EbmlError::Io { .. }) => return Err(e),
            Err(EbmlError::Truncated { .. }) => {
                error = Some(EbmlError::Truncated {
                    element: "element header",
                    offset: pos,
                });
                break;
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        };
        let Some(end) = h.end().filter(|e| *e <= c.end) else {
            error = Some(EbmlError::Truncated {
                element: h.name(),
                offset: h.offset,
            });
            break;
        };
        let size = end - h.data_offset();
        if h.id == ids::SIMPLE_BLOCK && size > IN_FILE_MIN_BYTES {
            let mut head = [0u8; 12];
            let n = r.read_at(h.data_offset(), &mut head)?;
            if let Some(v) = read_vint(&head[..n]) {
                let flags = head.get(v.len + 2).copied().unwrap_or(0);
                if n >= v.len + 3 && video_tracks.contains(&v.value) && flags & 0x06 == 0 {
                    let hl = (v.len + 3) as u64;
                    blocks.push(Block {
                        track: v.value,
                        time_ticks: ts
                            + i64::from(i16::from_be_bytes([head[v.len], head[v.len + 1]])),
                        duration_ticks: None,
                        frames: vec![Frame {
                            start: h.data_offset() + hl,
                            len: (size - hl) as u32,
                            in_file: true,
                        }],
                    });
                    pos = end;
                    continue;
                }
            }
        }
        if matches!(h.id, ids::TIMESTAMP | ids::SIMPLE_BLOCK | ids::BLOCK_GROUP) {
            let len = end - h.offset;
            let bytes = r.bytes(
                h.offset,
                len,
                h.name(),
                h.offset,
                crate::mkv::read::MAX_READ_BYTES,
            )?;
            let off = data.len();
            data.extend_from_slice(&bytes);
            if let Some(e) = walk(&data[off..], h.offset, off, &mut ts, &mut blocks) {
                error = Some(e);
                break;
            }
        }
        pos = end;
    }
    Ok(ParsedCluster {
        data,
        blocks,
        error,
    })
}

/// Walks cluster children in `data` (file offset `file_base`, placed at `buf_base` in the
/// cluster buffer), appending blocks; returns the first problem.
fn walk(
    data: &[u8],
    file_base: u64,
    buf_base: usize,
    cluster_ts: &mut i64,
    blocks: &mut Vec<Block>,
) -> Option<EbmlError> {
    let kids = match Children::new(data, file_base, 2) {
        Ok(k) => k,
        Err(e) => return Some(e),
    };
    let at = |off: u64| buf_base + (off - file_base) as usize;
    for c in kids {
        let c = match c {
            Ok(c) => c,
            Err(e) => return Some(e),
        };
        match c.header.id {
            ids::TIMESTAMP => match c.uint() {
                Ok(v) => *cluster_ts = i64::try_from(v).unwrap_or(i64::MAX),
                Err(e) => return Some(e),
            },
            ids::SIMPLE_BLOCK => {
                match parse_block(c.data, at(c.header.data_offset()), *cluster_ts) {
                    Some(b) => blocks.push(b),
                    None => return Some(bad_block(c.header.id, c.header.offset)),
                }
            }
            ids::BLOCK_GROUP => {
                let mut block = None;
                let mut duration = None;
                let gkids = match c.children(2) {
                    Ok(k) => k,
                    Err(e) => return Some(e),
                };
                for g in gkids {
                    let Ok(g) = g else {
                        return Some(bad_block(c.header.id, c.header.offset));
                    };
                    match g.header.id {
                        ids::BLOCK => {
                            block = parse_block(g.data, at(g.header.data_offset()), *cluster_ts);
                            if block.is_none() {
                                return Some(bad_block(g.header.id, g.header.offset));
                            }
                        }
                        ids::BLOCK_DURATION => duration = g.uint().ok(),
                        _ => {}
                    }
                }
                if let Some(mut b) = block {
                    b.duration_ticks = duration;
                    blocks.push(b);
                }
            }
            _ => {}
        }
    }
    None
}

fn bad_block(id: u32, offset: u64) -> EbmlError {
    EbmlError::BadValue {
        element: crate::mkv::read::element_name(id),
        offset,
        reason: "malformed block header or lacing",
    }
}

/// Parses a Block/SimpleBlock payload that starts at `start` inside the cluster payload.
fn parse_block(p: &[u8], start: usize, cluster_ts: i64) -> Option<Block> {
    let tv = read_vint(p)?;
    let mut i = tv.len;
    if p.len() < i + 3 {
        return None;
    }
    let rel = i16::from_be_bytes([p[i], p[i + 1]]);
    let flags = p[i + 2];
    i += 3;
    let mut frames = Vec::new();
    let lacing = (flags >> 1) & 3;
    if lacing == 0 {
        frames.push(Frame {
            start: (start + i) as u64,
            len: (p.len() - i) as u32,
            in_file: false,
        });
    } else {
        let count = usize::from(*p.get(i)?) + 1;
        i += 1;
        let mut sizes: Vec<usize> = Vec::with_capacity(count);
        match lacing {
            1 => {
                // Xiph: each size is a run of 255s plus a final byte.
                for _ in 0..count - 1 {
                    let mut s = 0usize;
                    loop {
                        let b = *p.get(i)?;
                        i += 1;
                        s += usize::from(b);
                        if b != 255 {
                            break;
                        }
                    }
                    sizes.push(s);
                }
            }
            3 => {
                // EBML: first size unsigned, then signed differences.
                if count > 1 {
                    let v = read_vint(p.get(i..)?)?;
                    i += v.len;
                    let mut prev = v.value as i64;
                    sizes.push(usize::try_from(prev).ok()?);
                    for _ in 0..count - 2 {
                        let d = read_vint(p.get(i..)?)?;
                        i += d.len;
                        let bias = (1i64 << (7 * d.len - 1)) - 1;
                        prev = prev.checked_add(d.value as i64 - bias)?;
                        sizes.push(usize::try_from(prev).ok()?);
                    }
                }
            }
            _ => {
                // Fixed-size lacing.
                let rest = p.len() - i;
                if !rest.is_multiple_of(count) {
                    return None;
                }
                sizes = vec![rest / count; count - 1];
            }
        }
        let used: usize = sizes.iter().try_fold(0usize, |a, s| a.checked_add(*s))?;
        let last = (p.len() - i).checked_sub(used)?;
        sizes.push(last);
        for s in sizes {
            frames.push(Frame {
                start: (start + i) as u64,
                len: s as u32,
                in_file: false,
            });
            i += s;
        }
    }
    Some(Block {
        track: tv.value,
        time_ticks: cluster_ts + i64::from(rel),
        duration_ticks: None,
        frames,
    })
}

/// Size of one recorded IMU sample.
pub(crate) const IMU_SAMPLE_BYTES: usize = 40;

/// Decodes one 40-byte IMU sample (timestamps stay in nanoseconds).
pub(crate) fn decode_imu(b: &[u8]) -> Option<(u64, [f32; 3], u64, [f32; 3])> {
    if b.len() != IMU_SAMPLE_BYTES {
        return None;
    }
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let f_at = |o: usize| f32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    Some((
        u64_at(0),
        [f_at(8), f_at(12), f_at(16)],
        u64_at(20),
        [f_at(28), f_at(32), f_at(36)],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_block_and_laced_group() {
        // Cluster payload: Timestamp 5000, SimpleBlock track 1 tc 7, BlockGroup with 2 fixed-laced
        // frames of 2 bytes on track 4 and BlockDuration 3.
        let mut d = vec![0xE7, 0x82, 0x13, 0x88];
        d.extend([0xA3, 0x87, 0x81, 0x00, 0x07, 0x80, 0xAA, 0xBB, 0xCC]);
        d.extend([
            0xA0, 0x8E, 0xA1, 0x89, 0x84, 0x00, 0x00, 0x04, 0x01, 1, 2, 3, 4,
        ]);
        d.extend([0x9B, 0x81, 0x03]);
        let c = parse_cluster(d, 0);
        assert!(c.error.is_none(), "{:?}", c.error);
        assert_eq!(c.blocks.len(), 2);
        assert_eq!(c.blocks[0].track, 1);
        assert_eq!(c.blocks[0].time_ticks, 5007);
        assert_eq!(c.frame(c.blocks[0].frames[0]), &[0xAA, 0xBB, 0xCC]);
        assert_eq!(c.blocks[1].track, 4);
        assert_eq!(c.blocks[1].duration_ticks, Some(3));
        assert_eq!(c.blocks[1].frames.len(), 2);
        assert_eq!(c.frame(c.blocks[1].frames[1]), &[3, 4]);
    }

    #[test]
    fn xiph_and_ebml_lacing() {
        // Xiph: 3 frames of sizes 1, 2 and the rest (3).
        let x = [0x81, 0, 0, 0x02, 0x02, 1, 2, 9, 8, 8, 7, 7, 7];
        let b = parse_block(&x, 0, 0).unwrap();
        let lens: Vec<u32> = b.frames.iter().map(|f| f.len).collect();
        assert_eq!(lens, vec![1, 2, 3]);
        // EBML: 3 frames, first 2, then +1 (=3), rest 1.
        let e = [0x81, 0, 0, 0x06, 0x02, 0x82, 0xC0, 1, 1, 2, 2, 2, 3];
        let b = parse_block(&e, 0, 0).unwrap();
        let lens: Vec<u32> = b.frames.iter().map(|f| f.len).collect();
        assert_eq!(lens, vec![2, 3, 1]);
        // Fixed lacing whose payload does not divide evenly.
        assert!(parse_block(&[0x81, 0, 0, 0x04, 0x01, 1, 2, 3], 0, 0).is_none());
        // Xiph sizes running past the end.
        assert!(parse_block(&[0x81, 0, 0, 0x02, 0x01, 0xFF, 0xFF], 0, 0).is_none());
        assert!(parse_block(&[0x81, 0], 0, 0).is_none());
    }

    #[test]
    fn truncated_cluster_keeps_complete_blocks() {
        let mut d = vec![0xE7, 0x81, 0x00];
        d.extend([0xA3, 0x85, 0x81, 0x00, 0x01, 0x80, 0x11]);
        d.extend([0xA3, 0x90, 0x81, 0x00, 0x02]);
        let c = parse_cluster(d, 100);
        assert_eq!(c.blocks.len(), 1);
        assert!(matches!(
            c.error,
            Some(EbmlError::Truncated {
                element: "SimpleBlock",
                offset: 110
            })
        ));
    }

    #[test]
    fn imu_sample_bytes() {
        let mut b = 995_000_000u64.to_le_bytes().to_vec();
        for v in [0.1f32, 0.2, 9.8] {
            b.extend(v.to_le_bytes());
        }
        b.extend(995_000_001u64.to_le_bytes());
        for v in [0.01f32, 0.02, 0.03] {
            b.extend(v.to_le_bytes());
        }
        let (a, acc, g, gyro) = decode_imu(&b).unwrap();
        assert_eq!((a, g), (995_000_000, 995_000_001));
        assert_eq!(acc, [0.1, 0.2, 9.8]);
        assert_eq!(gyro, [0.01, 0.02, 0.03]);
        assert!(decode_imu(&b[..39]).is_none());
    }
}
