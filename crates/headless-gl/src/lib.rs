//! `libfreek4a_headless_gl.so`: the X11 and GLX entry points Microsoft's depth engine
//! (`libdepthengine.so.2.0`) imports, served by EGL when there is no X server.
//!
//! The engine makes its OpenGL context only through `XOpenDisplay`, `XCreateColormap`,
//! `XCreateWindow`, `XSetErrorHandler`, `XFree`, `XFreeColormap`, `XDestroyWindow`,
//! `XCloseDisplay`, `glXChooseFBConfig`, `glXGetVisualFromFBConfig`, `glXGetProcAddressARB`,
//! `glXMakeCurrent`, `glXDestroyContext` and `glXCreateContextAttribsARB` (fetched through
//! `glXGetProcAddressARB`), and loads every GL function through `glXGetProcAddressARB`. This
//! library exports all of them. Loaded so that the engine's references bind here (dlopen'ed
//! `RTLD_GLOBAL` before the engine, or `LD_PRELOAD`), it decides at `XOpenDisplay`:
//!
//! * a usable X display (the real `XOpenDisplay` succeeds and the server has GLX): the real
//!   display is returned and every later call on it goes to the real libX11 / libGL unchanged;
//! * otherwise a stand-in display ([`xlib`]) whose windows and colormaps are just numbers, and
//!   whose GLX contexts are EGL contexts ([`egl`]) of the version and profile asked for, made
//!   current with no surface. The engine's work is compute shaders; it never presents.
//!
//! `FREEK4A_HEADLESS_GL` chooses: unset or `auto` as above, `1` / `on` always the stand-in
//! (the whole process then has no X), `0` / `off` always the real X. `FREEK4A_EGL_DEVICE=N`
//! picks EGL device N; `FREEK4A_HEADLESS_GL_TRACE=1` prints each decision on stderr.
//!
//! Programs that load the library themselves use the `freek4a_headless_gl_*` functions: set
//! the mode, ask whether X is usable, describe the EGL vendor and renderer, read counters.
#![deny(unsafe_op_in_unsafe_fn)]
// Every exported function is a C entry point: raw pointers are its contract with C callers.
#![allow(clippy::missing_safety_doc)]

pub mod egl;
pub mod real;
pub mod xlib;

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Mode: stand-in display only when no usable X display exists.
pub const MODE_AUTO: c_int = 0;
/// Mode: always the stand-in display (EGL).
pub const MODE_HEADLESS: c_int = 1;
/// Mode: always the real X display (the library only passes calls through).
pub const MODE_X: c_int = 2;

static MODE: AtomicI32 = AtomicI32::new(-1);
static HEADLESS_DISPLAYS: AtomicU32 = AtomicU32::new(0);
static HEADLESS_CONTEXTS: AtomicU32 = AtomicU32::new(0);
static X_DISPLAYS: AtomicU32 = AtomicU32::new(0);
static HEADLESS_USED: AtomicU32 = AtomicU32::new(0);
/// Error handler kept here when libX11 itself cannot be loaded.
static LOCAL_ERROR_HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Contexts this library made: (GLXContext handed out, EGL context).
static CONTEXTS: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());
/// Memory handed out for `XFree` to release.
static ALLOCATIONS: Mutex<Vec<usize>> = Mutex::new(Vec::new());
/// The one frame-buffer configuration of a stand-in display (its address is the handle).
static FB_CONFIG: u8 = 0;

fn lock<T>(m: &'static Mutex<T>) -> std::sync::MutexGuard<'static, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn trace_on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("FREEK4A_HEADLESS_GL_TRACE").is_ok_and(|v| v == "1"))
}

macro_rules! trace {
    ($($arg:tt)*) => {
        if trace_on() {
            eprintln!("freek4a-headless-gl: {}", format_args!($($arg)*));
        }
    };
}

