//! Linux usbfs isochronous IN transfers, which nusb does not offer (nusb issue #47).
//!
//! The colour camera streams over an isochronous endpoint of its UVC VideoStreaming interface.
//! This module opens `/dev/bus/usb/BBB/DDD` a second time and claims that interface on its own
//! file descriptor. A second open file is required, not merely convenient: usbfs queues finished
//! URBs per open file, and nusb's event thread reaps every URB on its own descriptor, so URBs
//! submitted there would be taken by nusb. nusb keeps the other interfaces (VideoControl and the
//! colour MCU/IMU interface) on its descriptor.
//!
//! The interface is claimed with `USBDEVFS_DISCONNECT_CLAIM` (uvcvideo is detached atomically,
//! unless another usbfs user holds it), control requests on it use `USBDEVFS_CONTROL` (class
//! requests addressed to an interface must come from the descriptor that claimed it), streaming
//! uses `USBDEVFS_SUBMITURB` with type ISO and at most 128 packets per URB, completions are
//! collected with `USBDEVFS_REAPURBNDELAY` after `poll(POLLOUT)`, and `USBDEVFS_DISCARDURB`
//! cancels. Dropping the interface selects alternate setting 0 (freeing the bus bandwidth),
//! releases the interface and, when it detached a driver, asks the kernel to probe drivers again
//! (`USBDEVFS_CONNECT`), so uvcvideo comes back. uvcvideo binds the VideoControl interface and
//! claims the VideoStreaming ones from it, and only detaching VideoControl stops it; so claim
//! VideoControl (through nusb, with detach) before VideoStreaming, and drop them in reverse order.
//!
//! Soundness rests on one kernel property: usbfs writes into user memory (the URB status fields,
//! the packet descriptors and, for non-mmap buffers, the data) only inside the reap ioctl, at the
//! URB address we submitted. Each URB lives in a `Box` together with its data buffer and is freed
//! only after the kernel has handed it back through a reap; URBs that never come back are leaked
//! on purpose rather than freed.
//!
//! Untested without hardware: everything that talks to a device. The structure layouts and ioctl
//! numbers are checked against the kernel's values on x86-64, and the request validation and
//! completion decoding are unit-tested.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::ffi::c_void;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::ioctl::{opcode, IntegerSetter, Ioctl, IoctlOutput, Opcode, Setter, Updater};

use super::os_error::{self, EINVAL};
use super::{
    ControlSetup, EndpointQueue, Error, ErrorKind, IsoCompletion, IsoInQueue, IsoPacket,
    TransferError, UsbInterface,
};
use crate::protocol::descriptors::{ALT_SETTING_ZERO_BANDWIDTH, ENDPOINT_DIR_IN};

/// The kernel refuses isochronous URBs with more packet descriptors than this.
pub const MAX_ISO_PACKETS: usize = 128;

/// `USBDEVFS_URB_TYPE_ISO`.
pub const URB_TYPE_ISO: u8 = 0;
/// `USBDEVFS_URB_ISO_ASAP`: start at the next free frame instead of `start_frame`.
pub const URB_ISO_ASAP: u32 = 0x02;
/// `USBDEVFS_DISCONNECT_CLAIM_EXCEPT_DRIVER`: detach any driver except the one named.
pub const DISCONNECT_CLAIM_EXCEPT_DRIVER: u32 = 0x02;

/// `struct usbdevfs_ctrltransfer`.
#[repr(C)]
#[derive(Debug)]
pub struct CtrlTransfer {
    /// bmRequestType.
    pub request_type: u8,
    /// bRequest.
    pub request: u8,
    /// wValue.
    pub value: u16,
    /// wIndex.
    pub index: u16,
    /// wLength.
    pub length: u16,
    /// Timeout in milliseconds (0 waits forever).
    pub timeout_ms: u32,
    /// The data stage buffer.
    pub data: *mut c_void,
}

/// `struct usbdevfs_setinterface`.
#[repr(C)]
#[derive(Debug)]
pub struct SetInterface {
    /// Interface number.
    pub interface: u32,
    /// Alternate setting.
    pub alt_setting: u32,
}

/// `struct usbdevfs_iso_packet_desc`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IsoPacketDesc {
    /// Bytes requested.
    pub length: u32,
    /// Bytes received.
    pub actual_length: u32,
    /// Negative errno, or 0.
    pub status: u32,
}

