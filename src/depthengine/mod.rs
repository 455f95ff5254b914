//! Depth through a depth-engine plugin: Microsoft's closed `libdepthengine.so.2.0`, or
//! freek4a's emulated engine (`engines/emulated-depthengine`), both loaded at run time through
//! the same plugin ABI (declared once, in `crates/depth-abi/src/abi.rs`).
//!
//! * [`DepthEngine::load`] finds and registers an engine: an explicit path (the CLI's
//!   `--depth-engine PATH`), else `$FREEK4A_DEPTH_ENGINE`, else the bare name
//!   `libdepthengine.so.2.0` through the dynamic loader, as the SDK does.
//! * [`DepthPipeline`] runs it like the SDK's dewrapper: one dedicated thread owns the engine
//!   (create, every process call, destroy), fed by a 2-deep queue that drops the oldest frame.
//! * [`DepthEngine::emulated`] registers freek4a's emulated engine, which is linked into
//!   every program using this crate, through the same `k4a_register_plugin` entry point and
//!   checks; its shared library (for loading it like any plugin) is found by
//!   [`find_emulated_engine`].
//! * [`headless::prepare`] gives the engine an OpenGL context without a display (EGL behind
//!   the X/GLX functions it imports) when there is no usable X display, or when asked.
//! * [`DepthEngine::create_transform`] binds the same library's transform engine, the GPU
//!   path of the SDK's transformation functions.
//!
//! ```no_run
//! use freek4a::depthengine::{DepthEngine, DepthPipeline, CameraCalibration};
//! use freek4a::types::{DepthMode, Fps};
//! # fn main() -> Result<(), freek4a::depthengine::DepthEngineError> {
//! let engine = DepthEngine::load(None)?;
//! # let (cal_block, raw) = (Vec::new(), Vec::new());
//! let pipeline = DepthPipeline::start(&engine, DepthMode::NfovUnbinned, Fps::Fps30, cal_block,
//!     Some(CameraCalibration::default()))?;
//! pipeline.push(raw, 0)?;
//! let capture = pipeline.receiver().recv().unwrap()?;
//! # Ok(()) }
//! ```

pub mod abi;
mod error;
mod ffi;
pub mod headless;
mod pipeline;
pub mod transform;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

pub use abi::CameraCalibration;
pub use error::{DepthEngineError, EngineResult, INSTALL_ADVICE};
pub use ffi::EngineContext;
pub use headless::{GlChoice, GlPath, HeadlessInfo};
pub use pipeline::{Converted, DepthPipeline, FrameConverter, PipelineDrops};
pub use transform::{
    DepthXyTables, Interpolation, TransformCalibration, TransformEngine, TransformKind,
};

use crate::types::{DepthMode, Version};

/// The file name the SDK asks the dynamic loader for.
pub const ENGINE_FILE_NAME: &str = "libdepthengine.so.2.0";

/// Environment variable naming the engine library explicitly.
pub const ENGINE_ENV_VAR: &str = "FREEK4A_DEPTH_ENGINE";

/// What [`DepthEngine::path`] says for the emulated engine linked into the program.
pub const BUILTIN_EMULATED_ENGINE: &str = "(built-in) freek4a emulated depth engine";

/// File name of freek4a's emulated engine as cargo builds it.
pub const EMULATED_ENGINE_FILE_NAME: &str = "libfreek4a_emulated_depthengine.so";

/// A loaded and registered depth engine. Cheap to clone; the library stays loaded for the
/// life of the process, as in the SDK.
#[derive(Clone, Debug)]
pub struct DepthEngine {
    reg: ffi::Registered,
    path: PathBuf,
}

impl DepthEngine {
    /// Finds and registers a depth engine: `explicit` if given, else the path in
    /// `$FREEK4A_DEPTH_ENGINE` if set, else `libdepthengine.so.2.0` through the dynamic loader.
    /// An explicit choice that fails is an error; it never falls back to another library.
    pub fn load(explicit: Option<&Path>) -> Result<DepthEngine, DepthEngineError> {
        let env = std::env::var_os(ENGINE_ENV_VAR).filter(|v| !v.is_empty());
        Self::load_from(explicit, env, OsStr::new(ENGINE_FILE_NAME))
    }