fn mode() -> c_int {
    let m = MODE.load(Ordering::Acquire);
    if m >= 0 {
        return m;
    }
    let from_env = match std::env::var("FREEK4A_HEADLESS_GL")
        .as_deref()
        .map(str::trim)
    {
        Ok("1") | Ok("on") | Ok("force") | Ok("headless") => MODE_HEADLESS,
        Ok("0") | Ok("off") | Ok("x") => MODE_X,
        _ => MODE_AUTO,
    };
    let _ = MODE.compare_exchange(-1, from_env, Ordering::AcqRel, Ordering::Acquire);
    MODE.load(Ordering::Acquire)
}

/// Runs an entry point's body; a panic (a bug) becomes `fallback` instead of unwinding into C.
fn guard<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        eprintln!("freek4a-headless-gl: internal error (panic); the call fails");
        fallback
    })
}

fn remember_allocation(p: *mut c_void) -> *mut c_void {
    if !p.is_null() {
        lock(&ALLOCATIONS).push(p as usize);
    }
    p
}

fn egl_context_of(ctx: *mut c_void) -> Option<usize> {
    let list = lock(&CONTEXTS);
    list.iter()
        .find(|(glx, _)| *glx == ctx as usize)
        .map(|&(_, egl)| egl)
}

/// Opens the real display and keeps it only if its server has GLX.
fn open_usable_x(name: *const c_char) -> *mut c_void {
    let (Some(open), Some(query), Some(close)) = (
        real::open_display(),
        real::query_extension(),
        real::close_display(),
    ) else {
        trace!("libX11.so.6 cannot be loaded");
        return std::ptr::null_mut();
    };
    // SAFETY: the real XOpenDisplay with the caller's name (NULL or a C string).
    let dpy = unsafe { open(name) };
    if dpy.is_null() {
        trace!("no X display ({})", display_name(name));
        return dpy;
    }
    let (mut op, mut ev, mut err) = (0, 0, 0);
    // SAFETY: `dpy` is the live display just opened; the out-pointers are valid locals.
    let has_glx = unsafe { query(dpy, c"GLX".as_ptr(), &mut op, &mut ev, &mut err) } != 0;
    if !has_glx {
        trace!("X display {} has no GLX", display_name(name));
        // SAFETY: closing the display opened above, once.
        unsafe { close(dpy) };
        return std::ptr::null_mut();
    }
    dpy
}

fn display_name(name: *const c_char) -> String {
    if name.is_null() {
        std::env::var("DISPLAY").unwrap_or_else(|_| "DISPLAY unset".into())
    } else {
        // SAFETY: a non-NULL display name is a C string (XOpenDisplay's contract).
        unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned()
    }
}

fn open_headless(name: *const c_char) -> *mut c_void {
    HEADLESS_DISPLAYS.fetch_add(1, Ordering::Relaxed);
    HEADLESS_USED.store(1, Ordering::Release);
    let dpy = xlib::open();
    trace!(
        "XOpenDisplay({}) -> stand-in display {dpy:p} (EGL)",
        display_name(name)
    );
    dpy
}

// ---------------------------------------------------------------------------------------
// Xlib

/// `Display *XOpenDisplay(const char *name)`.
#[no_mangle]
pub unsafe extern "C" fn XOpenDisplay(name: *const c_char) -> *mut c_void {
    guard(std::ptr::null_mut(), || match mode() {
        MODE_HEADLESS => open_headless(name),
        MODE_X => {
            let Some(open) = real::open_display() else {
                return std::ptr::null_mut();
            };
            X_DISPLAYS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: the real XOpenDisplay with the caller's argument.
            unsafe { open(name) }
        }
        _ => {
            let dpy = open_usable_x(name);
            if dpy.is_null() {
                open_headless(name)
            } else {
                X_DISPLAYS.fetch_add(1, Ordering::Relaxed);
                trace!("XOpenDisplay({}) -> X server", display_name(name));
                dpy
            }
        }
    })
}

/// `int XCloseDisplay(Display *)`.
#[no_mangle]
pub unsafe extern "C" fn XCloseDisplay(dpy: *mut c_void) -> c_int {
    guard(0, || {
        if xlib::close(dpy) {
            return 0;
        }
        match real::close_display() {
            // SAFETY: a display the real libX11 opened, passed through.
            Some(f) => unsafe { f(dpy) },
            None => 0,
        }
    })
}

