//! Microsoft's libk4a 1.4.2, unmodified, as a client of an emulated unit.
//!
//! A Python process drives libk4a through ctypes (`tests/oracle/libk4a_client.py`) under
//! `freek4a-usbfs`; libk4a's own libusb and libudev then enumerate, open and stream
//! from the emulator as if it were hardware. Everything libk4a reports is compared with what
//! the emulated unit holds, or with what our own driver receives from an emulator built from
//! the same seed. The supervisor logs each command packet libk4a sends (`--log-commands`).

use std::process::Command;
use std::time::Duration;

use freek4a::device::{ColorControl, ControlMode, DepthEngineChoice, Device, OpenOptions};
use freek4a::emulator::{EmulatedBackend, EmulatorSpec};
use freek4a::types::{ColorResolution, DepthMode, DeviceConfig, Fps, ImageFormat, ImuSample};
use serde_json::Value;

use crate::util::{Oracle, TempDir};

const SEED: u64 = 7;

/// Microsoft's SDK and the usbfs supervisor, or `None` after a skip when either is missing.
fn judges() -> Option<&'static Oracle> {
    let oracle = Oracle::get()?;
    crate::usbfs::supervisor()?;
    Some(oracle)
}

/// Runs the libk4a client under `freek4a-usbfs` (an emulated unit behind Linux's usbfs
/// interface); returns its JSON, its stderr (libk4a's log) and the command packets libk4a sent.
fn client(oracle: &Oracle, args: &[&str], tmp: &TempDir) -> (Value, String, Vec<String>) {
    let tool = crate::usbfs::supervisor().expect("checked by judges()");
    let log = tmp.join("commands.log");
    let _ = std::fs::remove_file(&log);
    let out = Command::new(tool)
        .args(["--emulate", &format!("units=1,seed={SEED}")])
        .arg("--log-commands")
        .arg(&log)
        .arg("--")
        .arg(&oracle.python)
        .arg(oracle.scripts.join("libk4a_client.py"))
        .args(args)
        .env("FREEK4A_ORACLE_LIBDIR", &oracle.libdir)
        .env("K4A_ENABLE_LOG_TO_STDOUT", "1")
        .env("K4A_LOG_LEVEL", "i")
        .output()
        .expect("run libk4a_client.py");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "libk4a_client.py {args:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON from libk4a_client.py ({e}): {stdout}\n{stderr}"));
    let commands = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    (v, stderr, commands)
}

fn backend() -> EmulatedBackend {
    EmulatedBackend::new(EmulatorSpec {
        seed: SEED,
        ..Default::default()
    })
}

fn our_device(b: &EmulatedBackend) -> Device {
    let options = OpenOptions {
        depth_engine: DepthEngineChoice::RawOnly,
        ..Default::default()
    };
    Device::open_with(b, 0, options).expect("our driver opens the emulated unit")
}

fn color_config(res: ColorResolution, fmt: ImageFormat) -> DeviceConfig {
    DeviceConfig {
        color_format: fmt,
        color_resolution: res,
        depth_mode: DepthMode::Off,
        camera_fps: Fps::Fps30,
        synchronized_images_only: false,
        ..Default::default()
    }
}

fn version(v: &Value) -> [u64; 3] {
    let a: Vec<u64> = v
        .as_array()
        .expect("version array")
        .iter()
        .map(|x| x.as_u64().expect("version number"))
        .collect();
    [a[0], a[1], a[2]]
}

