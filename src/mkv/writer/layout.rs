//! Rendering of the header elements of a K4A recording: EBML header, SeekHead, Info, Tracks,
//! Attachments, Tags. Pure functions from settings to bytes; the writer decides where they go.

use super::{RecordingSettings, TrackKind};
use crate::mkv::ebml::*;
use crate::mkv::ids;
use crate::types::{DepthMode, ImageFormat, WiredSyncMode};

/// One track as it appears in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Track {
    pub kind: TrackKind,
    pub number: u64,
    pub uid: u64,
}

/// Whom a tag applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Global,
    Track(u64),
    Attachment(u64),
}

/// One `Tag` with a single `SimpleTag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TagEntry {
    pub target: Target,
    pub name: String,
    pub value: String,
}

impl TagEntry {
    pub fn new(target: Target, name: &str, value: impl Into<String>) -> TagEntry {
        TagEntry {
            target,
            name: name.to_owned(),
            value: value.into(),
        }
    }
}

/// The 40-byte EBML header the SDK writes (defaults included).
pub(crate) fn ebml_header() -> Vec<u8> {
    let mut c = Vec::with_capacity(35);
    put_uint(&mut c, ids::EBML_VERSION, 1);
    put_uint(&mut c, ids::EBML_READ_VERSION, 1);
    put_uint(&mut c, ids::EBML_MAX_ID_LENGTH, 4);
    put_uint(&mut c, ids::EBML_MAX_SIZE_LENGTH, 8);
    put_str(&mut c, ids::DOC_TYPE, "matroska");
    put_uint(&mut c, ids::DOC_TYPE_VERSION, 2);
    put_uint(&mut c, ids::DOC_TYPE_READ_VERSION, 2);
    let mut out = Vec::with_capacity(40);
    put_master(&mut out, ids::EBML, &c);
    out
}

/// SeekHead with entries in the SDK's order; positions are segment-relative.
pub(crate) fn seek_head(entries: &[(u32, u64)]) -> Vec<u8> {
    let mut c = Vec::new();
    for &(id, pos) in entries {
        let mut s = Vec::with_capacity(16);
        put_binary(&mut s, ids::SEEK_ID, &id.to_be_bytes()[4 - id_len(id)..]);
        put_uint(&mut s, ids::SEEK_POSITION, pos);
        put_master(&mut c, ids::SEEK, &s);
    }
    let mut out = Vec::with_capacity(c.len() + 6);
    put_master(&mut out, ids::SEEK_HEAD, &c);
    out
}

/// Info: TimestampScale 1000, MuxingApp, WritingApp, DateUTC, Title, Duration (float32).
pub(crate) fn info(
    muxing_app: &str,
    writing_app: &str,
    date_ns_2001: i64,
    duration_usec: f32,
) -> Vec<u8> {
    let mut c = Vec::with_capacity(96);
    put_uint(&mut c, ids::TIMESTAMP_SCALE, 1000);
    put_str(&mut c, ids::MUXING_APP, muxing_app);
    put_str(&mut c, ids::WRITING_APP, writing_app);
    put_date(&mut c, ids::DATE_UTC, date_ns_2001);
    put_str(&mut c, ids::TITLE, "Azure Kinect");
    put_f32(&mut c, ids::DURATION, duration_usec);
    let mut out = Vec::with_capacity(c.len() + 6);
    put_master(&mut out, ids::INFO, &c);
    out
}

/// FOURCC, bits per pixel and biSizeImage of a format at a size.
fn bitmap_fields(format: ImageFormat, w: u32, h: u32) -> (&'static [u8; 4], u16, u32) {
    let px = w * h;
    match format {
        ImageFormat::Mjpg => (b"MJPG", 24, 0),
        ImageFormat::Nv12 => (b"NV12", 12, px * 3 / 2),
        ImageFormat::Yuy2 => (b"YUY2", 16, px * 2),
        ImageFormat::Bgra32 => (b"BGRA", 32, px * 4),
        ImageFormat::Depth16 | ImageFormat::Ir16 => (b"b16g", 16, px * 2),
    }
}

