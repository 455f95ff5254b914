//! Reading K4A recordings: configuration, tags, attachments, tracks, captures and IMU samples,
//! with the SDK's capture grouping and seek semantics, tolerant of damaged and old files.
//!
//! ```no_run
//! let mut pb = freek4a::playback::Playback::open("rec.mkv")?;
//! while let Some(capture) = pb.next_capture()? {
//!     let _ = capture.depth.map(|d| d.device_timestamp_usec);
//! }
//! # Ok::<(), freek4a::playback::Error>(())
//! ```

mod cluster;
pub mod exercise;
pub mod info;
pub mod matching;
pub mod repair;

use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::mkv::read::{ElementReader, Error as EbmlError};
use crate::types::{
    BufferPool, Capture, ColorResolution, DepthMode, Fps, Image, ImageData, ImageFormat, ImuSample,
    WiredSyncMode,
};

use crate::mkv::k4a::scan::{assign_tracks, scan, Layout, ScanError};
pub use crate::mkv::k4a::{Attachment, ClusterEntry, Diagnostic, Tag, TagTarget, Track, TrackKind};
use cluster::{decode_imu, index_cluster, Block, ParsedCluster, IMU_SAMPLE_BYTES};

/// Why a recording could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file is empty.
    #[error("the file is empty (0 bytes)")]
    Empty,
    /// The file could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// An EBML-level failure (not Matroska, wrong DocType, I/O...).
    #[error(transparent)]
    Ebml(#[from] EbmlError),
    /// No Segment element after the EBML header.
    #[error("no Segment element after the EBML header")]
    NoSegment,
    /// The file has no readable Tracks element, so nothing in it can be interpreted.
    #[error("no readable Tracks element")]
    NoTracks,
}

impl From<ScanError> for Error {
    fn from(e: ScanError) -> Error {
        match e {
            ScanError::Ebml(e) => Error::Ebml(e),
            ScanError::NoSegment => Error::NoSegment,
        }
    }
}

/// The recording's configuration: the SDK's `k4a_record_configuration_t` with a 64-bit start
/// offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordConfig {
    /// Colour format (`None` without a colour track).
    #[serde(serialize_with = "ser_format")]
    pub color_format: Option<ImageFormat>,
    /// Colour resolution (OFF without a colour track or for unknown dimensions).
    #[serde(serialize_with = "ser_color_resolution")]
    pub color_resolution: ColorResolution,
    /// Depth mode.
    #[serde(serialize_with = "ser_depth_mode")]
    pub depth_mode: DepthMode,
    /// Camera frame rate.
    #[serde(serialize_with = "ser_fps")]
    pub camera_fps: Fps,
    /// A COLOR track exists.
    pub color_track_enabled: bool,
    /// A DEPTH track exists.
    pub depth_track_enabled: bool,
    /// An IR track exists.
    pub ir_track_enabled: bool,
    /// An IMU track exists.
    pub imu_track_enabled: bool,
    /// `K4A_DEPTH_DELAY_NS` / 1000.
    pub depth_delay_off_color_usec: i32,
    /// `K4A_WIRED_SYNC_MODE`.
    #[serde(serialize_with = "ser_sync_mode")]
    pub wired_sync_mode: WiredSyncMode,
    /// `K4A_SUBORDINATE_DELAY_NS` / 1000.
    pub subordinate_delay_off_master_usec: u32,
    /// Device time of the recording's first data (`K4A_START_OFFSET_NS` / 1000), 64 bits wide.
    pub start_timestamp_offset_usec: u64,
}

impl RecordConfig {
    /// Whether the file has any of the COLOR, DEPTH, IR and IMU tracks.
    pub fn has_k4a_track(&self) -> bool {
        self.color_track_enabled
            || self.depth_track_enabled
            || self.ir_track_enabled
            || self.imu_track_enabled
    }
}

// Serialised under the SDK's enum names (`k4a_record_configuration_t` in JSON).
fn ser_color_resolution<S: serde::Serializer>(
    v: &ColorResolution,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.sdk_name())
}

fn ser_depth_mode<S: serde::Serializer>(v: &DepthMode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.sdk_name())
}

fn ser_fps<S: serde::Serializer>(v: &Fps, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.sdk_name())
}

fn ser_sync_mode<S: serde::Serializer>(v: &WiredSyncMode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("K4A_WIRED_SYNC_MODE_{}", v.name()))
}

fn ser_format<S: serde::Serializer>(v: &Option<ImageFormat>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(f) => s.serialize_str(f.sdk_name()),
        None => s.serialize_none(),
    }
}

/// One frame of any track read with [`Playback::next_data_block`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataBlock {
    /// Device timestamp in µs (for laced frames, spread over the block's duration as the SDK
    /// estimates it).
    pub device_timestamp_usec: u64,
    /// The frame's bytes.
    pub data: Vec<u8>,
}

