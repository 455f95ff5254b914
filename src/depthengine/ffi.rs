//! The only code that calls into a depth-engine library. Every `unsafe` of the binding is here.
#![allow(unsafe_code)]

use std::ffi::{c_void, OsStr};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Mutex, OnceLock};

use libloading::os::unix::{Library, Symbol, RTLD_LOCAL, RTLD_NOW};

use super::abi::{self, CameraCalibration, OutputFrameInfo, Plugin, RegisterFn};
use super::error::{DepthEngineError, EngineResult};
use crate::types::Version;

/// Libraries are never unloaded: the SDK keeps its engine for the whole process, and unloading
/// a GL driver stack (or a Rust cdylib with thread-locals) is not reliably safe.
fn keep_loaded(lib: Library) -> &'static Library {
    static LOADED: OnceLock<Mutex<Vec<&'static Library>>> = OnceLock::new();
    let lib: &'static Library = Box::leak(Box::new(lib));
    LOADED
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(lib);
    lib
}

/// A registered plugin: its function table, with every depth-engine pointer checked non-NULL.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Registered {
    pub plugin: Plugin,
    pub create: abi::DeCreateFn,
    pub process: abi::DeProcessFn,
    pub output_size: abi::DeOutputSizeFn,
    pub destroy: abi::DeDestroyFn,
    pub te_create: abi::TeCreateFn,
    pub te_process: abi::TeProcessFn,
    pub te_output_size: abi::TeOutputSizeFn,
    pub te_destroy: abi::TeDestroyFn,
}

/// Opens a library by bare name (loader search) or by path, and keeps it loaded.
pub(crate) fn open(name: &OsStr) -> Result<&'static Library, String> {
    // SAFETY: loading runs the library's initialisers. We load only what the user pointed us
    // at (explicit path, FREEK4A_DEPTH_ENGINE) or what the SDK itself would load by the same
    // bare name; that trust is the same one the SDK extends to libdepthengine.
    let lib = unsafe { Library::open(Some(name), RTLD_NOW | RTLD_LOCAL) };
    lib.map(keep_loaded).map_err(|e| {
        // libloading's Display says only "dlopen failed"; the loader's reason is its source.
        match std::error::Error::source(&e) {
            Some(reason) => format!("{e}: {reason}"),
            None => e.to_string(),
        }
    })
}

/// Looks up `k4a_register_plugin` in a loaded library, calls it and checks the table.
pub(crate) fn register(lib: &'static Library, path: &Path) -> Result<Registered, DepthEngineError> {
    // SAFETY: the symbol type is the plugin interface's documented signature
    // (`bool k4a_register_plugin(k4a_plugin_t *)`, C ABI on Linux).
    let sym: Symbol<RegisterFn> = unsafe { lib.get(abi::REGISTER_SYMBOL) }.map_err(|e| {
        DepthEngineError::NoRegisterSymbol {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    })?;
    register_entry(*sym, path)
}

/// Calls a plugin's `k4a_register_plugin` entry point (from a loaded library, or linked into
/// this program) and checks the table it fills.
pub(crate) fn register_entry(
    entry: RegisterFn,
    path: &Path,
) -> Result<Registered, DepthEngineError> {
    let mut plugin = Plugin::default();
    // SAFETY: `plugin` is a valid, writable, correctly laid out `k4a_plugin_t` (layout pinned by
    // the tests in `abi`) that outlives the call; `entry` has the documented signature and its
    // code stays mapped for the process (loaded libraries are never unloaded).
    let ok = unsafe { entry(&mut plugin) };
    if !ok {
        return Err(DepthEngineError::RegisterRefused {
            path: path.to_owned(),
        });
    }
    let missing = |function| DepthEngineError::MissingFunction {
        path: path.to_owned(),
        function,
    };
    // The SDK requires all eight.
    let reg = Registered {
        plugin,
        te_create: plugin
            .transform_engine_create_and_initialize
            .ok_or_else(|| missing("transform_engine_create_and_initialize"))?,
        te_process: plugin
            .transform_engine_process_frame
            .ok_or_else(|| missing("transform_engine_process_frame"))?,
        te_output_size: plugin
            .transform_engine_get_output_frame_size
            .ok_or_else(|| missing("transform_engine_get_output_frame_size"))?,
        te_destroy: plugin
            .transform_engine_destroy
            .ok_or_else(|| missing("transform_engine_destroy"))?,
        create: plugin
            .depth_engine_create_and_initialize
            .ok_or_else(|| missing("depth_engine_create_and_initialize"))?,
        process: plugin
            .depth_engine_process_frame
            .ok_or_else(|| missing("depth_engine_process_frame"))?,
        output_size: plugin
            .depth_engine_get_output_frame_size
            .ok_or_else(|| missing("depth_engine_get_output_frame_size"))?,
        destroy: plugin
            .depth_engine_destroy
            .ok_or_else(|| missing("depth_engine_destroy"))?,
    };
    let v = plugin.version;
    if v.major != abi::K4A_PLUGIN_VERSION {
        return Err(DepthEngineError::UnsupportedVersion {
            path: path.to_owned(),
            version: Version {
                major: v.major,
                minor: v.minor,
                iteration: v.patch,
            },
        });
    }
    Ok(reg)
}

/// Where the dynamic loader actually found a library loaded by bare name (from the process's
/// memory map, as `dladdr` would tell).
pub(crate) fn resolved_path(file_name: &str) -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| Path::new(p).file_name() == Some(OsStr::new(file_name)))
        .map(PathBuf::from)
}

