//! The freek4a toolbox commands, over the library's layers.

use std::path::Path;

use crate::cli::args::RecorderOptions;
use crate::cli::emulate::EmulateSpec;
use crate::cli::list::ListedDevice;
use crate::cli::session::record_on_console;
use crate::cli::signal::{SignalInstallError, StopSignal};
use crate::cli::wiring::{backend_for, DeviceSource};
use crate::device::{self, Device, DeviceError, OpenOptions};
use crate::playback::{self, info::RecordingInfo};
use crate::record::FileSink;

/// Why a toolbox command failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolboxError {
    /// Listing the devices failed.
    #[error("listing devices: {0}")]
    List(#[source] DeviceError),
    /// The signal handler could not be installed.
    #[error(transparent)]
    Signal(#[from] SignalInstallError),
    /// The recording could not be opened (the error names the path).
    #[error(transparent)]
    Open(crate::playback::Error),
    /// Repair refused or failed.
    #[error(transparent)]
    Repair(#[from] playback::repair::RepairError),
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
    /// The depth engine could not be loaded.
    #[error("loading the depth engine: {0}")]
    Engine(#[source] crate::depthengine::DepthEngineError),
    /// Depth conversion failed.
    #[error(transparent)]
    Convert(#[from] crate::record::ConvertError),
}

/// `freek4a convert-depth IN -o OUT`: runs a depth engine over a raw depth recording. The
/// engine is `engine_path` (or `FREEK4A_DEPTH_ENGINE`, then the SDK's search locations); a
/// recording from an emulated unit, whose calibration block only the emulated engine accepts,
/// gets the emulated engine unless a path is given.
pub fn convert_depth(
    input: &Path,
    output: &Path,
    engine_path: Option<&Path>,
    headless_gl: bool,
    overwrite: bool,
) -> Result<(), ToolboxError> {
    use crate::depthengine::DepthEngine;
    let env_path = std::env::var_os("FREEK4A_DEPTH_ENGINE").map(std::path::PathBuf::from);
    let engine_path = engine_path.map(Path::to_path_buf).or(env_path);
    let emulated_block = {
        let pb = playback::Playback::open(input).map_err(|e| read_error(input, e))?;
        // Said before any engine is looked for.
        if !pb
            .tracks()
            .iter()
            .any(|t| t.name == crate::record::raw::RAW_DEPTH_TRACK)
        {
            return Err(crate::record::ConvertError::NotRaw(input.to_path_buf()).into());
        }
        pb.attachment(crate::record::raw::RAW_DEPTH_CALIBRATION_FILE)
            .is_some_and(|a| {
                a.data
                    .starts_with(&crate::protocol::depth_raw::CAL_BLOCK_MAGIC)
            })
    };
    let engine = if engine_path.is_none() && emulated_block {
        DepthEngine::emulated()
    } else {
        if let Some(line) = crate::cli::gl::prepare_for_engine(headless_gl) {
            eprintln!("{line}");
        }
        DepthEngine::load(engine_path.as_deref())
    }
    .map_err(ToolboxError::Engine)?;
    let options = crate::record::ConvertOptions { overwrite };
    let started = std::time::Instant::now();
    let s = crate::record::convert_depth(input, output, &engine, &options)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "Converted {} -> {}: {} raw frames into {} depth captures ({} dropped by the engine), \
         {} colour images and {} IMU samples copied; {} bytes in {secs:.1} s ({:.1} frames/s)",
        input.display(),
        output.display(),
        s.raw_frames,
        s.depth_captures,
        s.engine_drops,
        s.color_images,
        s.imu_samples,
        s.bytes,
        s.raw_frames as f64 / secs.max(1e-9),
    );
    Ok(())
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
        None => record_on_console(
            &mut source,
            |_: &DeviceSource, o: &RecorderOptions, settings, queue| {
                FileSink::create(&o.output_path, settings, queue)
            },
            options,
            &stop,
        ),
        Some(listen) => crate::cli::view::record_with_preview(&mut source, options, &stop, listen)?,
    };
    Ok(report.exit_code)
}

/// A reader's error on `path`, naming the path once.
fn read_error(path: &Path, source: playback::Error) -> ToolboxError {
    match source {
        e @ playback::Error::Open { .. } => ToolboxError::Open(e),
        source => ToolboxError::Read {
            path: path.display().to_string(),
            source,
        },
    }
}

/// `freek4a info FILE [--json]`: describes a recording.
pub fn info(file: &Path, json: bool) -> Result<String, ToolboxError> {
    let info = RecordingInfo::read(file).map_err(|e| read_error(file, e))?;
    if json {
        Ok(serde_json::to_string_pretty(&info)? + "\n")
    } else {
        Ok(info.to_string())
    }
}

/// `freek4a extract FILE -o DIR`: writes a recording's frames, IMU samples and calibration as
/// ordinary files.
pub fn extract(
    file: &Path,
    out_dir: &Path,
    options: &crate::cli::extract::ExtractOptions,
) -> Result<(), ToolboxError> {
    let report = crate::cli::extract::extract_with(file, out_dir, options)?;
    println!("{report}");
    Ok(())
}

/// `freek4a repair IN -o OUT [--force] [--calibration FILE]`: rebuilds a damaged or unfinished
/// recording.
pub fn repair(
    input: &Path,
    output: &Path,
    options: &playback::repair::RepairOptions,
) -> Result<(), ToolboxError> {
    let report = playback::repair::repair_with(input, output, options)?;
    if report.nothing_to_fix {
        println!(
            "Nothing to fix: {} is a complete recording; wrote an equivalent copy to {} ({} captures, {} IMU samples)",
            input.display(),
            output.display(),
            report.captures_kept,
            report.imu_samples_kept
        );
        return Ok(());
    }
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

/// An error and its causes on one line, each cause once: a cause whose text the message
/// already holds (a `Display` that includes its source) is not repeated.
pub fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !t.is_empty() && !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        cause = c.source();
    }
    text
}
