//! The real libX11 and libGL, for every call that is not ours to answer (a real display, a
//! context the real GLX made). They are opened by name with `RTLD_LOCAL`, and functions are
//! looked up through those handles, never through the global scope, where the name would find
//! this library again.

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr};
use std::sync::OnceLock;

/// `XErrorHandler`: `int (*)(Display *, XErrorEvent *)`.
pub type XErrorHandler = Option<unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int>;
/// A GL or GLX function as `glXGetProcAddressARB` returns it.
pub type ProcAddress = Option<unsafe extern "C" fn()>;

fn open(name: &CStr) -> Option<usize> {
    // SAFETY: dlopen with a NUL-terminated name. These are the libraries the engine itself
    // needs (its DT_NEEDED entries), so their initialisers run in this process anyway.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    (!handle.is_null()).then_some(handle as usize)
}

/// libX11, opened once (never closed: Xlib keeps global state across displays).
pub fn x11() -> Option<usize> {
    static LIB: OnceLock<Option<usize>> = OnceLock::new();
    *LIB.get_or_init(|| open(c"libX11.so.6"))
}

/// libGL (GLVND's or a vendor's), opened once.
pub fn gl() -> Option<usize> {
    static LIB: OnceLock<Option<usize>> = OnceLock::new();
    *LIB.get_or_init(|| open(c"libGL.so.1"))
}

fn lookup(lib: Option<usize>, name: &CStr) -> Option<usize> {
    let handle = lib?;
    // SAFETY: `handle` came from a successful dlopen that is never closed; `name` is
    // NUL-terminated. A handle lookup searches that library and its dependencies only.
    let addr = unsafe { libc::dlsym(handle as *mut c_void, name.as_ptr()) };
    (!addr.is_null()).then_some(addr as usize)
}

macro_rules! real_fn {
    ($(#[$doc:meta])* $get:ident, $lib:ident, $name:literal, $ty:ty) => {
        $(#[$doc])*
        pub fn $get() -> Option<$ty> {
            static ADDR: OnceLock<Option<usize>> = OnceLock::new();
            let addr = (*ADDR.get_or_init(|| lookup($lib(), $name)))?;
            // SAFETY: `addr` is the address the library exports under this name, and `$ty`
            // restates that function's C prototype from Xlib.h / glx.h.
            Some(unsafe { std::mem::transmute::<usize, $ty>(addr) })
        }
    };
}

real_fn!(
    /// `XOpenDisplay`.
    open_display, x11, c"XOpenDisplay",
    unsafe extern "C" fn(*const c_char) -> *mut c_void
);
real_fn!(
    /// `XCloseDisplay`.
    close_display, x11, c"XCloseDisplay",
    unsafe extern "C" fn(*mut c_void) -> c_int
);
real_fn!(
    /// `XQueryExtension`.
    query_extension, x11, c"XQueryExtension",
    unsafe extern "C" fn(*mut c_void, *const c_char, *mut c_int, *mut c_int, *mut c_int) -> c_int
);
real_fn!(
    /// `XCreateColormap`.
    create_colormap, x11, c"XCreateColormap",
    unsafe extern "C" fn(*mut c_void, c_ulong, *mut c_void, c_int) -> c_ulong
);
real_fn!(
    /// `XFreeColormap`.
    free_colormap, x11, c"XFreeColormap",
    unsafe extern "C" fn(*mut c_void, c_ulong) -> c_int
);
real_fn!(
    /// `XCreateWindow`.
    create_window, x11, c"XCreateWindow",
    unsafe extern "C" fn(
        *mut c_void, c_ulong, c_int, c_int, c_uint, c_uint, c_uint, c_int, c_uint,
        *mut c_void, c_ulong, *mut c_void,
    ) -> c_ulong
);
real_fn!(
    /// `XDestroyWindow`.
    destroy_window, x11, c"XDestroyWindow",
    unsafe extern "C" fn(*mut c_void, c_ulong) -> c_int
);
real_fn!(
    /// `XFree`.
    free, x11, c"XFree",
    unsafe extern "C" fn(*mut c_void) -> c_int
);
real_fn!(
    /// `XSetErrorHandler`.
    set_error_handler, x11, c"XSetErrorHandler",
    unsafe extern "C" fn(XErrorHandler) -> XErrorHandler
);
real_fn!(
    /// `glXChooseFBConfig`.
    choose_fb_config, gl, c"glXChooseFBConfig",
    unsafe extern "C" fn(*mut c_void, c_int, *const c_int, *mut c_int) -> *mut *mut c_void
);
real_fn!(
    /// `glXGetVisualFromFBConfig`.
    get_visual_from_fb_config, gl, c"glXGetVisualFromFBConfig",
    unsafe extern "C" fn(*mut c_void, *mut c_void) -> *mut c_void
);
real_fn!(
    /// `glXGetProcAddressARB`.
    get_proc_address, gl, c"glXGetProcAddressARB",
    unsafe extern "C" fn(*const u8) -> ProcAddress
);
real_fn!(
    /// `glXMakeCurrent`.
    make_current, gl, c"glXMakeCurrent",
    unsafe extern "C" fn(*mut c_void, c_ulong, *mut c_void) -> c_int
);
real_fn!(
    /// `glXDestroyContext`.
    destroy_context, gl, c"glXDestroyContext",
    unsafe extern "C" fn(*mut c_void, *mut c_void)
);

/// `glXCreateContextAttribsARB`'s prototype.
pub type CreateContextAttribsFn =
    unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_void, c_int, *const c_int) -> *mut c_void;

/// The real `glXCreateContextAttribsARB`, which GLX only hands out through its proc-address
/// function.
pub fn create_context_attribs() -> Option<CreateContextAttribsFn> {
    static ADDR: OnceLock<Option<usize>> = OnceLock::new();
    let addr = (*ADDR.get_or_init(|| {
        let get = get_proc_address()?;
        // SAFETY: the real glXGetProcAddressARB with a NUL-terminated name.
        let f = unsafe { get(c"glXCreateContextAttribsARB".as_ptr().cast()) }?;
        Some(f as usize)
    }))?;
    // SAFETY: GLX returned this address for glXCreateContextAttribsARB, whose prototype
    // (GLX_ARB_create_context) this type restates.
    Some(unsafe { std::mem::transmute::<usize, CreateContextAttribsFn>(addr) })
}
