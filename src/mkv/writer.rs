//! The K4A recording layout writer (crash-safe), over `Write + Seek`.
//!
//! [`K4aWriter`] writes the layout Microsoft's `libk4arecord` writes (same elements, order,
//! reserved regions, size-field widths, tags, clusters, cues and CRCs), with one difference
//! that makes it crash-safe: everything a reader needs is valid from the header on. While
//! recording, the Segment size is the EBML "unknown" value, the SeekHead lists Info, Tracks,
//! Attachments (when there are any) and Tags (not Cues yet), Info is present, and the Tags are
//! re-rendered in place with `K4A_START_OFFSET_NS` just before the first cluster reaches the
//! file. A file cut at any byte after its first cluster therefore opens in Microsoft's playback.
//! [`K4aWriter::finish`] appends the Cues and then patches Info (Duration), Tags, SeekHead and
//! the Segment size, each an overwrite of space reserved up front.
//!
//! Data is grouped like the SDK does: 32 ms clusters on an absolute grid of device time, written
//! once the newest data is 2 s past their end (or earlier when the pending data would exceed a
//! byte budget), so memory stays bounded.

use std::collections::BTreeMap;
use std::io::{self, Seek, SeekFrom, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use super::ebml::{self, EbmlError};
use super::ids;
use super::k4a::render::{self as layout, InfoValues, TrackPlan, TrackRole};
use super::k4a::{
    Attachment, CuePoints, HeaderPositions, Tag, INFO_REGION, SEEK_HEAD_REGION, START_OFFSET_TAG,
    TAGS_VOID,
};
pub use super::k4a::{TrackKind, CUE_ENTRY_GAP_NS};
use crate::types::{Capture, DeviceConfig, Image, ImageFormat, ImuSample, Version};

/// Width of a cluster window on the device-time grid.
pub const CLUSTER_LENGTH_NS: u64 = 32_000_000;
/// Pending clusters are written once the newest data is this far past their end.
pub const CLUSTER_WRITE_DELAY_NS: u64 = 2_000_000_000;
/// Default budget for data held in pending clusters.
pub const DEFAULT_PENDING_LIMIT_BYTES: usize = 24 << 20;
/// Size of one IMU frame in the file.
pub const IMU_FRAME_BYTES: usize = 40;
/// Segment data starts here in every file this writer produces.
pub const SEGMENT_DATA_OFFSET: u64 = 52;

/// Lace count is one byte: at most 256 frames per block.
const MAX_LACED_FRAMES: usize = 256;

/// The prefix of the tags only freek4a writes.
pub const OUR_TAG_PREFIX: &str = "FREEK4A_";

/// The crate version, as written in `FREEK4A_VERSION` and the application names.
pub const CRATE_VERSION: &str = env!("CARGO_PKG_VERSION");

pub use crate::types::DropCounts;

/// What the SDK learns from an open device: written as tags and the calibration attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedDevice {
    /// Serial number (`K4A_DEVICE_SERIAL_NUMBER`); omitted when `None` or empty.
    pub serial_number: Option<String>,
    /// Colour camera firmware (`K4A_COLOR_FIRMWARE_VERSION`).
    pub color_firmware: Version,
    /// Depth camera firmware (`K4A_DEPTH_FIRMWARE_VERSION`).
    pub depth_firmware: Version,
    /// The device's raw calibration JSON (attached as `calibration.json`, no trailing NUL).
    pub calibration_json: Vec<u8>,
}

/// A track of the caller's own, beside the K4A streams (the SDK's custom tracks,
/// `k4a_record_add_custom_video_track` and `_subtitle_track` without high-frequency data): one
/// SimpleBlock per [`K4aWriter::write_custom`] call. Microsoft's playback reads captures
/// without it and hands its blocks out through `k4a_playback_get_next_data_block`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomTrack {
    /// Track name, `[A-Z0-9_-]+`, unique, not one of the K4A streams' names; also tagged as
    /// `K4A_CUSTOM_TRACK_<name>`.
    pub name: String,
    /// Matroska CodecID.
    pub codec_id: String,
    /// CodecPrivate, left out when `None`.
    pub codec_private: Option<Vec<u8>>,
    /// A video track of this size and rate; `None` makes a subtitle track.
    pub video: Option<CustomVideo>,
    /// K4A streams whose data this track carries in another form: their drop counts are
    /// written (`FREEK4A_DROPPED_*`) as if they had tracks of their own.
    pub carries: Vec<TrackKind>,
}

/// The video settings of a [`CustomTrack`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CustomVideo {
    /// PixelWidth.
    pub width: u32,
    /// PixelHeight.
    pub height: u32,
    /// Frames per second (DefaultDuration is one frame).
    pub frame_rate: u32,
}

/// A file attached to the recording besides the calibration (`k4a_record_add_attachment`):
/// MIME type `application/octet-stream`, no tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedFile {
    /// FileName.
    pub file_name: String,
    /// FileData.
    pub data: Vec<u8>,
}

/// Everything that shapes a recording's header.
#[derive(Clone, Debug)]
pub struct RecordingSettings {
    /// Camera configuration (tracks, modes, fps, delays, sync).
    pub config: DeviceConfig,
    /// Whether there is an IMU track.
    pub imu: bool,
    /// Device identity and calibration; `None` records like the SDK does without a device.
    pub device: Option<RecordedDevice>,
    /// User tags (global), in order. Names must match `[A-Z0-9_-]+`.
    pub tags: Vec<(String, String)>,
    /// Info.WritingApp (default `freek4a-<version>`).
    pub writing_app: String,
    /// Host wall-clock time at start: Info.DateUTC and `FREEK4A_HOST_START_TIME`.
    pub start_time: SystemTime,
    /// Seed for TrackUID / FileUID; `None` derives one from the clock.
    pub uid_seed: Option<u64>,
    /// Budget for data held in pending clusters; older clusters are written early past it.
    pub pending_limit_bytes: usize,
    /// How far (device time) the newest data must be past a cluster's end before the cluster is
    /// written. Data older than a written cluster is refused, so this is how late an item may
    /// arrive; it is also what a killed process loses. The SDK's value,
    /// [`CLUSTER_WRITE_DELAY_NS`], is the default.
    pub cluster_write_delay_ns: u64,
    /// Custom tracks, after the K4A tracks in this order.
    pub custom_tracks: Vec<CustomTrack>,
    /// Files attached after the calibration, in this order.
    pub attachments: Vec<AttachedFile>,
}

