//! The real backend: nusb for enumeration, control, bulk and interrupt transfers, and the Linux
//! usbfs module ([`super::usbfs_iso`]) for the isochronous colour stream nusb cannot do.
//!
//! Every nusb type is wrapped one to one: [`NusbBackend`] lists with `nusb::list_devices`,
//! [`NusbDevice`] is a `nusb::Device`, [`NusbInterface`] a claimed `nusb::Interface`, and
//! [`NusbEndpointQueue`] one `nusb::Endpoint<Bulk | Interrupt, In | Out>`, the type chosen from
//! the interface descriptor. Errors go through [`super::os_error`], the one mapping place.
//!
//! An interface with isochronous endpoints (the colour camera's VideoStreaming interface) is not
//! claimed through nusb on Linux: [`NusbDevice::claim_interface`] claims it on a second usbfs
//! file descriptor instead, because completions are reaped per open file and nusb's event thread
//! would otherwise reap our isochronous URBs.

use std::collections::VecDeque;
use std::time::Duration;

use nusb::descriptors::TransferType;
use nusb::transfer::{Buffer, Bulk, ControlIn, ControlOut, ControlType, In, Interrupt, Out};
use nusb::transfer::{Direction, Recipient};
use nusb::MaybeFuture;

use super::os_error::{self, EINVAL};
use super::EndpointQueue;
use super::{
    Backend, Completion, ControlSetup, DeviceInfo, Error, ErrorKind, IsoInQueue, TransferError,
    UsbDevice, UsbInterface,
};
use crate::protocol::descriptors::ENDPOINT_DIR_IN;

/// The nusb backend. Stateless: every call asks the OS.
#[derive(Clone, Copy, Debug, Default)]
pub struct NusbBackend;

impl NusbBackend {
    /// A backend over the machine's USB devices.
    pub fn new() -> NusbBackend {
        NusbBackend
    }
}

/// Packs bus and address into [`DeviceInfo::key`]; the pair names a device until it is unplugged.
pub fn device_key(bus: u8, address: u8) -> u64 {
    (u64::from(bus) << 8) | u64::from(address)
}

fn bus_of(d: &nusb::DeviceInfo) -> u8 {
    #[cfg(target_os = "linux")]
    {
        d.busnum()
    }
    #[cfg(not(target_os = "linux"))]
    {
        d.bus_id().parse().unwrap_or(0)
    }
}

fn port_path_of(d: &nusb::DeviceInfo) -> Vec<u8> {
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
    {
        d.port_chain().to_vec()
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
    {
        let _ = d;
        Vec::new()
    }
}

fn is_missing_usb_subsystem(e: &nusb::Error) -> bool {
    const ENOENT: u32 = 2;
    e.os_error() == Some(ENOENT)
}

fn info_of(d: &nusb::DeviceInfo) -> DeviceInfo {
    let bus = bus_of(d);
    let address = d.device_address();
    DeviceInfo {
        vendor_id: d.vendor_id(),
        product_id: d.product_id(),
        bus,
        address,
        port_path: port_path_of(d),
        serial: d.serial_number().map(str::to_owned),
        key: device_key(bus, address),
    }
}

impl Backend for NusbBackend {
    /// Every attached device. A machine without a USB subsystem in sysfs (nusb reports ENOENT
    /// for `/sys/bus/usb/devices`, as in containers) has no devices: an empty list, not an error.
    fn list(&self) -> Result<Vec<DeviceInfo>, Error> {
        match nusb::list_devices().wait() {
            Ok(devices) => Ok(devices.map(|d| info_of(&d)).collect()),
            Err(e) if is_missing_usb_subsystem(&e) => Ok(Vec::new()),
            Err(e) => Err(os_error::from_nusb_error(&e, "list USB devices")),
        }
    }

    fn open(&self, device: &DeviceInfo) -> Result<Box<dyn UsbDevice>, Error> {
        let context = format!("open {device}");
        let found = nusb::list_devices()
            .wait()
            .map_err(|e| os_error::from_nusb_error(&e, &context))?
            .find(|d| {
                device_key(bus_of(d), d.device_address()) == device.key
                    && d.vendor_id() == device.vendor_id
                    && d.product_id() == device.product_id
            })
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("{context}: no longer attached"),
                )
            })?;
        let handle = found
            .open()
            .wait()
            .map_err(|e| os_error::from_nusb_error(&e, &context))?;
        Ok(Box::new(NusbDevice {
            info: device.clone(),
            device: handle,
        }))
    }
}

