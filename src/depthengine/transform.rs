//! Microsoft's transform engine (plugin entries at offsets 48–72 of `k4a_plugin_t`): the GPU
//! path of the SDK's `k4a_transformation_*` functions, reached through the same library and
//! binding as the depth engine. Like the depth engine it makes an OpenGL 4.4 context of its
//! own (through X, or through [`super::headless`] without a display).
//!
//! The engine takes the mode-specific camera calibrations, both extrinsics and the depth
//! camera's unprojection tables (`XyTables`); the caller computes the tables (the SDK computes
//! them with its 2D→3D unprojection at depth 1).

use super::abi::{self, CameraCalibration, Extrinsics, TransformEngineCalibration, XyTables};
use super::error::DepthEngineError;
use super::ffi;
use super::DepthEngine;

/// An operation of the transform engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransformKind {
    /// Colour image (BGRA32) into the depth camera's geometry.
    ColorToDepth,
    /// Depth image (DEPTH16) into the colour camera's geometry.
    DepthToColor,
    /// Depth plus an 8-bit custom image into the colour camera's geometry.
    DepthCustom8ToColor,
    /// Depth plus a 16-bit custom image into the colour camera's geometry.
    DepthCustom16ToColor,
}

impl TransformKind {
    fn code(self) -> i32 {
        use abi::transform_type as t;
        match self {
            TransformKind::ColorToDepth => t::COLOR_TO_DEPTH,
            TransformKind::DepthToColor => t::DEPTH_TO_COLOR,
            TransformKind::DepthCustom8ToColor => t::DEPTH_CUSTOM8_TO_COLOR,
            TransformKind::DepthCustom16ToColor => t::DEPTH_CUSTOM16_TO_COLOR,
        }
    }
}

/// Interpolation of custom images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolation {
    /// Nearest neighbour.
    Nearest,
    /// Bilinear.
    Linear,
}

/// The calibration the transform engine needs, for one depth mode and colour resolution.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TransformCalibration {
    /// Depth camera at the depth mode's resolution.
    pub depth_camera: CameraCalibration,
    /// Colour camera at the colour resolution.
    pub color_camera: CameraCalibration,
    /// Depth camera to colour camera.
    pub depth_to_color: Extrinsics,
    /// Colour camera to depth camera.
    pub color_to_depth: Extrinsics,
}

/// The depth camera's unprojection tables: for pixel (u, v), the ray through it reaches
/// (x·z, y·z, z); `x` is NaN where the pixel has no valid ray.
#[derive(Clone, Debug, PartialEq)]
pub struct DepthXyTables {
    /// Table width (the depth image width).
    pub width: usize,
    /// Table height.
    pub height: usize,
    /// X factors, row-major.
    pub x: Vec<f32>,
    /// Y factors, row-major.
    pub y: Vec<f32>,
}

/// A transform-engine context, bound to the thread that created it.
pub struct TransformEngine {
    ctx: ffi::TransformContext,
    depth_size: (usize, usize),
    color_size: (usize, usize),
}

impl DepthEngine {
    /// Creates a transform-engine context on the calling thread (which must make every later
    /// call on it).
    pub fn create_transform(
        &self,
        calibration: &TransformCalibration,
        tables: &DepthXyTables,
    ) -> Result<TransformEngine, DepthEngineError> {
        let dims = |c: &CameraCalibration| -> Result<(usize, usize), DepthEngineError> {
            match (
                usize::try_from(c.resolution_width),
                usize::try_from(c.resolution_height),
            ) {
                (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
                _ => Err(DepthEngineError::TransformInput(format!(
                    "camera resolution {}x{} is not usable",
                    c.resolution_width, c.resolution_height
                ))),
            }
        };
        let depth_size = dims(&calibration.depth_camera)?;
        let color_size = dims(&calibration.color_camera)?;
        if (tables.width, tables.height) != depth_size
            || tables.x.len() != tables.width * tables.height
            || tables.y.len() != tables.x.len()
        {
            return Err(DepthEngineError::TransformInput(format!(
                "xy tables {}x{} ({} and {} values) do not fit the {}x{} depth camera",
                tables.width,
                tables.height,
                tables.x.len(),
                tables.y.len(),
                depth_size.0,
                depth_size.1
            )));
        }
        let mut both = Vec::with_capacity(2 * tables.x.len());
        both.extend_from_slice(&tables.x);
        both.extend_from_slice(&tables.y);
        let raw = TransformEngineCalibration {
            depth_camera: calibration.depth_camera,
            color_camera: calibration.color_camera,
            depth_to_color: calibration.depth_to_color,
            color_to_depth: calibration.color_to_depth,
            depth_xy_tables: XyTables {
                x_table: std::ptr::null_mut(),
                y_table: std::ptr::null_mut(),
                width: 0,
                height: 0,
            },
        };
        let ctx = ffi::TransformContext::create(
            self.reg,
            &raw,
            both.into_boxed_slice(),
            depth_size.0 as i32,
            depth_size.1 as i32,
        )?;
        Ok(TransformEngine {
            ctx,
            depth_size,
            color_size,
        })
    }
}

impl TransformEngine {
    /// Bytes the engine writes for `kind` (its own report).
    pub fn output_size(&self, kind: TransformKind) -> usize {
        self.ctx.output_size(kind.code())
    }

    /// Depth image (DEPTH16 little-endian, depth camera size) to a DEPTH16 image of the colour
    /// camera's size; pixels no depth sample reaches are 0.
    pub fn depth_to_color(&mut self, depth: &[u8]) -> Result<Vec<u8>, DepthEngineError> {
        let (w, h) = self.depth_size;
        if depth.len() != w * h * 2 {
            return Err(DepthEngineError::TransformInput(format!(
                "depth image is {} bytes, a {w}x{h} DEPTH16 image is {}",
                depth.len(),
                w * h * 2
            )));
        }
        let (cw, ch) = self.color_size;
        let size = self.output_size(TransformKind::DepthToColor);
        if size != cw * ch * 2 {
            return Err(DepthEngineError::TransformInput(format!(
                "engine reports a {size}-byte depth-to-colour output, {cw}x{ch} DEPTH16 is {}",
                cw * ch * 2
            )));
        }
        let mut out = vec![0u8; size];
        self.ctx.process(
            TransformKind::DepthToColor.code(),
            abi::transform_interpolation::LINEAR,
            0,
            depth,
            &[],
            &mut out,
            &mut [],
        )?;
        Ok(out)
    }

    /// Any operation, with caller-sized buffers (sizes from [`Self::output_size`]).
    #[allow(clippy::too_many_arguments)]
    pub fn process(
        &mut self,
        kind: TransformKind,
        interpolation: Interpolation,
        invalid_value: u32,
        depth: &[u8],
        frame2: &[u8],
        out: &mut [u8],
        out2: &mut [u8],
    ) -> Result<(), DepthEngineError> {
        let interpolation = match interpolation {
            Interpolation::Nearest => abi::transform_interpolation::NEAREST,
            Interpolation::Linear => abi::transform_interpolation::LINEAR,
        };
        self.ctx.process(
            kind.code(),
            interpolation,
            invalid_value,
            depth,
            frame2,
            out,
            out2,
        )
    }
}