/// Where a seek offset is measured from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// From the start of the recording (offset ≥ 0).
    Begin,
    /// From the end of the recording (offset ≤ 0).
    End,
    /// An absolute device timestamp.
    DeviceTime,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Pos {
    cluster: usize,
    block: usize,
}

#[derive(Clone, Copy, Debug)]
struct ImuCursor {
    pos: Pos,
    sample: usize,
}

const CACHE_CLUSTERS: usize = 8;

/// Spare image buffers kept for the next captures: two captures' worth of colour, depth and IR
/// (so a program holding one capture while reading the next still reuses), at most 64 MiB.
const POOL_BUFFERS: usize = 6;
const POOL_MAX_BYTES: usize = 64 << 20;

/// The blocks making up one capture: (stream 0 colour / 1 depth / 2 IR, where, block).
type Picked = Vec<(usize, Pos, Block)>;

/// An open recording.
pub struct Playback<R> {
    reader: ElementReader<R>,
    layout: Layout,
    config: RecordConfig,
    timestamp_scale_ns: u64,
    start_offset_ns: u64,
    /// Track numbers for colour, depth, IR (None when absent).
    video: [Option<VideoTrack>; 3],
    imu_track: Option<u64>,
    frame_period_ns: u64,
    cursors: [Pos; 3],
    imu: ImuCursor,
    cache: Vec<(usize, Arc<ParsedCluster>)>,
    data_cursors: Vec<(u64, ImuCursor)>,
    length_usec: Option<u64>,
    diagnostics: Vec<Diagnostic>,
    /// Storage of dropped images, reused for new ones: without it every capture would take
    /// fresh pages from the kernel (the allocator returns freed image-sized blocks to it).
    pool: BufferPool,
}

#[derive(Clone, Copy, Debug)]
struct VideoTrack {
    number: u64,
    format: ImageFormat,
    width: u32,
    height: u32,
    /// Samples stored big-endian (`b16g`) and to be swapped.
    swap16: bool,
    shift_ns: i64,
}

impl Playback<File> {
    /// Opens a recording file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let open_err = |source| Error::Open {
            path: path.display().to_string(),
            source,
        };
        let f = File::open(path).map_err(open_err)?;
        if f.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(open_err(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "it is a directory",
            )));
        }
        Self::from_reader(f)
    }
}

