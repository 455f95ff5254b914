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
use crate::safe_output::{prepare_dir, Inputs, PendingFile};
use crate::types::{Image, ImageFormat};
use crate::view::imaging::{nv12_to_rgb, yuy2_to_rgb};

/// Why extraction failed.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The recording could not be opened (the error names it).
    #[error(transparent)]
    Open(playback::Error),
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
    /// An output file or directory was refused (it is the input, exists, or the directory is
    /// not empty) or could not be written.
    #[error(transparent)]
    Output(#[from] crate::safe_output::OutputError),
    /// The recording's calibration attachment does not parse.
    #[error("{path}: calibration attachment is damaged: {reason}; nothing extracted (use --skip-bad-calibration to extract everything else)")]
    BadCalibration {
        /// The recording.
        path: PathBuf,
        /// The parse error.
        reason: String,
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

/// How to extract.
#[derive(Clone, Debug, Default)]
pub struct ExtractOptions {
    /// Show a count of captures on stderr when it is a terminal.
    pub progress: bool,
    /// Write into a non-empty directory, replacing files of the same names.
    pub force: bool,
    /// Extract a recording whose calibration attachment does not parse (its bytes go to
    /// `calibration-damaged.json`, no `intrinsics.json`).
    pub skip_bad_calibration: bool,
    /// Also write 8-bit previews beside the raw images:
    /// `depth-preview/<n>_<device µs>_<min>-<max>mm.png` (colourised on that range, legend in
    /// `depth-preview/legend_<min>-<max>mm.png`) and `ir-preview/<n>_<device µs>.png`
    /// (normalised).
    pub preview: bool,
}

/// Writes one output file under a temporary name, renamed into place when complete.
struct Saver {
    inputs: Inputs,
    overwrite: bool,
}

impl Saver {
    fn save(
        &self,
        path: &Path,
        body: impl FnOnce(&mut BufWriter<&mut File>) -> Result<(), ExtractError>,
    ) -> Result<(), ExtractError> {
        let mut pending = PendingFile::create(path, self.overwrite, &self.inputs)?;
        {
            let mut w = BufWriter::new(pending.file());
            body(&mut w)?;
            w.flush().map_err(write_err(path))?;
        }
        pending.commit_unsynced()?;
        Ok(())
    }

    fn bytes(&self, path: &Path, bytes: &[u8]) -> Result<(), ExtractError> {
        self.save(path, |w| w.write_all(bytes).map_err(write_err(path)))
    }
}

/// Extracts `file` into `out_dir` (created if missing) with `options`. Refuses a non-empty
/// `out_dir` unless `options.force`.
pub fn extract_with(
    file: &Path,
    out_dir: &Path,
    options: &ExtractOptions,
) -> Result<ExtractReport, ExtractError> {
    let mut pb = Playback::open(file).map_err(|e| match e {
        e @ playback::Error::Open { .. } => ExtractError::Open(e),
        source => ExtractError::Read {
            path: file.to_path_buf(),
            source,
        },
    })?;
    let calibration = pb
        .calibration()
        .map(|json| (json.to_vec(), Calibration::from_json(json)));
    if let Some((_, Err(e))) = &calibration {
        if !options.skip_bad_calibration {
            return Err(ExtractError::BadCalibration {
                path: file.to_path_buf(),
                reason: e.to_string(),
            });
        }
    }
    prepare_dir(out_dir, options.force)?;
    let saver = Saver {
        inputs: Inputs::new([file]),
        overwrite: options.force,
    };
    let mut report = ExtractReport {
        out_dir: out_dir.to_path_buf(),
        ..Default::default()
    };
    let show = options.progress && std::io::stderr().is_terminal();

    if let Some((json, parsed)) = calibration {
        match parsed {
            Err(_) => {
                saver.bytes(&out_dir.join("calibration-damaged.json"), &json)?;
                eprintln!(
                    "warning: {}: calibration attachment is damaged; wrote its bytes to calibration-damaged.json, no intrinsics.json",
                    file.display()
                );
            }
            Ok(cal) => {
                saver.bytes(&out_dir.join("calibration.json"), &json)?;
                let cfg = pb.config();
                let depth = cal.depth.for_depth_mode(cfg.depth_mode);
                let color = cal.color.for_color_resolution(cfg.color_resolution);
                let doc = serde_json::json!({
                    "depth_mode": cfg.depth_mode.name(),
                    "depth": depth.as_ref().map(intrinsics_json),
                    "color_resolution": cfg.color_resolution.dimensions(),
                    "color": color.as_ref().map(intrinsics_json),
                });
                let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
                saver.bytes(&out_dir.join("intrinsics.json"), (text + "\n").as_bytes())?;
                report.calibration = true;
            }
        }
    }
    extract_frames(
        &mut pb,
        file,
        out_dir,
        &saver,
        show,
        options.preview,
        report,
    )
}

fn extract_frames(
    pb: &mut Playback<File>,
    file: &Path,
    out_dir: &Path,
    saver: &Saver,
    show: bool,
    preview: bool,
    mut report: ExtractReport,
) -> Result<ExtractReport, ExtractError> {
    let read_err = |source| ExtractError::Read {
        path: file.to_path_buf(),
        source,
    };
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
                write_image(saver, &sub, n, image)?;
                *count += 1;
            }
        }
        if preview {
            crate::cli::view::write_previews(out_dir, n, &capture, pb.config().depth_mode)?;
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
        let mut count = 0;
        saver.save(&path, |w| {
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
            Ok(n)
        };
            count = rows().map_err(write_err(&path))?;
            Ok(())
        })?;
        report.imu_samples = count;
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

fn write_image(saver: &Saver, dir: &Path, index: u64, image: &Image) -> Result<(), ExtractError> {
    let stem = format!("{index:06}_{}", image.device_timestamp_usec);
    if image.format == ImageFormat::Mjpg {
        let path = dir.join(format!("{stem}.jpg"));
        return saver.bytes(&path, &image.data);
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
    saver.save(&path, |out| {
        let mut enc = png::Encoder::new(out, w, h);
        enc.set_color(color);
        enc.set_depth(depth);
        let encode_err = |e: png::EncodingError| ExtractError::Encode {
            path: path.clone(),
            message: e.to_string(),
        };
        let mut writer = enc.write_header().map_err(encode_err)?;
        writer.write_image_data(&bytes).map_err(encode_err)?;
        writer.finish().map_err(encode_err)
    })
}
