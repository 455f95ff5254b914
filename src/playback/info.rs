//! Recording summary for `freek4a info FILE [--json]`: modes, tracks, duration, counts, device
//! identity, dropped-frame tags and what the reader had to work around.

use std::fmt;
use std::io::{Read, Seek};
use std::path::Path;

use serde::Serialize;

use super::{sample_count, Diagnostic, Error, Origin, Playback, RecordConfig, Tag, TrackKind};

/// Prefix of the tags freek4a writes with dropped-frame counts.
pub const DROPPED_TAG_PREFIX: &str = "FREEK4A_DROPPED_";

/// One track in the summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrackSummary {
    /// Track name.
    pub name: String,
    /// Role (`None`, serialised `CUSTOM`: a track of no K4A role).
    #[serde(serialize_with = "crate::mkv::k4a::serialize_role")]
    pub kind: Option<TrackKind>,
    /// TrackNumber.
    pub number: u64,
    /// CodecID.
    pub codec_id: String,
    /// FOURCC of a `V_MS/VFW/FOURCC` track.
    pub fourcc: Option<String>,
    /// Width × height for video tracks.
    pub width: Option<u32>,
    /// Height.
    pub height: Option<u32>,
    /// Frames per second from DefaultDuration.
    pub fps: Option<f64>,
    /// Blocks in the file (images for video tracks).
    pub blocks: u64,
    /// Frames inside those blocks (IMU samples for the IMU track).
    pub frames: u64,
}

/// One attachment in the summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AttachmentSummary {
    /// FileName.
    pub file_name: String,
    /// FileMimeType.
    pub mime_type: String,
    /// Size in bytes.
    pub size_bytes: usize,
}

/// Version of the `freek4a info --json` document (README, "info --json"). Raised when a field
/// changes meaning or disappears; new fields may appear without a change.
pub const INFO_SCHEMA_VERSION: u32 = 1;

/// Everything `freek4a info` prints. As JSON (`freek4a info --json`), enums carry the SDK's
/// names (`K4A_DEPTH_MODE_NFOV_UNBINNED`...) and the document starts with `schema_version`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordingInfo {
    /// [`INFO_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// File size in bytes.
    pub file_size_bytes: u64,
    /// Info.WritingApp.
    pub writing_app: Option<String>,
    /// The recording configuration.
    pub config: RecordConfig,
    /// `K4A_COLOR_MODE` (e.g. `MJPG_1080P`).
    pub color_mode: Option<String>,
    /// Recording length in µs, as Microsoft's playback computes it.
    pub length_usec: u64,
    /// Info.Duration in µs, if present.
    pub info_duration_usec: Option<f64>,
    /// Start offset (device time of the first data) in µs.
    pub start_offset_usec: u64,
    /// Captures as Microsoft's playback groups them.
    pub captures: u64,
    /// Colour images.
    pub color_images: u64,
    /// Depth images.
    pub depth_images: u64,
    /// IR images.
    pub ir_images: u64,
    /// IMU samples.
    pub imu_samples: u64,
    /// Device time of the first and last image, µs.
    pub first_image_usec: Option<u64>,
    /// Device time of the last image, µs.
    pub last_image_usec: Option<u64>,
    /// Tracks in file order.
    pub tracks: Vec<TrackSummary>,
    /// Clusters found.
    pub clusters: usize,
    /// `K4A_DEVICE_SERIAL_NUMBER`.
    pub serial_number: Option<String>,
    /// `K4A_COLOR_FIRMWARE_VERSION`.
    pub color_firmware: Option<String>,
    /// `K4A_DEPTH_FIRMWARE_VERSION`.
    pub depth_firmware: Option<String>,
    /// Calibration JSON size in bytes (without a trailing NUL).
    pub calibration_bytes: Option<usize>,
    /// Attachments.
    pub attachments: Vec<AttachmentSummary>,
    /// Dropped-frame tags (`FREEK4A_DROPPED_*`) as name and count (a JSON object).
    #[serde(serialize_with = "ser_dropped")]
    pub dropped: Vec<(String, u64)>,
    /// Every tag in file order.
    pub tags: Vec<Tag>,
    /// What the reader worked around or found damaged (JSON: objects with `kind`, the
    /// variant's fields, and `message` in words).
    #[serde(serialize_with = "ser_diagnostics")]
    pub diagnostics: Vec<Diagnostic>,
}

