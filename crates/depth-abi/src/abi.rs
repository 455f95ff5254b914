//! The depth-engine plugin ABI (plugin interface version 2), as C-layout Rust types.
//!
//! Layouts are the SDK's `k4a_plugin_t` and its structures for x86-64 / LP64; the size and
//! offset tests at the bottom pin them. Both the binding and freek4a's emulated engine use these declarations,
//! so the two sides cannot drift apart.

use std::ffi::c_void;

/// Plugin interface version the SDK (and freek4a) speaks.
pub const K4A_PLUGIN_VERSION: u32 = 2;

/// Name of the registration symbol every depth-engine library exports.
pub const REGISTER_SYMBOL: &[u8] = b"k4a_register_plugin\0";

/// Depth engine mode (`k4a_depth_engine_mode_t`).
pub mod mode {
    /// NFOV 2×2 binned (binning done in the engine).
    pub const LT_SW_BINNING: i32 = 2;
    /// Passive IR.
    pub const PCM: i32 = 3;
    /// NFOV unbinned.
    pub const LT_NATIVE: i32 = 4;
    /// WFOV unbinned.
    pub const MEGA_PIXEL: i32 = 5;
    /// WFOV 2×2 binned.
    pub const QUARTER_MEGA_PIXEL: i32 = 7;
}

/// Engine input format (`k4a_depth_engine_input_type_t`).
pub mod input_format {
    /// 12-bit compressed raw (every mode but WFOV unbinned).
    pub const RAW_12BIT_COMPRESSED: i32 = 3;
    /// 8-bit compressed raw (WFOV unbinned).
    pub const RAW_8BIT_COMPRESSED: i32 = 4;
}

/// Engine output type (`k4a_depth_engine_output_type_t`).
pub mod output_type {
    /// Z depth, the only type the SDK asks for.
    pub const Z_DEPTH: i32 = 0;
}

/// Plugin version triple (`k4a_plugin_version_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PluginVersion {
    /// Major version: 2 for every engine of this interface.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

/// Completion callback of asynchronous callers (the SDK and freek4a pass NULL).
pub type ProcessCallback =
    unsafe extern "C" fn(ctx: *mut c_void, status: i32, out1: *mut c_void, out2: *mut c_void);

/// `depth_engine_create_and_initialize`.
pub type DeCreateFn = unsafe extern "C" fn(
    context_out: *mut *mut c_void,
    cal_block_size: usize,
    cal_block: *mut c_void,
    mode: i32,
    input_format: i32,
    camera_calibration: *mut c_void,
    callback: Option<ProcessCallback>,
    callback_ctx: *mut c_void,
) -> i32;

/// `depth_engine_process_frame`.
pub type DeProcessFn = unsafe extern "C" fn(
    ctx: *mut c_void,
    input: *mut c_void,
    input_size: usize,
    output_type: i32,
    output: *mut c_void,
    output_size: usize,
    out_info: *mut OutputFrameInfo,
    in_info: *mut InputFrameInfo,
) -> i32;

/// `depth_engine_get_output_frame_size`: 0 for a NULL context.
pub type DeOutputSizeFn = unsafe extern "C" fn(ctx: *mut c_void) -> usize;

/// `depth_engine_destroy`: frees the context and sets `*ctx_inout` to NULL.
pub type DeDestroyFn = unsafe extern "C" fn(ctx_inout: *mut *mut c_void);

/// `transform_engine_create_and_initialize`.
pub type TeCreateFn = unsafe extern "C" fn(
    ctx_out: *mut *mut c_void,
    te_calibration: *mut c_void,
    callback: Option<ProcessCallback>,
    callback_ctx: *mut c_void,
) -> i32;

/// `transform_engine_process_frame`.
pub type TeProcessFn = unsafe extern "C" fn(
    ctx: *mut c_void,
    kind: i32,
    interpolation: i32,
    invalid_value: u32,
    depth_frame: *const c_void,
    depth_size: usize,
    frame2: *const c_void,
    frame2_size: usize,
    out: *mut c_void,
    out_size: usize,
    out2: *mut c_void,
    out2_size: usize,
) -> i32;

/// `transform_engine_get_output_frame_size`.
pub type TeOutputSizeFn = unsafe extern "C" fn(ctx: *mut c_void, kind: i32) -> usize;

