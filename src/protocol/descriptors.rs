//! USB descriptors: builders for the emulator and parsers for the driver. The device
//! descriptor, configuration descriptors (depth unit: interface 0; colour unit: UVC
//! VideoControl 0, VideoStreaming 1 with isochronous alternate settings, vendor interface 2),
//! the BOS with its Container ID, and string descriptors. Where the SDK is silent (packet
//! sizes, bursts, UVC entity ids, format/frame indices, alternate settings) the values here
//! are the emulator's own choices, listed in `protocol/usb.md`.

use std::fmt;
use std::marker::PhantomData;

use thiserror::Error;

use super::wire::{u16_at, u32_at, PutLe};
use crate::types::{ColorResolution, Fps, Stream};

/// Microsoft's vendor id.
pub const VID_MICROSOFT: u16 = 0x045E;
/// Depth camera (depth MCU and depth stream).
pub const PID_DEPTH: u16 = 0x097C;
/// Colour camera (UVC plus colour MCU/IMU vendor interface).
pub const PID_COLOR: u16 = 0x097D;
/// Internal USB 3 hub.
pub const PID_HUB_SS: u16 = 0x097A;
/// Internal USB 2 hub.
pub const PID_HUB_HS: u16 = 0x097B;
/// Microphone array.
pub const PID_MICROPHONE: u16 = 0x097E;

/// Direction of an endpoint, carried in its type (as nusb does): [`In`] or [`Out`].
pub trait Direction: sealed::Sealed + Copy {
    /// Whether data flows from the device to the host (bit 7 of the address).
    const IS_IN: bool;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::In {}
    impl Sealed for super::Out {}
}

/// Device to host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct In;
/// Host to device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Out;

impl Direction for In {
    const IS_IN: bool = true;
}
impl Direction for Out {
    const IS_IN: bool = false;
}

/// Bit 7 of bEndpointAddress: set for IN endpoints.
pub const ENDPOINT_DIR_IN: u8 = 0x80;

/// A bEndpointAddress whose direction is part of its type, so an OUT endpoint cannot be
/// handed where an IN one is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EndpointAddress<D: Direction> {
    address: u8,
    direction: PhantomData<D>,
}

/// An IN endpoint address.
pub type InEndpoint = EndpointAddress<In>;
/// An OUT endpoint address.
pub type OutEndpoint = EndpointAddress<Out>;

impl<D: Direction> EndpointAddress<D> {
    /// The endpoint `number` (1..=15) in direction `D`.
    pub const fn new(number: u8) -> Self {
        assert!(number >= 1 && number <= 15, "endpoint numbers are 1..=15");
        EndpointAddress {
            address: if D::IS_IN {
                ENDPOINT_DIR_IN | number
            } else {
                number
            },
            direction: PhantomData,
        }
    }

    /// An address read from the wire, when it is a non-control endpoint in direction `D`.
    pub const fn from_address(address: u8) -> Option<Self> {
        let number = address & 0x0F;
        let reserved = address & 0x70;
        if number == 0 || reserved != 0 || ((address & ENDPOINT_DIR_IN) != 0) != D::IS_IN {
            return None;
        }
        Some(EndpointAddress {
            address,
            direction: PhantomData,
        })
    }

    /// bEndpointAddress as on the wire (direction bit included).
    pub const fn address(self) -> u8 {
        self.address
    }

    /// The endpoint number without the direction bit.
    pub const fn number(self) -> u8 {
        self.address & 0x0F
    }
}

impl<D: Direction> From<EndpointAddress<D>> for u8 {
    fn from(e: EndpointAddress<D>) -> u8 {
        e.address
    }
}

impl<D: Direction> fmt::Display for EndpointAddress<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:02X}", self.address)
    }
}

/// A bInterfaceNumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InterfaceNumber(u8);

impl InterfaceNumber {
    /// Interface `n`.
    pub const fn new(n: u8) -> Self {
        InterfaceNumber(n)
    }

    /// The number as on the wire.
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl From<InterfaceNumber> for u8 {
    fn from(i: InterfaceNumber) -> u8 {
        i.0
    }
}

impl fmt::Display for InterfaceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Depth command OUT endpoint.
pub const EP_DEPTH_COMMAND_OUT: OutEndpoint = OutEndpoint::new(2);
/// Depth command response IN endpoint.
pub const EP_DEPTH_RESPONSE_IN: InEndpoint = InEndpoint::new(1);
/// Depth stream IN endpoint.
pub const EP_DEPTH_STREAM_IN: InEndpoint = InEndpoint::new(3);
/// Colour MCU command OUT endpoint.
pub const EP_COLOR_COMMAND_OUT: OutEndpoint = OutEndpoint::new(4);
/// Colour MCU response IN endpoint.
pub const EP_COLOR_RESPONSE_IN: InEndpoint = InEndpoint::new(3);
/// IMU stream IN endpoint.
pub const EP_IMU_STREAM_IN: InEndpoint = InEndpoint::new(2);
/// UVC video stream IN endpoint.
pub const EP_UVC_VIDEO_IN: InEndpoint = InEndpoint::new(1);
/// Depth command interface.
pub const DEPTH_INTERFACE: InterfaceNumber = InterfaceNumber::new(0);
/// UVC VideoControl interface (our choice).
pub const UVC_CONTROL_INTERFACE: InterfaceNumber = InterfaceNumber::new(0);
/// UVC VideoStreaming interface (our choice).
pub const UVC_STREAMING_INTERFACE: InterfaceNumber = InterfaceNumber::new(1);
/// Colour MCU/IMU vendor interface.
pub const COLOR_VENDOR_INTERFACE: InterfaceNumber = InterfaceNumber::new(2);
/// The alternate setting every interface starts in; for UVC VideoStreaming it has no
/// endpoint, so selecting it stops the isochronous stream.
pub const ALT_SETTING_ZERO_BANDWIDTH: u8 = 0;
/// Configuration value the SDK selects.
pub const CONFIGURATION_VALUE: u8 = 1;

/// An MCU's command channel: the vendor interface and its command/response endpoint pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct McuChannel {
    /// The vendor interface carrying the channel.
    pub interface: InterfaceNumber,
    /// Command packets and OUT data phases.
    pub command_out: OutEndpoint,
    /// IN data phases and status packets.
    pub response_in: InEndpoint,
}

