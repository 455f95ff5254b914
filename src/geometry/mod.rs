//! Geometry of a unit's cameras without the SDK: lens models, per-mode calibrations,
//! extrinsics between the four sensors, point mappings and whole-image transformations
//! (point clouds, depth in the colour camera, colour in the depth camera).
//!
//! No I/O: calibrations come in as JSON bytes or parsed [`crate::protocol::calibration`]
//! values, images as slices. Units are millimetres and pixels, with (0, 0) at the centre of the
//! top-left pixel, as in the SDK. Results agree with Microsoft's libk4a (the tests compare them).

mod calibration;
mod camera;
mod transformation;

pub use calibration::{Calibration, Extrinsics, Sensor};
pub use camera::Camera;
pub use transformation::{CustomImage, CustomOutput, Interpolation, Transformation, XyTable};

use crate::protocol::calibration::{CalibrationError, LensModel};

/// Why a geometry operation could not run.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GeometryError {
    /// The calibration JSON did not parse.
    #[error(transparent)]
    Calibration(#[from] CalibrationError),
    /// A lens model the transformations do not support.
    #[error("lens model {model:?} with {parameters} parameters: transformations need Brown-Conrady or rational 6KT with 14")]
    LensModel {
        /// The model.
        model: LensModel,
        /// Its parameter count.
        parameters: u32,
    },
    /// A non-positive focal length.
    #[error("focal lengths must be positive, got fx {fx}, fy {fy}")]
    FocalLength {
        /// fx in pixels.
        fx: f32,
        /// fy in pixels.
        fy: f32,
    },
    /// A raw calibration whose sensor size has no per-mode table.
    #[error("{sensor}: no per-mode intrinsics for a {width}x{height} sensor calibration")]
    SensorSize {
        /// Which camera.
        sensor: &'static str,
        /// Calibrated width.
        width: i32,
        /// Calibrated height.
        height: i32,
    },
    /// Both cameras are off.
    #[error("a calibration needs the depth or the colour camera on")]
    BothOff,
    /// The camera needed is off in this calibration.
    #[error("the {0} is off in this calibration")]
    CameraOff(&'static str),
    /// An IMU sensor was given where a camera is needed.
    #[error("the {0} is not a camera")]
    NotACamera(&'static str),
    /// An image of the wrong size.
    #[error("{what}: expected {expected} elements, got {got}")]
    ImageSize {
        /// Which image.
        what: &'static str,
        /// Elements expected.
        expected: usize,
        /// Elements given.
        got: usize,
    },
    /// The epipolar line of a colour pixel is vertical in the depth camera's pinhole image
    /// (libk4a fails the call too).
    #[error("epipolar line is vertical; no search possible")]
    EpipolarLine,
}
