//! Integration tests: the device layer against the emulator, end to end through the transport
//! seam (command packets, status packets, raw depth frames, UVC payloads, IMU packets).

use std::time::{Duration, Instant};

use freek4a::device::{
    self, ColorControl, CommandFailure, ControlError, ControlMode, DepthEngineChoice, Device,
    DeviceError, OpenOptions, Stream, StreamError,
};
use freek4a::emulator::{EmulatedBackend, EmulatorSpec, Fault, FaultRule, FaultTarget, Speed};
use freek4a::protocol::depth_raw::{self, RawFrameHeader};
use freek4a::transport::TransferError;
use freek4a::types::{ColorResolution, DepthMode, DeviceConfig, Fps, ImageFormat, WiredSyncMode};

const WAIT: Duration = Duration::from_secs(20);

fn backend(units: usize) -> EmulatedBackend {
    EmulatedBackend::new(EmulatorSpec {
        units,
        speed: Speed::Max,
        seed: 7,
        ..Default::default()
    })
}

fn raw_options() -> OpenOptions {
    OpenOptions {
        depth_engine: DepthEngineChoice::RawOnly,
        ..Default::default()
    }
}

fn config(color: ColorResolution, format: ImageFormat, depth: DepthMode, fps: Fps) -> DeviceConfig {
    DeviceConfig {
        color_format: format,
        color_resolution: color,
        depth_mode: depth,
        camera_fps: fps,
        ..Default::default()
    }
}

#[test]
fn vertical_slice_raw_nfov_mjpeg_720p_imu() {
    let b = backend(1);
    assert_eq!(device::list(&b).unwrap(), 1);
    let mut d = Device::open_with(&b, 0, raw_options()).unwrap();
    assert_eq!(d.serial_number(), b.serial(0).unwrap());
    assert_eq!(d.hardware_version().rgb.to_string(), "1.6.110");
    assert_eq!(d.raw_calibration().last(), Some(&0));
    let cfg = config(
        ColorResolution::R720p,
        ImageFormat::Mjpg,
        DepthMode::NfovUnbinned,
        Fps::Fps30,
    );
    d.start_cameras(&cfg).unwrap();
    d.start_imu().unwrap();
    let deadline = Instant::now() + WAIT;
    let mut colors = 0;
    while colors < 5 {
        assert!(Instant::now() < deadline, "no colour captures");
        if let Some(c) = d.get_capture(Duration::from_millis(500)).unwrap() {
            let img = c.color.expect("raw-only captures carry colour");
            assert_eq!((img.width, img.height), (1280, 720));
            assert!(img.device_timestamp_usec > 0);
            colors += 1;
        }
    }
    let mut raws = Vec::new();
    while raws.len() < 3 {
        assert!(Instant::now() < deadline, "no raw depth");
        if let Some(r) = d.get_raw_depth(Duration::from_millis(500)).unwrap() {
            raws.push(r);
        }
    }
    for r in &raws {
        assert_eq!(r.data.len(), depth_raw::raw_frame_size(4).unwrap());
        let h = RawFrameHeader::decode(&r.data).unwrap();
        assert_eq!(h.sensor_mode, 4);
    }
    let s = d.get_imu_sample(WAIT).unwrap().expect("an IMU sample");
    assert!((s.acc_mps2[2] + 9.81).abs() < 0.5, "{s:?}");
    d.stop_imu().unwrap();
    d.stop_cameras().unwrap();
    assert!(matches!(
        d.get_capture(Duration::from_millis(10)),
        Err(DeviceError::Stream(_))
    ));
}

fn engine_options() -> OpenOptions {
    OpenOptions {
        depth_engine: DepthEngineChoice::Emulated,
        readiness_retry_delay: Some(Duration::from_millis(5)),
        backpressure: true,
        ..Default::default()
    }
}

/// Every colour setting the SDK accepts with `fps` (and OFF).
fn color_settings(fps: Fps) -> Vec<(ColorResolution, ImageFormat)> {
    let mut v = vec![(ColorResolution::Off, ImageFormat::Mjpg)];
    for r in ColorResolution::ON {
        if r == ColorResolution::R3072p && fps == Fps::Fps30 {
            continue;
        }
        v.push((r, ImageFormat::Mjpg));
        v.push((r, ImageFormat::Bgra32));
    }
    v.push((ColorResolution::R720p, ImageFormat::Nv12));
    v.push((ColorResolution::R720p, ImageFormat::Yuy2));
    v
}

fn depth_settings(fps: Fps) -> Vec<DepthMode> {
    let mut v = vec![DepthMode::Off];
    v.extend(
        DepthMode::ON
            .into_iter()
            .filter(|m| !(*m == DepthMode::WfovUnbinned && fps == Fps::Fps30)),
    );
    v
}

fn decode_jpeg(bytes: &[u8]) -> (usize, usize) {
    let mut d = zune_jpeg::JpegDecoder::new(zune_jpeg::zune_core::bytestream::ZCursor::new(bytes));
    let px = d.decode().expect("colour JPEG decodes");
    let (w, h) = d.dimensions().expect("dimensions");
    assert_eq!(px.len(), w * h * 3);
    (w, h)
}