/// An opened device.
#[derive(Debug)]
pub struct NusbDevice {
    info: DeviceInfo,
    device: nusb::Device,
}

impl NusbDevice {
    /// The nusb handle, for what the seam does not cover (reset, configuration).
    pub fn nusb_device(&self) -> &nusb::Device {
        &self.device
    }

    /// Whether any alternate setting of `number` in the active configuration has an
    /// isochronous endpoint.
    fn has_iso_endpoints(&self, number: u8) -> bool {
        let Ok(config) = self.device.active_configuration() else {
            return false;
        };
        config
            .interface_alt_settings()
            .filter(|alt| alt.interface_number() == number)
            .flat_map(|alt| alt.endpoints().collect::<Vec<_>>())
            .any(|ep| ep.transfer_type() == TransferType::Isochronous)
    }
}

impl UsbDevice for NusbDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn get_descriptor(
        &self,
        descriptor_type: u8,
        index: u8,
        language_id: u16,
        timeout: Duration,
    ) -> Result<Vec<u8>, Error> {
        let context = format!(
            "GET_DESCRIPTOR type {descriptor_type} index {index} from {}",
            self.info
        );
        self.device
            .get_descriptor(descriptor_type, index, language_id, timeout)
            .wait()
            .map_err(|e| match e {
                nusb::GetDescriptorError::Transfer(t) => {
                    os_error::transfer_failure(os_error::from_nusb_control_error(t), &context)
                }
                nusb::GetDescriptorError::InvalidDescriptor => {
                    Error::new(ErrorKind::Other, format!("{context}: invalid descriptor"))
                }
            })
    }

    fn claim_interface(
        &self,
        number: u8,
        detach_kernel_driver: bool,
    ) -> Result<Box<dyn UsbInterface>, Error> {
        #[cfg(target_os = "linux")]
        if self.has_iso_endpoints(number) {
            let iface = super::usbfs_iso::UsbfsInterface::claim(
                self.info.bus,
                self.info.address,
                number,
                detach_kernel_driver,
            )?;
            return Ok(Box::new(NusbInterface {
                number,
                inner: Inner::Usbfs(iface),
            }));
        }
        let context = format!("claim interface {number} of {}", self.info);
        let claimed = if detach_kernel_driver {
            self.device.detach_and_claim_interface(number).wait()
        } else {
            self.device.claim_interface(number).wait()
        };
        let interface = claimed.map_err(|e| os_error::from_nusb_error(&e, context))?;
        Ok(Box::new(NusbInterface {
            number,
            inner: Inner::Nusb(interface),
        }))
    }
}

/// A claimed interface: through nusb, or (isochronous interfaces on Linux) through our own usbfs
/// file descriptor.
pub struct NusbInterface {
    number: u8,
    inner: Inner,
}

enum Inner {
    Nusb(nusb::Interface),
    #[cfg(target_os = "linux")]
    Usbfs(super::usbfs_iso::UsbfsInterface),
}

/// Splits bmRequestType into nusb's direction, type and recipient; `None` for the reserved type
/// (3) and reserved recipients (4..=31).
pub fn split_request_type(request_type: u8) -> Option<(Direction, ControlType, Recipient)> {
    let direction = if request_type & 0x80 != 0 {
        Direction::In
    } else {
        Direction::Out
    };
    let control_type = match (request_type >> 5) & 0x3 {
        0 => ControlType::Standard,
        1 => ControlType::Class,
        2 => ControlType::Vendor,
        _ => return None,
    };
    let recipient = match request_type & 0x1F {
        0 => Recipient::Device,
        1 => Recipient::Interface,
        2 => Recipient::Endpoint,
        3 => Recipient::Other,
        _ => return None,
    };
    Some((direction, control_type, recipient))
}