/// One engine context. Not `Send`: the real engine binds a GL context to the thread that
/// created it, so every call must come from that thread.
pub struct EngineContext {
    reg: Registered,
    ctx: *mut c_void,
    output_size: usize,
    _not_send: PhantomData<*const ()>,
}

impl EngineContext {
    /// `depth_engine_create_and_initialize`, synchronous (no callback), then
    /// `get_output_frame_size`.
    pub(crate) fn create(
        reg: Registered,
        engine_mode: i32,
        input_format: i32,
        cal_block: &[u8],
        camera: Option<&CameraCalibration>,
    ) -> Result<EngineContext, DepthEngineError> {
        // The ABI takes non-const pointers; the engine gets its own copies so nothing of ours
        // can be written through them.
        let mut block = cal_block.to_vec();
        let mut cam = camera.copied();
        let cam_ptr = cam.as_mut().map_or(ptr::null_mut(), |c| {
            c as *mut CameraCalibration as *mut c_void
        });
        let block_ptr = if block.is_empty() {
            ptr::null_mut()
        } else {
            block.as_mut_ptr() as *mut c_void
        };
        let mut ctx: *mut c_void = ptr::null_mut();
        // SAFETY: `ctx` is a valid out-pointer; `block_ptr` points to `block.len()` readable
        // bytes (or is NULL with size 0); `cam_ptr` is NULL or a valid 128-byte
        // `k4a_calibration_camera_t`; all outlive the synchronous call (NULL callback).
        let code = unsafe {
            (reg.create)(
                &mut ctx,
                block.len(),
                block_ptr,
                engine_mode,
                input_format,
                cam_ptr,
                None,
                ptr::null_mut(),
            )
        };
        if code != 0 {
            if !ctx.is_null() {
                // SAFETY: the engine handed out a context despite failing; destroy is the
                // documented way to release one, called once, on this thread.
                unsafe { (reg.destroy)(&mut ctx) };
            }
            return Err(DepthEngineError::Engine {
                call: "depth_engine_create_and_initialize",
                result: EngineResult::from_code(code),
            });
        }
        if ctx.is_null() {
            return Err(DepthEngineError::Engine {
                call: "depth_engine_create_and_initialize",
                result: EngineResult::NullEnginePointer,
            });
        }
        // SAFETY: `ctx` is the live context just created on this thread.
        let output_size = unsafe { (reg.output_size)(ctx) };
        Ok(EngineContext {
            reg,
            ctx,
            output_size,
            _not_send: PhantomData,
        })
    }

    /// Bytes of one output frame, as the engine reported after creation.
    pub fn output_size(&self) -> usize {
        self.output_size
    }

    /// Converts one raw frame into `output` (Z depth), returning the engine's frame info.
    pub fn process(
        &mut self,
        input: &mut [u8],
        output: &mut [u8],
    ) -> Result<OutputFrameInfo, DepthEngineError> {
        let mut info = OutputFrameInfo::default();
        // SAFETY: `self.ctx` is live and owned by this thread (EngineContext is !Send);
        // `input` and `output` are valid for their lengths, which are passed alongside, and
        // outlive the synchronous call; `info` is a valid 32-byte output frame info; the input
        // info is NULL as the SDK passes it.
        let code = unsafe {
            (self.reg.process)(
                self.ctx,
                input.as_mut_ptr() as *mut c_void,
                input.len(),
                abi::output_type::Z_DEPTH,
                output.as_mut_ptr() as *mut c_void,
                output.len(),
                &mut info,
                ptr::null_mut(),
            )
        };
        if code != 0 {
            return Err(DepthEngineError::Engine {
                call: "depth_engine_process_frame",
                result: EngineResult::from_code(code),
            });
        }
        Ok(info)
    }
}