impl RecordingSettings {
    /// Settings for `config`, IMU on or off, no device info, no user tags, started now.
    pub fn new(config: DeviceConfig, imu: bool) -> RecordingSettings {
        RecordingSettings {
            config,
            imu,
            device: None,
            tags: Vec::new(),
            writing_app: format!("freek4a-{CRATE_VERSION}"),
            start_time: SystemTime::now(),
            uid_seed: None,
            pending_limit_bytes: DEFAULT_PENDING_LIMIT_BYTES,
            cluster_write_delay_ns: CLUSTER_WRITE_DELAY_NS,
            custom_tracks: Vec::new(),
            attachments: Vec::new(),
        }
    }
}

/// Errors of the recording writer. I/O errors name the element or step that failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Writing or seeking failed.
    #[error("writing {what} failed: {source}")]
    Io {
        /// The element or step.
        what: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// A tag name outside `[A-Z0-9_-]+`.
    #[error("invalid tag name {0:?}: names must match [A-Z0-9_-]+")]
    InvalidTagName(String),
    /// A custom track name outside `[A-Z0-9_-]+`, taken twice, or a K4A stream's name.
    #[error("invalid custom track name {0:?}: names must match [A-Z0-9_-]+, be unique and not name a K4A track")]
    InvalidTrackName(String),
    /// Data for a custom track the settings do not declare.
    #[error("the recording has no custom track {0:?}")]
    NoSuchTrack(String),
    /// A custom track's data older than the last cluster already written.
    #[error(
        "{track} data at {timestamp_usec} µs is older than the data already written (up to {written_until_usec} µs)"
    )]
    CustomTooLate {
        /// The custom track's name.
        track: String,
        /// The data's device timestamp.
        timestamp_usec: u64,
        /// End of the last cluster written.
        written_until_usec: u64,
    },
    /// A header element outgrew its reserved region.
    #[error("{what} does not fit its reserved region: {source}")]
    NoRoom {
        /// The element.
        what: &'static str,
        /// Details.
        source: EbmlError,
    },
    /// Data for a stream the settings do not record.
    #[error("the recording has no {0:?} track")]
    StreamDisabled(TrackKind),
    /// An image whose format or size does not match the configured mode.
    #[error("{kind:?} image is {found}, the recording expects {expected}")]
    WrongImage {
        /// The stream.
        kind: TrackKind,
        /// What the image is.
        found: String,
        /// What the track holds.
        expected: String,
    },
    /// An item older than the last cluster already written.
    #[error(
        "{kind:?} item at {timestamp_usec} µs is older than the data already written (up to {written_until_usec} µs)"
    )]
    TooLate {
        /// The stream.
        kind: TrackKind,
        /// The item's device timestamp.
        timestamp_usec: u64,
        /// End of the last cluster written.
        written_until_usec: u64,
    },
    /// An earlier write error stopped the writer; the cause is that error (an I/O error's
    /// kind and message, as the OS error itself cannot be copied).
    #[error("the writer stopped after an earlier error")]
    Stopped(#[source] Box<WriteError>),
}

impl WriteError {
    /// The same error again, for [`WriteError::Stopped`].
    fn replay(&self) -> WriteError {
        match self {
            WriteError::Io { what, source } => WriteError::Io {
                what,
                source: io::Error::new(source.kind(), source.to_string()),
            },
            WriteError::InvalidTagName(n) => WriteError::InvalidTagName(n.clone()),
            WriteError::InvalidTrackName(n) => WriteError::InvalidTrackName(n.clone()),
            WriteError::NoSuchTrack(n) => WriteError::NoSuchTrack(n.clone()),
            WriteError::CustomTooLate {
                track,
                timestamp_usec,
                written_until_usec,
            } => WriteError::CustomTooLate {
                track: track.clone(),
                timestamp_usec: *timestamp_usec,
                written_until_usec: *written_until_usec,
            },
            WriteError::NoRoom { what, source } => WriteError::NoRoom {
                what,
                source: source.clone(),
            },
            WriteError::StreamDisabled(k) => WriteError::StreamDisabled(*k),
            WriteError::WrongImage {
                kind,
                found,
                expected,
            } => WriteError::WrongImage {
                kind: *kind,
                found: found.clone(),
                expected: expected.clone(),
            },
            WriteError::TooLate {
                kind,
                timestamp_usec,
                written_until_usec,
            } => WriteError::TooLate {
                kind: *kind,
                timestamp_usec: *timestamp_usec,
                written_until_usec: *written_until_usec,
            },
            WriteError::Stopped(e) => WriteError::Stopped(Box::new(e.replay())),
        }
    }
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> WriteError {
    move |source| WriteError::Io { what, source }
}

/// Summary of a finished recording.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileSummary {
    /// Clusters written.
    pub clusters: u64,
    /// Colour, depth and IR blocks written.
    pub images: u64,
    /// IMU samples written.
    pub imu_samples: u64,
    /// File length in bytes.
    pub bytes: u64,
    /// Cue points written.
    pub cue_points: u64,
}

#[derive(Debug)]
enum Payload {
    /// File bytes and their CRC-32, computed on arrival while the bytes are still in cache.
    Image(Vec<u8>, crc32fast::Hasher),
    Imu([u8; IMU_FRAME_BYTES]),
}

impl Payload {
    fn bytes(&self) -> &[u8] {
        match self {
            Payload::Image(v, _) => v,
            Payload::Imu(a) => a,
        }
    }
}

#[derive(Debug)]
struct Item {
    ts_ns: u64,
    seq: u64,
    track: usize,
    payload: Payload,
}

#[derive(Debug, Default)]
struct PendingCluster {
    items: Vec<Item>,
    bytes: usize,
}

/// Tiny deterministic generator for UIDs (splitmix64).
struct UidGen(u64);

impl UidGen {
    fn next(&mut self) -> u64 {
        {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            // Below 2^60 like the SDK's, but always 18 decimal digits (so always 8 bytes): the
            // layout then never shifts by a byte at random.
            const LOW: u64 = 100_000_000_000_000_000;
            LOW + z % (9 * LOW)
        }
    }
}

