//! The libudev functions libusb imports, answering with the emulated functions only.
//!
//! Objects are boxed Rust values handed out as opaque pointers; reference counting is not
//! needed because libusb unrefs each object exactly once.

use std::ffi::{c_char, c_int, CStr, CString};
use std::ptr;

use crate::{devnode, shim, sysname};

/// `struct udev`.
pub struct Udev;

/// One entry of an enumeration list.
pub struct ListEntry {
    name: CString,
    next: *mut ListEntry,
}

/// `struct udev_enumerate`.
pub struct Enumerate {
    entries: Vec<ListEntry>,
}

/// `struct udev_device`.
pub struct Device {
    sysname: CString,
    devnode: CString,
}

/// `struct udev_monitor`: never reports anything (no hotplug in the emulator).
pub struct Monitor {
    fd: c_int,
}

const SYSPATH_PREFIX: &str = "/sys/devices/freek4a/";

/// `udev_new`.
#[no_mangle]
pub extern "C" fn udev_new() -> *mut Udev {
    Box::into_raw(Box::new(Udev))
}

/// `udev_unref`.
#[no_mangle]
pub extern "C" fn udev_unref(udev: *mut Udev) -> *mut Udev {
    if !udev.is_null() {
        // SAFETY: `udev` came from `udev_new` and is released once.
        drop(unsafe { Box::from_raw(udev) });
    }
    ptr::null_mut()
}

/// `udev_enumerate_new`.
#[no_mangle]
pub extern "C" fn udev_enumerate_new(_udev: *mut Udev) -> *mut Enumerate {
    Box::into_raw(Box::new(Enumerate {
        entries: Vec::new(),
    }))
}

/// `udev_enumerate_add_match_subsystem` (only USB devices exist here).
#[no_mangle]
pub extern "C" fn udev_enumerate_add_match_subsystem(
    _e: *mut Enumerate,
    _subsystem: *const c_char,
) -> c_int {
    0
}

/// `udev_enumerate_add_match_property`.
#[no_mangle]
pub extern "C" fn udev_enumerate_add_match_property(
    _e: *mut Enumerate,
    _key: *const c_char,
    _value: *const c_char,
) -> c_int {
    0
}

/// `udev_enumerate_scan_devices`: one entry per emulated function.
#[no_mangle]
pub extern "C" fn udev_enumerate_scan_devices(e: *mut Enumerate) -> c_int {
    if e.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: `e` came from `udev_enumerate_new` and is not shared between threads by libusb.
    let e = unsafe { &mut *e };
    e.entries.clear();
    if let Some(s) = shim() {
        for d in &s.devices {
            let name = CString::new(format!("{SYSPATH_PREFIX}usb{}/{}", d.bus, sysname(d)))
                .unwrap_or_default();
            e.entries.push(ListEntry {
                name,
                next: ptr::null_mut(),
            });
        }
    }
    // Linked only now that the vector no longer grows, so the addresses stay valid.
    for i in (1..e.entries.len()).rev() {
        let next: *mut ListEntry = &mut e.entries[i];
        e.entries[i - 1].next = next;
    }
    0
}

/// `udev_enumerate_get_list_entry`.
#[no_mangle]
pub extern "C" fn udev_enumerate_get_list_entry(e: *mut Enumerate) -> *mut ListEntry {
    if e.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `e` came from `udev_enumerate_new`.
    let e = unsafe { &mut *e };
    e.entries
        .first_mut()
        .map_or(ptr::null_mut(), |b| b as *mut ListEntry)
}

/// `udev_list_entry_get_next`.
#[no_mangle]
pub extern "C" fn udev_list_entry_get_next(l: *mut ListEntry) -> *mut ListEntry {
    if l.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `l` is an entry of a live enumeration.
    unsafe { (*l).next }
}

/// `udev_list_entry_get_name`.
#[no_mangle]
pub extern "C" fn udev_list_entry_get_name(l: *mut ListEntry) -> *const c_char {
    if l.is_null() {
        return ptr::null();
    }
    // SAFETY: `l` is an entry of a live enumeration; the name lives as long as it.
    unsafe { (*l).name.as_ptr() }
}