impl<R: Read + Seek> Playback<R> {
    /// Reads a recording from any seekable stream.
    pub fn from_reader(r: R) -> Result<Self, Error> {
        let mut reader = ElementReader::new(r)?;
        if reader.file_len() == 0 {
            return Err(Error::Empty);
        }
        let mut layout = scan(&mut reader)?;
        if !layout.tracks_found {
            return Err(Error::NoTracks);
        }
        let mut diagnostics = std::mem::take(&mut layout.diagnostics);
        if !layout.has_seek_head {
            diagnostics.push(Diagnostic::MissingSeekHead);
        }
        let timestamp_scale_ns = match &layout.info {
            Some(i) => i.timestamp_scale_ns.unwrap_or(1_000_000).max(1),
            None => {
                diagnostics.push(Diagnostic::MissingInfo);
                1000
            }
        };
        if !layout.has_cues {
            diagnostics.push(Diagnostic::MissingCues);
        }
        if !layout.tags_found {
            diagnostics.push(Diagnostic::MissingTags);
        }
        assign_tracks(&mut layout, &mut diagnostics);
        let mut pb = Playback {
            reader,
            config: RecordConfig {
                color_format: None,
                color_resolution: ColorResolution::Off,
                depth_mode: DepthMode::Off,
                camera_fps: Fps::Fps30,
                color_track_enabled: false,
                depth_track_enabled: false,
                ir_track_enabled: false,
                imu_track_enabled: false,
                depth_delay_off_color_usec: 0,
                wired_sync_mode: WiredSyncMode::Standalone,
                subordinate_delay_off_master_usec: 0,
                start_timestamp_offset_usec: 0,
            },
            layout,
            timestamp_scale_ns,
            start_offset_ns: 0,
            video: [None; 3],
            imu_track: None,
            frame_period_ns: 33_333_333,
            cursors: [Pos {
                cluster: 0,
                block: 0,
            }; 3],
            imu: ImuCursor {
                pos: Pos {
                    cluster: 0,
                    block: 0,
                },
                sample: 0,
            },
            cache: Vec::new(),
            data_cursors: Vec::new(),
            length_usec: None,
            diagnostics,
            pool: BufferPool::new(POOL_BUFFERS, POOL_MAX_BYTES),
        };
        pb.build_config();
        match pb.calibration() {
            None => pb.diagnostics.push(Diagnostic::MissingCalibration),
            Some(json) => {
                if let Err(e) = crate::protocol::calibration::Calibration::from_json(json) {
                    let file_name = pb
                        .calibration_attachment()
                        .map_or_else(String::new, |a| a.file_name.clone());
                    pb.diagnostics.push(Diagnostic::BadCalibration {
                        file_name,
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok(pb)
    }

    fn build_config(&mut self) {
        let mut diags = Vec::new();
        self.read_image_tracks(&mut diags);
        self.read_depth_mode(&mut diags);
        self.read_frame_rate(&mut diags);
        self.read_timing_tags(&mut diags);
        self.read_imu_track(&mut diags);
        if !self.config.has_k4a_track() {
            diags.push("no COLOR, DEPTH, IR or IMU track: not an Azure Kinect recording".into());
        }
        self.read_start_offset(diags);
    }

    /// The colour, depth and IR tracks: formats, sizes, which are enabled.
    fn read_image_tracks(&mut self, diags: &mut Vec<String>) {
        let find = |k: TrackKind| {
            self.layout
                .tracks
                .iter()
                .find(|t| t.kind == Some(k))
                .cloned()
        };
        let color = find(TrackKind::Color);
        let depth = find(TrackKind::Depth);
        let ir = find(TrackKind::Ir);
        let c = &mut self.config;
        if let Some(t) = &color {
            let fmt = match t.fourcc().as_ref() {
                Some(b"MJPG") => Some(ImageFormat::Mjpg),
                Some(b"NV12") => Some(ImageFormat::Nv12),
                Some(b"YUY2") => Some(ImageFormat::Yuy2),
                Some(b"BGRA") => Some(ImageFormat::Bgra32),
                _ => None,
            };
            match (fmt, t.width, t.height) {
                (Some(fmt), Some(w), Some(h)) => {
                    c.color_format = Some(fmt);
                    c.color_track_enabled = true;
                    c.color_resolution =
                        ColorResolution::from_dimensions(w, h).unwrap_or_else(|| {
                            diags.push(format!("colour track has unknown resolution {w}x{h}"));
                            ColorResolution::Off
                        });
                    self.video[0] = Some(VideoTrack {
                        number: t.number,
                        format: fmt,
                        width: w,
                        height: h,
                        swap16: false,
                        shift_ns: 0,
                    });
                }
                _ => diags.push(format!(
                    "colour track has unsupported codec {:?} or no dimensions; ignored",
                    t.codec_id
                )),
            }
        }
        for (i, t, fmt) in [
            (1usize, &depth, ImageFormat::Depth16),
            (2, &ir, ImageFormat::Ir16),
        ] {
            let Some(t) = t else { continue };
            let swap16 = match t.fourcc().as_ref() {
                Some(b"b16g") => true,
                Some(b"YUY2") => false, // early 2019 files: little-endian samples
                _ => {
                    diags.push(format!("{} track has unsupported codec; ignored", t.name));
                    continue;
                }
            };
            let (Some(w), Some(h)) = (t.width, t.height) else {
                diags.push(format!("{} track has no dimensions; ignored", t.name));
                continue;
            };
            self.video[i] = Some(VideoTrack {
                number: t.number,
                format: fmt,
                width: w,
                height: h,
                swap16,
                shift_ns: 0,
            });
        }
        c.depth_track_enabled = self.video[1].is_some();
        c.ir_track_enabled = self.video[2].is_some();
    }

    /// `K4A_DEPTH_MODE`, or the mode the image sizes imply.
    fn read_depth_mode(&mut self, diags: &mut Vec<String>) {
        if self.config.depth_track_enabled || self.config.ir_track_enabled {
            let by_dims = || {
                let (w, h) = self.video[1]
                    .or(self.video[2])
                    .map(|v| (v.width, v.height))?;
                if self.video[1].is_none() && (w, h) == (1024, 1024) {
                    return Some(DepthMode::PassiveIr);
                }
                DepthMode::ON
                    .into_iter()
                    .find(|m| m.has_depth() && m.dimensions() == Some((w, h)))
            };
            self.config.depth_mode = match self.tag("K4A_DEPTH_MODE").map(DepthMode::from_name) {
                Some(Some(m)) => m,
                other => {
                    let m = by_dims().unwrap_or(DepthMode::Off);
                    diags.push(match other {
                        None => format!("K4A_DEPTH_MODE tag missing; {} inferred", m.name()),
                        Some(_) => format!("K4A_DEPTH_MODE tag invalid; {} inferred", m.name()),
                    });
                    m
                }
            };
        }
    }

    /// The frame rate from the image tracks' default duration.
    fn read_frame_rate(&mut self, diags: &mut Vec<String>) {
        let period = self
            .video
            .iter()
            .flatten()
            .find_map(|v| {
                self.layout
                    .tracks
                    .iter()
                    .find(|t| t.number == v.number)
                    .and_then(|t| t.default_duration_ns)
            })
            .filter(|p| *p > 0);
        if let Some(p) = period {
            self.frame_period_ns = p;
            match u32::try_from(1_000_000_000 / p).ok().and_then(Fps::from_hz) {
                Some(f) => self.config.camera_fps = f,
                None => diags.push(format!("unsupported frame period {p} ns; 30 fps assumed")),
            }
        }
    }

    /// Depth delay and wired sync tags, and the timestamp shift the delay implies.
    fn read_timing_tags(&mut self, diags: &mut Vec<String>) {
        let [delay, sync, sub_delay] = [
            "K4A_DEPTH_DELAY_NS",
            "K4A_WIRED_SYNC_MODE",
            "K4A_SUBORDINATE_DELAY_NS",
        ]
        .map(|n| self.tag(n).map(str::to_owned));
        let c = &mut self.config;
        if let Some(v) = delay {
            match v.trim().parse::<i64>() {
                Ok(ns) => c.depth_delay_off_color_usec = (ns / 1000) as i32,
                Err(_) => diags.push(format!("K4A_DEPTH_DELAY_NS has invalid value {v:?}")),
            }
        }
        if let Some(v) = sync {
            match WiredSyncMode::from_name(&v) {
                Some(m) => c.wired_sync_mode = m,
                None => diags.push(format!("K4A_WIRED_SYNC_MODE has invalid value {v:?}")),
            }
        }
        if let Some(v) = sub_delay {
            match v.trim().parse::<u64>() {
                Ok(ns) => c.subordinate_delay_off_master_usec = (ns / 1000) as u32,
                Err(_) => diags.push(format!("K4A_SUBORDINATE_DELAY_NS has invalid value {v:?}")),
            }
        }
        // A positive delay shifts colour, a negative one depth and IR (SDK rule).
        let delay_ns = i64::from(c.depth_delay_off_color_usec) * 1000;
        if delay_ns > 0 {
            if let Some(v) = &mut self.video[0] {
                v.shift_ns = delay_ns;
            }
        } else if delay_ns < 0 {
            for v in self.video[1..].iter_mut().flatten() {
                v.shift_ns = -delay_ns;
            }
        }
    }

    /// The IMU track, if it is one.
    fn read_imu_track(&mut self, diags: &mut Vec<String>) {
        let imu = self
            .layout
            .tracks
            .iter()
            .find(|t| t.kind == Some(TrackKind::Imu))
            .cloned();
        let c = &mut self.config;
        if let Some(t) = &imu {
            if t.track_type == 17 {
                self.imu_track = Some(t.number);
                c.imu_track_enabled = true;
            } else {
                diags.push("IMU track is not a subtitle track; treated as custom".into());
            }
        }
    }

    /// `K4A_START_OFFSET_NS`, or one reconstructed from the first IMU sample; the diagnostics
    /// gathered so far go out with it.
    fn read_start_offset(&mut self, mut diags: Vec<String>) {
        let start = self.tag("K4A_START_OFFSET_NS").map(str::to_owned);
        let mut start_ns = None;
        if let Some(v) = &start {
            match v.trim().parse::<u64>() {
                Ok(ns) => start_ns = Some(ns),
                Err(_) => diags.push(format!("K4A_START_OFFSET_NS has invalid value {v:?}")),
            }
        }
        self.diagnostics.extend(
            diags
                .into_iter()
                .map(|message| Diagnostic::Config { message }),
        );
        let start_ns = match start_ns {
            Some(ns) => ns,
            None => {
                let rec = self.reconstruct_start_offset();
                self.diagnostics.push(Diagnostic::MissingStartOffset {
                    reconstructed_ns: rec,
                });
                rec.unwrap_or(0)
            }
        };
        self.start_offset_ns = start_ns;
        self.config.start_timestamp_offset_usec = start_ns / 1000;
    }

    /// Start offset = acc timestamp of the first IMU sample − its block time.
    fn reconstruct_start_offset(&mut self) -> Option<u64> {
        let imu = self.imu_track?;
        let (pos, block) = self.next_block(imu, Pos::default()).ok()??;
        let c = self.load(pos.cluster).ok()?;
        let f = *block.frames.first()?;
        let bytes = c.frame(f);
        let (acc_ns, ..) = decode_imu(bytes.get(..IMU_SAMPLE_BYTES)?)?;
        let block_ns = block
            .time_ticks
            .checked_mul(self.timestamp_scale_ns as i64)?;
        u64::try_from(i128::from(acc_ns) - i128::from(block_ns)).ok()
    }

    /// The recording's configuration.
    pub fn config(&self) -> &RecordConfig {
        &self.config
    }

    /// Everything the reader worked around, in the order met.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Every tag, in file order.
    pub fn tags(&self) -> &[Tag] {
        &self.layout.tags
    }

    /// The first tag with this name (as the SDK's `k4a_playback_get_tag`).
    pub fn tag(&self, name: &str) -> Option<&str> {
        self.layout
            .tags
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.value.as_str())
    }

    /// Every attachment, in file order.
    pub fn attachments(&self) -> &[Attachment] {
        &self.layout.attachments
    }

    /// The attachment with this file name.
    pub fn attachment(&self, file_name: &str) -> Option<&Attachment> {
        self.layout
            .attachments
            .iter()
            .find(|a| a.file_name == file_name)
    }

    /// The raw calibration JSON (without a trailing NUL): the attachment the
    /// `K4A_CALIBRATION_FILE` tag targets, else the one named `calibration.json`.
    pub fn calibration(&self) -> Option<&[u8]> {
        let a = self.calibration_attachment()?;
        let end = a.data.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
        Some(&a.data[..end])
    }

    /// The attachment holding the calibration (see [`Playback::calibration`]).
    pub fn calibration_attachment(&self) -> Option<&Attachment> {
        let by_tag = self
            .layout
            .tags
            .iter()
            .filter(|t| t.name == "K4A_CALIBRATION_FILE" && t.target_type == "ATTACHMENT")
            .find_map(|t| match t.target {
                TagTarget::Attachment(uid) => self.layout.attachments.iter().find(|a| a.uid == uid),
                _ => None,
            });
        by_tag.or_else(|| self.attachment("calibration.json"))
    }

    /// Every track, in file order, with the role the reader assigned.
    pub fn tracks(&self) -> &[Track] {
        &self.layout.tracks
    }

    /// The index of clusters found in the file.
    pub fn clusters(&self) -> &[ClusterEntry] {
        &self.layout.clusters
    }

    /// Info's TimestampScale in ns (1000 for every released SDK).
    pub fn timestamp_scale_ns(&self) -> u64 {
        self.timestamp_scale_ns
    }

    /// Info's WritingApp, if present.
    pub fn writing_app(&self) -> Option<&str> {
        self.layout.info.as_ref()?.writing_app.as_deref()
    }

    /// Info's Duration converted to µs, if present.
    pub fn info_duration_usec(&self) -> Option<f64> {
        let d = self.layout.info.as_ref()?.duration_ticks?;
        Some(d * self.timestamp_scale_ns as f64 / 1000.0)
    }

    /// Recording length in µs as the SDK computes it: the end of the last block (a BlockGroup
    /// lasts BlockDuration − 1 ns), relative to the start offset.
    pub fn recording_length_usec(&mut self) -> Result<u64, Error> {
        if let Some(l) = self.length_usec {
            return Ok(l);
        }
        let scale = self.timestamp_scale_ns as i64;
        let mut last_ns: i64 = 0;
        for ci in (0..self.layout.clusters.len()).rev() {
            let c = self.load(ci)?;
            if c.blocks.is_empty() {
                continue;
            }
            for b in &c.blocks {
                let t = b.time_ticks.saturating_mul(scale);
                let end = match b.duration_ticks {
                    Some(d) if d > 0 => t.saturating_add((d as i64).saturating_mul(scale) - 1),
                    _ => t,
                };
                last_ns = last_ns.max(end);
            }
            break;
        }
        let l = (last_ns.max(0) / 1000) as u64;
        self.length_usec = Some(l);
        Ok(l)
    }

    fn load(&mut self, ci: usize) -> Result<Arc<ParsedCluster>, Error> {
        if let Some(i) = self.cache.iter().position(|(k, _)| *k == ci) {
            let hit = self.cache.remove(i);
            let c = hit.1.clone();
            self.cache.push(hit);
            return Ok(c);
        }
        let entry = self.layout.clusters[ci];
        let video: Vec<u64> = self.video.iter().flatten().map(|v| v.number).collect();
        let parsed = index_cluster(&mut self.reader, &entry, &video)?;
        if let Some(e) = &parsed.error {
            let d = match e {
                EbmlError::Truncated { element, offset } if !entry.complete => {
                    Diagnostic::Truncated {
                        element: (*element).into(),
                        offset: *offset,
                    }
                }
                e => Diagnostic::BadElement {
                    element: "Cluster".into(),
                    offset: entry.offset,
                    reason: e.to_string(),
                },
            };
            if !self.diagnostics.contains(&d) {
                self.diagnostics.push(d);
            }
        }
        let parsed = Arc::new(parsed);
        if self.cache.len() >= CACHE_CLUSTERS {
            self.cache.remove(0);
        }
        self.cache.push((ci, parsed.clone()));
        Ok(parsed)
    }

    /// The first block of `track` at or after `from`.
    fn next_block(&mut self, track: u64, from: Pos) -> Result<Option<(Pos, Block)>, Error> {
        let mut ci = from.cluster;
        let mut bi = from.block;
        while ci < self.layout.clusters.len() {
            let c = self.load(ci)?;
            if let Some(off) = c.blocks.iter().skip(bi).position(|b| b.track == track) {
                let p = Pos {
                    cluster: ci,
                    block: bi + off,
                };
                return Ok(Some((p, c.blocks[p.block].clone())));
            }
            ci += 1;
            bi = 0;
        }
        Ok(None)
    }

    /// The last block of `track` strictly before `before`.
    fn prev_block(&mut self, track: u64, before: Pos) -> Result<Option<(Pos, Block)>, Error> {
        let mut ci = before.cluster.min(self.layout.clusters.len());
        let mut limit = if before.cluster < self.layout.clusters.len() {
            before.block
        } else {
            usize::MAX
        };
        loop {
            if ci < self.layout.clusters.len() {
                let c = self.load(ci)?;
                let n = c.blocks.len().min(limit);
                if let Some(i) = c.blocks[..n].iter().rposition(|b| b.track == track) {
                    return Ok(Some((
                        Pos {
                            cluster: ci,
                            block: i,
                        },
                        c.blocks[i].clone(),
                    )));
                }
            }
            if ci == 0 {
                return Ok(None);
            }
            ci -= 1;
            limit = usize::MAX;
        }
    }

    fn block_ns(&self, b: &Block) -> i64 {
        b.time_ticks.saturating_mul(self.timestamp_scale_ns as i64)
    }

    fn make_image(
        &mut self,
        kind: usize,
        pos: Pos,
        b: &Block,
        mut data: ImageData,
    ) -> Result<Image, Error> {
        let v = self.video[kind].expect("only enabled tracks have cursors");
        let data_vec: &mut Vec<u8> = &mut data;
        match b.frames.first() {
            None => data_vec.clear(),
            // Large frames go from the file straight into the image: one copy. (Their length
            // was checked against the cluster, hence the file, when the cluster was indexed.)
            Some(f) if f.in_file => self.reader.read_into(
                f.start,
                u64::from(f.len),
                "SimpleBlock",
                f.start,
                data_vec,
            )?,
            Some(f) => {
                data_vec.clear();
                data_vec.extend_from_slice(self.load(pos.cluster)?.frame(*f));
            }
        }
        if v.swap16 {
            swap_bytes16(data_vec);
        }
        let dev_ns = i128::from(self.block_ns(b)) + i128::from(self.start_offset_ns);
        let device_usec = u64::try_from(dev_ns.max(0) / 1000).unwrap_or(u64::MAX);
        Ok(Image::new(v.format, v.width, v.height, device_usec, Vec::new()).with_data(data))
    }

    fn put(cap: &mut Capture, kind: usize, img: Image) {
        match kind {
            0 => cap.color = Some(img),
            1 => cap.depth = Some(img),
            _ => cap.ir = Some(img),
        }
    }

    /// Picks the blocks of the next (or previous) capture and moves the cursors past them.
    fn step(&mut self, forward: bool) -> Result<Option<Picked>, Error> {
        let mut cands = Vec::with_capacity(3);
        for k in 0..3 {
            let Some(v) = self.video[k] else { continue };
            let found = if forward {
                self.next_block(v.number, self.cursors[k])?
            } else {
                self.prev_block(v.number, self.cursors[k])?
            };
            if let Some((p, b)) = found {
                let t = self.block_ns(&b) + v.shift_ns;
                cands.push((k, p, b, t));
            }
        }
        let times = cands.iter().map(|c| c.3);
        let Some(anchor) = (if forward { times.min() } else { times.max() }) else {
            return Ok(None);
        };
        let half = (self.frame_period_ns / 2) as i64;
        let mut picked = Vec::with_capacity(3);
        for (k, p, b, t) in cands {
            if (t - anchor).abs() < half {
                self.cursors[k] = if forward {
                    Pos {
                        cluster: p.cluster,
                        block: p.block + 1,
                    }
                } else {
                    p
                };
                picked.push((k, p, b));
            }
        }
        Ok(Some(picked))
    }

    /// The images of `picked`, in the buffers of `old` where it has one for the stream, else in
    /// buffers from the pool.
    fn build_capture(&mut self, picked: Picked, mut old: Capture) -> Result<Capture, Error> {
        let mut spare =
            [old.color.take(), old.depth.take(), old.ir.take()].map(|i| i.map(|i| i.data));
        let mut cap = Capture {
            temperature_c: f32::NAN,
            ..Capture::default()
        };
        for (k, p, b) in picked {
            let len_bytes = b.frames.first().map_or(0, |f| f.len as usize);
            let data = spare[k].take().unwrap_or_else(|| self.pool.take(len_bytes));
            let img = self.make_image(k, p, &b, data)?;
            Self::put(&mut cap, k, img);
        }
        Ok(cap)
    }

    /// Like [`Playback::next_capture`], but reuses the pixel buffers of `capture` (the
    /// previous capture) instead of allocating new ones, which is faster when streaming.
    /// Returns false at the end, leaving `capture` as it was.
    pub fn next_capture_reusing(&mut self, capture: &mut Capture) -> Result<bool, Error> {
        match self.step(true)? {
            Some(p) => {
                let old = std::mem::take(capture);
                *capture = self.build_capture(p, old)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The next capture: the next colour/depth/IR blocks whose (depth-delay shifted) times lie
    /// within half a frame period of the earliest. `None` at the end.
    pub fn next_capture(&mut self) -> Result<Option<Capture>, Error> {
        match self.step(true)? {
            Some(p) => self.build_capture(p, Capture::default()).map(Some),
            None => Ok(None),
        }
    }

    /// The previous capture (mirror of [`Playback::next_capture`]); after `next_capture`, it
    /// returns the same capture again. `None` at the beginning.
    pub fn previous_capture(&mut self) -> Result<Option<Capture>, Error> {
        match self.step(false)? {
            Some(p) => self.build_capture(p, Capture::default()).map(Some),
            None => Ok(None),
        }
    }

    fn imu_sample(
        &mut self,
        pos: Pos,
        block: &Block,
        i: usize,
    ) -> Result<Option<ImuSample>, Error> {
        let c = self.load(pos.cluster)?;
        let Some(bytes) = sample_bytes(&c, block, i) else {
            return Ok(None);
        };
        let Some((acc_ns, acc, gyro_ns, gyro)) = decode_imu(bytes) else {
            return Ok(None);
        };
        Ok(Some(ImuSample {
            temperature_c: f32::NAN,
            acc_mps2: acc,
            acc_timestamp_usec: acc_ns / 1000,
            gyro_radps: gyro,
            gyro_timestamp_usec: gyro_ns / 1000,
        }))
    }

    /// The next IMU sample, `None` at the end.
    pub fn next_imu_sample(&mut self) -> Result<Option<ImuSample>, Error> {
        let Some(track) = self.imu_track else {
            return Ok(None);
        };
        loop {
            let Some((p, b)) = self.next_block(track, self.imu.pos)? else {
                return Ok(None);
            };
            if p != self.imu.pos {
                self.imu = ImuCursor { pos: p, sample: 0 };
            }
            let i = self.imu.sample;
            if i < sample_count(&b) {
                self.imu.sample += 1;
                if let Some(s) = self.imu_sample(p, &b, i)? {
                    return Ok(Some(s));
                }
            } else {
                self.imu = ImuCursor {
                    pos: Pos {
                        cluster: p.cluster,
                        block: p.block + 1,
                    },
                    sample: 0,
                };
            }
        }
    }

    /// The previous IMU sample (after `next_imu_sample`, the same one again); `None` at the
    /// beginning.
    pub fn previous_imu_sample(&mut self) -> Result<Option<ImuSample>, Error> {
        let Some(track) = self.imu_track else {
            return Ok(None);
        };
        loop {
            if self.imu.sample > 0 {
                let p = self.imu.pos;
                let c = self.load(p.cluster)?;
                let b = c.blocks[p.block].clone();
                self.imu.sample -= 1;
                if let Some(s) = self.imu_sample(p, &b, self.imu.sample)? {
                    return Ok(Some(s));
                }
                continue;
            }
            let Some((p, b)) = self.prev_block(track, self.imu.pos)? else {
                return Ok(None);
            };
            self.imu = ImuCursor {
                pos: p,
                sample: sample_count(&b),
            };
            if self.imu.sample == 0 {
                // An empty block: step over it.
                self.imu.sample = 0;
                if p.block == 0 && p.cluster == 0 {
                    return Ok(None);
                }
            }
        }
    }

    /// The next frame of the track named `track_name` (custom tracks; built-in tracks work
    /// too), one frame at a time. `None` at the end or for an unknown name. Each track keeps its
    /// own position, starting at the beginning of the file.
    pub fn next_data_block(&mut self, track_name: &str) -> Result<Option<DataBlock>, Error> {
        let Some(track) = self
            .layout
            .tracks
            .iter()
            .find(|t| t.name == track_name)
            .map(|t| t.number)
        else {
            return Ok(None);
        };
        let idx = match self.data_cursors.iter().position(|c| c.0 == track) {
            Some(i) => i,
            None => {
                self.data_cursors.push((
                    track,
                    ImuCursor {
                        pos: Pos::default(),
                        sample: 0,
                    },
                ));
                self.data_cursors.len() - 1
            }
        };
        loop {
            let cur = self.data_cursors[idx].1;
            let Some((p, b)) = self.next_block(track, cur.pos)? else {
                return Ok(None);
            };
            let i = if p == cur.pos { cur.sample } else { 0 };
            if i >= b.frames.len() {
                self.data_cursors[idx].1 = ImuCursor {
                    pos: Pos {
                        cluster: p.cluster,
                        block: p.block + 1,
                    },
                    sample: 0,
                };
                continue;
            }
            self.data_cursors[idx].1 = ImuCursor {
                pos: p,
                sample: i + 1,
            };
            let f = b.frames[i];
            let mut data = Vec::new();
            if f.in_file {
                self.reader.read_into(
                    f.start,
                    u64::from(f.len),
                    "SimpleBlock",
                    f.start,
                    &mut data,
                )?;
            } else {
                data.extend_from_slice(self.load(p.cluster)?.frame(f));
            }
            let n = b.frames.len() as i64;
            let mut t_ns = self.block_ns(&b);
            if n > 1 {
                let dur_ns = (b.duration_ticks.unwrap_or(0) as i64)
                    .saturating_mul(self.timestamp_scale_ns as i64);
                t_ns += i as i64 * (dur_ns - 1).max(0) / (n - 1);
            }
            let dev_ns = (i128::from(t_ns) + i128::from(self.start_offset_ns)).max(0);
            return Ok(Some(DataBlock {
                device_timestamp_usec: (dev_ns / 1000) as u64,
                data,
            }));
        }
    }

    /// Moves every stream to the first data at or after a time. `Begin`: µs from the start
    /// (negative clamps to 0); `End`: µs before the end (`last + 1 − |offset|`);
    /// `DeviceTime`: an absolute device timestamp.
    pub fn seek(&mut self, offset_usec: i64, origin: Origin) -> Result<(), Error> {
        let start_usec = (self.start_offset_ns / 1000) as i64;
        let target_usec = match origin {
            Origin::Begin => offset_usec.max(0),
            Origin::DeviceTime => (offset_usec - start_usec).max(0),
            Origin::End => {
                let len = self.recording_length_usec()? as i64;
                (len + 1 - offset_usec.abs()).max(0)
            }
        };
        let target_ns = target_usec.saturating_mul(1000);
        let scale = self.timestamp_scale_ns as i64;
        // Start one cluster before the last one that starts at or before the target.
        let first = self
            .layout
            .clusters
            .partition_point(|c| (c.timestamp_ticks as i64).saturating_mul(scale) <= target_ns)
            .saturating_sub(2);
        let end = Pos {
            cluster: self.layout.clusters.len(),
            block: 0,
        };
        let from = Pos {
            cluster: first,
            block: 0,
        };
        for k in 0..3 {
            let Some(v) = self.video[k] else { continue };
            let mut p = from;
            self.cursors[k] = loop {
                match self.next_block(v.number, p)? {
                    Some((bp, b)) if self.block_ns(&b) + v.shift_ns >= target_ns => break bp,
                    Some((bp, _)) => {
                        p = Pos {
                            cluster: bp.cluster,
                            block: bp.block + 1,
                        }
                    }
                    None => break end,
                }
            };
        }
        if let Some(track) = self.imu_track {
            let target_dev_ns = i128::from(target_ns) + i128::from(self.start_offset_ns);
            let mut p = from;
            self.imu = loop {
                match self.next_block(track, p)? {
                    Some((bp, b)) => {
                        let c = self.load(bp.cluster)?;
                        let hit = (0..sample_count(&b)).find(|i| {
                            sample_bytes(&c, &b, *i)
                                .and_then(decode_imu)
                                .is_some_and(|s| i128::from(s.0) >= target_dev_ns)
                        });
                        if let Some(i) = hit {
                            break ImuCursor { pos: bp, sample: i };
                        }
                        p = Pos {
                            cluster: bp.cluster,
                            block: bp.block + 1,
                        };
                    }
                    None => {
                        break ImuCursor {
                            pos: end,
                            sample: 0,
                        }
                    }
                }
            };
        }
        Ok(())
    }

    /// Device timestamps (µs) of every colour, depth and IR image, in file order, found without
    /// reading the images: for timelines and finding gaps. Leaves the cursors where they were.
    pub fn image_timestamps_usec(&mut self) -> Result<[Vec<u64>; 3], Error> {
        let mut out: [Vec<u64>; 3] = Default::default();
        let start = i128::from(self.start_offset_ns);
        for ci in 0..self.layout.clusters.len() {
            let c = self.load(ci)?;
            for b in &c.blocks {
                if let Some(k) = self
                    .video
                    .iter()
                    .position(|v| v.is_some_and(|v| v.number == b.track))
                {
                    let ns = i128::from(self.block_ns(b)) + start;
                    out[k].push(u64::try_from(ns.max(0) / 1000).unwrap_or(u64::MAX));
                }
            }
        }
        Ok(out)
    }
}

/// Big-endian 16-bit samples to little-endian, eight bytes at a time.
fn swap_bytes16(data: &mut [u8]) {
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes(c.try_into().expect("8 bytes"));
        let s = ((v & 0x00FF_00FF_00FF_00FF) << 8) | ((v >> 8) & 0x00FF_00FF_00FF_00FF);
        c.copy_from_slice(&s.to_ne_bytes());
    }
    for px in chunks.into_remainder().chunks_exact_mut(2) {
        px.swap(0, 1);
    }
}

/// Samples in an IMU block: each frame holds one or more 40-byte samples (v0.8 files packed
/// several into one unlaced frame).
fn sample_count(b: &Block) -> usize {
    b.frames
        .iter()
        .map(|f| (f.len as usize / IMU_SAMPLE_BYTES).max(1))
        .sum()
}

fn sample_bytes<'a>(c: &'a ParsedCluster, b: &Block, mut i: usize) -> Option<&'a [u8]> {
    for f in &b.frames {
        let n = (f.len as usize / IMU_SAMPLE_BYTES).max(1);
        if i < n {
            let bytes = c.frame(*f);
            return bytes.get(i * IMU_SAMPLE_BYTES..(i + 1) * IMU_SAMPLE_BYTES);
        }
        i -= n;
    }
    None
}
