//! Integration tests: the device layer against the emulator, end to end through the transport
//! seam (command packets, status packets, raw depth frames, UVC payloads, IMU packets).

use std::time::{Duration, Instant};

use freek4a::device::{
    self, ColorControl, ControlError, ControlMode, DepthEngineChoice, Device, DeviceError,
    OpenOptions,
};
use freek4a::emulator::{EmulatedBackend, EmulatorSpec, Speed};
use freek4a::protocol::depth_raw::{self, RawFrameHeader};
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
        wait_for_depth_engine: true,
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
    let mut d = Device::open_with(&b, 0, raw_options()).unwrap();
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
        assert!(s.acc_timestamp_usec > prev && s.acc_timestamp_usec - prev < 10 * 1_000_000 / 1666);
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
            assert_eq!(
                color.device_timestamp_usec % 33_333 <= 12
                    || color.device_timestamp_usec % 33_334 == 0,
                true
            );
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
    let period = 33_333u64;
    assert!(
        m.device_timestamp_usec % period <= 12,
        "{}",
        m.device_timestamp_usec
    );
    let off = s.device_timestamp_usec % period;
    assert!(
        off.abs_diff(delay_usec as u64) <= 12,
        "{}",
        s.device_timestamp_usec
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
