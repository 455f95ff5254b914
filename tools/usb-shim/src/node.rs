//! usbfs device nodes backed by emulated functions.
//!
//! Each open node is an eventfd (a real descriptor, so `poll`, `fcntl` and `close` work). The
//! eventfd counts as readable exactly when URBs wait to be reaped; [`crate::poll`] presents that
//! as `POLLOUT`, the way usbfs does. Bulk and isochronous URBs go to one worker thread per
//! endpoint, which owns the emulator's queue for it; control URBs complete at submit.
//! Completions are copied into the caller's URB at reap, as the kernel does.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::{c_int, c_ulong, c_void};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use freek4a::transport::usbfs_iso::{CtrlTransfer, IsoPacketDesc, SetInterface, Urb};
use freek4a::transport::{
    Backend, Completion, ControlSetup, DeviceInfo, EndpointQueue, IsoInQueue, TransferError,
    UsbDevice, UsbInterface, PRODUCT_ID_DEPTH,
};

use crate::{mark_node_fd, real, Shim};

// usbfs request numbers on x86-64 (`_IOC(dir, 'U', nr, size)`).
const USBDEVFS_CONTROL: c_ulong = 0xC018_5500;
const USBDEVFS_SETINTERFACE: c_ulong = 0x8008_5504;
const USBDEVFS_SETCONFIGURATION: c_ulong = 0x8004_5505;
const USBDEVFS_GETDRIVER: c_ulong = 0x4104_5508;
const USBDEVFS_SUBMITURB: c_ulong = 0x8038_550A;
const USBDEVFS_DISCARDURB: c_ulong = 0x0000_550B;
const USBDEVFS_REAPURB: c_ulong = 0x4008_550C;
const USBDEVFS_REAPURBNDELAY: c_ulong = 0x4008_550D;
const USBDEVFS_CLAIMINTERFACE: c_ulong = 0x8004_550F;
const USBDEVFS_RELEASEINTERFACE: c_ulong = 0x8004_5510;
const USBDEVFS_CONNECTINFO: c_ulong = 0x4008_5511;
const USBDEVFS_IOCTL: c_ulong = 0xC010_5512;
const USBDEVFS_RESET: c_ulong = 0x0000_5514;
const USBDEVFS_CLEAR_HALT: c_ulong = 0x8004_5515;
const USBDEVFS_RESETEP: c_ulong = 0x8004_5503;
const USBDEVFS_GET_CAPABILITIES: c_ulong = 0x8004_551A;
const USBDEVFS_DISCONNECT_CLAIM: c_ulong = 0x8108_551B;
const USBDEVFS_GET_SPEED: c_ulong = 0x0000_551F;

const URB_TYPE_ISO: u8 = 0;
const URB_TYPE_INTERRUPT: u8 = 1;
const URB_TYPE_CONTROL: u8 = 2;
const URB_TYPE_BULK: u8 = 3;

/// ZERO_PACKET | NO_PACKET_SIZE_LIM | REAP_AFTER_DISCONNECT: libusb then sends each bulk
/// transfer as one URB.
const CAPABILITIES: u32 = 0x01 | 0x04 | 0x10;

/// A finished URB waiting for `REAPURBNDELAY`.
struct Reapable {
    urb: usize,
    status: i32,
    /// IN data (bulk/control: from offset 0; iso: per packet).
    data: Vec<u8>,
    actual: usize,
    /// Isochronous packets: (offset in `data`, bytes, status).
    packets: Option<Vec<(usize, usize, i32)>>,
    /// Where IN data lands in the URB buffer (8 for control: after the setup packet).
    data_offset: usize,
}

/// Work handed to an endpoint worker.
#[derive(Default)]
struct Inbox {
    new: VecDeque<(usize, Vec<u8>, usize)>,
    discard: HashSet<usize>,
    stop: bool,
}

struct Worker {
    inbox: Mutex<Inbox>,
    wake: Condvar,
    /// Every URB submitted and not yet completed (for `DISCARDURB`'s answer).
    live: Mutex<HashSet<usize>>,
    iso: bool,
}