#[test]
fn every_allowed_combination_streams() {
    let b = backend(1);
    let mut d = Device::open_with(&b, 0, engine_options()).unwrap();
    let mut combos = 0;
    for fps in [Fps::Fps30, Fps::Fps15, Fps::Fps5] {
        for (res, fmt) in color_settings(fps) {
            for mode in depth_settings(fps) {
                if res == ColorResolution::Off && mode == DepthMode::Off {
                    continue;
                }
                let cfg = config(res, fmt, mode, fps);
                d.start_cameras(&cfg)
                    .unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
                d.start_imu().unwrap();
                let deadline = Instant::now() + WAIT;
                let (mut got_color, mut got_depth) =
                    (res == ColorResolution::Off, mode == DepthMode::Off);
                while !(got_color && got_depth) {
                    assert!(
                        Instant::now() < deadline,
                        "{cfg:?}: no captures; {:?}; color {got_color} depth {got_depth}",
                        d.drops()
                    );
                    let Some(c) = d.get_capture(Duration::from_millis(200)).unwrap() else {
                        continue;
                    };
                    if let Some(img) = &c.color {
                        let (w, h) = res.dimensions().unwrap();
                        assert_eq!((img.width, img.height, img.format), (w, h, fmt));
                        match fmt {
                            ImageFormat::Mjpg if !got_color && fps == Fps::Fps5 => {
                                assert_eq!(decode_jpeg(&img.data), (w as usize, h as usize))
                            }
                            ImageFormat::Mjpg => assert!(img.data.starts_with(&[0xFF, 0xD8])),
                            f => assert_eq!(Some(img.data.len()), f.image_size_bytes(w, h)),
                        }
                        got_color = true;
                    }
                    if mode != DepthMode::Off && (c.ir.is_some() || c.depth.is_some()) {
                        let (w, h) = mode.dimensions().unwrap();
                        let ir = c.ir.as_ref().expect("IR in every depth mode");
                        assert_eq!(
                            (ir.width, ir.height, ir.data.len()),
                            (w, h, (w * h * 2) as usize)
                        );
                        assert_eq!(c.depth.is_some(), mode.has_depth(), "{mode:?}");
                        if let Some(dep) = &c.depth {
                            assert_eq!(dep.data.len(), (w * h * 2) as usize);
                            assert_eq!(dep.device_timestamp_usec, ir.device_timestamp_usec);
                        }
                        got_depth = true;
                    }
                }
                assert!(d.get_imu_sample(WAIT).unwrap().is_some(), "{cfg:?}: no IMU");
                d.stop_imu().unwrap();
                d.stop_cameras().unwrap();
                combos += 1;
            }
        }
    }
    // 30 fps: 13 colour settings (OFF, 5 resolutions × MJPG/BGRA32, NV12, YUY2) × 5 depth
    // settings, less OFF/OFF; 15 and 5 fps: 15 × 6 − 1 (3072p and WFOV unbinned join).
    assert_eq!(combos, (13 * 5 - 1) + 2 * (15 * 6 - 1));
    let drops = d.drops();
    assert_eq!(
        (
            drops.depth_invalid_size,
            drops.depth_engine,
            drops.color_no_timestamp,
            drops.color_bad_size,
            drops.color_bad_packet,
            drops.imu_malformed
        ),
        (0, 0, 0, 0, 0, 0),
        "{drops:?}"
    );
}

