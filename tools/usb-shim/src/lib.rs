//! An `LD_PRELOAD` library that makes emulated Azure Kinect units appear as USB devices to an
//! unmodified libusb inside the process (test tool, not part of the product).
//!
//! Microsoft's libk4a links libusb statically; that libusb finds devices through libudev and
//! talks to them through usbfs device nodes. This library answers both from
//! [`freek4a::emulator::EmulatedBackend`]:
//!
//! - [`udev`]: the `udev_*` functions libusb imports (enumeration, device attributes, an idle
//!   hotplug monitor), listing only the emulated functions;
//! - [`node`]: `/dev/bus/usb/BBB/DDD` opened through `open`/`__open_2`/`openat` becomes an
//!   eventfd whose `read` gives the descriptors and whose `ioctl`s are the usbfs requests
//!   (claim, control, bulk and isochronous URBs, reap, discard), with `poll` readiness;
//! - sysfs attributes under `/sys/bus/usb/devices/<sysname>/` that libusb may read come from
//!   memfds.
//!
//! Configuration: `FREEK4A_SHIM_EMULATE=units=1,seed=7[,speed=realtime|max]`. Without it the
//! library passes every call through and udev lists nothing. `FREEK4A_SHIM_TRACE=1` prints
//! each usbfs request on stderr.

// The exported functions are C entry points: their pointer arguments carry the contracts of the
// libc and libudev functions they stand in for, checked where possible and noted at each use.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub mod node;
pub mod real;
pub mod udev;

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use freek4a::emulator::{EmulatedBackend, EmulatorSpec, Speed};
use freek4a::transport::{Backend, DeviceInfo};

/// The emulated world of this process.
pub struct Shim {
    /// The units.
    pub backend: EmulatedBackend,
    /// Every function of every unit, as listed once at start.
    pub devices: Vec<DeviceInfo>,
    /// Whether to trace usbfs requests.
    pub trace: bool,
}

static SHIM: OnceLock<Option<Shim>> = OnceLock::new();

fn parse_spec(text: &str) -> EmulatorSpec {
    let mut spec = EmulatorSpec::default();
    for item in text.split(',') {
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        match k.trim() {
            "units" => spec.units = v.trim().parse().unwrap_or(1),
            "seed" => spec.seed = v.trim().parse().unwrap_or(1),
            "speed" if v.trim() == "max" => spec.speed = Speed::Max,
            _ => {}
        }
    }
    spec
}

/// The shim, when `FREEK4A_SHIM_EMULATE` is set.
pub fn shim() -> Option<&'static Shim> {
    SHIM.get_or_init(|| {
        let text = std::env::var("FREEK4A_SHIM_EMULATE").ok()?;
        // libusb's IN lengths reach the kernel as they are: the kernel's view, not nusb's.
        let backend = EmulatedBackend::new(parse_spec(&text)).usbfs_view();
        let devices = backend.list().ok()?;
        Some(Shim {
            backend,
            devices,
            trace: std::env::var_os("FREEK4A_SHIM_TRACE").is_some(),
        })
    })
    .as_ref()
}

impl Shim {
    /// The emulated function whose usbfs node is `/dev/bus/usb/{bus}/{address}`.
    pub fn device_at(&self, bus: u8, address: u8) -> Option<&DeviceInfo> {
        self.devices
            .iter()
            .find(|d| d.bus == bus && d.address == address)
    }

    /// The emulated function whose sysfs name is `name` (`{bus}-{port}`).
    pub fn device_named(&self, name: &str) -> Option<&DeviceInfo> {
        self.devices.iter().find(|d| sysname(d) == name)
    }
}

/// sysfs name of an emulated function: bus, dash, port (its parent is then a root hub).
pub fn sysname(d: &DeviceInfo) -> String {
    format!("{}-{}", d.bus, d.port_path.last().copied().unwrap_or(1))
}

/// usbfs node of an emulated function.
pub fn devnode(d: &DeviceInfo) -> String {
    format!("/dev/bus/usb/{:03}/{:03}", d.bus, d.address)
}