/// `udev_enumerate_unref`.
#[no_mangle]
pub extern "C" fn udev_enumerate_unref(e: *mut Enumerate) -> *mut Enumerate {
    if !e.is_null() {
        // SAFETY: `e` came from `udev_enumerate_new` and is released once.
        drop(unsafe { Box::from_raw(e) });
    }
    ptr::null_mut()
}

/// `udev_device_new_from_syspath`: only the emulated functions' paths resolve.
#[no_mangle]
pub extern "C" fn udev_device_new_from_syspath(
    _udev: *mut Udev,
    syspath: *const c_char,
) -> *mut Device {
    if syspath.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: libudev callers pass a NUL-terminated path.
    let path = unsafe { CStr::from_ptr(syspath) }.to_string_lossy();
    let Some(s) = shim() else {
        return ptr::null_mut();
    };
    let name = path.rsplit('/').next().unwrap_or_default();
    match s.device_named(name) {
        Some(d) if path.starts_with(SYSPATH_PREFIX) => Box::into_raw(Box::new(Device {
            sysname: CString::new(sysname(d)).unwrap_or_default(),
            devnode: CString::new(devnode(d)).unwrap_or_default(),
        })),
        _ => ptr::null_mut(),
    }
}

/// `udev_device_get_devnode`.
#[no_mangle]
pub extern "C" fn udev_device_get_devnode(d: *mut Device) -> *const c_char {
    if d.is_null() {
        return ptr::null();
    }
    // SAFETY: `d` came from `udev_device_new_from_syspath`; the string lives as long as it.
    unsafe { (*d).devnode.as_ptr() }
}

/// `udev_device_get_sysname`.
#[no_mangle]
pub extern "C" fn udev_device_get_sysname(d: *mut Device) -> *const c_char {
    if d.is_null() {
        return ptr::null();
    }
    // SAFETY: `d` came from `udev_device_new_from_syspath`; the string lives as long as it.
    unsafe { (*d).sysname.as_ptr() }
}

/// `udev_device_get_action`: enumerated devices carry no action.
#[no_mangle]
pub extern "C" fn udev_device_get_action(_d: *mut Device) -> *const c_char {
    ptr::null()
}

/// `udev_device_unref`.
#[no_mangle]
pub extern "C" fn udev_device_unref(d: *mut Device) -> *mut Device {
    if !d.is_null() {
        // SAFETY: `d` came from `udev_device_new_from_syspath` and is released once.
        drop(unsafe { Box::from_raw(d) });
    }
    ptr::null_mut()
}

/// `udev_monitor_new_from_netlink`: a monitor on an eventfd that is never signalled.
#[no_mangle]
pub extern "C" fn udev_monitor_new_from_netlink(
    _udev: *mut Udev,
    _name: *const c_char,
) -> *mut Monitor {
    // SAFETY: eventfd has no memory preconditions.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return ptr::null_mut();
    }
    Box::into_raw(Box::new(Monitor { fd }))
}

/// `udev_monitor_filter_add_match_subsystem_devtype`.
#[no_mangle]
pub extern "C" fn udev_monitor_filter_add_match_subsystem_devtype(
    _m: *mut Monitor,
    _subsystem: *const c_char,
    _devtype: *const c_char,
) -> c_int {
    0
}

/// `udev_monitor_enable_receiving`.
#[no_mangle]
pub extern "C" fn udev_monitor_enable_receiving(_m: *mut Monitor) -> c_int {
    0
}

/// `udev_monitor_get_fd`.
#[no_mangle]
pub extern "C" fn udev_monitor_get_fd(m: *mut Monitor) -> c_int {
    if m.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: `m` came from `udev_monitor_new_from_netlink`.
    unsafe { (*m).fd }
}

/// `udev_monitor_receive_device`: there are never hotplug events.
#[no_mangle]
pub extern "C" fn udev_monitor_receive_device(_m: *mut Monitor) -> *mut Device {
    ptr::null_mut()
}

/// `udev_monitor_unref`.
#[no_mangle]
pub extern "C" fn udev_monitor_unref(m: *mut Monitor) -> *mut Monitor {
    if !m.is_null() {
        // SAFETY: `m` came from `udev_monitor_new_from_netlink` and is released once.
        let m = unsafe { Box::from_raw(m) };
        // SAFETY: the eventfd is owned by the monitor.
        unsafe { (crate::real::close())(m.fd) };
    }
    ptr::null_mut()
}