#[test]
fn refused_combinations_give_the_sdk_messages() {
    let b = backend(1);
    let mut d = Device::open_with(&b, 0, raw_options()).unwrap();
    let msg = |d: &mut Device, cfg: DeviceConfig| d.start_cameras(&cfg).unwrap_err().to_string();
    let base = config(
        ColorResolution::R720p,
        ImageFormat::Mjpg,
        DepthMode::NfovUnbinned,
        Fps::Fps30,
    );
    assert_eq!(
        msg(&mut d, DeviceConfig { depth_mode: DepthMode::WfovUnbinned, color_resolution: ColorResolution::Off, ..base.clone() }),
        "The configured depth_mode K4A_DEPTH_MODE_WFOV_UNBINNED does not support the configured camera_fps K4A_FRAMES_PER_SECOND_30."
    );
    assert_eq!(
        msg(&mut d, DeviceConfig { color_resolution: ColorResolution::R3072p, ..base.clone() }),
        "The combination of color_resolution at K4A_COLOR_RESOLUTION_3072P, color_format at K4A_IMAGE_FORMAT_COLOR_MJPG, and camera_fps at K4A_FRAMES_PER_SECOND_30 is not supported."
    );
    assert_eq!(
        msg(&mut d, DeviceConfig { color_resolution: ColorResolution::R1080p, color_format: ImageFormat::Nv12, ..base.clone() }),
        "The combination of color_resolution at K4A_COLOR_RESOLUTION_1080P, color_format at K4A_IMAGE_FORMAT_COLOR_NV12, and camera_fps at K4A_FRAMES_PER_SECOND_30 is not supported."
    );
    assert_eq!(
        msg(&mut d, DeviceConfig { color_resolution: ColorResolution::Off, depth_mode: DepthMode::Off, ..base.clone() }),
        "Neither depth camera nor color camera are enabled in the configuration, at least one needs to be enabled."
    );
    assert_eq!(
        msg(&mut d, DeviceConfig { color_resolution: ColorResolution::Off, depth_delay_off_color_usec: 10, ..base.clone() }),
        "If depth_delay_off_color_usec is not 0, both depth camera and color camera must be enabled."
    );
    assert_eq!(
        msg(&mut d, DeviceConfig { depth_delay_off_color_usec: 40_000, ..base.clone() }),
        "The configured depth_delay_off_color_usec must be within +/- one frame interval of 33333. User requested 40000"
    );
    assert_eq!(
        msg(&mut d, DeviceConfig { wired_sync_mode: WiredSyncMode::Master, ..base.clone() }),
        "Failure to detect presence of sync out cable with wired sync mode K4A_WIRED_SYNC_MODE_MASTER."
    );
    assert_eq!(
        msg(&mut d, DeviceConfig { wired_sync_mode: WiredSyncMode::Subordinate, ..base.clone() }),
        "Failure to detect presence of sync in cable with wired sync mode K4A_WIRED_SYNC_MODE_SUBORDINATE."
    );
    assert_eq!(
        msg(&mut d, DeviceConfig { depth_mode: DepthMode::Off, synchronized_images_only: true, ..base.clone() }),
        "To enable synchronized_images_only, both depth camera and color camera must also be enabled."
    );
    assert_eq!(
        d.start_imu().unwrap_err().to_string(),
        "k4a_device_start_imu called while the color/depth camera is not running is not supported"
    );
    d.start_cameras(&base).unwrap();
    assert_eq!(
        msg(&mut d, base.clone()),
        "k4a_device_start_cameras called while one of the sensors are running, depth:1 color:1"
    );
    d.stop_cameras().unwrap();
}

#[test]
fn two_units_list_and_pair_by_container_id() {
    let b = backend(2);
    assert_eq!(device::list(&b).unwrap(), 2);
    let d0 = Device::open_with(&b, 0, raw_options()).unwrap();
    let d1 = Device::open_with(&b, 1, raw_options()).unwrap();
    assert_ne!(d0.serial_number(), d1.serial_number());
    for (i, d) in [(0, &d0), (1, &d1)] {
        assert_eq!(Some(d.serial_number()), b.serial(i));
        assert_eq!(Some(d.container_id()), b.container_id(i));
        let sn = freek4a::protocol::payload::SerialNumber::new(d.serial_number()).unwrap();
        sn.check_digit_valid().unwrap();
        assert_eq!(d.serial_number().len(), 12);
    }
    assert!(matches!(
        Device::open(&b, 2),
        Err(DeviceError::NotFound { index: 2, count: 2 })
    ));
}

#[test]
fn imu_samples_equal_the_ground_truth() {
    let b = backend(1);
    let options = OpenOptions {
        backpressure: true,
        ..raw_options()
    };
    let mut d = Device::open_with(&b, 0, options).unwrap();
    d.start_cameras(&config(
        ColorResolution::R720p,
        ImageFormat::Nv12,
        DepthMode::Off,
        Fps::Fps30,
    ))
    .unwrap();
    d.start_imu().unwrap();
    let mut samples = Vec::new();
    while samples.len() < 200 {
        samples.push(d.get_imu_sample(WAIT).unwrap().expect("IMU sample"));
    }
    d.stop_imu().unwrap();
    let truth = b.imu_truth(0);
    let mut prev = 0;
    for s in &samples {
        let t = truth
            .iter()
            .find(|t| t.ticks * 100 / 9 == s.acc_timestamp_usec)
            .unwrap_or_else(|| panic!("no ground truth at {} µs", s.acc_timestamp_usec));
        assert_eq!(s.gyro_timestamp_usec, s.acc_timestamp_usec);
        assert!(s.acc_timestamp_usec > prev);
        assert!(prev == 0 || s.acc_timestamp_usec - prev < 10 * 1_000_000 / 1666);
        prev = s.acc_timestamp_usec;
        for k in 0..3 {
            let (a, g) = (t.acc_quantized_mps2[k], t.gyro_quantized_radps[k]);
            assert!(
                (s.acc_mps2[k] as f64 - a).abs() <= 1e-6 * a.abs().max(1.0),
                "acc {k}: {} vs {a}",
                s.acc_mps2[k]
            );
            assert!(
                (s.gyro_radps[k] as f64 - g).abs() <= 1e-6 * g.abs().max(1.0),
                "gyro {k}: {} vs {g}",
                s.gyro_radps[k]
            );
            // And within half a count of what the sensor felt.
            assert!((s.acc_mps2[k] as f64 - t.acc_mps2[k]).abs() <= 0.0025);
        }
        assert_eq!(s.temperature_c, t.temperature_raw as f32 / 256.0 + 15.0);
        assert!((s.temperature_c as f64 - t.temperature_c).abs() < 0.01);
    }
}