/// An open device node.
pub struct Node {
    fd: c_int,
    info: DeviceInfo,
    device: Box<dyn UsbDevice>,
    descriptors: Vec<u8>,
    read_pos: Mutex<usize>,
    interfaces: Mutex<HashMap<u8, Arc<dyn UsbInterface>>>,
    workers: Mutex<HashMap<u8, Arc<Worker>>>,
    reap: Mutex<VecDeque<Reapable>>,
    trace: bool,
}

fn nodes() -> &'static Mutex<HashMap<c_int, Arc<Node>>> {
    static NODES: OnceLock<Mutex<HashMap<c_int, Arc<Node>>>> = OnceLock::new();
    NODES.get_or_init(Default::default)
}

fn node(fd: c_int) -> Option<Arc<Node>> {
    nodes()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&fd)
        .cloned()
}

fn errno_of(e: &freek4a::transport::Error) -> c_int {
    use freek4a::transport::ErrorKind::*;
    match e.kind {
        Disconnected => libc::ENODEV,
        Busy => libc::EBUSY,
        PermissionDenied => libc::EACCES,
        NotFound => libc::ENOENT,
        NoMemory => libc::ENOMEM,
        Unsupported => libc::ENOSYS,
        _ => libc::EIO,
    }
}

fn urb_status(s: Result<(), TransferError>) -> i32 {
    match s {
        Ok(()) => 0,
        Err(TransferError::Cancelled) => -libc::ENOENT,
        Err(TransferError::Stall) => -libc::EPIPE,
        Err(TransferError::Disconnected) => -libc::ENODEV,
        Err(TransferError::Overflow) => -libc::EOVERFLOW,
        Err(_) => -libc::EPROTO,
    }
}

/// Opens `/dev/bus/usb/<rest>`: an eventfd standing for the emulated function.
pub fn open_node(shim: &Shim, rest: &str, _flags: c_int) -> Result<c_int, c_int> {
    let (bus, addr) = rest.split_once('/').ok_or(libc::ENOENT)?;
    let bus: u8 = bus.parse().map_err(|_| libc::ENOENT)?;
    let addr: u8 = addr.parse().map_err(|_| libc::ENOENT)?;
    let info = shim.device_at(bus, addr).ok_or(libc::ENOENT)?.clone();
    let device = shim.backend.open(&info).map_err(|e| errno_of(&e))?;
    let t = Duration::from_secs(1);
    let mut descriptors = device
        .get_descriptor(1, 0, 0, t)
        .map_err(|e| errno_of(&e))?;
    descriptors.extend(
        device
            .get_descriptor(2, 0, 0, t)
            .map_err(|e| errno_of(&e))?,
    );
    // SAFETY: eventfd has no memory preconditions.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(libc::EMFILE);
    }
    let node = Arc::new(Node {
        fd,
        info,
        device,
        descriptors,
        read_pos: Mutex::new(0),
        interfaces: Mutex::new(HashMap::new()),
        workers: Mutex::new(HashMap::new()),
        reap: Mutex::new(VecDeque::new()),
        trace: shim.trace,
    });
    if node.trace {
        eprintln!("shim: open /dev/bus/usb/{rest} as fd {fd} ({})", node.info);
    }
    nodes()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(fd, node);
    mark_node_fd(fd, true);
    Ok(fd)
}

/// Opens a sysfs attribute of an emulated function as a memfd holding its text.
pub fn open_sysfs_attr(shim: &Shim, rest: &str) -> Result<c_int, c_int> {
    let (name, attr) = rest.split_once('/').ok_or(libc::ENOENT)?;
    let d = shim.device_named(name).ok_or(libc::ENOENT)?;
    let content: Vec<u8> = match attr {
        "busnum" => format!("{}\n", d.bus).into_bytes(),
        "devnum" => format!("{}\n", d.address).into_bytes(),
        "speed" => b"5000\n".to_vec(),
        "bConfigurationValue" => b"1\n".to_vec(),
        "descriptors" => {
            let dev = shim.backend.open(d).map_err(|e| errno_of(&e))?;
            let t = Duration::from_secs(1);
            let mut v = dev.get_descriptor(1, 0, 0, t).map_err(|e| errno_of(&e))?;
            v.extend(dev.get_descriptor(2, 0, 0, t).map_err(|e| errno_of(&e))?);
            v
        }
        _ => return Err(libc::ENOENT),
    };
    // SAFETY: memfd_create with a static NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"freek4a-sysfs".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(libc::EMFILE);
    }
    // SAFETY: writing our own buffer into our own memfd, then rewinding it.
    unsafe {
        libc::write(fd, content.as_ptr().cast(), content.len());
        libc::lseek(fd, 0, libc::SEEK_SET);
    }
    Ok(fd)
}