/// `Colormap XCreateColormap(Display *, Window, Visual *, int alloc)`.
#[no_mangle]
pub unsafe extern "C" fn XCreateColormap(
    dpy: *mut c_void,
    window: c_ulong,
    visual: *mut c_void,
    alloc: c_int,
) -> c_ulong {
    guard(0, || {
        if xlib::is_ours(dpy) {
            return xlib::next_xid();
        }
        match real::create_colormap() {
            // SAFETY: arguments passed through unchanged to the real function.
            Some(f) => unsafe { f(dpy, window, visual, alloc) },
            None => 0,
        }
    })
}

/// `int XFreeColormap(Display *, Colormap)`.
#[no_mangle]
pub unsafe extern "C" fn XFreeColormap(dpy: *mut c_void, cmap: c_ulong) -> c_int {
    guard(0, || {
        if xlib::is_ours(dpy) {
            return 1;
        }
        match real::free_colormap() {
            // SAFETY: arguments passed through unchanged to the real function.
            Some(f) => unsafe { f(dpy, cmap) },
            None => 0,
        }
    })
}

/// `Window XCreateWindow(Display *, Window parent, int x, int y, unsigned width, unsigned
/// height, unsigned border, int depth, unsigned class, Visual *, unsigned long mask,
/// XSetWindowAttributes *)`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn XCreateWindow(
    dpy: *mut c_void,
    parent: c_ulong,
    x: c_int,
    y: c_int,
    width: c_uint,
    height: c_uint,
    border: c_uint,
    depth: c_int,
    class: c_uint,
    visual: *mut c_void,
    mask: c_ulong,
    attributes: *mut c_void,
) -> c_ulong {
    guard(0, || {
        if xlib::is_ours(dpy) {
            return xlib::next_xid();
        }
        match real::create_window() {
            // SAFETY: arguments passed through unchanged to the real function.
            Some(f) => unsafe {
                f(
                    dpy, parent, x, y, width, height, border, depth, class, visual, mask,
                    attributes,
                )
            },
            None => 0,
        }
    })
}

/// `int XDestroyWindow(Display *, Window)`.
#[no_mangle]
pub unsafe extern "C" fn XDestroyWindow(dpy: *mut c_void, window: c_ulong) -> c_int {
    guard(0, || {
        if xlib::is_ours(dpy) {
            return 1;
        }
        match real::destroy_window() {
            // SAFETY: arguments passed through unchanged to the real function.
            Some(f) => unsafe { f(dpy, window) },
            None => 0,
        }
    })
}

/// `int XFree(void *)`.
#[no_mangle]
pub unsafe extern "C" fn XFree(data: *mut c_void) -> c_int {
    guard(0, || {
        let ours = {
            let mut list = lock(&ALLOCATIONS);
            match list.iter().position(|&p| p == data as usize) {
                Some(i) => {
                    list.swap_remove(i);
                    true
                }
                None => false,
            }
        };
        if ours {
            // SAFETY: memory this library allocated with malloc/calloc and handed out for
            // XFree; it just left the list, so it is freed once.
            unsafe { libc::free(data) };
            return 1;
        }
        match real::free() {
            // SAFETY: memory some other part of the program got from Xlib, passed through.
            Some(f) => unsafe { f(data) },
            None => {
                // SAFETY: without libX11, whatever was handed out came from malloc (Xlib's
                // XFree is free()).
                unsafe { libc::free(data) };
                1
            }
        }
    })
}

/// `XErrorHandler XSetErrorHandler(XErrorHandler)`.
#[no_mangle]
pub unsafe extern "C" fn XSetErrorHandler(handler: real::XErrorHandler) -> real::XErrorHandler {
    guard(None, || match real::set_error_handler() {
        // SAFETY: the handler pointer is passed through unchanged to the real function.
        Some(f) => unsafe { f(handler) },
        None => {
            let new = handler.map_or(0, |h| h as usize);
            let old = LOCAL_ERROR_HANDLER.swap(new, Ordering::AcqRel);
            // SAFETY: `old` is 0 or a handler pointer stored by an earlier call.
            (old != 0).then(|| unsafe {
                std::mem::transmute::<
                    usize,
                    unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int,
                >(old)
            })
        }
    })
}

