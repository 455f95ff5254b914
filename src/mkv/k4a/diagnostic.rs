//! What a reader found damaged or had to work around in a recording.

use std::fmt;

use serde::Serialize;

/// Something the reader had to work around; the file was still read.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Diagnostic {
    /// Segment size 0 (the SDK's value before its first flush): read to the end of the file.
    SegmentSizeZero,
    /// Segment size "unknown": read to the end of the file.
    SegmentSizeUnknown,
    /// Segment size larger than the file (cut short).
    SegmentSizeTooLarge {
        /// Declared payload size.
        declared_bytes: u64,
        /// Bytes actually present after the Segment header.
        available_bytes: u64,
    },
    /// Clusters found after the end the Segment size declares.
    DataAfterSegment {
        /// Offset of the first such cluster.
        offset: u64,
    },
    /// No SeekHead (unclosed SDK file).
    MissingSeekHead,
    /// No Info: TimestampScale assumed to be 1000 ns.
    MissingInfo,
    /// No Cues: the cluster index was rebuilt by scanning.
    MissingCues,
    /// No Tags element.
    MissingTags,
    /// No calibration attachment.
    MissingCalibration,
    /// The calibration attachment does not parse (Microsoft's playback then fails every
    /// capture that needs it).
    BadCalibration {
        /// The attachment's FileName.
        file_name: String,
        /// The parser's error, with its position in the JSON.
        reason: String,
    },
    /// `K4A_START_OFFSET_NS` absent; the offset was reconstructed from IMU data if possible.
    MissingStartOffset {
        /// The reconstructed offset (None: no IMU data, 0 used).
        reconstructed_ns: Option<u64>,
    },
    /// An element runs past the end of the file.
    Truncated {
        /// Element name.
        element: String,
        /// File offset.
        offset: u64,
    },
    /// The last cluster is cut short; its complete blocks are used.
    PartialCluster {
        /// File offset of the cluster.
        offset: u64,
        /// Bytes missing from its end.
        missing_bytes: u64,
    },
    /// Bytes that are not an element were skipped up to the next cluster.
    Junk {
        /// Where they start.
        offset: u64,
        /// How many.
        bytes: u64,
    },
    /// Bytes after the last element that are not an element.
    TrailingData {
        /// Where they start.
        offset: u64,
        /// How many.
        bytes: u64,
    },
    /// An element that could not be decoded.
    BadElement {
        /// Element name.
        element: String,
        /// File offset.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A track or configuration tag that does not match what the SDK expects.
    Config {
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diagnostic::SegmentSizeZero => write!(f, "Segment size is 0 (recording not closed)"),
            Diagnostic::SegmentSizeUnknown => write!(f, "Segment size is unknown"),
            Diagnostic::SegmentSizeTooLarge {
                declared_bytes,
                available_bytes,
            } => write!(
                f,
                "Segment declares {declared_bytes} bytes but only {available_bytes} are present (file cut short)"
            ),
            Diagnostic::DataAfterSegment { offset } => {
                write!(f, "clusters found after the Segment's declared end, from offset {offset}")
            }
            Diagnostic::MissingSeekHead => write!(f, "no SeekHead"),
            Diagnostic::MissingInfo => write!(f, "no Info element (TimestampScale 1000 ns assumed)"),
            Diagnostic::MissingCues => write!(f, "no Cues (cluster index rebuilt by scanning)"),
            Diagnostic::MissingTags => write!(f, "no Tags element"),
            Diagnostic::MissingCalibration => write!(f, "no calibration attachment"),
            Diagnostic::BadCalibration { file_name, reason } => {
                write!(f, "calibration attachment {file_name} is damaged: {reason}")
            }
            Diagnostic::MissingStartOffset { reconstructed_ns } => match reconstructed_ns {
                Some(ns) => write!(
                    f,
                    "no K4A_START_OFFSET_NS tag; start offset {ns} ns reconstructed from IMU data"
                ),
                None => write!(f, "no K4A_START_OFFSET_NS tag and no IMU data; start offset 0 assumed"),
            },
            Diagnostic::Truncated { element, offset } => {
                write!(f, "{element} at offset {offset} is truncated")
            }
            Diagnostic::PartialCluster {
                offset,
                missing_bytes,
            } => write!(
                f,
                "last Cluster at offset {offset} is cut short ({missing_bytes} bytes missing)"
            ),
            Diagnostic::Junk { offset, bytes } => {
                write!(f, "skipped {bytes} damaged bytes at offset {offset}")
            }
            Diagnostic::TrailingData { offset, bytes } => {
                write!(f, "{bytes} bytes of trailing data at offset {offset} ignored")
            }
            Diagnostic::BadElement {
                element,
                offset,
                reason,
            } => write!(f, "{element} at offset {offset}: {reason}"),
            Diagnostic::Config { message } => write!(f, "{message}"),
        }
    }
}
