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

/// Calls `k4a_register_plugin` and checks the table.
pub(crate) fn register(lib: &'static Library, path: &Path) -> Result<Registered, DepthEngineError> {
    // SAFETY: the symbol type is the plugin interface's documented signature
    // (`bool k4a_register_plugin(k4a_plugin_t *)`, C ABI on Linux).
    let sym: Symbol<RegisterFn> = unsafe { lib.get(abi::REGISTER_SYMBOL) }.map_err(|e| {
        DepthEngineError::NoRegisterSymbol {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    })?;
    let mut plugin = Plugin::default();
    // SAFETY: `plugin` is a valid, writable, correctly laid out `k4a_plugin_t` (layout pinned by
    // the tests in `abi`) that outlives the call; the library stays loaded for the process.
    let ok = unsafe { sym(&mut plugin) };
    if !ok {
        return Err(DepthEngineError::RegisterRefused {
            path: path.to_owned(),
        });
    }
    let missing = |function| DepthEngineError::MissingFunction {
        path: path.to_owned(),
        function,
    };
    // The SDK requires all eight, even though it never uses the transform engine here.
    plugin
        .transform_engine_create_and_initialize
        .ok_or_else(|| missing("transform_engine_create_and_initialize"))?;
    plugin
        .transform_engine_process_frame
        .ok_or_else(|| missing("transform_engine_process_frame"))?;
    plugin
        .transform_engine_get_output_frame_size
        .ok_or_else(|| missing("transform_engine_get_output_frame_size"))?;
    plugin
        .transform_engine_destroy
        .ok_or_else(|| missing("transform_engine_destroy"))?;
    let reg = Registered {
        plugin,
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
