//! The viewer: a small local web server with an embedded single-page application that shows
//! recordings (one file, or a rig directory side by side at the same device time) and the live
//! preview of a running recorder.
//!
//! The server maps no URL to a file: the page and its script are compiled in, and everything
//! else is an API route naming a unit by its index, so no request can reach a path outside the
//! recordings it was started with. It binds loopback unless told otherwise.
//!
//! Routes (all `GET`):
//! - `/` the page, `/viewer.js`, `/viewer.css`;
//! - `/api/session`: `{live, units: [{name, meta}]}` (modes, serial, firmware, length, host
//!   start time, problems, dropped-frame tags and the gaps found in the timestamps);
//! - `/api/unit/N/frame?t=DEVICE_USEC&step=-1|0|1`: the capture at or after `t` (or the one
//!   before, or after it), as JSON with an `id`; the live preview ignores `t` and returns the
//!   newest capture;
//! - `/api/unit/N/image/ID/{color.jpg,depth.png,ir.png,depth.raw}`: that capture's images
//!   (depth colourised on the mode's range, IR normalised, raw depth as little-endian u16),
//!   and `color_in_depth.raw`: the colour image seen from the depth camera, BGRA per depth
//!   pixel, for colouring the point cloud;
//! - `/api/unit/N/imu`: accelerometer and gyro traces; `/api/unit/N/rays`: per depth pixel
//!   the (x/z, y/z) direction, little-endian f32 pairs, for the point cloud.

pub mod imaging;
pub mod live;
pub mod recording;
mod server;

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

use crate::protocol::calibration::Calibration;
use crate::types::{Capture, DepthMode, ImageFormat};

pub use live::{PreviewSink, PreviewSlot};
pub use recording::recordings_at;
pub use server::{parse_listen, Viewer};

/// Why the viewer could not start.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The path does not exist.
    #[error("{0}: no such file or directory")]
    NotFound(PathBuf),
    /// A directory without recordings.
    #[error("{0}: no .mkv recordings in this directory")]
    NoRecordings(PathBuf),
    /// A directory could not be listed.
    #[error("listing {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `--listen` is not an address.
    #[error("--listen {0}: expected ADDR:PORT (for example 127.0.0.1:8080), :PORT or PORT")]
    Listen(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {message}")]
    Bind {
        /// The address.
        addr: String,
        /// The server's message.
        message: String,
    },
}

/// Why a unit could not produce a frame (answered as an HTTP error, never a crash).
#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    /// The recording could not be opened at all (its problems say why).
    #[error("the recording cannot be read")]
    Unreadable,
    /// No capture to show (empty recording, or no live capture yet).
    #[error("no capture")]
    NoCapture,
    /// Reading failed part way.
    #[error("reading the recording: {0}")]
    Read(String),
    /// A reader thread panicked earlier.
    #[error("the reader is unusable after an earlier failure")]
    Poisoned,
}

/// One camera the page shows: a recording file or the running recorder.
pub trait Unit: Send + Sync {
    /// Name shown above its views.
    fn name(&self) -> String;
    /// Info panel data (JSON object).
    fn meta(&self) -> Value;
    /// IMU traces: `{t: [µs], acc: [[x,y,z]], gyro: [[x,y,z]]}`.
    fn imu(&self) -> Value;
    /// The depth mode (for the colour scale and point-cloud directions).
    fn depth_mode(&self) -> DepthMode;
    /// The device calibration, when known.
    fn calibration(&self) -> Option<Calibration>;
    /// The capture at or after `at_usec` (device time; `None`: the first, or the newest when
    /// live), or the one before it (`step` < 0) or after it (`step` > 0).
    fn frame(&self, at_usec: Option<u64>, step: i8) -> Result<Frame, UnitError>;
}

/// A capture being shown, with its encodings made on first request.
pub struct Frame {
    capture: Capture,
    color: OnceLock<Result<Vec<u8>, String>>,
    depth: OnceLock<Result<Vec<u8>, String>>,
    ir: OnceLock<Result<Vec<u8>, String>>,
    color_in_depth: OnceLock<Result<Vec<u8>, String>>,
}

impl Frame {
    /// Wraps a capture.
    pub fn new(capture: Capture) -> Frame {
        Frame {
            capture,
            color: OnceLock::new(),
            depth: OnceLock::new(),
            ir: OnceLock::new(),
            color_in_depth: OnceLock::new(),
        }
    }