/// The 40-byte little-endian BITMAPINFOHEADER stored as CodecPrivate.
pub(crate) fn bitmap_info_header(format: ImageFormat, w: u32, h: u32) -> [u8; 40] {
    let (fourcc, bits, size_image) = bitmap_fields(format, w, h);
    let mut b = [0u8; 40];
    b[0..4].copy_from_slice(&40u32.to_le_bytes());
    b[4..8].copy_from_slice(&w.to_le_bytes());
    b[8..12].copy_from_slice(&h.to_le_bytes());
    b[12..14].copy_from_slice(&1u16.to_le_bytes());
    b[14..16].copy_from_slice(&bits.to_le_bytes());
    b[16..20].copy_from_slice(fourcc);
    b[20..24].copy_from_slice(&size_image.to_le_bytes());
    b
}

/// Tracks with the SDK's entries (video: codec private, default duration, pixel size).
pub(crate) fn tracks(settings: &RecordingSettings, tracks: &[Track]) -> Vec<u8> {
    let cfg = &settings.config;
    let frame_ns = 1_000_000_000 / u64::from(cfg.camera_fps.hz());
    let mut c = Vec::new();
    for t in tracks {
        let mut e = Vec::with_capacity(110);
        put_uint(&mut e, ids::TRACK_NUMBER, t.number);
        put_uint(&mut e, ids::TRACK_UID, t.uid);
        let video = match t.kind {
            TrackKind::Color => cfg
                .color_resolution
                .dimensions()
                .map(|(w, h)| (cfg.color_format, w, h)),
            TrackKind::Depth => cfg
                .depth_mode
                .dimensions()
                .map(|(w, h)| (ImageFormat::Depth16, w, h)),
            TrackKind::Ir => cfg
                .depth_mode
                .dimensions()
                .map(|(w, h)| (ImageFormat::Ir16, w, h)),
            TrackKind::Imu => None,
        };
        match video {
            Some((format, w, h)) => {
                put_uint(&mut e, ids::TRACK_TYPE, 1);
                put_str(&mut e, ids::CODEC_ID, "V_MS/VFW/FOURCC");
                put_str(&mut e, ids::NAME, t.kind.track_name());
                put_binary(
                    &mut e,
                    ids::CODEC_PRIVATE,
                    &bitmap_info_header(format, w, h),
                );
                put_uint(&mut e, ids::DEFAULT_DURATION, frame_ns);
                let mut v = Vec::with_capacity(10);
                put_uint(&mut v, ids::PIXEL_WIDTH, u64::from(w));
                put_uint(&mut v, ids::PIXEL_HEIGHT, u64::from(h));
                put_master(&mut e, ids::VIDEO, &v);
            }
            None => {
                put_uint(&mut e, ids::TRACK_TYPE, 0x11);
                put_str(&mut e, ids::CODEC_ID, "S_K4A/IMU");
                put_str(&mut e, ids::NAME, t.kind.track_name());
            }
        }
        put_master(&mut c, ids::TRACK_ENTRY, &e);
    }
    let mut out = Vec::with_capacity(c.len() + 8);
    put_master(&mut out, ids::TRACKS, &c);
    out
}

/// Attachments holding calibration.json (size fields at least 2 bytes wide, like libmatroska).
pub(crate) fn attachments(calibration: &[u8], file_uid: u64) -> Vec<u8> {
    let mut f = Vec::with_capacity(calibration.len() + 64);
    put_str(&mut f, ids::FILE_NAME, "calibration.json");
    put_str(&mut f, ids::FILE_MIME_TYPE, "application/octet-stream");
    put_binary(&mut f, ids::FILE_DATA, calibration);
    put_uint(&mut f, ids::FILE_UID, file_uid);
    let mut a = Vec::with_capacity(f.len() + 8);
    put_master_min(&mut a, ids::ATTACHED_FILE, &f, 2);
    let mut out = Vec::with_capacity(a.len() + 8);
    put_master_min(&mut out, ids::ATTACHMENTS, &a, 2);
    out
}