/// The depth MCU's command channel (045E:097C).
pub const DEPTH_MCU: McuChannel = McuChannel {
    interface: DEPTH_INTERFACE,
    command_out: EP_DEPTH_COMMAND_OUT,
    response_in: EP_DEPTH_RESPONSE_IN,
};

/// The colour MCU's command channel (045E:097D, beside the UVC interfaces).
pub const COLOR_MCU: McuChannel = McuChannel {
    interface: COLOR_VENDOR_INTERFACE,
    command_out: EP_COLOR_COMMAND_OUT,
    response_in: EP_COLOR_RESPONSE_IN,
};

/// Where a stream's data arrives: function (product id), interface, IN endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamEndpoint {
    /// Product id of the function.
    pub product_id: u16,
    /// Interface the endpoint belongs to.
    pub interface: InterfaceNumber,
    /// The IN endpoint.
    pub endpoint: InEndpoint,
}

impl StreamEndpoint {
    /// The endpoint that carries `stream`.
    pub const fn of(stream: Stream) -> StreamEndpoint {
        match stream {
            Stream::Depth => StreamEndpoint {
                product_id: PID_DEPTH,
                interface: DEPTH_INTERFACE,
                endpoint: EP_DEPTH_STREAM_IN,
            },
            Stream::Color => StreamEndpoint {
                product_id: PID_COLOR,
                interface: UVC_STREAMING_INTERFACE,
                endpoint: EP_UVC_VIDEO_IN,
            },
            Stream::Imu => StreamEndpoint {
                product_id: PID_COLOR,
                interface: COLOR_VENDOR_INTERFACE,
                endpoint: EP_IMU_STREAM_IN,
            },
        }
    }
}

/// bDescriptorType values (USB 3.2 table 9-6, USB Video Class 1.5 table A-4).
pub mod descriptor_type {
    /// Device descriptor.
    pub const DEVICE: u8 = 0x01;
    /// Configuration descriptor.
    pub const CONFIGURATION: u8 = 0x02;
    /// String descriptor.
    pub const STRING: u8 = 0x03;
    /// Interface descriptor.
    pub const INTERFACE: u8 = 0x04;
    /// Endpoint descriptor.
    pub const ENDPOINT: u8 = 0x05;
    /// Interface association descriptor.
    pub const INTERFACE_ASSOCIATION: u8 = 0x0B;
    /// Binary device object store.
    pub const BOS: u8 = 0x0F;
    /// Device capability (inside the BOS).
    pub const DEVICE_CAPABILITY: u8 = 0x10;
    /// SuperSpeed endpoint companion.
    pub const SS_ENDPOINT_COMPANION: u8 = 0x30;
    /// Class-specific interface descriptor (UVC).
    pub const CS_INTERFACE: u8 = 0x24;
}

/// String descriptor indices the unit presents.
pub mod string_index {
    /// iManufacturer.
    pub const MANUFACTURER: u8 = 1;
    /// iProduct.
    pub const PRODUCT: u8 = 2;
    /// iSerialNumber.
    pub const SERIAL: u8 = 3;
}

/// LANGID of US English, the only language the unit's strings are in.
pub const LANGID_EN_US: u16 = 0x0409;

/// bmAttributes transfer type of a bulk endpoint.
pub const TRANSFER_TYPE_BULK: u8 = 2;
/// bmAttributes transfer type of an isochronous endpoint.
pub const TRANSFER_TYPE_ISOCHRONOUS: u8 = 1;
/// bInterfaceClass of video (UVC).
pub const CLASS_VIDEO: u8 = 0x0E;
/// bInterfaceClass of vendor-specific interfaces.
pub const CLASS_VENDOR: u8 = 0xFF;
/// wMaxPacketSize bits 10..0: the packet size (the rest are high-bandwidth multipliers).
pub const MAX_PACKET_SIZE_MASK: u16 = 0x07FF;

/// A malformed descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DescriptorError {
    /// Too short.
    #[error("{what}: need {need} bytes, got {got}")]
    Truncated {
        /// Descriptor.
        what: &'static str,
        /// Bytes required.
        need: usize,
        /// Bytes available.
        got: usize,
    },
    /// Wrong bDescriptorType.
    #[error("{what}: descriptor type 0x{found:02X}, expected 0x{expected:02X}")]
    WrongType {
        /// Descriptor.
        what: &'static str,
        /// Type expected.
        expected: u8,
        /// Type found.
        found: u8,
    },
    /// A bLength of 0 or past the end, or wTotalLength past the end.
    #[error("{what}: bad length {len} at offset {offset}")]
    BadLength {
        /// Descriptor.
        what: &'static str,
        /// Offending length.
        len: usize,
        /// Where.
        offset: usize,
    },
    /// A string descriptor with an odd number of UTF-16 bytes or invalid UTF-16.
    #[error("string descriptor is not valid UTF-16")]
    BadString,
}