#[test]
fn depth_payloads_have_exact_sizes_and_frame_period_timestamps() {
    let b = backend(1);
    let mut d = Device::open_with(&b, 0, raw_options()).unwrap();
    for (mode, fps) in [
        (DepthMode::NfovUnbinned, Fps::Fps30),
        (DepthMode::Nfov2x2Binned, Fps::Fps30),
        (DepthMode::Wfov2x2Binned, Fps::Fps15),
        (DepthMode::WfovUnbinned, Fps::Fps15),
        (DepthMode::PassiveIr, Fps::Fps5),
    ] {
        let sensor = depth_raw::sensor_mode_for(mode).unwrap();
        let period_ticks = 90_000 / fps.hz() as u64;
        d.start_cameras(&config(
            ColorResolution::R720p,
            ImageFormat::Yuy2,
            mode,
            fps,
        ))
        .unwrap();
        let mut ticks = Vec::new();
        let deadline = Instant::now() + WAIT;
        while ticks.len() < 6 {
            assert!(Instant::now() < deadline);
            let Some(r) = d.get_raw_depth(Duration::from_millis(200)).unwrap() else {
                continue;
            };
            assert_eq!(r.data.len(), depth_raw::raw_frame_size(sensor).unwrap());
            assert!(r.system_timestamp_ns > 0);
            let h = RawFrameHeader::decode(&r.data).unwrap();
            assert_eq!(h.sensor_mode, sensor);
            ticks.push(h.center_of_exposure_ticks);
        }
        // After the colour start reset the timebase, frames sit on the frame grid.
        let after: Vec<u64> = ticks
            .iter()
            .copied()
            .skip_while(|t| *t / period_ticks > 10)
            .collect();
        assert!(after.len() >= 2, "{mode:?}: {ticks:?}");
        for w in after.windows(2) {
            assert_eq!(w[1].wrapping_sub(w[0]), period_ticks, "{mode:?}: {ticks:?}");
        }
        assert!(after.iter().all(|t| t % period_ticks == 0));
        d.stop_cameras().unwrap();
    }
    assert_eq!(d.drops().depth_invalid_size, 0);
}

#[test]
fn depth_delay_shifts_depth_against_colour() {
    let b = backend(1);
    let mut d = Device::open_with(&b, 0, engine_options()).unwrap();
    for delay in [0i32, 10_000, -10_000] {
        let cfg = DeviceConfig {
            depth_delay_off_color_usec: delay,
            synchronized_images_only: true,
            ..config(
                ColorResolution::R720p,
                ImageFormat::Mjpg,
                DepthMode::NfovUnbinned,
                Fps::Fps30,
            )
        };
        d.start_cameras(&cfg).unwrap();
        let mut n = 0;
        while n < 5 {
            let c = d.get_capture(WAIT).unwrap().expect("capture");
            let (color, ir) = (c.color.unwrap(), c.ir.unwrap());
            let diff = ir.device_timestamp_usec as i64 - color.device_timestamp_usec as i64;
            // Ticks truncate: µs → ticks → µs loses at most 12 µs.
            assert!(
                (diff - delay as i64).abs() <= 12,
                "delay {delay}: diff {diff}"
            );
            // Colour frames sit on the 3000-tick (30 fps) grid of the device clock.
            assert_eq!((color.device_timestamp_usec * 9 + 50) / 100 % 3000, 0);
            n += 1;
        }
        d.stop_cameras().unwrap();
    }
}

