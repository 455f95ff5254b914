//! Repair of unclosed or truncated recordings: keeps every complete cluster and rebuilds what a
//! closed file has (SeekHead, Info with Duration, Tags with `K4A_START_OFFSET_NS`, Cues, the
//! Segment size), so that Microsoft's playback opens the result.
//!
//! The output uses the SDK's layout: EBML header, Segment with an 8-byte size, a 1027-byte
//! SeekHead region, a 259-byte Info region, then Tracks, Attachments and Tags copied or
//! re-rendered, the clusters copied byte for byte, and Cues.

use std::fs::File;
use std::io::{BufWriter, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::mkv::ebml;
use crate::mkv::ids;
use crate::mkv::k4a::render::{self, InfoValues};
use crate::mkv::k4a::{
    Attachment, CuePoints, HeaderPositions, CALIBRATION_FILE_NAME, CALIBRATION_FILE_TAG,
    INFO_REGION, SEEK_HEAD_REGION, START_OFFSET_TAG,
};
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
    let segment_id = ids::SEGMENT.to_be_bytes();
    let seg = (40..=47).find(|&i| i + 4 <= n && head[i..i + 4] == segment_id)?;
    if head[..seg].iter().any(|b| *b != 0) {
        return None;
    }
    // Widen the header's size field to fill the gap exactly.
    let h = render::ebml_header_sized(seg - 39).ok()?;
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
    if !pb.config().has_k4a_track() {
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
    let mut cluster = Vec::with_capacity(body.len() + 12);
    if first.id == ids::CRC32 && first.end() == Some(c.data_offset + 6) {
        ebml::put_master_crc(&mut cluster, ids::CLUSTER, &body[6..]);
    } else {
        ebml::put_master(&mut cluster, ids::CLUSTER, &body);
    }
    Ok(Some(cluster))
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
    let kept = keep_clusters(pb, &mut report)?;
    for d in &pb.diagnostics {
        if let Diagnostic::Junk { bytes, .. } | Diagnostic::TrailingData { bytes, .. } = d {
            report.bytes_dropped += bytes;
        }
    }

    // Header elements.
    let info = info_element(pb, kept.last_ticks, &mut report);
    let tracks = raw_element(pb, ids::TRACKS)?.ok_or(Error::NoTracks)?;
    let mut tags: Vec<Tag> = pb.layout.tags.clone();
    let attachments = match calibration {
        None => raw_element(pb, ids::ATTACHMENTS)?,
        Some(json) => {
            let (bytes, added_uid) = attachments_with_calibration(pb, json);
            if let Some(uid) = added_uid {
                tags.push(Tag::new(
                    TagTarget::Attachment(uid),
                    CALIBRATION_FILE_TAG,
                    CALIBRATION_FILE_NAME,
                ));
                report.fixes.push("added the calibration attachment".into());
            } else {
                report
                    .fixes
                    .push("replaced the calibration attachment".into());
            }
            Some(bytes)
        }
    };
    if !tags.iter().any(|t| t.name == START_OFFSET_TAG) {
        tags.push(Tag::global(
            START_OFFSET_TAG,
            pb.start_offset_ns.to_string(),
        ));
        report.fixes.push(format!(
            "added {START_OFFSET_TAG} = {} ns (reconstructed)",
            pb.start_offset_ns
        ));
    }
    let tags = render::tags(&tags);

    // Segment-relative positions; an unusually long Info (a long WritingApp) gets a larger
    // region.
    let info_region = render::region_len(info.len() as u64, INFO_REGION);
    let positions = HeaderPositions::new(
        info_region,
        tracks.len() as u64,
        attachments.as_ref().map(|a| a.len() as u64),
    );
    let clusters_pos = positions.tags + tags.len() as u64;
    let mut cues = CuePoints::default();
    let mut p = clusters_pos;
    for (c, first_track1) in kept.clusters.iter().zip(&kept.first_track1_ticks) {
        if let Some(t) = first_track1 {
            let ticks = (*t).max(0) as u64;
            cues.offer(ticks.saturating_mul(pb.timestamp_scale_ns), ticks, p);
        }
        p += c.len();
    }
    let cues_pos = p;
    let cues = (!cues.is_empty()).then(|| render::cues(cues.points()));
    let cut = pb.layout.clusters.iter().any(|c| !c.complete);
    match &cues {
        Some(_) if !pb.layout.has_cues || cut => report.fixes.push("rebuilt Cues".into()),
        None => report
            .fixes
            .push("wrote no Cues (no colour or first-track block to index)".into()),
        Some(_) => {}
    }
    let seek_head = render::seek_head(&positions.seek_entries(cues.as_ref().map(|_| cues_pos)));
    if !pb.layout.has_seek_head {
        report.fixes.push("rebuilt SeekHead".into());
    }
    let seg_size = cues_pos + cues.as_ref().map_or(0, |c| c.len() as u64);
    report.nothing_to_fix = pb.diagnostics.is_empty() && report.fixes.is_empty();
    report.fixes.push(format!("set Segment size to {seg_size}"));

    // EBML header as found, then the Segment.
    let werr = |source| Error::Ebml(crate::mkv::read::Error::Io { offset: 0, source });
    let layout_err = |e: ebml::EbmlError| werr(std::io::Error::new(ErrorKind::InvalidData, e));
    let ebml = pb
        .reader
        .bytes(0, pb.layout.segment_offset, "EBML", 0, 4096)?;
    let segment = render::segment_header(Some(seg_size)).map_err(layout_err)?;
    let seek_head = render::region(&seek_head, SEEK_HEAD_REGION).map_err(layout_err)?;
    let info = render::region(&info, info_region).map_err(layout_err)?;
    for part in [&ebml, &segment, &seek_head, &info, &tracks] {
        w.write_all(part).map_err(werr)?;
    }
    if let Some(a) = &attachments {
        w.write_all(a).map_err(werr)?;
    }
    w.write_all(&tags).map_err(werr)?;
    for c in &kept.clusters {
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
    report.bytes_out = pb.layout.segment_offset + segment.len() as u64 + seg_size;
    Ok(report)
}

/// The clusters a repair keeps, and the times its Info and Cues need.
struct KeptClusters {
    clusters: Vec<OutCluster>,
    /// Per kept cluster: the time of its first track-1 block (the cue candidate), in ticks.
    first_track1_ticks: Vec<Option<i64>>,
    /// The end of the last block, in ticks.
    last_ticks: i64,
}

/// The clusters to keep, cut ones reduced to their complete blocks.
fn keep_clusters<R: Read + Seek>(
    pb: &mut Playback<R>,
    report: &mut RepairReport,
) -> Result<KeptClusters, Error> {
    let mut kept = KeptClusters {
        clusters: Vec::new(),
        first_track1_ticks: Vec::new(),
        last_ticks: 0,
    };
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
            kept.last_ticks = kept.last_ticks.max(end);
        }
        let first_track1 = parsed
            .blocks
            .iter()
            .find(|b| b.track == 1)
            .map(|b| b.time_ticks);
        kept.clusters.push(out);
        kept.first_track1_ticks.push(first_track1);
    }
    report.clusters_kept = kept.clusters.len();
    Ok(kept)
}

