//! The transport seam: USB at the transfer level.
//!
//! Everything above this module (command transactions, depth/IMU/UVC streaming, capture
//! assembly) talks to a [`Backend`] and the [`UsbDevice`] / [`UsbInterface`] handles it opens.
//! Two backends exist: the real one over nusb (plus a Linux usbfs module for the isochronous
//! colour stream, which nusb lacks), and the emulator, which is a whole Azure Kinect speaking
//! protocol bytes. The seam mirrors nusb's own model — claimed interfaces with per-endpoint
//! submit/complete queues — so the real and emulated paths run the same code above it.
//!
//! This module names no USB library; only its backend submodules do.
//!
//! # Submodules
//!
//! - [`nusb_backend`]: the real backend ([`nusb_backend::NusbBackend`]) over nusb.
//! - `usbfs_iso` (Linux only): isochronous IN transfers over usbfs ioctls, used by the nusb
//!   backend for interfaces that have isochronous endpoints (the colour camera's UVC
//!   VideoStreaming interface). It is the only `unsafe` code in the transport layer.
//! - [`usbfs_memory`]: the kernel's `usbcore.usbfs_memory_mb` budget and how many depth
//!   transfers fit in it.
//! - [`discovery`]: the Azure Kinect halves in a listing, and the raw BOS descriptor that pairs
//!   them (through any backend).
//! - [`transfer_blocking`]: one transfer on an idle queue, cancelled after a timeout (command
//!   channels).
//! - [`os_error`]: the one place where OS and nusb errors become [`ErrorKind`] and
//!   [`TransferError`].
//!
//! # Linux specifics
//!
//! - **Kernel drivers.** The colour device's UVC interfaces belong to `uvcvideo`. Claiming with
//!   `detach_kernel_driver` detaches it (atomically, `USBDEVFS_DISCONNECT_CLAIM`) and gives it
//!   back when the interface is dropped. A process killed with SIGKILL cannot give it back;
//!   re-plugging the device (or `echo` into the driver's `bind` file) does.
//! - **usbfs memory.** Every URB counts against a global limit, `usbcore.usbfs_memory_mb`
//!   (16 MiB by default). A submit past it fails with ENOMEM, reported as
//!   [`TransferError::NoMemory`] / [`ErrorKind::NoMemory`] with advice on raising the limit;
//!   [`usbfs_memory::depth_transfers_in_flight`] sizes the depth pool so it does not happen.
//! - **Isochronous transfers.** nusb has none, so `usbfs_iso` opens the device node a second
//!   time and drives the VideoStreaming interface itself (see its docs for why a second open file
//!   is needed).
//!
//! # What is tested without hardware
//!
//! No machine of this project has a USB device, so the code that talks to the kernel is correct
//! by construction, not by test: listing, opening, claiming, control and bulk transfers through
//! nusb, and every usbfs ioctl call. The unit tests cover what can be checked without a device:
//! the ioctl structure layouts and request numbers against the kernel's x86-64 values, error
//! mapping, request-type decoding, buffer preparation, isochronous geometry limits and completion
//! decoding, the memory budget (parsed from a fake sysfs tree) and pool sizing, and BOS reading
//! through a fake device. The emulator backend exercises the seam itself end to end, with the
//! USB-level rules of the kernel and nusb (`protocol/kernel.md`): IN lengths in whole packets
//! ([`check_in_length`], [`in_transfer_len`]), short packets, babble.

pub mod discovery;
pub mod nusb_backend;
pub mod os_error;
#[cfg(target_os = "linux")]
pub mod usbfs_iso;
pub mod usbfs_memory;

use std::fmt;
use std::time::Duration;

/// A USB device as listed by a backend, before it is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Vendor id.
    pub vendor_id: u16,
    /// Product id.
    pub product_id: u16,
    /// Bus number.
    pub bus: u8,
    /// Device address on the bus.
    pub address: u8,
    /// Port path from the root hub (empty when unknown).
    pub port_path: Vec<u8>,
    /// The iSerialNumber string, when the backend could read it without opening the device.
    pub serial: Option<String>,
    /// Backend-specific key that identifies the device for [`Backend::open`].
    pub key: u64,
}