    /// freek4a's emulated engine, linked into this program: registered through its
    /// `k4a_register_plugin` entry point and checked like a loaded plugin, so it needs no file
    /// on disk (an installed binary emulates depth on its own).
    pub fn emulated() -> Result<DepthEngine, DepthEngineError> {
        let path = PathBuf::from(BUILTIN_EMULATED_ENGINE);
        let reg = ffi::register_entry(freek4a_emulated_depthengine::k4a_register_plugin, &path)?;
        Ok(DepthEngine { reg, path })
    }

    /// Loads exactly the library at `path` (no search).
    pub fn load_path(path: &Path) -> Result<DepthEngine, DepthEngineError> {
        Self::load_from(Some(path), None, OsStr::new(ENGINE_FILE_NAME))
    }

    fn load_from(
        explicit: Option<&Path>,
        env: Option<OsString>,
        bare: &OsStr,
    ) -> Result<DepthEngine, DepthEngineError> {
        let (name, what) = match (explicit, env) {
            (Some(p), _) => (p.as_os_str().to_owned(), "the given path".to_string()),
            (None, Some(v)) => (v, format!("${ENGINE_ENV_VAR}")),
            (None, None) => (bare.to_owned(), "the dynamic loader's search path".into()),
        };
        let is_path = explicit.is_some() || Path::new(&name).components().count() > 1;
        if is_path && !Path::new(&name).exists() {
            return Err(DepthEngineError::NotFound {
                tried: vec![format!(
                    "{} from {what}: no such file",
                    Path::new(&name).display()
                )],
            });
        }
        let lib = ffi::open(&name).map_err(|reason| DepthEngineError::NotFound {
            tried: vec![format!(
                "{} from {what}: {reason}",
                Path::new(&name).display()
            )],
        })?;
        let path = if is_path {
            std::fs::canonicalize(&name).unwrap_or_else(|_| PathBuf::from(&name))
        } else {
            ffi::resolved_path(&name.to_string_lossy()).unwrap_or_else(|| PathBuf::from(&name))
        };
        let reg = ffi::register(lib, &path)?;
        Ok(DepthEngine { reg, path })
    }

    /// Engine version the plugin reported (`iteration` holds the patch number).
    pub fn version(&self) -> Version {
        let v = self.reg.plugin.version;
        Version {
            major: v.major,
            minor: v.minor,
            iteration: v.patch,
        }
    }

    /// Path of the loaded library (as resolved by the loader for a bare name), or
    /// [`BUILTIN_EMULATED_ENGINE`] for [`DepthEngine::emulated`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates an engine context on the calling thread, which must make every later call on
    /// it (the returned context is not `Send`). Most callers want [`DepthPipeline`] instead.
    pub fn create_context(
        &self,
        mode: DepthMode,
        cal_block: &[u8],
        camera: Option<&CameraCalibration>,
    ) -> Result<EngineContext, DepthEngineError> {
        let (engine_mode, input_format) =
            engine_mode(mode).ok_or(DepthEngineError::ModeOff(mode.sdk_name()))?;
        EngineContext::create(self.reg, engine_mode, input_format, cal_block, camera)
    }
}

/// The engine mode and input format the SDK uses for a depth mode; `None` for OFF.
pub fn engine_mode(mode: DepthMode) -> Option<(i32, i32)> {
    use abi::{input_format as f, mode as m};
    Some(match mode {
        DepthMode::Off => return None,
        DepthMode::Nfov2x2Binned => (m::LT_SW_BINNING, f::RAW_12BIT_COMPRESSED),
        DepthMode::NfovUnbinned => (m::LT_NATIVE, f::RAW_12BIT_COMPRESSED),
        DepthMode::Wfov2x2Binned => (m::QUARTER_MEGA_PIXEL, f::RAW_12BIT_COMPRESSED),
        DepthMode::WfovUnbinned => (m::MEGA_PIXEL, f::RAW_8BIT_COMPRESSED),
        DepthMode::PassiveIr => (m::PCM, f::RAW_12BIT_COMPRESSED),
    })
}