/// Closes a node: stops its workers and releases its interfaces.
pub fn close_node(fd: c_int) -> c_int {
    let n = nodes()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&fd);
    mark_node_fd(fd, false);
    if let Some(n) = n {
        for w in n.workers.lock().unwrap_or_else(|e| e.into_inner()).values() {
            stop_worker(w);
        }
        n.workers.lock().unwrap_or_else(|e| e.into_inner()).clear();
        n.interfaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        if n.trace {
            eprintln!("shim: close fd {fd} ({})", n.info);
        }
    }
    // SAFETY: the eventfd is ours to close.
    unsafe { (real::close())(fd) }
}

/// `read` on a node: the cached descriptors (device, then configuration), as usbfs gives them.
pub fn read_node(fd: c_int, buf: *mut c_void, count: usize) -> isize {
    let Some(n) = node(fd) else {
        crate::set_errno(libc::EBADF);
        return -1;
    };
    let mut pos = n.read_pos.lock().unwrap_or_else(|e| e.into_inner());
    let rest = n.descriptors.get(*pos..).unwrap_or_default();
    let k = rest.len().min(count);
    // SAFETY: read(2) callers provide `count` writable bytes at `buf`; k <= count.
    unsafe { std::ptr::copy_nonoverlapping(rest.as_ptr(), buf.cast::<u8>(), k) };
    *pos += k;
    k as isize
}

fn fail(e: c_int) -> c_int {
    crate::set_errno(e);
    -1
}

/// The interface that owns endpoint `ep` on this function.
fn interface_of(pid: u16, ep: u8) -> u8 {
    if pid == PRODUCT_ID_DEPTH {
        0
    } else if ep == 0x81 {
        1
    } else {
        2
    }
}