thread_local! {
    /// Set while this library runs its own code, so libc calls made by it pass straight through.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` marked as inside the shim; `None` when already inside (the caller passes through).
fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    let entered = INSIDE
        .try_with(|c| {
            if c.get() {
                false
            } else {
                c.set(true);
                true
            }
        })
        .unwrap_or(false);
    if !entered {
        return None;
    }
    let out = f();
    let _ = INSIDE.try_with(|c| c.set(false));
    Some(out)
}

/// File descriptors below 4096 that are emulated device nodes (a lock-free first test for the
/// hot `read`/`close`/`poll` paths of the whole process).
static NODE_FDS: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];

pub(crate) fn mark_node_fd(fd: c_int, on: bool) {
    if !(0..4096).contains(&fd) {
        return;
    }
    let bit = 1u64 << (fd % 64);
    let w = &NODE_FDS[fd as usize / 64];
    if on {
        w.fetch_or(bit, Ordering::SeqCst);
    } else {
        w.fetch_and(!bit, Ordering::SeqCst);
    }
}

pub(crate) fn is_node_fd(fd: c_int) -> bool {
    (0..4096).contains(&fd)
        && NODE_FDS[fd as usize / 64].load(Ordering::SeqCst) & (1u64 << (fd % 64)) != 0
}

pub(crate) fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns the calling thread's errno slot, valid for the thread.
    unsafe { *libc::__errno_location() = e };
}

/// Opens `path` if it is one of ours: `Some(fd or -1)`, `None` to pass through.
fn open_emulated(path: *const c_char, flags: c_int) -> Option<c_int> {
    if path.is_null() {
        return None;
    }
    // SAFETY: open(2) callers pass a NUL-terminated string; checked for null above.
    let p = unsafe { CStr::from_ptr(path) }.to_bytes();
    if !p.starts_with(b"/dev/bus/usb/") && !p.starts_with(b"/sys/bus/usb/devices/") {
        return None;
    }
    let shim = shim()?;
    let p = std::str::from_utf8(p).ok()?;
    guarded(|| {
        let r = if let Some(rest) = p.strip_prefix("/dev/bus/usb/") {
            node::open_node(shim, rest, flags)
        } else {
            node::open_sysfs_attr(shim, &p["/sys/bus/usb/devices/".len()..])
        };
        match r {
            Ok(fd) => fd,
            Err(e) => {
                set_errno(e);
                -1
            }
        }
    })
}

/// `open(2)`.
#[no_mangle]
pub extern "C" fn open(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    if let Some(r) = open_emulated(path, flags) {
        return r;
    }
    // SAFETY: forwarding the caller's own arguments to the next definition of open.
    unsafe { (real::open())(path, flags, mode) }
}

/// `open64(2)`.
#[no_mangle]
pub extern "C" fn open64(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    if let Some(r) = open_emulated(path, flags) {
        return r;
    }
    // SAFETY: forwarding the caller's own arguments to the next definition of open64.
    unsafe { (real::open64())(path, flags, mode) }
}

/// glibc's fortified `open` (what a `_FORTIFY_SOURCE` build of libusb calls).
#[no_mangle]
pub extern "C" fn __open_2(path: *const c_char, flags: c_int) -> c_int {
    if let Some(r) = open_emulated(path, flags) {
        return r;
    }
    // SAFETY: forwarding the caller's own arguments to the next definition of __open_2.
    unsafe { (real::open_2())(path, flags) }
}

/// glibc's fortified `open64`.
#[no_mangle]
pub extern "C" fn __open64_2(path: *const c_char, flags: c_int) -> c_int {
    if let Some(r) = open_emulated(path, flags) {
        return r;
    }
    // SAFETY: forwarding the caller's own arguments to the next definition of __open64_2.
    unsafe { (real::open64_2())(path, flags) }
}

/// `openat(2)` (absolute paths only are ours).
#[no_mangle]
pub extern "C" fn openat(dirfd: c_int, path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    if let Some(r) = open_emulated(path, flags) {
        return r;
    }
    // SAFETY: forwarding the caller's own arguments to the next definition of openat.
    unsafe { (real::openat())(dirfd, path, flags, mode) }
}