/// Tags master (CRC-32 first) from the entries in order.
pub(crate) fn tags(entries: &[TagEntry]) -> Vec<u8> {
    let mut c = Vec::new();
    for t in entries {
        let mut targets = Vec::with_capacity(24);
        match t.target {
            Target::Global => {}
            Target::Track(uid) => {
                put_str(&mut targets, ids::TARGET_TYPE, "TRACK");
                put_uint(&mut targets, ids::TAG_TRACK_UID, uid);
            }
            Target::Attachment(uid) => {
                put_str(&mut targets, ids::TARGET_TYPE, "ATTACHMENT");
                put_uint(&mut targets, ids::TAG_ATTACHMENT_UID, uid);
            }
        }
        let mut st = Vec::with_capacity(t.name.len() + t.value.len() + 8);
        put_str(&mut st, ids::TAG_NAME, &t.name);
        put_str(&mut st, ids::TAG_STRING, &t.value);
        let mut tag = Vec::with_capacity(targets.len() + st.len() + 10);
        put_master(&mut tag, ids::TARGETS, &targets);
        put_master(&mut tag, ids::SIMPLE_TAG, &st);
        put_master(&mut c, ids::TAG, &tag);
    }
    let mut out = Vec::with_capacity(c.len() + 16);
    put_master_crc(&mut out, ids::TAGS, &c);
    out
}

/// The SDK's tags for these settings, in its order, before our own and the start offset.
pub(crate) fn sdk_tags(
    settings: &RecordingSettings,
    tracks: &[Track],
    calibration_uid: Option<u64>,
) -> Vec<TagEntry> {
    let cfg = &settings.config;
    let uid_of = |k: TrackKind| tracks.iter().find(|t| t.kind == k).map(|t| t.uid);
    let mut v = Vec::new();
    if let (Some(uid), Some(mode)) = (uid_of(TrackKind::Color), cfg.color_mode_name()) {
        v.push(TagEntry::new(
            Target::Track(uid),
            "K4A_COLOR_TRACK",
            uid.to_string(),
        ));
        v.push(TagEntry::new(Target::Track(uid), "K4A_COLOR_MODE", mode));
    }
    if let Some(uid) = uid_of(TrackKind::Depth) {
        v.push(TagEntry::new(
            Target::Track(uid),
            "K4A_DEPTH_TRACK",
            uid.to_string(),
        ));
        v.push(TagEntry::new(
            Target::Track(uid),
            "K4A_DEPTH_MODE",
            cfg.depth_mode.name(),
        ));
    } else if cfg.depth_mode == DepthMode::PassiveIr {
        v.push(TagEntry::new(
            Target::Global,
            "K4A_DEPTH_MODE",
            "PASSIVE_IR",
        ));
    }
    if let Some(uid) = uid_of(TrackKind::Ir) {
        v.push(TagEntry::new(
            Target::Track(uid),
            "K4A_IR_TRACK",
            uid.to_string(),
        ));
        let ir_mode = if cfg.depth_mode == DepthMode::PassiveIr {
            "PASSIVE"
        } else {
            "ACTIVE"
        };
        v.push(TagEntry::new(Target::Track(uid), "K4A_IR_MODE", ir_mode));
    }
    if uid_of(TrackKind::Color).is_some() && cfg.depth_mode != DepthMode::Off {
        // The SDK multiplies in 32-bit arithmetic.
        let ns = cfg.depth_delay_off_color_usec.wrapping_mul(1000);
        v.push(TagEntry::new(
            Target::Global,
            "K4A_DEPTH_DELAY_NS",
            ns.to_string(),
        ));
    }
    v.push(TagEntry::new(
        Target::Global,
        "K4A_WIRED_SYNC_MODE",
        cfg.wired_sync_mode.name(),
    ));
    if cfg.wired_sync_mode == WiredSyncMode::Subordinate {
        let ns = cfg.subordinate_delay_off_master_usec.wrapping_mul(1000);
        v.push(TagEntry::new(
            Target::Global,
            "K4A_SUBORDINATE_DELAY_NS",
            ns.to_string(),
        ));
    }
    if let Some(dev) = &settings.device {
        v.push(TagEntry::new(
            Target::Global,
            "K4A_COLOR_FIRMWARE_VERSION",
            dev.color_firmware.to_string(),
        ));
        v.push(TagEntry::new(
            Target::Global,
            "K4A_DEPTH_FIRMWARE_VERSION",
            dev.depth_firmware.to_string(),
        ));
        if let Some(serial) = dev.serial_number.as_deref().filter(|s| !s.is_empty()) {
            v.push(TagEntry::new(
                Target::Global,
                "K4A_DEVICE_SERIAL_NUMBER",
                serial,
            ));
        }
        if let Some(uid) = calibration_uid {
            v.push(TagEntry::new(
                Target::Attachment(uid),
                "K4A_CALIBRATION_FILE",
                "calibration.json",
            ));
        }
    }
    if let Some(uid) = uid_of(TrackKind::Imu) {
        v.push(TagEntry::new(
            Target::Track(uid),
            "K4A_IMU_TRACK",
            uid.to_string(),
        ));
        v.push(TagEntry::new(Target::Track(uid), "K4A_IMU_MODE", "ON"));
    }
    for (name, value) in &settings.tags {
        v.push(TagEntry::new(Target::Global, name, value.clone()));
    }
    v
}