    /// The device timestamp shown for the capture: its earliest image's.
    pub fn device_usec(&self) -> Option<u64> {
        [&self.capture.color, &self.capture.depth, &self.capture.ir]
            .into_iter()
            .flatten()
            .map(|i| i.device_timestamp_usec)
            .min()
    }

    fn describe(&self) -> Value {
        let img = |i: &Option<crate::types::Image>| {
            i.as_ref().map(|i| {
                serde_json::json!({
                    "device_usec": i.device_timestamp_usec,
                    "width": i.width,
                    "height": i.height,
                    "format": i.format.sdk_name(),
                })
            })
        };
        serde_json::json!({
            "device_usec": self.device_usec(),
            "color": img(&self.capture.color),
            "depth": img(&self.capture.depth),
            "ir": img(&self.capture.ir),
        })
    }

    /// The colour image as JPEG (MJPEG as stored).
    fn color_jpeg(&self) -> Option<&Result<Vec<u8>, String>> {
        let img = self.capture.color.as_ref()?;
        Some(self.color.get_or_init(|| {
            if img.format == ImageFormat::Mjpg {
                return Ok(img.data.clone());
            }
            let rgb = imaging::color_to_rgb(img).map_err(|e| e.to_string())?;
            imaging::jpeg_rgb(&rgb, img.width, img.height, 85).map_err(|e| e.to_string())
        }))
    }

    fn depth_png(&self, mode: DepthMode) -> Option<&Result<Vec<u8>, String>> {
        let img = self.capture.depth.as_ref()?;
        Some(self.depth.get_or_init(|| {
            let p = imaging::previews(Some(img), None, mode).map_err(|e| e.to_string())?;
            p.depth.map(|d| d.0).ok_or_else(|| "no depth".to_owned())
        }))
    }

    fn ir_png(&self) -> Option<&Result<Vec<u8>, String>> {
        let img = self.capture.ir.as_ref()?;
        Some(self.ir.get_or_init(|| {
            let g = imaging::normalize_ir(img).map_err(|e| e.to_string())?;
            imaging::png_8bit(&g, img.width, img.height).map_err(|e| e.to_string())
        }))
    }
}

impl Frame {
    /// The colour image resampled into the depth camera (BGRA per depth pixel, zero where a
    /// pixel has no depth or sees no colour), for colouring the point cloud.
    fn color_in_depth(
        &self,
        transformation: &crate::geometry::Transformation,
    ) -> Option<&Result<Vec<u8>, String>> {
        let (color, depth) = (self.capture.color.as_ref()?, self.capture.depth.as_ref()?);
        Some(self.color_in_depth.get_or_init(|| {
            let bgra = imaging::color_to_bgra(color).map_err(|e| e.to_string())?;
            let mm: Vec<u16> = depth
                .data
                .chunks_exact(2)
                .map(|p| u16::from_le_bytes([p[0], p[1]]))
                .collect();
            transformation
                .color_to_depth(&mm, &bgra)
                .map_err(|e| e.to_string())
        }))
    }
}

/// The geometry engine for a unit's calibration with its colour camera at `color`'s size.
pub fn transformation_for(
    calibration: &Calibration,
    mode: DepthMode,
    color: crate::types::ColorResolution,
) -> Option<crate::geometry::Transformation> {
    let cal = crate::geometry::Calibration::from_raw(calibration, mode, color).ok()?;
    Some(crate::geometry::Transformation::new(cal))
}

/// Per depth pixel, the direction (x/z, y/z) of its ray in the depth camera's frame: the
/// geometry layer's undistorted table (the SDK's lens model and validity rules), NaN in x
/// where a pixel has no ray.
pub fn depth_rays(calibration: &Calibration, mode: DepthMode) -> Option<Vec<f32>> {
    let cal = crate::geometry::Calibration::from_raw(
        calibration,
        mode,
        crate::types::ColorResolution::Off,
    )
    .ok()?;
    let table = crate::geometry::XyTable::new(cal.depth.as_ref()?);
    Some(
        table
            .x
            .iter()
            .zip(&table.y)
            .flat_map(|(&x, &y)| [x, y])
            .collect(),
    )
}
