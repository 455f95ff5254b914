//! `freek4a extract --align color|depth --ply --open3d`: geometry outputs of a recording,
//! computed with [`crate::geometry`] (no SDK, no OpenGL).
//!
//! Written next to the plain extraction, in the same output directory:
//!
//! - `--align color`: `depth_in_color/<n>_<device µs>.png`, depth re-rendered in the colour
//!   camera, 16-bit greyscale, millimetres along the colour camera's axis (0 = no depth);
//! - `--align depth`: `color_in_depth/<n>_<device µs>.png`, colour resampled into the depth
//!   camera, 8-bit RGB (black = no colour);
//! - `--ply`: `ply/<n>_<device µs>.ply`, a binary little-endian PLY point cloud in the depth
//!   camera's frame, coordinates in metres (float), with the colour of each point when the
//!   capture has colour;
//! - `--open3d`: `open3d/`, the folder Open3D's Azure Kinect MKV reader example writes:
//!   `color/NNNNN.jpg`, `depth/NNNNN.png` (depth in the colour camera, 16-bit millimetres, so
//!   Open3D's default depth scale of 1000 gives metres), `intrinsic.json` (Open3D's
//!   `MKVMetadata`: colour camera pinhole intrinsics, serial, modes, length) and `config.json`
//!   (`path_dataset`, `path_intrinsic`) for its reconstruction system.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::geometry::{Calibration, Sensor, Transformation};
use crate::playback::{self, Playback};
use crate::types::ImageFormat;

/// Which way `--align` maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Align {
    /// Depth into the colour camera.
    Color,
    /// Colour into the depth camera.
    Depth,
}

/// The geometry outputs asked for (the `extract` options).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct GeometryOutputs {
    /// Also write depth aligned to the colour camera (color: depth_in_color/, 16-bit mm) or
    /// colour aligned to the depth camera (depth: color_in_depth/, RGB)
    #[arg(long, value_enum, value_name = "CAMERA")]
    pub align: Option<Align>,
    /// Also write a binary PLY point cloud per capture (ply/, metres, coloured when colour exists)
    #[arg(long)]
    pub ply: bool,
    /// Also write Open3D's Azure Kinect dataset layout (open3d/: color/, depth/ in mm,
    /// intrinsic.json, config.json)
    #[arg(long)]
    pub open3d: bool,
}

impl GeometryOutputs {
    /// Whether anything is asked for.
    pub fn any(&self) -> bool {
        self.align.is_some() || self.ply || self.open3d
    }
}

