//! The K4A recording layout, in one place for the writer, repair and the reader: which tracks and
//! tags a recording has, where the header elements sit (the SDK's reserved SeekHead and Info
//! regions), when a cluster gets a cue point, how each element is rendered and how a
//! file, damaged or not, is scanned back.

mod diagnostic;
pub(crate) mod render;
pub(crate) mod scan;

use serde::Serialize;

pub use self::diagnostic::Diagnostic;
pub use self::scan::ClusterEntry;

/// Bytes the SDK reserves for the SeekHead at the start of the Segment (a Void of data size 1024).
pub const SEEK_HEAD_REGION: u64 = 1027;
/// Bytes the SDK reserves for Info after the SeekHead region (a Void of data size 256).
pub const INFO_REGION: u64 = 259;
/// The Void the SDK leaves after its Tags, which absorbs their growth.
pub const TAGS_VOID: u64 = 1027;
/// Minimum time between two cue points.
pub const CUE_ENTRY_GAP_NS: u64 = 1_000_000_000;

/// Tag naming the device time of the recording's first data.
pub const START_OFFSET_TAG: &str = "K4A_START_OFFSET_NS";
/// Our tag holding the host's UTC wall clock at the start of the recording (RFC 3339, µs).
pub const HOST_START_TIME_TAG: &str = "FREEK4A_HOST_START_TIME";
/// Tag whose target is the calibration attachment.
pub const CALIBRATION_FILE_TAG: &str = "K4A_CALIBRATION_FILE";
/// FileName of the calibration attachment.
pub const CALIBRATION_FILE_NAME: &str = "calibration.json";

pub use crate::types::TrackKind;

/// What the K4A layout says of each stream's track.
impl TrackKind {
    /// The tag whose value (and target) is this track's TrackUID.
    pub fn track_tag(self) -> &'static str {
        match self {
            TrackKind::Color => "K4A_COLOR_TRACK",
            TrackKind::Depth => "K4A_DEPTH_TRACK",
            TrackKind::Ir => "K4A_IR_TRACK",
            TrackKind::Imu => "K4A_IMU_TRACK",
        }
    }

    /// Our tag counting this stream's lost items (`FREEK4A_DROPPED_COLOR`...).
    pub fn dropped_tag(self) -> &'static str {
        match self {
            TrackKind::Color => "FREEK4A_DROPPED_COLOR",
            TrackKind::Depth => "FREEK4A_DROPPED_DEPTH",
            TrackKind::Ir => "FREEK4A_DROPPED_IR",
            TrackKind::Imu => "FREEK4A_DROPPED_IMU",
        }
    }

    /// Track names a reader accepts for this kind when no tag names the track (`DEPTH_IR` is an
    /// early SDK's name for the IR track).
    pub fn accepted_names(self) -> &'static [&'static str] {
        match self {
            TrackKind::Color => &["COLOR"],
            TrackKind::Depth => &["DEPTH"],
            TrackKind::Ir => &["IR", "DEPTH_IR"],
            TrackKind::Imu => &["IMU"],
        }
    }
}

/// Serialises a track's role as its SDK name, `CUSTOM` for a track of no K4A role.
pub(crate) fn serialize_role<S: serde::Serializer>(
    kind: &Option<TrackKind>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match kind {
        Some(k) => k.serialize(s),
        None => s.serialize_str("CUSTOM"),
    }
}

/// What a tag is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "scope", content = "uid", rename_all = "snake_case")]
pub enum TagTarget {
    /// The whole recording.
    Global,
    /// A track, by TrackUID.
    Track(u64),
    /// An attachment, by FileUID.
    Attachment(u64),
}

impl TagTarget {
    /// The Targets' TargetType string written for this target.
    pub fn target_type(self) -> &'static str {
        match self {
            TagTarget::Global => "",
            TagTarget::Track(_) => "TRACK",
            TagTarget::Attachment(_) => "ATTACHMENT",
        }
    }

    /// The target a Targets element names: a non-zero TagTrackUID first, then a non-zero
    /// TagAttachmentUID, else the whole recording.
    pub fn from_uids(track_uid: Option<u64>, attachment_uid: Option<u64>) -> TagTarget {
        match (track_uid, attachment_uid) {
            (Some(u), _) if u != 0 => TagTarget::Track(u),
            (_, Some(u)) if u != 0 => TagTarget::Attachment(u),
            _ => TagTarget::Global,
        }
    }
}

/// One tag (one SimpleTag), in file order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tag {
    /// TagName.
    pub name: String,
    /// TagString.
    pub value: String,
    /// Target.
    pub target: TagTarget,
    /// The Targets' TargetType string (`"TRACK"`, `"ATTACHMENT"` or empty).
    pub target_type: String,
}

impl Tag {
    /// A tag on `target` with the TargetType the SDK writes for it.
    pub fn new(target: TagTarget, name: &str, value: impl Into<String>) -> Tag {
        Tag {
            name: name.to_owned(),
            value: value.into(),
            target,
            target_type: target.target_type().to_owned(),
        }
    }