/// What went wrong in the transport layer (not a transfer: see [`TransferError`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The device is gone (unplugged, or the emulator disconnected it).
    Disconnected,
    /// Another process or driver holds the device or interface.
    Busy,
    /// The OS refused access (udev rules missing?).
    PermissionDenied,
    /// No such device, interface or endpoint.
    NotFound,
    /// The kernel refused to allocate transfer memory (`usbfs_memory_mb`).
    NoMemory,
    /// This backend or platform cannot do it.
    Unsupported,
    /// Anything else.
    Other,
}

/// A transport failure: its kind, what was being done, and the OS error code when there is one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{context}: {kind:?}{}", os_code.map(|c| format!(" (os error {c})")).unwrap_or_default())]
pub struct Error {
    /// The kind of failure.
    pub kind: ErrorKind,
    /// What was being attempted, e.g. "claim interface 2 of 045E:097D".
    pub context: String,
    /// OS error number, when the failure came from the OS.
    pub os_code: Option<i32>,
}

impl Error {
    /// An error of `kind` while doing `context`.
    pub fn new(kind: ErrorKind, context: impl Into<String>) -> Error {
        Error {
            kind,
            context: context.into(),
            os_code: None,
        }
    }
}

/// Why a single transfer did not complete normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// Cancelled by the host (`cancel_all`).
    #[error("transfer cancelled")]
    Cancelled,
    /// The endpoint stalled.
    #[error("endpoint stalled")]
    Stall,
    /// The device went away.
    #[error("device disconnected")]
    Disconnected,
    /// Babble: the device sent a packet longer than the endpoint's wMaxPacketSize or than the
    /// room left in the buffer (the kernel's EOVERFLOW).
    #[error("the device sent more than the transfer buffer holds (babble, EOVERFLOW)")]
    Overflow,
    /// An IN transfer whose length is not a non-zero multiple of the endpoint's
    /// wMaxPacketSize; nusb refuses it before it reaches the kernel (see [`check_in_length`]).
    #[error(
        "IN transfer of {requested} bytes on endpoint 0x{endpoint:02X} refused: the length must \
         be a non-zero multiple of its wMaxPacketSize ({max_packet_size})"
    )]
    InvalidLength {
        /// The endpoint address.
        endpoint: u8,
        /// The length asked for.
        requested: usize,
        /// The endpoint's wMaxPacketSize.
        max_packet_size: usize,
    },
    /// The host controller reported a fault (CRC, bit-stuffing, babble…).
    #[error("transfer fault")]
    Fault,
    /// A control transfer or a blocking helper ran out of time.
    #[error("transfer timed out")]
    Timeout,
    /// The kernel refused to allocate memory for the transfer.
    #[error("no memory for transfer (usbfs_memory_mb)")]
    NoMemory,
    /// An error this seam does not name; the code is backend-specific.
    #[error("transfer failed (code {0})")]
    Other(i32),
}

/// A finished transfer. A transfer can partially complete and still fail, so data and status
/// travel together.
#[derive(Debug)]
pub struct Completion {
    /// For IN transfers, the buffer truncated to the bytes received. For OUT transfers, the
    /// buffer that was sent (its length is the byte count requested).
    pub data: Vec<u8>,
    /// For OUT transfers, the bytes actually sent; for IN transfers equal to `data.len()`.
    pub actual_len: usize,
    /// Ok, or why the transfer ended early.
    pub status: Result<(), TransferError>,
}

/// One packet of an isochronous transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsoPacket {
    /// Offset of this packet's data within [`IsoCompletion::data`].
    pub offset: usize,
    /// Bytes received in this packet.
    pub actual_len: usize,
    /// Ok, or why the packet failed.
    pub status: Result<(), TransferError>,
}

/// A finished isochronous IN transfer: one buffer cut into packets.
#[derive(Debug)]
pub struct IsoCompletion {
    /// The transfer buffer (packet `i` starts at `i * packet_size`, see [`IsoPacket::offset`]).
    pub data: Vec<u8>,
    /// Per-packet results, in order.
    pub packets: Vec<IsoPacket>,
    /// Status of the transfer as a whole.
    pub status: Result<(), TransferError>,
}

