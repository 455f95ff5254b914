//! Open-time scan: the Segment's top-level elements, parsed headers (Info, Tracks, Tags,
//! Attachments), and an index of every cluster, rebuilt by walking and resynchronising on
//! Cluster ids rather than trusting SeekHead or Cues.

use std::io::{Read, Seek};

use serde::Serialize;

use crate::mkv::ids;
use crate::mkv::read::{
    read_ebml_header, Children, ElementHeader, ElementReader, Error as EbmlError,
};

use super::{Attachment, Diagnostic, Tag, TagTarget, Track, TrackKind};

/// Largest header element (Tracks, Tags, Attachments...) read into memory.
const MAX_HEADER_ELEMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Why a file could not be scanned at all.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScanError {
    /// An EBML-level failure (not Matroska, wrong DocType, I/O...).
    #[error(transparent)]
    Ebml(#[from] EbmlError),
    /// No Segment element after the EBML header.
    #[error("no Segment element after the EBML header")]
    NoSegment,
}

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

/// Scans a whole file: EBML header, Segment, then every top-level element to the end of the
/// file (a stale or unknown Segment size does not stop it).
pub(crate) fn scan<R: Read + Seek>(r: &mut ElementReader<R>) -> Result<Layout, ScanError> {
    let ebml = read_ebml_header(r)?;
    let seg = find_segment(r, ebml.end)?;
    let mut s = Scanner {
        file_len: r.file_len(),
        seg_end: 0,
        r,
        lay: Layout {
            segment_offset: seg.offset,
            ..Layout::default()
        },
    };
    s.seg_end = s.segment_end(&seg);
    let mut pos = Some(seg.data_offset());
    while let Some(p) = pos.filter(|p| *p < s.file_len) {
        pos = s.step(p)?;
    }
    Ok(s.lay)
}

/// The Segment: it should follow the EBML header directly; a few Voids before it are tolerated.
fn find_segment<R: Read + Seek>(
    r: &mut ElementReader<R>,
    mut pos: u64,
) -> Result<ElementHeader, ScanError> {
    loop {
        let h = match r.header_at(pos) {
            Ok(h) => h,
            Err(EbmlError::Truncated { .. }) | Err(EbmlError::BadHeader { .. }) => {
                return Err(ScanError::NoSegment)
            }
            Err(e) => return Err(e.into()),
        };
        if h.id == ids::SEGMENT {
            return Ok(h);
        }
        pos = h.end().ok_or(ScanError::NoSegment)?;
    }
}

/// The walk over the Segment's children.
struct Scanner<'r, R> {
    r: &'r mut ElementReader<R>,
    lay: Layout,
    file_len: u64,
    /// Where the Segment size says the Segment ends (the file's end when it cannot say).
    seg_end: u64,
}