#[test]
fn wired_sync_subordinate_is_offset_by_its_delay() {
    let b = EmulatedBackend::new(EmulatorSpec {
        units: 2,
        speed: Speed::Max,
        seed: 3,
        sync_cables: true,
        ..Default::default()
    });
    let mut master = Device::open_with(&b, 0, raw_options()).unwrap();
    let mut sub = Device::open_with(&b, 1, raw_options()).unwrap();
    let delay_usec = 1000;
    let sub_cfg = DeviceConfig {
        wired_sync_mode: WiredSyncMode::Subordinate,
        subordinate_delay_off_master_usec: delay_usec,
        ..config(
            ColorResolution::R720p,
            ImageFormat::Nv12,
            DepthMode::Off,
            Fps::Fps30,
        )
    };
    sub.start_cameras(&sub_cfg).unwrap();
    // No master pulses yet: the subordinate delivers nothing.
    assert!(sub
        .get_capture(Duration::from_millis(300))
        .unwrap()
        .is_none());
    let master_cfg = DeviceConfig {
        wired_sync_mode: WiredSyncMode::Master,
        ..sub_cfg.clone()
    };
    let master_cfg = DeviceConfig {
        subordinate_delay_off_master_usec: 0,
        ..master_cfg
    };
    master.start_cameras(&master_cfg).unwrap();
    let m = master
        .get_capture(WAIT)
        .unwrap()
        .expect("master capture")
        .color
        .unwrap();
    let s = sub
        .get_capture(WAIT)
        .unwrap()
        .expect("subordinate capture")
        .color
        .unwrap();
    // Frames sit on the master's 30 fps grid (k × 33 333.3 µs, to within the 90 kHz tick
    // rounding), the subordinate's `delay_usec` after it.
    let off_grid = |t_usec: u64| {
        let period = 1e6 / 30.0;
        let t = t_usec as f64;
        (t - (t / period).round() * period).abs()
    };
    let m_usec = m.device_timestamp_usec;
    assert!(off_grid(m_usec) <= 12.0, "master frame at {m_usec} µs");
    let s_usec = s.device_timestamp_usec;
    assert!(
        off_grid(s_usec - u64::from(delay_usec)) <= 12.0,
        "subordinate frame at {s_usec} µs is not {delay_usec} µs after a master frame"
    );
    sub.stop_cameras().unwrap();
    master.stop_cameras().unwrap();
}

#[test]
fn colour_controls_round_trip_with_the_exposure_table() {
    let b = backend(1);
    let mut d = Device::open_with(&b, 0, raw_options()).unwrap();
    assert_eq!(
        d.get_color_control(ColorControl::Brightness).unwrap(),
        (ControlMode::Manual, 128)
    );
    assert_eq!(
        d.get_color_control(ColorControl::ExposureTimeAbsolute)
            .unwrap(),
        (ControlMode::Auto, 33_330)
    );
    d.set_color_control(
        ColorControl::ExposureTimeAbsolute,
        ControlMode::Manual,
        9000,
    )
    .unwrap();
    // 9000 µs rounds up to the 60 Hz entry 16670 (UVC 166), read back as 16670.
    assert_eq!(
        d.get_color_control(ColorControl::ExposureTimeAbsolute)
            .unwrap(),
        (ControlMode::Manual, 16_670)
    );
    d.set_color_control(ColorControl::PowerlineFrequency, ControlMode::Manual, 1)
        .unwrap();
    d.set_color_control(
        ColorControl::ExposureTimeAbsolute,
        ControlMode::Manual,
        9000,
    )
    .unwrap();
    assert_eq!(
        d.get_color_control(ColorControl::ExposureTimeAbsolute)
            .unwrap(),
        (ControlMode::Manual, 10_000)
    );
    d.set_color_control(ColorControl::Gain, ControlMode::Manual, 77)
        .unwrap();
    assert_eq!(
        d.get_color_control(ColorControl::Gain).unwrap(),
        (ControlMode::Manual, 77)
    );
    d.set_color_control(ColorControl::WhiteBalance, ControlMode::Manual, 5000)
        .unwrap();
    assert_eq!(
        d.get_color_control(ColorControl::WhiteBalance).unwrap(),
        (ControlMode::Manual, 5000)
    );
    assert!(d
        .set_color_control(ColorControl::PowerlineFrequency, ControlMode::Manual, 0)
        .is_err());
    assert!(matches!(
        d.set_color_control(ColorControl::Gain, ControlMode::Manual, 999),
        Err(DeviceError::Control(ControlError::Transfer { .. }))
    ));
    // The exposure shows up in the frames' metadata, clipped to the frame period.
    d.set_color_control(
        ColorControl::ExposureTimeAbsolute,
        ControlMode::Manual,
        20_000,
    )
    .unwrap();
    d.start_cameras(&config(
        ColorResolution::R720p,
        ImageFormat::Mjpg,
        DepthMode::Off,
        Fps::Fps30,
    ))
    .unwrap();
    let c = d.get_capture(WAIT).unwrap().unwrap().color.unwrap();
    assert_eq!(c.exposure_usec, 20_000);
    d.stop_cameras().unwrap();
}

/// Runs `f` on its own thread and fails if it does not finish in `secs` (a hang is a bug).
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs)).expect("no hang")
}

fn faulty(rules: Vec<FaultRule>) -> EmulatedBackend {
    EmulatedBackend::new(EmulatorSpec {
        units: 1,
        speed: Speed::Max,
        seed: 11,
        faults: rules,
        ..Default::default()
    })
}

fn fast_raw() -> OpenOptions {
    OpenOptions {
        depth_engine: DepthEngineChoice::RawOnly,
        readiness_retry_delay: Some(Duration::from_millis(1)),
        ..Default::default()
    }
}

const SERIAL: u32 = 0x115;
const VERSIONS: u32 = 0x201;
const CALIBRATION: u32 = 0x111;
const MODE_SET: u32 = 0xE1;
const STREAM_START: u32 = 0xF1;
const SET_SYS_CFG: u32 = 0x8000_0001;

