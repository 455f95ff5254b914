//! Finding the two USB halves of an Azure Kinect and reading what pairs them.
//!
//! One unit shows up as a depth device (045E:097C) and a colour device (045E:097D). The device
//! layer opens depth devices by index, reads each one's BOS descriptor and matches the colour
//! device whose BOS carries the same Container ID. This module lists the halves and fetches the
//! BOS bytes through any [`UsbDevice`], real or emulated; decoding the capabilities is the
//! protocol layer's job ([`crate::protocol::descriptors::parse_container_id`]), which
//! [`read_container_id`] calls.

use std::time::Duration;

use super::{Backend, DeviceInfo, Error, ErrorKind, UsbDevice};
use crate::protocol::descriptors::{descriptor_type, PID_COLOR, PID_DEPTH, VID_MICROSOFT};

/// The length of the BOS header (bLength, bDescriptorType, wTotalLength, bNumDeviceCaps).
pub const BOS_HEADER_LEN: usize = 5;

/// The Azure Kinect devices in a listing, each kind in listing order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KinectHalves {
    /// Depth devices (045E:097C).
    pub depth: Vec<DeviceInfo>,
    /// Colour devices (045E:097D).
    pub color: Vec<DeviceInfo>,
}

impl KinectHalves {
    /// Sorts a backend's listing into depth and colour devices, keeping the order.
    pub fn from_list(devices: &[DeviceInfo]) -> KinectHalves {
        let of = |pid| {
            devices
                .iter()
                .filter(|d| d.vendor_id == VID_MICROSOFT && d.product_id == pid)
                .cloned()
                .collect()
        };
        KinectHalves {
            depth: of(PID_DEPTH),
            color: of(PID_COLOR),
        }
    }

    /// Lists `backend`'s devices and sorts them.
    pub fn list(backend: &dyn Backend) -> Result<KinectHalves, Error> {
        Ok(KinectHalves::from_list(&backend.list()?))
    }

    /// The number of units, counted as the SDK does: the larger of the two counts, so a unit
    /// with one half in a bad state still counts.
    pub fn unit_count(&self) -> usize {
        self.depth.len().max(self.color.len())
    }
}

/// Reads a device's whole BOS descriptor (header and every capability), as raw bytes.
///
/// Fails with [`ErrorKind::NotFound`] when the device has none (it stalls the request), and
/// with [`ErrorKind::Other`] when the bytes are not a BOS descriptor or are cut short.
pub fn read_bos_descriptor(device: &dyn UsbDevice, timeout: Duration) -> Result<Vec<u8>, Error> {
    let mut bytes = device.get_descriptor(descriptor_type::BOS, 0, 0, timeout)?;
    let context = || format!("BOS descriptor of {}", device.info());
    if bytes.len() < BOS_HEADER_LEN {
        return Err(Error::new(
            ErrorKind::Other,
            format!(
                "{}: {} bytes, shorter than its header",
                context(),
                bytes.len()
            ),
        ));
    }
    if bytes[1] != descriptor_type::BOS || usize::from(bytes[0]) < BOS_HEADER_LEN {
        return Err(Error::new(
            ErrorKind::Other,
            format!(
                "{}: header has bLength {} and bDescriptorType {}",
                context(),
                bytes[0],
                bytes[1]
            ),
        ));
    }
    let total = usize::from(u16::from_le_bytes([bytes[2], bytes[3]]));
    if total < BOS_HEADER_LEN || bytes.len() < total {
        return Err(Error::new(
            ErrorKind::Other,
            format!(
                "{}: wTotalLength {total} but {} bytes received",
                context(),
                bytes.len()
            ),
        ));
    }
    bytes.truncate(total);
    Ok(bytes)
}