/// A USB control request setup (bmRequestType, bRequest, wValue, wIndex).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlSetup {
    /// bmRequestType (direction, type and recipient bits).
    pub request_type: u8,
    /// bRequest.
    pub request: u8,
    /// wValue.
    pub value: u16,
    /// wIndex.
    pub index: u16,
}

/// Lists and opens devices. Implemented by the nusb backend and by the emulator.
pub trait Backend: Send + Sync {
    /// Every device currently attached (all vendors; callers filter by id).
    fn list(&self) -> Result<Vec<DeviceInfo>, Error>;

    /// Opens a listed device.
    fn open(&self, device: &DeviceInfo) -> Result<Box<dyn UsbDevice>, Error>;
}

/// An opened device.
pub trait UsbDevice: Send + Sync {
    /// The device as it was listed.
    fn info(&self) -> &DeviceInfo;

    /// Reads a descriptor with a standard GET_DESCRIPTOR request on endpoint 0
    /// (`descriptor_type` 1 device, 2 configuration, 3 string, 15 BOS).
    fn get_descriptor(
        &self,
        descriptor_type: u8,
        index: u8,
        language_id: u16,
        timeout: Duration,
    ) -> Result<Vec<u8>, Error>;

    /// Claims an interface, first detaching any kernel driver when `detach_kernel_driver` is set
    /// (the kernel driver is given back when the interface is released or dropped).
    fn claim_interface(
        &self,
        number: u8,
        detach_kernel_driver: bool,
    ) -> Result<Box<dyn UsbInterface>, Error>;
}

/// A claimed interface: control requests and endpoint queues.
pub trait UsbInterface: Send + Sync {
    /// The interface number.
    fn number(&self) -> u8;

    /// A control IN request on endpoint 0; returns the bytes received (at most `length`).
    fn control_in(
        &self,
        setup: ControlSetup,
        length: u16,
        timeout: Duration,
    ) -> Result<Vec<u8>, TransferError>;

    /// A control OUT request on endpoint 0.
    fn control_out(
        &self,
        setup: ControlSetup,
        data: &[u8],
        timeout: Duration,
    ) -> Result<(), TransferError>;

    /// Selects an alternate setting of this interface.
    fn set_alt_setting(&self, alt_setting: u8) -> Result<(), Error>;

    /// A queue of bulk or interrupt transfers on endpoint `address` (IN when bit 7 is set).
    fn endpoint(&self, address: u8) -> Result<Box<dyn EndpointQueue>, Error>;

    /// A queue of isochronous IN transfers on endpoint `address`, each of `packets_per_transfer`
    /// packets of `packet_size` bytes.
    fn iso_in_endpoint(
        &self,
        address: u8,
        packets_per_transfer: usize,
        packet_size: usize,
    ) -> Result<Box<dyn IsoInQueue>, Error>;
}

/// A bulk or interrupt endpoint as a queue of transfers: submit many, complete in order.
///
/// IN transfers complete when the requested length arrives or on a short packet (one shorter
/// than wMaxPacketSize, zero-length included); OUT transfers complete when all bytes are sent.
/// An IN length must be a non-zero multiple of [`EndpointQueue::max_packet_size`]
/// ([`check_in_length`]; size buffers with [`in_transfer_len`]), otherwise the transfer completes
/// at once with [`TransferError::InvalidLength`]. Errors are reported in the [`Completion`], never
/// at submit, so the in-flight count stays consistent.
pub trait EndpointQueue: Send {
    /// The endpoint address.
    fn address(&self) -> u8;

    /// wMaxPacketSize of the endpoint, from its descriptor (IN lengths must be a multiple of it).
    fn max_packet_size(&self) -> usize;

    /// Queues a transfer. For IN endpoints `buffer` is reused as storage and `length` bytes
    /// are requested; for OUT endpoints the first `length` bytes of `buffer` are sent.
    fn submit(&mut self, buffer: Vec<u8>, length: usize);

    /// Waits up to `timeout` for the oldest pending transfer; `None` if it is still pending.
    fn wait_next_complete(&mut self, timeout: Duration) -> Option<Completion>;

    /// Transfers submitted and not yet returned by `wait_next_complete`.
    fn pending(&self) -> usize;