#[test]
fn libk4a_opens_the_emulated_unit_and_reads_identity_and_calibration() {
    let Some(oracle) = judges() else { return };
    let tmp = TempDir::new("libk4a-info");
    let (v, log, commands) = client(oracle, &["info"], &tmp);
    let b = backend();
    let spec = EmulatorSpec::default();
    assert_eq!(v["installed_count"], 1, "{v:#}\n{log}");
    assert_eq!(v["serial_result"], 0);
    assert_eq!(v["serial"], b.serial(0).unwrap(), "{log}");
    assert_eq!(v["version_result"], 0);
    let fw = spec.firmware;
    let triple = |x: freek4a::types::Version| [x.major as u64, x.minor as u64, x.iteration as u64];
    assert_eq!(version(&v["rgb"]), triple(fw.rgb));
    assert_eq!(version(&v["depth"]), triple(fw.depth));
    assert_eq!(version(&v["audio"]), triple(fw.audio));
    assert_eq!(version(&v["depth_sensor"]), triple(fw.depth_sensor));
    assert_eq!(v["firmware_build"], 0, "release build");
    assert_eq!(v["firmware_signature"], 0, "MSFT signature");
    assert_eq!(v["calibration_result"], 0);
    // libk4a hands out the JSON with the NUL it appends.
    let cal = v["calibration"].as_str().unwrap();
    assert_eq!(
        cal.strip_suffix('\0'),
        b.calibration_json(0),
        "raw calibration"
    );
    // Our driver reads the same bytes.
    let d = our_device(&b);
    assert!(
        cal.as_bytes() == d.raw_calibration(),
        "libk4a's raw calibration differs from our driver's"
    );
    // The open sequence (protocol/sequences.md) as libk4a sent it: serial, calibration JSON, versions.
    for code in ["00000115", "00000111", "00000201"] {
        assert!(
            commands
                .iter()
                .any(|c| c.starts_with("097c 02 ") && c.contains(code)),
            "libk4a sent no depth command {code}: {commands:?}"
        );
    }
}

fn frames_of(v: &Value) -> Vec<(u64, Vec<u8>, Value)> {
    v["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| {
            let data = std::fs::read(f["path"].as_str().unwrap()).expect("frame file");
            assert_eq!(data.len() as u64, f["size"].as_u64().unwrap());
            (f["ts"].as_u64().unwrap(), data, f.clone())
        })
        .collect()
}

fn decode_jpeg(bytes: &[u8]) -> (usize, usize) {
    let mut d = zune_jpeg::JpegDecoder::new(zune_jpeg::zune_core::bytestream::ZCursor::new(bytes));
    let px = d.decode().expect("libk4a's JPEG decodes");
    let (w, h) = d.dimensions().expect("dimensions");
    assert_eq!(px.len(), w * h * 3);
    (w, h)
}

fn meta_of(frames: &[(u64, Vec<u8>, Value)], ts: u64) -> &Value {
    &frames.iter().find(|f| f.0 == ts).expect("frame").2
}

/// Colour images our driver receives from a fresh emulator with the same seed:
/// (device timestamp, bytes, exposure).
fn our_color_frames(
    res: ColorResolution,
    fmt: ImageFormat,
    count: usize,
) -> Vec<(u64, Vec<u8>, u64)> {
    let b = backend();
    let mut d = our_device(&b);
    d.start_cameras(&color_config(res, fmt)).unwrap();
    let mut out = Vec::new();
    while out.len() < count {
        let c = d
            .get_capture(Duration::from_secs(5))
            .unwrap()
            .expect("a capture within 5 s");
        if let Some(img) = c.color {
            out.push((
                img.device_timestamp_usec,
                img.data.into_vec(),
                img.exposure_usec,
            ));
        }
    }
    d.stop_cameras().unwrap();
    out
}

