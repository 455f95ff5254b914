//! Repair of unclosed or truncated recordings: keeps every complete cluster and rebuilds what a
//! closed file has (SeekHead, Info with Duration, Tags with `K4A_START_OFFSET_NS`, Cues, the
//! Segment size), so that Microsoft's playback opens the result.
//!
//! The output uses the SDK's layout: EBML header, Segment with an 8-byte size, a 1027-byte
//! SeekHead region, a 259-byte Info region, then Tracks, Attachments and Tags copied or
//! re-rendered, the clusters copied byte for byte, and Cues.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::mkv::ids;
use crate::mkv::read::MAX_READ_BYTES;
use crate::protocol::calibration::Calibration;
use crate::safe_output::{Inputs, OutputError, PendingFile};

use super::{ClusterEntry, Diagnostic, Error, Playback, Tag, TagTarget};

/// What [`repair`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    /// Clusters copied to the output.
    pub clusters_kept: usize,
    /// Clusters left out (cut short).
    pub clusters_dropped: usize,
    /// Captures the repaired file yields.
    pub captures_kept: usize,
    /// IMU samples the repaired file yields.
    pub imu_samples_kept: usize,
    /// Size of the input.
    pub bytes_in: u64,
    /// Size of the output.
    pub bytes_out: u64,
    /// Input bytes whose data is not in the output (partial clusters, junk).
    pub bytes_dropped: u64,
    /// What was rebuilt, in words (one entry per fix).
    pub fixes: Vec<String>,
    /// What the reader reported about the input.
    pub input_diagnostics: Vec<String>,
    /// The input was already a complete, undamaged recording: the output is an equivalent
    /// copy.
    pub nothing_to_fix: bool,
}

/// Bytes the SDK reserves for the SeekHead and for Info.
const SEEK_HEAD_REGION: usize = 1027;
const INFO_REGION: usize = 259;

/// Why a repair was refused or failed. No case leaves anything at the output path.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// The input could not be opened (the error names it).
    #[error(transparent)]
    Open(Error),
    /// The input could not be read at all.
    #[error("{path}: {source}")]
    Read {
        /// The input.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: Error,
    },
    /// The input is Matroska but has no Azure Kinect track.
    #[error("{path} is not an Azure Kinect recording (no COLOR, DEPTH, IR or IMU track); nothing to repair")]
    NotK4a {
        /// The input.
        path: PathBuf,
    },
    /// The calibration attachment does not parse and no replacement was given.
    #[error("{path}: the calibration attachment is damaged ({reason}); repair cannot rebuild it, pass --calibration FILE with this unit's calibration.json (from another recording of the unit, or `freek4a extract`)")]
    BadCalibration {
        /// The input.
        path: PathBuf,
        /// The parse error.
        reason: String,
    },
    /// The replacement calibration file could not be used.
    #[error("calibration file {path}: {reason}")]
    CalibrationFile {
        /// The file given with `--calibration`.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// The output could not be written.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// Writing the repaired data failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The output.
        path: PathBuf,
        /// The error.
        #[source]
        source: Error,
    },
    /// The repaired file did not read back (nothing was installed at the output path).
    #[error("the repaired file did not read back: {source}")]
    Verify {
        /// The reader's error on the result.
        #[source]
        source: Error,
    },
}

/// How to repair.
#[derive(Clone, Debug, Default)]
pub struct RepairOptions {
    /// Replace an existing output file (never the input).
    pub overwrite: bool,
    /// A calibration JSON to store instead of the recording's own (required when the recorded
    /// one does not parse).
    pub calibration: Option<PathBuf>,
}

/// Repairs `input` into `output`, replacing an existing `output` (but never the input).
pub fn repair(
    input: impl AsRef<Path>,
    output: impl AsRef<Path>,
) -> Result<RepairReport, RepairError> {
    repair_with(
        input.as_ref(),
        output.as_ref(),
        &RepairOptions {
            overwrite: true,
            calibration: None,
        },
    )
}