#[test]
fn command_faults_give_typed_errors_naming_the_command() {
    use freek4a::protocol::command::CommandError as CE;
    let open_err = |rule: FaultRule| {
        within(30, move || {
            Device::open_with(&faulty(vec![rule]), 0, fast_raw())
                .err()
                .expect("open fails")
        })
    };
    let cmd = |c| FaultTarget::Command(c);
    // Never answered: the status phase times out (2 s, as the SDK).
    match open_err(FaultRule::always(0, cmd(SERIAL), Fault::Timeout)) {
        DeviceError::Command(CommandFailure::Timeout { command, phase }) => {
            assert_eq!(command.code, SERIAL);
            assert_eq!(phase, "data");
        }
        e => panic!("{e}"),
    }
    match open_err(FaultRule::always(0, cmd(SERIAL), Fault::Stall)) {
        DeviceError::Command(CommandFailure::Transfer {
            source: TransferError::Stall,
            phase: "command",
            ..
        }) => {}
        e => panic!("{e}"),
    }
    match open_err(FaultRule::always(0, cmd(SERIAL), Fault::WrongMagic)) {
        DeviceError::Command(CommandFailure::Protocol(CE::WrongMagic { command, .. })) => {
            assert_eq!(command.code, SERIAL)
        }
        e => panic!("{e}"),
    }
    match open_err(FaultRule::always(0, cmd(SERIAL), Fault::Corrupt)) {
        DeviceError::Command(CommandFailure::Protocol(CE::BadResponse { command, .. })) => {
            assert_eq!(command.code, SERIAL)
        }
        e => panic!("{e}"),
    }
    // The readiness wait retries COMPONENT_VERSION_GET 20 times.
    match open_err(FaultRule::always(
        0,
        cmd(VERSIONS),
        Fault::WrongTransactionId,
    )) {
        DeviceError::NotReady {
            attempts: 20,
            last: CommandFailure::Protocol(CE::TransactionIdMismatch { .. }),
        } => {}
        e => panic!("{e}"),
    }
    match open_err(FaultRule::always(0, cmd(VERSIONS), Fault::Short)) {
        DeviceError::NotReady { attempts: 20, .. } => {}
        e => panic!("{e}"),
    }
    // Calibration: ten growing attempts, then a typed error.
    match open_err(FaultRule::always(
        0,
        cmd(CALIBRATION),
        Fault::BadStatus(0x63),
    )) {
        DeviceError::CalibrationRead {
            attempts: 10,
            last: CommandFailure::Protocol(CE::Status { .. }),
        } => {}
        e => panic!("{e}"),
    }
    // Garbage after the JSON still fits the buffer: the parser refuses it.
    assert!(matches!(
        open_err(FaultRule::always(0, cmd(CALIBRATION), Fault::Oversized)),
        DeviceError::Calibration(_)
    ));
    match open_err(FaultRule::always(0, cmd(SERIAL), Fault::Oversized)) {
        DeviceError::Command(CommandFailure::Protocol(CE::DataOverflow {
            command,
            max: 255,
            ..
        })) => {
            assert_eq!(command.code, SERIAL)
        }
        e => panic!("{e}"),
    }
    assert!(matches!(
        open_err(FaultRule::always(0, cmd(SERIAL), Fault::Disconnect)),
        DeviceError::Command(_)
    ));
    // Transient faults are absorbed by the SDK's retries.
    within(30, move || {
        let b = faulty(vec![
            FaultRule::once_after(0, cmd(VERSIONS), Fault::BadStatus(0x07), 0),
            FaultRule::once_after(0, cmd(CALIBRATION), Fault::BadStatus(0x63), 0),
        ]);
        Device::open_with(&b, 0, fast_raw()).unwrap();
    });
    // Faults during start name the command.
    let start_err = |rule: FaultRule| {
        within(30, move || {
            let b = faulty(vec![rule]);
            let mut d = Device::open_with(&b, 0, fast_raw()).unwrap();
            d.start_cameras(&config(
                ColorResolution::R720p,
                ImageFormat::Mjpg,
                DepthMode::NfovUnbinned,
                Fps::Fps30,
            ))
            .unwrap_err()
        })
    };
    match start_err(FaultRule::always(0, cmd(SET_SYS_CFG), Fault::Oversized)) {
        DeviceError::Command(CommandFailure::Protocol(CE::WrongLength {
            command,
            got: 24,
            ..
        })) => {
            assert_eq!(command.code, SET_SYS_CFG)
        }
        e => panic!("{e}"),
    }
    match start_err(FaultRule::always(0, cmd(MODE_SET), Fault::BadStatus(0x101))) {
        e @ DeviceError::Command(CommandFailure::Protocol(CE::Status { .. })) => {
            assert!(e.to_string().contains("DEPTH_MODE_SET"), "{e}")
        }
        e => panic!("{e}"),
    }
    match start_err(FaultRule::always(0, cmd(STREAM_START), Fault::Stall)) {
        DeviceError::Command(CommandFailure::Transfer { command, .. }) => {
            assert_eq!(command.code, STREAM_START)
        }
        e => panic!("{e}"),
    }
}