#[test]
fn libk4a_streams_colour_equal_to_our_driver() {
    let _heavy = crate::util::heavy_test_lock();
    let Some(oracle) = judges() else { return };
    const N: usize = 6;
    for (res, res_name, fmt, fmt_name, size) in [
        (
            ColorResolution::R720p,
            "720P",
            ImageFormat::Mjpg,
            "MJPG",
            (1280, 720),
        ),
        (
            ColorResolution::R1080p,
            "1080P",
            ImageFormat::Mjpg,
            "MJPG",
            (1920, 1080),
        ),
        (
            ColorResolution::R720p,
            "720P",
            ImageFormat::Nv12,
            "NV12",
            (1280, 720),
        ),
        (
            ColorResolution::R720p,
            "720P",
            ImageFormat::Yuy2,
            "YUY2",
            (1280, 720),
        ),
    ] {
        let tmp = TempDir::new("libk4a-color");
        let dir = tmp.path().to_str().unwrap().to_owned();
        let n = N.to_string();
        let (v, log, _) = client(oracle, &["color", res_name, fmt_name, "30", &n, &dir], &tmp);
        assert_eq!(v["start_cameras"], 0, "{fmt_name} {res_name}: {v:#}\n{log}");
        let theirs = frames_of(&v);
        assert_eq!(theirs.len(), N, "{fmt_name} {res_name}: {v:#}\n{log}");
        for w in theirs.windows(2) {
            assert!(
                w[1].0 > w[0].0,
                "{fmt_name} {res_name}: timestamps increase"
            );
        }
        for (_, data, meta) in &theirs {
            assert_eq!(meta["width"], size.0);
            assert_eq!(meta["height"], size.1);
            assert_eq!(meta["format"], fmt_name);
            match fmt {
                ImageFormat::Mjpg => assert_eq!(decode_jpeg(data), size),
                ImageFormat::Nv12 => assert_eq!(data.len(), size.0 * size.1 * 3 / 2),
                _ => assert_eq!(data.len(), size.0 * size.1 * 2),
            }
        }
        // Frame for frame the same timestamps and bytes as our driver gets (the emulator's
        // frame n is due at a fixed time after the colour start resets the timebase).
        // Under load libk4a may start reading some frames later than our driver.
        let ours = our_color_frames(res, fmt, N + 40);
        for (ts, data, _) in &theirs {
            let mine = ours.iter().find(|(t, _, _)| t == ts).unwrap_or_else(|| {
                panic!(
                    "{fmt_name} {res_name}: libk4a's frame at {ts} µs not among ours ({:?})",
                    ours.iter().map(|f| f.0).collect::<Vec<_>>()
                )
            });
            assert_eq!(
                meta_of(&theirs, *ts)["exposure_usec"].as_u64(),
                Some(mine.2),
                "{fmt_name} {res_name}: exposure of the frame at {ts} µs"
            );
            assert!(
                &mine.1 == data,
                "{fmt_name} {res_name}: libk4a's frame at {ts} µs ({} bytes) differs from ours \
                 ({} bytes)",
                data.len(),
                mine.1.len()
            );
        }
    }
}

/// BGRA32 is MJPEG on the wire decoded by libk4a with libjpeg-turbo: an independent decoder of
/// the emulator's JPEGs.
#[test]
fn libk4a_decodes_the_emulated_mjpeg_to_bgra() {
    let _heavy = crate::util::heavy_test_lock();
    let Some(oracle) = judges() else { return };
    const N: usize = 3;
    let tmp = TempDir::new("libk4a-bgra");
    let dir = tmp.path().to_str().unwrap().to_owned();
    let (v, log, _) = client(oracle, &["color", "720P", "BGRA32", "30", "3", &dir], &tmp);
    assert_eq!(v["start_cameras"], 0, "{log}");
    let theirs = frames_of(&v);
    assert_eq!(theirs.len(), N, "{v:#}\n{log}");
    assert!(!log.contains("MJPEG decode failed"), "{log}");
    // libk4a under load may drop the first frames (its MJPEG decode is slow), so look for its
    // timestamps among more of ours, as the streaming test does.
    let ours = our_color_frames(ColorResolution::R720p, ImageFormat::Mjpg, N + 40);
    for (ts, bgra, meta) in &theirs {
        assert_eq!(meta["stride"], 1280 * 4);
        assert_eq!(bgra.len(), 1280 * 720 * 4);
        let jpeg = &ours.iter().find(|f| f.0 == *ts).expect("same timestamp").1;
        let mut d = zune_jpeg::JpegDecoder::new(zune_jpeg::zune_core::bytestream::ZCursor::new(
            jpeg.as_slice(),
        ));
        let rgb = d.decode().expect("our decode");
        assert_eq!(rgb.len(), 1280 * 720 * 3);
        // Two decoders (libjpeg-turbo with fast DCT and upsampling, zune-jpeg) agree to within
        // rounding on average.
        let mut diff = 0u64;
        for (px, q) in bgra.chunks_exact(4).zip(rgb.chunks_exact(3)) {
            assert_eq!(px[3], 0xFF, "opaque");
            for (a, b) in [(px[2], q[0]), (px[1], q[1]), (px[0], q[2])] {
                diff += a.abs_diff(b) as u64;
            }
        }
        let mean = diff as f64 / (1280.0 * 720.0 * 3.0);
        assert!(mean < 2.0, "frame at {ts} µs: mean difference {mean}");
    }
}