/// Info with the recording's own fields where it has them and the SDK's Duration: last
/// timestamp − first (which is time 0).
fn info_element<R: Read + Seek>(
    pb: &Playback<R>,
    last_ticks: i64,
    report: &mut RepairReport,
) -> Vec<u8> {
    let old = pb.layout.info.clone().unwrap_or_default();
    if pb.layout.info.is_none() {
        report
            .fixes
            .push("rebuilt Info (TimestampScale, Duration)".into());
    }
    let writing_app = old
        .writing_app
        .unwrap_or_else(|| format!("freek4a-{} repair", env!("CARGO_PKG_VERSION")));
    render::info(&InfoValues {
        timestamp_scale_ns: pb.timestamp_scale_ns,
        muxing_app: old.muxing_app.as_deref().unwrap_or("libmatroska-1.4.9"),
        writing_app: &writing_app,
        date_ns_2001: old.date_utc_ns,
        title: old.title.as_deref().unwrap_or("Azure Kinect"),
        duration_ticks: last_ticks.max(0) as f32,
    })
}

/// An Attachments element holding the recording's attachments with the calibration one's data
/// replaced by `json` (added if there was none; then its FileUID is returned).
fn attachments_with_calibration<R: Read + Seek>(
    pb: &Playback<R>,
    json: &[u8],
) -> (Vec<u8>, Option<u64>) {
    let mut files: Vec<Attachment> = pb.attachments().to_vec();
    let current = pb.calibration().and_then(|_| {
        pb.layout
            .tags
            .iter()
            .find_map(|t| match (t.name.as_str(), t.target) {
                (CALIBRATION_FILE_TAG, TagTarget::Attachment(uid)) => Some(uid),
                _ => None,
            })
            .filter(|uid| files.iter().any(|a| a.uid == *uid))
            .or_else(|| pb.attachment(CALIBRATION_FILE_NAME).map(|a| a.uid))
    });
    let added = match current.and_then(|uid| files.iter_mut().find(|a| a.uid == uid)) {
        Some(a) => {
            a.data = json.to_vec();
            None
        }
        None => {
            // Any FileUID not already used; the SDK draws random ones.
            let uid = (u64::from(crc32fast::hash(json)) << 32) | 0x4B34_4143;
            files.push(Attachment::calibration(json, uid));
            Some(uid)
        }
    };
    (render::attachments(&files), added)
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
