//! The freek4a toolbox commands that need layers not wired into this build yet.
//!
//! Each returns [`NotAvailable`] for now; the device, reader and repair layers will replace
//! these bodies. The argument handling around them is final.

use std::path::Path;

/// A command that this build cannot run yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{command}` is not available in this build (the {needs} is not wired in yet)")]
pub struct NotAvailable {
    /// The command (`list`, `info`, …).
    pub command: &'static str,
    /// What it needs.
    pub needs: &'static str,
}

/// `freek4a list`: enumerate attached devices.
pub fn list_devices() -> Result<Vec<crate::cli::list::ListedDevice>, NotAvailable> {
    Err(NotAvailable {
        command: "list",
        needs: "device layer",
    })
}

/// `freek4a record` / `k4arecorder`: record with parsed options.
pub fn record(_options: &crate::cli::args::RecorderOptions) -> Result<i32, NotAvailable> {
    Err(NotAvailable {
        command: "record",
        needs: "device layer and recording writer",
    })
}

/// `freek4a info FILE [--json]`: describe a recording.
pub fn info(_file: &Path, _json: bool) -> Result<String, NotAvailable> {
    Err(NotAvailable {
        command: "info",
        needs: "recording reader",
    })
}

/// `freek4a extract FILE -o DIR`: write a recording's frames and calibration as files.
pub fn extract(_file: &Path, _out_dir: &Path) -> Result<(), NotAvailable> {
    Err(NotAvailable {
        command: "extract",
        needs: "recording reader",
    })
}

/// `freek4a repair IN -o OUT`: rebuild a damaged or unfinished recording.
pub fn repair(_input: &Path, _output: &Path) -> Result<(), NotAvailable> {
    Err(NotAvailable {
        command: "repair",
        needs: "recording repair",
    })
}