fn f32s(v: &Value) -> [f32; 3] {
    let a: Vec<f32> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    [a[0], a[1], a[2]]
}

fn close(a: [f32; 3], b: [f32; 3]) -> bool {
    a.iter()
        .zip(&b)
        .all(|(x, y)| (x - y).abs() <= 1e-5 * x.abs().max(y.abs()).max(1e-3))
}

#[test]
fn libk4a_imu_samples_equal_our_driver() {
    let _heavy = crate::util::heavy_test_lock();
    let Some(oracle) = judges() else { return };
    const N: usize = 300;
    let tmp = TempDir::new("libk4a-imu");
    let (v, log, commands) = client(oracle, &["imu", &N.to_string()], &tmp);
    assert_eq!(v["start_cameras"], 0, "{log}");
    assert_eq!(v["start_imu"], 0, "{log}");
    let theirs = v["samples"].as_array().unwrap();
    assert_eq!(theirs.len(), N, "{v:#}\n{log}");
    assert!(
        commands.iter().any(|c| c.starts_with("097d 04 80000003")),
        "IMU_STREAM_START sent: {commands:?}"
    );

    let b = backend();
    let mut d = our_device(&b);
    d.start_cameras(&color_config(ColorResolution::R720p, ImageFormat::Mjpg))
        .unwrap();
    d.start_imu().unwrap();
    let mut ours: Vec<ImuSample> = Vec::new();
    while ours.len() < N {
        ours.push(
            d.get_imu_sample(Duration::from_secs(2))
                .unwrap()
                .expect("an IMU sample within 2 s"),
        );
    }
    d.stop_imu().unwrap();
    d.stop_cameras().unwrap();

    // Both streams start from the same seeded noise, so sample i is the same sample; the start
    // time (hence the timestamps) depends on when each host started the IMU.
    let mut prev = 0;
    for (i, (t, o)) in theirs.iter().zip(&ours).enumerate() {
        let acc_ts = t["acc_ts"].as_u64().unwrap();
        assert!(acc_ts > prev, "libk4a's timestamps increase at {i}");
        prev = acc_ts;
        assert_eq!(acc_ts, t["gyro_ts"].as_u64().unwrap());
        let (acc, gyro) = (f32s(&t["acc"]), f32s(&t["gyro"]));
        assert!(
            close(acc, o.acc_mps2) && close(gyro, o.gyro_radps),
            "sample {i}: libk4a acc {acc:?} gyro {gyro:?}, ours acc {:?} gyro {:?}",
            o.acc_mps2,
            o.gyro_radps
        );
        let temp = t["temperature"].as_f64().unwrap() as f32;
        assert!(
            (temp - o.temperature_c).abs() < 1e-4,
            "sample {i} temperature"
        );
    }
    let step = |a: u64, b: u64| b - a;
    let their_ts: Vec<u64> = theirs
        .iter()
        .map(|t| t["acc_ts"].as_u64().unwrap())
        .collect();
    let our_ts: Vec<u64> = ours.iter().map(|s| s.acc_timestamp_usec).collect();
    // 1666 Hz is 54.02 ticks of 90 kHz: samples are 54 ticks (600 µs) apart, now and then 55
    // (611 µs).
    for i in 1..N {
        for (who, ts) in [("libk4a", &their_ts), ("ours", &our_ts)] {
            let d = step(ts[i - 1], ts[i]);
            assert!(d == 600 || d == 611, "{who}: sample spacing {d} µs at {i}");
        }
    }
}

