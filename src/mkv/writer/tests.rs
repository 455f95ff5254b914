use std::io::Cursor;

use super::*;
use crate::types::{ColorResolution, DepthMode, Fps};

fn settings(color: ColorResolution, depth: DepthMode, imu: bool) -> RecordingSettings {
    let cfg = DeviceConfig {
        color_resolution: color,
        depth_mode: depth,
        camera_fps: Fps::Fps30,
        ..Default::default()
    };
    let mut s = RecordingSettings::new(cfg, imu);
    s.uid_seed = Some(7);
    s
}

fn imu(ts_usec: u64) -> ImuSample {
    ImuSample {
        temperature_c: f32::NAN,
        acc_mps2: [1.0, 2.0, 3.0],
        acc_timestamp_usec: ts_usec,
        gyro_radps: [4.0, 5.0, 6.0],
        gyro_timestamp_usec: ts_usec,
    }
}

fn color(ts_usec: u64, n: usize) -> Capture {
    Capture {
        color: Some(Image::new(
            ImageFormat::Mjpg,
            1280,
            720,
            ts_usec,
            vec![0xFF; n],
        )),
        ..Default::default()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn header_is_valid_while_recording() {
    let mut w = K4aWriter::create(
        Cursor::new(Vec::new()),
        settings(ColorResolution::R720p, DepthMode::Off, true),
    )
    .unwrap();
    let bytes = w.w.get_ref().clone();
    // Segment size unknown, SeekHead at seg+0, Info at seg+1027, Tracks at seg+1286.
    assert_eq!(&bytes[44..52], &ebml::UNKNOWN_SIZE_8);
    assert_eq!(&bytes[52..56], &[0x11, 0x4D, 0x9B, 0x74]);
    assert_eq!(&bytes[1079..1083], &[0x15, 0x49, 0xA9, 0x66]);
    assert_eq!(&bytes[1338..1342], &[0x16, 0x54, 0xAE, 0x6B]);
    // No Cues entry in the SeekHead yet.
    assert!(find(&bytes[52..1079], &[0x1C, 0x53, 0xBB, 0x6B]).is_none());
    assert!(find(&bytes, b"K4A_START_OFFSET_NS").is_none());
    // The first cluster puts the start offset into the Tags before it is written.
    w.write_capture(&color(995_000, 100)).unwrap();
    w.write_imu(&imu(995_000)).unwrap();
    w.write_capture(&color(4_000_000, 100)).unwrap();
    let bytes = w.w.get_ref().clone();
    assert!(find(&bytes, b"K4A_START_OFFSET_NS").is_some());
    assert!(find(&bytes, b"995000000").is_some());
    assert_eq!(w.summary().clusters, 1);
    // Tags + Void still end where the first cluster begins.
    let cluster = find(&bytes, &[0x1F, 0x43, 0xB6, 0x75]).unwrap() as u64;
    assert_eq!(cluster, w.tags_region_end);
    let (cur, summary) = w.finish(DropCounts::default()).unwrap();
    let bytes = cur.into_inner();
    assert_eq!(summary.clusters, 2);
    assert_eq!(bytes[44], 0x01);
    assert_eq!(
        u64::from_be_bytes(bytes[44..52].try_into().unwrap()) & 0x00FF_FFFF_FFFF_FFFF,
        bytes.len() as u64 - 52
    );
    assert!(find(&bytes[52..1079], &[0x1C, 0x53, 0xBB, 0x6B]).is_some());
}

#[test]
fn imu_run_bytes_match_reference_example() {
    // As libk4arecord writes them: 8 samples 625 µs apart from 995 000 000 ns, IMU on track 4,
    // cluster time 0.
    let mut s = settings(ColorResolution::R720p, DepthMode::NfovUnbinned, true);
    s.config.depth_mode = DepthMode::Nfov2x2Binned;
    let mut w = K4aWriter::create(Cursor::new(Vec::new()), s).unwrap();
    for k in 0..8 {
        w.write_imu(&imu(995_000 + k * 625)).unwrap();
    }
    let (cur, _) = w.finish(DropCounts::default()).unwrap();
    let bytes = cur.into_inner();
    let bg = find(
        &bytes,
        &[
            0xA0, 0x41, 0x4C, 0xA1, 0x41, 0x45, 0x84, 0x00, 0x00, 0x04, 0x07,
        ],
    );
    let bg = bg.expect("laced BlockGroup header");
    assert_eq!(&bytes[bg + 11..bg + 19], &995_000_000u64.to_le_bytes());
    assert_eq!(
        &bytes[bg + 11 + 320..bg + 11 + 324],
        &[0x9B, 0x82, 0x11, 0x18]
    );
    // Cluster: CRC-32 over everything after it.
    let c = find(&bytes, &[0x1F, 0x43, 0xB6, 0x75]).unwrap();
    let width = bytes[c + 4].leading_zeros() as usize + 1;
    let mut size = (bytes[c + 4] as usize) & (0xFF >> width);
    for b in &bytes[c + 5..c + 4 + width] {
        size = (size << 8) | *b as usize;
    }
    let d = c + 4 + width;
    // No colour block, so no cue point: the cluster ends the file.
    assert_eq!(d + size, bytes.len());
    assert_eq!(&bytes[d..d + 2], &[0xBF, 0x84]);
    let crc = u32::from_le_bytes(bytes[d + 2..d + 6].try_into().unwrap());
    assert_eq!(crc, crc32fast::hash(&bytes[d + 6..d + size]));
    assert_eq!(&bytes[d + 6..d + 9], &[0xE7, 0x81, 0x00]);
}

#[test]
fn late_items_and_wrong_images_are_refused() {
    let mut w = K4aWriter::create(
        Cursor::new(Vec::new()),
        settings(ColorResolution::R720p, DepthMode::Off, true),
    )
    .unwrap();
    w.write_imu(&imu(1_000_000)).unwrap();
    w.write_imu(&imu(3_100_000)).unwrap();
    assert_eq!(w.summary().clusters, 1);
    assert!(matches!(
        w.write_imu(&imu(1_000_100)),
        Err(WriteError::TooLate {
            kind: TrackKind::Imu,
            ..
        })
    ));
    let mut bad = color(3_100_000, 10);
    bad.color.as_mut().unwrap().width = 1920;
    assert!(matches!(
        w.write_capture(&bad),
        Err(WriteError::WrongImage {
            kind: TrackKind::Color,
            ..
        })
    ));
    let mut depth = color(3_100_000, 10);
    depth.depth = depth.color.take();
    assert!(matches!(
        w.write_capture(&depth),
        Err(WriteError::StreamDisabled(TrackKind::Depth))
    ));
}

#[test]
fn pending_data_is_bounded_in_bytes() {
    let mut s = settings(ColorResolution::R720p, DepthMode::Off, false);
    s.pending_limit_bytes = 1 << 20;
    let mut w = K4aWriter::create(Cursor::new(Vec::new()), s).unwrap();
    for i in 0..30 {
        w.write_capture(&color(1_000_000 + i * 33_333, 300_000))
            .unwrap();
        assert!(w.pending_bytes <= (1 << 20) + 300_000);
    }
    assert!(w.summary().clusters >= 25);
}

#[test]
fn invalid_user_tag_name_is_refused() {
    let mut s = settings(ColorResolution::R720p, DepthMode::Off, false);
    s.tags.push(("lower case".into(), "x".into()));
    assert!(matches!(
        K4aWriter::create(Cursor::new(Vec::new()), s),
        Err(WriteError::InvalidTagName(_))
    ));
}

/// Deterministic bytes (xorshift) so every block differs.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// A recording exercising every path of the cluster writer: MJPG of varying size, depth and IR
/// (byte-swapped), missing and empty images, IMU runs split by images, IMU arriving before and
/// after the images of its window, a late item, early writes past the pending budget, cues,
/// device info and user tags. Fixed seed and start time, so the bytes are fully determined.
fn reference_recording(pending_limit_bytes: usize) -> Vec<u8> {
    let cfg = DeviceConfig {
        color_resolution: ColorResolution::R720p,
        depth_mode: DepthMode::Nfov2x2Binned,
        camera_fps: Fps::Fps30,
        depth_delay_off_color_usec: -125,
        ..Default::default()
    };
    let mut s = RecordingSettings::new(cfg, true);
    s.uid_seed = Some(0x5EED);
    s.start_time = UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456);
    s.tags = vec![("TAKE".into(), "7".into())];
    s.device = Some(RecordedDevice {
        serial_number: Some("000123456789".into()),
        color_firmware: Version {
            major: 1,
            minor: 6,
            iteration: 110,
        },
        depth_firmware: Version {
            major: 1,
            minor: 6,
            iteration: 80,
        },
        calibration_json: b"{\"CalibrationInformation\":{}}".to_vec(),
    });
    s.pending_limit_bytes = pending_limit_bytes;
    let mut w = K4aWriter::create(Cursor::new(Vec::new()), s).unwrap();
    let (dw, dh) = (320u32, 288u32);
    let image = Image::new;
    let mut imu_t = 900_000u64;
    for n in 0..150u64 {
        let ts = 1_000_000 + n * 33_333;
        let cap = Capture {
            color: (n % 7 != 3).then(|| {
                let len = if n % 11 == 5 {
                    0
                } else {
                    20_000 + (n as usize * 977) % 9000
                };
                image(ImageFormat::Mjpg, 1280, 720, ts, noise(len, n))
            }),
            depth: (n % 5 != 2).then(|| {
                image(
                    ImageFormat::Depth16,
                    dw,
                    dh,
                    ts,
                    noise(2 * (dw * dh) as usize, n + 1000),
                )
            }),
            ir: Some(image(
                ImageFormat::Ir16,
                dw,
                dh,
                ts,
                noise(2 * (dw * dh) as usize, n + 2000),
            )),
            temperature_c: f32::NAN,
        };
        // IMU lags the images by a few ms, so some samples land in windows that already hold
        // images and runs get split.
        while imu_t < ts + 29_000 {
            let mut sample = imu(imu_t);
            sample.acc_mps2[0] = imu_t as f32 * 1e-3;
            sample.gyro_timestamp_usec = imu_t + 3;
            w.write_imu(&sample).unwrap();
            imu_t += 625 + (imu_t / 625) % 3;
        }
        if n % 2 == 0 {
            w.write_capture(&cap).unwrap();
        } else {
            w.write_capture_owned(cap).unwrap();
        }
        if n == 120 {
            assert!(matches!(
                w.write_imu(&imu(1_000_000)),
                Err(WriteError::TooLate { .. })
            ));
        }
    }
    let dropped = DropCounts::from_fn(|k| match k {
        TrackKind::Color => 2,
        TrackKind::Depth => 0,
        TrackKind::Ir => 1,
        TrackKind::Imu => 5,
    });
    let (cur, _) = w.finish(dropped).unwrap();
    cur.into_inner()
}

/// Length and FNV-1a-64 of [`reference_recording`] as written by the writer of commit 2364194
/// (before the throughput work): any change to the writer's output shows up here.
#[test]
fn output_bytes_are_unchanged() {
    for (limit, len, digest) in [
        (
            DEFAULT_PENDING_LIMIT_BYTES,
            52_959_599u64,
            9_525_153_930_738_923_445u64,
        ),
        (1 << 20, 52_959_599, 9_525_153_930_738_923_445),
    ] {
        let bytes = reference_recording(limit);
        assert_eq!(
            (bytes.len() as u64, fnv1a64(&bytes)),
            (len, digest),
            "pending limit {limit}"
        );
    }
}

#[test]
fn word_swap_matches_pairwise_swap_and_crc() {
    for len in [
        0,
        1,
        2,
        7,
        8,
        9,
        17,
        4096,
        SWAP_CHUNK_BYTES + 3,
        3 * SWAP_CHUNK_BYTES + 10,
    ] {
        let src = noise(len, len as u64 + 1);
        let mut expected = src.clone();
        for px in expected.chunks_exact_mut(2) {
            px.swap(0, 1);
        }
        let mut got = src.clone();
        let crc = swap16_with_crc(&mut got);
        assert_eq!(got, expected, "len {len}");
        assert_eq!(crc.finalize(), crc32fast::hash(&expected), "len {len}");
    }
    let mut le = vec![0x34, 0x12, 0x78, 0x56];
    swap16_with_crc(&mut le);
    assert_eq!(le, [0x12, 0x34, 0x56, 0x78]);
}

#[test]
fn a_short_delay_waits_for_the_slower_stream() {
    let mut s = settings(ColorResolution::R720p, DepthMode::Off, true);
    s.cluster_write_delay_ns = 250_000_000;
    let mut w = K4aWriter::create(Cursor::new(Vec::new()), s).unwrap();
    // A capture 1 s ahead of the IMU backlog, as when the IMU queue is drained after the first
    // written capture: the backlog still goes in, in order, none of it late.
    w.write_capture(&color(2_000_000, 100)).unwrap();
    for k in 0..1600 {
        w.write_imu(&imu(1_000_000 + k * 625)).unwrap();
    }
    // The IMU (the slower stream) has reached 2.0 s: only clusters ending before 1.75 s are out.
    let written = w.summary().clusters;
    assert!(written > 0, "no cluster written");
    assert!(
        w.written_until_ns <= 1_750_000_000,
        "written until {}",
        w.written_until_ns
    );
    // A stream that stops (no IMU any more) holds clusters back no longer than the SDK's 2 s.
    w.write_capture(&color(4_100_000, 100)).unwrap();
    assert!(
        w.written_until_ns >= 2_000_000_000,
        "{}",
        w.written_until_ns
    );
    let (bytes, summary) = w.finish(DropCounts::default()).unwrap();
    assert_eq!(summary.imu_samples, 1600);
    assert_eq!(summary.images, 2);
    assert!(!bytes.into_inner().is_empty());
}
