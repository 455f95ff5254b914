//! Emulated depth engine: a shared library with the same plugin ABI as Microsoft's
//! `libdepthengine.so.2.0` (plugin interface version 2), for freek4a's emulated units.
//!
//! It exports `k4a_register_plugin` and reports engine version **2.99.0**, a number Microsoft
//! never shipped, so logs make clear which engine ran. It converts the raw frames freek4a's
//! emulator produces (`freek4a_depth_abi::depth_raw`) — not the real sensor's — by rendering the
//! synthetic scene described in each frame's header (a wall and a box at known distances).
//!
//! Behaviour, function by function:
//!
//! * **create_and_initialize**: the calibration block must be an emulated block
//!   (`depth_raw::decode_cal_block`: magic, version, length, CRC-32); anything else, NULL
//!   included, returns 103 UPDATE_CALIBRATION_FAILED, as the real engine rejects a block it
//!   cannot parse. An unknown engine mode, an input format that is not the mode's (8-bit
//!   compressed for MEGA_PIXEL, 12-bit compressed otherwise), or a callback (only the
//!   synchronous use the SDK makes is emulated) returns 102 INITIALIZE_ENGINE_FAILED. The camera
//!   calibration may be NULL.
//! * **get_output_frame_size**: depth modes 2 × w × h × 2 bytes (DEPTH16 then IR16); passive IR
//!   (PCM) w × h × 2 (IR16 only); 0 for a NULL context.
//! * **process_frame**: NULL context 101; NULL input 4; NULL output 5; an input size other
//!   than the mode's exact raw size 1; an output buffer smaller than the output frame size 2;
//!   an output type other than Z_DEPTH 202; a frame whose header does not decode, or whose
//!   sensor mode is not the engine mode's, 105 BIN_INPUT_FAILED (fatal: "restart the engine").
//!   Otherwise it sleeps for the header's test delay (`depth_raw::engine_delay_ms`), renders
//!   depth (mm) and IR at the output resolution, and fills the output frame info with the
//!   resolution, temperatures and ticks from the header. A panic inside becomes 205.
//! * **destroy**: frees the context and sets the caller's pointer to NULL.
//! * The transform-engine entry points exist (the SDK requires all eight pointers) but there is
//!   no transform engine: create returns 102 with a NULL context, process returns 101
//!   NULL_ENGINE_POINTER, get_output_frame_size returns 0, destroy sets NULL.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use freek4a_depth_abi::abi::{
    self, InputFrameInfo, OutputFrameInfo, Plugin, PluginVersion, ProcessCallback,
};
use freek4a_depth_abi::depth_raw::{self, RawFrameHeader};

/// Engine version reported at registration.
pub const VERSION: PluginVersion = PluginVersion {
    major: 2,
    minor: 99,
    patch: 0,
};

const OK: i32 = 0;
const INVALID_INPUT_BUFFER_SIZE: i32 = 1;
const INVALID_OUTPUT_BUFFER_SIZE: i32 = 2;
const NULL_INPUT_BUFFER: i32 = 4;
const NULL_OUTPUT_BUFFER: i32 = 5;
const NULL_ENGINE_POINTER: i32 = 101;
const INITIALIZE_ENGINE_FAILED: i32 = 102;
const UPDATE_CALIBRATION_FAILED: i32 = 103;
const BIN_INPUT_FAILED: i32 = 105;
const GPU_INVALID_PARAMETER: i32 = 202;
const GPU_INTERNAL: i32 = 205;

/// What one engine context converts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModeSpec {
    /// Sensor mode the raw frames come in.
    pub sensor_mode: u32,
    /// Exact raw frame size.
    pub raw_size: usize,
    /// Output width.
    pub width: u16,
    /// Output height.
    pub height: u16,
    /// Passive IR: IR only, no depth.
    pub ir_only: bool,
    /// Input format the mode requires.
    pub input_format: i32,
}

impl ModeSpec {
    /// The spec of an engine mode; `None` for modes the engine does not run.
    pub fn for_engine_mode(mode: i32) -> Option<ModeSpec> {
        use abi::input_format::{RAW_12BIT_COMPRESSED as C12, RAW_8BIT_COMPRESSED as C8};
        let (sensor_mode, width, height, ir_only, input_format) = match mode {
            abi::mode::LT_SW_BINNING => (4, 320, 288, false, C12),
            abi::mode::LT_NATIVE => (4, 640, 576, false, C12),
            abi::mode::QUARTER_MEGA_PIXEL => (7, 512, 512, false, C12),
            abi::mode::MEGA_PIXEL => (5, 1024, 1024, false, C8),
            abi::mode::PCM => (3, 1024, 1024, true, C12),
            _ => return None,
        };
        Some(ModeSpec {
            sensor_mode,
            raw_size: depth_raw::raw_frame_size(sensor_mode)?,
            width,
            height,
            ir_only,
            input_format,
        })
    }

