//! Reads an Azure Kinect recording (made by freek4a or by Microsoft's k4arecorder) and prints
//! its configuration, device tags, tracks, then counts the captures and IMU samples with their
//! first and last device timestamps.
//!
//! ```sh
//! cargo run --release --example read_recording -- tests/fixtures/sdk141-mjpg720-nfov-1capture.mkv
//! ```
//!
//! Exit codes: 0 read to the end, 1 the file could not be read, 2 wrong arguments.

use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use freek4a::{playback, Image, Playback};

const USAGE: &str = "usage: read_recording FILE.mkv";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = match args.as_slice() {
        [flag] if flag == "-h" || flag == "--help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [path] if !path.starts_with('-') => PathBuf::from(path),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match read(&path, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if is_broken_pipe(e.as_ref()) => ExitCode::SUCCESS,
        Err(e) => {
            // The open error already names the file; the others do not.
            let mut message = match e.downcast_ref::<playback::Error>() {
                Some(playback::Error::Open { .. }) => e.to_string(),
                _ => format!("{}: {e}", path.display()),
            };
            // Causes the message does not already spell out.
            let mut cause = e.source();
            while let Some(c) = cause {
                let text = c.to_string();
                if !message.contains(&text) {
                    message = format!("{message}: {text}");
                }
                cause = c.source();
            }
            eprintln!("read_recording: {message}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &(dyn Error + 'static)) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// First and last device timestamps and a count, for one stream.
#[derive(Default)]
struct Span {
    count: u64,
    first_usec: Option<u64>,
    last_usec: Option<u64>,
}

impl Span {
    fn add(&mut self, timestamp_usec: u64) {
        self.count += 1;
        self.first_usec.get_or_insert(timestamp_usec);
        self.last_usec = Some(timestamp_usec);
    }

    fn add_image(&mut self, image: Option<&Image>) {
        if let Some(image) = image {
            self.add(image.device_timestamp_usec);
        }
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.count)?;
        if let (Some(first), Some(last)) = (self.first_usec, self.last_usec) {
            write!(f, " (device time {first} µs to {last} µs)")?;
        }
        Ok(())
    }
}

fn read(path: &Path, out: &mut impl Write) -> Result<(), Box<dyn Error>> {
    let mut playback = Playback::open(path)?;

    writeln!(out, "{}", path.display())?;
    writeln!(
        out,
        "  writing app: {}",
        playback.writing_app().unwrap_or("(none)")
    )?;
    let config = playback.config().clone();
    match config.color_format {
        Some(format) => writeln!(
            out,
            "  colour: {} {}",
            format.sdk_name(),
            config.color_resolution.sdk_name()
        )?,
        None => writeln!(out, "  colour: off")?,
    }
    writeln!(out, "  depth: {}", config.depth_mode.sdk_name())?;
    writeln!(out, "  rate: {}", config.camera_fps.sdk_name())?;
    writeln!(
        out,
        "  tracks: colour {}, depth {}, IR {}, IMU {}",
        config.color_track_enabled,
        config.depth_track_enabled,
        config.ir_track_enabled,
        config.imu_track_enabled
    )?;
    writeln!(out, "  wired sync: {}", config.wired_sync_mode.name())?;
    writeln!(
        out,
        "  start offset: {} µs",
        config.start_timestamp_offset_usec
    )?;
    for tag in [
        "K4A_DEVICE_SERIAL_NUMBER",
        "K4A_COLOR_FIRMWARE_VERSION",
        "K4A_DEPTH_FIRMWARE_VERSION",
    ] {
        if let Some(value) = playback.tag(tag) {
            writeln!(out, "  {tag}: {value}")?;
        }
    }
    match playback.calibration() {
        Some(json) => writeln!(out, "  calibration: {} bytes", json.len())?,
        None => writeln!(out, "  calibration: none")?,
    }
    for track in playback.tracks() {
        let size = match (track.width, track.height) {
            (Some(w), Some(h)) => format!(" {w}x{h}"),
            _ => String::new(),
        };
        writeln!(
            out,
            "  track {} {:?}: {}{size}",
            track.number, track.name, track.codec_id
        )?;
    }
    for problem in playback.diagnostics() {
        writeln!(out, "  problem: {problem}")?;
    }

    let (mut captures, mut color, mut depth, mut ir) =
        (0u64, Span::default(), Span::default(), Span::default());
    while let Some(capture) = playback.next_capture()? {
        captures += 1;
        color.add_image(capture.color.as_ref());
        depth.add_image(capture.depth.as_ref());
        ir.add_image(capture.ir.as_ref());
    }
    let mut imu = Span::default();
    while let Some(sample) = playback.next_imu_sample()? {
        imu.add(sample.acc_timestamp_usec);
    }
    writeln!(out, "  captures: {captures}")?;
    writeln!(out, "  colour images: {color}")?;
    writeln!(out, "  depth images: {depth}")?;
    writeln!(out, "  IR images: {ir}")?;
    writeln!(out, "  IMU samples: {imu}")?;
    writeln!(out, "  length: {} µs", playback.recording_length_usec()?)?;
    Ok(())
}
