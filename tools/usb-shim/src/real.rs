//! The next definitions (libc's) of the functions this library interposes.

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr};
use std::sync::atomic::{AtomicPtr, Ordering};

fn lookup(slot: &AtomicPtr<c_void>, name: &CStr) -> *mut c_void {
    let p = slot.load(Ordering::Acquire);
    if !p.is_null() {
        return p;
    }
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name has no preconditions.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    if p.is_null() {
        // Without the real function nothing can work; say so rather than jump to address 0.
        let msg = b"freek4a-usb-shim: a libc function is missing\n";
        // SAFETY: writing a static buffer to stderr.
        unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
        std::process::abort();
    }
    slot.store(p, Ordering::Release);
    p
}

macro_rules! next {
    ($fn_name:ident, $sym:literal, $ty:ty) => {
        /// The next definition of the symbol.
        pub fn $fn_name() -> $ty {
            static SLOT: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
            let p = lookup(&SLOT, $sym);
            // SAFETY: the symbol named has exactly this C signature in glibc.
            unsafe { std::mem::transmute::<*mut c_void, $ty>(p) }
        }
    };
}

next!(
    open,
    c"open",
    unsafe extern "C" fn(*const c_char, c_int, c_uint) -> c_int
);
next!(
    open64,
    c"open64",
    unsafe extern "C" fn(*const c_char, c_int, c_uint) -> c_int
);
next!(
    open_2,
    c"__open_2",
    unsafe extern "C" fn(*const c_char, c_int) -> c_int
);
next!(
    open64_2,
    c"__open64_2",
    unsafe extern "C" fn(*const c_char, c_int) -> c_int
);
next!(
    openat,
    c"openat",
    unsafe extern "C" fn(c_int, *const c_char, c_int, c_uint) -> c_int
);
next!(
    openat64,
    c"openat64",
    unsafe extern "C" fn(c_int, *const c_char, c_int, c_uint) -> c_int
);
next!(close, c"close", unsafe extern "C" fn(c_int) -> c_int);
next!(
    read,
    c"read",
    unsafe extern "C" fn(c_int, *mut c_void, usize) -> isize
);
next!(
    ioctl,
    c"ioctl",
    unsafe extern "C" fn(c_int, c_ulong, *mut c_void) -> c_int
);
next!(
    poll,
    c"poll",
    unsafe extern "C" fn(*mut libc::pollfd, libc::nfds_t, c_int) -> c_int
);
next!(
    ppoll,
    c"ppoll",
    unsafe extern "C" fn(
        *mut libc::pollfd,
        libc::nfds_t,
        *const libc::timespec,
        *const libc::sigset_t,
    ) -> c_int
);