    /// Bytes of one output frame.
    pub fn output_size(&self) -> usize {
        let image = self.width as usize * self.height as usize * 2;
        if self.ir_only {
            image
        } else {
            2 * image
        }
    }
}

/// Renders one frame's scene into `out` (DEPTH16 then IR16, or IR16 alone).
pub fn render(spec: &ModeSpec, header: &RawFrameHeader, out: &mut [u8]) {
    let (w, h) = (u32::from(spec.width), u32::from(spec.height));
    let image = w as usize * h as usize * 2;
    let (depth, ir) = if spec.ir_only {
        (None, &mut out[..image])
    } else {
        let (d, rest) = out.split_at_mut(image);
        (Some(d), &mut rest[..image])
    };
    let scene = header.scene;
    // Per-column and per-row box membership, so each pixel costs a lookup.
    let columns: Vec<bool> = (0..w).map(|x| scene.column_on_box(x, w)).collect();
    let fill = |image: &mut [u8], wall: u16, on_box: u16| {
        for (y, row) in image.chunks_exact_mut(w as usize * 2).enumerate() {
            let row_in = scene.row_on_box(y as u32, h);
            for (px, &col_in) in row.chunks_exact_mut(2).zip(&columns) {
                let v = if row_in && col_in { on_box } else { wall };
                px.copy_from_slice(&v.to_le_bytes());
            }
        }
    };
    if let Some(depth) = depth {
        fill(depth, scene.wall_mm, scene.box_mm);
    }
    fill(ir, scene.wall_ir, scene.box_ir);
}

struct Context {
    spec: ModeSpec,
}

/// Entry point: fills the plugin table.
///
/// # Safety
/// `plugin` must be NULL or point to a writable `k4a_plugin_t`.
#[no_mangle]
pub unsafe extern "C" fn k4a_register_plugin(plugin: *mut Plugin) -> bool {
    if plugin.is_null() {
        return false;
    }
    let table = Plugin {
        version: VERSION,
        depth_engine_create_and_initialize: Some(de_create),
        depth_engine_process_frame: Some(de_process),
        depth_engine_get_output_frame_size: Some(de_output_size),
        depth_engine_destroy: Some(de_destroy),
        transform_engine_create_and_initialize: Some(te_create),
        transform_engine_process_frame: Some(te_process),
        transform_engine_get_output_frame_size: Some(te_output_size),
        transform_engine_destroy: Some(te_destroy),
    };
    // SAFETY: the caller passes a writable plugin struct (checked non-NULL above); `write`
    // does not read the old contents, which may be uninitialised.
    unsafe { plugin.write(table) };
    true
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn de_create(
    context_out: *mut *mut c_void,
    cal_block_size: usize,
    cal_block: *mut c_void,
    mode: i32,
    input_format: i32,
    _camera_calibration: *mut c_void,
    callback: Option<ProcessCallback>,
    _callback_ctx: *mut c_void,
) -> i32 {
    if context_out.is_null() {
        return NULL_ENGINE_POINTER;
    }
    if cal_block.is_null() {
        return UPDATE_CALIBRATION_FAILED;
    }
    // SAFETY: the caller passes `cal_block_size` readable bytes at `cal_block` (non-NULL).
    let block = unsafe { std::slice::from_raw_parts(cal_block as *const u8, cal_block_size) };
    if depth_raw::decode_cal_block(block).is_err() {
        return UPDATE_CALIBRATION_FAILED;
    }
    let Some(spec) = ModeSpec::for_engine_mode(mode) else {
        return INITIALIZE_ENGINE_FAILED;
    };
    if input_format != spec.input_format || callback.is_some() {
        return INITIALIZE_ENGINE_FAILED;
    }
    let ctx = Box::into_raw(Box::new(Context { spec }));
    // SAFETY: `context_out` is a non-NULL, writable out-pointer.
    unsafe { context_out.write(ctx as *mut c_void) };
    OK
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn de_process(
    ctx: *mut c_void,
    input: *mut c_void,
    input_size: usize,
    output_type: i32,
    output: *mut c_void,
    output_size: usize,
    out_info: *mut OutputFrameInfo,
    _in_info: *mut InputFrameInfo,
) -> i32 {
    if ctx.is_null() {
        return NULL_ENGINE_POINTER;
    }
    if input.is_null() {
        return NULL_INPUT_BUFFER;
    }
    if output.is_null() {
        return NULL_OUTPUT_BUFFER;
    }
    // SAFETY: a non-NULL context can only come from `de_create` and stays valid until
    // `de_destroy`; it is only read here.
    let spec = unsafe { (*(ctx as *const Context)).spec };
    if input_size != spec.raw_size {
        return INVALID_INPUT_BUFFER_SIZE;
    }
    if output_size < spec.output_size() {
        return INVALID_OUTPUT_BUFFER_SIZE;
    }
    if output_type != abi::output_type::Z_DEPTH {
        return GPU_INVALID_PARAMETER;
    }
    // SAFETY: the caller passes `input_size` readable bytes at `input`, and `output_size`
    // writable bytes at `output` that do not overlap the input; both outlive this call.
    let (raw, out) = unsafe {
        (
            std::slice::from_raw_parts(input as *const u8, input_size),
            std::slice::from_raw_parts_mut(output as *mut u8, output_size),
        )
    };
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<OutputFrameInfo, i32> {
        let header = RawFrameHeader::decode(raw).map_err(|_| BIN_INPUT_FAILED)?;
        if header.sensor_mode != spec.sensor_mode {
            return Err(BIN_INPUT_FAILED);
        }
        let delay_ms = depth_raw::engine_delay_ms(raw);
        if delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(delay_ms.into()));
        }
        render(&spec, &header, out);
        Ok(OutputFrameInfo {
            output_width: spec.width,
            output_height: spec.height,
            sensor_temp: header.sensor_temp_c,
            laser_temp: header.laser_temp_c,
            center_of_exposure_in_ticks: header.center_of_exposure_ticks,
            usb_sof_tick: header.usb_sof_tick,
        })
    }));
    match result {
        Ok(Ok(info)) => {
            if !out_info.is_null() {
                // SAFETY: a non-NULL `out_info` points to a writable output frame info.
                unsafe { out_info.write(info) };
            }
            OK
        }
        Ok(Err(code)) => code,
        Err(_) => GPU_INTERNAL,
    }
}