/// `transform_engine_destroy`.
pub type TeDestroyFn = unsafe extern "C" fn(ctx_inout: *mut *mut c_void);

/// `k4a_register_plugin`: fills the struct and returns true.
pub type RegisterFn = unsafe extern "C" fn(plugin: *mut Plugin) -> bool;

/// The plugin table (`k4a_plugin_t`, 80 bytes). `None` stands for a NULL pointer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Plugin {
    /// Engine version.
    pub version: PluginVersion,
    /// Creates a depth engine context.
    pub depth_engine_create_and_initialize: Option<DeCreateFn>,
    /// Converts one raw frame.
    pub depth_engine_process_frame: Option<DeProcessFn>,
    /// Output buffer size of a context.
    pub depth_engine_get_output_frame_size: Option<DeOutputSizeFn>,
    /// Frees a context.
    pub depth_engine_destroy: Option<DeDestroyFn>,
    /// Creates a transform engine context.
    pub transform_engine_create_and_initialize: Option<TeCreateFn>,
    /// Transforms one frame.
    pub transform_engine_process_frame: Option<TeProcessFn>,
    /// Output size of a transform.
    pub transform_engine_get_output_frame_size: Option<TeOutputSizeFn>,
    /// Frees a transform context.
    pub transform_engine_destroy: Option<TeDestroyFn>,
}

/// What the engine reports about one converted frame (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OutputFrameInfo {
    /// Output image width.
    pub output_width: u16,
    /// Output image height.
    pub output_height: u16,
    /// Depth sensor temperature, °C.
    pub sensor_temp: f32,
    /// Laser temperatures, °C.
    pub laser_temp: [f32; 2],
    /// Centre of exposure, 90 kHz ticks.
    pub center_of_exposure_in_ticks: u64,
    /// USB start-of-frame tick.
    pub usb_sof_tick: u64,
}

/// Optional input description (32 bytes); the SDK passes NULL and so does freek4a.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct InputFrameInfo {
    /// Depth sensor temperature, °C.
    pub sensor_temp: f32,
    /// Laser temperatures, °C.
    pub laser_temp: [f32; 2],
    /// Centre of exposure, 90 kHz ticks.
    pub center_of_exposure_in_ticks: u64,
    /// USB start-of-frame tick.
    pub usb_sof_tick: u64,
}

/// Camera calibration as the engine takes it (`k4a_calibration_camera_t`, 128 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CameraCalibration {
    /// Extrinsic rotation, row-major 3×3.
    pub rotation: [f32; 9],
    /// Extrinsic translation, mm.
    pub translation_mm: [f32; 3],
    /// Intrinsics model (`k4a_calibration_model_type_t`; 4 = Brown–Conrady).
    pub intrinsics_type: i32,
    /// How many of `parameters` are meaningful.
    pub parameter_count: u32,
    /// cx, cy, fx, fy, k1–k6, codx, cody, p2, p1, metric_radius.
    pub parameters: [f32; 15],
    /// Calibrated image width.
    pub resolution_width: i32,
    /// Calibrated image height.
    pub resolution_height: i32,
    /// Metric radius.
    pub metric_radius: f32,
}

/// Transform engine operation (`k4a_transform_engine_type_t`).
pub mod transform_type {
    /// Colour image into the depth camera's geometry.
    pub const COLOR_TO_DEPTH: i32 = 0;
    /// Depth image into the colour camera's geometry.
    pub const DEPTH_TO_COLOR: i32 = 1;
    /// Depth plus an 8-bit custom image into the colour camera's geometry.
    pub const DEPTH_CUSTOM8_TO_COLOR: i32 = 2;
    /// Depth plus a 16-bit custom image into the colour camera's geometry.
    pub const DEPTH_CUSTOM16_TO_COLOR: i32 = 3;
}

/// Transform engine interpolation of custom images (`k4a_transform_engine_interpolation_t`).
pub mod transform_interpolation {
    /// Nearest neighbour.
    pub const NEAREST: i32 = 0;
    /// Bilinear.
    pub const LINEAR: i32 = 1;
}

/// Rigid transform between two sensors (`k4a_calibration_extrinsics_t`, 48 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Extrinsics {
    /// Rotation, row-major 3×3.
    pub rotation: [f32; 9],
    /// Translation, mm.
    pub translation_mm: [f32; 3],
}