/// `openat64(2)`.
#[no_mangle]
pub extern "C" fn openat64(dirfd: c_int, path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    if let Some(r) = open_emulated(path, flags) {
        return r;
    }
    // SAFETY: forwarding the caller's own arguments to the next definition of openat64.
    unsafe { (real::openat64())(dirfd, path, flags, mode) }
}

/// `close(2)`.
#[no_mangle]
pub extern "C" fn close(fd: c_int) -> c_int {
    if is_node_fd(fd) {
        if let Some(r) = guarded(|| node::close_node(fd)) {
            return r;
        }
    }
    // SAFETY: forwarding the caller's own argument to the next definition of close.
    unsafe { (real::close())(fd) }
}

/// `read(2)`.
#[no_mangle]
pub extern "C" fn read(fd: c_int, buf: *mut c_void, count: usize) -> isize {
    if is_node_fd(fd) {
        if let Some(r) = guarded(|| node::read_node(fd, buf, count)) {
            return r;
        }
    }
    // SAFETY: forwarding the caller's own arguments to the next definition of read.
    unsafe { (real::read())(fd, buf, count) }
}

/// `ioctl(2)`. Every request libusb sends takes one pointer or integer argument, which the
/// x86-64 calling convention passes in the same register whether or not the callee is variadic.
#[no_mangle]
pub extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    if is_node_fd(fd) {
        if let Some(r) = guarded(|| node::ioctl_node(fd, request, arg)) {
            return r;
        }
    }
    // SAFETY: forwarding the caller's own arguments to the next definition of ioctl.
    unsafe { (real::ioctl())(fd, request, arg) }
}

/// Rewrites a poll set: a device node is "writable" (URBs to reap) when its eventfd is readable.
fn poll_with(
    fds: *mut libc::pollfd,
    nfds: libc::nfds_t,
    call: impl FnOnce(*mut libc::pollfd) -> c_int,
) -> c_int {
    if fds.is_null() || nfds == 0 {
        return call(fds);
    }
    // SAFETY: poll(2) callers pass an array of nfds pollfd structures.
    let set = unsafe { std::slice::from_raw_parts_mut(fds, nfds as usize) };
    if !set.iter().any(|p| is_node_fd(p.fd)) {
        return call(fds);
    }
    let mut copy: Vec<libc::pollfd> = set
        .iter()
        .map(|p| {
            if is_node_fd(p.fd) {
                let mut events = 0;
                if p.events & libc::POLLOUT != 0 {
                    events |= libc::POLLIN;
                }
                libc::pollfd {
                    fd: p.fd,
                    events,
                    revents: 0,
                }
            } else {
                *p
            }
        })
        .collect();
    let r = call(copy.as_mut_ptr());
    for (orig, got) in set.iter_mut().zip(&copy) {
        orig.revents = if is_node_fd(orig.fd) {
            let mut ev = got.revents & !(libc::POLLIN);
            if got.revents & libc::POLLIN != 0 {
                ev |= libc::POLLOUT;
            }
            ev
        } else {
            got.revents
        };
    }
    r
}

/// `poll(2)`.
#[no_mangle]
pub extern "C" fn poll(fds: *mut libc::pollfd, nfds: libc::nfds_t, timeout: c_int) -> c_int {
    // SAFETY: forwarding the (possibly rewritten) poll set, which holds nfds entries.
    poll_with(fds, nfds, |f| unsafe { (real::poll())(f, nfds, timeout) })
}

/// `ppoll(2)`.
#[no_mangle]
pub extern "C" fn ppoll(
    fds: *mut libc::pollfd,
    nfds: libc::nfds_t,
    timeout: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    // SAFETY: forwarding the (possibly rewritten) poll set, which holds nfds entries.
    poll_with(fds, nfds, |f| unsafe {
        (real::ppoll())(f, nfds, timeout, sigmask)
    })
}