impl UsbInterface for NusbInterface {
    fn number(&self) -> u8 {
        self.number
    }

    fn control_in(
        &self,
        setup: ControlSetup,
        length: u16,
        timeout: Duration,
    ) -> Result<Vec<u8>, TransferError> {
        let interface = match &self.inner {
            Inner::Nusb(i) => i,
            #[cfg(target_os = "linux")]
            Inner::Usbfs(u) => return u.control_in(setup, length, timeout),
        };
        let Some((Direction::In, control_type, recipient)) = split_request_type(setup.request_type)
        else {
            return Err(TransferError::Other(EINVAL));
        };
        interface
            .control_in(
                ControlIn {
                    control_type,
                    recipient,
                    request: setup.request,
                    value: setup.value,
                    index: setup.index,
                    length,
                },
                timeout,
            )
            .wait()
            .map_err(os_error::from_nusb_control_error)
    }

    fn control_out(
        &self,
        setup: ControlSetup,
        data: &[u8],
        timeout: Duration,
    ) -> Result<(), TransferError> {
        let interface = match &self.inner {
            Inner::Nusb(i) => i,
            #[cfg(target_os = "linux")]
            Inner::Usbfs(u) => return u.control_out(setup, data, timeout),
        };
        let Some((Direction::Out, control_type, recipient)) =
            split_request_type(setup.request_type)
        else {
            return Err(TransferError::Other(EINVAL));
        };
        interface
            .control_out(
                ControlOut {
                    control_type,
                    recipient,
                    request: setup.request,
                    value: setup.value,
                    index: setup.index,
                    data,
                },
                timeout,
            )
            .wait()
            .map_err(os_error::from_nusb_control_error)
    }

    fn set_alt_setting(&self, alt_setting: u8) -> Result<(), Error> {
        match &self.inner {
            Inner::Nusb(i) => i.set_alt_setting(alt_setting).wait().map_err(|e| {
                os_error::from_nusb_error(
                    &e,
                    format!(
                        "set interface {} to alternate setting {alt_setting}",
                        self.number
                    ),
                )
            }),
            #[cfg(target_os = "linux")]
            Inner::Usbfs(u) => u.set_alt_setting(alt_setting),
        }
    }

    fn endpoint(&self, address: u8) -> Result<Box<dyn EndpointQueue>, Error> {
        let interface = match &self.inner {
            Inner::Nusb(i) => i,
            #[cfg(target_os = "linux")]
            Inner::Usbfs(u) => return u.endpoint(address),
        };
        let context = format!("open endpoint 0x{address:02X} of interface {}", self.number);
        let transfer_type = interface
            .descriptor()
            .and_then(|d| d.endpoints().find(|ep| ep.address() == address))
            .map(|ep| ep.transfer_type())
            .ok_or_else(|| {
                Error::new(ErrorKind::NotFound, format!("{context}: no such endpoint"))
            })?;
        let is_in = address & ENDPOINT_DIR_IN != 0;
        let map = |e: nusb::Error| os_error::from_nusb_error(&e, &context);
        let endpoint = match (transfer_type, is_in) {
            (TransferType::Bulk, true) => {
                Ep::BulkIn(interface.endpoint::<Bulk, In>(address).map_err(map)?)
            }
            (TransferType::Bulk, false) => {
                Ep::BulkOut(interface.endpoint::<Bulk, Out>(address).map_err(map)?)
            }
            (TransferType::Interrupt, true) => {
                Ep::InterruptIn(interface.endpoint::<Interrupt, In>(address).map_err(map)?)
            }
            (TransferType::Interrupt, false) => {
                Ep::InterruptOut(interface.endpoint::<Interrupt, Out>(address).map_err(map)?)
            }
            (other, _) => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("{context}: {other:?} endpoint is not a bulk or interrupt queue"),
                ))
            }
        };
        Ok(Box::new(NusbEndpointQueue {
            endpoint,
            slots: VecDeque::new(),
        }))
    }

    fn iso_in_endpoint(
        &self,
        address: u8,
        packets_per_transfer: usize,
        packet_size: usize,
    ) -> Result<Box<dyn IsoInQueue>, Error> {
        match &self.inner {
            Inner::Nusb(_) => Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "isochronous endpoint 0x{address:02X} on interface {}: the interface has no \
                     isochronous endpoints, or this platform has no usbfs",
                    self.number
                ),
            )),
            #[cfg(target_os = "linux")]
            Inner::Usbfs(u) => u.iso_in_endpoint(address, packets_per_transfer, packet_size),
        }
    }
}