#[test]
fn libk4a_depth_start_reads_the_nv_block_and_stops_at_the_engine_calibration_check() {
    let Some(oracle) = judges() else { return };
    let tmp = TempDir::new("libk4a-depth");
    let (v, log, commands) = client(oracle, &["depth", "NFOV_UNBINNED", "30"], &tmp);
    // The sequence up to the engine: mode set, then NV_DATA_GET of tag 2 (protocol/sequences.md).
    let pos = |needle: &str| commands.iter().position(|c| c.starts_with(needle));
    let mode = pos("097c 02 000000e1 04000000").expect("DEPTH_MODE_SET(4, NFOV unbinned) sent");
    let nv = pos("097c 02 00000022 02000000").expect("NV_DATA_GET(tag 2) sent");
    assert!(mode < nv, "{commands:?}");
    // Microsoft's engine loads, then rejects the emulated calibration block (103 is
    // K4A_DEPTH_ENGINE_RESULT_FATAL_ERROR_UPDATE_CALIBRATION_FAILED): the limit of what can be
    // checked without a real unit's block.
    assert!(log.contains("Loaded Depth Engine version"), "{log}");
    assert!(
        log.contains("Depth engine create and initialize failed with error code: 103"),
        "{log}"
    );
    assert_eq!(v["start_cameras"], 1, "start fails: {v:#}");
    // Nothing past the engine was sent: no FPS set, no depth start.
    assert!(pos("097c 02 00000103").is_none(), "{commands:?}");
    assert!(pos("097c 02 00000009").is_none(), "{commands:?}");
}

const CONTROLS: [(&str, ColorControl); 10] = [
    ("EXPOSURE_TIME_ABSOLUTE", ColorControl::ExposureTimeAbsolute),
    ("AUTO_EXPOSURE_PRIORITY", ColorControl::AutoExposurePriority),
    ("BRIGHTNESS", ColorControl::Brightness),
    ("CONTRAST", ColorControl::Contrast),
    ("SATURATION", ColorControl::Saturation),
    ("SHARPNESS", ColorControl::Sharpness),
    ("WHITEBALANCE", ColorControl::WhiteBalance),
    (
        "BACKLIGHT_COMPENSATION",
        ColorControl::BacklightCompensation,
    ),
    ("GAIN", ColorControl::Gain),
    ("POWERLINE_FREQUENCY", ColorControl::PowerlineFrequency),
];

fn mode_name(m: ControlMode) -> &'static str {
    match m {
        ControlMode::Auto => "AUTO",
        ControlMode::Manual => "MANUAL",
    }
}