fn need(what: &'static str, b: &[u8], n: usize) -> Result<(), DescriptorError> {
    if b.len() < n {
        return Err(DescriptorError::Truncated {
            what,
            need: n,
            got: b.len(),
        });
    }
    Ok(())
}

fn check_type(what: &'static str, b: &[u8], t: u8) -> Result<(), DescriptorError> {
    if b[1] != t {
        return Err(DescriptorError::WrongType {
            what,
            expected: t,
            found: b[1],
        });
    }
    Ok(())
}

/// The 18-byte device descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceDescriptor {
    /// bcdUSB.
    #[doc(alias = "bcdUSB")]
    pub usb_version: u16,
    /// bDeviceClass.
    pub class: u8,
    /// bDeviceSubClass.
    pub subclass: u8,
    /// bDeviceProtocol.
    pub protocol: u8,
    /// bMaxPacketSize0 (exponent 9 for SuperSpeed).
    pub max_packet_size_0: u8,
    /// idVendor.
    pub vendor_id: u16,
    /// idProduct.
    pub product_id: u16,
    /// bcdDevice.
    pub device_version: u16,
    /// iManufacturer.
    pub manufacturer_index: u8,
    /// iProduct.
    pub product_index: u8,
    /// iSerialNumber (must be non-zero for the SDK).
    pub serial_index: u8,
    /// bNumConfigurations.
    pub num_configurations: u8,
}

impl DeviceDescriptor {
    /// Length on the wire.
    pub const LEN: usize = 18;

    /// The emulator's device descriptor for one of the unit's functions (string indices
    /// 1 manufacturer, 2 product, 3 serial).
    pub fn for_product(product_id: u16) -> Self {
        let composite = product_id == PID_COLOR;
        DeviceDescriptor {
            usb_version: 0x0320,
            // The colour unit carries an interface association, so it announces the
            // miscellaneous/IAD class triple.
            class: if composite { 0xEF } else { 0 },
            subclass: if composite { 0x02 } else { 0 },
            protocol: if composite { 0x01 } else { 0 },
            max_packet_size_0: 9,
            vendor_id: VID_MICROSOFT,
            product_id,
            device_version: 0x0100,
            manufacturer_index: 1,
            product_index: 2,
            serial_index: 3,
            num_configurations: 1,
        }
    }

    /// Encodes the 18 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![Self::LEN as u8, 0x01];
        v.put_u16(self.usb_version);
        v.extend_from_slice(&[
            self.class,
            self.subclass,
            self.protocol,
            self.max_packet_size_0,
        ]);
        v.put_u16(self.vendor_id);
        v.put_u16(self.product_id);
        v.put_u16(self.device_version);
        v.extend_from_slice(&[
            self.manufacturer_index,
            self.product_index,
            self.serial_index,
            self.num_configurations,
        ]);
        v
    }

    /// Decodes the 18 bytes.
    pub fn decode(b: &[u8]) -> Result<Self, DescriptorError> {
        need("device descriptor", b, Self::LEN)?;
        check_type("device descriptor", b, 0x01)?;
        Ok(DeviceDescriptor {
            usb_version: u16_at(b, 2),
            class: b[4],
            subclass: b[5],
            protocol: b[6],
            max_packet_size_0: b[7],
            vendor_id: u16_at(b, 8),
            product_id: u16_at(b, 10),
            device_version: u16_at(b, 12),
            manufacturer_index: b[14],
            product_index: b[15],
            serial_index: b[16],
            num_configurations: b[17],
        })
    }
}

/// SuperSpeed endpoint companion values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SsCompanion {
    /// bMaxBurst (packets per burst − 1).
    pub max_burst: u8,
    /// bmAttributes (Mult for isochronous).
    pub attributes: u8,
    /// wBytesPerInterval.
    pub bytes_per_interval: u16,
}

/// An endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// bEndpointAddress (bit 7 = IN).
    pub address: u8,
    /// bmAttributes (1 iso, 2 bulk, 3 interrupt).
    pub attributes: u8,
    /// wMaxPacketSize.
    pub max_packet_size: u16,
    /// bInterval.
    pub interval: u8,
    /// SuperSpeed companion.
    pub companion: Option<SsCompanion>,
}

impl Endpoint {
    fn bulk(address: u8) -> Self {
        Endpoint {
            address,
            attributes: 0x02,
            max_packet_size: 1024,
            interval: 0,
            companion: Some(SsCompanion {
                max_burst: 15,
                attributes: 0,
                bytes_per_interval: 0,
            }),
        }
    }

    /// Whether it is an IN endpoint.
    pub fn is_in(&self) -> bool {
        self.address & ENDPOINT_DIR_IN != 0
    }

    /// wMaxPacketSize without the high-bandwidth multiplier bits.
    pub fn packet_size(&self) -> usize {
        usize::from(self.max_packet_size & MAX_PACKET_SIZE_MASK)
    }

    /// Transfer type bits (0 control, 1 iso, 2 bulk, 3 interrupt).
    pub fn transfer_type(&self) -> u8 {
        self.attributes & 3
    }
}

/// One alternate setting of an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceAlt {
    /// bInterfaceNumber.
    pub number: u8,
    /// bAlternateSetting.
    pub alternate: u8,
    /// bInterfaceClass.
    pub class: u8,
    /// bInterfaceSubClass.
    pub subclass: u8,
    /// bInterfaceProtocol.
    pub protocol: u8,
    /// iInterface.
    pub string_index: u8,
    /// Interface association descriptor placed before this interface (first, count, class,
    /// subclass, protocol).
    pub association: Option<[u8; 5]>,
    /// Class-specific descriptors between the interface and its endpoints, verbatim.
    pub class_specific: Vec<u8>,
    /// Endpoints.
    pub endpoints: Vec<Endpoint>,
}

