//! The call sequence Microsoft's depth engine makes to get its OpenGL context (as seen in
//! `FREEK4A_HEADLESS_GL_TRACE=1` runs), against the library with no X server: stand-in display,
//! frame-buffer config, visual, colormap, window, a 4.4 core context through the proc-address
//! route, made current, a GL call, released and everything freed. Small enough to run under
//! valgrind (`scripts/valgrind-headless-gl.sh`).

use std::ffi::{c_int, c_void, CStr};

use freek4a_headless_gl::*;

type CreateContextAttribs =
    unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_void, c_int, *const c_int) -> *mut c_void;
type GetString = unsafe extern "C" fn(u32) -> *const u8;
type GetIntegerv = unsafe extern "C" fn(u32, *mut c_int);

#[test]
fn engine_call_sequence_without_x() {
    assert_eq!(freek4a_headless_gl_set_mode(MODE_HEADLESS), MODE_AUTO);
    // SAFETY: the library's C entry points, called with valid arguments in the order and with
    // the contracts of Xlib/GLX; every pointer passed is live for the call.
    unsafe {
        let old = XSetErrorHandler(None);
        let dpy = XOpenDisplay(std::ptr::null());
        assert!(!dpy.is_null());
        let attribs = [0x8012 /* GLX_X_RENDERABLE */, 1, 0];
        let mut n = 0;
        let configs = glXChooseFBConfig(dpy, 0, attribs.as_ptr(), &mut n);
        assert!(!configs.is_null());
        assert_eq!(n, 1);
        let config = *configs;
        let vi = glXGetVisualFromFBConfig(dpy, config);
        assert!(!vi.is_null());
        // XVisualInfo: visual at 0, depth at 20.
        let visual = *(vi as *const *mut c_void);
        assert_eq!(*(vi.cast::<u8>().add(20) as *const c_int), 24);
        // RootWindow(dpy, 0): screens at 232, root at 16 of the screen.
        let screens = *(dpy.cast::<u8>().add(232) as *const *const u8);
        let root = *(screens.add(16) as *const std::ffi::c_ulong);
        let cmap = XCreateColormap(dpy, root, visual, 0);
        assert_ne!(cmap, 0);
        let win = XCreateWindow(
            dpy,
            root,
            0,
            0,
            1,
            1,
            0,
            24,
            1,
            visual,
            0,
            std::ptr::null_mut(),
        );
        assert_ne!(win, 0);
        let create: CreateContextAttribs = std::mem::transmute::<unsafe extern "C" fn(), _>(
            glXGetProcAddressARB(c"glXCreateContextAttribsARB".as_ptr().cast()).unwrap(),
        );
        let ctx_attribs = [0x2091, 4, 0x2092, 4, 0x9126, 1, 0];
        let ctx = create(dpy, config, std::ptr::null_mut(), 1, ctx_attribs.as_ptr());
        assert!(!ctx.is_null(), "no 4.4 core context");
        assert_eq!(glXMakeCurrent(dpy, win, ctx), 1);
        let get_string: GetString = std::mem::transmute::<unsafe extern "C" fn(), _>(
            glXGetProcAddressARB(c"glGetString".as_ptr().cast()).unwrap(),
        );
        let get_integer: GetIntegerv = std::mem::transmute::<unsafe extern "C" fn(), _>(
            glXGetProcAddressARB(c"glGetIntegerv".as_ptr().cast()).unwrap(),
        );
        let version = CStr::from_ptr(get_string(0x1F02).cast()).to_string_lossy();
        let (mut major, mut minor) = (0, 0);
        get_integer(0x821B, &mut major); // GL_MAJOR_VERSION
        get_integer(0x821C, &mut minor);
        assert!((major, minor) >= (4, 4), "{version}: {major}.{minor}");
        let mut mask = 0;
        get_integer(0x9126, &mut mask); // GL_CONTEXT_PROFILE_MASK
        assert_eq!(mask & 1, 1, "not a core profile: {version}");
        assert_eq!(glXMakeCurrent(dpy, 0, std::ptr::null_mut()), 1);
        glXDestroyContext(dpy, ctx);
        assert_eq!(XDestroyWindow(dpy, win), 1);
        assert_eq!(XFreeColormap(dpy, cmap), 1);
        assert_eq!(XFree(vi), 1);
        assert_eq!(XFree(configs.cast()), 1);
        assert_eq!(XCloseDisplay(dpy), 0);
        XSetErrorHandler(old);
        let mut stats = [0u32; 3];
        freek4a_headless_gl_stats(stats.as_mut_ptr());
        assert_eq!(stats, [1, 1, 0]);
    }
}
