//! The sysfs tree of the emulated functions, with the attributes nusb and libudev read.

use crate::sandbox::{TreeItem, TreeKind};
use crate::usbfs::Function;

fn file(path: String, text: String) -> TreeItem {
    TreeItem {
        path,
        kind: TreeKind::File(text.into_bytes(), 0o444),
    }
}

fn dir(path: String) -> TreeItem {
    TreeItem {
        path,
        kind: TreeKind::Dir,
    }
}

/// The tree under `/sys/bus/usb` (paths relative to it).
pub fn usb_tree(functions: &[std::sync::Arc<Function>]) -> Vec<TreeItem> {
    let mut t = vec![dir("devices".into()), dir("drivers".into())];
    for f in functions {
        let name = f.sysname();
        let d = &f.device_descriptor;
        let base = format!("devices/{name}");
        t.push(dir(base.clone()));
        let at = |a: &str| format!("{base}/{a}");
        let bcd_usb = u16::from_le_bytes([d[2], d[3]]);
        let bcd_device = u16::from_le_bytes([d[12], d[13]]);
        let devpath: Vec<String> = f.info.port_path.iter().map(|p| p.to_string()).collect();
        let devpath = devpath.join(".");
        let alt0: Vec<_> = f.interfaces.iter().filter(|i| i.alt == 0).collect();
        let attrs: Vec<(&str, String)> = vec![
            ("busnum", format!("{}\n", f.info.bus)),
            ("devnum", format!("{}\n", f.info.address)),
            ("devpath", format!("{devpath}\n")),
            ("idVendor", format!("{:04x}\n", f.info.vendor_id)),
            ("idProduct", format!("{:04x}\n", f.info.product_id)),
            ("bcdDevice", format!("{bcd_device:04x}\n")),
            (
                "version",
                format!("{:2x}.{:02x}\n", bcd_usb >> 8, bcd_usb & 0xFF),
            ),
            ("bDeviceClass", format!("{:02x}\n", d[4])),
            ("bDeviceSubClass", format!("{:02x}\n", d[5])),
            ("bDeviceProtocol", format!("{:02x}\n", d[6])),
            ("bMaxPacketSize0", format!("{}\n", d[7])),
            ("bNumConfigurations", format!("{}\n", d[17])),
            (
                "bConfigurationValue",
                format!("{}\n", f.config.get(5).copied().unwrap_or(1)),
            ),
            ("bNumInterfaces", format!("{:2}\n", alt0.len())),
            (
                "bmAttributes",
                format!("{:2x}\n", f.config.get(7).copied().unwrap_or(0x80)),
            ),
            ("speed", "5000\n".into()),
            ("maxchild", "0\n".into()),
            ("authorized", "1\n".into()),
            ("removable", "unknown\n".into()),
            (
                "uevent",
                format!(
                    "MAJOR=189\nMINOR={}\nDEVNAME=bus/usb/{:03}/{:03}\nDEVTYPE=usb_device\n\
                     DRIVER=usb\nPRODUCT={:x}/{:x}/{:x}\nTYPE={}/{}/{}\nBUSNUM={:03}\nDEVNUM={:03}\n",
                    (f.info.bus as u32 - 1) * 128 + f.info.address as u32 - 1,
                    f.info.bus,
                    f.info.address,
                    f.info.vendor_id,
                    f.info.product_id,
                    bcd_device,
                    d[4],
                    d[5],
                    d[6],
                    f.info.bus,
                    f.info.address
                ),
            ),
        ];
        for (a, v) in attrs {
            t.push(file(at(a), v));
        }
        let names = ["manufacturer", "product", "serial"];
        for (n, s) in names.iter().zip(f.strings.iter()) {
            if let Some(s) = s {
                t.push(file(at(n), format!("{s}\n")));
            }
        }
        t.push(TreeItem {
            path: at("descriptors"),
            kind: TreeKind::File(f.node_bytes(), 0o444),
        });
        for i in alt0 {
            let iname = format!("{name}:1.{}", i.number);
            let ib = format!("{base}/{iname}");
            t.push(dir(ib.clone()));
            let ia = |a: &str| format!("{ib}/{a}");
            for (a, v) in [
                ("bInterfaceNumber", format!("{:02x}\n", i.number)),
                ("bAlternateSetting", format!("{:2}\n", i.alt)),
                ("bInterfaceClass", format!("{:02x}\n", i.class[0])),
                ("bInterfaceSubClass", format!("{:02x}\n", i.class[1])),
                ("bInterfaceProtocol", format!("{:02x}\n", i.class[2])),
                ("bNumEndpoints", format!("{:02x}\n", i.endpoints)),
                ("authorized", "1\n".into()),
                (
                    "uevent",
                    format!(
                        "DEVTYPE=usb_interface\nPRODUCT={:x}/{:x}/{:x}\nTYPE={}/{}/{}\n\
                         INTERFACE={}/{}/{}\n",
                        f.info.vendor_id,
                        f.info.product_id,
                        bcd_device,
                        d[4],
                        d[5],
                        d[6],
                        i.class[0],
                        i.class[1],
                        i.class[2]
                    ),
                ),
            ] {
                t.push(file(ia(a), v));
            }
            t.push(TreeItem {
                path: format!("devices/{iname}"),
                kind: TreeKind::Link(format!("{name}/{iname}")),
            });
        }
    }
    t
}
