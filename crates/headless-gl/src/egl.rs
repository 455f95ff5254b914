//! EGL without a display server: one EGL display per process on the device platform (a GPU,
//! else Mesa's software device) or Mesa's surfaceless platform, OpenGL contexts made current
//! with no surface.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

use khronos_egl as egl;

type Instance = egl::DynamicInstance<egl::EGL1_4>;

const PLATFORM_DEVICE_EXT: egl::Enum = 0x313F;
const PLATFORM_SURFACELESS_MESA: egl::Enum = 0x31DD;
const DRM_DEVICE_FILE_EXT: egl::Int = 0x3233;
const CONTEXT_MINOR_VERSION: egl::Int = 0x30FB;
const CONTEXT_OPENGL_PROFILE_MASK: egl::Int = 0x30FD;
const CONTEXT_OPENGL_DEBUG: egl::Int = 0x31B0;
const CONTEXT_OPENGL_FORWARD_COMPATIBLE: egl::Int = 0x31B1;
const CONTEXT_OPENGL_ROBUST_ACCESS: egl::Int = 0x31B2;
const CONTEXT_OPENGL_RESET_NOTIFICATION_STRATEGY: egl::Int = 0x31BD;
const NO_RESET_NOTIFICATION: egl::Int = 0x31BE;
const LOSE_CONTEXT_ON_RESET: egl::Int = 0x31BF;

// GLX_ARB_create_context / _profile / _robustness attribute names and values.
const GLX_CONTEXT_MAJOR_VERSION_ARB: c_int = 0x2091;
const GLX_CONTEXT_MINOR_VERSION_ARB: c_int = 0x2092;
const GLX_CONTEXT_FLAGS_ARB: c_int = 0x2094;
const GLX_CONTEXT_PROFILE_MASK_ARB: c_int = 0x9126;
const GLX_CONTEXT_RESET_NOTIFICATION_STRATEGY_ARB: c_int = 0x8256;
const GLX_LOSE_CONTEXT_ON_RESET_ARB: c_int = 0x8252;
const GLX_CONTEXT_DEBUG_BIT_ARB: c_int = 0x1;
const GLX_CONTEXT_FORWARD_COMPATIBLE_BIT_ARB: c_int = 0x2;
const GLX_CONTEXT_ROBUST_ACCESS_BIT_ARB: c_int = 0x4;

/// The process's EGL display, initialised on first use.
pub struct Egl {
    instance: Instance,
    display: usize,
    /// 0 means EGL_NO_CONFIG_KHR.
    config: usize,
    /// Which platform and device serve the contexts, in words.
    pub platform: String,
    /// `EGL_VENDOR`.
    pub vendor: String,
    /// `EGL_VERSION`.
    pub version: String,
}

/// What a context of the version the engine asks for reports about itself.
#[derive(Clone, Debug)]
pub struct Description {
    /// Platform and device.
    pub platform: String,
    /// `EGL_VENDOR`.
    pub egl_vendor: String,
    /// `EGL_VERSION`.
    pub egl_version: String,
    /// `GL_VENDOR`.
    pub gl_vendor: String,
    /// `GL_RENDERER`.
    pub gl_renderer: String,
    /// `GL_VERSION`.
    pub gl_version: String,
}

/// The EGL display, or why there is none (the reason is kept: it is the same for every call).
pub fn get() -> Result<&'static Egl, String> {
    static EGL: OnceLock<Result<Egl, String>> = OnceLock::new();
    EGL.get_or_init(init).as_ref().map_err(Clone::clone)
}

