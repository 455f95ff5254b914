//! The one place where OS error numbers and nusb errors become [`ErrorKind`] and
//! [`TransferError`].
//!
//! Both the nusb backend and the usbfs isochronous module go through these functions, so a given
//! kernel answer means the same thing whichever path produced it. Error numbers are Linux's
//! (they are what usbfs and nusb's Linux backend report); on other platforms nusb's own kinds are
//! mapped and the raw code is kept only as [`TransferError::Other`].

use rustix::io::Errno;

use super::usbfs_memory::USBFS_MEMORY_HINT;
use super::{Error, ErrorKind, TransferError};

/// `ENOMEM`, the answer of usbfs when a transfer would exceed `usbfs_memory_mb`.
pub const ENOMEM: i32 = 12;
/// `EINVAL`, reported as [`TransferError::Other`] for rejected transfer arguments.
pub const EINVAL: i32 = 22;

/// What to tell a user whose device node the kernel refused to open.
pub const PERMISSION_HINT: &str = "this user may not open the device's node in /dev/bus/usb: \
install the udev rules with `sudo freek4a udev install` and re-plug the device";

/// Appends the advice for `kind` (usbfs memory, node permissions) to `context`.
fn with_hint(kind: ErrorKind, mut context: String) -> String {
    let hint = match kind {
        ErrorKind::NoMemory => USBFS_MEMORY_HINT,
        ErrorKind::PermissionDenied => PERMISSION_HINT,
        _ => return context,
    };
    context.push_str("; ");
    context.push_str(hint);
    context
}

/// Maps a usbfs transfer or packet status (a positive errno; 0 is success) to a transfer result.
///
/// The meanings follow the kernel's `Documentation/driver-api/usb/error-codes.rst`: ENOENT and
/// ECONNRESET are URBs the host unlinked, EXDEV is an isochronous packet the controller skipped.
pub fn errno_to_transfer_result(errno: i32) -> Result<(), TransferError> {
    if errno == 0 {
        return Ok(());
    }
    Err(errno_to_transfer_error(errno))
}

/// Maps a non-zero errno from a transfer to a [`TransferError`].
pub fn errno_to_transfer_error(errno: i32) -> TransferError {
    let e = Errno::from_raw_os_error(errno);
    match e {
        Errno::NOENT | Errno::CONNRESET => TransferError::Cancelled,
        Errno::PIPE => TransferError::Stall,
        Errno::NODEV | Errno::SHUTDOWN => TransferError::Disconnected,
        Errno::OVERFLOW => TransferError::Overflow,
        Errno::PROTO | Errno::ILSEQ | Errno::TIME | Errno::COMM | Errno::NOSR | Errno::XDEV => {
            TransferError::Fault
        }
        Errno::TIMEDOUT => TransferError::Timeout,
        Errno::NOMEM => TransferError::NoMemory,
        _ => TransferError::Other(errno),
    }
}

/// Maps an errno returned by a submit call (the transfer never started). ENOENT here means the
/// endpoint does not exist, not a cancellation.
pub fn submit_errno_to_transfer_error(errno: i32) -> TransferError {
    match Errno::from_raw_os_error(errno) {
        Errno::NOMEM => TransferError::NoMemory,
        Errno::NODEV | Errno::SHUTDOWN => TransferError::Disconnected,
        _ => TransferError::Other(errno),
    }
}

/// An [`Error`] for a request that failed as a transfer (a descriptor read, say). A stall on a
/// standard request means the device does not have what was asked for.
pub fn transfer_failure(e: TransferError, context: impl Into<String>) -> Error {
    let kind = match e {
        TransferError::Disconnected => ErrorKind::Disconnected,
        TransferError::NoMemory => ErrorKind::NoMemory,
        TransferError::Stall => ErrorKind::NotFound,
        _ => ErrorKind::Other,
    };
    let mut context = format!("{}: {e}", context.into());
    if kind == ErrorKind::NoMemory {
        context.push_str("; ");
        context.push_str(USBFS_MEMORY_HINT);
    }
    Error {
        kind,
        context,
        os_code: None,
    }
}