/// A configuration descriptor with everything under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Configuration {
    /// bConfigurationValue.
    pub value: u8,
    /// bmAttributes.
    pub attributes: u8,
    /// bMaxPower (8 mA units at SuperSpeed).
    pub max_power: u8,
    /// Interfaces and alternate settings, in order.
    pub interfaces: Vec<InterfaceAlt>,
}

impl Configuration {
    /// Number of distinct interfaces.
    pub fn num_interfaces(&self) -> u8 {
        let mut n: Vec<u8> = self.interfaces.iter().map(|i| i.number).collect();
        n.dedup();
        n.len() as u8
    }

    /// Encodes the full descriptor set with wTotalLength.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        for i in &self.interfaces {
            if let Some(a) = i.association {
                body.extend_from_slice(&[8, 0x0B, a[0], a[1], a[2], a[3], a[4], 0]);
            }
            body.extend_from_slice(&[
                9,
                0x04,
                i.number,
                i.alternate,
                i.endpoints.len() as u8,
                i.class,
                i.subclass,
                i.protocol,
                i.string_index,
            ]);
            body.extend_from_slice(&i.class_specific);
            for e in &i.endpoints {
                body.extend_from_slice(&[7, 0x05, e.address, e.attributes]);
                body.put_u16(e.max_packet_size);
                body.push(e.interval);
                if let Some(c) = e.companion {
                    body.extend_from_slice(&[6, 0x30, c.max_burst, c.attributes]);
                    body.put_u16(c.bytes_per_interval);
                }
            }
        }
        let mut v = vec![9, 0x02];
        v.put_u16((9 + body.len()) as u16);
        v.extend_from_slice(&[
            self.num_interfaces(),
            self.value,
            0,
            self.attributes,
            self.max_power,
        ]);
        v.extend_from_slice(&body);
        v
    }

    /// Decodes a configuration descriptor set, walking descriptors by bLength (bounded).
    pub fn decode(b: &[u8]) -> Result<Self, DescriptorError> {
        need("configuration descriptor", b, 9)?;
        check_type("configuration descriptor", b, 0x02)?;
        let total = usize::from(u16_at(b, 2));
        if total > b.len() || total < 9 {
            return Err(DescriptorError::BadLength {
                what: "configuration wTotalLength",
                len: total,
                offset: 2,
            });
        }
        let mut cfg = Configuration {
            value: b[5],
            attributes: b[7],
            max_power: b[8],
            interfaces: Vec::new(),
        };
        let mut pending_iad = None;
        let mut off = usize::from(b[0]).max(9);
        while off < total {
            let len = usize::from(b[off]);
            if len < 2 || off + len > total {
                return Err(DescriptorError::BadLength {
                    what: "descriptor bLength",
                    len,
                    offset: off,
                });
            }
            let d = &b[off..off + len];
            match d[1] {
                0x0B if len >= 8 => pending_iad = Some([d[2], d[3], d[4], d[5], d[6]]),
                0x04 if len >= 9 => cfg.interfaces.push(InterfaceAlt {
                    number: d[2],
                    alternate: d[3],
                    class: d[5],
                    subclass: d[6],
                    protocol: d[7],
                    string_index: d[8],
                    association: pending_iad.take(),
                    class_specific: Vec::new(),
                    endpoints: Vec::new(),
                }),
                0x05 if len >= 7 => {
                    if let Some(i) = cfg.interfaces.last_mut() {
                        i.endpoints.push(Endpoint {
                            address: d[2],
                            attributes: d[3],
                            max_packet_size: u16_at(d, 4),
                            interval: d[6],
                            companion: None,
                        });
                    }
                }
                0x30 if len >= 6 => {
                    if let Some(e) = cfg
                        .interfaces
                        .last_mut()
                        .and_then(|i| i.endpoints.last_mut())
                    {
                        e.companion = Some(SsCompanion {
                            max_burst: d[2],
                            attributes: d[3],
                            bytes_per_interval: u16_at(d, 4),
                        });
                    }
                }
                _ => {
                    if let Some(i) = cfg.interfaces.last_mut() {
                        i.class_specific.extend_from_slice(d);
                    }
                }
            }
            off += len;
        }
        Ok(cfg)
    }

    /// Endpoints of alternate setting 0 of an interface.
    pub fn endpoints(&self, interface: InterfaceNumber) -> Vec<Endpoint> {
        self.interfaces
            .iter()
            .find(|i| i.number == interface.get() && i.alternate == 0)
            .map(|i| i.endpoints.clone())
            .unwrap_or_default()
    }

    /// The UVC formats and frames of the VideoStreaming interface (class 0x0E, subclass 2).
    pub fn uvc_formats(&self) -> Vec<UvcFormat> {
        let Some(vs) = self
            .interfaces
            .iter()
            .find(|i| i.class == CLASS_VIDEO && i.subclass == 0x02 && i.alternate == 0)
        else {
            return Vec::new();
        };
        parse_uvc_formats(&vs.class_specific)
    }
}

