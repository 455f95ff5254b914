//! `freek4a view FILE|DIR` and the recorder's `--preview`: the command-line side of the
//! viewer (addresses, messages, starting a browser).

use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use crate::cli::args::RecorderOptions;
use crate::cli::session::{record_on_console, SessionReport};
use crate::cli::signal::StopSignal;
use crate::cli::wiring::DeviceSource;
use crate::protocol::calibration::Calibration;
use crate::record::{FileSink, SinkError};
use crate::view::live::LiveUnit;
use crate::view::{self, PreviewSink, PreviewSlot, Unit, ViewError, Viewer};

/// Says where the viewer is, and warns when it is reachable from other machines.
fn announce(what: &str, viewer: &Viewer) {
    eprintln!("{what}: {}", viewer.url());
    if !viewer.addr().ip().is_loopback() {
        eprintln!(
            "Warning: listening on {}: anyone who can reach this address can see the recording.",
            viewer.addr()
        );
    }
}

/// `freek4a view FILE|DIR [--listen ADDR:PORT] [--open]`: serves until interrupted.
pub fn view(path: &Path, listen: Option<&str>, open: bool) -> Result<(), ViewError> {
    let addr = view::parse_listen(listen.unwrap_or(""))?;
    let files = view::recordings_at(path)?;
    let units: Vec<Box<dyn Unit>> = files
        .iter()
        .map(|f| {
            eprintln!("Reading {}...", f.display());
            Box::new(view::recording::FileUnit::open(f)) as Box<dyn Unit>
        })
        .collect();
    let viewer = Viewer::start(addr, units, false)?;
    announce("Viewer", &viewer);
    println!("{}", viewer.url());
    if open {
        open_browser(&viewer.url());
    }
    eprintln!("Press Ctrl-C to stop.");
    viewer.wait();
    Ok(())
}

/// Starts the desktop's browser on `url` (a failure is a warning: the URL is printed anyway).
fn open_browser(url: &str) {
    let tried = ["xdg-open", "sensible-browser", "x-www-browser"];
    for cmd in tried {
        if std::process::Command::new(cmd)
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .is_ok()
        {
            return;
        }
    }
    eprintln!(
        "Could not start a browser ({}); open {url} yourself.",
        tried.join(", ")
    );
}

/// Records like [`record_on_console`] while serving the live preview on `listen`.
pub fn record_with_preview(
    source: &mut DeviceSource,
    options: &RecorderOptions,
    stop: &StopSignal,
    listen: &str,
) -> Result<SessionReport, ViewError> {
    let addr = view::parse_listen(listen)?;
    let cfg = &options.device_config;
    let (cw, ch) = cfg.color_resolution.dimensions().unwrap_or((0, 0));
    let color_on = cfg.color_resolution.dimensions().is_some();
    let slot = PreviewSlot::new(
        cfg.depth_mode,
        json!({
            "color": color_on.then(|| json!({
                "mode": cfg.color_mode_name(),
                "format": cfg.color_format.sdk_name(),
                "width": cw, "height": ch,
            })),
            "depth_mode": cfg.depth_mode.sdk_name(),
            "depth_range": view::imaging::DepthRange::for_mode(cfg.depth_mode),
            "fps": cfg.camera_fps.hz(),
            "imu": options.imu_enabled,
            "sync": cfg.wired_sync_mode.name(),
            "output": options.output_path.display().to_string(),
            "problems": [],
            "gaps": {},
            "dropped_tags": [],
        }),
    );
    let name = options
        .output_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unit = LiveUnit::new(name, slot.clone());
    let viewer = Viewer::start(addr, vec![Box::new(unit)], true)?;
    announce("Live preview", &viewer);
    let make_sink = |src: &DeviceSource, o: &RecorderOptions, settings, queue| {
        let sink = FileSink::create(&o.output_path, settings, queue)?;
        if let Some(dev) = src.device() {
            let hw = dev.hardware_version();
            let raw = dev.raw_calibration();
            let cal = Calibration::from_json(raw.strip_suffix(&[0]).unwrap_or(raw)).ok();
            slot.set_device(
                json!({
                    "serial": dev.serial_number(),
                    "color_firmware": hw.rgb.to_string(),
                    "depth_firmware": hw.depth.to_string(),
                }),
                cal,
            );
        }
        Ok::<_, SinkError>(PreviewSink::new(sink, Arc::clone(&slot)))
    };
    let report = record_on_console(source, make_sink, options, stop);
    eprintln!("Preview: {} captures shown to browsers", slot.handed_out());
    viewer.stop();
    Ok(report)
}

/// `extract --preview`: the 8-bit previews of one capture beside the raw images (see
/// [`crate::cli::extract::ExtractOptions::preview`] for the names).
pub fn write_previews(
    out_dir: &Path,
    index: u64,
    capture: &crate::types::Capture,
    mode: crate::types::DepthMode,
) -> Result<(), crate::cli::extract::ExtractError> {
    use crate::cli::extract::ExtractError;
    let encode = |path: &Path, e: view::imaging::ImagingError| ExtractError::Encode {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let write = |path: std::path::PathBuf, bytes: &[u8]| -> Result<(), ExtractError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| ExtractError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, bytes).map_err(|source| ExtractError::Write { path, source })
    };
    let p = view::imaging::previews(capture.depth.as_ref(), capture.ir.as_ref(), mode)
        .map_err(|e| encode(out_dir, e))?;
    if let (Some((png, range)), Some(d)) = (p.depth, &capture.depth) {
        let dir = out_dir.join("depth-preview");
        let legend = dir.join(format!("legend_{}.png", range.label()));
        if !legend.exists() {
            let rgb = view::imaging::depth_legend(range, 512, 32);
            let bytes = view::imaging::png_8bit(&rgb, 512, 32).map_err(|e| encode(&legend, e))?;
            write(legend, &bytes)?;
        }
        let name = format!(
            "{index:06}_{}_{}.png",
            d.device_timestamp_usec,
            range.label()
        );
        write(dir.join(name), &png)?;
    }
    if let (Some(png), Some(i)) = (p.ir, &capture.ir) {
        let name = format!("{index:06}_{}.png", i.device_timestamp_usec);
        write(out_dir.join("ir-preview").join(name), &png)?;
    }
    Ok(())
}