impl Node {
    fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a local to our eventfd.
        unsafe { libc::write(self.fd, (&one as *const u64).cast(), 8) };
    }

    fn push_reapable(&self, r: Reapable) {
        let mut q = self.reap.lock().unwrap_or_else(|e| e.into_inner());
        q.push_back(r);
        self.signal();
    }

    fn interface(&self, number: u8) -> Option<Arc<dyn UsbInterface>> {
        self.interfaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&number)
            .cloned()
    }

    fn claim(&self, number: u8) -> c_int {
        let mut ifs = self.interfaces.lock().unwrap_or_else(|e| e.into_inner());
        if ifs.contains_key(&number) {
            return 0;
        }
        match self.device.claim_interface(number, true) {
            Ok(i) => {
                ifs.insert(number, Arc::from(i));
                0
            }
            Err(e) => fail(errno_of(&e)),
        }
    }

    fn release(&self, number: u8) -> c_int {
        let ws: Vec<Arc<Worker>> = {
            let mut w = self.workers.lock().unwrap_or_else(|e| e.into_inner());
            let eps: Vec<u8> = w
                .keys()
                .copied()
                .filter(|&ep| interface_of(self.info.product_id, ep) == number)
                .collect();
            eps.iter().filter_map(|ep| w.remove(ep)).collect()
        };
        for w in &ws {
            stop_worker(w);
        }
        match self
            .interfaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&number)
        {
            Some(_) => 0,
            None => fail(libc::EINVAL),
        }
    }

    /// A control request on endpoint 0: `Ok(bytes)` (IN data, or empty for OUT) or a URB status.
    fn control(&self, setup: ControlSetup, length: u16, out: &[u8]) -> Result<Vec<u8>, i32> {
        let t = Duration::from_secs(2);
        let is_in = setup.request_type & 0x80 != 0;
        let recipient = setup.request_type & 0x1F;
        let kind = (setup.request_type >> 5) & 3;
        if kind == 0 && recipient == 0 {
            return match (setup.request, is_in) {
                (6, true) => {
                    let mut d = self
                        .device
                        .get_descriptor((setup.value >> 8) as u8, setup.value as u8, setup.index, t)
                        .map_err(|_| -libc::EPIPE)?;
                    d.truncate(length as usize);
                    Ok(d)
                }
                (8, true) => Ok(vec![1]),
                (0, true) => Ok(vec![0, 0]),
                (9, false) => Ok(Vec::new()),
                _ => Err(-libc::EPIPE),
            };
        }
        if kind == 0 && recipient == 2 {
            // CLEAR_FEATURE(ENDPOINT_HALT) and friends: nothing to do on an emulated pipe.
            return Ok(Vec::new());
        }
        if recipient == 1 || kind == 1 {
            let number = setup.index as u8;
            // libuvc sends a few requests before claiming; a transient claim stands in.
            let iface = match self.interface(number) {
                Some(i) => i,
                None => Arc::from(
                    self.device
                        .claim_interface(number, true)
                        .map_err(|_| -libc::EPIPE)?,
                ),
            };
            return if is_in {
                iface
                    .control_in(setup, length, t)
                    .map_err(|e| urb_status(Err(e)))
            } else {
                iface
                    .control_out(setup, out, t)
                    .map(|()| Vec::new())
                    .map_err(|e| urb_status(Err(e)))
            };
        }
        Err(-libc::EPIPE)
    }

    fn worker(
        self: &Arc<Self>,
        ep: u8,
        iso_geometry: Option<(usize, usize)>,
    ) -> Result<Arc<Worker>, c_int> {
        let mut ws = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = ws.get(&ep) {
            return Ok(w.clone());
        }
        let number = interface_of(self.info.product_id, ep);
        let iface = self.interface(number).ok_or(libc::EINVAL)?;
        let w = Arc::new(Worker {
            inbox: Mutex::new(Inbox::default()),
            wake: Condvar::new(),
            live: Mutex::new(HashSet::new()),
            iso: iso_geometry.is_some(),
        });
        let node = Arc::downgrade(self);
        let wk = w.clone();
        match iso_geometry {
            Some((packets, size)) => {
                let q = iface
                    .iso_in_endpoint(ep, packets, size)
                    .map_err(|e| errno_of(&e))?;
                std::thread::Builder::new()
                    .name(format!("shim-iso-{ep:02x}"))
                    .spawn(move || run_iso(node, wk, q))
                    .map_err(|_| libc::EAGAIN)?;
            }
            None => {
                let q = iface.endpoint(ep).map_err(|e| errno_of(&e))?;
                std::thread::Builder::new()
                    .name(format!("shim-ep-{ep:02x}"))
                    .spawn(move || run_bulk(node, wk, q))
                    .map_err(|_| libc::EAGAIN)?;
            }
        }
        ws.insert(ep, w.clone());
        Ok(w)
    }

    fn submit(self: &Arc<Self>, urb: *mut Urb) -> c_int {
        // SAFETY: usbfs callers pass a valid URB that stays alive until it is reaped.
        let u = unsafe { &*urb };
        let len = u.buffer_length.max(0) as usize;
        if self.trace {
            eprintln!(
                "shim: fd {} submit type {} ep {:02x} len {len}",
                self.fd, u.urb_type, u.endpoint
            );
        }
        match u.urb_type {
            URB_TYPE_CONTROL => {
                if len < 8 {
                    return fail(libc::EINVAL);
                }
                // SAFETY: a control URB's buffer holds the 8-byte setup packet and wLength more.
                let buf = unsafe { std::slice::from_raw_parts(u.buffer as *const u8, len) };
                let setup = ControlSetup {
                    request_type: buf[0],
                    request: buf[1],
                    value: u16::from_le_bytes([buf[2], buf[3]]),
                    index: u16::from_le_bytes([buf[4], buf[5]]),
                };
                let wlen = u16::from_le_bytes([buf[6], buf[7]]).min((len - 8) as u16);
                let out = if setup.request_type & 0x80 == 0 {
                    buf[8..8 + wlen as usize].to_vec()
                } else {
                    Vec::new()
                };
                let r = self.control(setup, wlen, &out);
                if self.trace {
                    eprintln!(
                        "shim:   control {setup:?} len {wlen} -> {:?}",
                        r.as_ref().map(|d| d.len())
                    );
                }
                let (status, data, actual) = match r {
                    Ok(d) if setup.request_type & 0x80 != 0 => {
                        let n = d.len();
                        (0, d, n)
                    }
                    Ok(_) => (0, Vec::new(), wlen as usize),
                    Err(s) => (s, Vec::new(), 0),
                };
                self.push_reapable(Reapable {
                    urb: urb as usize,
                    status,
                    data,
                    actual,
                    packets: None,
                    data_offset: 8,
                });
                0
            }
            URB_TYPE_BULK | URB_TYPE_INTERRUPT => {
                let w = match self.worker(u.endpoint, None) {
                    Ok(w) => w,
                    Err(e) => return fail(e),
                };
                let data = if u.endpoint & 0x80 == 0 {
                    // SAFETY: an OUT URB's buffer holds buffer_length bytes to send.
                    unsafe { std::slice::from_raw_parts(u.buffer as *const u8, len) }.to_vec()
                } else {
                    Vec::with_capacity(len)
                };
                if u.endpoint & 0x80 == 0 {
                    log_command(&self.info, u.endpoint, &data);
                }
                queue_work(&w, urb as usize, data, len);
                0
            }
            URB_TYPE_ISO => {
                let packets = u.number_of_packets.max(0) as usize;
                if packets == 0 || u.endpoint & 0x80 == 0 {
                    return fail(libc::EINVAL);
                }
                // SAFETY: an iso URB is followed by number_of_packets packet descriptors.
                let desc = unsafe { iso_descs(urb, packets) };
                let size = desc[0].length as usize;
                let w = match self.worker(u.endpoint, Some((packets, size))) {
                    Ok(w) => w,
                    Err(e) => return fail(e),
                };
                if !w.iso {
                    return fail(libc::EINVAL);
                }
                queue_work(&w, urb as usize, Vec::with_capacity(len), len);
                0
            }
            _ => fail(libc::EINVAL),
        }
    }

    fn discard(&self, urb: usize) -> c_int {
        if self.trace {
            eprintln!("shim: fd {} discard {urb:#x}", self.fd);
        }
        let ws: Vec<Arc<Worker>> = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for w in ws {
            if w.live
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&urb)
            {
                w.inbox
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .discard
                    .insert(urb);
                w.wake.notify_all();
                return 0;
            }
        }
        fail(libc::EINVAL)
    }

    fn reap(&self, out: *mut *mut c_void) -> c_int {
        let r = {
            let mut q = self.reap.lock().unwrap_or_else(|e| e.into_inner());
            let r = q.pop_front();
            if q.is_empty() {
                let mut v: u64 = 0;
                // SAFETY: reading 8 bytes from our non-blocking eventfd into a local.
                unsafe { (real::read())(self.fd, (&mut v as *mut u64).cast(), 8) };
            }
            r
        };
        let Some(r) = r else {
            return fail(libc::EAGAIN);
        };
        let urb = r.urb as *mut Urb;
        // SAFETY: the URB was submitted by the caller and is alive until this reap returns it;
        // its buffer holds buffer_length bytes and we write at most that many.
        unsafe {
            let u = &mut *urb;
            let cap = u.buffer_length.max(0) as usize;
            u.status = r.status;
            match &r.packets {
                Some(packets) => {
                    let desc = iso_descs_mut(urb, packets.len());
                    let mut at = 0usize;
                    let mut total = 0usize;
                    let mut errors = 0;
                    for (i, &(off, n, st)) in packets.iter().enumerate() {
                        let want = desc[i].length as usize;
                        let n = n.min(want).min(cap.saturating_sub(at));
                        if let Some(src) = r.data.get(off..off + n) {
                            std::ptr::copy_nonoverlapping(
                                src.as_ptr(),
                                (u.buffer as *mut u8).add(at),
                                n,
                            );
                        }
                        desc[i].actual_length = n as u32;
                        desc[i].status = st as u32;
                        if st != 0 {
                            errors += 1;
                        }
                        total += n;
                        at += want;
                    }
                    u.actual_length = total as i32;
                    u.error_count = errors;
                }
                None => {
                    let room = cap.saturating_sub(r.data_offset);
                    let n = r.data.len().min(room);
                    if n > 0 {
                        std::ptr::copy_nonoverlapping(
                            r.data.as_ptr(),
                            (u.buffer as *mut u8).add(r.data_offset),
                            n,
                        );
                    }
                    u.actual_length = r.actual.min(room) as i32;
                }
            }
            *out = urb.cast();
        }
        0
    }
}

