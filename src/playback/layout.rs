//! Open-time scan: the Segment's top-level elements, parsed headers (Info, Tracks, Tags,
//! Attachments), and an index of every cluster, rebuilt by walking and resynchronising on
//! Cluster ids rather than trusting SeekHead or Cues.

use std::io::{Read, Seek};

use serde::Serialize;

use crate::mkv::ids;
use crate::mkv::read::{
    read_ebml_header, Children, ElementHeader, ElementReader, Error as EbmlError,
};

use super::{Attachment, Diagnostic, Error, Tag, TagTarget, Track};

/// Largest header element (Tracks, Tags, Attachments...) read into memory.
const MAX_HEADER_ELEMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Where one cluster lies in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterEntry {
    /// File offset of the Cluster id.
    pub offset: u64,
    /// File offset of the payload.
    pub data_offset: u64,
    /// File offset just past the readable payload.
    pub end: u64,
    /// Cluster Timestamp in TimestampScale ticks (0 if unreadable).
    pub timestamp_ticks: u64,
    /// Whether the whole element is present in the file.
    pub complete: bool,
}

/// What the open-time scan found.
#[derive(Debug, Default)]
pub(crate) struct Layout {
    pub segment_offset: u64,
    pub segment_data_offset: u64,
    pub has_seek_head: bool,
    pub has_cues: bool,
    pub info: Option<InfoFields>,
    pub tracks: Vec<Track>,
    pub tracks_found: bool,
    pub tags: Vec<Tag>,
    pub tags_found: bool,
    pub attachments: Vec<Attachment>,
    pub clusters: Vec<ClusterEntry>,
    /// Top-level elements in file order: (id, offset, total length available).
    pub elements: Vec<(u32, u64, u64)>,
    pub diagnostics: Vec<Diagnostic>,
}

/// The Info fields a reader uses.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct InfoFields {
    pub timestamp_scale_ns: Option<u64>,
    pub duration_ticks: Option<f64>,
    pub muxing_app: Option<String>,
    pub writing_app: Option<String>,
    pub title: Option<String>,
    pub date_utc_ns: Option<i64>,
}