/// The standard EBML header of a K4A recording (DocType matroska, version 2), 40 bytes.
const K4A_EBML_HEADER: [u8; 40] = [
    0x1A, 0x45, 0xDF, 0xA3, 0xA3, 0x42, 0x86, 0x81, 0x01, 0x42, 0xF7, 0x81, 0x01, 0x42, 0xF2, 0x81,
    0x04, 0x42, 0xF3, 0x81, 0x08, 0x42, 0x82, 0x88, b'm', b'a', b't', b'r', b'o', b's', b'k', b'a',
    0x42, 0x87, 0x81, 0x02, 0x42, 0x85, 0x81, 0x02,
];

/// A file whose first bytes are replaced in memory (a rebuilt EBML header).
struct HeadOverlay {
    file: File,
    head: Vec<u8>,
    pos: u64,
}

impl Read for HeadOverlay {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(rest) = self.head.get(self.pos as usize..).filter(|r| !r.is_empty()) {
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.pos += n as u64;
            return Ok(n);
        }
        self.file.seek(SeekFrom::Start(self.pos))?;
        let n = self.file.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for HeadOverlay {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = self.file.seek(to)?;
        Ok(self.pos)
    }
}

/// For a file whose EBML header was wiped (zeros, Segment intact right after): the bytes to
/// put in its place.
fn rebuilt_ebml_header(path: &Path) -> Option<Vec<u8>> {
    let mut head = [0u8; 64];
    let mut f = File::open(path).ok()?;
    let n = f.read(&mut head).ok()?;
    let seg = (40..=47).find(|&i| i + 4 <= n && head[i..i + 4] == [0x18, 0x53, 0x80, 0x67])?;
    if head[..seg].iter().any(|b| *b != 0) {
        return None;
    }
    // Widen the header's size field to fill the gap exactly.
    let mut h = K4A_EBML_HEADER[..4].to_vec();
    let width = seg - 39;
    let mut size = vec![0u8; width];
    size[0] = 0x80 >> (width - 1);
    size[width - 1] |= 35;
    h.extend(size);
    h.extend_from_slice(&K4A_EBML_HEADER[5..]);
    debug_assert_eq!(h.len(), seg);
    Some(h)
}

/// Repairs `input` into `output` with `options`. The output is written under a temporary name
/// in its directory, read back, and only then renamed into place.
pub fn repair_with(
    input: &Path,
    output: &Path,
    options: &RepairOptions,
) -> Result<RepairReport, RepairError> {
    let inputs = Inputs::new([input].into_iter().chain(options.calibration.as_deref()));
    inputs.check(output)?;
    let read_err = |source| match source {
        e @ Error::Open { .. } => RepairError::Open(e),
        source => RepairError::Read {
            path: input.to_path_buf(),
            source,
        },
    };
    let calibration = match &options.calibration {
        None => None,
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|e| RepairError::CalibrationFile {
                path: p.clone(),
                reason: e.to_string(),
            })?;
            Calibration::from_json(&bytes).map_err(|e| RepairError::CalibrationFile {
                path: p.clone(),
                reason: e.to_string(),
            })?;
            let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
            Some(bytes[..end].to_vec())
        }
    };
    match Playback::open(input) {
        Ok(mut pb) => repair_open(&mut pb, input, output, calibration, options, Vec::new()),
        Err(e @ Error::Ebml(crate::mkv::read::Error::NotMatroska { .. })) => {
            let Some(head) = rebuilt_ebml_header(input) else {
                return Err(read_err(e));
            };
            let file = File::open(input).map_err(|source| read_err(io_err(input, source)))?;
            let mut pb =
                Playback::from_reader(HeadOverlay { file, head, pos: 0 }).map_err(read_err)?;
            let fix = "rebuilt the EBML header (it was overwritten with zeros)".to_string();
            repair_open(&mut pb, input, output, calibration, options, vec![fix])
        }
        Err(e) => Err(read_err(e)),
    }
}