impl<R: Read + Seek> Scanner<'_, R> {
    fn diag(&mut self, d: Diagnostic) {
        self.lay.diagnostics.push(d);
    }

    fn segment_end(&mut self, seg: &ElementHeader) -> u64 {
        let file_len = self.file_len;
        match seg.size {
            Some(0) => {
                self.diag(Diagnostic::SegmentSizeZero);
                file_len
            }
            None => {
                self.diag(Diagnostic::SegmentSizeUnknown);
                file_len
            }
            Some(s) if seg.data_offset().saturating_add(s) > file_len => {
                self.diag(Diagnostic::SegmentSizeTooLarge {
                    declared_bytes: s,
                    available_bytes: file_len - seg.data_offset(),
                });
                file_len
            }
            Some(s) => seg.data_offset() + s,
        }
    }

    /// Handles the element at `pos`; returns where the next one starts, `None` to stop.
    fn step(&mut self, pos: u64) -> Result<Option<u64>, ScanError> {
        let past_end = pos >= self.seg_end;
        let h = match self.r.header_at(pos) {
            Ok(h) => h,
            Err(e) => return self.bad_header(e, pos, past_end),
        };
        if past_end && !self.follow_past_end(&h) {
            return Ok(None);
        }
        if !is_segment_child(h.id) {
            return self.resync(pos);
        }
        // An unknown size only makes sense for a Cluster; elsewhere it is damage.
        let end = match h.end() {
            Some(e) => e,
            None if h.id == ids::CLUSTER => self
                .r
                .find_id(h.data_offset(), ids::CLUSTER)?
                .unwrap_or(self.file_len),
            None => {
                self.diag(Diagnostic::BadElement {
                    element: h.name().into(),
                    offset: h.offset,
                    reason: "unknown size".into(),
                });
                return self.resync(pos);
            }
        };
        let avail_end = end.min(self.file_len);
        self.lay
            .elements
            .push((h.id, h.offset, avail_end - h.offset));
        if h.id == ids::CLUSTER {
            return Ok(self.cluster(&h, end));
        }
        if end > self.file_len {
            self.diag(Diagnostic::Truncated {
                element: h.name().into(),
                offset: h.offset,
            });
            // A cut or oversized header element: look for clusters after it.
            return Ok(self.r.find_id(h.offset + 1, ids::CLUSTER)?);
        }
        self.header_element(&h);
        Ok(Some(end))
    }

    /// An unreadable element header at `pos`.
    fn bad_header(
        &mut self,
        e: EbmlError,
        pos: u64,
        past_end: bool,
    ) -> Result<Option<u64>, ScanError> {
        match e {
            EbmlError::BadHeader { .. } | EbmlError::Truncated { .. } if past_end => {
                self.diag(Diagnostic::TrailingData {
                    offset: pos,
                    bytes: self.file_len - pos,
                });
                Ok(None)
            }
            EbmlError::Truncated { .. } => {
                self.diag(Diagnostic::Truncated {
                    element: "element header".into(),
                    offset: pos,
                });
                Ok(None)
            }
            EbmlError::BadHeader { .. } => self.resync(pos),
            e => Err(e.into()),
        }
    }

    /// Past the Segment's declared end (a stale size: flushed, then more written) only
    /// clusters are followed; false when the walk should stop.
    fn follow_past_end(&mut self, h: &ElementHeader) -> bool {
        if h.id != ids::CLUSTER {
            self.diag(Diagnostic::TrailingData {
                offset: h.offset,
                bytes: self.file_len - h.offset,
            });
            return false;
        }
        if !self
            .lay
            .diagnostics
            .iter()
            .any(|d| matches!(d, Diagnostic::DataAfterSegment { .. }))
        {
            self.diag(Diagnostic::DataAfterSegment { offset: h.offset });
        }
        true
    }

    /// Indexes a cluster ending at `end` (possibly past the file's end); `None` after a cut one.
    fn cluster(&mut self, h: &ElementHeader, end: u64) -> Option<u64> {
        let avail_end = end.min(self.file_len);
        let complete = end <= self.file_len;
        let ts = cluster_timestamp(self.r, h, avail_end).unwrap_or(0);
        self.lay.clusters.push(ClusterEntry {
            offset: h.offset,
            data_offset: h.data_offset(),
            end: avail_end,
            timestamp_ticks: ts,
            complete,
        });
        if complete {
            return Some(end);
        }
        self.diag(Diagnostic::PartialCluster {
            offset: h.offset,
            missing_bytes: end - self.file_len,
        });
        None
    }

    /// Records a complete non-cluster element; Info, Tracks, Tags and Attachments are parsed.
    fn header_element(&mut self, h: &ElementHeader) {
        match h.id {
            ids::SEEK_HEAD => self.lay.has_seek_head = true,
            ids::CUES => self.lay.has_cues = true,
            ids::INFO | ids::TRACKS | ids::TAGS | ids::ATTACHMENTS => {
                let parsed = self
                    .r
                    .payload(h, MAX_HEADER_ELEMENT_BYTES)
                    .and_then(|data| parse_header_element(&mut self.lay, h, &data));
                if let Err(e) = parsed {
                    self.diag(Diagnostic::BadElement {
                        element: h.name().into(),
                        offset: h.offset,
                        reason: e.to_string(),
                    });
                }
            }
            _ => {}
        }
    }

    /// Skips damaged bytes at `pos` to the next Cluster id; `None` when there is none.
    fn resync(&mut self, pos: u64) -> Result<Option<u64>, ScanError> {
        match self.r.find_id(pos + 1, ids::CLUSTER)? {
            Some(next) => {
                self.diag(Diagnostic::Junk {
                    offset: pos,
                    bytes: next - pos,
                });
                Ok(Some(next))
            }
            None => {
                self.diag(Diagnostic::TrailingData {
                    offset: pos,
                    bytes: self.file_len - pos,
                });
                Ok(None)
            }
        }
    }
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

