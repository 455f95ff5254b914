//! The stand-in X display handed to callers when there is no X server.
//!
//! Programs read a `Display` through Xlib's macros (`DefaultScreen`, `RootWindow`,
//! `ScreenCount`...), which are field accesses, not calls, so the stand-in must have the
//! public layout of Xlib's `_XPrivDisplay`, `Screen` and `Visual` (x86-64 / LP64 offsets,
//! pinned by the tests below against the values in Xlib.h). Only those fields are filled; a
//! caller that goes further than the engine does reaches zeros, not foreign memory.

use std::ffi::{c_char, c_int, c_long, c_ulong, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Xlib's `Visual` (56 bytes).
#[repr(C)]
pub struct Visual {
    ext_data: *mut c_void,
    visualid: c_ulong,
    class: c_int,
    red_mask: c_ulong,
    green_mask: c_ulong,
    blue_mask: c_ulong,
    bits_per_rgb: c_int,
    map_entries: c_int,
}

/// Xlib's `Screen` (128 bytes).
#[repr(C)]
pub struct Screen {
    ext_data: *mut c_void,
    display: *mut Display,
    root: c_ulong,
    width: c_int,
    height: c_int,
    mwidth: c_int,
    mheight: c_int,
    ndepths: c_int,
    depths: *mut c_void,
    root_depth: c_int,
    root_visual: *mut Visual,
    default_gc: *mut c_void,
    cmap: c_ulong,
    white_pixel: c_ulong,
    black_pixel: c_ulong,
    max_maps: c_int,
    min_maps: c_int,
    backing_store: c_int,
    save_unders: c_int,
    root_input_mask: c_long,
}

/// The public part of Xlib's `_XPrivDisplay` (296 bytes); private fields stay zero.
#[repr(C)]
pub struct Display {
    ext_data: *mut c_void,
    private1: *mut c_void,
    fd: c_int,
    private2: c_int,
    proto_major_version: c_int,
    proto_minor_version: c_int,
    vendor: *const c_char,
    private_40_to_216: [u8; 176],
    display_name: *const c_char,
    default_screen: c_int,
    nscreens: c_int,
    screens: *mut Screen,
    private_240_to_296: [u8; 56],
}

/// Xlib's `XVisualInfo` (64 bytes), as `glXGetVisualFromFBConfig` returns it.
#[repr(C)]
pub struct VisualInfo {
    visual: *mut Visual,
    visualid: c_ulong,
    screen: c_int,
    depth: c_int,
    class: c_int,
    red_mask: c_ulong,
    green_mask: c_ulong,
    blue_mask: c_ulong,
    colormap_size: c_int,
    bits_per_rgb: c_int,
}

const TRUE_COLOR: c_int = 4;
const VISUAL_ID: c_ulong = 0x21;
const ROOT_WINDOW: c_ulong = 0x1e0;

/// One stand-in display with its screen and visual, allocated together so the pointers
/// between them stay valid until [`close`].
#[repr(C)]
pub struct World {
    display: Display,
    screen: Screen,
    visual: Visual,
}

static OPEN: Mutex<Vec<usize>> = Mutex::new(Vec::new());
static NEXT_XID: AtomicU64 = AtomicU64::new(0x0440_0001);

fn open_list() -> std::sync::MutexGuard<'static, Vec<usize>> {
    OPEN.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new stand-in display; its address is what the caller gets as `Display *`.
pub fn open() -> *mut c_void {
    let world = Box::new(World {
        display: Display {
            ext_data: std::ptr::null_mut(),
            private1: std::ptr::null_mut(),
            fd: -1,
            private2: 0,
            proto_major_version: 11,
            proto_minor_version: 0,
            vendor: c"freek4a headless GL (EGL)".as_ptr(),
            private_40_to_216: [0; 176],
            display_name: c":headless".as_ptr(),
            default_screen: 0,
            nscreens: 1,
            screens: std::ptr::null_mut(),
            private_240_to_296: [0; 56],
        },
        screen: Screen {
            ext_data: std::ptr::null_mut(),
            display: std::ptr::null_mut(),
            root: ROOT_WINDOW,
            width: 1024,
            height: 768,
            mwidth: 271,
            mheight: 203,
            ndepths: 0,
            depths: std::ptr::null_mut(),
            root_depth: 24,
            root_visual: std::ptr::null_mut(),
            default_gc: std::ptr::null_mut(),
            cmap: 0x20,
            white_pixel: 0xff_ffff,
            black_pixel: 0,
            max_maps: 1,
            min_maps: 1,
            backing_store: 0,
            save_unders: 0,
            root_input_mask: 0,
        },
        visual: Visual {
            ext_data: std::ptr::null_mut(),
            visualid: VISUAL_ID,
            class: TRUE_COLOR,
            red_mask: 0xff_0000,
            green_mask: 0xff00,
            blue_mask: 0xff,
            bits_per_rgb: 8,
            map_entries: 256,
        },
    });
    let world = Box::into_raw(world);
    // SAFETY: `world` is the live allocation just made; these are plain field writes linking
    // its parts (addresses of its own fields, stable because the box never moves).
    unsafe {
        (*world).screen.display = &raw mut (*world).display;
        (*world).screen.root_visual = &raw mut (*world).visual;
        (*world).display.screens = &raw mut (*world).screen;
    }
    open_list().push(world as usize);
    world.cast()
}

/// Whether `dpy` is one of our stand-in displays (still open).
pub fn is_ours(dpy: *mut c_void) -> bool {
    !dpy.is_null() && open_list().contains(&(dpy as usize))
}

/// Closes a stand-in display; false if it is not one of ours.
pub fn close(dpy: *mut c_void) -> bool {
    let mut list = open_list();
    let Some(i) = list.iter().position(|&p| p == dpy as usize) else {
        return false;
    };
    list.swap_remove(i);
    drop(list);
    // SAFETY: `dpy` was made by `Box::into_raw` in `open` and was still in the open list,
    // which it has now left, so this is the only release.
    drop(unsafe { Box::from_raw(dpy.cast::<World>()) });
    true
}

/// A fresh resource id for windows and colormaps on a stand-in display.
pub fn next_xid() -> c_ulong {
    NEXT_XID.fetch_add(1, Ordering::Relaxed) as c_ulong
}

/// The `XVisualInfo` of the one visual of `dpy` (a stand-in display), allocated with `malloc`
/// as Xlib allocates it, so `XFree` releases it.
pub fn visual_info(dpy: *mut c_void) -> *mut c_void {
    let world = dpy.cast::<World>();
    // SAFETY: calloc of one 64-byte struct; NULL is handled below.
    let info = unsafe { libc::calloc(1, std::mem::size_of::<VisualInfo>()) }.cast::<VisualInfo>();
    if info.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: `info` is a fresh, zeroed, suitably aligned allocation of a VisualInfo (all its
    // fields are integers or pointers, valid when zero); `world` is a live stand-in display
    // (the caller checked `is_ours`), so the address of its visual is valid.
    unsafe {
        info.write(VisualInfo {
            visual: &raw mut (*world).visual,
            visualid: VISUAL_ID,
            screen: 0,
            depth: 24,
            class: TRUE_COLOR,
            red_mask: 0xff_0000,
            green_mask: 0xff00,
            blue_mask: 0xff,
            colormap_size: 256,
            bits_per_rgb: 8,
        });
    }
    info.cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    // Offsets from Xlib.h (libX11 1.8) on x86-64.
    #[test]
    fn layouts_match_xlib() {
        assert_eq!(size_of::<Display>(), 296);
        assert_eq!(offset_of!(Display, fd), 16);
        assert_eq!(offset_of!(Display, vendor), 32);
        assert_eq!(offset_of!(Display, display_name), 216);
        assert_eq!(offset_of!(Display, default_screen), 224);
        assert_eq!(offset_of!(Display, nscreens), 228);
        assert_eq!(offset_of!(Display, screens), 232);
        assert_eq!(size_of::<Screen>(), 128);
        assert_eq!(offset_of!(Screen, display), 8);
        assert_eq!(offset_of!(Screen, root), 16);
        assert_eq!(offset_of!(Screen, width), 24);
        assert_eq!(offset_of!(Screen, root_depth), 56);
        assert_eq!(offset_of!(Screen, root_visual), 64);
        assert_eq!(offset_of!(Screen, cmap), 80);
        assert_eq!(size_of::<Visual>(), 56);
        assert_eq!(size_of::<VisualInfo>(), 64);
        assert_eq!(offset_of!(VisualInfo, screen), 16);
        assert_eq!(offset_of!(VisualInfo, depth), 20);
        assert_eq!(offset_of!(VisualInfo, class), 24);
    }

    #[test]
    fn stand_in_display_reads_like_xlib_macros() {
        let dpy = open();
        assert!(is_ours(dpy));
        // SAFETY: `dpy` is a live stand-in display; reads of its public fields, as the
        // DefaultScreen / RootWindow / DefaultVisual macros do.
        unsafe {
            let d = &*dpy.cast::<Display>();
            assert_eq!(d.default_screen, 0);
            assert_eq!(d.nscreens, 1);
            let s = &*d.screens.add(d.default_screen as usize);
            assert_eq!(s.root, ROOT_WINDOW);
            assert_eq!((*s.root_visual).visualid, VISUAL_ID);
            assert_eq!(s.display, dpy.cast::<Display>());
        }
        let info = visual_info(dpy);
        // SAFETY: `info` is the live VisualInfo just allocated; freed once with free().
        unsafe {
            assert_eq!((*info.cast::<VisualInfo>()).depth, 24);
            libc::free(info);
        }
        assert!(close(dpy));
        assert!(!is_ours(dpy));
        assert!(!close(dpy));
    }
}