// ---------------------------------------------------------------------------------------
// GLX

/// `GLXFBConfig *glXChooseFBConfig(Display *, int screen, const int *attribs, int *n)`.
#[no_mangle]
pub unsafe extern "C" fn glXChooseFBConfig(
    dpy: *mut c_void,
    screen: c_int,
    attribs: *const c_int,
    n: *mut c_int,
) -> *mut *mut c_void {
    guard(std::ptr::null_mut(), || {
        if !xlib::is_ours(dpy) {
            return match real::choose_fb_config() {
                // SAFETY: arguments passed through unchanged to the real function.
                Some(f) => unsafe { f(dpy, screen, attribs, n) },
                None => std::ptr::null_mut(),
            };
        }
        // The attributes describe a window's pixel format; with no window, one config
        // stands for all. The EGL context gets its version from the context attributes.
        // SAFETY: calloc of one pointer; NULL is handled.
        let list =
            unsafe { libc::calloc(1, std::mem::size_of::<*mut c_void>()) }.cast::<*mut c_void>();
        if list.is_null() {
            return list;
        }
        // SAFETY: `list` holds one pointer; `n` is the caller's out-pointer (may be NULL).
        unsafe {
            *list = (&raw const FB_CONFIG).cast_mut().cast();
            if !n.is_null() {
                *n = 1;
            }
        }
        remember_allocation(list.cast()).cast()
    })
}

/// `XVisualInfo *glXGetVisualFromFBConfig(Display *, GLXFBConfig)`.
#[no_mangle]
pub unsafe extern "C" fn glXGetVisualFromFBConfig(
    dpy: *mut c_void,
    config: *mut c_void,
) -> *mut c_void {
    guard(std::ptr::null_mut(), || {
        if xlib::is_ours(dpy) {
            return remember_allocation(xlib::visual_info(dpy));
        }
        match real::get_visual_from_fb_config() {
            // SAFETY: arguments passed through unchanged to the real function.
            Some(f) => unsafe { f(dpy, config) },
            None => std::ptr::null_mut(),
        }
    })
}

/// `GLXContext glXCreateContextAttribsARB(Display *, GLXFBConfig, GLXContext share, Bool
/// direct, const int *attribs)` (GLX_ARB_create_context).
#[no_mangle]
pub unsafe extern "C" fn glXCreateContextAttribsARB(
    dpy: *mut c_void,
    config: *mut c_void,
    share: *mut c_void,
    direct: c_int,
    attribs: *const c_int,
) -> *mut c_void {
    guard(std::ptr::null_mut(), || {
        if !xlib::is_ours(dpy) {
            return match real::create_context_attribs() {
                // SAFETY: arguments passed through unchanged to the real function.
                Some(f) => unsafe { f(dpy, config, share, direct, attribs) },
                None => std::ptr::null_mut(),
            };
        }
        // SAFETY: GLX_ARB_create_context's contract: NULL or a 0-terminated pair list.
        let egl_attribs = unsafe { egl::translate_attribs(attribs) };
        let egl = match egl::get() {
            Ok(e) => e,
            Err(e) => {
                eprintln!("freek4a-headless-gl: {e}");
                return std::ptr::null_mut();
            }
        };
        let share_egl = egl_context_of(share);
        match egl.create_context(share_egl, &egl_attribs) {
            Ok(ctx) => {
                // The GLXContext handed out is a small allocation of ours: an address no
                // real GLX context can have while it lives.
                let handle = Box::into_raw(Box::new(ctx)) as usize;
                lock(&CONTEXTS).push((handle, ctx));
                HEADLESS_CONTEXTS.fetch_add(1, Ordering::Relaxed);
                trace!(
                    "glXCreateContextAttribsARB {:?} -> EGL context on {} ({})",
                    &egl_attribs,
                    egl.platform,
                    egl.vendor
                );
                handle as *mut c_void
            }
            Err(e) => {
                eprintln!(
                    "freek4a-headless-gl: {} ({}): {e} (attributes {:?})",
                    egl.platform, egl.vendor, egl_attribs
                );
                std::ptr::null_mut()
            }
        }
    })
}

