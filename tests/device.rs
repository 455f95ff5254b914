//! Integration tests: the device layer against the emulator, end to end through the transport
//! seam (command packets, status packets, raw depth frames, UVC payloads, IMU packets).

use std::time::{Duration, Instant};

use freek4a::device::{self, DepthEngineChoice, Device, DeviceError, OpenOptions};
use freek4a::emulator::{EmulatedBackend, EmulatorSpec, Speed};
use freek4a::protocol::depth_raw::{self, RawFrameHeader};
use freek4a::types::{ColorResolution, DepthMode, DeviceConfig, Fps, ImageFormat};

const WAIT: Duration = Duration::from_secs(20);

fn backend(units: usize) -> EmulatedBackend {
    EmulatedBackend::new(EmulatorSpec { units, speed: Speed::Max, seed: 7, ..Default::default() })
}

fn raw_options() -> OpenOptions {
    OpenOptions { depth_engine: DepthEngineChoice::RawOnly, ..Default::default() }
}

fn config(color: ColorResolution, format: ImageFormat, depth: DepthMode, fps: Fps) -> DeviceConfig {
    DeviceConfig { color_format: format, color_resolution: color, depth_mode: depth, camera_fps: fps, ..Default::default() }
}

#[test]
fn vertical_slice_raw_nfov_mjpeg_720p_imu() {
    let b = backend(1);
    assert_eq!(device::list(&b).unwrap(), 1);
    let mut d = Device::open_with(&b, 0, raw_options()).unwrap();
    assert_eq!(d.serial_number(), b.serial(0).unwrap());
    assert_eq!(d.hardware_version().rgb.to_string(), "1.6.110");
    assert_eq!(d.raw_calibration().last(), Some(&0));
    let cfg = config(ColorResolution::R720p, ImageFormat::Mjpg, DepthMode::NfovUnbinned, Fps::Fps30);
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
    assert!(matches!(d.get_capture(Duration::from_millis(10)), Err(DeviceError::Stream(_))));
}