fn ser_dropped<S: serde::Serializer>(v: &[(String, u64)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(v.len()))?;
    for (k, n) in v {
        m.serialize_entry(k, n)?;
    }
    m.end()
}

fn ser_diagnostics<S: serde::Serializer>(v: &[Diagnostic], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for d in v {
        let mut obj = serde_json::to_value(d).map_err(serde::ser::Error::custom)?;
        if let Some(o) = obj.as_object_mut() {
            o.insert("message".into(), d.to_string().into());
        }
        seq.serialize_element(&obj)?;
    }
    seq.end()
}

impl RecordingInfo {
    /// Opens and summarises a recording file.
    pub fn read(path: impl AsRef<Path>) -> Result<RecordingInfo, Error> {
        let mut pb = Playback::open(path)?;
        Self::from_playback(&mut pb)
    }

    /// Summarises an open recording (reads it through once; leaves it rewound).
    pub fn from_playback<R: Read + Seek>(pb: &mut Playback<R>) -> Result<RecordingInfo, Error> {
        let length_usec = pb.recording_length_usec()?;
        let mut tracks: Vec<TrackSummary> = pb
            .layout
            .tracks
            .iter()
            .map(|t| TrackSummary {
                name: t.name.clone(),
                kind: t.kind,
                number: t.number,
                codec_id: t.codec_id.clone(),
                fourcc: t.fourcc().map(|f| String::from_utf8_lossy(&f).into_owned()),
                width: t.width,
                height: t.height,
                fps: t
                    .default_duration_ns
                    .filter(|d| *d > 0)
                    .map(|d| 1e9 / d as f64),
                blocks: 0,
                frames: 0,
            })
            .collect();
        for ci in 0..pb.layout.clusters.len() {
            let c = pb.load(ci)?;
            for b in &c.blocks {
                if let Some(t) = tracks.iter_mut().find(|t| t.number == b.track) {
                    t.blocks += 1;
                    t.frames += if t.kind == Some(TrackKind::Imu) {
                        sample_count(b) as u64
                    } else {
                        b.frames.len() as u64
                    };
                }
            }
        }
        let count = |k: TrackKind| {
            tracks
                .iter()
                .filter(|t| t.kind == Some(k))
                .map(|t| t.frames)
                .sum::<u64>()
        };
        pb.seek(0, Origin::Begin)?;
        let mut captures = 0u64;
        let mut first_image_usec = None;
        let mut last_image_usec = None;
        let start = i128::from(pb.start_offset_ns);
        while let Some(picked) = pb.step(true)? {
            captures += 1;
            for (_, _, b) in &picked {
                let usec = ((i128::from(pb.block_ns(b)) + start).max(0) / 1000) as u64;
                first_image_usec = Some(first_image_usec.map_or(usec, |f: u64| f.min(usec)));
                last_image_usec = Some(last_image_usec.map_or(usec, |l: u64| l.max(usec)));
            }
        }
        pb.seek(0, Origin::Begin)?;
        let tag = |n: &str| pb.tag(n).map(str::to_owned);
        let dropped = pb
            .tags()
            .iter()
            .filter_map(|t| {
                let name = t.name.strip_prefix(DROPPED_TAG_PREFIX)?;
                Some((name.to_owned(), t.value.trim().parse().ok()?))
            })
            .collect();
        Ok(RecordingInfo {
            schema_version: INFO_SCHEMA_VERSION,
            file_size_bytes: pb.reader.file_len(),
            writing_app: pb.writing_app().map(str::to_owned),
            config: pb.config.clone(),
            color_mode: tag("K4A_COLOR_MODE"),
            length_usec,
            info_duration_usec: pb.info_duration_usec(),
            start_offset_usec: pb.config.start_timestamp_offset_usec,
            captures,
            color_images: count(TrackKind::Color),
            depth_images: count(TrackKind::Depth),
            ir_images: count(TrackKind::Ir),
            imu_samples: count(TrackKind::Imu),
            first_image_usec,
            last_image_usec,
            tracks,
            clusters: pb.layout.clusters.len(),
            serial_number: tag("K4A_DEVICE_SERIAL_NUMBER"),
            color_firmware: tag("K4A_COLOR_FIRMWARE_VERSION"),
            depth_firmware: tag("K4A_DEPTH_FIRMWARE_VERSION"),
            calibration_bytes: pb.calibration().map(<[u8]>::len),
            attachments: pb
                .attachments()
                .iter()
                .map(|a| AttachmentSummary {
                    file_name: a.file_name.clone(),
                    mime_type: a.mime_type.clone(),
                    size_bytes: a.data.len(),
                })
                .collect(),
            dropped,
            tags: pb.tags().to_vec(),
            diagnostics: pb.diagnostics().to_vec(),
        })
    }
}