fn repair_open<R: Read + Seek>(
    pb: &mut Playback<R>,
    input: &Path,
    output: &Path,
    calibration: Option<Vec<u8>>,
    options: &RepairOptions,
    fixes: Vec<String>,
) -> Result<RepairReport, RepairError> {
    let c = pb.config();
    if !(c.color_track_enabled
        || c.depth_track_enabled
        || c.ir_track_enabled
        || c.imu_track_enabled)
    {
        return Err(RepairError::NotK4a {
            path: input.to_path_buf(),
        });
    }
    if calibration.is_none() {
        if let Some(Diagnostic::BadCalibration { reason, .. }) = pb
            .diagnostics
            .iter()
            .find(|d| matches!(d, Diagnostic::BadCalibration { .. }))
        {
            return Err(RepairError::BadCalibration {
                path: input.to_path_buf(),
                reason: reason.clone(),
            });
        }
    }
    let inputs = Inputs::new([input].into_iter().chain(options.calibration.as_deref()));
    let mut out = PendingFile::create(output, options.overwrite, &inputs)?;
    let write_err = |source| RepairError::Write {
        path: output.to_path_buf(),
        source,
    };
    let mut report = {
        let mut w = BufWriter::new(out.file());
        let report = repair_to_with(pb, &mut w, calibration.as_deref()).map_err(write_err)?;
        w.flush().map_err(|source| OutputError::Io {
            action: "writing",
            path: output.to_path_buf(),
            source,
        })?;
        report
    };
    report.nothing_to_fix &= fixes.is_empty();
    report.fixes.splice(0..0, fixes);
    let mut check =
        Playback::open(out.temp_path()).map_err(|source| RepairError::Verify { source })?;
    count_output(&mut check, &mut report).map_err(|source| RepairError::Verify { source })?;
    out.commit()?;
    Ok(report)
}

fn io_err(p: &Path, source: std::io::Error) -> Error {
    Error::Open {
        path: p.display().to_string(),
        source,
    }
}

fn count_output<R: Read + Seek>(
    pb: &mut Playback<R>,
    report: &mut RepairReport,
) -> Result<(), Error> {
    while pb.next_capture()?.is_some() {
        report.captures_kept += 1;
    }
    while pb.next_imu_sample()?.is_some() {
        report.imu_samples_kept += 1;
    }
    Ok(())
}

/// One cluster of the output: a byte range of the input copied as is, or the complete
/// children of a cut cluster under a new header.
enum OutCluster {
    Copy { offset: u64, len: u64 },
    Rebuilt(Vec<u8>),
}

impl OutCluster {
    fn len(&self) -> u64 {
        match self {
            OutCluster::Copy { len, .. } => *len,
            OutCluster::Rebuilt(b) => b.len() as u64,
        }
    }
}

/// The complete children of a cut cluster, re-rendered as a Cluster whose size fits them
/// (CRC-32 recomputed). `None` if no block survives.
fn rebuild_cut_cluster<R: Read + Seek>(
    pb: &mut Playback<R>,
    c: &ClusterEntry,
) -> Result<Option<Vec<u8>>, Error> {
    let mut pos = c.data_offset;
    let mut blocks = 0;
    while pos < c.end {
        let Ok(h) = pb.reader.header_at(pos) else {
            break;
        };
        let Some(end) = h.end().filter(|e| *e <= c.end) else {
            break;
        };
        if matches!(h.id, ids::SIMPLE_BLOCK | ids::BLOCK_GROUP) {
            blocks += 1;
        }
        pos = end;
    }
    if blocks == 0 {
        return Ok(None);
    }
    let body = pb.reader.bytes(
        c.data_offset,
        pos - c.data_offset,
        "Cluster",
        c.offset,
        MAX_READ_BYTES,
    )?;
    let first = pb.reader.header_at(c.data_offset)?;
    let payload = if first.id == ids::CRC32 && first.end() == Some(c.data_offset + 6) {
        let rest = &body[6..];
        let mut p = element(ids::CRC32, &crc32fast::hash(rest).to_le_bytes());
        p.extend_from_slice(rest);
        p
    } else {
        body
    };
    Ok(Some(element(ids::CLUSTER, &payload)))
}

/// Writes the repaired form of an open recording to `w` (counts of captures and IMU samples
/// are left at 0; [`repair`] fills them by reading the output back).
pub fn repair_to<R: Read + Seek, W: Write>(
    pb: &mut Playback<R>,
    w: &mut W,
) -> Result<RepairReport, Error> {
    repair_to_with(pb, w, None)
}

