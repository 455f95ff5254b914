//! Matroska / EBML element ids used by K4A recordings (RFC 8794, Matroska spec).
//!
//! Ids are stored with their length-marker bits, as they appear on the wire.

/// An element id, marker bits included (`0x1A45DFA3` for EBML).
pub type ElementId = u32;

/// `EBML`.
pub const EBML: ElementId = 0x1A45DFA3;
/// `EBMLVersion`.
pub const EBML_VERSION: ElementId = 0x4286;
/// `EBMLReadVersion`.
pub const EBML_READ_VERSION: ElementId = 0x42F7;
/// `EBMLMaxIDLength`.
pub const EBML_MAX_ID_LENGTH: ElementId = 0x42F2;
/// `EBMLMaxSizeLength`.
pub const EBML_MAX_SIZE_LENGTH: ElementId = 0x42F3;
/// `DocType`.
pub const DOC_TYPE: ElementId = 0x4282;
/// `DocTypeVersion`.
pub const DOC_TYPE_VERSION: ElementId = 0x4287;
/// `DocTypeReadVersion`.
pub const DOC_TYPE_READ_VERSION: ElementId = 0x4285;
/// `Void`.
pub const VOID: ElementId = 0xEC;
/// `CRC-32`.
pub const CRC32: ElementId = 0xBF;
/// `Segment`.
pub const SEGMENT: ElementId = 0x18538067;
/// `SeekHead`.
pub const SEEK_HEAD: ElementId = 0x114D9B74;
/// `Seek`.
pub const SEEK: ElementId = 0x4DBB;
/// `SeekID`.
pub const SEEK_ID: ElementId = 0x53AB;
/// `SeekPosition`.
pub const SEEK_POSITION: ElementId = 0x53AC;
/// `Info`.
pub const INFO: ElementId = 0x1549A966;
/// `TimestampScale`.
pub const TIMESTAMP_SCALE: ElementId = 0x2AD7B1;
/// `Duration`.
pub const DURATION: ElementId = 0x4489;
/// `DateUTC`.
pub const DATE_UTC: ElementId = 0x4461;
/// `Title`.
pub const TITLE: ElementId = 0x7BA9;
/// `MuxingApp`.
pub const MUXING_APP: ElementId = 0x4D80;
/// `WritingApp`.
pub const WRITING_APP: ElementId = 0x5741;
/// `SegmentUID`.
pub const SEGMENT_UID: ElementId = 0x73A4;
/// `Tracks`.
pub const TRACKS: ElementId = 0x1654AE6B;
/// `TrackEntry`.
pub const TRACK_ENTRY: ElementId = 0xAE;
/// `TrackNumber`.
pub const TRACK_NUMBER: ElementId = 0xD7;
/// `TrackUID`.
pub const TRACK_UID: ElementId = 0x73C5;
/// `TrackType`.
pub const TRACK_TYPE: ElementId = 0x83;
/// `FlagEnabled`.
pub const FLAG_ENABLED: ElementId = 0xB9;
/// `FlagDefault`.
pub const FLAG_DEFAULT: ElementId = 0x88;
/// `FlagForced`.
pub const FLAG_FORCED: ElementId = 0x55AA;
/// `FlagLacing`.
pub const FLAG_LACING: ElementId = 0x9C;
/// `MinCache`.
pub const MIN_CACHE: ElementId = 0x6DE7;
/// `MaxCache`.
pub const MAX_CACHE: ElementId = 0x6DF8;
/// `DefaultDuration`.
pub const DEFAULT_DURATION: ElementId = 0x23E383;
/// `TrackTimestampScale`.
pub const TRACK_TIMESTAMP_SCALE: ElementId = 0x23314F;
/// `MaxBlockAdditionID`.
pub const MAX_BLOCK_ADDITION_ID: ElementId = 0x55EE;
/// `Name`.
pub const NAME: ElementId = 0x536E;
/// `Language`.
pub const LANGUAGE: ElementId = 0x22B59C;
/// `CodecID`.
pub const CODEC_ID: ElementId = 0x86;
/// `CodecPrivate`.
pub const CODEC_PRIVATE: ElementId = 0x63A2;
/// `CodecDecodeAll`.
pub const CODEC_DECODE_ALL: ElementId = 0xAA;
/// `TrackOverlay`.
pub const TRACK_OVERLAY: ElementId = 0x6FAB;
/// `CodecDelay`.
pub const CODEC_DELAY: ElementId = 0x56AA;
/// `SeekPreRoll`.
pub const SEEK_PRE_ROLL: ElementId = 0x56BB;
/// `Video`.
pub const VIDEO: ElementId = 0xE0;
/// `PixelWidth`.
pub const PIXEL_WIDTH: ElementId = 0xB0;
/// `PixelHeight`.
pub const PIXEL_HEIGHT: ElementId = 0xBA;
/// `FlagInterlaced`.
pub const FLAG_INTERLACED: ElementId = 0x9A;
/// `StereoMode`.
pub const STEREO_MODE: ElementId = 0x53B8;
/// `DisplayWidth`.
pub const DISPLAY_WIDTH: ElementId = 0x54B0;
/// `DisplayHeight`.
pub const DISPLAY_HEIGHT: ElementId = 0x54BA;
/// `DisplayUnit`.
pub const DISPLAY_UNIT: ElementId = 0x54B2;
/// `AspectRatioType`.
pub const ASPECT_RATIO_TYPE: ElementId = 0x54B3;
/// `AlphaMode`.
pub const ALPHA_MODE: ElementId = 0x53C0;
/// `Attachments`.
pub const ATTACHMENTS: ElementId = 0x1941A469;
/// `AttachedFile`.
pub const ATTACHED_FILE: ElementId = 0x61A7;
/// `FileName`.
pub const FILE_NAME: ElementId = 0x466E;
/// `FileMimeType`.
pub const FILE_MIME_TYPE: ElementId = 0x4660;
/// `FileData`.
pub const FILE_DATA: ElementId = 0x465C;
/// `FileUID`.
pub const FILE_UID: ElementId = 0x46AE;
/// `FileDescription`.
pub const FILE_DESCRIPTION: ElementId = 0x467E;
/// `Tags`.
pub const TAGS: ElementId = 0x1254C367;
/// `Tag`.
pub const TAG: ElementId = 0x7373;
/// `Targets`.
pub const TARGETS: ElementId = 0x63C0;
/// `TargetTypeValue`.
pub const TARGET_TYPE_VALUE: ElementId = 0x68CA;
/// `TargetType`.
pub const TARGET_TYPE: ElementId = 0x63CA;
/// `TagTrackUID`.
pub const TAG_TRACK_UID: ElementId = 0x63C5;
/// `TagAttachmentUID`.
pub const TAG_ATTACHMENT_UID: ElementId = 0x63C6;
/// `SimpleTag`.
pub const SIMPLE_TAG: ElementId = 0x67C8;
/// `TagName`.
pub const TAG_NAME: ElementId = 0x45A3;
/// `TagLanguage`.
pub const TAG_LANGUAGE: ElementId = 0x447A;
/// `TagDefault`.
pub const TAG_DEFAULT: ElementId = 0x4484;
/// `TagString`.
pub const TAG_STRING: ElementId = 0x4487;
/// `TagBinary`.
pub const TAG_BINARY: ElementId = 0x4485;
/// `Cluster`.
pub const CLUSTER: ElementId = 0x1F43B675;
/// `Timestamp`.
pub const TIMESTAMP: ElementId = 0xE7;
/// `SimpleBlock`.
pub const SIMPLE_BLOCK: ElementId = 0xA3;
/// `BlockGroup`.
pub const BLOCK_GROUP: ElementId = 0xA0;
/// `Block`.
pub const BLOCK: ElementId = 0xA1;
/// `BlockDuration`.
pub const BLOCK_DURATION: ElementId = 0x9B;
/// `ReferenceBlock`.
pub const REFERENCE_BLOCK: ElementId = 0xFB;
/// `Position`.
pub const POSITION: ElementId = 0xA7;
/// `PrevSize`.
pub const PREV_SIZE: ElementId = 0xAB;
/// `Cues`.
pub const CUES: ElementId = 0x1C53BB6B;
/// `CuePoint`.
pub const CUE_POINT: ElementId = 0xBB;
/// `CueTime`.
pub const CUE_TIME: ElementId = 0xB3;
/// `CueTrackPositions`.
pub const CUE_TRACK_POSITIONS: ElementId = 0xB7;
/// `CueTrack`.
pub const CUE_TRACK: ElementId = 0xF7;
/// `CueClusterPosition`.
pub const CUE_CLUSTER_POSITION: ElementId = 0xF1;
/// `CueRelativePosition`.
pub const CUE_RELATIVE_POSITION: ElementId = 0xF0;
/// `CueDuration`.
pub const CUE_DURATION: ElementId = 0xB2;
/// `CueBlockNumber`.
pub const CUE_BLOCK_NUMBER: ElementId = 0x5378;

