//! The depth engine without a display: `libfreek4a_headless_gl.so` (crate
//! `crates/headless-gl`) serves the X11/GLX entry points the engine imports with EGL.
//!
//! [`prepare`] runs before the engine is loaded. With a usable X display (and no request for
//! the headless path) it leaves everything as it is: the engine talks to X exactly as without
//! freek4a. Otherwise it loads the library `RTLD_GLOBAL`, so the engine's references to
//! `XOpenDisplay`, `glXMakeCurrent`... bind to it (a global library is searched before the
//! engine's own dependencies), switches it to the headless mode and asks it which EGL vendor
//! and renderer will run the engine.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use libloading::os::unix::{Library, Symbol, RTLD_GLOBAL, RTLD_LOCAL, RTLD_NOW};

use super::error::DepthEngineError;

/// File name of the headless GL library as cargo builds it.
pub const HEADLESS_GL_FILE_NAME: &str = "libfreek4a_headless_gl.so";

/// Environment variable naming the headless GL library explicitly.
pub const HEADLESS_GL_LIBRARY_ENV: &str = "FREEK4A_HEADLESS_GL_LIBRARY";

/// The OpenGL version the engine asks for (its error 207 says "OpenGL 4.4 context creation
/// failed"); the probe context is made the same way.
pub const ENGINE_GL_VERSION: (i32, i32) = (4, 4);

const MODE_HEADLESS: c_int = 1;

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GlChoice {
    /// Headless only when there is no usable X display.
    #[default]
    Auto,
    /// Headless even when X works (`--headless-gl`).
    Headless,
}

/// Which OpenGL path the engine will use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GlPath {
    /// The X display in `DISPLAY`, through the system's libX11 and libGL, untouched.
    X {
        /// The value of `DISPLAY`.
        display: String,
    },
    /// EGL without a display server.
    Headless(HeadlessInfo),
}

/// What the headless path runs on.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct HeadlessInfo {
    /// The library serving X/GLX.
    pub library: PathBuf,
    /// EGL platform and device.
    pub platform: String,
    /// `EGL_VENDOR`.
    pub egl_vendor: String,
    /// `EGL_VERSION`.
    pub egl_version: String,
    /// `GL_VENDOR`.
    pub gl_vendor: String,
    /// `GL_RENDERER`.
    pub gl_renderer: String,
    /// `GL_VERSION` of an OpenGL 4.4 core context.
    pub gl_version: String,
}

impl HeadlessInfo {
    fn parse(library: PathBuf, text: &str) -> HeadlessInfo {
        let mut info = HeadlessInfo {
            library,
            ..HeadlessInfo::default()
        };
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.to_string();
            match k {
                "platform" => info.platform = v,
                "egl_vendor" => info.egl_vendor = v,
                "egl_version" => info.egl_version = v,
                "gl_vendor" => info.gl_vendor = v,
                "gl_renderer" => info.gl_renderer = v,
                "gl_version" => info.gl_version = v,
                _ => {}
            }
        }
        info
    }
}

impl std::fmt::Display for GlPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GlPath::X { display } => write!(f, "X display {display}"),
            GlPath::Headless(i) => write!(
                f,
                "headless (EGL {} by {}, {}); renderer {}; OpenGL {}",
                i.egl_version, i.egl_vendor, i.platform, i.gl_renderer, i.gl_version
            ),
        }
    }
}

/// Locates the headless GL library: `$FREEK4A_HEADLESS_GL_LIBRARY`, next to the running
/// executable (and its parent, for test binaries in `deps/`), then this crate's cargo target
/// directory. The newest file wins among the searched folders.
pub fn find_headless_gl() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(HEADLESS_GL_LIBRARY_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    super::find_built_library(HEADLESS_GL_FILE_NAME)
}

type XUsableFn = unsafe extern "C" fn() -> c_int;
type SetModeFn = unsafe extern "C" fn(c_int) -> c_int;
type DescribeFn = unsafe extern "C" fn(c_int, c_int, *mut c_char, usize) -> c_int;
type StatsFn = unsafe extern "C" fn(*mut u32);

