//! `freek4a extract`: a recording turned into ordinary files.
//!
//! Layout of the output directory:
//!
//! - `color/<n>_<device µs>.jpg` for MJPEG colour (the stored JPEG, unchanged), or `.png`
//!   (8-bit RGB) for NV12, YUY2 and BGRA colour;
//! - `depth/<n>_<device µs>.png` and `ir/<n>_<device µs>.png`: 16-bit greyscale PNG, depth in
//!   millimetres;
//! - `imu.csv`: one row per sample (timestamps in µs, acceleration in m/s², angular velocity in
//!   rad/s);
//! - `calibration.json`: the device's calibration as recorded, and `intrinsics.json`: the depth
//!   and colour camera intrinsics for the recording's modes, in pixels.
//!
//! `<n>` is the capture index, so the images of one capture share it.

use std::fmt;
use std::fs::{self, File};
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::playback::{self, Playback};
use crate::protocol::calibration::{Calibration, CameraCalibration};
use crate::types::{Image, ImageFormat};

/// Why extraction failed.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The recording could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The recording.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: playback::Error,
    },
    /// An output file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An image could not be encoded.
    #[error("encoding {path}: {message}")]
    Encode {
        /// The output file.
        path: PathBuf,
        /// The encoder's message.
        message: String,
    },
}

/// What extraction wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtractReport {
    /// The output directory.
    pub out_dir: PathBuf,
    /// Captures read.
    pub captures: u64,
    /// Colour images written.
    pub color: u64,
    /// Depth images written.
    pub depth: u64,
    /// IR images written.
    pub ir: u64,
    /// IMU rows written.
    pub imu_samples: u64,
    /// Whether calibration.json and intrinsics.json were written.
    pub calibration: bool,
}

impl fmt::Display for ExtractReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Extracted {} captures to {}: {} colour, {} depth, {} IR images, {} IMU samples{}",
            self.captures,
            self.out_dir.display(),
            self.color,
            self.depth,
            self.ir,
            self.imu_samples,
            if self.calibration {
                ", calibration"
            } else {
                ""
            }
        )
    }
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> ExtractError + '_ {
    move |source| ExtractError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Extracts `file` into `out_dir` (created if missing). With `progress`, a count of captures is
/// shown on stderr when it is a terminal.
pub fn extract(file: &Path, out_dir: &Path, progress: bool) -> Result<ExtractReport, ExtractError> {
    let read_err = |source| ExtractError::Read {
        path: file.to_path_buf(),
        source,
    };
    let mut pb = Playback::open(file).map_err(read_err)?;
    fs::create_dir_all(out_dir).map_err(write_err(out_dir))?;
    let mut report = ExtractReport {
        out_dir: out_dir.to_path_buf(),
        ..Default::default()
    };
    let show = progress && std::io::stderr().is_terminal();

    if let Some(json) = pb.calibration().map(<[u8]>::to_vec) {
        let path = out_dir.join("calibration.json");
        fs::write(&path, &json).map_err(write_err(&path))?;
        if let Ok(cal) = Calibration::from_json(&json) {
            let cfg = pb.config();
            let depth = cal.depth.for_depth_mode(cfg.depth_mode);
            let color = cal.color.for_color_resolution(cfg.color_resolution);
            let doc = serde_json::json!({
                "depth_mode": cfg.depth_mode.name(),
                "depth": depth.as_ref().map(intrinsics_json),
                "color_resolution": cfg.color_resolution.dimensions(),
                "color": color.as_ref().map(intrinsics_json),
            });
            let path = out_dir.join("intrinsics.json");
            let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
            fs::write(&path, text + "\n").map_err(write_err(&path))?;
        }
        report.calibration = true;
    }

    while let Some(capture) = pb.next_capture().map_err(read_err)? {
        let n = report.captures;
        for (image, dir, count) in [
            (&capture.color, "color", &mut report.color),
            (&capture.depth, "depth", &mut report.depth),
            (&capture.ir, "ir", &mut report.ir),
        ] {
            if let Some(image) = image {
                let sub = out_dir.join(dir);
                if *count == 0 {
                    fs::create_dir_all(&sub).map_err(write_err(&sub))?;
                }
                write_image(&sub, n, image)?;
                *count += 1;
            }
        }
        report.captures += 1;
        if show && report.captures.is_multiple_of(10) {
            eprint!("\rExtracting: {} captures", report.captures);
        }
    }
    if show {
        eprint!("\r\x1b[K");
    }

    if pb.config().imu_track_enabled {
        pb.seek(0, playback::Origin::Begin).map_err(read_err)?;
        let path = out_dir.join("imu.csv");
        let f = File::create(&path).map_err(write_err(&path))?;
        let mut w = BufWriter::new(f);
        let mut rows = || -> Result<u64, std::io::Error> {
            writeln!(
                w,
                "acc_timestamp_usec,acc_x_mps2,acc_y_mps2,acc_z_mps2,gyro_timestamp_usec,gyro_x_radps,gyro_y_radps,gyro_z_radps"
            )?;
            let mut n = 0;
            while let Some(s) = pb
                .next_imu_sample()
                .map_err(|e| std::io::Error::other(e.to_string()))?
            {
                let [ax, ay, az] = s.acc_mps2;
                let [gx, gy, gz] = s.gyro_radps;
                writeln!(
                    w,
                    "{},{ax},{ay},{az},{},{gx},{gy},{gz}",
                    s.acc_timestamp_usec, s.gyro_timestamp_usec
                )?;
                n += 1;
            }
            w.flush()?;
            Ok(n)
        };
        report.imu_samples = rows().map_err(write_err(&path))?;
    }
    Ok(report)
}