    /// Requests cancellation of every pending transfer; they still complete (as Cancelled or
    /// with their data) and must be collected with `wait_next_complete`.
    fn cancel_all(&mut self);
}

/// An isochronous IN endpoint as a queue of transfers.
pub trait IsoInQueue: Send {
    /// The endpoint address.
    fn address(&self) -> u8;

    /// Queues a transfer; `buffer` is reused as storage.
    fn submit(&mut self, buffer: Vec<u8>);

    /// Waits up to `timeout` for the oldest pending transfer.
    fn wait_next_complete(&mut self, timeout: Duration) -> Option<IsoCompletion>;

    /// Transfers submitted and not yet returned.
    fn pending(&self) -> usize;

    /// Requests cancellation of every pending transfer (collect them afterwards).
    fn cancel_all(&mut self);
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04X}:{:04X} at bus {} address {}",
            self.vendor_id, self.product_id, self.bus, self.address
        )
    }
}

/// The length to request for an IN transfer that should receive up to `wanted` bytes: the
/// smallest non-zero multiple of `max_packet_size` that holds them. A device that sends fewer
/// bytes ends the transfer early with a short packet, so the extra room is never filled by a
/// well-behaved device; callers still check the received length against `wanted`.
pub fn in_transfer_len(wanted: usize, max_packet_size: usize) -> usize {
    if max_packet_size == 0 {
        return wanted;
    }
    wanted.max(1).div_ceil(max_packet_size) * max_packet_size
}

/// nusb's rule for IN transfers on bulk and interrupt endpoints, checked on every backend so the
/// emulator refuses what a real camera's path refuses: the length must be a non-zero multiple of
/// the endpoint's wMaxPacketSize (`protocol/kernel.md`).
pub fn check_in_length(
    endpoint: u8,
    requested: usize,
    max_packet_size: usize,
) -> Result<(), TransferError> {
    if requested == 0 || max_packet_size == 0 || !requested.is_multiple_of(max_packet_size) {
        return Err(TransferError::InvalidLength {
            endpoint,
            requested,
            max_packet_size,
        });
    }
    Ok(())
}

/// How long [`transfer_blocking`] waits for a transfer it cancelled to come back.
pub const CANCEL_GRACE: Duration = Duration::from_secs(2);

