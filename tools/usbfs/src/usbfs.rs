//! The kernel's usbfs, played for emulated functions: device nodes, their `read`, and the
//! usbfs ioctls with the validation, error numbers and memory accounting of
//! `drivers/usb/core/devio.c` (see `protocol/usbfs.md` for the rules the product relies on).

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use freek4a::emulator::EmulatedBackend;
use freek4a::protocol::descriptors::{
    descriptor_type, CLASS_VIDEO, EP_DEPTH_STREAM_IN, LANGID_EN_US, PID_COLOR, PID_DEPTH,
};
use freek4a::transport::{
    Backend, ControlSetup, DeviceInfo, ErrorKind, TransferError, UsbDevice, UsbInterface,
};

use crate::engine::{Finished, Queue, Sink, Worker};
use crate::remote;

// Request numbers (x86-64, `_IOC(dir, 'U', nr, size)`).
pub const USBDEVFS_CONTROL: u32 = 0xC018_5500;
pub const USBDEVFS_RESETEP: u32 = 0x8004_5503;
pub const USBDEVFS_SETINTERFACE: u32 = 0x8008_5504;
pub const USBDEVFS_SETCONFIGURATION: u32 = 0x8004_5505;
pub const USBDEVFS_GETDRIVER: u32 = 0x4104_5508;
pub const USBDEVFS_SUBMITURB: u32 = 0x8038_550A;
pub const USBDEVFS_DISCARDURB: u32 = 0x0000_550B;
pub const USBDEVFS_REAPURB: u32 = 0x4008_550C;
pub const USBDEVFS_REAPURBNDELAY: u32 = 0x4008_550D;
pub const USBDEVFS_CLAIMINTERFACE: u32 = 0x8004_550F;
pub const USBDEVFS_RELEASEINTERFACE: u32 = 0x8004_5510;
pub const USBDEVFS_CONNECTINFO: u32 = 0x4008_5511;
pub const USBDEVFS_IOCTL: u32 = 0xC010_5512;
pub const USBDEVFS_RESET: u32 = 0x0000_5514;
pub const USBDEVFS_CLEAR_HALT: u32 = 0x8004_5515;
pub const USBDEVFS_GET_CAPABILITIES: u32 = 0x8004_551A;
pub const USBDEVFS_DISCONNECT_CLAIM: u32 = 0x8108_551B;
pub const USBDEVFS_GET_SPEED: u32 = 0x0000_551F;
const USBDEVFS_DISCONNECT: u32 = 0x5516;
const USBDEVFS_CONNECT: u32 = 0x5517;

const URB_TYPE_ISO: u8 = 0;
const URB_TYPE_INTERRUPT: u8 = 1;
const URB_TYPE_CONTROL: u8 = 2;
const URB_TYPE_BULK: u8 = 3;

const URB_SHORT_NOT_OK: u32 = 0x01;
const URB_ISO_ASAP: u32 = 0x02;
const URB_BULK_CONTINUATION: u32 = 0x04;
const URB_NO_FSBR: u32 = 0x20;
const URB_ZERO_PACKET: u32 = 0x40;
const URB_NO_INTERRUPT: u32 = 0x80;

/// `UINT_MAX / 2 - 1000000`: the kernel's hard ceiling on one transfer.
const USBFS_XFER_MAX: u32 = u32::MAX / 2 - 1_000_000;
/// Largest isochronous packet the kernel accepts (96 × 1024, USB 3.1 Gen 2).
const ISO_PACKET_MAX: u32 = 98_304;
/// Most packets in one isochronous URB.
const ISO_PACKETS_MAX: u32 = 128;
/// `struct usbdevfs_urb` on x86-64; the packet descriptors follow it.
const URB_SIZE: usize = 56;
const ISO_DESC_SIZE: usize = 12;
/// The kernel's own allocation per URB (`struct async` + `struct urb`), charged to the
/// budget on top of the buffer. The exact size depends on the kernel build; ours is an
/// estimate for x86-64.
const URB_OVERHEAD: u64 = 384;
/// `sizeof(struct usb_ctrlrequest)`.
const SETUP_SIZE: u64 = 8;
/// `sizeof(struct usb_iso_packet_descriptor)` (kernel side, per packet).
const KERNEL_ISO_DESC: u64 = 16;
const PAGE_SIZE: u64 = 4096;
/// `USB_SG_SIZE`.
const SG_PIECE: u64 = 16384;
/// `sizeof(struct scatterlist)` on x86-64.
const SG_ENTRY: u64 = 32;
/// `USB_SPEED_SUPER`.
const SPEED_SUPER: i64 = 5;
/// What the kernel reports for an xHCI controller, without `USBDEVFS_CAP_MMAP` (this
/// supervisor cannot map transfer memory): ZERO_PACKET, NO_PACKET_SIZE_LIM,
/// BULK_SCATTER_GATHER, REAP_AFTER_DISCONNECT, DROP_PRIVILEGES, CONNINFO_EX, SUSPEND.
const CAPABILITIES: u32 = 0x01 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80 | 0x100;

/// An endpoint as the configuration descriptor declares it.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint {
    /// bEndpointAddress.
    pub address: u8,
    /// Interface number.
    pub interface: u8,
    /// Alternate setting it belongs to.
    pub alt: u8,
    /// Transfer type (0 control, 1 isochronous, 2 bulk, 3 interrupt).
    pub kind: u8,
}

/// An interface (one alternate setting).
#[derive(Clone, Copy, Debug)]
pub struct Interface {
    /// bInterfaceNumber.
    pub number: u8,
    /// bAlternateSetting.
    pub alt: u8,
    /// Class, subclass, protocol.
    pub class: [u8; 3],
    /// bNumEndpoints.
    pub endpoints: u8,
}

/// Walks a configuration descriptor.
pub fn parse_config(config: &[u8]) -> (Vec<Interface>, Vec<Endpoint>) {
    let mut ifs = Vec::new();
    let mut eps = Vec::new();
    let mut at = 0;
    let mut cur: Option<Interface> = None;
    while at + 2 <= config.len() {
        let len = config[at] as usize;
        if len < 2 || at + len > config.len() {
            break;
        }
        let d = &config[at..at + len];
        match d[1] {
            4 if len >= 9 => {
                let i = Interface {
                    number: d[2],
                    alt: d[3],
                    endpoints: d[4],
                    class: [d[5], d[6], d[7]],
                };
                ifs.push(i);
                cur = Some(i);
            }
            5 if len >= 7 => {
                if let Some(i) = cur {
                    eps.push(Endpoint {
                        address: d[2],
                        interface: i.number,
                        alt: i.alt,
                        kind: d[3] & 3,
                    });
                }
            }
            _ => {}
        }
        at += len;
    }
    (ifs, eps)
}