/// A vendor-class interface (alternate 0) with bulk endpoints: the command channel and stream
/// of the depth MCU, and of the colour MCU / IMU.
fn vendor_interface(channel: McuChannel, stream: InEndpoint) -> InterfaceAlt {
    let endpoints = [
        channel.command_out.address(),
        channel.response_in.address(),
        stream.address(),
    ];
    InterfaceAlt {
        number: channel.interface.get(),
        alternate: 0,
        class: CLASS_VENDOR,
        subclass: 0,
        protocol: 0,
        string_index: 0,
        association: None,
        class_specific: Vec::new(),
        endpoints: endpoints.into_iter().map(Endpoint::bulk).collect(),
    }
}

/// The depth unit's configuration (emulator's choice of packet sizes and bursts): interface
/// 0, vendor class, bulk endpoints 0x02 OUT, 0x81 IN, 0x83 IN.
pub fn depth_configuration() -> Configuration {
    Configuration {
        value: CONFIGURATION_VALUE,
        attributes: 0x80,
        max_power: 112,
        interfaces: vec![vendor_interface(DEPTH_MCU, EP_DEPTH_STREAM_IN)],
    }
}

/// UVC format kinds the colour unit offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UvcFormatKind {
    /// VS_FORMAT_MJPEG.
    Mjpeg,
    /// VS_FORMAT_UNCOMPRESSED with this GUID.
    Uncompressed([u8; 16]),
}

/// GUID of uncompressed YUY2.
pub const GUID_YUY2: [u8; 16] = *b"YUY2\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71";
/// GUID of uncompressed NV12.
pub const GUID_NV12: [u8; 16] = *b"NV12\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71";

/// A UVC frame descriptor's essentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UvcFrame {
    /// bFrameIndex.
    pub index: u8,
    /// wWidth.
    pub width: u16,
    /// wHeight.
    pub height: u16,
    /// dwMaxVideoFrameBufferSize.
    pub max_frame_bytes: u32,
    /// Discrete intervals, 100 ns units (empty for continuous ranges).
    pub intervals_100ns: Vec<u32>,
}

/// A UVC format descriptor with its frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UvcFormat {
    /// bFormatIndex.
    pub index: u8,
    /// Kind.
    pub kind: UvcFormatKind,
    /// Frames.
    pub frames: Vec<UvcFrame>,
}

fn parse_uvc_formats(cs: &[u8]) -> Vec<UvcFormat> {
    let mut out: Vec<UvcFormat> = Vec::new();
    let mut off = 0;
    while off + 3 <= cs.len() {
        let len = usize::from(cs[off]);
        if len < 3 || off + len > cs.len() {
            break;
        }
        let d = &cs[off..off + len];
        match (d[1], d[2]) {
            (0x24, 0x06) if len >= 4 => out.push(UvcFormat {
                index: d[3],
                kind: UvcFormatKind::Mjpeg,
                frames: Vec::new(),
            }),
            (0x24, 0x04) if len >= 21 => {
                let mut g = [0; 16];
                g.copy_from_slice(&d[5..21]);
                out.push(UvcFormat {
                    index: d[3],
                    kind: UvcFormatKind::Uncompressed(g),
                    frames: Vec::new(),
                });
            }
            (0x24, 0x07) | (0x24, 0x05) if len >= 26 => {
                let n = usize::from(d[25]);
                let intervals = if n > 0 && len >= 26 + 4 * n {
                    (0..n).map(|i| u32_at(d, 26 + 4 * i)).collect()
                } else {
                    Vec::new()
                };
                if let Some(f) = out.last_mut() {
                    f.frames.push(UvcFrame {
                        index: d[3],
                        width: u16_at(d, 5),
                        height: u16_at(d, 7),
                        max_frame_bytes: u32_at(d, 17),
                        intervals_100ns: intervals,
                    });
                }
            }
            _ => {}
        }
        off += len;
    }
    out
}

fn intervals_for(res: ColorResolution) -> Vec<u32> {
    let max = super::modes::color_max_fps(res).map_or(0, Fps::hz);
    [Fps::Fps30, Fps::Fps15, Fps::Fps5]
        .into_iter()
        .filter(|f| f.hz() <= max)
        .map(super::uvc::frame_interval_100ns)
        .collect()
}

fn frame_descriptor(subtype: u8, index: u8, res: ColorResolution, max_bytes: u32) -> Vec<u8> {
    let (w, h) = res.dimensions().unwrap_or((0, 0));
    let iv = intervals_for(res);
    let mut d = vec![0, 0x24, subtype, index, 0];
    d.put_u16(w as u16);
    d.put_u16(h as u16);
    let fps_max = 10_000_000 / iv.first().copied().unwrap_or(333_333);
    d.put_u32(max_bytes.saturating_mul(8).saturating_mul(1)); // dwMinBitRate
    d.put_u32(max_bytes.saturating_mul(8).saturating_mul(fps_max)); // dwMaxBitRate
    d.put_u32(max_bytes);
    d.put_u32(iv[0]); // default interval: the fastest
    d.push(iv.len() as u8);
    for i in &iv {
        d.put_u32(*i);
    }
    d[0] = d.len() as u8;
    d
}