/// [`repair_to`], storing `calibration` (raw JSON) as the calibration attachment when given.
pub fn repair_to_with<R: Read + Seek, W: Write>(
    pb: &mut Playback<R>,
    w: &mut W,
    calibration: Option<&[u8]>,
) -> Result<RepairReport, Error> {
    let mut report = RepairReport {
        bytes_in: pb.reader.file_len(),
        input_diagnostics: pb.diagnostics.iter().map(ToString::to_string).collect(),
        ..RepairReport::default()
    };
    let werr = |source| Error::Ebml(crate::mkv::read::Error::Io { offset: 0, source });
    let scale = pb.timestamp_scale_ns;

    // Clusters to keep (cut ones reduced to their complete blocks), and the times the Info and
    // Cues need.
    let mut kept = Vec::new();
    let mut last_ticks: i64 = 0;
    let mut cue_candidates = Vec::new();
    for (i, c) in pb.layout.clusters.clone().iter().enumerate() {
        let out = if c.complete {
            OutCluster::Copy {
                offset: c.offset,
                len: c.end - c.offset,
            }
        } else {
            match rebuild_cut_cluster(pb, c)? {
                Some(bytes) => {
                    let payload = bytes.len() as u64;
                    report.fixes.push(format!(
                        "kept the complete blocks of the cut Cluster at offset {} ({} of its {} bytes)",
                        c.offset,
                        payload,
                        c.end - c.offset
                    ));
                    report.bytes_dropped += (c.end - c.offset).saturating_sub(payload);
                    OutCluster::Rebuilt(bytes)
                }
                None => {
                    report.clusters_dropped += 1;
                    report.bytes_dropped += c.end - c.offset;
                    continue;
                }
            }
        };
        let parsed = pb.load(i)?;
        for b in &parsed.blocks {
            let end = b.time_ticks + b.duration_ticks.unwrap_or(1).max(1) as i64 - 1;
            last_ticks = last_ticks.max(end);
        }
        let first_track1 = parsed
            .blocks
            .iter()
            .find(|b| b.track == 1)
            .map(|b| b.time_ticks);
        kept.push(out);
        cue_candidates.push(first_track1);
    }
    report.clusters_kept = kept.len();
    for d in &pb.diagnostics {
        if let Diagnostic::Junk { bytes, .. } | Diagnostic::TrailingData { bytes, .. } = d {
            report.bytes_dropped += bytes;
        }
    }

    // Header elements.
    let info = {
        let old = pb.layout.info.clone().unwrap_or_default();
        if pb.layout.info.is_none() {
            report
                .fixes
                .push("rebuilt Info (TimestampScale, Duration)".into());
        }
        let mut p = Vec::new();
        p.extend(element(ids::TIMESTAMP_SCALE, &uint(scale)));
        p.extend(element(
            ids::MUXING_APP,
            old.muxing_app
                .as_deref()
                .unwrap_or("libmatroska-1.4.9")
                .as_bytes(),
        ));
        let app = old
            .writing_app
            .unwrap_or_else(|| format!("freek4a-{} repair", env!("CARGO_PKG_VERSION")));
        p.extend(element(ids::WRITING_APP, app.as_bytes()));
        if let Some(d) = old.date_utc_ns {
            p.extend(element(ids::DATE_UTC, &d.to_be_bytes()));
        }
        p.extend(element(
            ids::TITLE,
            old.title.as_deref().unwrap_or("Azure Kinect").as_bytes(),
        ));
        // The SDK's Duration: last timestamp − first (which is time 0), as a float32.
        let duration = last_ticks.max(0) as f32;
        p.extend(element(ids::DURATION, &duration.to_be_bytes()));
        element(ids::INFO, &p)
    };
    let tracks = raw_element(pb, ids::TRACKS)?.ok_or(Error::NoTracks)?;
    let mut tags: Vec<Tag> = pb.layout.tags.clone();
    let attachments = match calibration {
        None => raw_element(pb, ids::ATTACHMENTS)?,
        Some(json) => {
            let (bytes, added_uid) = attachments_with_calibration(pb, json);
            if let Some(uid) = added_uid {
                tags.push(Tag {
                    name: "K4A_CALIBRATION_FILE".into(),
                    value: "calibration.json".into(),
                    target: TagTarget::Attachment(uid),
                    target_type: "ATTACHMENT".into(),
                });
                report.fixes.push("added the calibration attachment".into());
            } else {
                report
                    .fixes
                    .push("replaced the calibration attachment".into());
            }
            Some(bytes)
        }
    };
    if !tags.iter().any(|t| t.name == "K4A_START_OFFSET_NS") {
        tags.push(Tag {
            name: "K4A_START_OFFSET_NS".into(),
            value: pb.start_offset_ns.to_string(),
            target: TagTarget::Global,
            target_type: String::new(),
        });
        report.fixes.push(format!(
            "added K4A_START_OFFSET_NS = {} ns (reconstructed)",
            pb.start_offset_ns
        ));
    }
    let tags = render_tags(&tags);

    // Segment-relative positions.
    // An unusually long Info (a long WritingApp) gets a larger region.
    let info_region = if info.len() + 2 <= INFO_REGION {
        INFO_REGION
    } else {
        info.len() + 9
    };
    let info_pos = SEEK_HEAD_REGION as u64;
    let tracks_pos = info_pos + info_region as u64;
    let attach_pos = tracks_pos + tracks.len() as u64;
    let tags_pos = attach_pos + attachments.as_ref().map_or(0, |a| a.len() as u64);
    let clusters_pos = tags_pos + tags.len() as u64;
    let mut cluster_pos = Vec::with_capacity(kept.len());
    let mut p = clusters_pos;
    for c in &kept {
        cluster_pos.push(p);
        p += c.len();
    }
    let cues_pos = p;
    let cues = render_cues(&cue_candidates, &cluster_pos, 1_000_000_000 / scale.max(1));
    let cut = pb.layout.clusters.iter().any(|c| !c.complete);
    match &cues {
        Some(_) if !pb.layout.has_cues || cut => report.fixes.push("rebuilt Cues".into()),
        None => report
            .fixes
            .push("wrote no Cues (no colour or first-track block to index)".into()),
        Some(_) => {}
    }
    let mut seeks = vec![(ids::INFO, info_pos), (ids::TRACKS, tracks_pos)];
    if attachments.is_some() {
        seeks.push((ids::ATTACHMENTS, attach_pos));
    }
    seeks.push((ids::TAGS, tags_pos));
    if cues.is_some() {
        seeks.push((ids::CUES, cues_pos));
    }
    let seek_head = render_seek_head(&seeks);
    if !pb.layout.has_seek_head {
        report.fixes.push("rebuilt SeekHead".into());
    }
    let seg_size = cues_pos + cues.as_ref().map_or(0, |c| c.len() as u64);
    report.nothing_to_fix = pb.diagnostics.is_empty() && report.fixes.is_empty();
    report.fixes.push(format!("set Segment size to {seg_size}"));

    // EBML header as found, then the Segment.
    let ebml = pb
        .reader
        .bytes(0, pb.layout.segment_offset, "EBML", 0, 4096)?;
    w.write_all(&ebml).map_err(werr)?;
    w.write_all(&[0x18, 0x53, 0x80, 0x67, 0x01]).map_err(werr)?;
    w.write_all(&seg_size.to_be_bytes()[1..]).map_err(werr)?;
    w.write_all(&padded(seek_head, SEEK_HEAD_REGION))
        .map_err(werr)?;
    w.write_all(&padded(info, info_region)).map_err(werr)?;
    w.write_all(&tracks).map_err(werr)?;
    if let Some(a) = &attachments {
        w.write_all(a).map_err(werr)?;
    }
    w.write_all(&tags).map_err(werr)?;
    for c in &kept {
        match c {
            OutCluster::Copy { offset, len } => {
                let bytes = pb
                    .reader
                    .bytes(*offset, *len, "Cluster", *offset, MAX_READ_BYTES)?;
                w.write_all(&bytes).map_err(werr)?;
            }
            OutCluster::Rebuilt(bytes) => w.write_all(bytes).map_err(werr)?,
        }
    }
    if let Some(c) = &cues {
        w.write_all(c).map_err(werr)?;
    }
    report.bytes_out = pb.layout.segment_offset + 12 + seg_size;
    Ok(report)
}