/// Starts NFOV + MJPEG 720p + IMU on a faulty unit and streams until `captures` captures
/// arrived or a stream failed.
fn stream_with(
    rules: Vec<FaultRule>,
    captures: usize,
    min_raws: usize,
    min_imus: usize,
) -> (Result<(), DeviceError>, device::Drops, usize, usize) {
    within(60, move || {
        let b = faulty(rules);
        let mut d = Device::open_with(&b, 0, fast_raw()).unwrap();
        let cfg = config(
            ColorResolution::R720p,
            ImageFormat::Mjpg,
            DepthMode::NfovUnbinned,
            Fps::Fps30,
        );
        // A unit unplugged by a fault while it is still starting fails the start itself.
        if let Err(e) = d.start_cameras(&cfg).and_then(|()| d.start_imu()) {
            return (Err(e), d.drops(), 0, 0);
        }
        let end = Instant::now() + WAIT;
        let (mut seen, mut raws, mut imus) = (0, 0, 0);
        let mut result = Ok(());
        // Streams are paced independently: wait for each to get past its injected faults.
        while seen < captures || raws < min_raws || imus < min_imus {
            assert!(Instant::now() < end, "stream stalled: {:?}", d.drops());
            match d.get_capture(Duration::from_millis(10)) {
                Ok(Some(_)) => seen += 1,
                Ok(None) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            while let Ok(Some(r)) = d.get_raw_depth(Duration::ZERO) {
                assert_eq!(r.data.len(), depth_raw::raw_frame_size(4).unwrap());
                raws += 1;
            }
            while let Ok(Some(_)) = d.get_imu_sample(Duration::ZERO) {
                imus += 1;
            }
        }
        let drops = d.drops();
        let _ = d.stop_imu();
        let _ = d.stop_cameras();
        (result, drops, raws, imus)
    })
}

#[test]
fn stream_faults_are_counted_drops() {
    let depth = FaultTarget::Stream(Stream::Depth);
    let color = FaultTarget::Stream(Stream::Color);
    let imu = FaultTarget::Stream(Stream::Imu);
    let (r, d, raws, _) = stream_with(
        vec![
            FaultRule::once_after(0, depth, Fault::Short, 2),
            FaultRule::once_after(0, depth, Fault::Oversized, 4),
        ],
        20,
        8,
        0,
    );
    r.unwrap();
    assert_eq!(d.depth_invalid_size, 2, "{d:?} raws {raws}");
    assert!(raws > 0);
    let (r, d, _, _) = stream_with(
        vec![
            FaultRule::once_after(0, color, Fault::Corrupt, 1),
            FaultRule::once_after(0, color, Fault::Short, 3),
            FaultRule::once_after(0, color, Fault::Oversized, 5),
        ],
        20,
        0,
        0,
    );
    r.unwrap();
    // PTS 0, no metadata, and a metadata item overrunning the metadata.
    assert_eq!(d.color_no_timestamp, 3, "{d:?}");
    let (r, d, _, imus) = stream_with(
        vec![
            FaultRule::once_after(0, imu, Fault::Short, 3),
            FaultRule::once_after(0, imu, Fault::Corrupt, 5),
            FaultRule::once_after(0, imu, Fault::Oversized, 7),
        ],
        20,
        0,
        200,
    );
    r.unwrap();
    assert_eq!(d.imu_malformed, 3, "{d:?}");
    assert!(imus > 0);
    // A silent depth endpoint: colour keeps flowing, nothing hangs.
    let (r, _, raws, _) = stream_with(vec![FaultRule::always(0, depth, Fault::Timeout)], 10, 0, 0);
    r.unwrap();
    assert_eq!(raws, 0);
}

#[test]
fn stream_failures_end_the_stream_with_typed_errors() {
    let depth = FaultTarget::Stream(Stream::Depth);
    let color = FaultTarget::Stream(Stream::Color);
    for (target, fault, stream, source) in [
        (depth, Fault::Stall, Stream::Depth, TransferError::Stall),
        (color, Fault::Stall, Stream::Color, TransferError::Stall),
        (
            depth,
            Fault::Disconnect,
            Stream::Depth,
            TransferError::Disconnected,
        ),
        (
            color,
            Fault::Disconnect,
            Stream::Color,
            TransferError::Disconnected,
        ),
    ] {
        let (r, _, _, _) =
            stream_with(vec![FaultRule::once_after(0, target, fault, 3)], 1000, 0, 0);
        match r {
            Err(DeviceError::Stream(StreamError::Transfer {
                stream: s,
                source: e,
            })) => {
                assert_eq!((s, e), (stream, source), "{target:?} {fault:?}")
            }
            // At full speed the depth stream runs before the colour stream has started: a
            // depth-side unplug can land while the start still reads the colour function.
            Err(DeviceError::Transport(e))
                if fault == Fault::Disconnect
                    && e.kind == freek4a::transport::ErrorKind::Disconnected => {}
            other => panic!("{target:?} {fault:?}: {other:?}"),
        }
    }
    // The IMU queue reports its own failure.
    let imu = FaultTarget::Stream(Stream::Imu);
    within(30, move || {
        let b = faulty(vec![FaultRule::once_after(0, imu, Fault::Stall, 2)]);
        let mut d = Device::open_with(&b, 0, fast_raw()).unwrap();
        d.start_cameras(&config(
            ColorResolution::R720p,
            ImageFormat::Mjpg,
            DepthMode::Off,
            Fps::Fps30,
        ))
        .unwrap();
        d.start_imu().unwrap();
        let end = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < end);
            match d.get_imu_sample(Duration::from_millis(50)) {
                Ok(_) => continue,
                Err(DeviceError::Stream(StreamError::Transfer {
                    stream: Stream::Imu,
                    source: TransferError::Stall,
                })) => break,
                Err(e) => panic!("{e}"),
            }
        }
    });
    // Unplugging mid-stream: every later call fails cleanly, stop does not hang.
    within(30, || {
        let b = faulty(vec![]);
        let mut d = Device::open_with(&b, 0, fast_raw()).unwrap();
        d.start_cameras(&config(
            ColorResolution::R720p,
            ImageFormat::Nv12,
            DepthMode::NfovUnbinned,
            Fps::Fps30,
        ))
        .unwrap();
        d.get_capture(WAIT).unwrap().unwrap();
        b.disconnect(0);
        let end = Instant::now() + WAIT;
        while d.get_capture(Duration::from_millis(50)).is_ok() {
            assert!(Instant::now() < end, "disconnect not reported");
        }
        assert!(d.stop_cameras().is_err());
        assert_eq!(device::list(&b).unwrap(), 0);
        assert!(Device::open(&b, 0).is_err());
    });
}