/// The UVC VideoStreaming class-specific descriptors the emulator presents: format 1 MJPEG
/// with frames 1–6 (720p … 3072p), format 2 YUY2 and format 3 NV12 with one 720p frame each.
pub fn uvc_streaming_descriptors() -> Vec<u8> {
    let mut formats = Vec::new();
    // MJPEG.
    formats.extend_from_slice(&[11, 0x24, 0x06, 1, 6, 0x01, 1, 0, 0, 0, 0]);
    for (i, res) in ColorResolution::ON.into_iter().enumerate() {
        let (w, h) = res.dimensions().unwrap_or((0, 0));
        formats.extend(frame_descriptor(0x07, i as u8 + 1, res, w * h * 2));
    }
    formats.extend_from_slice(&[6, 0x24, 0x0D, 1, 1, 4]); // colour matching
    for (index, guid, bpp, bytes) in [
        (2u8, GUID_YUY2, 16u8, 1_843_200u32),
        (3, GUID_NV12, 12, 1_382_400),
    ] {
        formats.extend_from_slice(&[27, 0x24, 0x04, index, 1]);
        formats.extend_from_slice(&guid);
        formats.extend_from_slice(&[bpp, 1, 0, 0, 0, 0]);
        formats.extend(frame_descriptor(0x05, 1, ColorResolution::R720p, bytes));
        formats.extend_from_slice(&[6, 0x24, 0x0D, 1, 1, 4]);
    }
    // Input header: 13 fixed bytes plus one bmaControls byte per format.
    let total = 13 + 3 + formats.len();
    let mut v = vec![13 + 3, 0x24, 0x01, 3];
    v.put_u16(total as u16);
    v.extend_from_slice(&[EP_UVC_VIDEO_IN.address(), 0, 3, 0, 0, 0, 1]);
    v.extend_from_slice(&[0, 0, 0]); // bmaControls per format
    v.extend(formats);
    v
}

/// UVC entity ids the emulator uses (our choice).
pub const UVC_CAMERA_TERMINAL_ID: u8 = 1;
/// Processing unit id.
pub const UVC_PROCESSING_UNIT_ID: u8 = 2;
/// Output terminal id.
pub const UVC_OUTPUT_TERMINAL_ID: u8 = 3;
/// dwClockFrequency in the VC header (our choice: the 90 kHz device timebase).
pub const UVC_CLOCK_HZ: u32 = 90_000;

fn uvc_control_descriptors() -> Vec<u8> {
    let mut units = Vec::new();
    // Camera terminal: AE mode + exposure absolute controls.
    units.extend_from_slice(&[18, 0x24, 0x02, UVC_CAMERA_TERMINAL_ID, 0x01, 0x02, 0, 0]);
    units.extend_from_slice(&[0, 0, 0, 0, 0, 0, 3, 0x0A, 0, 0]);
    // Processing unit: brightness, contrast, saturation, sharpness, gain, WB temp, backlight,
    // power line, WB auto.
    units.extend_from_slice(&[
        13,
        0x24,
        0x05,
        UVC_PROCESSING_UNIT_ID,
        UVC_CAMERA_TERMINAL_ID,
        0,
        0,
        3,
    ]);
    units.extend_from_slice(&[0x5F, 0x14, 0x00, 0, 0]);
    // Output terminal: streaming.
    units.extend_from_slice(&[
        9,
        0x24,
        0x03,
        UVC_OUTPUT_TERMINAL_ID,
        0x01,
        0x01,
        0,
        UVC_PROCESSING_UNIT_ID,
        0,
    ]);
    let mut v = vec![13, 0x24, 0x01];
    v.put_u16(0x0100);
    v.put_u16((13 + units.len()) as u16);
    v.put_u32(UVC_CLOCK_HZ);
    v.extend_from_slice(&[1, UVC_STREAMING_INTERFACE.get()]);
    v.extend(units);
    v
}

/// wBytesPerInterval of the VideoStreaming alternate settings 1..=5 (our choice).
pub const UVC_ALT_BYTES_PER_INTERVAL: [u16; 5] = [1024, 8192, 16384, 32768, 49152];

/// The colour unit's configuration: UVC VC interface 0, VS interface 1 (alt 0 without
/// endpoints, alts 1–5 with isochronous EP 0x81), vendor interface 2 with 0x04 OUT, 0x83 IN,
/// 0x82 IN (bulk: the SDK uses the bulk API; our choice).
pub fn color_configuration() -> Configuration {
    let mut interfaces = vec![
        InterfaceAlt {
            number: UVC_CONTROL_INTERFACE.get(),
            alternate: 0,
            class: 0x0E,
            subclass: 0x01,
            protocol: 0,
            string_index: 0,
            association: Some([UVC_CONTROL_INTERFACE.get(), 2, CLASS_VIDEO, 0x03, 0]),
            class_specific: uvc_control_descriptors(),
            endpoints: Vec::new(),
        },
        InterfaceAlt {
            number: UVC_STREAMING_INTERFACE.get(),
            alternate: 0,
            class: 0x0E,
            subclass: 0x02,
            protocol: 0,
            string_index: 0,
            association: None,
            class_specific: uvc_streaming_descriptors(),
            endpoints: Vec::new(),
        },
    ];
    for (i, bpi) in UVC_ALT_BYTES_PER_INTERVAL.into_iter().enumerate() {
        let packets = u32::from(bpi).div_ceil(1024);
        let (burst, mult) = if packets > 16 {
            (15, (packets / 16 - 1) as u8)
        } else {
            ((packets - 1) as u8, 0)
        };
        interfaces.push(InterfaceAlt {
            number: UVC_STREAMING_INTERFACE.get(),
            alternate: i as u8 + 1,
            class: 0x0E,
            subclass: 0x02,
            protocol: 0,
            string_index: 0,
            association: None,
            class_specific: Vec::new(),
            endpoints: vec![Endpoint {
                address: EP_UVC_VIDEO_IN.address(),
                attributes: 0x05, // isochronous, asynchronous
                max_packet_size: 1024,
                interval: 1,
                companion: Some(SsCompanion {
                    max_burst: burst,
                    attributes: mult,
                    bytes_per_interval: bpi,
                }),
            }],
        });
    }
    interfaces.push(vendor_interface(COLOR_MCU, EP_IMU_STREAM_IN));
    Configuration {
        value: CONFIGURATION_VALUE,
        attributes: 0x80,
        max_power: 112,
        interfaces,
    }
}

