//! Rendering of the elements of a K4A recording: EBML header, Segment header, SeekHead, Info,
//! Tracks, Attachments, Tags, Cues, and the reserved regions around them. Pure functions to
//! bytes; the writer and repair decide where they go.

use super::{Attachment, Tag, TagTarget, TrackKind, CALIBRATION_FILE_NAME, CALIBRATION_FILE_TAG};
use crate::mkv::ebml::*;
use crate::mkv::ids;
use crate::mkv::writer::{CustomTrack, RecordingSettings};
use crate::types::{DepthMode, ImageFormat, WiredSyncMode};

/// What a track of the writer holds: one of the K4A streams, or the caller's custom track
/// (index into `RecordingSettings::custom_tracks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TrackRole {
    Builtin(TrackKind),
    Custom(usize),
}

/// One track as the writer lays it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TrackPlan {
    pub role: TrackRole,
    pub number: u64,
    pub uid: u64,
}

impl TrackPlan {
    /// The K4A stream of a built-in track.
    pub fn kind(&self) -> Option<TrackKind> {
        match self.role {
            TrackRole::Builtin(k) => Some(k),
            TrackRole::Custom(_) => None,
        }
    }
}

/// The 40-byte EBML header the SDK writes (defaults included).
pub(crate) fn ebml_header() -> Vec<u8> {
    ebml_header_sized(1).expect("a one-byte size field holds the header's 35 bytes")
}

/// The SDK's EBML header with its size field `width` bytes wide (1..=8), so that it fills
/// `39 + width` bytes exactly (repair puts it in the place of a wiped one).
pub(crate) fn ebml_header_sized(width: usize) -> Result<Vec<u8>, EbmlError> {
    let mut c = Vec::with_capacity(35);
    put_uint(&mut c, ids::EBML_VERSION, 1);
    put_uint(&mut c, ids::EBML_READ_VERSION, 1);
    put_uint(&mut c, ids::EBML_MAX_ID_LENGTH, 4);
    put_uint(&mut c, ids::EBML_MAX_SIZE_LENGTH, 8);
    put_str(&mut c, ids::DOC_TYPE, "matroska");
    put_uint(&mut c, ids::DOC_TYPE_VERSION, 2);
    put_uint(&mut c, ids::DOC_TYPE_READ_VERSION, 2);
    let mut out = Vec::with_capacity(39 + width);
    put_id(&mut out, ids::EBML);
    put_size_width(&mut out, c.len() as u64, width)?;
    out.extend_from_slice(&c);
    Ok(out)
}

/// The Segment's id and an 8-byte size field (the EBML "unknown" value for `None`), 12 bytes
/// as the SDK writes them, so that the size can be patched in place.
pub(crate) fn segment_header(size: Option<u64>) -> Result<Vec<u8>, EbmlError> {
    let mut out = Vec::with_capacity(12);
    put_id(&mut out, ids::SEGMENT);
    match size {
        Some(s) => put_size_width(&mut out, s, 8)?,
        None => out.extend_from_slice(&UNKNOWN_SIZE_8),
    }
    Ok(out)
}

/// `element` followed by a Void filling a reserved region of `region_len` bytes.
pub(crate) fn region(element: &[u8], region_len: u64) -> Result<Vec<u8>, EbmlError> {
    let mut out = replace_in_region(element, region_len)?;
    out.resize(region_len as usize, 0);
    Ok(out)
}

/// The region an element of `len` bytes takes where the SDK reserves `reserved`: the reserved
/// bytes when the element and a Void fit there, else exactly the element.
pub(crate) fn region_len(len: u64, reserved: u64) -> u64 {
    if len == reserved || len + 2 <= reserved {
        reserved
    } else {
        len
    }
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

/// The values of an Info element.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InfoValues<'a> {
    pub timestamp_scale_ns: u64,
    pub muxing_app: &'a str,
    pub writing_app: &'a str,
    /// DateUTC (ns since 2001-01-01); left out when unknown.
    pub date_ns_2001: Option<i64>,
    pub title: &'a str,
    /// Last timestamp − first, in ticks (the SDK's Duration, a float32).
    pub duration_ticks: f32,
}