/// `struct usbdevfs_urb`, without its trailing packet descriptors.
#[repr(C)]
#[derive(Debug)]
pub struct Urb {
    /// `USBDEVFS_URB_TYPE_*`.
    pub urb_type: u8,
    /// Endpoint address.
    pub endpoint: u8,
    /// Negative errno, or 0 (written at reap).
    pub status: i32,
    /// `USBDEVFS_URB_*` flags.
    pub flags: u32,
    /// The data buffer.
    pub buffer: *mut c_void,
    /// Its length.
    pub buffer_length: i32,
    /// Bytes transferred (written at reap).
    pub actual_length: i32,
    /// First frame (isochronous, without ISO_ASAP).
    pub start_frame: i32,
    /// Packet count (isochronous) or stream id (bulk streams).
    pub number_of_packets: i32,
    /// Packets that failed (written at reap).
    pub error_count: i32,
    /// Signal to raise on completion (0: none).
    pub signr: u32,
    /// Ours to use.
    pub usercontext: *mut c_void,
}

/// `struct usbdevfs_disconnect_claim`.
#[repr(C)]
#[derive(Debug)]
pub struct DisconnectClaim {
    /// Interface number.
    pub interface: u32,
    /// `USBDEVFS_DISCONNECT_CLAIM_*` flags.
    pub flags: u32,
    /// NUL-terminated driver name the flags refer to.
    pub driver: [u8; 256],
}

/// `struct usbdevfs_ioctl` (an ioctl addressed to an interface's driver).
#[repr(C)]
#[derive(Debug)]
pub struct InterfaceIoctl {
    /// Interface number.
    pub ifno: i32,
    /// The ioctl to run.
    pub ioctl_code: i32,
    /// Its argument.
    pub data: *mut c_void,
}

/// A URB followed by room for the largest packet-descriptor array the kernel accepts, the way
/// the kernel reads it (`iso_frame_desc[]` is a flexible array member).
#[repr(C)]
struct IsoUrb {
    urb: Urb,
    packets: [IsoPacketDesc; MAX_ISO_PACKETS],
}

/// `USBDEVFS_CONTROL`, `_IOWR('U', 0, struct usbdevfs_ctrltransfer)`.
pub const USBDEVFS_CONTROL: Opcode = opcode::read_write::<CtrlTransfer>(b'U', 0);
/// `USBDEVFS_SETINTERFACE`, `_IOR('U', 4, struct usbdevfs_setinterface)`.
pub const USBDEVFS_SETINTERFACE: Opcode = opcode::read::<SetInterface>(b'U', 4);
/// `USBDEVFS_SUBMITURB`, `_IOR('U', 10, struct usbdevfs_urb)`.
pub const USBDEVFS_SUBMITURB: Opcode = opcode::read::<Urb>(b'U', 10);
/// `USBDEVFS_DISCARDURB`, `_IO('U', 11)`.
pub const USBDEVFS_DISCARDURB: Opcode = opcode::none(b'U', 11);
/// `USBDEVFS_REAPURBNDELAY`, `_IOW('U', 13, void *)`.
pub const USBDEVFS_REAPURBNDELAY: Opcode = opcode::write::<*mut c_void>(b'U', 13);
/// `USBDEVFS_CLAIMINTERFACE`, `_IOR('U', 15, unsigned int)`.
pub const USBDEVFS_CLAIMINTERFACE: Opcode = opcode::read::<u32>(b'U', 15);
/// `USBDEVFS_RELEASEINTERFACE`, `_IOR('U', 16, unsigned int)`.
pub const USBDEVFS_RELEASEINTERFACE: Opcode = opcode::read::<u32>(b'U', 16);
/// `USBDEVFS_IOCTL`, `_IOWR('U', 18, struct usbdevfs_ioctl)`.
pub const USBDEVFS_IOCTL: Opcode = opcode::read_write::<InterfaceIoctl>(b'U', 18);
/// `USBDEVFS_CONNECT`, `_IO('U', 23)`.
pub const USBDEVFS_CONNECT: Opcode = opcode::none(b'U', 23);
/// `USBDEVFS_DISCONNECT_CLAIM`, `_IOR('U', 27, struct usbdevfs_disconnect_claim)`.
pub const USBDEVFS_DISCONNECT_CLAIM: Opcode = opcode::read::<DisconnectClaim>(b'U', 27);

/// `USBDEVFS_CONTROL` returns the byte count, which rustix's stock patterns drop.
struct ControlIoctl<'a>(&'a mut CtrlTransfer);