fn secs(usec: u64) -> String {
    format!("{:.3} s", usec as f64 / 1e6)
}

impl fmt::Display for RecordingInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let color = match (&self.color_mode, c.color_track_enabled) {
            (Some(m), _) => m.clone(),
            (None, true) => c
                .color_resolution
                .sdk_name()
                .trim_start_matches("K4A_COLOR_RESOLUTION_")
                .to_string(),
            (None, false) => "OFF".into(),
        };
        writeln!(f, "Colour mode:      {color}")?;
        writeln!(f, "Depth mode:       {}", c.depth_mode.name())?;
        writeln!(f, "Frame rate:       {} fps", c.camera_fps.hz())?;
        writeln!(
            f,
            "IMU:              {}",
            if c.imu_track_enabled { "ON" } else { "OFF" }
        )?;
        writeln!(f, "Depth delay:      {} µs", c.depth_delay_off_color_usec)?;
        write!(f, "Wired sync:       {}", c.wired_sync_mode.name())?;
        if c.subordinate_delay_off_master_usec != 0 {
            write!(f, " (delay {} µs)", c.subordinate_delay_off_master_usec)?;
        }
        writeln!(f)?;
        writeln!(f, "Length:           {}", secs(self.length_usec))?;
        writeln!(
            f,
            "Start offset:     {} µs (device time)",
            self.start_offset_usec
        )?;
        if let (Some(a), Some(b)) = (self.first_image_usec, self.last_image_usec) {
            writeln!(f, "Images:           {a} µs … {b} µs (device time)")?;
        }
        writeln!(
            f,
            "Captures:         {} (colour {}, depth {}, IR {})",
            self.captures, self.color_images, self.depth_images, self.ir_images
        )?;
        writeln!(f, "IMU samples:      {}", self.imu_samples)?;
        let unknown = || "unknown".to_string();
        writeln!(
            f,
            "Device:           serial {}, firmware colour {} / depth {}",
            self.serial_number.clone().unwrap_or_else(unknown),
            self.color_firmware.clone().unwrap_or_else(unknown),
            self.depth_firmware.clone().unwrap_or_else(unknown)
        )?;
        match self.calibration_bytes {
            Some(n) => writeln!(f, "Calibration:      {n} bytes")?,
            None => writeln!(f, "Calibration:      none")?,
        }
        if let Some(app) = &self.writing_app {
            writeln!(f, "Written by:       {app}")?;
        }
        writeln!(
            f,
            "File:             {} bytes, {} clusters",
            self.file_size_bytes, self.clusters
        )?;
        writeln!(f, "Tracks:")?;
        for t in &self.tracks {
            write!(f, "  {:>2} {:<8} {:<16}", t.number, t.name, t.codec_id)?;
            if let Some(cc) = &t.fourcc {
                write!(f, " {cc}")?;
            }
            if let (Some(w), Some(h)) = (t.width, t.height) {
                write!(f, " {w}x{h}")?;
            }
            writeln!(f, " — {} blocks, {} frames", t.blocks, t.frames)?;
        }
        if !self.attachments.is_empty() {
            writeln!(f, "Attachments:")?;
            for a in &self.attachments {
                writeln!(
                    f,
                    "  {} ({}, {} bytes)",
                    a.file_name, a.mime_type, a.size_bytes
                )?;
            }
        }
        if !self.dropped.is_empty() {
            writeln!(f, "Dropped frames:")?;
            for (n, v) in &self.dropped {
                writeln!(f, "  {n}: {v}")?;
            }
        }
        if self.diagnostics.is_empty() {
            writeln!(f, "Problems:         none")?;
        } else {
            writeln!(f, "Problems:")?;
            for d in &self.diagnostics {
                writeln!(f, "  - {d}")?;
            }
        }
        Ok(())
    }
}