/// Info: TimestampScale, MuxingApp, WritingApp, DateUTC, Title, Duration, in the SDK's order.
pub(crate) fn info(v: &InfoValues<'_>) -> Vec<u8> {
    let mut c = Vec::with_capacity(96);
    put_uint(&mut c, ids::TIMESTAMP_SCALE, v.timestamp_scale_ns);
    put_str(&mut c, ids::MUXING_APP, v.muxing_app);
    put_str(&mut c, ids::WRITING_APP, v.writing_app);
    if let Some(d) = v.date_ns_2001 {
        put_date(&mut c, ids::DATE_UTC, d);
    }
    put_str(&mut c, ids::TITLE, v.title);
    put_f32(&mut c, ids::DURATION, v.duration_ticks);
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
pub(crate) fn tracks(settings: &RecordingSettings, tracks: &[TrackPlan]) -> Vec<u8> {
    let cfg = &settings.config;
    let frame_ns = 1_000_000_000 / u64::from(cfg.camera_fps.hz());
    let mut c = Vec::new();
    for t in tracks {
        let mut e = Vec::with_capacity(110);
        put_uint(&mut e, ids::TRACK_NUMBER, t.number);
        put_uint(&mut e, ids::TRACK_UID, t.uid);
        let kind = match t.role {
            TrackRole::Builtin(kind) => kind,
            TrackRole::Custom(i) => {
                custom_track_entry(&mut e, &settings.custom_tracks[i]);
                put_master(&mut c, ids::TRACK_ENTRY, &e);
                continue;
            }
        };
        let video = match kind {
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
                put_str(&mut e, ids::NAME, kind.track_name());
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
                put_str(&mut e, ids::NAME, kind.track_name());
            }
        }
        put_master(&mut c, ids::TRACK_ENTRY, &e);
    }
    let mut out = Vec::with_capacity(c.len() + 8);
    put_master(&mut out, ids::TRACKS, &c);
    out
}

/// The body of a custom track's TrackEntry after its number and UID, as
/// `k4a_record_add_custom_video_track` / `_subtitle_track` write it: a video track with a
/// default duration and pixel size, or a subtitle track (TrackType 17).
fn custom_track_entry(e: &mut Vec<u8>, t: &CustomTrack) {
    put_uint(e, ids::TRACK_TYPE, if t.video.is_some() { 1 } else { 0x11 });
    put_str(e, ids::CODEC_ID, &t.codec_id);
    put_str(e, ids::NAME, &t.name);
    if let Some(p) = &t.codec_private {
        put_binary(e, ids::CODEC_PRIVATE, p);
    }
    if let Some(v) = &t.video {
        put_uint(
            e,
            ids::DEFAULT_DURATION,
            1_000_000_000 / u64::from(v.frame_rate.max(1)),
        );
        let mut px = Vec::with_capacity(10);
        put_uint(&mut px, ids::PIXEL_WIDTH, u64::from(v.width));
        put_uint(&mut px, ids::PIXEL_HEIGHT, u64::from(v.height));
        put_master(e, ids::VIDEO, &px);
    }
}

/// Attachments (size fields at least 2 bytes wide, like libmatroska).
pub(crate) fn attachments(files: &[Attachment]) -> Vec<u8> {
    let mut a = Vec::new();
    for file in files {
        let mut f = Vec::with_capacity(file.data.len() + 64);
        put_str(&mut f, ids::FILE_NAME, &file.file_name);
        put_str(&mut f, ids::FILE_MIME_TYPE, &file.mime_type);
        if let Some(d) = &file.description {
            put_str(&mut f, ids::FILE_DESCRIPTION, d);
        }
        put_binary(&mut f, ids::FILE_DATA, &file.data);
        put_uint(&mut f, ids::FILE_UID, file.uid);
        put_master_min(&mut a, ids::ATTACHED_FILE, &f, 2);
    }
    let mut out = Vec::with_capacity(a.len() + 8);
    put_master_min(&mut out, ids::ATTACHMENTS, &a, 2);
    out
}