/// `Bool glXMakeCurrent(Display *, GLXDrawable, GLXContext)`.
#[no_mangle]
pub unsafe extern "C" fn glXMakeCurrent(
    dpy: *mut c_void,
    drawable: c_ulong,
    ctx: *mut c_void,
) -> c_int {
    guard(0, || {
        let ours = egl_context_of(ctx);
        if ours.is_none() && !xlib::is_ours(dpy) {
            return match real::make_current() {
                // SAFETY: arguments passed through unchanged to the real function.
                Some(f) => unsafe { f(dpy, drawable, ctx) },
                None => 0,
            };
        }
        if !ctx.is_null() && ours.is_none() {
            return 0;
        }
        let Ok(egl) = egl::get() else { return 0 };
        match egl.make_current(ours) {
            Ok(()) => 1,
            Err(e) => {
                eprintln!("freek4a-headless-gl: {e}");
                0
            }
        }
    })
}

/// `void glXDestroyContext(Display *, GLXContext)`.
#[no_mangle]
pub unsafe extern "C" fn glXDestroyContext(dpy: *mut c_void, ctx: *mut c_void) {
    guard((), || {
        let removed = {
            let mut list = lock(&CONTEXTS);
            list.iter()
                .position(|(glx, _)| *glx == ctx as usize)
                .map(|i| list.swap_remove(i))
        };
        match removed {
            Some((handle, egl_ctx)) => {
                if let Ok(egl) = egl::get() {
                    if let Err(e) = egl.destroy_context(egl_ctx) {
                        eprintln!("freek4a-headless-gl: {e}");
                    }
                }
                // SAFETY: the handle was made by Box::into_raw in glXCreateContextAttribsARB
                // and has just left the list, so it is released once.
                drop(unsafe { Box::from_raw(handle as *mut usize) });
            }
            None => {
                if let Some(f) = real::destroy_context() {
                    // SAFETY: a context of the real GLX, passed through.
                    unsafe { f(dpy, ctx) }
                }
            }
        }
    })
}

fn own_glx_function(name: &[u8]) -> real::ProcAddress {
    // SAFETY (of each cast): a function pointer cast to the generic `void (*)(void)` that
    // glXGetProcAddressARB returns; callers cast it back to the prototype of the name.
    let f: unsafe extern "C" fn() = match name {
        b"glXCreateContextAttribsARB" => unsafe {
            std::mem::transmute::<*const (), unsafe extern "C" fn()>(
                glXCreateContextAttribsARB as *const (),
            )
        },
        b"glXMakeCurrent" => unsafe {
            std::mem::transmute::<*const (), unsafe extern "C" fn()>(glXMakeCurrent as *const ())
        },
        b"glXDestroyContext" => unsafe {
            std::mem::transmute::<*const (), unsafe extern "C" fn()>(glXDestroyContext as *const ())
        },
        b"glXChooseFBConfig" => unsafe {
            std::mem::transmute::<*const (), unsafe extern "C" fn()>(glXChooseFBConfig as *const ())
        },
        b"glXGetVisualFromFBConfig" => unsafe {
            std::mem::transmute::<*const (), unsafe extern "C" fn()>(
                glXGetVisualFromFBConfig as *const (),
            )
        },
        b"glXGetProcAddressARB" | b"glXGetProcAddress" => unsafe {
            std::mem::transmute::<*const (), unsafe extern "C" fn()>(
                glXGetProcAddressARB as *const (),
            )
        },
        _ => return None,
    };
    Some(f)
}

/// `void (*glXGetProcAddressARB(const GLubyte *name))(void)`.
#[no_mangle]
pub unsafe extern "C" fn glXGetProcAddressARB(name: *const u8) -> real::ProcAddress {
    guard(None, || {
        if name.is_null() {
            return None;
        }
        // SAFETY: the name is a C string (the function's contract).
        let name_c = unsafe { CStr::from_ptr(name.cast()) };
        if let Some(f) = own_glx_function(name_c.to_bytes()) {
            return Some(f);
        }
        if HEADLESS_USED.load(Ordering::Acquire) == 0 {
            if let Some(get) = real::get_proc_address() {
                // SAFETY: the real glXGetProcAddressARB with the caller's name.
                return unsafe { get(name) };
            }
        }
        // GLVND's EGL and GLX hand out the same dispatch stubs, so GL functions from EGL
        // work with whichever API made the context current.
        let egl = egl::get().ok()?;
        egl.proc_address(name_c.to_str().ok()?)
    })
}