/// Cues: one CuePoint per (time µs, segment-relative cluster position), all on track 1.
pub(crate) fn cues(points: &[(u64, u64)]) -> Vec<u8> {
    let mut c = Vec::with_capacity(points.len() * 16);
    for &(time_usec, pos) in points {
        let mut tp = Vec::with_capacity(12);
        put_uint(&mut tp, ids::CUE_TRACK, 1);
        put_uint(&mut tp, ids::CUE_CLUSTER_POSITION, pos);
        let mut cp = Vec::with_capacity(20);
        put_uint(&mut cp, ids::CUE_TIME, time_usec);
        put_master(&mut cp, ids::CUE_TRACK_POSITIONS, &tp);
        put_master(&mut c, ids::CUE_POINT, &cp);
    }
    let mut out = Vec::with_capacity(c.len() + 12);
    put_master(&mut out, ids::CUES, &c);
    out
}

/// Civil date from days since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// RFC 3339 UTC timestamp with microseconds for a Unix time in microseconds.
pub(crate) fn rfc3339_usec(unix_usec: i64) -> String {
    let secs = unix_usec.div_euclid(1_000_000);
    let usec = unix_usec.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{usec:06}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_headers_match_reference() {
        let b = bitmap_info_header(ImageFormat::Mjpg, 1920, 1080);
        assert_eq!(
            &b[..24],
            &[
                0x28, 0, 0, 0, 0x80, 0x07, 0, 0, 0x38, 0x04, 0, 0, 1, 0, 0x18, 0, 0x4D, 0x4A, 0x50,
                0x47, 0, 0, 0, 0
            ]
        );
        let d = bitmap_info_header(ImageFormat::Depth16, 320, 288);
        assert_eq!(
            &d[12..24],
            &[1, 0, 0x10, 0, 0x62, 0x31, 0x36, 0x67, 0x00, 0xD0, 0x02, 0x00]
        );
        assert!(b[24..].iter().all(|&x| x == 0));
    }

    #[test]
    fn ebml_header_is_40_bytes() {
        assert_eq!(ebml_header().len(), 40);
    }

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_usec(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_usec(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(
            rfc3339_usec(951_782_400_000_001),
            "2000-02-29T00:00:00.000001Z"
        );
    }

    #[test]
    fn seek_head_sizes() {
        // Five entries with Cues below 4 GiB: 82 bytes (payload 77), as the SDK writes.
        let s = seek_head(&[
            (ids::INFO, 1027),
            (ids::TRACKS, 1286),
            (ids::ATTACHMENTS, 1800),
            (ids::TAGS, 5800),
            (ids::CUES, 3_428_265),
        ]);
        assert_eq!(s.len(), 82);
    }

    #[test]
    fn cue_point_bytes() {
        let c = cues(&[(0, 3238)]);
        assert_eq!(
            c,
            vec![
                0x1C, 0x53, 0xBB, 0x6B, 0x8E, 0xBB, 0x8C, 0xB3, 0x81, 0x00, 0xB7, 0x87, 0xF7, 0x81,
                0x01, 0xF1, 0x82, 0x0C, 0xA6
            ]
        );
    }
}