/// An Attachments element holding the recording's attachments with the calibration one's data
/// replaced by `json` (added if there was none; then its FileUID is returned).
fn attachments_with_calibration<R: Read + Seek>(
    pb: &Playback<R>,
    json: &[u8],
) -> (Vec<u8>, Option<u64>) {
    let mut files: Vec<super::Attachment> = pb.attachments().to_vec();
    let current = pb.calibration().and_then(|_| {
        pb.layout
            .tags
            .iter()
            .find_map(|t| match (t.name.as_str(), t.target) {
                ("K4A_CALIBRATION_FILE", TagTarget::Attachment(uid)) => Some(uid),
                _ => None,
            })
            .filter(|uid| files.iter().any(|a| a.uid == *uid))
            .or_else(|| pb.attachment("calibration.json").map(|a| a.uid))
    });
    let added = match current.and_then(|uid| files.iter_mut().find(|a| a.uid == uid)) {
        Some(a) => {
            a.data = json.to_vec();
            None
        }
        None => {
            // Any FileUID not already used; the SDK draws random ones.
            let uid = (u64::from(crc32fast::hash(json)) << 32) | 0x4B34_4143;
            files.push(super::Attachment {
                file_name: "calibration.json".into(),
                mime_type: "application/octet-stream".into(),
                description: None,
                uid,
                data: json.to_vec(),
            });
            Some(uid)
        }
    };
    let mut body = Vec::new();
    for a in &files {
        let mut f = element(ids::FILE_NAME, a.file_name.as_bytes());
        f.extend(element(ids::FILE_MIME_TYPE, a.mime_type.as_bytes()));
        if let Some(d) = &a.description {
            f.extend(element(ids::FILE_DESCRIPTION, d.as_bytes()));
        }
        f.extend(element(ids::FILE_DATA, &a.data));
        f.extend(element(ids::FILE_UID, &uint(a.uid)));
        body.extend(element(ids::ATTACHED_FILE, &f));
    }
    (element(ids::ATTACHMENTS, &body), added)
}