#[derive(Clone, Copy)]
enum PayloadKind {
    Image,
    Imu,
}

fn valid_tag_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Bytes swapped per step of [`swap16_with_crc`]: small enough to stay in L1/L2 between the
/// swap and the CRC.
const SWAP_CHUNK_BYTES: usize = 32 << 10;

/// Swaps every 16-bit sample to big-endian in place and returns the CRC-32 of the result, in one
/// pass over the data (a word at a time, so the compiler vectorises it).
fn swap16_with_crc(data: &mut [u8]) -> crc32fast::Hasher {
    const LOW: u64 = 0x00FF_00FF_00FF_00FF;
    let mut crc = crc32fast::Hasher::new();
    for chunk in data.chunks_mut(SWAP_CHUNK_BYTES) {
        let (words, rest) = chunk.as_chunks_mut::<8>();
        for w in words {
            // Byte-wise operation, so it swaps pairs whatever the host's endianness.
            let x = u64::from_ne_bytes(*w);
            *w = (((x & LOW) << 8) | ((x >> 8) & LOW)).to_ne_bytes();
        }
        for px in rest.as_chunks_mut::<2>().0 {
            px.swap(0, 1);
        }
        crc.update(chunk);
    }
    crc
}

/// A capture's images in file form: depth and IR swapped to big-endian, each with the CRC-32 of
/// its bytes, empty images left out. Preparing is the bulk of the CPU work per capture and needs
/// no writer, so it can run on another thread ([`K4aWriter::write_prepared`] takes the result):
/// `record::RecordingWriter` runs it on the thread that submits the capture.
#[derive(Debug)]
pub struct PreparedCapture {
    images: Vec<(TrackKind, Image, crc32fast::Hasher)>,
}

impl PreparedCapture {
    /// Swaps and checksums the images of `capture` (colour, depth, IR order).
    pub fn new(capture: Capture) -> PreparedCapture {
        let mut images = Vec::with_capacity(3);
        for (kind, img) in [
            (TrackKind::Color, capture.color),
            (TrackKind::Depth, capture.depth),
            (TrackKind::Ir, capture.ir),
        ] {
            let Some(mut img) = img else { continue };
            if img.data.is_empty() {
                continue;
            }
            let crc = if kind == TrackKind::Color {
                let mut crc = crc32fast::Hasher::new();
                crc.update(&img.data);
                crc
            } else {
                swap16_with_crc(&mut img.data)
            };
            images.push((kind, img, crc));
        }
        PreparedCapture { images }
    }
}

/// A block ready to render: SimpleBlock for one image, BlockGroup for a run of IMU frames.
struct BlockPlan {
    track_number: u64,
    rel_usec: i16,
    /// The block's items: `items[first..first + count]`.
    first: usize,
    count: usize,
    /// A BlockGroup (IMU), laced when it holds more than one frame.
    group: bool,
    duration_usec: u64,
}

impl BlockPlan {
    fn laced(&self) -> bool {
        self.group && self.count > 1
    }
}

/// A piece of a rendered cluster: a range of the header scratch buffer, or an item's payload.
enum Part {
    Scratch(usize, usize),
    Data(usize),
}

/// A cluster ready to send: its header (id, size, CRC-32) and its body's parts.
struct RenderedCluster {
    head: Vec<u8>,
    parts: Vec<Part>,
    body_len: u64,
}

impl RenderedCluster {
    fn total_len(&self) -> u64 {
        self.head.len() as u64 + self.body_len
    }
}

/// Renders the Timestamp and the block headers into `scratch` and the cluster header with the
/// CRC-32 of the whole body (payload CRCs were computed on arrival and are combined here).
fn render_cluster(
    scratch: &mut Vec<u8>,
    items: &[Item],
    plans: &[BlockPlan],
    cluster_usec: u64,
) -> RenderedCluster {
    let mut parts = Vec::with_capacity(plans.len() * 3);
    let mut body_len = 0u64;
    // Records the scratch bytes from `from` on as a part; returns their length.
    let push = |parts: &mut Vec<Part>, scratch: &[u8], from: usize| {
        parts.push(Part::Scratch(from, scratch.len()));
        (scratch.len() - from) as u64
    };
    let ts_start = scratch.len();
    ebml::put_uint(scratch, ids::TIMESTAMP, cluster_usec);
    body_len += push(&mut parts, scratch, ts_start);
    for p in plans {
        let frames = &items[p.first..p.first + p.count];
        let payload_len: u64 = frames
            .iter()
            .map(|it| it.payload.bytes().len() as u64)
            .sum();
        let track_vint_len = ebml::size_len(p.track_number) as u64;
        let block_len = track_vint_len + 3 + u64::from(p.laced()) + payload_len;
        let h0 = scratch.len();
        if p.group {
            let dur_len = 1 + 1 + ebml::uint_len(p.duration_usec) as u64;
            let group_len = ebml::header_len(ids::BLOCK, block_len) as u64 + block_len + dur_len;
            ebml::put_header(scratch, ids::BLOCK_GROUP, group_len);
            ebml::put_header(scratch, ids::BLOCK, block_len);
        } else {
            ebml::put_header(scratch, ids::SIMPLE_BLOCK, block_len);
        }
        // Track numbers below 127 code in one byte; the size coder gives the same bytes.
        ebml::put_size(scratch, p.track_number);
        scratch.extend_from_slice(&p.rel_usec.to_be_bytes());
        match (p.group, p.laced()) {
            (false, _) => scratch.push(0x80),
            (true, false) => scratch.push(0x00),
            (true, true) => scratch.extend_from_slice(&[0x04, (p.count - 1) as u8]),
        }
        body_len += push(&mut parts, scratch, h0) + payload_len;
        parts.extend((p.first..p.first + p.count).map(Part::Data));
        if p.group {
            let d0 = scratch.len();
            ebml::put_uint(scratch, ids::BLOCK_DURATION, p.duration_usec);
            body_len += push(&mut parts, scratch, d0);
        }
    }
    let mut crc = crc32fast::Hasher::new();
    for part in &parts {
        match *part {
            Part::Scratch(a, b) => crc.update(&scratch[a..b]),
            Part::Data(k) => match &items[k].payload {
                Payload::Image(_, c) => crc.combine(c),
                Payload::Imu(f) => crc.update(f),
            },
        }
    }
    let mut head = Vec::with_capacity(20);
    ebml::put_header(&mut head, ids::CLUSTER, body_len + 6);
    head.extend_from_slice(&ebml::crc32_element_from(crc.finalize()));
    RenderedCluster {
        head,
        parts,
        body_len,
    }
}