/// Locates the shared library of freek4a's emulated engine (`cargo build` puts it beside the
/// binaries): next to the running executable, in `deps/` below it, and in its parent (for test
/// binaries in `deps/`). The newest file wins. The program itself never needs it: see
/// [`DepthEngine::emulated`].
pub fn find_emulated_engine() -> Option<PathBuf> {
    find_built_library(EMULATED_ENGINE_FILE_NAME)
}

/// A shared library built with freek4a (`file_name`), searched where
/// [`find_emulated_engine`] searches.
pub(crate) fn find_built_library(file_name: &str) -> Option<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            dirs.push(dir.to_path_buf());
            dirs.push(dir.join("deps"));
            if let Some(up) = dir.parent() {
                dirs.push(up.to_path_buf());
            }
        }
    }
    dirs.into_iter()
        .map(|d| d.join(file_name))
        .filter_map(|p| {
            let modified = std::fs::metadata(&p).ok()?.modified().ok()?;
            Some((modified, p))
        })
        .max_by_key(|(m, _)| *m)
        .map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_what_to_install() {
        let err =
            DepthEngine::load_from(None, None, OsStr::new("libfreek4a-no-such-engine.so.2.0"))
                .unwrap_err();
        assert!(matches!(err, DepthEngineError::NotFound { .. }));
        let msg = err.to_string();
        for needle in [
            "libfreek4a-no-such-engine.so.2.0",
            "libk4a1.4",
            "pyk4a_bundle.libs",
            "FREEK4A_DEPTH_ENGINE",
            "--depth-engine",
            "-d OFF",
        ] {
            assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
        }
    }

    #[test]
    fn explicit_and_env_paths_do_not_fall_back() {
        let err = DepthEngine::load_from(
            Some(Path::new("/nonexistent/libdepthengine.so.2.0")),
            Some("/also/missing.so".into()),
            OsStr::new("libc.so.6"),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/libdepthengine.so.2.0 from the given path"));
        let err = DepthEngine::load_from(
            None,
            Some("/also/missing.so".into()),
            OsStr::new("libc.so.6"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("$FREEK4A_DEPTH_ENGINE"), "{err}");
    }

    #[test]
    fn library_without_register_symbol() {
        let err = DepthEngine::load_from(None, None, OsStr::new("libc.so.6")).unwrap_err();
        assert!(
            matches!(err, DepthEngineError::NoRegisterSymbol { ref path, .. } if path.ends_with("libc.so.6")),
            "{err}"
        );
    }

    #[test]
    fn builtin_emulated_engine_registers_and_converts() {
        let engine = DepthEngine::emulated().unwrap();
        assert_eq!(engine.path(), Path::new(BUILTIN_EMULATED_ENGINE));
        assert_eq!(engine.version().major, 2);
        // A context for NFOV unbinned reports the mode's 640x576 depth+IR output.
        let block = freek4a_depth_abi::depth_raw::encode_cal_block(b"unit");
        let ctx = engine
            .create_context(DepthMode::NfovUnbinned, &block, None)
            .unwrap();
        assert_eq!(ctx.output_size(), 640 * 576 * 2 * 2);
        // The engine checks what it is given, as a loaded one does.
        let Err(err) =
            engine.create_context(DepthMode::NfovUnbinned, b"not a calibration block", None)
        else {
            panic!("a bad calibration block was accepted");
        };
        assert!(
            matches!(
                err,
                DepthEngineError::Engine {
                    result: EngineResult::UpdateCalibrationFailed,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn engine_modes_match_the_sdk() {
        assert_eq!(engine_mode(DepthMode::Off), None);
        assert_eq!(engine_mode(DepthMode::Nfov2x2Binned), Some((2, 3)));
        assert_eq!(engine_mode(DepthMode::NfovUnbinned), Some((4, 3)));
        assert_eq!(engine_mode(DepthMode::Wfov2x2Binned), Some((7, 3)));
        assert_eq!(engine_mode(DepthMode::WfovUnbinned), Some((5, 4)));
        assert_eq!(engine_mode(DepthMode::PassiveIr), Some((3, 3)));
    }
}