impl Drop for EngineContext {
    fn drop(&mut self) {
        // SAFETY: the context is live, created on this thread (the type is !Send), and this is
        // the only destroy call; the engine sets it to NULL.
        unsafe { (self.reg.destroy)(&mut self.ctx) };
    }
}

/// One transform-engine context. Not `Send`, like [`EngineContext`]: the engine binds its GL
/// context to the creating thread.
pub struct TransformContext {
    reg: Registered,
    ctx: *mut c_void,
    /// The tables the engine was given; kept for the context's life as the SDK keeps them.
    _tables: Box<[f32]>,
    _not_send: PhantomData<*const ()>,
}

impl TransformContext {
    /// `transform_engine_create_and_initialize`, synchronous. `tables` holds the x table then
    /// the y table of the depth camera, `width × height` each.
    pub(crate) fn create(
        reg: Registered,
        calibration: &abi::TransformEngineCalibration,
        tables: Box<[f32]>,
        width: i32,
        height: i32,
    ) -> Result<TransformContext, DepthEngineError> {
        let n = (width.max(0) as usize) * (height.max(0) as usize);
        if tables.len() != 2 * n || n == 0 {
            return Err(DepthEngineError::TransformInput(format!(
                "xy tables hold {} floats, {width}x{height} needs {}",
                tables.len(),
                2 * n
            )));
        }
        let mut tables = tables;
        let (x, y) = tables.split_at_mut(n);
        let mut cal = *calibration;
        cal.depth_xy_tables = abi::XyTables {
            x_table: x.as_mut_ptr(),
            y_table: y.as_mut_ptr(),
            width,
            height,
        };
        let mut ctx: *mut c_void = ptr::null_mut();
        // SAFETY: `ctx` is a valid out-pointer; `cal` is a correctly laid out 376-byte
        // calibration (layout pinned in `abi`) whose table pointers address `2·n` floats that
        // live as long as the context (moved into it below; a boxed slice never moves);
        // synchronous use (NULL callback).
        let code = unsafe {
            (reg.te_create)(
                &mut ctx,
                &mut cal as *mut abi::TransformEngineCalibration as *mut c_void,
                None,
                ptr::null_mut(),
            )
        };
        if code != 0 {
            if !ctx.is_null() {
                // SAFETY: a context handed out despite the failure, released once here.
                unsafe { (reg.te_destroy)(&mut ctx) };
            }
            return Err(DepthEngineError::Engine {
                call: "transform_engine_create_and_initialize",
                result: EngineResult::from_code(code),
            });
        }
        if ctx.is_null() {
            return Err(DepthEngineError::Engine {
                call: "transform_engine_create_and_initialize",
                result: EngineResult::NullEnginePointer,
            });
        }
        Ok(TransformContext {
            reg,
            ctx,
            _tables: tables,
            _not_send: PhantomData,
        })
    }

    /// `transform_engine_get_output_frame_size` for an operation (`abi::transform_type`).
    pub(crate) fn output_size(&self, kind: i32) -> usize {
        // SAFETY: the context is live and used on its own thread (the type is !Send).
        unsafe { (self.reg.te_output_size)(self.ctx, kind) }
    }

    /// `transform_engine_process_frame`. Empty slices are passed as NULL with size 0.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn process(
        &mut self,
        kind: i32,
        interpolation: i32,
        invalid_value: u32,
        depth: &[u8],
        frame2: &[u8],
        out: &mut [u8],
        out2: &mut [u8],
    ) -> Result<(), DepthEngineError> {
        fn input(s: &[u8]) -> *const c_void {
            if s.is_empty() {
                ptr::null()
            } else {
                s.as_ptr() as *const c_void
            }
        }
        fn output(s: &mut [u8]) -> *mut c_void {
            if s.is_empty() {
                ptr::null_mut()
            } else {
                s.as_mut_ptr() as *mut c_void
            }
        }
        // SAFETY: the context is live and owned by this thread; every buffer is valid for the
        // length passed beside it (or NULL with 0) and outlives the synchronous call; the
        // engine only reads the inputs (const in the ABI).
        let code = unsafe {
            (self.reg.te_process)(
                self.ctx,
                kind,
                interpolation,
                invalid_value,
                input(depth),
                depth.len(),
                input(frame2),
                frame2.len(),
                output(out),
                out.len(),
                output(out2),
                out2.len(),
            )
        };
        if code != 0 {
            return Err(DepthEngineError::Engine {
                call: "transform_engine_process_frame",
                result: EngineResult::from_code(code),
            });
        }
        Ok(())
    }
}

impl Drop for TransformContext {
    fn drop(&mut self) {
        // SAFETY: live context, created on this thread (!Send), destroyed once; the tables are
        // dropped after this call (fields drop after `drop`).
        unsafe { (self.reg.te_destroy)(&mut self.ctx) };
    }
}