#[test]
fn real_time_and_factor_speeds_are_paced_by_the_clock() {
    for (speed, factor) in [(Speed::RealTime, 1.0), (Speed::Factor(4.0), 4.0)] {
        let b = EmulatedBackend::new(EmulatorSpec {
            units: 1,
            speed,
            seed: 5,
            ..Default::default()
        });
        let mut d = Device::open_with(&b, 0, raw_options()).unwrap();
        d.start_cameras(&config(
            ColorResolution::R720p,
            ImageFormat::Mjpg,
            DepthMode::Off,
            Fps::Fps30,
        ))
        .unwrap();
        let mut first = d.get_capture(WAIT).unwrap().unwrap().color.unwrap();
        while let Some(c) = d.get_capture(Duration::ZERO).unwrap() {
            first = c.color.unwrap();
        }
        let t0 = Instant::now();
        let mut last = first.clone();
        for _ in 0..12 {
            last = d.get_capture(WAIT).unwrap().unwrap().color.unwrap();
        }
        let wall = t0.elapsed().as_secs_f64();
        let device = (last.device_timestamp_usec - first.device_timestamp_usec) as f64 / 1e6;
        assert!((device - 12.0 / 30.0).abs() < 0.001, "{device}");
        let expected = device / factor;
        // Never faster than the clock allows; slower only by what a loaded host adds.
        assert!(
            wall > expected * 0.8 && wall < expected + 1.0,
            "{speed:?}: {wall} s for {device} s"
        );
        d.stop_cameras().unwrap();
    }
}

#[test]
fn calibration_read_grows_its_buffer_like_the_sdk() {
    let padded = |len: usize| {
        let base = freek4a::emulator::calibration::default_json("000019484312");
        let mut v: serde_json::Value = serde_json::from_str(&base).unwrap();
        let notes = &mut v["CalibrationInformation"]["Metadata"]["Notes"];
        *notes = serde_json::Value::String(String::new());
        let bare = v.to_string().len();
        v["CalibrationInformation"]["Metadata"]["Notes"] =
            serde_json::Value::String("x".repeat(len - bare));
        let s = v.to_string();
        assert_eq!(s.len(), len);
        s
    };
    // 20 000 bytes needs the third buffer (10 240, 15 360, 20 480).
    let json = padded(20_000);
    let b = EmulatedBackend::new(EmulatorSpec {
        speed: Speed::Max,
        calibration_json: Some(json.clone()),
        ..Default::default()
    });
    let d = Device::open_with(&b, 0, fast_raw()).unwrap();
    let mut expected = json.into_bytes();
    expected.push(0);
    assert_eq!(d.raw_calibration(), &expected[..]);
    // Exactly the last buffer size leaves no room for the NUL: every attempt fails.
    let b = EmulatedBackend::new(EmulatorSpec {
        speed: Speed::Max,
        calibration_json: Some(padded(56_320)),
        ..Default::default()
    });
    match Device::open_with(&b, 0, fast_raw()) {
        Err(DeviceError::CalibrationRead { attempts: 10, .. }) => {}
        other => panic!("{:?}", other.err()),
    }
}