fn text(s: Result<&'static CStr, egl::Error>) -> String {
    s.map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

type GetPlatformDisplayFn =
    unsafe extern "C" fn(egl::Enum, *mut c_void, *const egl::Int) -> *mut c_void;
type QueryDevicesFn = unsafe extern "C" fn(egl::Int, *mut *mut c_void, *mut egl::Int) -> u32;
type QueryDeviceStringFn = unsafe extern "C" fn(*mut c_void, egl::Int) -> *const c_char;

fn proc_address<T: Copy>(instance: &Instance, name: &str) -> Option<T> {
    assert_eq!(std::mem::size_of::<T>(), std::mem::size_of::<usize>());
    let f = instance.get_proc_address(name)?;
    // SAFETY: `T` is the EGL prototype of `name` (each caller names its own), and a function
    // pointer of one prototype may be reinterpreted as another of the same size.
    Some(unsafe { std::mem::transmute_copy::<extern "system" fn(), T>(&f) })
}

/// The candidate (platform, native display, description) triples, best first.
fn candidates(instance: &Instance, client_ext: &str) -> Vec<(egl::Enum, usize, String)> {
    let mut out = Vec::new();
    if client_ext.contains("EGL_EXT_platform_device") {
        let query: Option<QueryDevicesFn> = proc_address(instance, "eglQueryDevicesEXT");
        let string: Option<QueryDeviceStringFn> = proc_address(instance, "eglQueryDeviceStringEXT");
        if let (Some(query), Some(string)) = (query, string) {
            let mut devices = [std::ptr::null_mut(); 16];
            let mut n: egl::Int = 0;
            // SAFETY: the array holds 16 device handles, the count it may write is at most 16.
            let ok = unsafe { query(16, devices.as_mut_ptr(), &mut n) };
            let n = if ok != 0 { n.clamp(0, 16) as usize } else { 0 };
            let wanted = std::env::var("FREEK4A_EGL_DEVICE")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok());
            let mut hardware = Vec::new();
            let mut software = Vec::new();
            for (i, &dev) in devices[..n].iter().enumerate() {
                let read = |name| {
                    // SAFETY: `dev` is a device handle EGL just listed; the string, when not
                    // NULL, is EGL's own NUL-terminated, static string.
                    unsafe {
                        let p = string(dev, name);
                        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
                    }
                };
                let ext = read(egl::EXTENSIONS).unwrap_or_default();
                let is_software = ext.contains("EGL_MESA_device_software");
                let what = if is_software {
                    "software".to_string()
                } else if ext.contains("EGL_EXT_device_drm") {
                    read(DRM_DEVICE_FILE_EXT).unwrap_or_else(|| "DRM device".into())
                } else {
                    "GPU".into()
                };
                let entry = (
                    PLATFORM_DEVICE_EXT,
                    dev as usize,
                    format!("EGL device platform, device {i} ({what})"),
                );
                if wanted.is_some_and(|w| w != i) {
                    continue;
                }
                if is_software {
                    software.push(entry)
                } else {
                    hardware.push(entry)
                }
            }
            out.extend(hardware);
            out.extend(software);
        }
    }
    if client_ext.contains("EGL_MESA_platform_surfaceless") {
        out.push((
            PLATFORM_SURFACELESS_MESA,
            0,
            "EGL surfaceless platform (Mesa)".into(),
        ));
    }
    out
}

fn init() -> Result<Egl, String> {
    // SAFETY: loads the system's libEGL.so.1 (GLVND or a vendor's); its exports have the EGL
    // 1.4 prototypes the crate declares.
    let instance = unsafe { Instance::load_required() }
        .map_err(|e| format!("cannot load libEGL.so.1 (install libegl1 and a vendor library such as libegl-mesa0): {e}"))?;
    let client_ext = text(instance.query_string(None, egl::EXTENSIONS));
    let get_display: GetPlatformDisplayFn = proc_address(&instance, "eglGetPlatformDisplayEXT")
        .ok_or("libEGL has no eglGetPlatformDisplayEXT (EGL_EXT_platform_base)")?;
    let mut tried = Vec::new();
    for (platform, native, what) in candidates(&instance, &client_ext) {
        let attribs = [egl::NONE];
        // SAFETY: a platform this libEGL lists, with its native handle (a device it listed, or
        // NULL for surfaceless) and an empty, terminated attribute list.
        let dpy = unsafe { get_display(platform, native as *mut c_void, attribs.as_ptr()) };
        if dpy.is_null() {
            tried.push(format!("{what}: no display"));
            continue;
        }
        // SAFETY: `dpy` is a display EGL just returned.
        let display = unsafe { egl::Display::from_ptr(dpy) };
        if let Err(e) = instance.initialize(display) {
            tried.push(format!("{what}: eglInitialize: {e}"));
            continue;
        }
        let apis = text(instance.query_string(Some(display), egl::CLIENT_APIS));
        let ext = text(instance.query_string(Some(display), egl::EXTENSIONS));
        if !apis.contains("OpenGL") || apis.split(' ').all(|a| a != "OpenGL") {
            tried.push(format!("{what}: no desktop OpenGL (client APIs: {apis})"));
            continue;
        }
        if !ext.contains("EGL_KHR_surfaceless_context") {
            tried.push(format!("{what}: no EGL_KHR_surfaceless_context"));
            continue;
        }
        let config = if ext.contains("EGL_KHR_no_config_context") {
            0
        } else {
            let attribs = [
                egl::RENDERABLE_TYPE,
                egl::OPENGL_BIT,
                egl::SURFACE_TYPE,
                0,
                egl::NONE,
            ];
            match instance.choose_first_config(display, &attribs) {
                Ok(Some(c)) => c.as_ptr() as usize,
                _ => {
                    tried.push(format!("{what}: no OpenGL config"));
                    continue;
                }
            }
        };
        return Ok(Egl {
            vendor: text(instance.query_string(Some(display), egl::VENDOR)),
            version: text(instance.query_string(Some(display), egl::VERSION)),
            instance,
            display: dpy as usize,
            config,
            platform: what,
        });
    }
    if tried.is_empty() {
        tried.push(format!(
            "libEGL offers neither the device nor the surfaceless platform (client extensions: {client_ext})"
        ));
    }
    Err(format!("no headless EGL display: {}", tried.join("; ")))
}