/// Parses a complete Info, Tracks, Tags or Attachments payload into the layout.
fn parse_header_element(lay: &mut Layout, h: &ElementHeader, data: &[u8]) -> Result<(), EbmlError> {
    let kids = Children::new(data, h.data_offset(), 1)?;
    match h.id {
        ids::INFO => lay.info = Some(parse_info(kids)?),
        ids::TRACKS => {
            lay.tracks_found = true;
            parse_tracks(kids, &mut lay.tracks)?;
        }
        ids::TAGS => {
            lay.tags_found = true;
            parse_tags(kids, &mut lay.tags)?;
        }
        ids::ATTACHMENTS => parse_attachments(kids, &mut lay.attachments)?,
        _ => {}
    }
    Ok(())
}

fn parse_info(kids: Children<'_>) -> Result<InfoFields, EbmlError> {
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
    Ok(info)
}

fn parse_tracks(kids: Children<'_>, tracks: &mut Vec<Track>) -> Result<(), EbmlError> {
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
        tracks.push(t);
    }
    Ok(())
}

fn parse_tags(kids: Children<'_>, tags: &mut Vec<Tag>) -> Result<(), EbmlError> {
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
        let target = TagTarget::from_uids(track_uid, attachment_uid);
        for (name, value) in simple {
            tags.push(Tag {
                name,
                value,
                target,
                target_type: target_type.clone(),
            });
        }
    }
    Ok(())
}

fn parse_attachments(kids: Children<'_>, files: &mut Vec<Attachment>) -> Result<(), EbmlError> {
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
        files.push(a);
    }
    Ok(())
}

/// Gives each track its role the way the SDK does: by `K4A_<X>_TRACK` tag, else by name.
pub(crate) fn assign_tracks(lay: &mut Layout, diags: &mut Vec<Diagnostic>) {
    for kind in TrackKind::ALL {
        let tag = kind.track_tag();
        let mut idx = None;
        if let Some(t) = lay.tags.iter().find(|t| t.name == tag) {
            let uid = match t.target {
                TagTarget::Track(u) if t.target_type == "TRACK" => Some(u),
                _ => t.value.trim().parse::<u64>().ok(),
            };
            idx = uid.and_then(|u| lay.tracks.iter().position(|tr| tr.uid == u));
            if idx.is_none() {
                diags.push(Diagnostic::Config {
                    message: format!("track tag {tag} does not name a track"),
                });
            }
        }
        if idx.is_none() {
            idx = lay.tracks.iter().position(|tr| {
                kind.accepted_names().contains(&tr.name.as_str()) && tr.kind.is_none()
            });
        }
        if let Some(i) = idx {
            if kind != TrackKind::Imu && lay.tracks[i].track_type != 1 {
                diags.push(Diagnostic::Config {
                    message: format!("{} track is not a video track; ignored", lay.tracks[i].name),
                });
                continue;
            }
            lay.tracks[i].kind = Some(kind);
        }
    }
}