/// One nusb endpoint, whichever of the four type/direction pairs it is.
enum Ep {
    BulkIn(nusb::Endpoint<Bulk, In>),
    BulkOut(nusb::Endpoint<Bulk, Out>),
    InterruptIn(nusb::Endpoint<Interrupt, In>),
    InterruptOut(nusb::Endpoint<Interrupt, Out>),
}

macro_rules! each_ep {
    ($ep:expr, $e:ident => $body:expr) => {
        match $ep {
            Ep::BulkIn($e) => $body,
            Ep::BulkOut($e) => $body,
            Ep::InterruptIn($e) => $body,
            Ep::InterruptOut($e) => $body,
        }
    };
}

/// A submitted transfer: in nusb's queue, or refused before it got there (kept here so it
/// completes in order with the others).
enum Slot {
    InNusb,
    Refused(Completion),
}

/// A bulk or interrupt endpoint queue over a nusb `Endpoint`.
pub struct NusbEndpointQueue {
    endpoint: Ep,
    slots: VecDeque<Slot>,
}

/// Turns a `Vec` into a nusb IN buffer requesting `length` bytes, reusing its allocation.
/// `None` when `length` does not fit nusb's 32-bit lengths.
pub fn in_buffer(mut buffer: Vec<u8>, length: usize) -> Option<Buffer> {
    u32::try_from(length).ok()?;
    buffer.clear();
    buffer.reserve(length);
    u32::try_from(buffer.capacity()).ok()?;
    let mut b = Buffer::from(buffer);
    b.set_requested_len(length);
    Some(b)
}

/// Turns a `Vec` into a nusb OUT buffer sending its first `length` bytes. `None` when `length`
/// exceeds the data or nusb's 32-bit lengths.
pub fn out_buffer(mut buffer: Vec<u8>, length: usize) -> Option<Buffer> {
    if length > buffer.len() || u32::try_from(buffer.capacity()).is_err() {
        return None;
    }
    buffer.truncate(length);
    Some(Buffer::from(buffer))
}

fn completion_of(c: nusb::transfer::Completion) -> Completion {
    let actual_len = c.actual_len;
    // IN: nusb sets the length to the bytes received; OUT: it is the data sent.
    let data = c.buffer.into_vec();
    Completion {
        data,
        actual_len,
        status: c.status.map_err(os_error::from_nusb_transfer_error),
    }
}

impl EndpointQueue for NusbEndpointQueue {
    fn address(&self) -> u8 {
        each_ep!(&self.endpoint, e => e.endpoint_address())
    }

    fn max_packet_size(&self) -> usize {
        each_ep!(&self.endpoint, e => e.max_packet_size())
    }

    fn submit(&mut self, buffer: Vec<u8>, length: usize) {
        let is_in = matches!(self.endpoint, Ep::BulkIn(_) | Ep::InterruptIn(_));
        // nusb would refuse this length with a bare EINVAL; refuse it here with a typed error
        // that names the endpoint and its packet size.
        if is_in {
            if let Err(e) = super::check_in_length(self.address(), length, self.max_packet_size()) {
                self.slots.push_back(Slot::Refused(Completion {
                    data: Vec::new(),
                    actual_len: 0,
                    status: Err(e),
                }));
                return;
            }
        }
        let prepared = if is_in {
            in_buffer(buffer, length)
        } else {
            out_buffer(buffer, length)
        };
        let Some(buf) = prepared else {
            self.slots.push_back(Slot::Refused(Completion {
                data: Vec::new(),
                actual_len: 0,
                status: Err(TransferError::Other(EINVAL)),
            }));
            return;
        };
        each_ep!(&mut self.endpoint, e => e.submit(buf));
        self.slots.push_back(Slot::InNusb);
    }

