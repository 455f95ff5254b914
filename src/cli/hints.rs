//! Hints printed on stderr after k4arecorder's bare "Device not found." (which stays on its
//! own line, as scripts match it): why no unit was found and what to do.

use crate::protocol::descriptors::{PID_COLOR, PID_DEPTH};
use crate::transport::discovery::UsbPresence;

/// The hint for trying without hardware.
pub const EMULATE_HINT: &str =
    "Hint: to try without a camera, add --emulate (an emulated Azure Kinect).";

/// Hints for a USB set-up in which no complete unit was found (each line starts with "Hint:").
pub fn device_not_found_hints(p: &UsbPresence) -> Vec<String> {
    let mut out = Vec::new();
    let blocked: Vec<_> = p.functions.iter().filter(|f| !f.accessible).collect();
    let has = |pid| p.functions.iter().any(|f| f.product_id == pid);
    if !p.usbfs {
        out.push(
            "Hint: this system has no /dev/bus/usb, so no USB device is visible at all (a container or VM without USB passed through?)."
                .to_string(),
        );
    } else if !blocked.is_empty() {
        let nodes: Vec<String> = blocked
            .iter()
            .map(|f| f.node.display().to_string())
            .collect();
        out.push(format!(
            "Hint: an Azure Kinect is plugged in but this user may not open {}; install the udev rules with `sudo freek4a udev install`, then unplug and re-plug the device.",
            nodes.join(", ")
        ));
    } else if p.functions.is_empty() {
        out.push(
            "Hint: no Azure Kinect is plugged in (no USB device 045E:097C or 045E:097D); check that its power supply is connected and the USB-C cable goes to a USB 3 port."
                .to_string(),
        );
    } else if !(has(PID_DEPTH) && has(PID_COLOR)) {
        out.push(format!(
            "Hint: only the {} function of an Azure Kinect is visible; a unit needs both the depth (045E:097C) and colour (045E:097D) functions: check the power supply and use a USB 3 port.",
            if has(PID_DEPTH) { "depth" } else { "colour" }
        ));
    }
    out.push(EMULATE_HINT.to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::discovery::VisibleFunction;

    fn f(product_id: u16, accessible: bool) -> VisibleFunction {
        VisibleFunction {
            product_id,
            node: format!("/dev/bus/usb/002/{product_id:03}").into(),
            accessible,
        }
    }

    #[test]
    fn one_cause_then_the_emulator() {
        let none = UsbPresence::default();
        assert!(device_not_found_hints(&none)[0].contains("no /dev/bus/usb"));
        let empty = UsbPresence {
            usbfs: true,
            functions: vec![],
        };
        assert!(device_not_found_hints(&empty)[0].contains("no Azure Kinect is plugged in"));
        let blocked = UsbPresence {
            usbfs: true,
            functions: vec![f(PID_DEPTH, false), f(PID_COLOR, true)],
        };
        let h = device_not_found_hints(&blocked);
        assert!(
            h[0].contains("sudo freek4a udev install") && h[0].contains("/dev/bus/usb/002/"),
            "{h:?}"
        );
        let half = UsbPresence {
            usbfs: true,
            functions: vec![f(PID_COLOR, true)],
        };
        assert!(device_not_found_hints(&half)[0].contains("only the colour function"));
        for p in [none, empty, blocked, half] {
            let h = device_not_found_hints(&p);
            assert_eq!(h.len(), 2);
            assert_eq!(h[1], EMULATE_HINT);
            assert!(h
                .iter()
                .all(|l| l.starts_with("Hint: ") && !l.contains('\n')));
        }
    }
}
