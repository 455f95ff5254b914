//! Integration tests: mkv_writer.
//!
//! Files are written with synthetic captures shaped like the ones the reference recorder feeds
//! Microsoft's library (same timestamps and payloads), then judged by Microsoft's playback,
//! mkvinfo, mkvmerge and ffprobe, and compared element by element with libk4arecord's file.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use freek4a::mkv::writer::{DeviceInfo, K4aWriter, RecordingSettings};
use freek4a::types::*;

/// What a synthetic recording holds.
#[derive(Clone, Debug)]
pub struct Synth {
    pub config: DeviceConfig,
    pub imu: bool,
    pub frames: u32,
    pub device: bool,
}

pub const FIRST_TS_USEC: u64 = 1_000_000;
pub const JPEG_BYTES: usize = 200_000;

/// The colour payload the reference recorder uses for MJPG (noise-like, fixed pattern).
pub fn jpeg_payload() -> Vec<u8> {
    (0..JPEG_BYTES).map(|i| ((i * 7919) & 0xFF) as u8).collect()
}

fn image(format: ImageFormat, w: u32, h: u32, ts: u64, data: Vec<u8>) -> Image {
    Image {
        format,
        width: w,
        height: h,
        stride_bytes: format.stride_bytes(w),
        device_timestamp_usec: ts,
        system_timestamp_nsec: 0,
        exposure_usec: 0,
        data,
    }
}

impl Synth {
    pub fn period_usec(&self) -> u64 {
        u64::from(self.config.camera_fps.period_usec())
    }

    pub fn capture(&self, i: u32, jpeg: &[u8]) -> Capture {
        let c = &self.config;
        let ts = FIRST_TS_USEC + u64::from(i) * self.period_usec();
        let color = c.color_resolution.dimensions().map(|(w, h)| {
            let data = match c.color_format.image_size_bytes(w, h) {
                None => jpeg.to_vec(),
                Some(n) => vec![0; n],
            };
            image(c.color_format, w, h, ts, data)
        });
        let dims = c.depth_mode.dimensions();
        // Depth and IR carry a ramp so byte order mistakes show.
        let ramp = |w: u32, h: u32, k: u16| -> Vec<u8> {
            (0..(w * h) as usize)
                .flat_map(|p| ((p as u16).wrapping_mul(3).wrapping_add(k)).to_le_bytes())
                .collect()
        };
        let depth = dims
            .filter(|_| c.depth_mode.has_depth())
            .map(|(w, h)| image(ImageFormat::Depth16, w, h, ts, ramp(w, h, 1)));
        let ir = dims.map(|(w, h)| image(ImageFormat::Ir16, w, h, ts, ramp(w, h, 2)));
        Capture {
            color,
            depth,
            ir,
            temperature_c: f32::NAN,
        }
    }

    pub fn imu_samples(&self, i: u32) -> Vec<ImuSample> {
        if !self.imu {
            return Vec::new();
        }
        let ts = FIRST_TS_USEC + u64::from(i) * self.period_usec();
        (0..1600 / u64::from(self.config.camera_fps.hz()))
            .map(|j| ImuSample {
                temperature_c: 30.0,
                acc_mps2: [0.1, 0.2, 9.8],
                acc_timestamp_usec: ts + j * 625,
                gyro_radps: [0.01, 0.02, 0.03],
                gyro_timestamp_usec: ts + j * 625,
            })
            .collect()
    }

    pub fn settings(&self) -> RecordingSettings {
        let mut s = RecordingSettings::new(self.config.clone(), self.imu);
        if self.device {
            s.device = Some(DeviceInfo {
                serial_number: Some("001514394512".into()),
                color_firmware: Version {
                    major: 1,
                    minor: 6,
                    iteration: 110,
                },
                depth_firmware: Version {
                    major: 1,
                    minor: 6,
                    iteration: 79,
                },
                calibration_json: calibration_json(),
            });
        }
        s
    }

    /// Writes the recording to `path` with our writer.
    pub fn write(&self, path: &Path) {
        let f = BufWriter::new(File::create(path).expect("create output"));
        let mut w = K4aWriter::create(f, self.settings()).expect("create writer");
        let jpeg = jpeg_payload();
        for i in 0..self.frames {
            w.write_capture_owned(self.capture(i, &jpeg))
                .expect("write capture");
            for s in self.imu_samples(i) {
                w.write_imu(&s).expect("write imu");
            }
        }
        w.finish(Default::default()).expect("finish");
    }
}

pub fn calibration_json() -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/calibration-001514394512.json");
    std::fs::read(&p).unwrap_or_else(|_| br#"{"CalibrationInformation":{"Cameras":[]}}"#.to_vec())
}

fn out_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mkv_writer");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn writes_default_recording() {
    let s = Synth {
        config: DeviceConfig {
            color_resolution: ColorResolution::R720p,
            depth_mode: DepthMode::Nfov2x2Binned,
            ..Default::default()
        },
        imu: true,
        frames: 6,
        device: false,
    };
    let p = out_dir().join("default.mkv");
    s.write(&p);
    assert!(std::fs::metadata(&p).unwrap().len() > 3_000_000);
}