    fn wait_next_complete(&mut self, timeout: Duration) -> Option<Completion> {
        match self.slots.front()? {
            Slot::Refused(_) => match self.slots.pop_front() {
                Some(Slot::Refused(c)) => Some(c),
                _ => None,
            },
            Slot::InNusb => {
                let done = each_ep!(&mut self.endpoint, e => e.wait_next_complete(timeout))?;
                self.slots.pop_front();
                Some(completion_of(done))
            }
        }
    }

    fn pending(&self) -> usize {
        self.slots.len()
    }

    fn cancel_all(&mut self) {
        each_ep!(&mut self.endpoint, e => e.cancel_all());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_type_splits_into_nusb_fields() {
        // GET_DESCRIPTOR: IN, standard, device.
        assert!(matches!(
            split_request_type(0x80),
            Some((Direction::In, ControlType::Standard, Recipient::Device))
        ));
        // UVC GET_CUR on an interface: IN, class, interface.
        assert!(matches!(
            split_request_type(0xA1),
            Some((Direction::In, ControlType::Class, Recipient::Interface))
        ));
        // UVC SET_CUR: OUT, class, interface.
        assert!(matches!(
            split_request_type(0x21),
            Some((Direction::Out, ControlType::Class, Recipient::Interface))
        ));
        // Vendor, endpoint; vendor, other.
        assert!(matches!(
            split_request_type(0xC2),
            Some((Direction::In, ControlType::Vendor, Recipient::Endpoint))
        ));
        assert!(matches!(
            split_request_type(0x43),
            Some((Direction::Out, ControlType::Vendor, Recipient::Other))
        ));
        assert!(split_request_type(0x60).is_none()); // reserved type
        assert!(split_request_type(0x04).is_none()); // reserved recipient
    }

    #[test]
    fn in_buffers_request_the_length_and_reuse_the_allocation() {
        let v = Vec::with_capacity(4096);
        let ptr = v.as_ptr();
        let b = in_buffer(v, 2048).unwrap();
        assert_eq!(b.requested_len(), 2048);
        assert_eq!(b.len(), 0);
        assert!(b.capacity() >= 2048);
        let back = b.into_vec();
        assert_eq!(back.as_ptr(), ptr);
        // A stale buffer with old contents is cleared and grown.
        let b = in_buffer(vec![7; 10], 1024).unwrap();
        assert_eq!((b.requested_len(), b.len()), (1024, 0));
        assert!(in_buffer(Vec::new(), usize::MAX).is_none());
    }

    #[test]
    fn out_buffers_send_the_requested_prefix() {
        let b = out_buffer(vec![1, 2, 3, 4, 5], 3).unwrap();
        assert_eq!(&b[..], &[1, 2, 3]);
        assert!(out_buffer(vec![1, 2], 3).is_none());
    }

    #[test]
    fn listing_this_machine_succeeds_with_or_without_usb() {
        use crate::transport::Backend;
        let devices = NusbBackend::new().list().unwrap();
        for d in &devices {
            assert_eq!(d.key, device_key(d.bus, d.address), "{d}");
        }
    }

    #[test]
    fn keys_pack_bus_and_address() {
        assert_eq!(device_key(3, 17), 0x0311);
        assert_ne!(device_key(1, 2), device_key(2, 1));
    }

    #[test]
    fn completion_keeps_received_bytes_and_maps_status() {
        let mut b = Buffer::new(1024);
        b.extend_from_slice(&[9; 100]);
        let c = completion_of(nusb::transfer::Completion {
            buffer: b,
            actual_len: 100,
            status: Err(nusb::transfer::TransferError::Unknown(12)),
        });
        assert_eq!(c.data, vec![9; 100]);
        assert_eq!(c.actual_len, 100);
        assert_eq!(c.status, Err(TransferError::NoMemory));
    }
}