/// EGL context attributes for a GLX_ARB_create_context attribute list (pairs ending in 0).
/// Unknown GLX attributes are dropped: EGL would reject them, and they only matter to GLX.
///
/// # Safety
/// `glx` is NULL or points to a 0-terminated list of (name, value) pairs.
pub unsafe fn translate_attribs(glx: *const c_int) -> Vec<egl::Int> {
    let mut out = Vec::new();
    let mut p = glx;
    while !p.is_null() {
        // SAFETY: the caller promises a terminated pair list; we stop at the 0 name and read
        // the value only of a non-terminating name.
        let (name, value) = unsafe {
            let name = *p;
            if name == 0 {
                break;
            }
            (name, *p.add(1))
        };
        match name {
            GLX_CONTEXT_MAJOR_VERSION_ARB => out.extend([egl::CONTEXT_MAJOR_VERSION, value]),
            GLX_CONTEXT_MINOR_VERSION_ARB => out.extend([CONTEXT_MINOR_VERSION, value]),
            // The profile bits (core 1, compatibility 2) are the same numbers in both APIs.
            GLX_CONTEXT_PROFILE_MASK_ARB => out.extend([CONTEXT_OPENGL_PROFILE_MASK, value]),
            GLX_CONTEXT_FLAGS_ARB => {
                if value & GLX_CONTEXT_DEBUG_BIT_ARB != 0 {
                    out.extend([CONTEXT_OPENGL_DEBUG, egl::TRUE as egl::Int]);
                }
                if value & GLX_CONTEXT_FORWARD_COMPATIBLE_BIT_ARB != 0 {
                    out.extend([CONTEXT_OPENGL_FORWARD_COMPATIBLE, egl::TRUE as egl::Int]);
                }
                if value & GLX_CONTEXT_ROBUST_ACCESS_BIT_ARB != 0 {
                    out.extend([CONTEXT_OPENGL_ROBUST_ACCESS, egl::TRUE as egl::Int]);
                }
            }
            GLX_CONTEXT_RESET_NOTIFICATION_STRATEGY_ARB => {
                let v = if value == GLX_LOSE_CONTEXT_ON_RESET_ARB {
                    LOSE_CONTEXT_ON_RESET
                } else {
                    NO_RESET_NOTIFICATION
                };
                out.extend([CONTEXT_OPENGL_RESET_NOTIFICATION_STRATEGY, v]);
            }
            _ => {}
        }
        // SAFETY: still inside the list: this pair was not the terminator.
        p = unsafe { p.add(2) };
    }
    out.push(egl::NONE);
    out
}

impl Egl {
    fn display(&self) -> egl::Display {
        // SAFETY: the display this struct initialised and never terminates.
        unsafe { egl::Display::from_ptr(self.display as *mut c_void) }
    }

    /// A new OpenGL context (`attribs` as [`translate_attribs`] makes them), sharing objects
    /// with `share` if given.
    pub fn create_context(
        &self,
        share: Option<usize>,
        attribs: &[egl::Int],
    ) -> Result<usize, String> {
        self.instance
            .bind_api(egl::OPENGL_API)
            .map_err(|e| format!("eglBindAPI(OpenGL): {e}"))?;
        // SAFETY: 0 is EGL_NO_CONFIG_KHR, which the display supports when `config` is 0;
        // otherwise a config this display returned.
        let config = unsafe { egl::Config::from_ptr(self.config as *mut c_void) };
        // SAFETY: `share` is a context this module created and has not destroyed.
        let share = share.map(|s| unsafe { egl::Context::from_ptr(s as *mut c_void) });
        self.instance
            .create_context(self.display(), config, share, attribs)
            .map(|c| c.as_ptr() as usize)
            .map_err(|e| format!("eglCreateContext: {e}"))
    }