// SAFETY: the opcode is USBDEVFS_CONTROL, whose argument is a `struct usbdevfs_ctrltransfer`
// (the `#[repr(C)]` `CtrlTransfer`, layout tested below); the kernel may write through its `data`
// pointer, so the call is marked mutating; the output is the ioctl's return value only.
unsafe impl Ioctl for ControlIoctl<'_> {
    type Output = usize;
    const IS_MUTATING: bool = true;

    fn opcode(&self) -> Opcode {
        USBDEVFS_CONTROL
    }

    fn as_ptr(&mut self) -> *mut c_void {
        std::ptr::from_mut(self.0).cast()
    }

    unsafe fn output_from_ptr(out: IoctlOutput, _: *mut c_void) -> rustix::io::Result<usize> {
        Ok(usize::try_from(out).unwrap_or(0))
    }
}

/// The usbfs device node of a device.
pub fn device_node(bus: u8, address: u8) -> String {
    format!("/dev/bus/usb/{bus:03}/{address:03}")
}

/// Milliseconds for usbfs, at least 1 (0 would mean "forever").
fn timeout_ms(timeout: Duration) -> u32 {
    u32::try_from(timeout.as_millis())
        .unwrap_or(u32::MAX)
        .max(1)
}

/// A claimed interface on our own usbfs descriptor. Released (and its kernel driver re-probed,
/// when one was detached) when the interface and every queue from it are dropped.
struct Claim {
    fd: OwnedFd,
    node: String,
    interface: u8,
    reattach: bool,
    queue_open: AtomicBool,
}

impl Claim {
    fn set_alt_setting(&self, alt_setting: u8) -> Result<(), Errno> {
        let arg = SetInterface {
            interface: u32::from(self.interface),
            alt_setting: u32::from(alt_setting),
        };
        // SAFETY: USBDEVFS_SETINTERFACE reads a `struct usbdevfs_setinterface`, which `arg` is;
        // the kernel writes nothing back.
        unsafe { rustix::ioctl::ioctl(&self.fd, Setter::<USBDEVFS_SETINTERFACE, _>::new(arg)) }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Errors are ignored: the device may be gone, and nothing can be done about it here.
        let _ = self.set_alt_setting(ALT_SETTING_ZERO_BANDWIDTH);
        let number = u32::from(self.interface);
        // SAFETY: USBDEVFS_RELEASEINTERFACE reads one `unsigned int`, which `number` is.
        let _ = unsafe {
            rustix::ioctl::ioctl(
                &self.fd,
                Setter::<USBDEVFS_RELEASEINTERFACE, u32>::new(number),
            )
        };
        if self.reattach {
            let arg = InterfaceIoctl {
                ifno: i32::from(self.interface),
                ioctl_code: USBDEVFS_CONNECT as i32,
                data: std::ptr::null_mut(),
            };
            // SAFETY: USBDEVFS_IOCTL reads a `struct usbdevfs_ioctl`; USBDEVFS_CONNECT takes no
            // data (null pointer), so the kernel neither reads nor writes any other user memory.
            let _ =
                unsafe { rustix::ioctl::ioctl(&self.fd, Setter::<USBDEVFS_IOCTL, _>::new(arg)) };
        }
    }
}

/// An interface claimed through usbfs directly: control requests, alternate settings and
/// isochronous IN queues. Bulk and interrupt endpoints are left to nusb.
pub struct UsbfsInterface {
    claim: Arc<Claim>,
}

impl UsbfsInterface {
    /// Opens the device node of `bus`/`address` and claims `interface` on it, detaching its
    /// kernel driver first when `detach_kernel_driver` is set.
    pub fn claim(
        bus: u8,
        address: u8,
        interface: u8,
        detach_kernel_driver: bool,
    ) -> Result<UsbfsInterface, Error> {
        let node = device_node(bus, address);
        let fd = rustix::fs::open(
            node.as_str(),
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| os_error::os_error(e.raw_os_error(), format!("open {node}")))?;
        let context = format!("claim interface {interface} of {node}");
        let result = if detach_kernel_driver {
            let mut arg = DisconnectClaim {
                interface: u32::from(interface),
                flags: DISCONNECT_CLAIM_EXCEPT_DRIVER,
                driver: [0; 256],
            };
            arg.driver[..5].copy_from_slice(b"usbfs");
            // SAFETY: USBDEVFS_DISCONNECT_CLAIM reads a `struct usbdevfs_disconnect_claim`
            // (layout tested below) and writes nothing back.
            unsafe { rustix::ioctl::ioctl(&fd, Setter::<USBDEVFS_DISCONNECT_CLAIM, _>::new(arg)) }
        } else {
            let number = u32::from(interface);
            // SAFETY: USBDEVFS_CLAIMINTERFACE reads one `unsigned int`, which `number` is.
            unsafe {
                rustix::ioctl::ioctl(&fd, Setter::<USBDEVFS_CLAIMINTERFACE, u32>::new(number))
            }
        };
        result.map_err(|e| os_error::os_error(e.raw_os_error(), context))?;
        Ok(UsbfsInterface {
            claim: Arc::new(Claim {
                fd,
                node,
                interface,
                reattach: detach_kernel_driver,
                queue_open: AtomicBool::new(false),
            }),
        })
    }