/// The BOS descriptor: USB 2.0 extension, SuperSpeed capability and the Container ID (the SDK
/// fails to open a unit without it; both functions of one unit carry the same id).
pub fn bos_descriptor(container_id: [u8; 16]) -> Vec<u8> {
    let mut caps = Vec::new();
    caps.extend_from_slice(&[7, 0x10, 0x02]);
    caps.put_u32(0x0000_0002); // LPM
    caps.extend_from_slice(&[10, 0x10, 0x03, 0, 0x0E, 0x00, 0x01, 0x0A]);
    caps.put_u16(0x07FF);
    caps.extend_from_slice(&[20, 0x10, 0x04, 0]);
    caps.extend_from_slice(&container_id);
    let mut v = vec![5, 0x0F];
    v.put_u16((5 + caps.len()) as u16);
    v.push(3);
    v.extend(caps);
    v
}

/// Finds the Container ID capability in a BOS descriptor (`None` when absent, as the SDK's
/// "LIBUSB_BT_CONTAINER_ID not found").
pub fn parse_container_id(bos: &[u8]) -> Result<Option<[u8; 16]>, DescriptorError> {
    need("BOS descriptor", bos, 5)?;
    check_type("BOS descriptor", bos, 0x0F)?;
    let total = usize::from(u16_at(bos, 2)).min(bos.len());
    let mut off = usize::from(bos[0]).max(5);
    while off + 3 <= total {
        let len = usize::from(bos[off]);
        if len < 3 || off + len > total {
            return Err(DescriptorError::BadLength {
                what: "BOS capability",
                len,
                offset: off,
            });
        }
        if bos[off + 1] == 0x10 && bos[off + 2] == 0x04 && len >= 20 {
            let mut id = [0; 16];
            id.copy_from_slice(&bos[off + 4..off + 20]);
            return Ok(Some(id));
        }
        off += len;
    }
    Ok(None)
}

/// Formats a Container ID the way the SDK logs it: bytes 3,2,1,0 - 5,4 - 7,6 - 9,8 - 10..15.
pub fn container_id_text(id: &[u8; 16]) -> String {
    let h = |r: &[usize]| {
        r.iter()
            .map(|&i| format!("{:02x}", id[i]))
            .collect::<String>()
    };
    format!(
        "{{{}-{}-{}-{}-{}}}",
        h(&[3, 2, 1, 0]),
        h(&[5, 4]),
        h(&[7, 6]),
        h(&[9, 8]),
        h(&[10, 11, 12, 13, 14, 15])
    )
}

/// String descriptor 0: supported languages (US English).
pub fn string_languages() -> Vec<u8> {
    vec![4, 0x03, 0x09, 0x04]
}

/// Encodes a string descriptor (UTF-16LE, at most 126 code units).
pub fn string_descriptor(s: &str) -> Vec<u8> {
    let units: Vec<u16> = s.encode_utf16().take(126).collect();
    let mut v = vec![(2 + units.len() * 2) as u8, 0x03];
    for u in units {
        v.put_u16(u);
    }
    v
}