/// Appends a command packet sent by the host to `$FREEK4A_SHIM_LOG` as one line:
/// `<product id> <endpoint> <command code> <command data in hex>`.
fn log_command(info: &DeviceInfo, ep: u8, data: &[u8]) {
    const PACKET_TYPE: u32 = 0x0602_2009;
    let Some(path) = std::env::var_os("FREEK4A_SHIM_LOG") else {
        return;
    };
    if data.len() < 20 || u32::from_le_bytes([data[0], data[1], data[2], data[3]]) != PACKET_TYPE {
        return;
    }
    let code = u32::from_le_bytes([data[12], data[13], data[14], data[15]]);
    let hex: String = data[20..].iter().map(|b| format!("{b:02x}")).collect();
    let line = format!("{:04x} {ep:02x} {code:08x} {hex}\n", info.product_id);
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// The packet descriptors after an isochronous URB.
///
/// # Safety
/// `urb` must be followed in memory by at least `n` `IsoPacketDesc`s.
unsafe fn iso_descs<'a>(urb: *mut Urb, n: usize) -> &'a [IsoPacketDesc] {
    // SAFETY: per the function's contract.
    unsafe { std::slice::from_raw_parts(urb.add(1).cast::<IsoPacketDesc>(), n) }
}

/// # Safety
/// As [`iso_descs`], and nothing else may access them meanwhile.
unsafe fn iso_descs_mut<'a>(urb: *mut Urb, n: usize) -> &'a mut [IsoPacketDesc] {
    // SAFETY: per the function's contract.
    unsafe { std::slice::from_raw_parts_mut(urb.add(1).cast::<IsoPacketDesc>(), n) }
}

fn queue_work(w: &Worker, urb: usize, data: Vec<u8>, len: usize) {
    w.live.lock().unwrap_or_else(|e| e.into_inner()).insert(urb);
    w.inbox
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .new
        .push_back((urb, data, len));
    w.wake.notify_all();
}

fn stop_worker(w: &Worker) {
    w.inbox.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
    w.wake.notify_all();
}

/// New URBs (address, buffer, length) and the addresses asked to be discarded.
type Work = (Vec<(usize, Vec<u8>, usize)>, HashSet<usize>);

/// Takes new work and discards; `None` when the worker must stop.
fn take_work(w: &Worker, idle: bool) -> Option<Work> {
    let mut inbox = w.inbox.lock().unwrap_or_else(|e| e.into_inner());
    while idle && inbox.new.is_empty() && !inbox.stop {
        inbox = w
            .wake
            .wait_timeout(inbox, Duration::from_millis(200))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    if inbox.stop {
        return None;
    }
    let new = inbox.new.drain(..).collect();
    let discard = inbox.discard.clone();
    Some((new, discard))
}

const POLL_STEP: Duration = Duration::from_millis(10);

/// How long a worker waits for the emulator to hand back transfers it was asked to cancel.
const CANCEL_WAIT: Duration = Duration::from_secs(2);

/// Cancels everything on `q` and collects the transfers back, in order (fewer if the emulator
/// does not return them within [`CANCEL_WAIT`]).
fn cancel_and_collect(q: &mut dyn EndpointQueue, count: usize) -> Vec<Completion> {
    q.cancel_all();
    let deadline = std::time::Instant::now() + CANCEL_WAIT;
    let mut back = Vec::with_capacity(count);
    while back.len() < count && std::time::Instant::now() < deadline {
        if let Some(c) = q.wait_next_complete(POLL_STEP) {
            back.push(c);
        }
    }
    back
}

fn bulk_reapable(urb: usize, is_in: bool, c: Completion) -> Reapable {
    Reapable {
        urb,
        status: urb_status(c.status),
        actual: c.actual_len,
        data: if is_in { c.data } else { Vec::new() },
        packets: None,
        data_offset: 0,
    }
}

/// Worker of one bulk endpoint. `DISCARDURB` unlinks one URB at once, as the kernel does:
/// the emulator's queue only cancels everything, so every transfer is cancelled, the discarded
/// ones are reported and the others are queued again unseen (a cancelled emulator transfer has
/// consumed no data, so the stream continues where it was).
fn run_bulk(node: std::sync::Weak<Node>, w: Arc<Worker>, mut q: Box<dyn EndpointQueue>) {
    let mut in_flight: VecDeque<(usize, usize)> = VecDeque::new();
    let is_in = q.address() & 0x80 != 0;
    loop {
        let Some((new, discard)) = take_work(&w, in_flight.is_empty()) else {
            // Released or closed: every URB still in flight comes back cancelled.
            let back = cancel_and_collect(q.as_mut(), in_flight.len());
            let Some(n) = node.upgrade() else { return };
            let mut back = back.into_iter();
            for (urb, _) in in_flight.drain(..) {
                finish(&w, urb);
                let r = match back.next() {
                    Some(c) => bulk_reapable(urb, is_in, c),
                    None => bulk_reapable(
                        urb,
                        is_in,
                        Completion {
                            data: Vec::new(),
                            actual_len: 0,
                            status: Err(TransferError::Cancelled),
                        },
                    ),
                };
                n.push_reapable(r);
            }
            return;
        };
        for (urb, data, len) in new {
            in_flight.push_back((urb, len));
            q.submit(data, len);
        }
        if in_flight.iter().any(|(u, _)| discard.contains(u)) {
            let back = cancel_and_collect(q.as_mut(), in_flight.len());
            let Some(n) = node.upgrade() else { return };
            let old: Vec<(usize, usize)> = in_flight.drain(..).collect();
            let returned = back.len();
            for ((urb, len), c) in old.iter().copied().zip(back) {
                if discard.contains(&urb) || c.status != Err(TransferError::Cancelled) {
                    finish(&w, urb);
                    n.push_reapable(bulk_reapable(urb, is_in, c));
                } else {
                    in_flight.push_back((urb, len));
                    q.submit(c.data, len);
                }
            }
            // Transfers the emulator did not hand back stay in flight, behind the others.
            in_flight.extend(old.into_iter().skip(returned));
            continue;
        }
        let Some(c) = q.wait_next_complete(POLL_STEP) else {
            continue;
        };
        let Some((urb, _)) = in_flight.pop_front() else {
            continue;
        };
        finish(&w, urb);
        let Some(n) = node.upgrade() else { return };
        if n.trace {
            eprintln!(
                "shim: fd {} ep {:02x} done {urb:#x} {:?}",
                n.fd,
                q.address(),
                c.status
            );
        }
        n.push_reapable(bulk_reapable(urb, is_in, c));
    }
}

/// Worker of the isochronous endpoint. libuvc discards all its URBs at once when it stops, so
/// the emulator's cancel-everything is enough here.
fn run_iso(node: std::sync::Weak<Node>, w: Arc<Worker>, mut q: Box<dyn IsoInQueue>) {
    let mut in_flight: VecDeque<usize> = VecDeque::new();
    let mut cancelled = false;
    loop {
        let Some((new, discard)) = take_work(&w, in_flight.is_empty()) else {
            if !in_flight.is_empty() {
                q.cancel_all();
            }
            let Some(n) = node.upgrade() else { return };
            for urb in in_flight.drain(..) {
                finish(&w, urb);
                n.push_reapable(Reapable {
                    urb,
                    status: -libc::ENOENT,
                    actual: 0,
                    data: Vec::new(),
                    packets: Some(Vec::new()),
                    data_offset: 0,
                });
            }
            return;
        };
        for (urb, data, _len) in new {
            in_flight.push_back(urb);
            q.submit(data);
        }
        if !cancelled && !in_flight.is_empty() && in_flight.iter().all(|u| discard.contains(u)) {
            q.cancel_all();
            cancelled = true;
        }
        let Some(c) = q.wait_next_complete(POLL_STEP) else {
            continue;
        };
        let Some(urb) = in_flight.pop_front() else {
            continue;
        };
        finish(&w, urb);
        if in_flight.is_empty() {
            cancelled = false;
        }
        let Some(n) = node.upgrade() else { return };
        let packets = c
            .packets
            .iter()
            .map(|p| (p.offset, p.actual_len, urb_status(p.status)))
            .collect();
        n.push_reapable(Reapable {
            urb,
            status: urb_status(c.status),
            actual: 0,
            data: c.data,
            packets: Some(packets),
            data_offset: 0,
        });
    }
}

fn finish(w: &Worker, urb: usize) {
    w.live
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&urb);
    w.inbox
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .discard
        .remove(&urb);
}

/// usbfs ioctls on a node.
pub fn ioctl_node(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    let Some(n) = node(fd) else {
        return fail(libc::EBADF);
    };
    if n.trace && request != USBDEVFS_REAPURBNDELAY && request != USBDEVFS_SUBMITURB {
        eprintln!("shim: fd {fd} ioctl {request:#x}");
    }
    // Each usbfs request number names the type its argument points to; libusb passes a valid
    // pointer of that type, which the SAFETY notes below rely on.
    match request {
        USBDEVFS_GET_CAPABILITIES => {
            // SAFETY: GET_CAPABILITIES takes a `__u32 *` to fill in.
            unsafe { *(arg as *mut u32) = CAPABILITIES };
            0
        }
        USBDEVFS_SETCONFIGURATION => {
            // SAFETY: SETCONFIGURATION takes an `int *`.
            let v = unsafe { *(arg as *const i32) };
            if v == 1 || v == -1 {
                0
            } else {
                fail(libc::EINVAL)
            }
        }
        USBDEVFS_CLAIMINTERFACE | USBDEVFS_DISCONNECT_CLAIM => {
            // SAFETY: CLAIMINTERFACE takes an `unsigned int *`; DISCONNECT_CLAIM a struct whose
            // first member is the same unsigned interface number.
            n.claim(unsafe { *(arg as *const u32) } as u8)
        }
        USBDEVFS_RELEASEINTERFACE => {
            // SAFETY: RELEASEINTERFACE takes an `unsigned int *`.
            n.release(unsafe { *(arg as *const u32) } as u8)
        }
        USBDEVFS_SETINTERFACE => {
            // SAFETY: SETINTERFACE takes a `struct usbdevfs_setinterface *`.
            let s = unsafe { &*(arg as *const SetInterface) };
            match n.interface(s.interface as u8) {
                Some(i) => match i.set_alt_setting(s.alt_setting as u8) {
                    Ok(()) => 0,
                    Err(e) => fail(errno_of(&e)),
                },
                None => fail(libc::EINVAL),
            }
        }
        // No kernel driver is bound to an emulated interface.
        USBDEVFS_GETDRIVER | USBDEVFS_IOCTL => fail(libc::ENODATA),
        USBDEVFS_CONNECTINFO => {
            let p = arg as *mut u32;
            // SAFETY: CONNECTINFO takes a `struct usbdevfs_connectinfo *` ({unsigned devnum;
            // unsigned char slow;}).
            unsafe {
                *p = n.info.address as u32;
                *(p.add(1) as *mut u8) = 0;
            }
            0
        }
        USBDEVFS_GET_SPEED => 5,
        USBDEVFS_RESET | USBDEVFS_CLEAR_HALT | USBDEVFS_RESETEP => 0,
        USBDEVFS_CONTROL => {
            // SAFETY: CONTROL takes a `struct usbdevfs_ctrltransfer *`.
            let c = unsafe { &*(arg as *const CtrlTransfer) };
            let setup = ControlSetup {
                request_type: c.request_type,
                request: c.request,
                value: c.value,
                index: c.index,
            };
            let out = if c.request_type & 0x80 == 0 && c.length > 0 {
                // SAFETY: for an OUT request `data` holds `length` bytes to send.
                unsafe { std::slice::from_raw_parts(c.data as *const u8, c.length as usize) }
                    .to_vec()
            } else {
                Vec::new()
            };
            match n.control(setup, c.length, &out) {
                Ok(d) if c.request_type & 0x80 != 0 => {
                    let k = d.len().min(c.length as usize);
                    // SAFETY: for an IN request `data` has room for `length` bytes; k <= length.
                    unsafe { std::ptr::copy_nonoverlapping(d.as_ptr(), c.data as *mut u8, k) };
                    k as c_int
                }
                Ok(_) => c.length as c_int,
                Err(s) => fail(-s),
            }
        }
        USBDEVFS_SUBMITURB => n.submit(arg as *mut Urb),
        USBDEVFS_DISCARDURB => n.discard(arg as usize),
        USBDEVFS_REAPURBNDELAY => n.reap(arg as *mut *mut c_void),
        USBDEVFS_REAPURB => loop {
            let r = n.reap(arg as *mut *mut c_void);
            if r == 0 {
                return 0;
            }
            std::thread::sleep(Duration::from_millis(1));
        },
        _ => fail(libc::ENOTTY),
    }
}