/// Tags master (CRC-32 first) from the tags in order, one SimpleTag each.
pub(crate) fn tags(entries: &[Tag]) -> Vec<u8> {
    let mut c = Vec::new();
    for t in entries {
        let mut targets = Vec::with_capacity(24);
        match t.target {
            TagTarget::Global => {}
            TagTarget::Track(uid) => {
                put_str(&mut targets, ids::TARGET_TYPE, t.target.target_type());
                put_uint(&mut targets, ids::TAG_TRACK_UID, uid);
            }
            TagTarget::Attachment(uid) => {
                put_str(&mut targets, ids::TARGET_TYPE, t.target.target_type());
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
    tracks: &[TrackPlan],
    calibration_uid: Option<u64>,
) -> Vec<Tag> {
    let cfg = &settings.config;
    let uid_of = |k: TrackKind| tracks.iter().find(|t| t.kind() == Some(k)).map(|t| t.uid);
    let mut v = Vec::new();
    if let (Some(uid), Some(mode)) = (uid_of(TrackKind::Color), cfg.color_mode_name()) {
        v.push(Tag::new(
            TagTarget::Track(uid),
            TrackKind::Color.track_tag(),
            uid.to_string(),
        ));
        v.push(Tag::new(TagTarget::Track(uid), "K4A_COLOR_MODE", mode));
    }
    if let Some(uid) = uid_of(TrackKind::Depth) {
        v.push(Tag::new(
            TagTarget::Track(uid),
            TrackKind::Depth.track_tag(),
            uid.to_string(),
        ));
        v.push(Tag::new(
            TagTarget::Track(uid),
            "K4A_DEPTH_MODE",
            cfg.depth_mode.name(),
        ));
    } else if cfg.depth_mode == DepthMode::PassiveIr {
        v.push(Tag::new(TagTarget::Global, "K4A_DEPTH_MODE", "PASSIVE_IR"));
    }
    if let Some(uid) = uid_of(TrackKind::Ir) {
        v.push(Tag::new(
            TagTarget::Track(uid),
            TrackKind::Ir.track_tag(),
            uid.to_string(),
        ));
        let ir_mode = if cfg.depth_mode == DepthMode::PassiveIr {
            "PASSIVE"
        } else {
            "ACTIVE"
        };
        v.push(Tag::new(TagTarget::Track(uid), "K4A_IR_MODE", ir_mode));
    }
    if uid_of(TrackKind::Color).is_some() && cfg.depth_mode != DepthMode::Off {
        // The SDK multiplies in 32-bit arithmetic.
        let ns = cfg.depth_delay_off_color_usec.wrapping_mul(1000);
        v.push(Tag::new(
            TagTarget::Global,
            "K4A_DEPTH_DELAY_NS",
            ns.to_string(),
        ));
    }
    v.push(Tag::new(
        TagTarget::Global,
        "K4A_WIRED_SYNC_MODE",
        cfg.wired_sync_mode.name(),
    ));
    if cfg.wired_sync_mode == WiredSyncMode::Subordinate {
        let ns = cfg.subordinate_delay_off_master_usec.wrapping_mul(1000);
        v.push(Tag::new(
            TagTarget::Global,
            "K4A_SUBORDINATE_DELAY_NS",
            ns.to_string(),
        ));
    }
    if let Some(dev) = &settings.device {
        v.push(Tag::new(
            TagTarget::Global,
            "K4A_COLOR_FIRMWARE_VERSION",
            dev.color_firmware.to_string(),
        ));
        v.push(Tag::new(
            TagTarget::Global,
            "K4A_DEPTH_FIRMWARE_VERSION",
            dev.depth_firmware.to_string(),
        ));
        if let Some(serial) = dev.serial_number.as_deref().filter(|s| !s.is_empty()) {
            v.push(Tag::new(
                TagTarget::Global,
                "K4A_DEVICE_SERIAL_NUMBER",
                serial,
            ));
        }
        if let Some(uid) = calibration_uid {
            v.push(Tag::new(
                TagTarget::Attachment(uid),
                CALIBRATION_FILE_TAG,
                CALIBRATION_FILE_NAME,
            ));
        }
    }
    if let Some(uid) = uid_of(TrackKind::Imu) {
        v.push(Tag::new(
            TagTarget::Track(uid),
            TrackKind::Imu.track_tag(),
            uid.to_string(),
        ));
        v.push(Tag::new(TagTarget::Track(uid), "K4A_IMU_MODE", "ON"));
    }
    for t in tracks {
        if let TrackRole::Custom(i) = t.role {
            let name = format!("K4A_CUSTOM_TRACK_{}", settings.custom_tracks[i].name);
            v.push(Tag::new(TagTarget::Track(t.uid), &name, t.uid.to_string()));
        }
    }
    for (name, value) in &settings.tags {
        v.push(Tag::new(TagTarget::Global, name, value.clone()));
    }
    v
}

/// Cues: one CuePoint per (CueTime in ticks, segment-relative cluster position), all on track 1.
pub(crate) fn cues(points: &[(u64, u64)]) -> Vec<u8> {
    let mut c = Vec::with_capacity(points.len() * 16);
    for &(time_ticks, pos) in points {
        let mut tp = Vec::with_capacity(12);
        put_uint(&mut tp, ids::CUE_TRACK, 1);
        put_uint(&mut tp, ids::CUE_CLUSTER_POSITION, pos);
        let mut cp = Vec::with_capacity(20);
        put_uint(&mut cp, ids::CUE_TIME, time_ticks);
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
    fn ebml_header_bytes() {
        let h = [
            &[
                0x1A, 0x45, 0xDF, 0xA3, 0xA3, 0x42, 0x86, 0x81, 0x01, 0x42, 0xF7, 0x81, 0x01,
            ][..],
            &[
                0x42, 0xF2, 0x81, 0x04, 0x42, 0xF3, 0x81, 0x08, 0x42, 0x82, 0x88,
            ],
            b"matroska",
            &[0x42, 0x87, 0x81, 0x02, 0x42, 0x85, 0x81, 0x02],
        ]
        .concat();
        assert_eq!(ebml_header(), h);
        assert_eq!(h.len(), 40);
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
            (ids::CUES, 60_370_906),
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

    #[test]
    fn global_tag_bytes() {
        let b = tags(&[Tag::global("MY_TAG", "hello world")]);
        // Tags, CRC-32, then the tag exactly as the SDK writes it (empty Targets).
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
    fn regions_are_filled_exactly() {
        for n in [0u64, 5, 82, 1020, 1025, 1027] {
            let len = region_len(n, 1027);
            let p = region(&vec![0xAA; n as usize], len).unwrap();
            assert_eq!(p.len() as u64, len, "{n}");
            assert_eq!(len, 1027);
        }
        assert_eq!(region_len(1026, 1027), 1026);
        assert_eq!(region_len(1100, 1027), 1100);
        let p = region(&[0xAA; 82], 1027).unwrap();
        assert_eq!(&p[82..85], &[0xEC, 0x43, 0xAE]);
    }

    #[test]
    fn segment_header_and_widened_ebml_header() {
        assert_eq!(
            segment_header(None).unwrap(),
            [0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(
            segment_header(Some(0x0102)).unwrap(),
            [0x18, 0x53, 0x80, 0x67, 0x01, 0, 0, 0, 0, 0, 0x01, 0x02]
        );
        let h = ebml_header_sized(3).unwrap();
        assert_eq!(h.len(), 42);
        assert_eq!(&h[4..7], &[0x20, 0x00, 0x23]);
        assert_eq!(&h[7..], &ebml_header()[5..]);
    }
}