#[test]
fn libk4a_colour_controls_read_the_hardware_defaults_and_match_our_driver_after_sets() {
    let Some(oracle) = judges() else { return };
    let tmp = TempDir::new("libk4a-controls");
    // Exposure is set at 60 Hz (10 000 µs rounds up to 16 670, UVC 166), then the powerline
    // switch to 50 Hz makes it read back as the next 50 Hz entry (20 000).
    let sets: [(&str, ControlMode, i32); 5] = [
        ("EXPOSURE_TIME_ABSOLUTE", ControlMode::Manual, 10_000),
        ("BRIGHTNESS", ControlMode::Manual, 100),
        ("WHITEBALANCE", ControlMode::Manual, 5000),
        ("POWERLINE_FREQUENCY", ControlMode::Manual, 1),
        ("GAIN", ControlMode::Manual, 50),
    ];
    let args: Vec<String> = std::iter::once("controls".to_owned())
        .chain(
            sets.iter()
                .map(|(n, m, v)| format!("{n}={}:{v}", mode_name(*m))),
        )
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (v, log, _) = client(oracle, &args, &tmp);

    // The defaults the SDK's colour functional test measured on real hardware.
    let hardware_defaults = [
        ("EXPOSURE_TIME_ABSOLUTE", "AUTO", 33_330),
        ("BRIGHTNESS", "MANUAL", 128),
        ("CONTRAST", "MANUAL", 5),
        ("SATURATION", "MANUAL", 32),
        ("SHARPNESS", "MANUAL", 2),
        ("WHITEBALANCE", "AUTO", 4500),
        ("BACKLIGHT_COMPENSATION", "MANUAL", 0),
        ("GAIN", "MANUAL", 0),
        ("POWERLINE_FREQUENCY", "MANUAL", 2),
    ];
    for (name, mode, value) in hardware_defaults {
        let c = &v["before"][name];
        assert_eq!(c["result"], 0, "{name}: {log}");
        assert_eq!(
            (c["mode"].as_str().unwrap(), c["value"].as_i64().unwrap()),
            (mode, value),
            "{name} default"
        );
        let cap = &v["capabilities"][name];
        assert_eq!(cap["result"], 0, "{name} capabilities: {log}");
        assert_eq!(
            cap["default"].as_i64().unwrap(),
            value,
            "{name} capability default"
        );
        assert_eq!(cap["default_mode"], mode, "{name} capability default mode");
    }
    for s in v["sets"].as_array().unwrap() {
        assert_eq!(s["result"], 0, "set {s}: {log}");
    }

    let b = backend();
    let mut d = our_device(&b);
    for (name, mode, value) in sets {
        let control = CONTROLS.iter().find(|c| c.0 == name).unwrap().1;
        d.set_color_control(control, mode, value).unwrap();
    }
    for (name, control) in CONTROLS {
        let (mode, value) = d.get_color_control(control).unwrap();
        let c = &v["after"][name];
        assert_eq!(c["result"], 0, "{name}: {log}");
        assert_eq!(
            (c["mode"].as_str().unwrap(), c["value"].as_i64().unwrap()),
            (mode_name(mode), value as i64),
            "{name} after the sets: libk4a vs our driver"
        );
    }
    assert_eq!(v["after"]["EXPOSURE_TIME_ABSOLUTE"]["value"], 20_000);
    // A unit without cables.
    assert_eq!(v["sync_jack_result"], 0);
    assert_eq!(
        (v["sync_in"].as_bool(), v["sync_out"].as_bool()),
        (Some(false), Some(false))
    );
}

/// Both clients through the same kernel interface: libk4a and our shipped `k4arecorder`, each
/// under `freek4a-usbfs` with a unit of the same seed, receive the same colour frames (same
/// device timestamps, same bytes).
#[test]
fn libk4a_and_our_recorder_receive_the_same_frames_through_usbfs() {
    let _heavy = crate::util::heavy_test_lock();
    let Some(oracle) = judges() else { return };
    let tool = crate::usbfs::supervisor().expect("checked by judges()");
    let tmp = TempDir::new("libk4a-vs-recorder");
    let dir = tmp.path().to_str().unwrap().to_owned();
    let (v, log, _) = client(oracle, &["color", "720P", "MJPG", "30", "10", &dir], &tmp);
    assert_eq!(v["start_cameras"], 0, "{v:#}\n{log}");
    let theirs = frames_of(&v);
    assert_eq!(theirs.len(), 10);

    let out = Command::new(tool)
        .args(["--emulate", &format!("units=1,seed={SEED}"), "--"])
        .arg(crate::util::bin_path("k4arecorder"))
        .args([
            "-c", "720p", "-d", "OFF", "--imu", "OFF", "-l", "2", "ours.mkv",
        ])
        .current_dir(tmp.path())
        .env_remove("FREEK4A_EMULATE")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut pb = freek4a::playback::Playback::open(tmp.join("ours.mkv")).unwrap();
    let mut ours = Vec::new();
    while let Some(c) = pb.next_capture().unwrap() {
        if let Some(img) = c.color {
            ours.push((img.device_timestamp_usec, img.data));
        }
    }
    // The recorder's file starts with its first full capture, which may be a frame later.
    let first = ours.first().map(|f| f.0).expect("colour frames recorded");
    let mut matched = 0;
    for (ts, data, _) in theirs.iter().filter(|f| f.0 >= first) {
        let mine = ours.iter().find(|(t, _)| t == ts).unwrap_or_else(|| {
            panic!(
                "libk4a's frame at {ts} µs not in our recording ({:?})",
                ours.iter().map(|f| f.0).take(20).collect::<Vec<_>>()
            )
        });
        assert!(mine.1 == *data, "frame at {ts} µs differs");
        matched += 1;
    }
    assert!(matched >= 8, "only {matched} frames in common");
}