    /// A tag on the whole recording.
    pub fn global(name: &str, value: impl Into<String>) -> Tag {
        Tag::new(TagTarget::Global, name, value)
    }
}

/// One attached file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attachment {
    /// FileName.
    pub file_name: String,
    /// FileMimeType.
    pub mime_type: String,
    /// FileDescription, if any.
    pub description: Option<String>,
    /// FileUID.
    pub uid: u64,
    /// FileData.
    pub data: Vec<u8>,
}

impl Attachment {
    /// The calibration attachment as the SDK writes it.
    pub fn calibration(json: &[u8], uid: u64) -> Attachment {
        Attachment::file(CALIBRATION_FILE_NAME, json, uid)
    }

    /// Any other attachment as `k4a_record_add_attachment` writes it.
    pub fn file(file_name: &str, data: &[u8], uid: u64) -> Attachment {
        Attachment {
            file_name: file_name.into(),
            mime_type: "application/octet-stream".into(),
            description: None,
            uid,
            data: data.to_vec(),
        }
    }
}

/// One track entry as read from a file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Track {
    /// TrackNumber (what blocks refer to).
    pub number: u64,
    /// TrackUID.
    pub uid: u64,
    /// TrackType (1 video, 17 subtitle).
    pub track_type: u64,
    /// Name (`COLOR`, `DEPTH`, `IR`, `IMU` or a custom name).
    pub name: String,
    /// CodecID.
    pub codec_id: String,
    /// CodecPrivate (BITMAPINFOHEADER for video tracks).
    #[serde(skip)]
    pub codec_private: Vec<u8>,
    /// DefaultDuration in ns (frame period), if any.
    pub default_duration_ns: Option<u64>,
    /// PixelWidth.
    pub width: Option<u32>,
    /// PixelHeight.
    pub height: Option<u32>,
    /// The role the reader assigned (`None`, serialised `CUSTOM`: a track of no K4A role).
    #[serde(serialize_with = "serialize_role")]
    pub kind: Option<TrackKind>,
}

impl Track {
    /// The BITMAPINFOHEADER FOURCC, if the codec private data holds one.
    pub fn fourcc(&self) -> Option<[u8; 4]> {
        if self.codec_id == "V_MS/VFW/FOURCC" && self.codec_private.len() >= 20 {
            self.codec_private[16..20].try_into().ok()
        } else {
            None
        }
    }
}

/// Segment-relative positions of the header elements, in the SDK's order: SeekHead region,
/// Info region, Tracks, [Attachments], Tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeaderPositions {
    pub info: u64,
    pub tracks: u64,
    pub attachments: Option<u64>,
    pub tags: u64,
}

impl HeaderPositions {
    /// Positions for an Info region of `info_region` bytes and Tracks and Attachments of these
    /// lengths.
    pub fn new(info_region: u64, tracks_len: u64, attachments_len: Option<u64>) -> Self {
        let info = SEEK_HEAD_REGION;
        let tracks = info + info_region;
        let after_tracks = tracks + tracks_len;
        HeaderPositions {
            info,
            tracks,
            attachments: attachments_len.map(|_| after_tracks),
            tags: after_tracks + attachments_len.unwrap_or(0),
        }
    }

    /// The SeekHead entries (Cues last, once there are Cues).
    pub fn seek_entries(&self, cues: Option<u64>) -> Vec<(u32, u64)> {
        use super::ids;
        let mut v = vec![(ids::INFO, self.info), (ids::TRACKS, self.tracks)];
        if let Some(a) = self.attachments {
            v.push((ids::ATTACHMENTS, a));
        }
        v.push((ids::TAGS, self.tags));
        if let Some(c) = cues {
            v.push((ids::CUES, c));
        }
        v
    }
}

/// The SDK's cue rule: a cluster gets a cue point (on track 1) when its first track-1 block is
/// at least [`CUE_ENTRY_GAP_NS`] after the last cue. The SDK keeps 0 as "no cue yet", so a first
/// cue at time 0 lets the next cluster in too.
#[derive(Clone, Debug, Default)]
pub(crate) struct CuePoints {
    /// (CueTime in ticks, segment-relative cluster position).
    points: Vec<(u64, u64)>,
    last_ns: u64,
}

impl CuePoints {
    /// Offers a cluster at segment position `pos` whose first track-1 block is `time_ns` after
    /// the recording's start (`time_ticks` in TimestampScale ticks).
    pub fn offer(&mut self, time_ns: u64, time_ticks: u64, pos: u64) {
        if self.last_ns == 0 || time_ns >= self.last_ns + CUE_ENTRY_GAP_NS {
            self.points.push((time_ticks, pos));
            self.last_ns = time_ns;
        }
    }

    pub fn points(&self) -> &[(u64, u64)] {
        &self.points
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}