/// Per-pixel unprojection tables of the depth camera (`k4a_transformation_xy_tables_t`,
/// 24 bytes): for pixel (u, v) the point at depth z is (`x_table[i]`·z, `y_table[i]`·z, z) with
/// i = v·width + u; NaN in the x table marks a pixel with no valid ray.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XyTables {
    /// X factors, `width × height` floats.
    pub x_table: *mut f32,
    /// Y factors, `width × height` floats.
    pub y_table: *mut f32,
    /// Table width.
    pub width: i32,
    /// Table height.
    pub height: i32,
}

/// What `transform_engine_create_and_initialize` takes
/// (`k4a_transform_engine_calibration_t`, 376 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TransformEngineCalibration {
    /// Depth camera, at the depth mode's resolution.
    pub depth_camera: CameraCalibration,
    /// Colour camera, at the colour resolution.
    pub color_camera: CameraCalibration,
    /// Depth camera to colour camera.
    pub depth_to_color: Extrinsics,
    /// Colour camera to depth camera.
    pub color_to_depth: Extrinsics,
    /// The depth camera's unprojection tables.
    pub depth_xy_tables: XyTables,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn plugin_layout() {
        assert_eq!(size_of::<Plugin>(), 80);
        assert_eq!(offset_of!(Plugin, version), 0);
        assert_eq!(offset_of!(PluginVersion, patch), 8);
        assert_eq!(offset_of!(Plugin, depth_engine_create_and_initialize), 16);
        assert_eq!(offset_of!(Plugin, depth_engine_process_frame), 24);
        assert_eq!(offset_of!(Plugin, depth_engine_get_output_frame_size), 32);
        assert_eq!(offset_of!(Plugin, depth_engine_destroy), 40);
        assert_eq!(
            offset_of!(Plugin, transform_engine_create_and_initialize),
            48
        );
        assert_eq!(offset_of!(Plugin, transform_engine_process_frame), 56);
        assert_eq!(
            offset_of!(Plugin, transform_engine_get_output_frame_size),
            64
        );
        assert_eq!(offset_of!(Plugin, transform_engine_destroy), 72);
    }

    #[test]
    fn frame_info_layout() {
        assert_eq!(size_of::<OutputFrameInfo>(), 32);
        assert_eq!(offset_of!(OutputFrameInfo, output_height), 2);
        assert_eq!(offset_of!(OutputFrameInfo, sensor_temp), 4);
        assert_eq!(offset_of!(OutputFrameInfo, laser_temp), 8);
        assert_eq!(offset_of!(OutputFrameInfo, center_of_exposure_in_ticks), 16);
        assert_eq!(offset_of!(OutputFrameInfo, usb_sof_tick), 24);
        assert_eq!(size_of::<InputFrameInfo>(), 32);
        assert_eq!(offset_of!(InputFrameInfo, laser_temp), 4);
        assert_eq!(offset_of!(InputFrameInfo, center_of_exposure_in_ticks), 16);
        assert_eq!(offset_of!(InputFrameInfo, usb_sof_tick), 24);
    }

    #[test]
    fn transform_engine_calibration_layout() {
        assert_eq!(size_of::<Extrinsics>(), 48);
        assert_eq!(size_of::<XyTables>(), 24);
        assert_eq!(offset_of!(XyTables, width), 16);
        assert_eq!(size_of::<TransformEngineCalibration>(), 376);
        assert_eq!(offset_of!(TransformEngineCalibration, color_camera), 128);
        assert_eq!(offset_of!(TransformEngineCalibration, depth_to_color), 256);
        assert_eq!(offset_of!(TransformEngineCalibration, color_to_depth), 304);
        assert_eq!(offset_of!(TransformEngineCalibration, depth_xy_tables), 352);
    }

    #[test]
    fn camera_calibration_layout() {
        assert_eq!(size_of::<CameraCalibration>(), 128);
        assert_eq!(offset_of!(CameraCalibration, translation_mm), 36);
        assert_eq!(offset_of!(CameraCalibration, intrinsics_type), 48);
        assert_eq!(offset_of!(CameraCalibration, parameter_count), 52);
        assert_eq!(offset_of!(CameraCalibration, parameters), 56);
        assert_eq!(offset_of!(CameraCalibration, resolution_width), 116);
        assert_eq!(offset_of!(CameraCalibration, resolution_height), 120);
        assert_eq!(offset_of!(CameraCalibration, metric_radius), 124);
    }
}