/// The usbfs memory budget (`usbcore.usbfs_memory_mb`), shared by every node as the kernel's
/// is shared by every process.
pub struct Memory {
    limit_bytes: u64,
    used: Mutex<u64>,
}

impl Memory {
    /// A budget of `mb` MiB (0: no limit, as in the kernel).
    pub fn new(mb: u64) -> Memory {
        Memory {
            limit_bytes: mb << 20,
            used: Mutex::new(0),
        }
    }
    fn take(&self, amount: u64) -> Result<(), i32> {
        let mut u = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if self.limit_bytes > 0 && *u + amount > self.limit_bytes {
            return Err(libc::ENOMEM);
        }
        *u += amount;
        Ok(())
    }
    fn give(&self, amount: u64) {
        let mut u = self.used.lock().unwrap_or_else(|e| e.into_inner());
        *u = u.saturating_sub(amount);
    }
}

/// Kernel-side state of one emulated function: what every open file of it shares.
pub struct Function {
    /// As listed.
    pub info: DeviceInfo,
    /// Unit index.
    pub unit: usize,
    /// Device descriptor.
    pub device_descriptor: Vec<u8>,
    /// Configuration descriptor.
    pub config: Vec<u8>,
    /// Interfaces (every alternate setting).
    pub interfaces: Vec<Interface>,
    /// Endpoints (every alternate setting).
    pub endpoints: Vec<Endpoint>,
    /// iManufacturer, iProduct, iSerialNumber strings.
    pub strings: [Option<String>; 3],
    state: Mutex<FunctionState>,
}

#[derive(Default)]
struct FunctionState {
    /// Current alternate setting per interface.
    alt: HashMap<u8, u8>,
    /// Kernel driver bound per interface ("usbfs" while a file claims it).
    driver: HashMap<u8, &'static str>,
}

impl Function {
    /// sysfs name: bus, dash, port chain.
    pub fn sysname(&self) -> String {
        let ports: Vec<String> = self.info.port_path.iter().map(|p| p.to_string()).collect();
        format!("{}-{}", self.info.bus, ports.join("."))
    }

    /// usbfs node path.
    pub fn devnode(&self) -> String {
        format!("/dev/bus/usb/{:03}/{:03}", self.info.bus, self.info.address)
    }

    /// The bytes `read` on the node returns: device descriptor, then the configuration.
    pub fn node_bytes(&self) -> Vec<u8> {
        let mut v = self.device_descriptor.clone();
        v.extend_from_slice(&self.config);
        v
    }

    fn st(&self) -> MutexGuard<'_, FunctionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `findintfep`: the interface owning endpoint `ep` in any alternate setting.
    fn find_interface_of(&self, ep: u8) -> Result<u8, i32> {
        if ep & !0x8F != 0 {
            return Err(libc::EINVAL);
        }
        self.endpoints
            .iter()
            .find(|e| e.address == ep)
            .map(|e| e.interface)
            .ok_or(libc::ENOENT)
    }

    /// The endpoint `ep` in the current alternate setting of its interface.
    fn active_endpoint(&self, ep: u8) -> Option<Endpoint> {
        if ep & 0x0F == 0 {
            return Some(Endpoint {
                address: 0,
                interface: 0,
                alt: 0,
                kind: 0,
            });
        }
        let st = self.st();
        self.endpoints
            .iter()
            .find(|e| e.address == ep && st.alt.get(&e.interface).copied().unwrap_or(0) == e.alt)
            .copied()
    }

    fn has_interface(&self, n: u8) -> bool {
        self.interfaces.iter().any(|i| i.number == n)
    }
}

/// A URB submitted and not yet reaped.
struct Submitted {
    ep: u8,
    interface: Option<u8>,
    is_in: bool,
    user_buffer: u64,
    /// Bytes requested.
    length: u32,
    /// Isochronous packet lengths.
    iso: Option<Vec<u32>>,
    mem: u64,
}

/// A completed URB waiting to be reaped.
struct Reapable {
    urb: u64,
    status: i32,
    user_buffer: u64,
    /// What lands in the program's buffer.
    data: Vec<u8>,
    actual: u32,
    error_count: i32,
    /// (actual_length, status) per isochronous packet.
    iso: Option<Vec<(u32, i32)>>,
    /// The packets' lengths as the program gave them.
    iso_lengths: Vec<u32>,
    mem: u64,
}

#[derive(Default)]
struct NodeState {
    claimed: HashMap<u8, Arc<dyn UsbInterface>>,
    workers: HashMap<u8, Arc<Worker>>,
    pending: HashMap<u64, Submitted>,
    completed: VecDeque<Reapable>,
    ready: bool,
    closed: bool,
}

/// One open file of a device node.
pub struct Node {
    /// The function behind it.
    pub func: Arc<Function>,
    /// The eventfd the program holds; writable exactly while URBs wait to be reaped.
    pub event: OwnedFd,
    writable: bool,
    device: Box<dyn UsbDevice>,
    pos: Mutex<u64>,
    st: Mutex<NodeState>,
    /// IN buffers handed back after reaping, for the next URBs (large depth buffers are
    /// expensive to fault in afresh at every frame).
    spare: Mutex<Vec<Vec<u8>>>,
    changed: Condvar,
    world: Weak<World>,
    me: Weak<Node>,
}