fn loaded() -> &'static Mutex<Option<(&'static Library, PathBuf)>> {
    static LIB: OnceLock<Mutex<Option<(&'static Library, PathBuf)>>> = OnceLock::new();
    LIB.get_or_init(|| Mutex::new(None))
}

fn open(path: &Path, flags: i32) -> Result<&'static Library, DepthEngineError> {
    // SAFETY: loading runs the library's initialisers; it is freek4a's own headless GL library
    // (Rust, no initialisers of its own) from an explicit path or next to our binaries.
    let lib = unsafe { Library::open(Some(path.as_os_str()), flags) }.map_err(|e| {
        DepthEngineError::HeadlessGl(format!("cannot load {}: {e}", path.display()))
    })?;
    // Never unloaded: the engine's GL bindings point into it for the rest of the process.
    Ok(Box::leak(Box::new(lib)))
}

fn symbol<T: Copy>(lib: &Library, name: &[u8]) -> Result<T, DepthEngineError> {
    // SAFETY: each caller names a function of the library's `freek4a_headless_gl_*` C API
    // with `T` restating its prototype (crates/headless-gl/src/lib.rs).
    let sym: Symbol<T> = unsafe { lib.get(name) }.map_err(|e| {
        DepthEngineError::HeadlessGl(format!(
            "{}: {e}",
            String::from_utf8_lossy(&name[..name.len() - 1])
        ))
    })?;
    Ok(*sym)
}

/// Decides the OpenGL path and, when it is the headless one, makes it ready before the
/// engine is loaded. `library` overrides [`find_headless_gl`].
pub fn prepare(choice: GlChoice, library: Option<&Path>) -> Result<GlPath, DepthEngineError> {
    let display = std::env::var("DISPLAY").unwrap_or_default();
    let path = library.map(Path::to_path_buf).or_else(find_headless_gl);
    let Some(path) = path else {
        return match choice {
            GlChoice::Auto if !display.is_empty() => Ok(GlPath::X { display }),
            _ => Err(DepthEngineError::HeadlessGl(format!(
                "{HEADLESS_GL_FILE_NAME} not found next to the executable; set \
                 {HEADLESS_GL_LIBRARY_ENV}=/path/to/{HEADLESS_GL_FILE_NAME}"
            ))),
        };
    };
    let mut slot = loaded().lock().unwrap_or_else(|e| e.into_inner());
    if choice == GlChoice::Auto && !display.is_empty() {
        // Probe with a private copy of the library: if X works, nothing of ours enters the
        // global scope and the engine binds to the real libX11/libGL.
        let lib = open(&path, RTLD_NOW | RTLD_LOCAL)?;
        let usable: XUsableFn = symbol(lib, b"freek4a_headless_gl_x_usable\0")?;
        // SAFETY: no arguments; the function opens and closes a display of its own.
        if unsafe { usable() } == 1 {
            return Ok(GlPath::X { display });
        }
    }
    // Loading the same file again with RTLD_GLOBAL promotes the loaded copy to global scope.
    let lib = open(&path, RTLD_NOW | RTLD_GLOBAL)?;
    let set_mode: SetModeFn = symbol(lib, b"freek4a_headless_gl_set_mode\0")?;
    let describe: DescribeFn = symbol(lib, b"freek4a_headless_gl_describe\0")?;
    // SAFETY: plain integer argument.
    unsafe { set_mode(MODE_HEADLESS) };
    let mut buf = vec![0u8; 4096];
    let (major, minor) = ENGINE_GL_VERSION;
    // SAFETY: `buf` has `buf.len()` writable bytes; the function NUL-terminates within them.
    let status = unsafe { describe(major, minor, buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    if status != 0 {
        let reason = text.trim().trim_start_matches("error=");
        return Err(DepthEngineError::HeadlessGl(reason.to_string()));
    }
    *slot = Some((lib, path.clone()));
    Ok(GlPath::Headless(HeadlessInfo::parse(path, &text)))
}

/// Counters of the loaded headless library: (stand-in displays opened, EGL contexts made, X
/// displays passed through); `None` when [`prepare`] has not loaded it globally.
pub fn stats() -> Option<(u32, u32, u32)> {
    let slot = loaded().lock().unwrap_or_else(|e| e.into_inner());
    let (lib, _) = slot.as_ref()?;
    let f: StatsFn = symbol(lib, b"freek4a_headless_gl_stats\0").ok()?;
    let mut out = [0u32; 3];
    // SAFETY: room for the three counters the function writes.
    unsafe { f(out.as_mut_ptr()) };
    Some((out[0], out[1], out[2]))
}