/// Reads a device's Container ID: its BOS descriptor, decoded by
/// [`crate::protocol::descriptors::parse_container_id`].
///
/// A device without a Container ID capability fails with [`ErrorKind::NotFound`] (the SDK
/// refuses such a device: "LIBUSB_BT_CONTAINER_ID not found"); malformed capabilities with
/// [`ErrorKind::Other`].
pub fn read_container_id(device: &dyn UsbDevice, timeout: Duration) -> Result<[u8; 16], Error> {
    let bos = read_bos_descriptor(device, timeout)?;
    match crate::protocol::descriptors::parse_container_id(&bos) {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "BOS descriptor of {}: no Container ID capability",
                device.info()
            ),
        )),
        Err(e) => Err(Error::new(
            ErrorKind::Other,
            format!("BOS descriptor of {}: {e}", device.info()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::descriptors::PID_MICROPHONE;
    use crate::transport::{TransferError, UsbInterface};

    fn info(pid: u16, address: u8) -> DeviceInfo {
        DeviceInfo {
            vendor_id: VID_MICROSOFT,
            product_id: pid,
            bus: 2,
            address,
            port_path: vec![1, address],
            serial: None,
            key: u64::from(address),
        }
    }

    struct Fake {
        info: DeviceInfo,
        reply: Result<Vec<u8>, Error>,
    }

    impl UsbDevice for Fake {
        fn info(&self) -> &DeviceInfo {
            &self.info
        }
        fn get_descriptor(&self, t: u8, i: u8, l: u16, _: Duration) -> Result<Vec<u8>, Error> {
            assert_eq!((t, i, l), (descriptor_type::BOS, 0, 0));
            self.reply.clone()
        }
        fn claim_interface(&self, _: u8, _: bool) -> Result<Box<dyn UsbInterface>, Error> {
            Err(Error::new(ErrorKind::Unsupported, "fake"))
        }
    }

    fn bos(reply: Result<Vec<u8>, Error>) -> Result<Vec<u8>, Error> {
        let fake = Fake {
            info: info(PID_DEPTH, 5),
            reply,
        };
        read_bos_descriptor(&fake, Duration::from_millis(100))
    }

    #[rustfmt::skip]
    const KINECT_LIKE_BOS: [u8; 25] = [
        // BOS header: 5 bytes, type 15, total 25, one capability
        0x05, 0x0F, 0x19, 0x00, 0x01,
        // Container ID capability: 20 bytes, device capability, type 4, reserved, UUID
        0x14, 0x10, 0x04, 0x00,
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
        0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF,
    ];

    #[test]
    fn halves_are_sorted_by_product_id_in_order() {
        let mut other = info(PID_MICROPHONE, 9);
        other.vendor_id = VID_MICROSOFT;
        let mut foreign = info(PID_DEPTH, 10);
        foreign.vendor_id = 0x1234;
        let list = vec![
            info(PID_COLOR, 3),
            info(PID_DEPTH, 4),
            other,
            foreign,
            info(PID_DEPTH, 6),
        ];
        let halves = KinectHalves::from_list(&list);
        assert_eq!(
            halves.depth.iter().map(|d| d.address).collect::<Vec<_>>(),
            vec![4, 6]
        );
        assert_eq!(
            halves.color.iter().map(|d| d.address).collect::<Vec<_>>(),
            vec![3]
        );
        assert_eq!(halves.unit_count(), 2);
        assert_eq!(KinectHalves::from_list(&[]).unit_count(), 0);
    }

    struct Listing(Vec<DeviceInfo>);

    impl Backend for Listing {
        fn list(&self) -> Result<Vec<DeviceInfo>, Error> {
            Ok(self.0.clone())
        }
        fn open(&self, _: &DeviceInfo) -> Result<Box<dyn UsbDevice>, Error> {
            Err(Error::new(ErrorKind::Unsupported, "listing only"))
        }
    }

    #[test]
    fn halves_come_from_a_backend_listing() {
        let backend = Listing(vec![info(PID_DEPTH, 4), info(PID_COLOR, 5)]);
        let halves = KinectHalves::list(&backend).unwrap();
        assert_eq!(halves.depth, vec![info(PID_DEPTH, 4)]);
        assert_eq!(halves.color, vec![info(PID_COLOR, 5)]);
    }

    #[test]
    fn bos_is_read_whole_and_trimmed_to_its_total_length() {
        assert_eq!(
            bos(Ok(KINECT_LIKE_BOS.to_vec())).unwrap(),
            KINECT_LIKE_BOS.to_vec()
        );
        let mut padded = KINECT_LIKE_BOS.to_vec();
        padded.extend_from_slice(&[0xEE; 7]);
        assert_eq!(bos(Ok(padded)).unwrap(), KINECT_LIKE_BOS.to_vec());
    }

    #[test]
    fn bad_bos_bytes_are_typed_errors() {
        let short = bos(Ok(KINECT_LIKE_BOS[..20].to_vec())).unwrap_err();
        assert_eq!(short.kind, ErrorKind::Other);
        assert!(
            short.to_string().contains("wTotalLength 25 but 20 bytes"),
            "{short}"
        );
        let tiny = bos(Ok(vec![5, 15])).unwrap_err();
        assert!(
            tiny.to_string().contains("shorter than its header"),
            "{tiny}"
        );
        let mut wrong_type = KINECT_LIKE_BOS.to_vec();
        wrong_type[1] = 2;
        assert!(bos(Ok(wrong_type)).is_err());
        let mut tiny_total = KINECT_LIKE_BOS.to_vec();
        tiny_total[2] = 3;
        assert!(bos(Ok(tiny_total)).is_err());
    }

    #[test]
    fn container_id_comes_out_of_the_bos() {
        let id = [
            0x4D, 0x7B, 0x11, 0x0A, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB,
            0xCC, 0xDD,
        ];
        let fake = |bytes: Vec<u8>| Fake {
            info: info(PID_COLOR, 7),
            reply: Ok(bytes),
        };
        let full = crate::protocol::descriptors::bos_descriptor(id);
        let t = Duration::from_millis(100);
        assert_eq!(read_container_id(&fake(full), t).unwrap(), id);
        assert_eq!(
            read_container_id(&fake(KINECT_LIKE_BOS.to_vec()), t).unwrap(),
            <[u8; 16]>::try_from(&KINECT_LIKE_BOS[9..]).unwrap()
        );
        // A BOS with only the header: no Container ID.
        let missing = read_container_id(&fake(vec![5, 0x0F, 5, 0, 0]), t).unwrap_err();
        assert_eq!(missing.kind, ErrorKind::NotFound);
        assert!(missing.to_string().contains("no Container ID"), "{missing}");
        // A capability whose length runs past the total.
        let mut broken = KINECT_LIKE_BOS.to_vec();
        broken[5] = 0x30;
        assert_eq!(
            read_container_id(&fake(broken), t).unwrap_err().kind,
            ErrorKind::Other
        );
    }

    #[test]
    fn transport_errors_pass_through() {
        let stalled =
            crate::transport::os_error::transfer_failure(TransferError::Stall, "GET_DESCRIPTOR");
        let err = bos(Err(stalled)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
    }
}

/// One Azure Kinect USB function the system shows, whether or not this process can open it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VisibleFunction {
    /// idProduct (045E:097C depth, 045E:097D colour).
    pub product_id: u16,
    /// The usbfs node, `/dev/bus/usb/BBB/DDD`.
    pub node: std::path::PathBuf,
    /// The node exists and this process may read and write it.
    pub accessible: bool,
}

/// What the system shows of Azure Kinect hardware, read from sysfs and usbfs without opening
/// anything: enough to say why no unit was found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsbPresence {
    /// `/dev/bus/usb` exists (a container or VM without USB passthrough has none).
    pub usbfs: bool,
    /// Azure Kinect depth and colour functions listed in sysfs.
    pub functions: Vec<VisibleFunction>,
}

impl UsbPresence {
    /// Scans `/sys/bus/usb/devices` and `/dev/bus/usb`.
    pub fn scan() -> UsbPresence {
        Self::scan_in(
            std::path::Path::new("/sys/bus/usb/devices"),
            std::path::Path::new("/dev/bus/usb"),
        )
    }

    /// [`UsbPresence::scan`] with other roots (for tests).
    pub fn scan_in(sysfs_devices: &std::path::Path, usbfs: &std::path::Path) -> UsbPresence {
        let read = |dir: &std::path::Path, name: &str| {
            std::fs::read_to_string(dir.join(name))
                .ok()
                .map(|s| s.trim().to_string())
        };
        let mut functions = Vec::new();
        for entry in std::fs::read_dir(sysfs_devices)
            .into_iter()
            .flatten()
            .flatten()
        {
            let dir = entry.path();
            let hex = |name| read(&dir, name).and_then(|v| u16::from_str_radix(&v, 16).ok());
            let (Some(vendor), Some(product)) = (hex("idVendor"), hex("idProduct")) else {
                continue;
            };
            if vendor != VID_MICROSOFT || ![PID_DEPTH, PID_COLOR].contains(&product) {
                continue;
            }
            let num = |name| read(&dir, name).and_then(|v| v.parse::<u32>().ok());
            let (Some(bus), Some(dev)) = (num("busnum"), num("devnum")) else {
                continue;
            };
            let node = usbfs.join(format!("{bus:03}")).join(format!("{dev:03}"));
            let accessible = rustix::fs::access(
                &node,
                rustix::fs::Access::READ_OK | rustix::fs::Access::WRITE_OK,
            )
            .is_ok();
            functions.push(VisibleFunction {
                product_id: product,
                node,
                accessible,
            });
        }
        functions.sort_by(|a, b| a.node.cmp(&b.node));
        UsbPresence {
            usbfs: usbfs.is_dir(),
            functions,
        }
    }
}
