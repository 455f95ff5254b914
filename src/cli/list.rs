//! `--list` output (k4arecorder's format, without its bugs).
//!
//! For each device: `Index:<i>`, then on a successful open `\tSerial:<sn>` (or `\tSerial:ERROR`)
//! and, when the versions were read, `\tColor:<a.b.c>\tDepth:<a.b.c>`; on a failed open
//! `\tDevice Open Failed` (Microsoft's tool writes the index as a raw byte there; we do not).
//! Each device ends with a newline. With no devices: `No devices connected.`.

use std::fmt::Write as _;

use crate::types::Version;

/// What listing found out about one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListedDevice {
    /// The device could not be opened.
    OpenFailed,
    /// The device opened.
    Opened {
        /// Serial number, `None` when it could not be read.
        serial: Option<String>,
        /// Colour and depth firmware versions, `None` when they could not be read.
        versions: Option<(Version, Version)>,
    },
}

/// Formats `--list` output for devices 0, 1, … in order.
pub fn format_device_list(devices: &[ListedDevice]) -> String {
    if devices.is_empty() {
        return "No devices connected.\n".to_owned();
    }
    let mut out = String::new();
    for (index, device) in devices.iter().enumerate() {
        let _ = write!(out, "Index:{index}");
        match device {
            ListedDevice::OpenFailed => out.push_str("\tDevice Open Failed"),
            ListedDevice::Opened { serial, versions } => {
                let _ = write!(out, "\tSerial:{}", serial.as_deref().unwrap_or("ERROR"));
                if let Some((color, depth)) = versions {
                    let _ = write!(out, "\tColor:{color}\tDepth:{depth}");
                }
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32, minor: u32, iteration: u32) -> Version {
        Version {
            major,
            minor,
            iteration,
        }
    }

    #[test]
    fn none() {
        assert_eq!(format_device_list(&[]), "No devices connected.\n");
    }

    #[test]
    fn several() {
        let text = format_device_list(&[
            ListedDevice::Opened {
                serial: Some("000123456789".into()),
                versions: Some((v(1, 6, 110), v(1, 6, 79))),
            },
            ListedDevice::OpenFailed,
            ListedDevice::Opened {
                serial: None,
                versions: None,
            },
        ]);
        assert_eq!(
            text,
            "Index:0\tSerial:000123456789\tColor:1.6.110\tDepth:1.6.79\n\
             Index:1\tDevice Open Failed\n\
             Index:2\tSerial:ERROR\n"
        );
    }
}