/// Decodes a string descriptor.
pub fn parse_string_descriptor(b: &[u8]) -> Result<String, DescriptorError> {
    need("string descriptor", b, 2)?;
    check_type("string descriptor", b, 0x03)?;
    let len = usize::from(b[0]);
    if len > b.len() || len % 2 != 0 {
        return Err(DescriptorError::BadString);
    }
    let units: Vec<u16> = (2..len).step_by(2).map(|i| u16_at(b, i)).collect();
    String::from_utf16(&units).map_err(|_| DescriptorError::BadString)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const DEPTH_DEVICE: [u8; 18] = [
        0x12, 0x01,       // length, DEVICE
        0x20, 0x03,       // USB 3.2
        0x00, 0x00, 0x00, // class per interface
        0x09,             // 512-byte EP0 (SuperSpeed exponent)
        0x5e, 0x04,       // VID 045E
        0x7c, 0x09,       // PID 097C
        0x00, 0x01,       // bcdDevice 1.00
        0x01, 0x02, 0x03, // manufacturer, product, serial strings
        0x01,             // one configuration
    ];

    #[test]
    fn device_descriptor_round_trip() {
        let d = DeviceDescriptor::for_product(PID_DEPTH);
        assert_eq!(d.encode(), DEPTH_DEVICE);
        assert_eq!(DeviceDescriptor::decode(&DEPTH_DEVICE).unwrap(), d);
        assert!(DeviceDescriptor::decode(&DEPTH_DEVICE[..17]).is_err());
        let mut bad = DEPTH_DEVICE;
        bad[1] = 2;
        assert!(matches!(
            DeviceDescriptor::decode(&bad),
            Err(DescriptorError::WrongType { .. })
        ));
    }

    #[rustfmt::skip]
    const DEPTH_CONFIG: [u8; 9 + 9 + 3 * 13] = [
        0x09, 0x02, 0x39, 0x00, 0x01, 0x01, 0x00, 0x80, 0x70, // configuration, 57 bytes, 1 interface
        0x09, 0x04, 0x00, 0x00, 0x03, 0xff, 0x00, 0x00, 0x00, // interface 0, 3 endpoints, vendor
        0x07, 0x05, 0x02, 0x02, 0x00, 0x04, 0x00,             // EP 0x02 OUT bulk 1024
        0x06, 0x30, 0x0f, 0x00, 0x00, 0x00,                   // companion: burst 16
        0x07, 0x05, 0x81, 0x02, 0x00, 0x04, 0x00,             // EP 0x81 IN bulk 1024
        0x06, 0x30, 0x0f, 0x00, 0x00, 0x00,
        0x07, 0x05, 0x83, 0x02, 0x00, 0x04, 0x00,             // EP 0x83 IN bulk 1024
        0x06, 0x30, 0x0f, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn endpoint_addresses_carry_their_direction() {
        assert_eq!(EP_DEPTH_STREAM_IN.address(), 0x83);
        assert_eq!(EP_DEPTH_COMMAND_OUT.address(), 0x02);
        assert_eq!(EP_COLOR_RESPONSE_IN.number(), 3);
        assert_eq!(InEndpoint::from_address(0x82), Some(EP_IMU_STREAM_IN));
        assert_eq!(OutEndpoint::from_address(0x04), Some(EP_COLOR_COMMAND_OUT));
        // The wrong direction, endpoint 0 and reserved bits are refused.
        assert_eq!(InEndpoint::from_address(0x02), None);
        assert_eq!(OutEndpoint::from_address(0x81), None);
        assert_eq!(InEndpoint::from_address(0x80), None);
        assert_eq!(InEndpoint::from_address(0x91), None);
        assert_eq!(EP_UVC_VIDEO_IN.to_string(), "0x81");
        assert_eq!(u8::from(COLOR_VENDOR_INTERFACE), 2);
    }

    #[test]
    fn depth_configuration_round_trip() {
        assert_eq!(depth_configuration().encode(), DEPTH_CONFIG);
        let c = Configuration::decode(&DEPTH_CONFIG).unwrap();
        assert_eq!(c, depth_configuration());
        let eps: Vec<u8> = c
            .endpoints(DEPTH_INTERFACE)
            .iter()
            .map(|e| e.address)
            .collect();
        assert_eq!(eps, [0x02, 0x81, 0x83]);
        assert!(Configuration::decode(&DEPTH_CONFIG[..40]).is_err()); // wTotalLength past the end
        let mut bad = DEPTH_CONFIG;
        bad[18] = 0; // zero bLength
        assert!(matches!(
            Configuration::decode(&bad),
            Err(DescriptorError::BadLength { .. })
        ));
    }

    #[test]
    fn color_configuration_round_trip_and_uvc() {
        let cfg = color_configuration();
        let bytes = cfg.encode();
        let back = Configuration::decode(&bytes).unwrap();
        assert_eq!(back, cfg);
        assert_eq!(back.num_interfaces(), 3);
        let eps: Vec<u8> = back
            .endpoints(COLOR_VENDOR_INTERFACE)
            .iter()
            .map(|e| e.address)
            .collect();
        assert_eq!(eps, [0x04, 0x83, 0x82]);
        let alts: Vec<_> = back.interfaces.iter().filter(|i| i.number == 1).collect();
        assert_eq!(alts.len(), 6);
        assert_eq!(
            alts[5].endpoints[0].companion.unwrap().bytes_per_interval,
            49152
        );
        assert_eq!(alts[5].endpoints[0].transfer_type(), 1);
        let formats = back.uvc_formats();
        assert_eq!(formats.len(), 3);
        assert_eq!(formats[0].kind, UvcFormatKind::Mjpeg);
        assert_eq!(formats[0].frames.len(), 6);
        assert_eq!(
            (formats[0].frames[5].width, formats[0].frames[5].height),
            (4096, 3072)
        );
        assert_eq!(formats[0].frames[5].intervals_100ns, [666_666, 2_000_000]);
        assert_eq!(
            formats[0].frames[1].intervals_100ns,
            [333_333, 666_666, 2_000_000]
        );
        assert_eq!(formats[1].kind, UvcFormatKind::Uncompressed(GUID_YUY2));
        assert_eq!(formats[2].frames[0].max_frame_bytes, 1_382_400);
        assert_eq!(DeviceDescriptor::for_product(PID_COLOR).class, 0xEF);
    }

    #[test]
    fn bos_round_trip() {
        let id: [u8; 16] = std::array::from_fn(|i| i as u8);
        let bos = bos_descriptor(id);
        #[rustfmt::skip]
        let tail: [u8; 4] = [
            0x14, 0x10, 0x04, 0x00, // Container ID capability, reserved
        ];
        assert_eq!(&bos[bos.len() - 20..bos.len() - 16], tail);
        assert_eq!(u16_at(&bos, 2) as usize, bos.len());
        assert_eq!(parse_container_id(&bos).unwrap(), Some(id));
        assert_eq!(
            parse_container_id(&bos[..bos.len() - 20]).ok().flatten(),
            None
        );
        assert_eq!(
            container_id_text(&id),
            "{03020100-0504-0706-0908-0a0b0c0d0e0f}"
        );
        assert!(parse_container_id(&[5, 0x0F]).is_err());
        let mut bad = bos.clone();
        bad[5] = 1; // capability bLength 1
        assert!(parse_container_id(&bad).is_err());
    }

    #[test]
    fn strings() {
        let s = string_descriptor("000019484312");
        assert_eq!(&s[..4], [26, 0x03, b'0', 0]);
        assert_eq!(parse_string_descriptor(&s).unwrap(), "000019484312");
        assert!(parse_string_descriptor(&s[..5]).is_err());
        assert_eq!(string_languages(), [4, 3, 0x09, 0x04]);
    }
}