/// The raw bytes of the first complete top-level element with this id.
fn raw_element<R: Read + Seek>(pb: &mut Playback<R>, id: u32) -> Result<Option<Vec<u8>>, Error> {
    let Some(&(_, off, len)) = pb.layout.elements.iter().find(|e| e.0 == id) else {
        return Ok(None);
    };
    let h = pb.reader.header_at(off)?;
    if h.end() != Some(off + len) {
        return Ok(None);
    }
    Ok(Some(pb.reader.bytes(
        off,
        len,
        h.name(),
        off,
        64 * 1024 * 1024,
    )?))
}

/// Minimal EBML size field (libebml's thresholds: 126 is the largest 1-byte size).
fn size_field(n: u64) -> Vec<u8> {
    for len in 1..=8u32 {
        if n < (1u64 << (7 * len)) - 1 {
            let v = n | (1u64 << (7 * len));
            return v.to_be_bytes()[8 - len as usize..].to_vec();
        }
    }
    let mut v = vec![0x01];
    v.extend(&n.to_be_bytes()[1..]);
    v
}

fn element(id: u32, payload: &[u8]) -> Vec<u8> {
    let idb = id.to_be_bytes();
    let skip = idb.iter().position(|b| *b != 0).unwrap_or(3);
    let mut v = idb[skip..].to_vec();
    v.extend(size_field(payload.len() as u64));
    v.extend_from_slice(payload);
    v
}

fn uint(v: u64) -> Vec<u8> {
    let b = v.to_be_bytes();
    let skip = b.iter().position(|x| *x != 0).unwrap_or(7);
    b[skip..].to_vec()
}

/// `bytes` followed by a Void filling the region up to `region` bytes.
fn padded(mut bytes: Vec<u8>, region: usize) -> Vec<u8> {
    let rest = region.saturating_sub(bytes.len());
    match rest {
        0 => {}
        _ if rest < 9 => {
            bytes.push(0xEC);
            bytes.push(0x80 | (rest - 2) as u8);
            bytes.resize(region, 0);
        }
        _ => {
            bytes.push(0xEC);
            bytes.push(0x01);
            bytes.extend(&((rest - 9) as u64).to_be_bytes()[1..]);
            bytes.resize(region, 0);
        }
    }
    bytes
}