/// Maps an errno from a non-transfer operation (open, claim, set interface…) to an [`ErrorKind`].
pub fn errno_to_kind(errno: i32) -> ErrorKind {
    match Errno::from_raw_os_error(errno) {
        Errno::NODEV | Errno::SHUTDOWN => ErrorKind::Disconnected,
        Errno::BUSY => ErrorKind::Busy,
        Errno::ACCESS | Errno::PERM => ErrorKind::PermissionDenied,
        Errno::NOENT | Errno::NXIO => ErrorKind::NotFound,
        Errno::NOMEM => ErrorKind::NoMemory,
        Errno::NOSYS | Errno::NOTTY | Errno::OPNOTSUPP => ErrorKind::Unsupported,
        _ => ErrorKind::Other,
    }
}

/// An [`Error`] for a failed OS call: kind from the errno, the errno kept, and for ENOMEM the
/// `usbfs_memory_mb` advice appended to the context.
pub fn os_error(errno: i32, context: impl Into<String>) -> Error {
    let kind = errno_to_kind(errno);
    Error {
        kind,
        context: with_hint(kind, context.into()),
        os_code: Some(errno),
    }
}

/// Maps a nusb transfer error to ours. nusb folds unknown errnos into `Unknown(code)`; those
/// go through [`errno_to_transfer_error`] so that ENOMEM at submit becomes
/// [`TransferError::NoMemory`].
pub fn from_nusb_transfer_error(e: nusb::transfer::TransferError) -> TransferError {
    use nusb::transfer::TransferError as N;
    match e {
        N::Cancelled => TransferError::Cancelled,
        N::Stall => TransferError::Stall,
        N::Disconnected => TransferError::Disconnected,
        N::Fault => TransferError::Fault,
        N::InvalidArgument => TransferError::Other(EINVAL),
        N::Unknown(code) => match i32::try_from(code) {
            Ok(errno) => errno_to_transfer_error(errno),
            Err(_) => TransferError::Other(i32::MAX),
        },
    }
}

/// Maps a nusb control-transfer error. nusb reports a control timeout as `Cancelled` (it cancels
/// the request itself); nothing else cancels a blocking control request, so it is a timeout.
pub fn from_nusb_control_error(e: nusb::transfer::TransferError) -> TransferError {
    match from_nusb_transfer_error(e) {
        TransferError::Cancelled => TransferError::Timeout,
        other => other,
    }
}

/// Maps a nusb error to ours, keeping the OS code and naming what was being done.
pub fn from_nusb_error(e: &nusb::Error, context: impl Into<String>) -> Error {
    let os_code = e.os_error().and_then(|c| i32::try_from(c).ok());
    if let Some(errno) = os_code {
        if errno_to_kind(errno) == ErrorKind::NoMemory {
            return os_error(errno, context);
        }
    }
    let kind = match e.kind() {
        nusb::ErrorKind::Disconnected => ErrorKind::Disconnected,
        nusb::ErrorKind::Busy => ErrorKind::Busy,
        nusb::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        nusb::ErrorKind::NotFound => ErrorKind::NotFound,
        nusb::ErrorKind::Unsupported => ErrorKind::Unsupported,
        _ => ErrorKind::Other,
    };
    Error {
        kind,
        context: with_hint(kind, format!("{}: {e}", context.into())),
        os_code,
    }
}