/// Why the geometry outputs could not be written.
#[derive(Debug, thiserror::Error)]
pub enum GeometryExportError {
    /// The recording could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The recording.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: playback::Error,
    },
    /// The recording lacks what the output needs.
    #[error("{0}")]
    Unsupported(String),
    /// The calibration could not be used.
    #[error("calibration: {0}")]
    Calibration(#[from] crate::geometry::GeometryError),
    /// An output file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An image could not be decoded or encoded.
    #[error("{path}: {message}")]
    Image {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Counts of what was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GeometryReport {
    /// Aligned images.
    pub aligned: u64,
    /// PLY files.
    pub ply: u64,
    /// Open3D frames.
    pub open3d: u64,
}

impl std::fmt::Display for GeometryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Geometry: {} aligned images, {} PLY files, {} Open3D frames",
            self.aligned, self.ply, self.open3d
        )
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GeometryExportError + '_ {
    move |source| GeometryExportError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// The `extract` hook: writes what `what` asks for and prints a summary line; nothing when
/// nothing is asked.
pub fn run(file: &Path, out_dir: &Path, what: GeometryOutputs) -> Result<(), GeometryExportError> {
    if what.any() {
        println!("{}", export(file, out_dir, what)?);
    }
    Ok(())
}

/// Writes the asked-for geometry outputs of `file` into `out_dir`.
pub fn export(
    file: &Path,
    out_dir: &Path,
    what: GeometryOutputs,
) -> Result<GeometryReport, GeometryExportError> {
    let read_err = |source| GeometryExportError::Read {
        path: file.to_path_buf(),
        source,
    };
    let mut pb = Playback::open(file).map_err(read_err)?;
    let cfg = pb.config().clone();
    let json = pb.calibration().map(<[u8]>::to_vec).ok_or_else(|| {
        GeometryExportError::Unsupported(format!(
            "{}: no calibration attachment; geometry outputs need one",
            file.display()
        ))
    })?;
    if !cfg.depth_mode.has_depth() {
        return Err(GeometryExportError::Unsupported(format!(
            "{}: depth mode {} has no depth images",
            file.display(),
            cfg.depth_mode.name()
        )));
    }
    let needs_color = what.align.is_some() || what.open3d;
    if needs_color && cfg.color_resolution == crate::types::ColorResolution::Off {
        return Err(GeometryExportError::Unsupported(format!(
            "{}: no colour track; --align and --open3d need one",
            file.display()
        )));
    }
    let cal = Calibration::from_json(&json, cfg.depth_mode, cfg.color_resolution)?;
    let t = Transformation::new(cal);
    let mut report = GeometryReport::default();
    let mkdir = |name: &str| -> Result<PathBuf, GeometryExportError> {
        let d = out_dir.join(name);
        fs::create_dir_all(&d).map_err(io_err(&d))?;
        Ok(d)
    };
    let align_dir = match what.align {
        Some(Align::Color) => Some(mkdir("depth_in_color")?),
        Some(Align::Depth) => Some(mkdir("color_in_depth")?),
        None => None,
    };
    let ply_dir = what.ply.then(|| mkdir("ply")).transpose()?;
    let o3d_dir = if what.open3d {
        let d = mkdir("open3d")?;
        mkdir("open3d/color")?;
        mkdir("open3d/depth")?;
        write_open3d_metadata(&d, &t, &mut pb)?;
        Some(d)
    } else {
        None
    };

    let mut n = 0u64;
    while let Some(capture) = pb.next_capture().map_err(read_err)? {
        let index = n;
        n += 1;
        let Some(depth_img) = capture.depth.as_ref() else {
            continue;
        };
        let depth = le_u16(&depth_img.data);
        let stem = format!("{index:06}_{}", depth_img.device_timestamp_usec);
        let bgra = match capture.color.as_ref() {
            Some(c) => Some(crate::view::imaging::color_to_bgra(c).map_err(|e| {
                GeometryExportError::Image {
                    path: file.to_path_buf(),
                    message: format!("colour image of capture {index}: {e}"),
                }
            })?),
            None => None,
        };
        let mut depth_in_color = None;
        if let (Some(dir), Some(bgra)) = (&align_dir, &bgra) {
            match what.align {
                Some(Align::Color) => {
                    let d = t.depth_to_color(&depth)?;
                    let (w, h) = color_size(&t)?;
                    write_png16(&dir.join(format!("{stem}.png")), w, h, &d)?;
                    depth_in_color = Some(d);
                }
                _ => {
                    let c = t.color_to_depth(&depth, bgra)?;
                    let rgb: Vec<u8> = c.chunks_exact(4).flat_map(|p| [p[2], p[1], p[0]]).collect();
                    write_png_rgb(
                        &dir.join(format!("{stem}.png")),
                        depth_img.width,
                        depth_img.height,
                        &rgb,
                    )?;
                }
            }
            report.aligned += 1;
        }
        if let Some(dir) = &ply_dir {
            let colors = match &bgra {
                Some(b) => Some(t.color_to_depth(&depth, b)?),
                None => None,
            };
            let cloud = t.depth_image_to_point_cloud(&depth, Sensor::Depth)?;
            write_ply(&dir.join(format!("{stem}.ply")), &cloud, colors.as_deref())?;
            report.ply += 1;
        }
        if let (Some(dir), Some(color)) = (&o3d_dir, capture.color.as_ref()) {
            let k = report.open3d;
            let d = match depth_in_color {
                Some(d) => d,
                None => t.depth_to_color(&depth)?,
            };
            let (w, h) = color_size(&t)?;
            write_png16(&dir.join(format!("depth/{k:05}.png")), w, h, &d)?;
            let jpg = dir.join(format!("color/{k:05}.jpg"));
            if color.format == ImageFormat::Mjpg {
                fs::write(&jpg, &color.data).map_err(io_err(&jpg))?;
            } else if let Some(b) = &bgra {
                let rgb: Vec<u8> = b.chunks_exact(4).flat_map(|p| [p[2], p[1], p[0]]).collect();
                let mut out = Vec::new();
                jpeg_encoder::Encoder::new(&mut out, 95)
                    .encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
                    .map_err(|e| GeometryExportError::Image {
                        path: jpg.clone(),
                        message: e.to_string(),
                    })?;
                fs::write(&jpg, out).map_err(io_err(&jpg))?;
            }
            report.open3d += 1;
        }
    }
    Ok(report)
}

fn color_size(t: &Transformation) -> Result<(u32, u32), GeometryExportError> {
    let c = t.calibration().camera(Sensor::Color)?;
    Ok((c.width as u32, c.height as u32))
}

fn le_u16(b: &[u8]) -> Vec<u16> {
    b.chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
        .collect()
}

fn write_png(
    path: &Path,
    w: u32,
    h: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    bytes: &[u8],
) -> Result<(), GeometryExportError> {
    let f = File::create(path).map_err(io_err(path))?;
    let mut enc = png::Encoder::new(BufWriter::new(f), w, h);
    enc.set_color(color);
    enc.set_depth(depth);
    let err = |e: png::EncodingError| GeometryExportError::Image {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut wr = enc.write_header().map_err(err)?;
    wr.write_image_data(bytes).map_err(err)?;
    wr.finish().map_err(err)
}

fn write_png16(path: &Path, w: u32, h: u32, v: &[u16]) -> Result<(), GeometryExportError> {
    // PNG samples are big-endian.
    let b: Vec<u8> = v.iter().flat_map(|x| x.to_be_bytes()).collect();
    write_png(
        path,
        w,
        h,
        png::ColorType::Grayscale,
        png::BitDepth::Sixteen,
        &b,
    )
}

fn write_png_rgb(path: &Path, w: u32, h: u32, rgb: &[u8]) -> Result<(), GeometryExportError> {
    write_png(path, w, h, png::ColorType::Rgb, png::BitDepth::Eight, rgb)
}

/// A binary PLY of the points with depth (metres), coloured from `bgra` (depth-sized) when
/// given; colourless points of a coloured cloud (no colour landed there) are black.
fn write_ply(path: &Path, xyz_mm: &[i16], bgra: Option<&[u8]>) -> Result<(), GeometryExportError> {
    let keep: Vec<usize> = (0..xyz_mm.len() / 3)
        .filter(|&i| xyz_mm[i * 3 + 2] != 0)
        .collect();
    let mut head = format!(
        "ply\nformat binary_little_endian 1.0\ncomment freek4a point cloud, depth camera frame, units: metres\nelement vertex {}\nproperty float x\nproperty float y\nproperty float z\n",
        keep.len()
    );
    if bgra.is_some() {
        head.push_str("property uchar red\nproperty uchar green\nproperty uchar blue\n");
    }
    head.push_str("end_header\n");
    let stride = if bgra.is_some() { 15 } else { 12 };
    let mut body = Vec::with_capacity(head.len() + keep.len() * stride);
    body.extend_from_slice(head.as_bytes());
    for &i in &keep {
        for k in 0..3 {
            // z is the unsigned depth; x and y are signed.
            let mm = if k == 2 {
                xyz_mm[i * 3 + 2] as u16 as f32
            } else {
                xyz_mm[i * 3 + k] as f32
            };
            body.extend_from_slice(&(mm / 1000.0).to_le_bytes());
        }
        if let Some(b) = bgra {
            body.extend_from_slice(&[b[i * 4 + 2], b[i * 4 + 1], b[i * 4]]);
        }
    }
    let mut f = BufWriter::new(File::create(path).map_err(io_err(path))?);
    f.write_all(&body)
        .and_then(|_| f.flush())
        .map_err(io_err(path))
}

fn write_open3d_metadata(
    dir: &Path,
    t: &Transformation,
    pb: &mut Playback<File>,
) -> Result<(), GeometryExportError> {
    let c = t.calibration().camera(Sensor::Color)?;
    let cfg = pb.config().clone();
    let length_usec = pb.recording_length_usec().unwrap_or(0);
    // Open3D's PinholeCameraIntrinsic stores its 3×3 matrix column-major.
    let intrinsic = serde_json::json!({
        "width": c.width,
        "height": c.height,
        "intrinsic_matrix": [c.fx, 0.0, 0.0, 0.0, c.fy, 0.0, c.cx, c.cy, 1.0],
        "serial_number": pb.tag("K4A_DEVICE_SERIAL_NUMBER").unwrap_or(""),
        "color_mode": pb.tag("K4A_COLOR_MODE").unwrap_or(""),
        "depth_mode": pb.tag("K4A_DEPTH_MODE").unwrap_or(cfg.depth_mode.name()),
        "stream_length_usec": length_usec,
        "depth_unit": "millimetre",
    });
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let config = serde_json::json!({
        "path_dataset": abs,
        "path_intrinsic": abs.join("intrinsic.json"),
        "depth_scale": 1000.0,
    });
    for (name, v) in [("intrinsic.json", intrinsic), ("config.json", config)] {
        let p = dir.join(name);
        let text = serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
        fs::write(&p, text).map_err(io_err(&p))?;
    }
    Ok(())
}
