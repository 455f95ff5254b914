//! The freek4a toolbox commands, over the library's layers.

use std::path::Path;

use crate::cli::args::RecorderOptions;
use crate::cli::emulate::EmulateSpec;
use crate::cli::list::ListedDevice;
use crate::cli::session::record_on_console;
use crate::cli::signal::{SignalInstallError, StopSignal};
use crate::cli::wiring::{backend_for, DeviceSource, FileSink};
use crate::device::{self, Device, DeviceError, OpenOptions};
use crate::playback::{self, info::RecordingInfo};

/// Why a toolbox command failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolboxError {
    /// Listing the devices failed.
    #[error("listing devices: {0}")]
    List(#[source] DeviceError),
    /// The signal handler could not be installed.
    #[error(transparent)]
    Signal(#[from] SignalInstallError),
    /// The recording could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: playback::Error,
    },
    /// Serialising the summary failed.
    #[error("formatting JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The viewer could not start.
    #[error(transparent)]
    View(#[from] crate::view::ViewError),
    /// Extraction failed.
    #[error(transparent)]
    Extract(#[from] crate::cli::extract::ExtractError),
}

/// `freek4a list` / `k4arecorder --list`: every unit, opened in turn for its serial number and
/// firmware versions.
pub fn list_devices(emulate: Option<&EmulateSpec>) -> Result<Vec<ListedDevice>, ToolboxError> {
    let backend = backend_for(emulate);
    let count = device::list(backend.as_ref()).map_err(ToolboxError::List)?;
    let options = OpenOptions {
        depth_engine: device::DepthEngineChoice::RawOnly,
        ..OpenOptions::default()
    };
    Ok((0..count)
        .map(
            |i| match Device::open_with(backend.as_ref(), i, options.clone()) {
                Ok(dev) => {
                    let hw = dev.hardware_version();
                    ListedDevice::Opened {
                        serial: Some(dev.serial_number().to_string()),
                        versions: Some((hw.rgb, hw.depth)),
                    }
                }
                Err(_) => ListedDevice::OpenFailed,
            },
        )
        .collect())
}

/// `freek4a record` / `k4arecorder`: records with parsed options; returns the exit code.
pub fn record(options: &RecorderOptions) -> Result<i32, ToolboxError> {
    let stop = StopSignal::new();
    stop.install()?;
    let mut source = DeviceSource::for_options(options);
    let report = match &options.preview {
        None => record_on_console(&mut source, FileSink::create, options, &stop),
        Some(listen) => crate::cli::view::record_with_preview(&mut source, options, &stop, listen)?,
    };
    Ok(report.exit_code)
}

/// `freek4a info FILE [--json]`: describes a recording.
pub fn info(file: &Path, json: bool) -> Result<String, ToolboxError> {
    let info = RecordingInfo::read(file).map_err(|source| ToolboxError::Read {
        path: file.display().to_string(),
        source,
    })?;
    if json {
        Ok(serde_json::to_string_pretty(&info)? + "\n")
    } else {
        Ok(info.to_string())
    }
}

/// `freek4a extract FILE -o DIR`: writes a recording's frames, IMU samples and calibration as
/// ordinary files.
pub fn extract(file: &Path, out_dir: &Path, preview: bool) -> Result<(), ToolboxError> {
    let report = crate::cli::extract::extract_with_previews(file, out_dir, true, preview)?;
    println!("{report}");
    Ok(())
}

/// `freek4a repair IN -o OUT`: rebuilds a damaged or unfinished recording.
pub fn repair(input: &Path, output: &Path) -> Result<(), ToolboxError> {
    let report = playback::repair::repair(input, output).map_err(|source| ToolboxError::Read {
        path: input.display().to_string(),
        source,
    })?;
    println!(
        "Repaired {} -> {}: kept {} clusters ({} captures, {} IMU samples); dropped {} clusters ({} bytes)",
        input.display(),
        output.display(),
        report.clusters_kept,
        report.captures_kept,
        report.imu_samples_kept,
        report.clusters_dropped,
        report.bytes_dropped
    );
    for fix in &report.fixes {
        println!("  {fix}");
    }
    Ok(())
}