    /// Makes `ctx` current on this thread with no surface, or releases the current one.
    pub fn make_current(&self, ctx: Option<usize>) -> Result<(), String> {
        self.instance
            .bind_api(egl::OPENGL_API)
            .map_err(|e| format!("eglBindAPI(OpenGL): {e}"))?;
        // SAFETY: `ctx` is a live context this module created.
        let ctx = ctx.map(|c| unsafe { egl::Context::from_ptr(c as *mut c_void) });
        self.instance
            .make_current(self.display(), None, None, ctx)
            .map_err(|e| format!("eglMakeCurrent: {e}"))
    }

    /// Destroys a context this module created (EGL defers it while it is current somewhere).
    pub fn destroy_context(&self, ctx: usize) -> Result<(), String> {
        // SAFETY: `ctx` is a live context this module created; destroyed once.
        let ctx = unsafe { egl::Context::from_ptr(ctx as *mut c_void) };
        self.instance
            .destroy_context(self.display(), ctx)
            .map_err(|e| format!("eglDestroyContext: {e}"))
    }

    /// An OpenGL function of the current EGL implementation.
    pub fn proc_address(&self, name: &str) -> Option<unsafe extern "C" fn()> {
        proc_address(&self.instance, name)
    }
}

type GetStringFn = unsafe extern "C" fn(u32) -> *const u8;

/// Creates a context of `major.minor` core profile on a thread of its own (so no caller's
/// current context is disturbed) and reads what it reports.
pub fn describe(major: c_int, minor: c_int) -> Result<Description, String> {
    let work = move || -> Result<Description, String> {
        let egl = get()?;
        let glx = [
            GLX_CONTEXT_MAJOR_VERSION_ARB,
            major,
            GLX_CONTEXT_MINOR_VERSION_ARB,
            minor,
            GLX_CONTEXT_PROFILE_MASK_ARB,
            1,
            0,
        ];
        // SAFETY: a terminated pair list.
        let attribs = unsafe { translate_attribs(glx.as_ptr()) };
        let ctx = egl.create_context(None, &attribs).map_err(|e| {
            format!(
                "{} ({}, EGL {}): no OpenGL {major}.{minor} core context: {e}",
                egl.platform, egl.vendor, egl.version
            )
        })?;
        let result = egl.make_current(Some(ctx)).and_then(|()| {
            let get_string: GetStringFn = egl
                .proc_address("glGetString")
                .map(|f| {
                    // SAFETY: glGetString's prototype is `const GLubyte *(GLenum)`.
                    unsafe { std::mem::transmute::<unsafe extern "C" fn(), GetStringFn>(f) }
                })
                .ok_or("no glGetString")?;
            let read = |name: u32| {
                // SAFETY: a context is current on this thread; glGetString returns NULL or a
                // static NUL-terminated string.
                unsafe {
                    let p = get_string(name);
                    if p.is_null() {
                        String::new()
                    } else {
                        CStr::from_ptr(p.cast()).to_string_lossy().into_owned()
                    }
                }
            };
            Ok(Description {
                platform: egl.platform.clone(),
                egl_vendor: egl.vendor.clone(),
                egl_version: egl.version.clone(),
                gl_vendor: read(0x1F00),
                gl_renderer: read(0x1F01),
                gl_version: read(0x1F02),
            })
        });
        let _ = egl.make_current(None);
        let _ = egl.destroy_context(ctx);
        result
    };
    std::thread::spawn(work)
        .join()
        .unwrap_or_else(|_| Err("the probe thread panicked".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glx_attributes_become_egl_ones() {
        let glx = [
            GLX_CONTEXT_MAJOR_VERSION_ARB,
            4,
            GLX_CONTEXT_MINOR_VERSION_ARB,
            4,
            GLX_CONTEXT_PROFILE_MASK_ARB,
            1,
            GLX_CONTEXT_FLAGS_ARB,
            GLX_CONTEXT_DEBUG_BIT_ARB | GLX_CONTEXT_FORWARD_COMPATIBLE_BIT_ARB,
            0x8011, // GLX_RENDER_TYPE: no EGL counterpart
            0x8014,
            0,
        ];
        // SAFETY: a terminated pair list.
        let egl = unsafe { translate_attribs(glx.as_ptr()) };
        assert_eq!(
            egl,
            [0x3098, 4, 0x30FB, 4, 0x30FD, 1, 0x31B0, 1, 0x31B1, 1, 0x3038]
        );
        // SAFETY: NULL is allowed.
        assert_eq!(unsafe { translate_attribs(std::ptr::null()) }, [0x3038]);
    }
}