    fn control(
        &self,
        setup: ControlSetup,
        data: *mut c_void,
        length: usize,
        timeout: Duration,
    ) -> Result<usize, TransferError> {
        let length = u16::try_from(length).map_err(|_| TransferError::Other(EINVAL))?;
        let mut arg = CtrlTransfer {
            request_type: setup.request_type,
            request: setup.request,
            value: setup.value,
            index: setup.index,
            length,
            timeout_ms: timeout_ms(timeout),
            data,
        };
        // SAFETY: `arg` is a valid `struct usbdevfs_ctrltransfer` whose `data` points to at least
        // `length` bytes that stay borrowed by the caller for the whole (synchronous) call; the
        // kernel writes there only for IN requests, whose callers pass writable memory.
        unsafe { rustix::ioctl::ioctl(&self.claim.fd, ControlIoctl(&mut arg)) }
            .map_err(|e| os_error::errno_to_transfer_error(e.raw_os_error()))
    }
}

impl UsbInterface for UsbfsInterface {
    fn number(&self) -> u8 {
        self.claim.interface
    }

    fn control_in(
        &self,
        setup: ControlSetup,
        length: u16,
        timeout: Duration,
    ) -> Result<Vec<u8>, TransferError> {
        if setup.request_type & 0x80 == 0 {
            return Err(TransferError::Other(EINVAL));
        }
        let mut buffer = vec![0u8; usize::from(length)];
        let received = self.control(setup, buffer.as_mut_ptr().cast(), buffer.len(), timeout)?;
        buffer.truncate(received);
        Ok(buffer)
    }

    fn control_out(
        &self,
        setup: ControlSetup,
        data: &[u8],
        timeout: Duration,
    ) -> Result<(), TransferError> {
        if setup.request_type & 0x80 != 0 {
            return Err(TransferError::Other(EINVAL));
        }
        // The kernel only reads an OUT data stage, so the const-to-mut cast is never written.
        self.control(setup, data.as_ptr().cast_mut().cast(), data.len(), timeout)
            .map(|_| ())
    }

    fn set_alt_setting(&self, alt_setting: u8) -> Result<(), Error> {
        self.claim.set_alt_setting(alt_setting).map_err(|e| {
            os_error::os_error(
                e.raw_os_error(),
                format!(
                    "set interface {} of {} to alternate setting {alt_setting}",
                    self.claim.interface, self.claim.node
                ),
            )
        })
    }

    fn endpoint(&self, address: u8) -> Result<Box<dyn EndpointQueue>, Error> {
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "endpoint 0x{address:02X} of interface {}: only isochronous IN endpoints are \
                 served on an isochronous interface",
                self.claim.interface
            ),
        ))
    }

    fn iso_in_endpoint(
        &self,
        address: u8,
        packets_per_transfer: usize,
        packet_size: usize,
    ) -> Result<Box<dyn IsoInQueue>, Error> {
        let context = format!(
            "isochronous endpoint 0x{address:02X} of interface {} on {}",
            self.claim.interface, self.claim.node
        );
        let geometry = IsoGeometry::new(address, packets_per_transfer, packet_size)
            .map_err(|why| Error::new(ErrorKind::Other, format!("{context}: {why}")))?;
        if self.claim.queue_open.swap(true, Ordering::AcqRel) {
            return Err(Error::new(
                ErrorKind::Busy,
                format!("{context}: a queue is already open on this interface"),
            ));
        }
        Ok(Box::new(UsbfsIsoQueue {
            claim: Arc::clone(&self.claim),
            geometry,
            pending: VecDeque::new(),
            abandoned: Vec::new(),
        }))
    }
}

/// The validated shape of one isochronous transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsoGeometry {
    /// Endpoint address (IN).
    pub address: u8,
    /// Packets per URB, 1..=128.
    pub packets: usize,
    /// Bytes per packet.
    pub packet_size: usize,
}