/// Bytes of a cluster handed to the sink per write, at least (see [`send_cluster`]); a
/// buffered sink of up to this capacity passes such writes straight to the file.
const STAGE_BYTES: usize = 1 << 20;
const PAGE_BYTES: usize = 4096;

/// A page-aligned buffer that cluster bytes are copied into on their way to the sink.
struct Stage<'a> {
    area: &'a mut [u8],
    start: usize,
    fill: usize,
}

impl<'a> Stage<'a> {
    /// Filling starts at the file position's offset within its page, so every byte sits at
    /// the same page offset in the buffer as in the file, and every write but a cluster's last
    /// is at least [`STAGE_BYTES`].
    fn new(buf: &'a mut Vec<u8>, file_pos: u64) -> Stage<'a> {
        let len = STAGE_BYTES + PAGE_BYTES;
        if buf.len() < len + PAGE_BYTES {
            buf.resize(len + PAGE_BYTES, 0);
        }
        let base = buf.as_ptr().align_offset(PAGE_BYTES);
        let base = if base < PAGE_BYTES { base } else { 0 };
        let fill = (file_pos % PAGE_BYTES as u64) as usize;
        Stage {
            area: &mut buf[base..base + len],
            start: fill,
            fill,
        }
    }

    fn put<W: Write>(&mut self, w: &mut W, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let n = (self.area.len() - self.fill).min(bytes.len());
            self.area[self.fill..self.fill + n].copy_from_slice(&bytes[..n]);
            self.fill += n;
            bytes = &bytes[n..];
            if self.fill == self.area.len() {
                w.write_all(&self.area[self.start..])?;
                (self.start, self.fill) = (0, 0);
            }
        }
        Ok(())
    }

    fn finish<W: Write>(self, w: &mut W) -> io::Result<()> {
        w.write_all(&self.area[self.start..self.fill])
    }
}

/// Sends a rendered cluster that starts at file position `file_pos`: its header, block
/// headers and payloads are copied into `stage`, which is written whenever full. The kernel
/// then copies into the page cache from memory this thread has just written, at the same
/// offset within a page as the file, instead of from image buffers that other threads filled
/// long before: measured on the 2-core build machine, that copy took 2–4× the CPU time of the
/// extra copy into the stage.
fn send_cluster<W: Write>(
    w: &mut W,
    cluster: &RenderedCluster,
    scratch: &[u8],
    items: &[Item],
    stage: &mut Vec<u8>,
    file_pos: u64,
) -> io::Result<()> {
    let mut stage = Stage::new(stage, file_pos);
    stage.put(w, &cluster.head)?;
    for part in &cluster.parts {
        match *part {
            Part::Scratch(a, b) => stage.put(w, &scratch[a..b])?,
            Part::Data(k) => stage.put(w, items[k].payload.bytes())?,
        }
    }
    stage.finish(w)
}

/// Writes one K4A recording. See the module docs for the layout and its guarantees.
pub struct K4aWriter<W: Write + Seek> {
    w: W,
    settings: RecordingSettings,
    tracks: Vec<TrackPlan>,
    muxing_app: String,
    date_ns_2001: i64,
    calibration_uid: Option<u64>,
    /// FileUIDs of `settings.attachments`.
    attachment_uids: Vec<u64>,
    /// SDK tags + ours, without the start offset and drop counts.
    tag_entries: Vec<Tag>,
    /// How many of `tag_entries` the SDK would write too.
    sdk_tag_count: usize,
    dropped: DropCounts,
    /// Segment-relative positions of the header elements (set by `write_header`).
    positions: HeaderPositions,
    /// Absolute position of the Tags.
    tags_pos: u64,
    /// Tags + following Void end here (absolute).
    tags_region_end: u64,
    /// Absolute end of data (where the next cluster goes).
    end: u64,
    pending: BTreeMap<u64, PendingCluster>,
    pending_bytes: usize,
    written_until_ns: u64,
    newest_ns: u64,
    /// Newest image and newest IMU timestamps seen: clusters are written against the older of
    /// the two, so one stream's backlog (the IMU queue drained after a capture) is not late.
    newest_image_ns: Option<u64>,
    newest_imu_ns: Option<u64>,
    seq: u64,
    start_offset_ns: Option<u64>,
    cues: CuePoints,
    summary: FileSummary,
    stopped: Option<WriteError>,
    scratch: Vec<u8>,
    /// The buffer clusters are sent through ([`send_cluster`]).
    stage: Vec<u8>,
    /// Image buffers of written clusters, kept for [`K4aWriter::take_spent_buffers`] when
    /// recycling is on.
    spent: Vec<Vec<u8>>,
    recycle: bool,
}

impl<W: Write + Seek> K4aWriter<W> {
    /// Writes the header (EBML header, Segment, SeekHead, Info, Tracks, Attachments, Tags and
    /// reserved space) at the current start of `w`, which must be empty or overwritable.
    pub fn create(mut w: W, settings: RecordingSettings) -> Result<K4aWriter<W>, WriteError> {
        for (name, _) in &settings.tags {
            if !valid_tag_name(name) {
                return Err(WriteError::InvalidTagName(name.clone()));
            }
        }
        for (i, t) in settings.custom_tracks.iter().enumerate() {
            let builtin = TrackKind::ALL
                .iter()
                .any(|k| k.accepted_names().contains(&t.name.as_str()));
            let taken = settings.custom_tracks[..i].iter().any(|o| o.name == t.name);
            if !valid_tag_name(&t.name) || builtin || taken {
                return Err(WriteError::InvalidTrackName(t.name.clone()));
            }
        }
        let since_epoch = settings
            .start_time
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let seed = settings.uid_seed.unwrap_or_else(|| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            (now.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32)
        });
        let mut uids = UidGen(seed);
        let cfg = &settings.config;
        let recorded = |kind: TrackKind| match kind {
            TrackKind::Color => cfg.color_resolution.dimensions().is_some(),
            TrackKind::Depth => cfg.depth_mode.has_depth(),
            TrackKind::Ir => cfg.depth_mode.has_ir(),
            TrackKind::Imu => settings.imu,
        };
        let mut tracks: Vec<TrackPlan> = Vec::new();
        for kind in TrackKind::ALL.into_iter().filter(|k| recorded(*k)) {
            tracks.push(TrackPlan {
                role: TrackRole::Builtin(kind),
                number: tracks.len() as u64 + 1,
                uid: uids.next(),
            });
        }
        for i in 0..settings.custom_tracks.len() {
            tracks.push(TrackPlan {
                role: TrackRole::Custom(i),
                number: tracks.len() as u64 + 1,
                uid: uids.next(),
            });
        }
        let calibration_uid = settings.device.as_ref().map(|_| uids.next());
        let attachment_uids = settings.attachments.iter().map(|_| uids.next()).collect();