/// Maps a `std::io::Error` (file opens, sysfs reads) to ours.
pub fn from_io_error(e: &std::io::Error, context: impl Into<String>) -> Error {
    match e.raw_os_error() {
        Some(errno) => os_error(errno, context),
        None => Error::new(ErrorKind::Other, format!("{}: {e}", context.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_errnos_map_to_their_meaning() {
        assert_eq!(errno_to_transfer_result(0), Ok(()));
        assert_eq!(errno_to_transfer_error(2), TransferError::Cancelled); // ENOENT
        assert_eq!(errno_to_transfer_error(104), TransferError::Cancelled); // ECONNRESET
        assert_eq!(errno_to_transfer_error(32), TransferError::Stall); // EPIPE
        assert_eq!(errno_to_transfer_error(19), TransferError::Disconnected); // ENODEV
        assert_eq!(errno_to_transfer_error(108), TransferError::Disconnected); // ESHUTDOWN
        assert_eq!(errno_to_transfer_error(75), TransferError::Overflow); // EOVERFLOW
        assert_eq!(errno_to_transfer_error(71), TransferError::Fault); // EPROTO
        assert_eq!(errno_to_transfer_error(84), TransferError::Fault); // EILSEQ
        assert_eq!(errno_to_transfer_error(62), TransferError::Fault); // ETIME
        assert_eq!(errno_to_transfer_error(18), TransferError::Fault); // EXDEV
        assert_eq!(errno_to_transfer_error(110), TransferError::Timeout); // ETIMEDOUT
        assert_eq!(errno_to_transfer_error(12), TransferError::NoMemory); // ENOMEM
        assert_eq!(errno_to_transfer_error(5), TransferError::Other(5)); // EIO
    }

    #[test]
    fn submit_errnos_are_not_cancellations() {
        assert_eq!(submit_errno_to_transfer_error(12), TransferError::NoMemory);
        assert_eq!(
            submit_errno_to_transfer_error(19),
            TransferError::Disconnected
        );
        assert_eq!(submit_errno_to_transfer_error(2), TransferError::Other(2));
    }

    #[test]
    fn refused_opens_name_the_udev_rules() {
        let e = os_error(13, "open 045E:097C at bus 2 address 3");
        assert_eq!(e.kind, ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("freek4a udev install"), "{e}");
        let e = os_error(16, "claim interface 0");
        assert!(!e.to_string().contains("udev"), "{e}");
    }

    #[test]
    fn failed_requests_become_errors() {
        let e = transfer_failure(TransferError::Stall, "GET_DESCRIPTOR type 15");
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(
            e.to_string(),
            "GET_DESCRIPTOR type 15: endpoint stalled: NotFound"
        );
        let e = transfer_failure(TransferError::NoMemory, "read");
        assert_eq!(e.kind, ErrorKind::NoMemory);
        assert!(e.to_string().contains("usbfs_memory_mb=0"));
        assert_eq!(
            transfer_failure(TransferError::Disconnected, "x").kind,
            ErrorKind::Disconnected
        );
    }

    #[test]
    fn operation_errnos_map_to_kinds() {
        assert_eq!(errno_to_kind(19), ErrorKind::Disconnected);
        assert_eq!(errno_to_kind(16), ErrorKind::Busy);
        assert_eq!(errno_to_kind(13), ErrorKind::PermissionDenied);
        assert_eq!(errno_to_kind(1), ErrorKind::PermissionDenied);
        assert_eq!(errno_to_kind(2), ErrorKind::NotFound);
        assert_eq!(errno_to_kind(12), ErrorKind::NoMemory);
        assert_eq!(errno_to_kind(25), ErrorKind::Unsupported); // ENOTTY
        assert_eq!(errno_to_kind(5), ErrorKind::Other);
    }

    #[test]
    fn nusb_unknown_enomem_becomes_no_memory() {
        use nusb::transfer::TransferError as N;
        assert_eq!(
            from_nusb_transfer_error(N::Unknown(12)),
            TransferError::NoMemory
        );
        assert_eq!(
            from_nusb_transfer_error(N::Unknown(5)),
            TransferError::Other(5)
        );
        assert_eq!(
            from_nusb_transfer_error(N::InvalidArgument),
            TransferError::Other(22)
        );
        assert_eq!(from_nusb_transfer_error(N::Stall), TransferError::Stall);
        assert_eq!(
            from_nusb_transfer_error(N::Cancelled),
            TransferError::Cancelled
        );
        assert_eq!(
            from_nusb_control_error(N::Cancelled),
            TransferError::Timeout
        );
        assert_eq!(
            from_nusb_control_error(N::Disconnected),
            TransferError::Disconnected
        );
    }

    #[test]
    fn enomem_error_names_the_kernel_parameter() {
        let e = os_error(12, "submit depth transfer");
        assert_eq!(e.kind, ErrorKind::NoMemory);
        assert_eq!(e.os_code, Some(12));
        let text = e.to_string();
        assert!(text.starts_with("submit depth transfer; "), "{text}");
        assert!(text.contains("usbcore.usbfs_memory_mb"), "{text}");
        let busy = os_error(16, "claim interface 1");
        assert_eq!(busy.kind, ErrorKind::Busy);
        assert_eq!(busy.to_string(), "claim interface 1: Busy (os error 16)");
    }

    #[test]
    fn io_errors_keep_their_errno() {
        let e = from_io_error(
            &std::io::Error::from_raw_os_error(13),
            "open /dev/bus/usb/001/002",
        );
        assert_eq!(e.kind, ErrorKind::PermissionDenied);
        assert_eq!(e.os_code, Some(13));
    }
}