pub(crate) fn scan<R: Read + Seek>(r: &mut ElementReader<R>) -> Result<Layout, Error> {
    let ebml = read_ebml_header(r)?;
    let mut lay = Layout::default();
    let file_len = r.file_len();
    // The Segment should follow the header directly; tolerate a few Voids before it.
    let mut pos = ebml.end;
    let seg = loop {
        let h = match r.header_at(pos) {
            Ok(h) => h,
            Err(EbmlError::Truncated { .. }) | Err(EbmlError::BadHeader { .. }) => {
                return Err(Error::NoSegment)
            }
            Err(e) => return Err(e.into()),
        };
        if h.id == ids::SEGMENT {
            break h;
        }
        pos = h.end().ok_or(Error::NoSegment)?;
    };
    lay.segment_offset = seg.offset;
    lay.segment_data_offset = seg.data_offset();
    let seg_end = match seg.size {
        Some(0) => {
            lay.diagnostics.push(Diagnostic::SegmentSizeZero);
            file_len
        }
        None => {
            lay.diagnostics.push(Diagnostic::SegmentSizeUnknown);
            file_len
        }
        Some(s) if seg.data_offset().saturating_add(s) > file_len => {
            lay.diagnostics.push(Diagnostic::SegmentSizeTooLarge {
                declared_bytes: s,
                available_bytes: file_len - seg.data_offset(),
            });
            file_len
        }
        Some(s) => seg.data_offset() + s,
    };

    let mut pos = seg.data_offset();
    while pos < file_len {
        let past_end = pos >= seg_end;
        let h = match r.header_at(pos) {
            Ok(h) => h,
            Err(EbmlError::BadHeader { .. }) | Err(EbmlError::Truncated { .. }) if past_end => {
                lay.diagnostics.push(Diagnostic::TrailingData {
                    offset: pos,
                    bytes: file_len - pos,
                });
                break;
            }
            Err(EbmlError::Truncated { .. }) => {
                lay.diagnostics.push(Diagnostic::Truncated {
                    element: "element header".into(),
                    offset: pos,
                });
                break;
            }
            Err(EbmlError::BadHeader { .. }) => {
                if !resync(r, &mut lay, &mut pos)? {
                    break;
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if past_end {
            // Stale Segment size (flushed, then more written): follow clusters beyond it.
            if h.id != ids::CLUSTER {
                lay.diagnostics.push(Diagnostic::TrailingData {
                    offset: pos,
                    bytes: file_len - pos,
                });
                break;
            }
            if lay
                .diagnostics
                .iter()
                .all(|d| !matches!(d, Diagnostic::DataAfterSegment { .. }))
            {
                lay.diagnostics
                    .push(Diagnostic::DataAfterSegment { offset: pos });
            }
        }
        if !is_segment_child(h.id) {
            if !resync(r, &mut lay, &mut pos)? {
                break;
            }
            continue;
        }
        // An unknown size only makes sense for a Cluster; elsewhere it is damage.
        let end = match h.end() {
            Some(e) => e,
            None if h.id == ids::CLUSTER => {
                let next = r.find_id(h.data_offset(), ids::CLUSTER)?;
                next.unwrap_or(file_len)
            }
            None => {
                lay.diagnostics.push(Diagnostic::BadElement {
                    element: h.name().into(),
                    offset: h.offset,
                    reason: "unknown size".into(),
                });
                if !resync(r, &mut lay, &mut pos)? {
                    break;
                }
                continue;
            }
        };
        let complete = end <= file_len;
        let avail_end = end.min(file_len);
        lay.elements.push((h.id, h.offset, avail_end - h.offset));
        if h.id == ids::CLUSTER {
            let ts = cluster_timestamp(r, &h, avail_end).unwrap_or(0);
            lay.clusters.push(ClusterEntry {
                offset: h.offset,
                data_offset: h.data_offset(),
                end: avail_end,
                timestamp_ticks: ts,
                complete,
            });
            if !complete {
                lay.diagnostics.push(Diagnostic::PartialCluster {
                    offset: h.offset,
                    missing_bytes: end - file_len,
                });
                break;
            }
            pos = end;
            continue;
        }
        if !complete {
            lay.diagnostics.push(Diagnostic::Truncated {
                element: h.name().into(),
                offset: h.offset,
            });
            // A cut or oversized header element: look for clusters after it.
            pos = match r.find_id(h.offset + 1, ids::CLUSTER)? {
                Some(p) => p,
                None => break,
            };
            continue;
        }
        match h.id {
            ids::SEEK_HEAD => lay.has_seek_head = true,
            ids::CUES => lay.has_cues = true,
            ids::INFO | ids::TRACKS | ids::TAGS | ids::ATTACHMENTS => {
                match r.payload(&h, MAX_HEADER_ELEMENT_BYTES) {
                    Ok(data) => {
                        if let Err(e) = parse_header_element(&mut lay, &h, &data) {
                            lay.diagnostics.push(Diagnostic::BadElement {
                                element: h.name().into(),
                                offset: h.offset,
                                reason: e.to_string(),
                            });
                        }
                    }
                    Err(e) => lay.diagnostics.push(Diagnostic::BadElement {
                        element: h.name().into(),
                        offset: h.offset,
                        reason: e.to_string(),
                    }),
                }
            }
            _ => {}
        }
        pos = end;
    }
    Ok(lay)
}

/// Ids that may appear directly inside a Segment.
fn is_segment_child(id: u32) -> bool {
    const CHAPTERS: u32 = 0x1043A770;
    matches!(
        id,
        ids::SEEK_HEAD
            | ids::INFO
            | ids::TRACKS
            | ids::TAGS
            | ids::ATTACHMENTS
            | ids::CUES
            | ids::CLUSTER
            | ids::VOID
            | ids::CRC32
            | CHAPTERS
    )
}

/// Skips damaged bytes at `*pos` to the next Cluster id; false when there is none.
fn resync<R: Read + Seek>(
    r: &mut ElementReader<R>,
    lay: &mut Layout,
    pos: &mut u64,
) -> Result<bool, Error> {
    match r.find_id(*pos + 1, ids::CLUSTER)? {
        Some(next) => {
            lay.diagnostics.push(Diagnostic::Junk {
                offset: *pos,
                bytes: next - *pos,
            });
            *pos = next;
            Ok(true)
        }
        None => {
            lay.diagnostics.push(Diagnostic::TrailingData {
                offset: *pos,
                bytes: r.file_len() - *pos,
            });
            Ok(false)
        }
    }
}

/// Reads the cluster's Timestamp (written before any block).
fn cluster_timestamp<R: Read + Seek>(
    r: &mut ElementReader<R>,
    h: &ElementHeader,
    avail_end: u64,
) -> Option<u64> {
    let mut buf = [0u8; 32];
    let want = (avail_end - h.data_offset()).min(32) as usize;
    let n = r.read_at(h.data_offset(), &mut buf[..want]).ok()?;
    for c in Children::new(&buf[..n], h.data_offset(), 2).ok()? {
        let c = c.ok()?;
        match c.header.id {
            ids::TIMESTAMP => return c.uint().ok(),
            ids::CRC32 | ids::VOID => {}
            _ => return None,
        }
    }
    None
}

fn parse_header_element(lay: &mut Layout, h: &ElementHeader, data: &[u8]) -> Result<(), EbmlError> {
    let kids = Children::new(data, h.data_offset(), 1)?;
    match h.id {
        ids::INFO => {
            let mut info = InfoFields::default();
            for c in kids {
                let c = c?;
                match c.header.id {
                    ids::TIMESTAMP_SCALE => info.timestamp_scale_ns = Some(c.uint()?),
                    ids::DURATION => info.duration_ticks = Some(c.float()?),
                    ids::MUXING_APP => info.muxing_app = Some(c.string()?),
                    ids::WRITING_APP => info.writing_app = Some(c.string()?),
                    ids::TITLE => info.title = Some(c.string()?),
                    ids::DATE_UTC => info.date_utc_ns = Some(c.int()?),
                    _ => {}
                }
            }
            lay.info = Some(info);
        }
        ids::TRACKS => {
            lay.tracks_found = true;
            for c in kids {
                let c = c?;
                if c.header.id != ids::TRACK_ENTRY {
                    continue;
                }
                let mut t = Track::default();
                for f in c.children(1)? {
                    let f = f?;
                    match f.header.id {
                        ids::TRACK_NUMBER => t.number = f.uint()?,
                        ids::TRACK_UID => t.uid = f.uint()?,
                        ids::TRACK_TYPE => t.track_type = f.uint()?,
                        ids::NAME => t.name = f.string()?,
                        ids::CODEC_ID => t.codec_id = f.string()?,
                        ids::CODEC_PRIVATE => t.codec_private = f.data.to_vec(),
                        ids::DEFAULT_DURATION => t.default_duration_ns = Some(f.uint()?),
                        ids::VIDEO => {
                            for v in f.children(2)? {
                                let v = v?;
                                match v.header.id {
                                    ids::PIXEL_WIDTH => t.width = Some(v.uint()? as u32),
                                    ids::PIXEL_HEIGHT => t.height = Some(v.uint()? as u32),
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
                lay.tracks.push(t);
            }
        }
        ids::TAGS => {
            lay.tags_found = true;
            for c in kids {
                let c = c?;
                if c.header.id != ids::TAG {
                    continue;
                }
                let mut target_type = String::new();
                let mut track_uid = None;
                let mut attachment_uid = None;
                let mut simple = Vec::new();
                for f in c.children(1)? {
                    let f = f?;
                    match f.header.id {
                        ids::TARGETS => {
                            for t in f.children(2)? {
                                let t = t?;
                                match t.header.id {
                                    ids::TARGET_TYPE => target_type = t.string()?,
                                    ids::TAG_TRACK_UID => track_uid = Some(t.uint()?),
                                    ids::TAG_ATTACHMENT_UID => attachment_uid = Some(t.uint()?),
                                    _ => {}
                                }
                            }
                        }
                        ids::SIMPLE_TAG => {
                            let mut name = String::new();
                            let mut value = String::new();
                            for s in f.children(2)? {
                                let s = s?;
                                match s.header.id {
                                    ids::TAG_NAME => name = s.string()?,
                                    ids::TAG_STRING => value = s.string()?,
                                    _ => {}
                                }
                            }
                            simple.push((name, value));
                        }
                        _ => {}
                    }
                }
                let target = match (track_uid, attachment_uid) {
                    (Some(u), _) if u != 0 => TagTarget::Track(u),
                    (_, Some(u)) if u != 0 => TagTarget::Attachment(u),
                    _ => TagTarget::Global,
                };
                for (name, value) in simple {
                    lay.tags.push(Tag {
                        name,
                        value,
                        target,
                        target_type: target_type.clone(),
                    });
                }
            }
        }
        ids::ATTACHMENTS => {
            for c in kids {
                let c = c?;
                if c.header.id != ids::ATTACHED_FILE {
                    continue;
                }
                let mut a = Attachment::default();
                for f in c.children(1)? {
                    let f = f?;
                    match f.header.id {
                        ids::FILE_NAME => a.file_name = f.string()?,
                        ids::FILE_MIME_TYPE => a.mime_type = f.string()?,
                        ids::FILE_DATA => a.data = f.data.to_vec(),
                        ids::FILE_UID => a.uid = f.uint()?,
                        ids::FILE_DESCRIPTION => a.description = Some(f.string()?),
                        _ => {}
                    }
                }
                lay.attachments.push(a);
            }
        }
        _ => {}
    }
    Ok(())
}