/// Everything the supervisor emulates.
pub struct World {
    /// The units.
    pub backend: EmulatedBackend,
    /// Every function of every unit.
    pub functions: Vec<Arc<Function>>,
    /// The usbfs budget.
    pub memory: Memory,
    /// `usbfs_memory_mb` as sysfs shows it.
    pub memory_mb: u64,
    /// Node permission bits.
    pub node_mode: u32,
    /// Node group.
    pub node_gid: u32,
    /// Whether the supervisor runs as root (then so does the program, with DAC override).
    pub root: bool,
    /// Trace requests on stderr.
    pub trace: bool,
    /// Unplug unit `unplug_unit` this long after the streams start.
    pub unplug_after: Option<Duration>,
    /// The unit `unplug_after` unplugs.
    pub unplug_unit: usize,
    unplug_armed: AtomicBool,
    gone: Mutex<Vec<bool>>,
    /// The program's process, for removing nodes of unplugged units from its namespace.
    pub child: Mutex<Option<u32>>,
    /// Where the command packets the program sends are logged, one a line.
    pub command_log: Mutex<Option<std::fs::File>>,
    nodes: Mutex<Vec<Weak<Node>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn errno_of(e: &freek4a::transport::Error) -> i32 {
    match e.kind {
        ErrorKind::Disconnected => libc::ENODEV,
        ErrorKind::Busy => libc::EBUSY,
        ErrorKind::PermissionDenied => libc::EACCES,
        ErrorKind::NotFound => libc::ENOENT,
        ErrorKind::NoMemory => libc::ENOMEM,
        _ => libc::EIO,
    }
}

/// URB status the kernel reports for a transfer result.
fn urb_status(s: Result<(), TransferError>) -> i32 {
    match s {
        Ok(()) => 0,
        Err(TransferError::Cancelled) => -libc::ENOENT,
        Err(TransferError::Stall) => -libc::EPIPE,
        Err(TransferError::Disconnected) => -libc::ESHUTDOWN,
        Err(TransferError::Overflow) => -libc::EOVERFLOW,
        Err(TransferError::Timeout) => -libc::ETIMEDOUT,
        Err(TransferError::NoMemory) => -libc::ENOMEM,
        Err(TransferError::Other(c)) if c > 0 => -c,
        Err(_) => -libc::EPROTO,
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// What an `open` of a path becomes.
pub enum Opened {
    /// A device node.
    Node(Arc<Node>),
    /// A file with these contents (sysfs attributes outside the tree).
    Contents(Vec<u8>),
    /// Not ours: the kernel opens it.
    Continue,
}

/// The sysfs attribute the product reads for the budget.
pub const USBFS_MEMORY_MB_PATH: &str = "/sys/module/usbcore/parameters/usbfs_memory_mb";

impl World {
    /// Builds the functions of `backend`.
    pub fn new(backend: EmulatedBackend, memory_mb: u64) -> anyhow::Result<World> {
        let mut functions = Vec::new();
        for info in backend.list()? {
            let dev = backend.open(&info)?;
            let t = Duration::from_secs(1);
            let device_descriptor = dev.get_descriptor(descriptor_type::DEVICE, 0, 0, t)?;
            let config = dev.get_descriptor(descriptor_type::CONFIGURATION, 0, 0, t)?;
            let (interfaces, endpoints) = parse_config(&config);
            let string = |i: u8| -> Option<String> {
                if i == 0 {
                    return None;
                }
                let d = dev
                    .get_descriptor(descriptor_type::STRING, i, LANGID_EN_US, t)
                    .ok()?;
                let units: Vec<u16> = d
                    .get(2..)?
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                String::from_utf16(&units).ok()
            };
            let strings = [
                string(device_descriptor[14]),
                string(device_descriptor[15]),
                string(device_descriptor[16]),
            ];
            let mut st = FunctionState::default();
            // uvcvideo binds to both UVC interfaces of the colour camera.
            if info.product_id == PID_COLOR {
                for i in &interfaces {
                    if i.class[0] == CLASS_VIDEO {
                        st.driver.insert(i.number, "uvcvideo");
                    }
                }
            }
            functions.push(Arc::new(Function {
                unit: (info.key >> 1) as usize,
                info,
                device_descriptor,
                config,
                interfaces,
                endpoints,
                strings,
                state: Mutex::new(st),
            }));
        }
        let units = backend.unit_count();
        Ok(World {
            backend,
            functions,
            memory: Memory::new(memory_mb),
            memory_mb,
            node_mode: 0o660,
            node_gid: 0,
            root: false,
            trace: false,
            unplug_after: None,
            unplug_unit: 0,
            unplug_armed: AtomicBool::new(false),
            gone: Mutex::new(vec![false; units]),
            child: Mutex::new(None),
            command_log: Mutex::new(None),
            nodes: Mutex::new(Vec::new()),
        })
    }

    /// Logs an OUT transfer if it is a command packet: `<product id> <endpoint> <command code>
    /// <command data in hex>`.
    fn log_command(&self, f: &Function, ep: u8, data: &[u8]) {
        const PACKET_TYPE: u32 = 0x0602_2009;
        if data.len() < 20 || u32_at(data, 0) != PACKET_TYPE {
            return;
        }
        let mut log = lock(&self.command_log);
        let Some(file) = log.as_mut() else { return };
        let hex: String = data[20..].iter().map(|b| format!("{b:02x}")).collect();
        use std::io::Write;
        let _ = writeln!(
            file,
            "{:04x} {ep:02x} {:08x} {hex}",
            f.info.product_id,
            u32_at(data, 12)
        );
    }

    fn unit_gone(&self, unit: usize) -> bool {
        lock(&self.gone).get(unit).copied().unwrap_or(true)
    }

    /// Marks unit `unit` unplugged: its nodes and sysfs entries disappear from the program's
    /// namespace and every open file answers ENODEV.
    pub fn unplugged(&self, unit: usize) {
        {
            let mut g = lock(&self.gone);
            if g.get(unit).copied().unwrap_or(true) {
                return;
            }
            g[unit] = true;
        }
        if self.trace {
            eprintln!("usbfs: unit {unit} unplugged");
        }
        let child = *lock(&self.child);
        if let Some(pid) = child {
            for f in self.functions.iter().filter(|f| f.unit == unit) {
                let root = format!("/proc/{pid}/root");
                let _ =
                    std::fs::remove_dir_all(format!("{root}/sys/bus/usb/devices/{}", f.sysname()));
                let _ = std::fs::remove_file(format!("{root}{}", f.devnode()));
            }
        }
        for n in lock(&self.nodes).iter().filter_map(Weak::upgrade) {
            if n.func.unit == unit {
                n.changed.notify_all();
            }
        }
    }

    fn arm_unplug(self: &Arc<Self>) {
        let Some(after) = self.unplug_after else {
            return;
        };
        if self.unplug_armed.swap(true, Ordering::SeqCst) {
            return;
        }
        let w = Arc::downgrade(self);
        std::thread::spawn(move || {
            std::thread::sleep(after);
            if let Some(w) = w.upgrade() {
                w.backend.disconnect(w.unplug_unit);
                w.unplugged(w.unplug_unit);
            }
        });
    }

    /// Whether a thread with these credentials may open the node for `want` (4 read, 2 write).
    fn may_open(&self, c: &remote::Creds, want: u32) -> bool {
        if self.root && c.fsuid == 0 {
            return true;
        }
        let bits = if c.fsuid == 0 {
            self.node_mode >> 6
        } else if c.fsgid == self.node_gid || c.groups.contains(&self.node_gid) {
            self.node_mode >> 3
        } else {
            self.node_mode
        } & 7;
        bits & want == want
    }

    /// `open(path, flags)` by thread `pid`.
    pub fn open(self: &Arc<Self>, pid: u32, path: &[u8], flags: i32) -> Result<Opened, i32> {
        if path == USBFS_MEMORY_MB_PATH.as_bytes() {
            return Ok(Opened::Contents(
                format!("{}\n", self.memory_mb).into_bytes(),
            ));
        }
        let Some(rest) = path.strip_prefix(b"/dev/bus/usb/") else {
            return Ok(Opened::Continue);
        };
        let rest = std::str::from_utf8(rest).map_err(|_| libc::ENOENT)?;
        let Some((bus, addr)) = rest.split_once('/') else {
            return Ok(Opened::Continue);
        };
        let (Ok(bus), Ok(addr)) = (bus.parse::<u8>(), addr.parse::<u8>()) else {
            return Err(libc::ENOENT);
        };
        let func = self
            .functions
            .iter()
            .find(|f| f.info.bus == bus && f.info.address == addr && !self.unit_gone(f.unit))
            .ok_or(libc::ENOENT)?
            .clone();
        let want = match flags & libc::O_ACCMODE {
            libc::O_RDONLY => 4,
            libc::O_WRONLY => 2,
            _ => 6,
        };
        let creds = remote::creds(pid).ok_or(libc::ESRCH)?;
        if !self.may_open(&creds, want) {
            return Err(libc::EACCES);
        }
        let device = self.backend.open(&func.info).map_err(|e| errno_of(&e))?;
        // SAFETY: eventfd takes no pointers.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(libc::EMFILE);
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        let event = unsafe { OwnedFd::from_raw_fd(fd) };
        let node = Arc::new_cyclic(|me| Node {
            func,
            event,
            writable: want & 2 != 0,
            device,
            pos: Mutex::new(0),
            st: Mutex::new(NodeState::default()),
            spare: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            world: Arc::downgrade(self),
            me: me.clone(),
        });
        node.set_ready(&mut lock(&node.st), false, true);
        let mut nodes = lock(&self.nodes);
        nodes.retain(|n| n.strong_count() > 0);
        nodes.push(Arc::downgrade(&node));
        Ok(Opened::Node(node))
    }
}

/// Result of an ioctl: a return value, or an errno.
pub type Answer = Result<i64, i32>;

impl Node {
    fn world(&self) -> Option<Arc<World>> {
        self.world.upgrade()
    }

    fn connected(&self) -> bool {
        self.world().is_some_and(|w| !w.unit_gone(self.func.unit))
    }

    fn lock(&self) -> MutexGuard<'_, NodeState> {
        lock(&self.st)
    }

    /// Makes the eventfd writable (URBs to reap) or not. The counter held at its maximum
    /// makes an eventfd not writable; an empty counter makes it writable.
    fn set_ready(&self, st: &mut NodeState, ready: bool, force: bool) {
        if st.ready == ready && !force {
            return;
        }
        st.ready = ready;
        let fd = self.event.as_raw_fd();
        let mut v: u64 = 0;
        // SAFETY: reading 8 bytes into a local from our own non-blocking eventfd (draining it).
        unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
        if !ready {
            let full: u64 = u64::MAX - 1;
            // SAFETY: writing 8 bytes from a local to our own eventfd.
            unsafe { libc::write(fd, (&full as *const u64).cast(), 8) };
        }
    }

    /// `read` at the file position.
    pub fn read(&self, count: usize) -> Result<Vec<u8>, i32> {
        if !self.connected() {
            return Err(libc::ENODEV);
        }
        let bytes = self.func.node_bytes();
        let mut pos = lock(&self.pos);
        let start = (*pos as usize).min(bytes.len());
        let end = (start + count).min(bytes.len());
        *pos += (end - start) as u64;
        Ok(bytes[start..end].to_vec())
    }

    /// `lseek`: SEEK_SET and SEEK_CUR only (`no_seek_end_llseek`).
    pub fn seek(&self, offset: i64, whence: i32) -> Answer {
        let mut pos = lock(&self.pos);
        let new = match whence {
            libc::SEEK_SET => offset,
            libc::SEEK_CUR => *pos as i64 + offset,
            _ => return Err(libc::EINVAL),
        };
        if new < 0 {
            return Err(libc::EINVAL);
        }
        *pos = new as u64;
        Ok(new)
    }

    /// The program closed the file: every URB is killed and forgotten, claims are released.
    pub fn close(&self) {
        let workers: Vec<Arc<Worker>> = {
            let mut st = self.lock();
            st.closed = true;
            st.workers.drain().map(|(_, w)| w).collect()
        };
        for w in &workers {
            w.stop();
        }
        self.wait_until(Duration::from_secs(2), |st| st.pending.is_empty());
        let mut st = self.lock();
        let world = self.world();
        for r in st.completed.drain(..) {
            if let Some(w) = &world {
                w.memory.give(r.mem);
            }
        }
        for (_, s) in st.pending.drain() {
            if let Some(w) = &world {
                w.memory.give(s.mem);
            }
        }
        let claimed: Vec<u8> = st.claimed.keys().copied().collect();
        st.claimed.clear();
        drop(st);
        let mut fs = self.func.st();
        for n in claimed {
            if fs.driver.get(&n) == Some(&"usbfs") {
                fs.driver.remove(&n);
            }
        }
    }

    fn wait_until(&self, limit: Duration, done: impl Fn(&NodeState) -> bool) {
        let deadline = Instant::now() + limit;
        let mut st = self.lock();
        while !done(&st) {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// One ioctl by thread `pid`.
    pub fn ioctl(&self, pid: u32, request: u32, arg: u64) -> Answer {
        if !self.writable {
            return Err(libc::EPERM);
        }
        match request {
            USBDEVFS_REAPURBNDELAY => return self.reap(pid, arg, false),
            USBDEVFS_REAPURB => return self.reap(pid, arg, true),
            _ => {}
        }
        if !self.connected() {
            return Err(libc::ENODEV);
        }
        let read_u32 = |at: u64| -> Result<u32, i32> { Ok(u32_at(&remote::read(pid, at, 4)?, 0)) };
        match request {
            USBDEVFS_SUBMITURB => self.submit(pid, arg),
            USBDEVFS_DISCARDURB => self.discard(arg),
            USBDEVFS_CLAIMINTERFACE => self.claim(read_u32(arg)?).map(|()| 0),
            USBDEVFS_RELEASEINTERFACE => self.release(read_u32(arg)?).map(|()| 0),
            USBDEVFS_DISCONNECT_CLAIM => {
                // struct usbdevfs_disconnect_claim { unsigned interface; unsigned flags;
                // char driver[256]; }
                let b = remote::read(pid, arg, 264)?;
                let (n, flags) = (u32_at(&b, 0), u32_at(&b, 4));
                let name_end = b[8..].iter().position(|&c| c == 0).unwrap_or(256);
                let name = &b[8..8 + name_end];
                self.disconnect_claim(n, flags, name).map(|()| 0)
            }
            USBDEVFS_SETINTERFACE => {
                let b = remote::read(pid, arg, 8)?;
                self.set_interface(u32_at(&b, 0), u32_at(&b, 4)).map(|()| 0)
            }
            USBDEVFS_CONTROL => self.control_ioctl(pid, arg),
            USBDEVFS_CLEAR_HALT | USBDEVFS_RESETEP => {
                let ep = read_u32(arg)?;
                let n = self.func.find_interface_of(ep as u8)?;
                if ep > 0xFF {
                    return Err(libc::EINVAL);
                }
                self.check_interface(n as u32)?;
                // The emulator's endpoints have no halt state to clear.
                Ok(0)
            }
            USBDEVFS_GET_SPEED => Ok(SPEED_SUPER),
            USBDEVFS_GET_CAPABILITIES => {
                remote::write(pid, arg, &CAPABILITIES.to_le_bytes())?;
                Ok(0)
            }
            USBDEVFS_CONNECTINFO => {
                let mut b = [0u8; 8];
                b[..4].copy_from_slice(&(self.func.info.address as u32).to_le_bytes());
                remote::write(pid, arg, &b)?;
                Ok(0)
            }
            USBDEVFS_GETDRIVER => {
                let n = read_u32(arg)?;
                let fs = self.func.st();
                if !self.func.has_interface(n as u8) || n > 255 {
                    return Err(libc::ENODATA);
                }
                let name = fs.driver.get(&(n as u8)).ok_or(libc::ENODATA)?;
                let mut b = vec![0u8; 256];
                b[..name.len()].copy_from_slice(name.as_bytes());
                drop(fs);
                remote::write(pid, arg + 4, &b)?;
                Ok(0)
            }
            USBDEVFS_IOCTL => {
                let b = remote::read(pid, arg, 16)?;
                let (ifno, code) = (u32_at(&b, 0), u32_at(&b, 4));
                self.driver_ioctl(ifno, code)
            }
            USBDEVFS_SETCONFIGURATION => {
                let v = read_u32(arg)? as i32;
                if v == 1 || v == -1 {
                    Ok(0)
                } else {
                    Err(libc::EINVAL)
                }
            }
            USBDEVFS_RESET => Ok(0),
            _ => Err(libc::ENOTTY),
        }
    }

    /// `claimintf`.
    fn claim(&self, n: u32) -> Result<(), i32> {
        if n >= 64 {
            return Err(libc::EINVAL);
        }
        let n8 = n as u8;
        let mut st = self.lock();
        if st.claimed.contains_key(&n8) {
            return Ok(());
        }
        if !self.func.has_interface(n8) {
            return Err(libc::ENOENT);
        }
        let mut fs = self.func.st();
        if fs.driver.contains_key(&n8) {
            return Err(libc::EBUSY);
        }
        let iface = self
            .device
            .claim_interface(n8, false)
            .map_err(|e| errno_of(&e))?;
        fs.driver.insert(n8, "usbfs");
        st.claimed.insert(n8, Arc::from(iface));
        Ok(())
    }

    /// `checkintf`: an interface used without a claim is claimed on the spot.
    fn check_interface(&self, n: u32) -> Result<(), i32> {
        if n >= 64 {
            return Err(libc::EINVAL);
        }
        if self.lock().claimed.contains_key(&(n as u8)) {
            return Ok(());
        }
        self.claim(n)
    }

    /// Kills every URB of interface `n` (they complete as -ENOENT) and waits for them.
    fn kill_interface_urbs(&self, n: u8) {
        let workers: Vec<Arc<Worker>> = {
            let mut st = self.lock();
            let eps: Vec<u8> = self
                .func
                .endpoints
                .iter()
                .filter(|e| e.interface == n)
                .map(|e| e.address)
                .collect();
            eps.iter().filter_map(|ep| st.workers.remove(ep)).collect()
        };
        for w in &workers {
            w.stop();
        }
        self.wait_until(Duration::from_secs(2), |st| {
            !st.pending.values().any(|s| s.interface == Some(n))
        });
    }

    fn release(&self, n: u32) -> Result<(), i32> {
        if n >= 64 {
            return Err(libc::EINVAL);
        }
        let n8 = n as u8;
        if !self.func.has_interface(n8) {
            return Err(libc::ENOENT);
        }
        if !self.lock().claimed.contains_key(&n8) {
            return Err(libc::EINVAL);
        }
        self.kill_interface_urbs(n8);
        self.lock().claimed.remove(&n8);
        self.func.st().driver.remove(&n8);
        Ok(())
    }

    fn disconnect_claim(&self, n: u32, flags: u32, name: &[u8]) -> Result<(), i32> {
        const IF_DRIVER: u32 = 0x01;
        const EXCEPT_DRIVER: u32 = 0x02;
        if n > 255 || !self.func.has_interface(n as u8) {
            return Err(libc::EINVAL);
        }
        {
            let mut fs = self.func.st();
            if let Some(&d) = fs.driver.get(&(n as u8)) {
                let same = d.as_bytes() == name;
                if (flags & IF_DRIVER != 0 && !same) || (flags & EXCEPT_DRIVER != 0 && same) {
                    return Err(libc::EBUSY);
                }
                // A claim by this same file stays; any other driver is detached.
                if !(d == "usbfs" && self.lock().claimed.contains_key(&(n as u8))) {
                    if d == "usbfs" {
                        // Another open file holds it: the kernel releases it from usbfs.
                        return Err(libc::EBUSY);
                    }
                    fs.driver.remove(&(n as u8));
                }
            }
        }
        self.claim(n)
    }

    fn driver_ioctl(&self, ifno: u32, code: u32) -> Answer {
        if ifno > 255 || !self.func.has_interface(ifno as u8) {
            return Err(libc::EINVAL);
        }
        let n = ifno as u8;
        let mut fs = self.func.st();
        match code {
            USBDEVFS_DISCONNECT => match fs.driver.get(&n) {
                Some(&"usbfs") => {
                    drop(fs);
                    // Releasing a usbfs claim through this path is what the kernel does
                    // too; only this file's claim is known here.
                    Err(libc::EBUSY)
                }
                Some(_) => {
                    fs.driver.remove(&n);
                    Ok(0)
                }
                None => Err(libc::ENODATA),
            },
            USBDEVFS_CONNECT => {
                if fs.driver.contains_key(&n) {
                    return Err(libc::EBUSY);
                }
                let uvc = self
                    .func
                    .interfaces
                    .iter()
                    .any(|i| i.number == n && i.class[0] == CLASS_VIDEO);
                if uvc && self.func.info.product_id == PID_COLOR {
                    fs.driver.insert(n, "uvcvideo");
                    Ok(1)
                } else {
                    Ok(0)
                }
            }
            // Neither uvcvideo's ioctls nor usbfs's own are reachable this way here.
            _ => Err(libc::ENOTTY),
        }
    }

    fn set_interface(&self, n: u32, alt: u32) -> Result<(), i32> {
        self.check_interface(n)?;
        let n8 = n as u8;
        if !self
            .func
            .interfaces
            .iter()
            .any(|i| i.number == n8 && i.alt as u32 == alt)
        {
            return Err(libc::EINVAL);
        }
        self.kill_interface_urbs(n8);
        let iface = self.lock().claimed.get(&n8).cloned().ok_or(libc::EINVAL)?;
        iface.set_alt_setting(alt as u8).map_err(|e| errno_of(&e))?;
        self.func.st().alt.insert(n8, alt as u8);
        Ok(())
    }

    /// `check_ctrlrecip`.
    fn check_control_recipient(&self, request_type: u8, index: u16) -> Result<(), i32> {
        if request_type & 0x60 == 0x40 {
            return Ok(());
        }
        let index = (index & 0xFF) as u8;
        match request_type & 0x1F {
            2 => {
                if index & !0x80 == 0 {
                    return Ok(());
                }
                let n = self
                    .func
                    .find_interface_of(index)
                    .or_else(|_| self.func.find_interface_of(index ^ 0x80))?;
                self.check_interface(n as u32)
            }
            1 => {
                if !self.func.has_interface(index) {
                    return Err(libc::ENOENT);
                }
                self.check_interface(index as u32)
            }
            _ => Ok(()),
        }
    }

    /// Runs a control request on the emulated function: `Ok(IN data)` or a URB status.
    fn run_control(&self, setup: ControlSetup, length: u16, out: &[u8]) -> Result<Vec<u8>, i32> {
        let t = Duration::from_secs(2);
        let is_in = setup.request_type & 0x80 != 0;
        let kind = (setup.request_type >> 5) & 3;
        let recipient = setup.request_type & 0x1F;
        let status = |e: TransferError| urb_status(Err(e));
        if kind == 0 {
            match (setup.request, is_in, recipient) {
                (6, true, 0) => {
                    let mut d = self
                        .device
                        .get_descriptor((setup.value >> 8) as u8, setup.value as u8, setup.index, t)
                        .map_err(|e| {
                            if e.kind == ErrorKind::Disconnected {
                                -libc::ESHUTDOWN
                            } else {
                                -libc::EPIPE
                            }
                        })?;
                    d.truncate(length as usize);
                    return Ok(d);
                }
                (8, true, 0) => return Ok(vec![1]),
                (0, true, _) => return Ok(vec![0, 0][..(length as usize).min(2)].to_vec()),
                // CLEAR_FEATURE / SET_FEATURE: no halt state in the emulator.
                (1, false, 2) | (3, false, 2) => return Ok(Vec::new()),
                _ if recipient == 0 => return Err(-libc::EPIPE),
                _ => {}
            }
        }
        let number = (setup.index & 0xFF) as u8;
        let iface = {
            let st = self.lock();
            match recipient {
                1 => st.claimed.get(&number).cloned(),
                _ => st.claimed.values().next().cloned(),
            }
        };
        let Some(iface) = iface else {
            return Err(-libc::EPIPE);
        };
        if is_in {
            iface.control_in(setup, length, t).map_err(status)
        } else {
            iface
                .control_out(setup, out, t)
                .map(|()| Vec::new())
                .map_err(status)
        }
    }

    /// `USBDEVFS_CONTROL` (`struct usbdevfs_ctrltransfer`: bRequestType, bRequest, wValue,
    /// wIndex, wLength, timeout, data).
    fn control_ioctl(&self, pid: u32, arg: u64) -> Answer {
        let b = remote::read(pid, arg, 24)?;
        let setup = ControlSetup {
            request_type: b[0],
            request: b[1],
            value: u16::from_le_bytes([b[2], b[3]]),
            index: u16::from_le_bytes([b[4], b[5]]),
        };
        let length = u16::from_le_bytes([b[6], b[7]]);
        let data = u64_at(&b, 16);
        self.check_control_recipient(setup.request_type, setup.index)?;
        if length as u64 > PAGE_SIZE {
            return Err(libc::EINVAL);
        }
        let world = self.world().ok_or(libc::ENODEV)?;
        let mem = PAGE_SIZE + URB_OVERHEAD + SETUP_SIZE;
        world.memory.take(mem)?;
        let is_in = setup.request_type & 0x80 != 0;
        let result = (|| {
            if is_in {
                let d = self.run_control(setup, length, &[]).map_err(|s| -s)?;
                if !d.is_empty() {
                    remote::write(pid, data, &d)?;
                }
                Ok(d.len() as i64)
            } else {
                let out = remote::read(pid, data, length as usize)?;
                self.run_control(setup, length, &out).map_err(|s| -s)?;
                Ok(length as i64)
            }
        })();
        world.memory.give(mem);
        result
    }

    fn submit(&self, pid: u32, arg: u64) -> Answer {
        let u = remote::read(pid, arg, URB_SIZE)?;
        let kind = u[0];
        let mut ep = u[1];
        let flags = u32_at(&u, 8);
        let mut buffer = u64_at(&u, 16);
        let mut length = u32_at(&u, 24);
        let packets = u32_at(&u, 36);
        let mut mask = URB_SHORT_NOT_OK
            | URB_BULK_CONTINUATION
            | URB_NO_FSBR
            | URB_ZERO_PACKET
            | URB_NO_INTERRUPT;
        if kind == URB_TYPE_ISO {
            mask |= URB_ISO_ASAP;
        }
        if flags & !mask != 0 {
            return Err(libc::EINVAL);
        }
        if length >= USBFS_XFER_MAX {
            return Err(libc::EINVAL);
        }
        if length > 0 && buffer == 0 {
            return Err(libc::EINVAL);
        }
        let mut interface = None;
        if !(kind == URB_TYPE_CONTROL && ep & 0x7F == 0) {
            let n = self.func.find_interface_of(ep)?;
            self.check_interface(n as u32)?;
            interface = Some(n);
        }
        let endpoint = self.func.active_endpoint(ep).ok_or(libc::ENOENT)?;
        let mut is_in = ep & 0x80 != 0;
        let mut extra = 0u64;
        let mut iso = None;
        let mut setup = None;
        match kind {
            URB_TYPE_CONTROL => {
                if endpoint.kind != 0 {
                    return Err(libc::EINVAL);
                }
                if length < 8 {
                    return Err(libc::EINVAL);
                }
                let s = remote::read(pid, buffer, 8)?;
                let w_length = u16::from_le_bytes([s[6], s[7]]);
                if length < w_length as u32 + 8 {
                    return Err(libc::EINVAL);
                }
                let cs = ControlSetup {
                    request_type: s[0],
                    request: s[1],
                    value: u16::from_le_bytes([s[2], s[3]]),
                    index: u16::from_le_bytes([s[4], s[5]]),
                };
                self.check_control_recipient(cs.request_type, cs.index)?;
                length = w_length as u32;
                buffer += 8;
                is_in = cs.request_type & 0x80 != 0 && length > 0;
                ep = if is_in { ep | 0x80 } else { ep & 0x7F };
                setup = Some(cs);
                extra = SETUP_SIZE;
            }
            URB_TYPE_BULK => match endpoint.kind {
                0 | 1 => return Err(libc::EINVAL),
                // A bulk URB on an interrupt endpoint is sent as an interrupt URB.
                3 => {}
                _ => {
                    // Large bulk buffers go to the controller as 16 KiB scatter-gather
                    // pieces (xHCI takes any number), each with a `struct scatterlist`.
                    let sgs = (length as u64).div_ceil(SG_PIECE);
                    if sgs > 1 {
                        extra = sgs * SG_ENTRY;
                    }
                }
            },
            URB_TYPE_INTERRUPT => {
                if endpoint.kind != 3 {
                    return Err(libc::EINVAL);
                }
            }
            URB_TYPE_ISO => {
                if !(1..=ISO_PACKETS_MAX).contains(&packets) {
                    return Err(libc::EINVAL);
                }
                if endpoint.kind != 1 {
                    return Err(libc::EINVAL);
                }
                let d = remote::read(pid, arg + URB_SIZE as u64, packets as usize * ISO_DESC_SIZE)?;
                let lens: Vec<u32> = d
                    .chunks_exact(ISO_DESC_SIZE)
                    .map(|c| u32_at(c, 0))
                    .collect();
                if lens.iter().any(|&l| l > ISO_PACKET_MAX) {
                    return Err(libc::EINVAL);
                }
                length = lens.iter().sum();
                extra = packets as u64 * KERNEL_ISO_DESC;
                iso = Some(lens);
            }
            _ => return Err(libc::EINVAL),
        }
        let world = self.world().ok_or(libc::ENODEV)?;
        let mem = extra + URB_OVERHEAD + length as u64;
        world.memory.take(mem)?;
        let out = if is_in {
            Vec::new()
        } else {
            match remote::read(pid, buffer, length as usize) {
                Ok(d) => d,
                Err(e) => {
                    world.memory.give(mem);
                    return Err(e);
                }
            }
        };
        let submitted = Submitted {
            ep,
            interface,
            is_in,
            user_buffer: if is_in { buffer } else { 0 },
            length,
            iso: iso.clone(),
            mem,
        };
        if world.trace {
            eprintln!(
                "usbfs: {} submit {arg:#x} type {kind} ep {ep:02x} len {length}",
                self.func.sysname()
            );
        }
        if let Some(cs) = setup {
            self.lock().pending.insert(arg, submitted);
            let r = self.run_control(cs, length as u16, &out);
            let f = match r {
                Ok(d) => Finished {
                    status: Ok(()),
                    actual: if is_in { d.len() } else { length as usize },
                    data: d,
                    packets: None,
                },
                Err(s) => Finished {
                    status: Err(status_error(s)),
                    data: Vec::new(),
                    actual: 0,
                    packets: None,
                },
            };
            self.finished(arg, f);
            return Ok(0);
        }
        let worker = match self.worker_for(endpoint, iso.as_ref()) {
            Ok(w) => w,
            Err(e) => {
                world.memory.give(mem);
                return Err(e);
            }
        };
        // The unplug timer starts with the cameras: the first depth or colour stream URB.
        if (ep == EP_DEPTH_STREAM_IN.address() && self.func.info.product_id == PID_DEPTH)
            || kind == URB_TYPE_ISO
        {
            world.arm_unplug();
        }
        if !is_in {
            world.log_command(&self.func, ep, &out);
        }
        self.lock().pending.insert(arg, submitted);
        let data = if is_in {
            self.buffer(length as usize)
        } else {
            out
        };
        worker.submit(arg, data, length as usize);
        Ok(0)
    }

    /// An empty buffer with room for `len` bytes, reused when one is spare.
    fn buffer(&self, len: usize) -> Vec<u8> {
        let mut spare = lock(&self.spare);
        match spare.iter().position(|b| b.capacity() >= len) {
            Some(i) => spare.swap_remove(i),
            None => Vec::with_capacity(len),
        }
    }

    fn worker_for(&self, ep: Endpoint, iso: Option<&Vec<u32>>) -> Result<Arc<Worker>, i32> {
        let mut st = self.lock();
        if let Some(w) = st.workers.get(&ep.address) {
            return Ok(w.clone());
        }
        let iface = st.claimed.get(&ep.interface).cloned().ok_or(libc::EINVAL)?;
        let queue = match iso {
            Some(lens) => Queue::Iso(
                iface
                    .iso_in_endpoint(
                        ep.address,
                        lens.len(),
                        lens.first().copied().unwrap_or(0) as usize,
                    )
                    .map_err(|e| errno_of(&e))?,
            ),
            None => Queue::Bulk(iface.endpoint(ep.address).map_err(|e| errno_of(&e))?),
        };
        let me: Weak<dyn Sink> = self.me.clone();
        let w = Worker::start(ep.address, queue, me).map_err(|_| libc::EAGAIN)?;
        st.workers.insert(ep.address, w.clone());
        Ok(w)
    }

    fn discard(&self, urb: u64) -> Answer {
        let w = {
            let st = self.lock();
            let s = st.pending.get(&urb).ok_or(libc::EINVAL)?;
            st.workers.get(&s.ep).cloned()
        };
        if let Some(w) = w {
            w.discard(urb);
        }
        // usb_kill_urb returns once the URB has completed.
        self.wait_until(Duration::from_secs(2), |st| !st.pending.contains_key(&urb));
        Ok(0)
    }

    fn reap(&self, pid: u32, arg: u64, block: bool) -> Answer {
        let r = loop {
            let mut st = self.lock();
            if let Some(r) = st.completed.pop_front() {
                let more = !st.completed.is_empty();
                self.set_ready(&mut st, more, false);
                break r;
            }
            if !self.connected() {
                return Err(libc::ENODEV);
            }
            if !block {
                return Err(libc::EAGAIN);
            }
            let _ = self
                .changed
                .wait_timeout(st, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner());
        };
        if let Some(w) = self.world() {
            w.memory.give(r.mem);
        }
        // Data first, then status, actual_length, error_count, the packets, and last the
        // URB's address, as processcompl does.
        let write = || -> Result<(), i32> {
            let status = r.status.to_le_bytes();
            let actual = r.actual.to_le_bytes();
            let errors = r.error_count.to_le_bytes();
            let mut packets = Vec::new();
            if let Some(p) = &r.iso {
                for (&(n, st), len) in p.iter().zip(&r.iso_lengths) {
                    packets.extend_from_slice(&len.to_le_bytes());
                    packets.extend_from_slice(&n.to_le_bytes());
                    packets.extend_from_slice(&st.to_le_bytes());
                }
            }
            let data: &[u8] = if r.user_buffer != 0 && r.actual > 0 {
                &r.data
            } else {
                &[]
            };
            // One system call, in processcompl's order: data, status, actual_length,
            // error_count, the packets (their lengths unchanged), the URB's address.
            let urb = r.urb.to_le_bytes();
            remote::write_many(
                pid,
                &[
                    (r.user_buffer, data),
                    (r.urb + 4, &status),
                    (r.urb + 28, &actual),
                    (r.urb + 40, &errors),
                    (r.urb + URB_SIZE as u64, &packets),
                    (arg, &urb),
                ],
            )
        };
        let result = write();
        let mut spent = r.data;
        if spent.capacity() >= 65536 {
            spent.clear();
            let mut spare = lock(&self.spare);
            if spare.len() < 16 {
                spare.push(spent);
            }
        }
        if let Some(w) = self.world() {
            if w.trace {
                eprintln!(
                    "usbfs: {} reap {:#x} status {} actual {}",
                    self.func.sysname(),
                    r.urb,
                    r.status,
                    r.actual
                );
            }
        }
        result.map(|()| 0)
    }
}

/// The transfer error a URB status stands for (for control requests answered at submit).
fn status_error(s: i32) -> TransferError {
    match -s {
        libc::EPIPE => TransferError::Stall,
        libc::ENOENT => TransferError::Cancelled,
        libc::ESHUTDOWN | libc::ENODEV => TransferError::Disconnected,
        libc::EOVERFLOW => TransferError::Overflow,
        libc::ETIMEDOUT => TransferError::Timeout,
        e => TransferError::Other(e),
    }
}

impl Sink for Node {
    fn finished(&self, urb: u64, f: Finished) {
        let world = self.world();
        if f.status == Err(TransferError::Disconnected) {
            if let Some(w) = &world {
                w.unplugged(self.func.unit);
            }
        }
        let mut st = self.lock();
        let Some(s) = st.pending.remove(&urb) else {
            return;
        };
        if st.closed {
            if let Some(w) = &world {
                w.memory.give(s.mem);
            }
            drop(st);
            self.changed.notify_all();
            return;
        }
        let status = urb_status(f.status);
        let r = match &s.iso {
            Some(lens) => {
                // Packet i lands at the sum of the lengths before it; gaps stay zero.
                let total: usize = lens.iter().map(|&l| l as usize).sum();
                let packets = f.packets.unwrap_or_default();
                // The emulator's buffer already has each packet at the program's offset when
                // the lengths agree (the usual case): then only the gaps need zeroing.
                let mut offset = 0usize;
                let in_place = packets.iter().zip(lens.iter()).all(|(p, &l)| {
                    let ok = p.offset == offset;
                    offset += l as usize;
                    ok
                });
                let (mut data, src) = if in_place {
                    let mut d = f.data;
                    d.resize(total, 0);
                    (d, Vec::new())
                } else {
                    (vec![0u8; total], f.data)
                };
                let mut out = Vec::with_capacity(lens.len());
                let mut at = 0usize;
                let mut errors = 0;
                for (i, &len) in lens.iter().enumerate() {
                    let (n, st) = match packets.get(i) {
                        Some(p) => {
                            let n = p.actual_len.min(len as usize);
                            if in_place {
                                data[at + n..at + len as usize].fill(0);
                            } else if let Some(piece) = src.get(p.offset..p.offset + n) {
                                data[at..at + n].copy_from_slice(piece);
                            }
                            (n, urb_status(p.status))
                        }
                        None => {
                            data[at..at + len as usize].fill(0);
                            (0, if status != 0 { status } else { -libc::EXDEV })
                        }
                    };
                    if st != 0 {
                        errors += 1;
                    }
                    out.push((n as u32, st));
                    at += len as usize;
                }
                let actual: u32 = out.iter().map(|p| p.0).sum();
                Reapable {
                    urb,
                    status,
                    user_buffer: s.user_buffer,
                    data,
                    actual,
                    error_count: errors,
                    iso: Some(out),
                    iso_lengths: lens.clone(),
                    mem: s.mem,
                }
            }
            None => {
                let mut f = f;
                let mut status = status;
                // More data than the buffer holds is babble: the host controller stops at
                // the buffer's end and the URB fails with EOVERFLOW.
                if s.is_in && f.data.len() > s.length as usize {
                    f.data.truncate(s.length as usize);
                    if status == 0 {
                        status = -libc::EOVERFLOW;
                    }
                }
                let actual = if s.is_in { f.data.len() } else { f.actual };
                Reapable {
                    urb,
                    status,
                    user_buffer: s.user_buffer,
                    data: if s.is_in { f.data } else { Vec::new() },
                    actual: actual as u32,
                    error_count: 0,
                    iso: None,
                    iso_lengths: Vec::new(),
                    mem: s.mem,
                }
            }
        };
        st.completed.push_back(r);
        self.set_ready(&mut st, true, false);
        drop(st);
        self.changed.notify_all();
    }
}