        let mut tag_entries = layout::sdk_tags(&settings, &tracks, calibration_uid);
        let sdk_tag_count = tag_entries.len();
        tag_entries.push(Tag::global("FREEK4A_VERSION", CRATE_VERSION));
        tag_entries.push(Tag::global(
            super::k4a::HOST_START_TIME_TAG,
            layout::rfc3339_usec(since_epoch.as_micros() as i64),
        ));

        let mut wr = K4aWriter {
            w: {
                w.seek(SeekFrom::Start(0)).map_err(io_err("file start"))?;
                w
            },
            muxing_app: format!("freek4a-{CRATE_VERSION}"),
            date_ns_2001: ebml::ebml_date_from_unix_sec(since_epoch.as_secs() as i64),
            calibration_uid,
            attachment_uids,
            tag_entries,
            sdk_tag_count,
            dropped: DropCounts::default(),
            positions: HeaderPositions::new(INFO_REGION, 0, None),
            tags_pos: 0,
            tags_region_end: 0,
            end: 0,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            written_until_ns: 0,
            newest_ns: 0,
            newest_image_ns: None,
            newest_imu_ns: None,
            seq: 0,
            start_offset_ns: None,
            cues: CuePoints::default(),
            summary: FileSummary::default(),
            stopped: None,
            scratch: Vec::with_capacity(64 << 10),
            stage: Vec::new(),
            spent: Vec::new(),
            recycle: false,
            tracks,
            settings,
        };
        wr.write_header()?;
        Ok(wr)
    }

    fn seg(&self, abs: u64) -> u64 {
        abs - SEGMENT_DATA_OFFSET
    }

    fn all_tags(&self, start_offset: Option<u64>, dropped: DropCounts) -> Vec<Tag> {
        let mut v = self.tag_entries.clone();
        for kind in TrackKind::ALL {
            let carried = self
                .settings
                .custom_tracks
                .iter()
                .any(|t| t.carries.contains(&kind));
            if self.track_of(kind).is_some() || carried {
                v.push(Tag::global(kind.dropped_tag(), dropped[kind].to_string()));
            }
        }
        if let Some(s) = start_offset {
            v.push(Tag::global(START_OFFSET_TAG, s.to_string()));
        }
        v
    }

    fn track_of(&self, kind: TrackKind) -> Option<usize> {
        self.tracks.iter().position(|t| t.kind() == Some(kind))
    }

    fn info_bytes(&self, duration_usec: f32) -> Vec<u8> {
        layout::info(&InfoValues {
            timestamp_scale_ns: 1000,
            muxing_app: &self.muxing_app,
            writing_app: &self.settings.writing_app,
            date_ns_2001: Some(self.date_ns_2001),
            title: "Azure Kinect",
            duration_ticks: duration_usec,
        })
    }

    /// The SeekHead region's bytes (SeekHead and Void), Cues listed when there are some.
    fn seek_head_region(&self, cues_pos: Option<u64>) -> Result<Vec<u8>, WriteError> {
        let entries = self.positions.seek_entries(cues_pos.map(|c| self.seg(c)));
        layout::region(&layout::seek_head(&entries), SEEK_HEAD_REGION).map_err(|source| {
            WriteError::NoRoom {
                what: "SeekHead",
                source,
            }
        })
    }

    /// The Info region's bytes (Info and Void).
    fn info_region(&self, duration_usec: f32) -> Result<Vec<u8>, WriteError> {
        layout::region(&self.info_bytes(duration_usec), INFO_REGION).map_err(|source| {
            WriteError::NoRoom {
                what: "Info",
                source,
            }
        })
    }

    fn write_header(&mut self) -> Result<(), WriteError> {
        let segment = layout::segment_header(None).map_err(|source| WriteError::NoRoom {
            what: "Segment size",
            source,
        })?;
        let mut out = layout::ebml_header();
        out.extend_from_slice(&segment);
        debug_assert_eq!(out.len() as u64, SEGMENT_DATA_OFFSET);
        let tracks = layout::tracks(&self.settings, &self.tracks);
        let mut files = Vec::new();
        if let (Some(dev), Some(uid)) = (&self.settings.device, self.calibration_uid) {
            files.push(Attachment::calibration(&dev.calibration_json, uid));
        }
        for (file, &uid) in self.settings.attachments.iter().zip(&self.attachment_uids) {
            files.push(Attachment::file(&file.file_name, &file.data, uid));
        }
        let attachments = (!files.is_empty()).then(|| layout::attachments(&files));
        self.positions = HeaderPositions::new(
            INFO_REGION,
            tracks.len() as u64,
            attachments.as_ref().map(|a| a.len() as u64),
        );
        self.tags_pos = SEGMENT_DATA_OFFSET + self.positions.tags;
        let tags = layout::tags(&self.all_tags(None, DropCounts::default()));
        // Reserve room for the start offset and the final drop counts at their widest.
        let widest =
            layout::tags(&self.all_tags(Some(u64::MAX), DropCounts::from_fn(|_| u64::MAX)));
        // The SDK's Tags + Void end 1027 bytes after its own tags; ours sit inside that room so
        // clusters land where the SDK puts them, unless the room is too small.
        let sdk_len = layout::tags(&self.tag_entries[..self.sdk_tag_count]).len() as u64;
        let sdk_end = self.tags_pos + sdk_len + TAGS_VOID;
        let needed_end = self.tags_pos + widest.len() as u64 + 2;
        self.tags_region_end = sdk_end.max(needed_end);
        let void_len = self.tags_region_end - self.tags_pos - tags.len() as u64;

        // SeekHead region (no Cues yet) and Info region, both valid from the start.
        out.extend_from_slice(&self.seek_head_region(None)?);
        out.extend_from_slice(&self.info_region(0.0)?);
        out.extend_from_slice(&tracks);
        if let Some(a) = attachments {
            out.extend_from_slice(&a);
        }
        out.extend_from_slice(&tags);
        ebml::put_void(&mut out, void_len).map_err(|source| WriteError::NoRoom {
            what: "Void after Tags",
            source,
        })?;
        debug_assert_eq!(out.len() as u64, self.tags_region_end);
        self.w.write_all(&out).map_err(io_err("file header"))?;
        self.end = out.len() as u64;
        Ok(())
    }

    /// Re-renders Tags + their Void in place in one write, so the region is never half valid.
    fn rewrite_tags(
        &mut self,
        start_offset: Option<u64>,
        dropped: DropCounts,
    ) -> Result<(), WriteError> {
        let mut out = layout::tags(&self.all_tags(start_offset, dropped));
        let room = self.tags_region_end - self.tags_pos;
        let void_len = room
            .checked_sub(out.len() as u64)
            .ok_or(WriteError::NoRoom {
                what: "Tags",
                source: EbmlError::NoRoom {
                    needed: out.len() as u64,
                    available: room,
                },
            })?;
        ebml::put_void(&mut out, void_len).map_err(|source| WriteError::NoRoom {
            what: "Tags",
            source,
        })?;
        self.patch(self.tags_pos, &out, "Tags")
    }

    fn patch(&mut self, abs: u64, bytes: &[u8], what: &'static str) -> Result<(), WriteError> {
        self.w.seek(SeekFrom::Start(abs)).map_err(io_err(what))?;
        self.w.write_all(bytes).map_err(io_err(what))?;
        self.w
            .seek(SeekFrom::Start(self.end))
            .map_err(io_err(what))?;
        Ok(())
    }

    fn check_running(&self) -> Result<(), WriteError> {
        match &self.stopped {
            Some(e) => Err(WriteError::Stopped(Box::new(e.replay()))),
            None => Ok(()),
        }
    }

    fn check_image(&self, kind: TrackKind, img: &Image) -> Result<usize, WriteError> {
        let track = self
            .track_of(kind)
            .ok_or(WriteError::StreamDisabled(kind))?;
        let cfg = &self.settings.config;
        let (format, dims) = match kind {
            TrackKind::Color => (cfg.color_format, cfg.color_resolution.dimensions()),
            TrackKind::Depth => (ImageFormat::Depth16, cfg.depth_mode.dimensions()),
            _ => (ImageFormat::Ir16, cfg.depth_mode.dimensions()),
        };
        let (w, h) = dims.unwrap_or_default();
        let size = format.image_size_bytes(w, h);
        let ok = img.format == format
            && (img.width, img.height) == (w, h)
            && size.is_none_or(|s| s == img.data.len());
        if !ok {
            return Err(WriteError::WrongImage {
                kind,
                found: format!(
                    "{} {}x{} ({} bytes)",
                    img.format.sdk_name(),
                    img.width,
                    img.height,
                    img.data.len()
                ),
                expected: format!(
                    "{} {w}x{h}{}",
                    format.sdk_name(),
                    size.map(|s| format!(" ({s} bytes)")).unwrap_or_default()
                ),
            });
        }
        Ok(track)
    }

    fn check_time(&self, kind: TrackKind, ts_ns: u64) -> Result<(), WriteError> {
        if ts_ns < self.written_until_ns {
            return Err(WriteError::TooLate {
                kind,
                timestamp_usec: ts_ns / 1000,
                written_until_usec: self.written_until_ns / 1000,
            });
        }
        Ok(())
    }

    /// Queues the capture's images (one block each; empty images are skipped) and writes the
    /// clusters that are due. Depth and IR are stored big-endian.
    pub fn write_capture(&mut self, capture: &Capture) -> Result<(), WriteError> {
        self.write_capture_owned(capture.clone())
    }

    /// Like [`K4aWriter::write_capture`], taking ownership so image buffers are not copied.
    pub fn write_capture_owned(&mut self, capture: Capture) -> Result<(), WriteError> {
        self.check_running()?;
        self.write_prepared(PreparedCapture::new(capture))
    }

    /// Queues a capture already prepared (possibly on another thread) and writes the clusters
    /// that are due. Same result as [`K4aWriter::write_capture_owned`] on the original capture.
    pub fn write_prepared(&mut self, capture: PreparedCapture) -> Result<(), WriteError> {
        self.check_running()?;
        let mut queued = Vec::with_capacity(capture.images.len());
        for (kind, img, crc) in capture.images {
            let track = self.check_image(kind, &img)?;
            let ts_ns = img.device_timestamp_usec.saturating_mul(1000);
            self.check_time(kind, ts_ns)?;
            queued.push((track, ts_ns, Payload::Image(img.data.into_vec(), crc)));
        }
        for (track, ts_ns, payload) in queued {
            self.enqueue(track, ts_ns, payload);
        }
        self.write_due()
    }

    /// Queues one IMU sample (40-byte frame: acc/gyro timestamps in ns, values LE) and writes
    /// the clusters that are due.
    pub fn write_imu(&mut self, sample: &ImuSample) -> Result<(), WriteError> {
        self.check_running()?;
        let track = self
            .track_of(TrackKind::Imu)
            .ok_or(WriteError::StreamDisabled(TrackKind::Imu))?;
        let ts_ns = sample.acc_timestamp_usec.saturating_mul(1000);
        self.check_time(TrackKind::Imu, ts_ns)?;
        let mut f = [0u8; IMU_FRAME_BYTES];
        f[0..8].copy_from_slice(&ts_ns.to_le_bytes());
        for (i, v) in sample.acc_mps2.iter().enumerate() {
            f[8 + 4 * i..12 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        f[20..28].copy_from_slice(
            &sample
                .gyro_timestamp_usec
                .saturating_mul(1000)
                .to_le_bytes(),
        );
        for (i, v) in sample.gyro_radps.iter().enumerate() {
            f[28 + 4 * i..32 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        self.enqueue(track, ts_ns, Payload::Imu(f));
        self.write_due()
    }

    /// Queues one frame of the custom track `track` (one SimpleBlock, stored as given) at
    /// `device_timestamp_usec`, and writes the clusters that are due.
    pub fn write_custom(
        &mut self,
        track: &str,
        device_timestamp_usec: u64,
        data: Vec<u8>,
    ) -> Result<(), WriteError> {
        self.check_running()?;
        let index = self
            .tracks
            .iter()
            .position(|t| match t.role {
                TrackRole::Custom(i) => self.settings.custom_tracks[i].name == track,
                TrackRole::Builtin(_) => false,
            })
            .ok_or_else(|| WriteError::NoSuchTrack(track.to_owned()))?;
        let ts_ns = device_timestamp_usec.saturating_mul(1000);
        if ts_ns < self.written_until_ns {
            return Err(WriteError::CustomTooLate {
                track: track.to_owned(),
                timestamp_usec: device_timestamp_usec,
                written_until_usec: self.written_until_ns / 1000,
            });
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&data);
        self.enqueue(index, ts_ns, Payload::Image(data, crc));
        self.write_due()
    }

    fn enqueue(&mut self, track: usize, ts_ns: u64, payload: Payload) {
        let payload_kind = match payload {
            Payload::Imu(_) => PayloadKind::Imu,
            Payload::Image(..) => PayloadKind::Image,
        };
        let window = ts_ns / CLUSTER_LENGTH_NS;
        let len = payload.bytes().len();
        let c = self.pending.entry(window).or_default();
        c.items.push(Item {
            ts_ns,
            seq: self.seq,
            track,
            payload,
        });
        c.bytes += len;
        self.seq += 1;
        self.pending_bytes += len;
        self.newest_ns = self.newest_ns.max(ts_ns);
        let newest = match payload_kind {
            PayloadKind::Imu => &mut self.newest_imu_ns,
            PayloadKind::Image => &mut self.newest_image_ns,
        };
        *newest = Some(newest.map_or(ts_ns, |n| n.max(ts_ns)));
    }

    /// How far the data has got, for deciding which clusters are due: the older of the newest
    /// image and the newest IMU sample (so one stream's backlog, such as the IMU queue drained
    /// after a capture, is not refused as late), but never further behind the newest item than
    /// the SDK's two seconds minus the configured delay. With the default delay this is exactly
    /// the SDK's rule; a stream that lags more, or never delivers, does not hold clusters back
    /// longer than the SDK would.
    fn watermark_ns(&self) -> u64 {
        let image = if self.has_image_tracks() {
            self.newest_image_ns
        } else {
            Some(u64::MAX)
        };
        let imu = if self.settings.imu {
            self.newest_imu_ns
        } else {
            Some(u64::MAX)
        };
        let slowest = match (image, imu) {
            (Some(a), Some(b)) => a.min(b),
            _ => 0,
        };
        let max_lag = CLUSTER_WRITE_DELAY_NS.saturating_sub(self.settings.cluster_write_delay_ns);
        slowest
            .min(self.newest_ns)
            .max(self.newest_ns.saturating_sub(max_lag))
    }

    fn has_image_tracks(&self) -> bool {
        self.settings.config.color_resolution != crate::types::ColorResolution::Off
            || self.settings.config.depth_mode != crate::types::DepthMode::Off
            || !self.settings.custom_tracks.is_empty()
    }

    fn write_due(&mut self) -> Result<(), WriteError> {
        while let Some((&window, _)) = self.pending.first_key_value() {
            let end = (window + 1) * CLUSTER_LENGTH_NS;
            let due = self.watermark_ns().saturating_sub(end)
                > self.settings.cluster_write_delay_ns
                || (self.pending_bytes > self.settings.pending_limit_bytes
                    && self.pending.len() > 1);
            if !due {
                break;
            }
            self.write_oldest()?;
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> Result<(), WriteError> {
        let Some((window, cluster)) = self.pending.pop_first() else {
            return Ok(());
        };
        self.pending_bytes -= cluster.bytes;
        self.written_until_ns = (window + 1) * CLUSTER_LENGTH_NS;
        let r = self.write_cluster(cluster.items);
        if let Err(e) = &r {
            self.stopped = Some(e.replay());
        }
        r
    }

    /// Writes one cluster of items: blocks planned, headers and CRC rendered, the whole cluster
    /// sent through the stage, then counted and offered as a cue point.
    fn write_cluster(&mut self, mut items: Vec<Item>) -> Result<(), WriteError> {
        if items.is_empty() {
            return Ok(());
        }
        items.sort_unstable_by_key(|i| (i.ts_ns, i.seq));
        let start = self.start_offset_before(items[0].ts_ns)?;
        let cluster_usec = (items[0].ts_ns - start) / 1000;
        let plans = self.plan_blocks(&items, start, cluster_usec);
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let cluster = render_cluster(&mut scratch, &items, &plans, cluster_usec);
        let cluster_pos = self.end;
        let result = send_cluster(
            &mut self.w,
            &cluster,
            &scratch,
            &items,
            &mut self.stage,
            cluster_pos,
        )
        // Hand every finished cluster to the OS: a killed process then loses nothing that
        // was written, whatever buffering the sink does.
        .and_then(|()| self.w.flush());
        self.scratch = scratch;
        result.map_err(io_err("Cluster"))?;
        self.end += cluster.total_len();
        let first_track1 = plans
            .iter()
            .find(|p| p.track_number == 1)
            .map(|p| items[p.first].ts_ns - start);
        self.count_written(items);
        if let Some(t) = first_track1 {
            self.cues.offer(t, t / 1000, self.seg(cluster_pos));
        }
        Ok(())
    }

    /// The recording's start offset; the first cluster sets it to `first_ns`, and it goes into
    /// the Tags before that cluster reaches the file.
    fn start_offset_before(&mut self, first_ns: u64) -> Result<u64, WriteError> {
        if let Some(s) = self.start_offset_ns {
            return Ok(s);
        }
        self.rewrite_tags(Some(first_ns), self.dropped)?;
        self.start_offset_ns = Some(first_ns);
        Ok(first_ns)
    }

    /// One SimpleBlock per image; runs of IMU frames laced into BlockGroups.
    fn plan_blocks(&self, items: &[Item], start: u64, cluster_usec: u64) -> Vec<BlockPlan> {
        let imu_track = self.track_of(TrackKind::Imu);
        let mut plans = Vec::new();
        let mut i = 0;
        while i < items.len() {
            let it = &items[i];
            let mut plan = BlockPlan {
                track_number: self.tracks[it.track].number,
                rel_usec: ((it.ts_ns - start) / 1000 - cluster_usec) as i16,
                first: i,
                count: 1,
                group: false,
                duration_usec: 0,
            };
            if Some(it.track) == imu_track {
                let mut j = i + 1;
                while j < items.len() && items[j].track == it.track && j - i < MAX_LACED_FRAMES {
                    j += 1;
                }
                let span_ns = items[j - 1].ts_ns - it.ts_ns;
                plan.count = j - i;
                plan.group = true;
                plan.duration_usec = (span_ns + 1000) / 1000;
            }
            i += plan.count;
            plans.push(plan);
        }
        plans
    }

    /// Counts what a written cluster held and keeps its image buffers when recycling.
    fn count_written(&mut self, items: Vec<Item>) {
        self.summary.clusters += 1;
        for it in items {
            match it.payload {
                Payload::Imu(_) => self.summary.imu_samples += 1,
                Payload::Image(v, _) => {
                    self.summary.images += 1;
                    if self.recycle {
                        self.spent.push(v);
                    }
                }
            }
        }
    }

    /// With `on`, the image buffers of written clusters are kept for
    /// [`K4aWriter::take_spent_buffers`] instead of being freed, so a producer can refill them
    /// (no fresh pages to fault in per frame). Off by default.
    pub fn set_recycling(&mut self, on: bool) {
        self.recycle = on;
        if !on {
            self.spent = Vec::new();
        }
    }

    /// Moves out the image buffers of the clusters written since the last call (only collected
    /// while [`K4aWriter::set_recycling`] is on). Their contents are stale.
    pub fn take_spent_buffers(&mut self, out: &mut Vec<Vec<u8>>) {
        out.append(&mut self.spent);
    }

    /// Drop counts to write at close are added to these (the writer counts nothing itself).
    pub fn set_dropped(&mut self, dropped: DropCounts) {
        self.dropped = dropped;
    }

    /// What has been written so far (clusters, images, IMU samples, bytes).
    pub fn summary(&self) -> FileSummary {
        FileSummary {
            bytes: self.end,
            cue_points: self.cues.points().len() as u64,
            ..self.summary
        }
    }

    /// Timestamp of the first data in the file (set once the first cluster is written).
    pub fn start_offset_ns(&self) -> Option<u64> {
        self.start_offset_ns
    }

    /// Writes every pending cluster, appends Cues, then patches Info (Duration), Tags (drop
    /// counts), SeekHead (Cues entry) and the Segment size, in an order that keeps the file
    /// valid after each step. After an earlier write error only the in-place patches are made
    /// (no Cues; the Segment ends after the last complete cluster) and the error is returned.
    pub fn finish(mut self, dropped: DropCounts) -> Result<(W, FileSummary), WriteError> {
        self.dropped = dropped;
        if self.stopped.is_none() {
            while !self.pending.is_empty() {
                if let Err(e) = self.write_oldest() {
                    return Err(self.finish_after_error(e));
                }
            }
        }
        if let Some(e) = &self.stopped {
            let e = WriteError::Stopped(Box::new(e.replay()));
            return Err(self.finish_after_error(e));
        }
        if self.summary.clusters == 0 {
            self.write_empty_cluster()?;
        }
        let cues_pos = if self.cues.is_empty() {
            None
        } else {
            let c = layout::cues(self.cues.points());
            self.w.write_all(&c).map_err(io_err("Cues"))?;
            let pos = self.end;
            self.end += c.len() as u64;
            Some(pos)
        };
        self.patch_header(cues_pos)?;
        self.w.flush().map_err(io_err("file flush"))?;
        let summary = self.summary();
        Ok((self.w, summary))
    }

    /// A recording stopped before its first capture gets one Cluster with no blocks and a cue
    /// to it: without any Cluster, ffmpeg's demuxer goes looking for one and misreads the
    /// SeekHead ("Duplicate element"), and Microsoft's playback refuses the file ("does not
    /// contain any frames"); with it, both open the file and find zero captures.
    fn write_empty_cluster(&mut self) -> Result<(), WriteError> {
        let mut body = Vec::with_capacity(3);
        ebml::put_uint(&mut body, ids::TIMESTAMP, 0);
        let mut payload = ebml::crc32_element(&body).to_vec();
        payload.extend_from_slice(&body);
        let mut cluster = Vec::with_capacity(payload.len() + 12);
        ebml::put_master(&mut cluster, ids::CLUSTER, &payload);
        let pos = self.end;
        self.w.write_all(&cluster).map_err(io_err("Cluster"))?;
        self.end += cluster.len() as u64;
        self.cues.offer(0, 0, self.seg(pos));
        Ok(())
    }

    fn patch_header(&mut self, cues_pos: Option<u64>) -> Result<(), WriteError> {
        let duration = match self.start_offset_ns {
            Some(s) => ((self.newest_ns - s) / 1000) as f64 as f32,
            None => 0.0,
        };
        let info = self.info_region(duration)?;
        self.patch(SEGMENT_DATA_OFFSET + SEEK_HEAD_REGION, &info, "Info")?;
        self.rewrite_tags(self.start_offset_ns, self.dropped)?;
        let sh = self.seek_head_region(cues_pos)?;
        self.patch(SEGMENT_DATA_OFFSET, &sh, "SeekHead")?;
        let segment =
            layout::segment_header(Some(self.end - SEGMENT_DATA_OFFSET)).map_err(|source| {
                WriteError::NoRoom {
                    what: "Segment size",
                    source,
                }
            })?;
        self.patch(
            SEGMENT_DATA_OFFSET - segment.len() as u64,
            &segment,
            "Segment size",
        )
    }

    /// Best-effort in-place finalisation after `err`; returns the first error.
    fn finish_after_error(&mut self, err: WriteError) -> WriteError {
        // `end` still points after the last complete cluster; a partial one lies beyond it.
        let _ = self.patch_header(None);
        let _ = self.w.flush();
        err
    }
}

#[cfg(test)]
mod tests;