unsafe extern "C" fn de_output_size(ctx: *mut c_void) -> usize {
    if ctx.is_null() {
        return 0;
    }
    // SAFETY: a non-NULL context comes from `de_create` and is valid until `de_destroy`.
    unsafe { (*(ctx as *const Context)).spec.output_size() }
}

unsafe extern "C" fn de_destroy(ctx_inout: *mut *mut c_void) {
    if ctx_inout.is_null() {
        return;
    }
    // SAFETY: the caller passes a valid pointer to its context pointer.
    let ctx = unsafe { ctx_inout.replace(std::ptr::null_mut()) };
    if !ctx.is_null() {
        // SAFETY: the context was made by `Box::into_raw` in `de_create` and, its owner's
        // pointer now being NULL, is freed exactly once.
        drop(unsafe { Box::from_raw(ctx as *mut Context) });
    }
}

unsafe extern "C" fn te_create(
    ctx_out: *mut *mut c_void,
    _te_calibration: *mut c_void,
    _callback: Option<ProcessCallback>,
    _callback_ctx: *mut c_void,
) -> i32 {
    if !ctx_out.is_null() {
        // SAFETY: a non-NULL out-pointer is writable.
        unsafe { ctx_out.write(std::ptr::null_mut()) };
    }
    INITIALIZE_ENGINE_FAILED
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn te_process(
    _ctx: *mut c_void,
    _kind: i32,
    _interpolation: i32,
    _invalid_value: u32,
    _depth_frame: *const c_void,
    _depth_size: usize,
    _frame2: *const c_void,
    _frame2_size: usize,
    _out: *mut c_void,
    _out_size: usize,
    _out2: *mut c_void,
    _out2_size: usize,
) -> i32 {
    NULL_ENGINE_POINTER
}

unsafe extern "C" fn te_output_size(_ctx: *mut c_void, _kind: i32) -> usize {
    0
}

unsafe extern "C" fn te_destroy(ctx_inout: *mut *mut c_void) {
    if !ctx_inout.is_null() {
        // SAFETY: a non-NULL pointer to the caller's context pointer is writable.
        unsafe { ctx_inout.write(std::ptr::null_mut()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_per_mode() {
        let size = |m| ModeSpec::for_engine_mode(m).unwrap().output_size();
        assert_eq!(size(abi::mode::LT_SW_BINNING), 368_640);
        assert_eq!(size(abi::mode::LT_NATIVE), 1_474_560);
        assert_eq!(size(abi::mode::QUARTER_MEGA_PIXEL), 1_048_576);
        assert_eq!(size(abi::mode::MEGA_PIXEL), 4_194_304);
        assert_eq!(size(abi::mode::PCM), 2_097_152);
        assert_eq!(ModeSpec::for_engine_mode(1), None);
    }

    #[test]
    fn transform_engine_refuses() {
        let mut ctx = std::ptr::dangling_mut::<c_void>();
        // SAFETY: `ctx` is a valid out-pointer.
        let code = unsafe { te_create(&mut ctx, std::ptr::null_mut(), None, std::ptr::null_mut()) };
        assert_eq!(code, INITIALIZE_ENGINE_FAILED);
        assert!(ctx.is_null());
        // SAFETY: NULL context; the function touches no memory.
        assert_eq!(unsafe { te_output_size(ctx, 0) }, 0);
    }
}