fn intrinsics_json(c: &CameraCalibration) -> serde_json::Value {
    const NAMES: [&str; 15] = [
        "cx",
        "cy",
        "fx",
        "fy",
        "k1",
        "k2",
        "k3",
        "k4",
        "k5",
        "k6",
        "codx",
        "cody",
        "p2",
        "p1",
        "metric_radius",
    ];
    let params: serde_json::Map<String, serde_json::Value> = NAMES
        .iter()
        .zip(c.parameters.iter())
        .take(c.parameter_count as usize)
        .map(|(n, v)| (n.to_string(), serde_json::json!(v)))
        .collect();
    serde_json::json!({
        "width": c.resolution_width,
        "height": c.resolution_height,
        "model": format!("{:?}", c.model),
        "parameters": params,
        "metric_radius": c.metric_radius,
    })
}

fn write_image(dir: &Path, index: u64, image: &Image) -> Result<(), ExtractError> {
    let stem = format!("{index:06}_{}", image.device_timestamp_usec);
    if image.format == ImageFormat::Mjpg {
        let path = dir.join(format!("{stem}.jpg"));
        return fs::write(&path, &image.data).map_err(write_err(&path));
    }
    let path = dir.join(format!("{stem}.png"));
    let (w, h) = (image.width, image.height);
    let (color, depth, bytes): (png::ColorType, png::BitDepth, Vec<u8>) = match image.format {
        ImageFormat::Depth16 | ImageFormat::Ir16 => (
            png::ColorType::Grayscale,
            png::BitDepth::Sixteen,
            // PNG samples are big-endian; images hold little-endian u16.
            image
                .data
                .chunks_exact(2)
                .flat_map(|p| [p[1], p[0]])
                .collect(),
        ),
        ImageFormat::Bgra32 => (
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            image
                .data
                .chunks_exact(4)
                .flat_map(|p| [p[2], p[1], p[0]])
                .collect(),
        ),
        ImageFormat::Nv12 => (
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            nv12_to_rgb(&image.data, w as usize, h as usize),
        ),
        ImageFormat::Yuy2 => (
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            yuy2_to_rgb(&image.data, w as usize, h as usize),
        ),
        ImageFormat::Mjpg => unreachable!("handled above"),
    };
    let expected = w as usize
        * h as usize
        * match (color, depth) {
            (png::ColorType::Grayscale, _) => 2,
            _ => 3,
        };
    if bytes.len() != expected {
        return Err(ExtractError::Encode {
            path,
            message: format!(
                "{} image of {w}x{h} holds {} bytes",
                image.format.sdk_name(),
                image.data.len()
            ),
        });
    }
    let f = File::create(&path).map_err(write_err(&path))?;
    let mut enc = png::Encoder::new(BufWriter::new(f), w, h);
    enc.set_color(color);
    enc.set_depth(depth);
    let encode_err = |e: png::EncodingError| ExtractError::Encode {
        path: path.clone(),
        message: e.to_string(),
    };
    let mut writer = enc.write_header().map_err(encode_err)?;
    writer.write_image_data(&bytes).map_err(encode_err)?;
    writer.finish().map_err(encode_err)
}

/// BT.601 limited-range YUV to RGB.
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = (i32::from(y) - 16) * 298;
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    ]
}

pub(crate) fn nv12_to_rgb(data: &[u8], w: usize, h: usize) -> Vec<u8> {
    if data.len() < w * h * 3 / 2 {
        return Vec::new();
    }
    let (ys, uv) = data.split_at(w * h);
    let mut out = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        for col in 0..w {
            let c = (row / 2) * w + (col / 2) * 2;
            out.extend_from_slice(&yuv_to_rgb(ys[row * w + col], uv[c], uv[c + 1]));
        }
    }
    out
}

pub(crate) fn yuy2_to_rgb(data: &[u8], w: usize, h: usize) -> Vec<u8> {
    if data.len() < w * h * 2 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(w * h * 3);
    for quad in data[..w * h * 2].chunks_exact(4) {
        let (y0, u, y1, v) = (quad[0], quad[1], quad[2], quad[3]);
        out.extend_from_slice(&yuv_to_rgb(y0, u, v));
        out.extend_from_slice(&yuv_to_rgb(y1, u, v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuv_reference_colours() {
        assert_eq!(yuv_to_rgb(16, 128, 128), [0, 0, 0]);
        assert_eq!(yuv_to_rgb(235, 128, 128), [255, 255, 255]);
        let red = yuv_to_rgb(81, 90, 240);
        assert!(red[0] > 250 && red[1] < 5 && red[2] < 5, "{red:?}");
    }

    #[test]
    fn nv12_and_yuy2_agree_on_a_flat_image() {
        let (w, h) = (4, 2);
        let mut nv12 = vec![100u8; w * h];
        nv12.extend_from_slice(&[60, 200].repeat(w * h / 4));
        let yuy2 = [100u8, 60, 100, 200].repeat(w * h / 2);
        assert_eq!(nv12_to_rgb(&nv12, w, h), yuy2_to_rgb(&yuy2, w, h));
        assert_eq!(nv12_to_rgb(&nv12, w, h).len(), w * h * 3);
    }
}