impl IsoGeometry {
    /// Checks a requested geometry against what usbfs accepts.
    pub fn new(address: u8, packets: usize, packet_size: usize) -> Result<IsoGeometry, String> {
        if address & ENDPOINT_DIR_IN == 0 {
            return Err(format!("0x{address:02X} is not an IN endpoint"));
        }
        if packets == 0 || packets > MAX_ISO_PACKETS {
            return Err(format!(
                "{packets} packets per transfer (usbfs accepts 1 to {MAX_ISO_PACKETS})"
            ));
        }
        let fits = u32::try_from(packet_size).is_ok()
            && packets
                .checked_mul(packet_size)
                .is_some_and(|t| i32::try_from(t).is_ok());
        if packet_size == 0 || !fits {
            return Err(format!("packet size {packet_size} is out of range"));
        }
        Ok(IsoGeometry {
            address,
            packets,
            packet_size,
        })
    }

    /// Bytes of one transfer.
    pub fn transfer_len(&self) -> usize {
        self.packets * self.packet_size
    }
}

/// A submitted (or refused) transfer. Boxed, so the URB and the buffer pointer it holds stay at
/// one address while the kernel owns them.
struct InFlight {
    urb: IsoUrb,
    buffer: Vec<u8>,
    state: State,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// The kernel owns it.
    Submitted,
    /// The kernel gave it back.
    Reaped,
    /// It never reached the kernel, or the kernel can no longer return it.
    Failed(TransferError),
}

impl InFlight {
    fn new(geometry: &IsoGeometry, mut buffer: Vec<u8>) -> Box<InFlight> {
        buffer.clear();
        buffer.resize(geometry.transfer_len(), 0);
        let mut packets = [IsoPacketDesc::default(); MAX_ISO_PACKETS];
        for p in &mut packets[..geometry.packets] {
            // Fits: checked by IsoGeometry::new.
            p.length = geometry.packet_size as u32;
        }
        let mut boxed = Box::new(InFlight {
            urb: IsoUrb {
                urb: Urb {
                    urb_type: URB_TYPE_ISO,
                    endpoint: geometry.address,
                    status: 0,
                    flags: URB_ISO_ASAP,
                    buffer: std::ptr::null_mut(),
                    buffer_length: geometry.transfer_len() as i32,
                    actual_length: 0,
                    start_frame: 0,
                    number_of_packets: geometry.packets as i32,
                    error_count: 0,
                    signr: 0,
                    usercontext: std::ptr::null_mut(),
                },
                packets,
            },
            buffer,
            state: State::Submitted,
        });
        boxed.urb.urb.buffer = boxed.buffer.as_mut_ptr().cast();
        boxed
    }

    fn urb_ptr(&mut self) -> *mut IsoUrb {
        std::ptr::addr_of_mut!(self.urb)
    }

    /// The URB's address, for matching what a reap returns.
    fn urb_addr(&self) -> *const IsoUrb {
        std::ptr::addr_of!(self.urb)
    }

    /// The completion of a transfer the kernel returned (or that failed before it got there).
    fn into_completion(self, geometry: &IsoGeometry) -> IsoCompletion {
        match self.state {
            State::Failed(e) => IsoCompletion {
                data: self.buffer,
                packets: Vec::new(),
                status: Err(e),
            },
            State::Reaped | State::Submitted => {
                decode_completion(&self.urb.urb, &self.urb.packets, self.buffer, geometry)
            }
        }
    }
}

// SAFETY: the raw pointers inside an `InFlight` point only into the same Box (its own buffer)
// or are null; whoever owns the Box owns everything they reach, so moving it to another thread
// moves that ownership along. Nothing is shared between threads through them.
unsafe impl Send for InFlight {}

/// The kernel stores statuses as negative errnos (in an unsigned field for packets).
fn status_errno(raw: i32) -> i32 {
    raw.saturating_abs()
}

/// Builds the seam's completion from a reaped URB.
fn decode_completion(
    urb: &Urb,
    descs: &[IsoPacketDesc],
    data: Vec<u8>,
    geometry: &IsoGeometry,
) -> IsoCompletion {
    let count = usize::try_from(urb.number_of_packets)
        .unwrap_or(0)
        .min(geometry.packets)
        .min(descs.len());
    let packets = descs[..count]
        .iter()
        .enumerate()
        .map(|(i, d)| IsoPacket {
            offset: i * geometry.packet_size,
            actual_len: (d.actual_length as usize).min(geometry.packet_size),
            status: os_error::errno_to_transfer_result(status_errno(d.status as i32)),
        })
        .collect();
    IsoCompletion {
        data,
        packets,
        status: os_error::errno_to_transfer_result(status_errno(urb.status)),
    }
}