/// Submits one transfer on an idle queue and waits for it, cancelling it after `timeout`.
///
/// Returns the transfer's completion. A transfer cancelled because of the timeout reports
/// [`TransferError::Timeout`] (with whatever data had arrived). If the queue already had
/// transfers pending, nothing is submitted and the status is `Other(EBUSY)`, since their
/// completions would be mistaken for this one. If the backend does not return the cancelled
/// transfer within [`CANCEL_GRACE`], the status is `Timeout` with no data and the transfer stays
/// counted in [`EndpointQueue::pending`].
pub fn transfer_blocking(
    queue: &mut dyn EndpointQueue,
    buffer: Vec<u8>,
    length: usize,
    timeout: Duration,
) -> Completion {
    const EBUSY: i32 = 16;
    if queue.pending() != 0 {
        return Completion {
            data: buffer,
            actual_len: 0,
            status: Err(TransferError::Other(EBUSY)),
        };
    }
    queue.submit(buffer, length);
    if let Some(done) = queue.wait_next_complete(timeout) {
        return done;
    }
    queue.cancel_all();
    match queue.wait_next_complete(CANCEL_GRACE) {
        Some(mut done) => {
            if done.status == Err(TransferError::Cancelled) {
                done.status = Err(TransferError::Timeout);
            }
            done
        }
        None => Completion {
            data: Vec::new(),
            actual_len: 0,
            status: Err(TransferError::Timeout),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::descriptors::{EP_DEPTH_STREAM_IN, EP_IMU_STREAM_IN, EP_UVC_VIDEO_IN};

    const EP: u8 = EP_UVC_VIDEO_IN.address();
    use std::collections::VecDeque;

    /// A queue whose transfers finish only when the test says so.
    #[derive(Default)]
    struct Scripted {
        pending: VecDeque<(Vec<u8>, usize)>,
        /// Bytes the device answers with, if it answers before the timeout.
        answer: Option<Vec<u8>>,
        /// Whether a cancelled transfer comes back.
        returns_cancelled: bool,
        cancelled: bool,
    }

    impl EndpointQueue for Scripted {
        fn address(&self) -> u8 {
            EP
        }
        fn max_packet_size(&self) -> usize {
            512
        }
        fn submit(&mut self, buffer: Vec<u8>, length: usize) {
            self.pending.push_back((buffer, length));
        }
        fn wait_next_complete(&mut self, _: Duration) -> Option<Completion> {
            if self.cancelled && !self.returns_cancelled {
                return None;
            }
            if !self.cancelled && self.answer.is_none() {
                return None;
            }
            let (_, length) = self.pending.pop_front()?;
            let (data, status) = if self.cancelled {
                (Vec::new(), Err(TransferError::Cancelled))
            } else {
                let mut a = self.answer.clone().unwrap_or_default();
                a.truncate(length);
                (a, Ok(()))
            };
            Some(Completion {
                actual_len: data.len(),
                data,
                status,
            })
        }
        fn pending(&self) -> usize {
            self.pending.len()
        }
        fn cancel_all(&mut self) {
            self.cancelled = true;
        }
    }

    #[test]
    fn in_lengths_round_up_to_whole_packets() {
        assert_eq!(in_transfer_len(255, 1024), 1024);
        assert_eq!(in_transfer_len(1024, 1024), 1024);
        assert_eq!(in_transfer_len(1025, 1024), 2048);
        assert_eq!(in_transfer_len(0, 1024), 1024);
        assert_eq!(in_transfer_len(2_000_000, 1024), 2_000_896);
        assert_eq!(in_transfer_len(252, 64), 256);
        assert_eq!(in_transfer_len(252, 0), 252);
        for (len, mps) in [(255, 1024), (2_000_000, 1024), (18, 512), (13, 64)] {
            assert_eq!(check_in_length(EP, in_transfer_len(len, mps), mps), Ok(()));
        }
    }

    #[test]
    fn nusb_in_length_rule() {
        assert_eq!(check_in_length(EP, 2048, 1024), Ok(()));
        let e = check_in_length(EP, 255, 1024).unwrap_err();
        assert_eq!(
            e,
            TransferError::InvalidLength {
                endpoint: EP,
                requested: 255,
                max_packet_size: 1024
            }
        );
        assert!(e.to_string().contains(&EP_UVC_VIDEO_IN.to_string()), "{e}");
        assert!(check_in_length(EP_DEPTH_STREAM_IN.address(), 0, 1024).is_err());
        assert!(check_in_length(EP_IMU_STREAM_IN.address(), 512, 1024).is_err());
    }

    #[test]
    fn blocking_transfer_returns_the_answer() {
        let mut q = Scripted {
            answer: Some(vec![0x0A, 0x6F, 0xE0, 0x00]),
            ..Scripted::default()
        };
        let c = transfer_blocking(&mut q, Vec::new(), 512, Duration::from_millis(10));
        assert_eq!(c.status, Ok(()));
        assert_eq!(c.data, vec![0x0A, 0x6F, 0xE0, 0x00]);
        assert_eq!(q.pending(), 0);
    }

    #[test]
    fn blocking_transfer_times_out_and_collects_the_cancelled_transfer() {
        let mut q = Scripted {
            returns_cancelled: true,
            ..Scripted::default()
        };
        let c = transfer_blocking(&mut q, Vec::new(), 512, Duration::from_millis(10));
        assert_eq!(c.status, Err(TransferError::Timeout));
        assert!(q.cancelled);
        assert_eq!(q.pending(), 0);
    }

    #[test]
    fn blocking_transfer_reports_a_transfer_that_never_comes_back() {
        let mut q = Scripted::default();
        let c = transfer_blocking(&mut q, Vec::new(), 512, Duration::from_millis(10));
        assert_eq!(c.status, Err(TransferError::Timeout));
        assert_eq!(q.pending(), 1);
        // The queue is not idle any more: a second blocking transfer refuses to start.
        let c = transfer_blocking(&mut q, vec![1], 512, Duration::from_millis(10));
        assert_eq!(c.status, Err(TransferError::Other(16)));
        assert_eq!(c.data, vec![1]);
    }
}