/// `glXGetProcAddress`, the GLX 1.4 name of the same function.
#[no_mangle]
pub unsafe extern "C" fn glXGetProcAddress(name: *const u8) -> real::ProcAddress {
    // SAFETY: same contract as glXGetProcAddressARB.
    unsafe { glXGetProcAddressARB(name) }
}

// ---------------------------------------------------------------------------------------
// freek4a's own entry points

/// Sets the mode ([`MODE_AUTO`], [`MODE_HEADLESS`], [`MODE_X`]) for displays opened from now
/// on; returns the previous mode, or -1 (and changes nothing) for an unknown value.
#[no_mangle]
pub extern "C" fn freek4a_headless_gl_set_mode(new_mode: c_int) -> c_int {
    if !(MODE_AUTO..=MODE_X).contains(&new_mode) {
        return -1;
    }
    let old = mode();
    MODE.store(new_mode, Ordering::Release);
    if new_mode == MODE_HEADLESS {
        HEADLESS_USED.store(1, Ordering::Release);
    }
    old
}

/// The current mode.
#[no_mangle]
pub extern "C" fn freek4a_headless_gl_mode() -> c_int {
    mode()
}

/// 1 if `$DISPLAY` names an X server that answers and has GLX, else 0.
#[no_mangle]
pub extern "C" fn freek4a_headless_gl_x_usable() -> c_int {
    guard(0, || {
        let dpy = open_usable_x(std::ptr::null());
        if dpy.is_null() {
            return 0;
        }
        if let Some(close) = real::close_display() {
            // SAFETY: the display just opened, closed once.
            unsafe { close(dpy) };
        }
        1
    })
}

fn write_text(buf: *mut c_char, len: usize, text: &str) {
    if buf.is_null() || len == 0 {
        return;
    }
    let n = text.len().min(len - 1);
    // SAFETY: the caller gave `len` writable bytes at `buf`; we write n + 1 <= len of them.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
        *buf.add(n) = 0;
    }
}

/// Initialises EGL, creates an OpenGL `major.minor` core context the way the engine's would
/// be made, and writes `key=value` lines (`platform`, `egl_vendor`, `egl_version`,
/// `gl_vendor`, `gl_renderer`, `gl_version`) into `buf` (`len` bytes, NUL-terminated,
/// truncated if short). Returns 0, or -1 with `error=<reason>` in `buf`.
#[no_mangle]
pub unsafe extern "C" fn freek4a_headless_gl_describe(
    major: c_int,
    minor: c_int,
    buf: *mut c_char,
    len: usize,
) -> c_int {
    guard(-1, || match egl::describe(major, minor) {
        Ok(d) => {
            let text = format!(
                "platform={}\negl_vendor={}\negl_version={}\ngl_vendor={}\ngl_renderer={}\ngl_version={}\n",
                d.platform, d.egl_vendor, d.egl_version, d.gl_vendor, d.gl_renderer, d.gl_version
            );
            write_text(buf, len, &text);
            0
        }
        Err(e) => {
            write_text(buf, len, &format!("error={e}\n"));
            -1
        }
    })
}

/// Counters since load: `out[0]` stand-in displays opened, `out[1]` EGL contexts created,
/// `out[2]` X displays passed through.
#[no_mangle]
pub unsafe extern "C" fn freek4a_headless_gl_stats(out: *mut u32) {
    if out.is_null() {
        return;
    }
    // SAFETY: the caller provides room for three u32 values.
    unsafe {
        *out = HEADLESS_DISPLAYS.load(Ordering::Relaxed);
        *out.add(1) = HEADLESS_CONTEXTS.load(Ordering::Relaxed);
        *out.add(2) = X_DISPLAYS.load(Ordering::Relaxed);
    }
}