/// An isochronous IN queue on a [`UsbfsInterface`]'s descriptor.
pub struct UsbfsIsoQueue {
    claim: Arc<Claim>,
    geometry: IsoGeometry,
    pending: VecDeque<Box<InFlight>>,
    /// Transfers the kernel may still own though we stopped waiting for them; freed when reaped,
    /// leaked when the queue drops. Boxed: the kernel holds their addresses, and a growing Vec
    /// would move unboxed elements.
    #[allow(clippy::vec_box)]
    abandoned: Vec<Box<InFlight>>,
}

impl UsbfsIsoQueue {
    /// Reaps every finished URB without blocking. `Err` when reaping itself fails (ENODEV once the
    /// device is gone and nothing is left to reap).
    fn reap_available(&mut self) -> Result<(), Errno> {
        loop {
            let mut reaped: *mut c_void = std::ptr::null_mut();
            // SAFETY: USBDEVFS_REAPURBNDELAY writes one pointer to `reaped`. It also writes the
            // status fields, packet descriptors and data of the URB it returns; that URB is one we
            // submitted, still alive in `pending` or `abandoned` (we free a URB only after it has
            // been reaped, and leak the ones never reaped), so those writes land in live memory.
            let result = unsafe {
                rustix::ioctl::ioctl(
                    &self.claim.fd,
                    Updater::<USBDEVFS_REAPURBNDELAY, *mut c_void>::new(&mut reaped),
                )
            };
            match result {
                Ok(()) => self.mark_reaped(reaped),
                Err(Errno::AGAIN) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn mark_reaped(&mut self, reaped: *mut c_void) {
        let reaped = reaped.cast::<IsoUrb>().cast_const();
        if let Some(t) = self.pending.iter_mut().find(|t| t.urb_addr() == reaped) {
            if t.state == State::Submitted {
                t.state = State::Reaped;
            }
            return;
        }
        // A transfer given up on earlier: the kernel is done with it, so it may be freed now.
        self.abandoned.retain(|t| t.urb_addr() != reaped);
    }

    /// Waits until the descriptor has finished URBs (or an error), up to `timeout`.
    fn poll(&self, timeout: Duration) {
        let timespec = Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&self.claim.fd, PollFlags::OUT)];
        // EINTR and friends just end this wait early; the caller loops until its deadline.
        let _ = rustix::event::poll(&mut fds, Some(&timespec));
    }

    fn discard(&self, t: &mut InFlight) {
        let urb = t.urb_ptr().cast::<c_void>();
        // SAFETY: USBDEVFS_DISCARDURB takes the URB's address as its argument and only uses it to
        // look up our own pending URB; it writes no user memory (the URB is written at reap).
        // EINVAL (already finished) is expected and harmless.
        let _ = unsafe {
            rustix::ioctl::ioctl(
                self.claim.fd.as_fd(),
                IntegerSetter::<USBDEVFS_DISCARDURB>::new_pointer(urb),
            )
        };
    }
}

impl IsoInQueue for UsbfsIsoQueue {
    fn address(&self) -> u8 {
        self.geometry.address
    }

    fn submit(&mut self, buffer: Vec<u8>) {
        let mut t = InFlight::new(&self.geometry, buffer);
        // SAFETY: `t.urb` lives in the Box `t` and is a `#[repr(C)]` `struct usbdevfs_urb` followed by
        // `number_of_packets` (≤ 128) packet descriptors, whose `buffer` points to the Box's own
        // `transfer_len()` bytes. The Box goes into `pending` and is freed only after the kernel
        // returns this URB through a reap (or leaked), so both stay valid while the kernel owns
        // them. SUBMITURB reads the URB and descriptors and writes nothing until the reap.
        let result = unsafe {
            rustix::ioctl::ioctl(
                &self.claim.fd,
                Updater::<USBDEVFS_SUBMITURB, IsoUrb>::new(&mut t.urb),
            )
        };
        if let Err(e) = result {
            t.state = State::Failed(os_error::submit_errno_to_transfer_error(e.raw_os_error()));
        }
        self.pending.push_back(t);
    }