fn render_seek_head(entries: &[(u32, u64)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, pos) in entries {
        let mut s = element(ids::SEEK_ID, &id.to_be_bytes());
        s.extend(element(ids::SEEK_POSITION, &uint(*pos)));
        p.extend(element(ids::SEEK, &s));
    }
    element(ids::SEEK_HEAD, &p)
}

fn render_tags(tags: &[Tag]) -> Vec<u8> {
    let mut body = Vec::new();
    for t in tags {
        let targets = match t.target {
            TagTarget::Global => Vec::new(),
            TagTarget::Track(uid) => {
                let mut v = element(ids::TARGET_TYPE, b"TRACK");
                v.extend(element(ids::TAG_TRACK_UID, &uint(uid)));
                v
            }
            TagTarget::Attachment(uid) => {
                let mut v = element(ids::TARGET_TYPE, b"ATTACHMENT");
                v.extend(element(ids::TAG_ATTACHMENT_UID, &uint(uid)));
                v
            }
        };
        let mut simple = element(ids::TAG_NAME, t.name.as_bytes());
        simple.extend(element(ids::TAG_STRING, t.value.as_bytes()));
        let mut tag = element(ids::TARGETS, &targets);
        tag.extend(element(ids::SIMPLE_TAG, &simple));
        body.extend(element(ids::TAG, &tag));
    }
    let mut payload = element(ids::CRC32, &crc32fast::hash(&body).to_le_bytes());
    payload.extend(body);
    element(ids::TAGS, &payload)
}

/// One cue per cluster whose first track-1 block is at least a second after the last cue.
fn render_cues(first_track1: &[Option<i64>], positions: &[u64], gap_ticks: u64) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    let mut last: Option<i64> = None;
    for (t, pos) in first_track1.iter().zip(positions) {
        let Some(t) = *t else { continue };
        if last.is_some_and(|l| t < l + gap_ticks as i64) {
            continue;
        }
        last = Some(t);
        let mut ctp = element(ids::CUE_TRACK, &uint(1));
        ctp.extend(element(ids::CUE_CLUSTER_POSITION, &uint(*pos)));
        let mut cp = element(ids::CUE_TIME, &uint(t.max(0) as u64));
        cp.extend(element(ids::CUE_TRACK_POSITIONS, &ctp));
        body.extend(element(ids::CUE_POINT, &cp));
    }
    (!body.is_empty()).then(|| element(ids::CUES, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_fields_follow_libebml_thresholds() {
        assert_eq!(size_field(0), vec![0x80]);
        assert_eq!(size_field(126), vec![0xFE]);
        assert_eq!(size_field(127), vec![0x40, 0x7F]);
        assert_eq!(size_field(16382), vec![0x7F, 0xFE]);
        assert_eq!(size_field(16383), vec![0x20, 0x3F, 0xFF]);
    }

    #[test]
    fn global_tag_bytes() {
        let t = Tag {
            name: "MY_TAG".into(),
            value: "hello world".into(),
            target: TagTarget::Global,
            target_type: String::new(),
        };
        let b = render_tags(&[t]);
        // Tags, CRC-32, then the tag exactly as libk4arecord writes it.
        let tag = [
            &[
                0x73, 0x73, 0x9D, 0x63, 0xC0, 0x80, 0x67, 0xC8, 0x97, 0x45, 0xA3, 0x86,
            ][..],
            b"MY_TAG",
            &[0x44, 0x87, 0x8B],
            b"hello world",
        ]
        .concat();
        assert_eq!(&b[..4], &[0x12, 0x54, 0xC3, 0x67]);
        assert_eq!(&b[5..7], &[0xBF, 0x84]);
        assert_eq!(&b[11..], &tag[..]);
        assert_eq!(&b[7..11], &crc32fast::hash(&tag).to_le_bytes());
    }

    #[test]
    fn voids_fill_regions_exactly() {
        for n in [0usize, 5, 82, 1020, 1025, 1027] {
            let p = padded(vec![0xAA; n], 1027);
            assert_eq!(p.len(), 1027, "{n}");
        }
        let p = padded(vec![0xAA; 82], 1027);
        assert_eq!(&p[82..84], &[0xEC, 0x01]);
    }
}
