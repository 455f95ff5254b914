//! Records a few seconds from an emulated Azure Kinect with `record::Recorder`.
//!
//! ```text
//! cargo run --example record_emulated [-- OUT.mkv [SECONDS]]
//! ```
//!
//! The emulated unit answers like the hardware (serial number, firmware, calibration, frames
//! of the right size) and its depth goes through the built-in emulated depth engine, so this
//! runs anywhere. The recorder stores the unit's facts in the file, sizes its writer queue from
//! the mode and counts anything lost; the result opens in Microsoft's playback and in
//! `freek4a info`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use freek4a::device::{DepthEngineChoice, Device, OpenOptions};
use freek4a::emulator::{EmulatedBackend, EmulatorSpec};
use freek4a::record::{Recorder, RecorderConfig};
use freek4a::types::{ColorResolution, DepthMode, DeviceConfig, Fps};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "emulated.mkv".into()));
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3);

    let backend = EmulatedBackend::new(EmulatorSpec::default());
    let options = OpenOptions {
        depth_engine: DepthEngineChoice::Emulated,
        ..OpenOptions::default()
    };
    let device = Device::open_with(&backend, 0, options)?;
    // `?` on the prints: a closed stdout ends the run with an error instead of a panic.
    writeln!(std::io::stdout(), "unit {}", device.serial_number())?;

    let mut config = RecorderConfig::new(DeviceConfig {
        color_resolution: ColorResolution::R720p,
        depth_mode: DepthMode::NfovUnbinned,
        camera_fps: Fps::Fps30,
        ..DeviceConfig::default()
    });
    config.length = Some(Duration::from_secs(seconds));

    let mut recorder = Recorder::new(device, config);
    recorder.create_file(&out)?;
    recorder.start()?;
    recorder.record(|_progress| {})?;
    let summary = recorder.finish()?;
    writeln!(
        std::io::stdout(),
        "{}: {} captures, {} IMU samples, {} bytes, {} items dropped",
        out.display(),
        summary.captures,
        summary.imu_samples,
        summary.bytes_written,
        summary.drops.total()
    )?;
    Ok(())
}