    fn wait_next_complete(&mut self, timeout: Duration) -> Option<IsoCompletion> {
        let deadline = Instant::now() + timeout;
        loop {
            let front = self.pending.front()?;
            if front.state != State::Submitted {
                let done = self.pending.pop_front()?;
                return Some(done.into_completion(&self.geometry));
            }
            if let Err(e) = self.reap_available() {
                // Nothing finished is left and the kernel will not return the rest (device gone,
                // or the descriptor broke): report the oldest as failed, keep its memory alive.
                let status = os_error::errno_to_transfer_error(e.raw_os_error());
                // Its buffer stays with it: the kernel may still write there at a later reap.
                let t = self.pending.pop_front()?;
                self.abandoned.push(t);
                return Some(IsoCompletion {
                    data: Vec::new(),
                    packets: Vec::new(),
                    status: Err(status),
                });
            }
            if self.pending.front()?.state != State::Submitted {
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            self.poll(deadline - now);
        }
    }

    fn pending(&self) -> usize {
        self.pending.len()
    }

    fn cancel_all(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        for t in pending.iter_mut().filter(|t| t.state == State::Submitted) {
            self.discard(t);
        }
        self.pending = pending;
    }
}

impl Drop for UsbfsIsoQueue {
    fn drop(&mut self) {
        self.cancel_all();
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.pending.iter().any(|t| t.state == State::Submitted) {
            if self.reap_available().is_err() {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            self.poll(deadline - now);
        }
        // Anything the kernel may still own must not be freed: leak it.
        for t in self.pending.drain(..) {
            if t.state == State::Submitted {
                std::mem::forget(t);
            }
        }
        for t in self.abandoned.drain(..) {
            std::mem::forget(t);
        }
        self.claim.queue_open.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::descriptors::{OutEndpoint, EP_UVC_VIDEO_IN};
    use std::mem::{offset_of, size_of};

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn structures_match_the_kernel_layout_on_x86_64() {
        assert_eq!(size_of::<IsoPacketDesc>(), 12);
        assert_eq!(offset_of!(IsoPacketDesc, actual_length), 4);
        assert_eq!(offset_of!(IsoPacketDesc, status), 8);

        assert_eq!(size_of::<Urb>(), 56);
        assert_eq!(offset_of!(Urb, urb_type), 0);
        assert_eq!(offset_of!(Urb, endpoint), 1);
        assert_eq!(offset_of!(Urb, status), 4);
        assert_eq!(offset_of!(Urb, flags), 8);
        assert_eq!(offset_of!(Urb, buffer), 16);
        assert_eq!(offset_of!(Urb, buffer_length), 24);
        assert_eq!(offset_of!(Urb, actual_length), 28);
        assert_eq!(offset_of!(Urb, start_frame), 32);
        assert_eq!(offset_of!(Urb, number_of_packets), 36);
        assert_eq!(offset_of!(Urb, error_count), 40);
        assert_eq!(offset_of!(Urb, signr), 44);
        assert_eq!(offset_of!(Urb, usercontext), 48);
        // iso_frame_desc[] starts right after the 56-byte header.
        assert_eq!(offset_of!(IsoUrb, packets), 56);
        assert_eq!(size_of::<IsoUrb>(), 56 + 128 * 12);

        assert_eq!(size_of::<CtrlTransfer>(), 24);
        assert_eq!(offset_of!(CtrlTransfer, length), 6);
        assert_eq!(offset_of!(CtrlTransfer, timeout_ms), 8);
        assert_eq!(offset_of!(CtrlTransfer, data), 16);
        assert_eq!(size_of::<SetInterface>(), 8);
        assert_eq!(size_of::<DisconnectClaim>(), 264);
        assert_eq!(size_of::<InterfaceIoctl>(), 16);
        assert_eq!(offset_of!(InterfaceIoctl, data), 8);
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn ioctl_numbers_match_the_kernel_header() {
        // Values of the macros in <linux/usbdevice_fs.h> as compiled for x86-64.
        assert_eq!(u64::from(USBDEVFS_CONTROL), 0xC018_5500);
        assert_eq!(u64::from(USBDEVFS_SETINTERFACE), 0x8008_5504);
        assert_eq!(u64::from(USBDEVFS_SUBMITURB), 0x8038_550A);
        assert_eq!(u64::from(USBDEVFS_DISCARDURB), 0x0000_550B);
        assert_eq!(u64::from(USBDEVFS_REAPURBNDELAY), 0x4008_550D);
        assert_eq!(u64::from(USBDEVFS_CLAIMINTERFACE), 0x8004_550F);
        assert_eq!(u64::from(USBDEVFS_RELEASEINTERFACE), 0x8004_5510);
        assert_eq!(u64::from(USBDEVFS_IOCTL), 0xC010_5512);
        assert_eq!(u64::from(USBDEVFS_CONNECT), 0x0000_5517);
        assert_eq!(u64::from(USBDEVFS_DISCONNECT_CLAIM), 0x8108_551B);
    }

    const EP: u8 = EP_UVC_VIDEO_IN.address();

    #[test]
    fn geometry_follows_usbfs_limits() {
        let g = IsoGeometry::new(EP, 32, 3072).unwrap();
        assert_eq!(g.transfer_len(), 98_304);
        assert!(IsoGeometry::new(EP, 128, 1024).is_ok());
        assert!(IsoGeometry::new(EP, 129, 1024)
            .unwrap_err()
            .contains("1 to 128"));
        assert!(IsoGeometry::new(EP, 0, 1024).is_err());
        assert!(IsoGeometry::new(OutEndpoint::new(1).address(), 32, 1024)
            .unwrap_err()
            .contains("not an IN endpoint"));
        assert!(IsoGeometry::new(EP, 32, 0).is_err());
        assert!(IsoGeometry::new(EP, 128, usize::MAX / 64).is_err());
    }

    #[test]
    fn a_fresh_urb_describes_its_packets_and_buffer() {
        let g = IsoGeometry::new(EP, 4, 1024).unwrap();
        let mut t = InFlight::new(&g, vec![1, 2, 3]);
        assert_eq!(t.buffer.len(), 4096);
        assert!(t.buffer.iter().all(|&b| b == 0));
        let urb = &t.urb.urb;
        assert_eq!(urb.urb_type, URB_TYPE_ISO);
        assert_eq!(urb.endpoint, EP);
        assert_eq!(urb.flags, URB_ISO_ASAP);
        assert_eq!(urb.buffer_length, 4096);
        assert_eq!(urb.number_of_packets, 4);
        assert_eq!(urb.buffer, t.buffer.as_mut_ptr().cast());
        assert!(t.urb.packets[..4].iter().all(|p| p.length == 1024));
        assert!(t.urb.packets[4..].iter().all(|p| p.length == 0));
    }

    #[test]
    fn reaped_urbs_decode_into_packets() {
        let g = IsoGeometry::new(EP, 3, 1024).unwrap();
        let mut t = InFlight::new(&g, Vec::new());
        // What the kernel writes at reap: packet 0 full, packet 1 short, packet 2 missed (EXDEV).
        t.urb.packets[0].actual_length = 1024;
        t.urb.packets[1].actual_length = 12;
        t.urb.packets[2].status = (-18i32) as u32;
        t.urb.urb.error_count = 1;
        t.state = State::Reaped;
        let c = t.into_completion(&g);
        assert_eq!(c.status, Ok(()));
        assert_eq!(c.data.len(), 3072);
        assert_eq!(
            c.packets,
            vec![
                IsoPacket {
                    offset: 0,
                    actual_len: 1024,
                    status: Ok(())
                },
                IsoPacket {
                    offset: 1024,
                    actual_len: 12,
                    status: Ok(())
                },
                IsoPacket {
                    offset: 2048,
                    actual_len: 0,
                    status: Err(TransferError::Fault)
                },
            ]
        );

        // A discarded URB: status -ENOENT.
        let mut t = InFlight::new(&g, Vec::new());
        t.urb.urb.status = -2;
        t.state = State::Reaped;
        assert_eq!(t.into_completion(&g).status, Err(TransferError::Cancelled));

        // A lying actual_length never exceeds the packet.
        let mut t = InFlight::new(&g, Vec::new());
        t.urb.packets[0].actual_length = 99_999;
        t.state = State::Reaped;
        assert_eq!(t.into_completion(&g).packets[0].actual_len, 1024);

        // Refused at submit.
        let mut t = InFlight::new(&g, Vec::new());
        t.state = State::Failed(TransferError::NoMemory);
        let c = t.into_completion(&g);
        assert_eq!(c.status, Err(TransferError::NoMemory));
        assert!(c.packets.is_empty());
    }

    #[test]
    fn device_nodes_are_zero_padded() {
        assert_eq!(device_node(2, 7), "/dev/bus/usb/002/007");
        assert_eq!(device_node(255, 127), "/dev/bus/usb/255/127");
    }

    #[test]
    fn timeouts_never_become_infinite() {
        assert_eq!(timeout_ms(Duration::ZERO), 1);
        assert_eq!(timeout_ms(Duration::from_millis(2000)), 2000);
        assert_eq!(timeout_ms(Duration::from_secs(u64::MAX)), u32::MAX);
    }

    #[test]
    fn claiming_a_missing_device_is_a_typed_error() {
        let err = UsbfsInterface::claim(255, 255, 1, true).err().unwrap();
        assert!(
            matches!(err.kind, ErrorKind::NotFound | ErrorKind::PermissionDenied),
            "{err}"
        );
        assert!(err.to_string().contains("/dev/bus/usb/255/255"), "{err}");
    }
}