/// The value type of an element, as the Matroska schema defines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElementType {
    /// Master element.
    Master,
    /// Unsigned element.
    Unsigned,
    /// Signed element.
    Signed,
    /// Float element.
    Float,
    /// String element.
    String,
    /// Utf8 element.
    Utf8,
    /// Binary element.
    Binary,
    /// Date element.
    Date,
    /// Block element.
    Block,
}

/// Name and type of a known element id; `None` for ids this table does not know.
pub fn describe(id: ElementId) -> Option<(&'static str, ElementType)> {
    let d = match id {
        EBML => ("EBML", ElementType::Master),
        EBML_VERSION => ("EBMLVersion", ElementType::Unsigned),
        EBML_READ_VERSION => ("EBMLReadVersion", ElementType::Unsigned),
        EBML_MAX_ID_LENGTH => ("EBMLMaxIDLength", ElementType::Unsigned),
        EBML_MAX_SIZE_LENGTH => ("EBMLMaxSizeLength", ElementType::Unsigned),
        DOC_TYPE => ("DocType", ElementType::String),
        DOC_TYPE_VERSION => ("DocTypeVersion", ElementType::Unsigned),
        DOC_TYPE_READ_VERSION => ("DocTypeReadVersion", ElementType::Unsigned),
        VOID => ("Void", ElementType::Binary),
        CRC32 => ("CRC-32", ElementType::Binary),
        SEGMENT => ("Segment", ElementType::Master),
        SEEK_HEAD => ("SeekHead", ElementType::Master),
        SEEK => ("Seek", ElementType::Master),
        SEEK_ID => ("SeekID", ElementType::Binary),
        SEEK_POSITION => ("SeekPosition", ElementType::Unsigned),
        INFO => ("Info", ElementType::Master),
        TIMESTAMP_SCALE => ("TimestampScale", ElementType::Unsigned),
        DURATION => ("Duration", ElementType::Float),
        DATE_UTC => ("DateUTC", ElementType::Date),
        TITLE => ("Title", ElementType::Utf8),
        MUXING_APP => ("MuxingApp", ElementType::Utf8),
        WRITING_APP => ("WritingApp", ElementType::Utf8),
        SEGMENT_UID => ("SegmentUID", ElementType::Binary),
        TRACKS => ("Tracks", ElementType::Master),
        TRACK_ENTRY => ("TrackEntry", ElementType::Master),
        TRACK_NUMBER => ("TrackNumber", ElementType::Unsigned),
        TRACK_UID => ("TrackUID", ElementType::Unsigned),
        TRACK_TYPE => ("TrackType", ElementType::Unsigned),
        FLAG_ENABLED => ("FlagEnabled", ElementType::Unsigned),
        FLAG_DEFAULT => ("FlagDefault", ElementType::Unsigned),
        FLAG_FORCED => ("FlagForced", ElementType::Unsigned),
        FLAG_LACING => ("FlagLacing", ElementType::Unsigned),
        MIN_CACHE => ("MinCache", ElementType::Unsigned),
        MAX_CACHE => ("MaxCache", ElementType::Unsigned),
        DEFAULT_DURATION => ("DefaultDuration", ElementType::Unsigned),
        TRACK_TIMESTAMP_SCALE => ("TrackTimestampScale", ElementType::Float),
        MAX_BLOCK_ADDITION_ID => ("MaxBlockAdditionID", ElementType::Unsigned),
        NAME => ("Name", ElementType::Utf8),
        LANGUAGE => ("Language", ElementType::String),
        CODEC_ID => ("CodecID", ElementType::String),
        CODEC_PRIVATE => ("CodecPrivate", ElementType::Binary),
        CODEC_DECODE_ALL => ("CodecDecodeAll", ElementType::Unsigned),
        TRACK_OVERLAY => ("TrackOverlay", ElementType::Unsigned),
        CODEC_DELAY => ("CodecDelay", ElementType::Unsigned),
        SEEK_PRE_ROLL => ("SeekPreRoll", ElementType::Unsigned),
        VIDEO => ("Video", ElementType::Master),
        PIXEL_WIDTH => ("PixelWidth", ElementType::Unsigned),
        PIXEL_HEIGHT => ("PixelHeight", ElementType::Unsigned),
        FLAG_INTERLACED => ("FlagInterlaced", ElementType::Unsigned),
        STEREO_MODE => ("StereoMode", ElementType::Unsigned),
        DISPLAY_WIDTH => ("DisplayWidth", ElementType::Unsigned),
        DISPLAY_HEIGHT => ("DisplayHeight", ElementType::Unsigned),
        DISPLAY_UNIT => ("DisplayUnit", ElementType::Unsigned),
        ASPECT_RATIO_TYPE => ("AspectRatioType", ElementType::Unsigned),
        ALPHA_MODE => ("AlphaMode", ElementType::Unsigned),
        ATTACHMENTS => ("Attachments", ElementType::Master),
        ATTACHED_FILE => ("AttachedFile", ElementType::Master),
        FILE_NAME => ("FileName", ElementType::Utf8),
        FILE_MIME_TYPE => ("FileMimeType", ElementType::String),
        FILE_DATA => ("FileData", ElementType::Binary),
        FILE_UID => ("FileUID", ElementType::Unsigned),
        FILE_DESCRIPTION => ("FileDescription", ElementType::Utf8),
        TAGS => ("Tags", ElementType::Master),
        TAG => ("Tag", ElementType::Master),
        TARGETS => ("Targets", ElementType::Master),
        TARGET_TYPE_VALUE => ("TargetTypeValue", ElementType::Unsigned),
        TARGET_TYPE => ("TargetType", ElementType::String),
        TAG_TRACK_UID => ("TagTrackUID", ElementType::Unsigned),
        TAG_ATTACHMENT_UID => ("TagAttachmentUID", ElementType::Unsigned),
        SIMPLE_TAG => ("SimpleTag", ElementType::Master),
        TAG_NAME => ("TagName", ElementType::Utf8),
        TAG_LANGUAGE => ("TagLanguage", ElementType::String),
        TAG_DEFAULT => ("TagDefault", ElementType::Unsigned),
        TAG_STRING => ("TagString", ElementType::Utf8),
        TAG_BINARY => ("TagBinary", ElementType::Binary),
        CLUSTER => ("Cluster", ElementType::Master),
        TIMESTAMP => ("Timestamp", ElementType::Unsigned),
        SIMPLE_BLOCK => ("SimpleBlock", ElementType::Block),
        BLOCK_GROUP => ("BlockGroup", ElementType::Master),
        BLOCK => ("Block", ElementType::Block),
        BLOCK_DURATION => ("BlockDuration", ElementType::Unsigned),
        REFERENCE_BLOCK => ("ReferenceBlock", ElementType::Signed),
        POSITION => ("Position", ElementType::Unsigned),
        PREV_SIZE => ("PrevSize", ElementType::Unsigned),
        CUES => ("Cues", ElementType::Master),
        CUE_POINT => ("CuePoint", ElementType::Master),
        CUE_TIME => ("CueTime", ElementType::Unsigned),
        CUE_TRACK_POSITIONS => ("CueTrackPositions", ElementType::Master),
        CUE_TRACK => ("CueTrack", ElementType::Unsigned),
        CUE_CLUSTER_POSITION => ("CueClusterPosition", ElementType::Unsigned),
        CUE_RELATIVE_POSITION => ("CueRelativePosition", ElementType::Unsigned),
        CUE_DURATION => ("CueDuration", ElementType::Unsigned),
        CUE_BLOCK_NUMBER => ("CueBlockNumber", ElementType::Unsigned),
        _ => return None,
    };
    Some(d)
}
