//! k4arecorder's recording sequence (`do_recording`), written against two small traits so the
//! real device and the Matroska writer can be plugged in, and fakes can test it.
//!
//! Console lines, their order, their streams (normal lines on stdout, failures on stderr) and
//! the exit codes are Microsoft's. Where Microsoft printed `Runtime error: <call> returned 1`
//! and nothing more, we print the same line and then `Cause: <error>` so the reason is not lost.
//! Deliberate differences:
//! * the record length and the first-capture timeout are measured on a monotonic clock
//!   (Microsoft's 1.4.1 used processor time);
//! * a Ctrl-C during the wait for the first capture also closes the (empty) recording instead
//!   of leaving it unfinished;
//! * when the device fails during the recording (unplugged, a stream error) Microsoft prints
//!   `Runtime error: k4a_device_get_capture() returned 1`, finishes the file and exits with 0;
//!   we finish the file the same way but exit with **1**, so a script can tell a cut-short
//!   recording from a complete one;
//! * `-l N` also ends the recording once the captures written span N seconds of device time,
//!   so captures queued while the device started do not stretch the file past N seconds;
//! * when writing fails (a full disk) Microsoft's CHECK leaves the file unfinished and exits
//!   with 1; we stop the device, finish the file in place with what reached the disk, name the
//!   cause and exit with 1.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::args::{Exposure, RecorderOptions};
use crate::cli::signal::StopSignal;
use crate::mkv::writer::RecordingSettings;
use crate::record::{
    CaptureSource, Clock, FirstCapture, MonotonicClock, Progress, Recorder, RecorderConfig,
    RecorderError, RecordingSink,
};
use crate::types::{ColorResolution, DepthMode, HardwareVersion, WiredSyncMode};

/// How long to wait for the first capture (standalone and master).
pub const FIRST_CAPTURE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for the first capture in subordinate mode (the master may start later).
pub const FIRST_CAPTURE_TIMEOUT_SUBORDINATE: Duration = Duration::from_secs(360);

/// What k4arecorder does with a unit besides recording it: find, open, identify, set the
/// colour controls, close. The streams are the [`CaptureSource`] the recorder drives.
pub trait RecorderDevice: CaptureSource {
    /// How many devices are attached.
    fn installed_count(&mut self) -> u32;
    /// Opens device `index`.
    fn open(&mut self, index: u8) -> Result<(), Self::Error>;
    /// Serial number of the open device.
    fn serial_number(&mut self) -> Result<String, Self::Error>;
    /// Firmware versions of the open device.
    fn hardware_version(&mut self) -> Result<HardwareVersion, Self::Error>;
    /// Sets colour exposure: automatic, or manual with a time in microseconds.
    fn set_exposure(&mut self, exposure: Exposure) -> Result<(), Self::Error>;
    /// Sets manual colour gain.
    fn set_gain(&mut self, gain: u8) -> Result<(), Self::Error>;
    /// Closes the device.
    fn close(&mut self);
    /// Lines for stderr after "Device not found.": why, and what to try.
    fn not_found_hints(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// Everything around the sequence: where to print, the stop flag, the clock and a progress hook.
pub struct SessionIo<'a> {
    /// Normal console lines (stdout in the program).
    pub out: &'a mut dyn Write,
    /// Failure lines (stderr in the program).
    pub err: &'a mut dyn Write,
    /// Set by Ctrl-C / SIGTERM.
    pub stop: &'a StopSignal,
    /// Monotonic time.
    pub clock: Arc<dyn Clock>,
    /// Called after every written capture with the current counters.
    pub progress: &'a mut dyn FnMut(&Progress),
}

/// How a recording run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionReport {
    /// k4arecorder's exit code (0 or 1).
    pub exit_code: i32,
    /// Whether the recording was finished (flushed and closed).
    pub finished: bool,
    /// Counters at the end.
    pub stats: Progress,
}

macro_rules! say {
    ($w:expr, $($arg:tt)*) => {{
        // Console output failures must not change the recording's outcome.
        let _ = writeln!($w, $($arg)*);
    }};
}

fn report(exit_code: i32, finished: bool, stats: Progress) -> SessionReport {
    SessionReport {
        exit_code,
        finished,
        stats,
    }
}

/// Runs Microsoft's recording sequence for `options` around a [`Recorder`]: device lookup and
/// open, serial and versions, colour controls, start, recording creation (`create_sink`, given
/// the open device, the writer settings with its facts and the writer queue limit), the wait
/// for the first capture (dropped, not written), the recording loop and the orderly stop.
/// Returns the exit code and counters.
pub fn run_recording<D, S, E, F>(
    device: &mut D,
    create_sink: F,
    options: &RecorderOptions,
    io: &mut SessionIo<'_>,
) -> SessionReport
where
    D: RecorderDevice,
    S: RecordingSink,
    E: std::fmt::Display,
    F: FnOnce(&D, &RecorderOptions, RecordingSettings, usize) -> Result<S, E>,
{
    let stats = Progress::default();
    let config = &options.device_config;

    if u32::from(options.device_index) >= device.installed_count() {
        say!(io.err, "Device not found.");
        for hint in device.not_found_hints() {
            say!(io.err, "{hint}");
        }
        return report(1, false, stats);
    }
    if let Err(e) = device.open(options.device_index) {
        // Microsoft carries on; the next call then fails.
        say!(io.err, "Runtime error: k4a_device_open() failed ");
        say!(io.err, "Cause: {e}");
    }

    let serial = match device.serial_number() {
        Ok(s) => s,
        Err(e) => return check_failed(
            device,
            io,
            "k4a_device_get_serialnum(device, serial_number_buffer, &serial_number_buffer_size)",
            &e,
            stats,
        ),
    };
    say!(io.out, "Device serial number: {serial}");
    let v = match device.hardware_version() {
        Ok(v) => v,
        Err(e) => {
            return check_failed(
                device,
                io,
                "k4a_device_get_version(device, &version_info)",
                &e,
                stats,
            )
        }
    };
    say!(
        io.out,
        "Device version: {}; C: {}; D: {}[{}.{}]; A: {}",
        if v.release_build { "Rel" } else { "Dbg" },
        v.rgb,
        v.depth,
        v.depth_sensor.major,
        v.depth_sensor.minor,
        v.audio
    );

    if config.color_resolution == ColorResolution::Off && config.depth_mode == DepthMode::Off {
        say!(
            io.err,
            "Either the color or depth modes must be enabled to record."
        );
        return report(1, false, stats);
    }

    // Colour controls go before streaming, even with colour off; failures are only reported.
    if let Err(e) = device.set_exposure(options.exposure) {
        let which = match options.exposure {
            Exposure::Auto => "auto",
            Exposure::ManualUsec(_) => "manual",
        };
        say!(
            io.err,
            "Runtime error: k4a_device_set_color_control() for {which} exposure failed "
        );
        say!(io.err, "Cause: {e}");
    }
    if let Some(gain) = options.gain {
        if let Err(e) = device.set_gain(gain) {
            say!(
                io.err,
                "Runtime error: k4a_device_set_color_control() for manual gain failed "
            );
            say!(io.err, "Cause: {e}");
        }
    }

    let mut recorder: Recorder<&mut D, S> = Recorder::new(
        &mut *device,
        RecorderConfig {
            device_config: config.clone(),
            imu: options.imu_enabled,
            length: options
                .record_length_sec
                .map(|s| Duration::from_secs(u64::from(s))),
            raw_depth: options.raw_depth,
        },
    );
    recorder.set_stop_flag(io.stop.flag());
    recorder.set_clock(io.clock.clone());

    if let Err(e) = recorder.start_streams() {
        let call = match e {
            RecorderError::StartImu(_) => "k4a_device_start_imu(device)",
            _ => "k4a_device_start_cameras(device, device_config)",
        };
        return check_failed(recorder.into_source(), io, call, e.cause(), stats);
    }
    say!(io.out, "Device started");

    let settings = recorder.recording_settings();
    let queue = recorder.queue_limit_bytes();
    match create_sink(&**recorder.source(), options, settings, queue) {
        Ok(s) => recorder.set_sink(s),
        Err(e) => {
            say!(
                io.err,
                "Unable to create recording file: {}",
                options.output_path.display()
            );
            say!(io.err, "Cause: {e}");
            return report(1, false, stats);
        }
    }
    if let Err(e) = recorder.write_header() {
        let call = match e {
            RecorderError::AddImuTrack(_) => "k4a_record_add_imu_track(recording)",
            _ => "k4a_record_write_header(recording)",
        };
        return check_failed(recorder.into_source(), io, call, e.cause(), stats);
    }

    // Wait for the first capture; it only proves the streams run and is not written.
    let first_timeout = if config.wired_sync_mode == WiredSyncMode::Subordinate {
        say!(io.out, "[subordinate mode] Waiting for signal from master");
        FIRST_CAPTURE_TIMEOUT_SUBORDINATE
    } else {
        FIRST_CAPTURE_TIMEOUT
    };
    match recorder.wait_first_capture(first_timeout) {
        Ok(FirstCapture::Arrived) => {}
        Ok(FirstCapture::Stopped) => {
            if io.stop.announce_stop() {
                say!(io.out, "Stopping recording...");
            }
            // Microsoft leaves the file unfinished here; closing it costs nothing and keeps
            // it valid.
            let finished = recorder.finish().is_ok();
            device.close();
            return report(0, finished, stats);
        }
        Ok(FirstCapture::TimedOut) => {
            say!(io.err, "Timed out waiting for first capture.");
            return report(1, false, stats);
        }
        Err(e) => {
            say!(
                io.err,
                "Runtime error: k4a_device_get_capture() returned error: 1"
            );
            say!(io.err, "Cause: {}", e.cause());
            return report(1, false, stats);
        }
    }

    say!(io.out, "Started recording");
    if options.record_length_sec.unwrap_or(0) == 0 {
        say!(io.out, "Press Ctrl-C to stop recording.");
    }

    let mut failed = false;
    match recorder.record(&mut *io.progress) {
        Ok(_) => {}
        Err(RecorderError::Capture(e)) => {
            say!(io.err, "Runtime error: k4a_device_get_capture() returned 1");
            say!(io.err, "Cause: {e}");
            say!(
                io.err,
                "The device stopped delivering captures; finishing the recording with what it holds."
            );
            failed = true;
        }
        Err(RecorderError::ImuSample(e)) => {
            say!(io.err, "Runtime error: k4a_imu_get_sample() returned 1");
            say!(io.err, "Cause: {e}");
            failed = true;
        }
        Err(e) => {
            let call = match e {
                RecorderError::WriteImu(_) => "k4a_record_write_imu_sample()",
                _ => "k4a_record_write_capture(recording, capture)",
            };
            let stats = write_failed(recorder, io, options, call, &e);
            device.close();
            return report(1, true, stats);
        }
    }

    io.stop.request_stop();
    if io.stop.announce_stop() {
        say!(io.out, "Stopping recording...");
    }
    recorder.stop_streams();
    say!(io.out, "Saving recording...");
    let finished = recorder.finish();
    let stats = match finished {
        Ok(stats) => stats,
        Err(RecorderError::Flush(e)) => {
            return check_failed(device, io, "k4a_record_flush(recording)", &*e, stats)
        }
        Err(e) => {
            say!(
                io.err,
                "Runtime error: cannot finish the recording file {}",
                options.output_path.display()
            );
            say!(io.err, "Cause: {}", e.cause());
            device.close();
            return report(1, false, stats);
        }
    };
    say!(io.out, "Done");
    device.close();
    // A device failure cut the recording short: the file is complete, the run is not.
    report(if failed { 1 } else { 0 }, true, stats)
}

/// Writing the recording failed (typically a full disk): stop the device, let the writer
/// finish the file in place with what reached the disk, report the real cause. Returns the
/// counters; the caller closes the device and exits with 1.
fn write_failed<D: RecorderDevice, S: RecordingSink>(
    recorder: Recorder<&mut D, S>,
    io: &mut SessionIo<'_>,
    options: &RecorderOptions,
    call: &str,
    error: &RecorderError,
) -> Progress {
    say!(io.err, "Runtime error: {call} returned 1");
    let mut stats = recorder.progress();
    // Finishing stops the streams; its error names the failed write (for example "No space
    // left on device").
    match recorder.finish() {
        Err(e) => say!(io.err, "Cause: {}", e.cause()),
        Ok(finished) => {
            stats = finished;
            say!(io.err, "Cause: {}", error.cause());
        }
    }
    say!(
        io.err,
        "Recording stopped: writing {} failed; the file was finished with what reached the disk.",
        options.output_path.display()
    );
    stats
}

/// Runs [`run_recording`] on the real console: stdout and stderr, the monotonic clock, and a
/// progress line on stderr when `options.progress` is set and stderr is a terminal (cleared
/// before every console line, followed by a summary line at the end). `stop` should already be
/// connected to the signals ([`StopSignal::install`]).
pub fn record_on_console<D, S, E, F>(
    device: &mut D,
    create_sink: F,
    options: &RecorderOptions,
    stop: &StopSignal,
) -> SessionReport
where
    D: RecorderDevice,
    S: RecordingSink,
    E: std::fmt::Display,
    F: FnOnce(&D, &RecorderOptions, RecordingSettings, usize) -> Result<S, E>,
{
    use std::cell::RefCell;

    use crate::cli::progress::{format_summary, ProgressRenderer};

    /// Clears the progress line before passing console text on.
    struct Clearing<'r, W: Write> {
        inner: W,
        renderer: &'r RefCell<ProgressRenderer<std::io::Stderr>>,
    }
    impl<W: Write> Write for Clearing<'_, W> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.renderer.borrow_mut().clear();
            self.inner.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.inner.flush()
        }
    }

    let renderer = RefCell::new(ProgressRenderer::stderr(options.progress));
    let mut out = Clearing {
        inner: std::io::stdout(),
        renderer: &renderer,
    };
    let mut err = Clearing {
        inner: std::io::stderr(),
        renderer: &renderer,
    };
    let mut progress = |stats: &Progress| renderer.borrow_mut().update(stats, Instant::now());
    let report = {
        let mut io = SessionIo {
            out: &mut out,
            err: &mut err,
            stop,
            clock: Arc::new(MonotonicClock),
            progress: &mut progress,
        };
        run_recording(device, create_sink, options, &mut io)
    };
    let mut renderer = renderer.into_inner();
    renderer.clear();
    if renderer.is_enabled() && report.finished {
        eprintln!("{}", format_summary(&report.stats));
    }
    report
}

/// Microsoft's CHECK macro: report the failed call, close the device, exit code 1.
fn check_failed<D: RecorderDevice>(
    device: &mut D,
    io: &mut SessionIo<'_>,
    call: &str,
    error: &dyn std::error::Error,
    stats: Progress,
) -> SessionReport {
    say!(io.err, "Runtime error: {call} returned 1");
    say!(io.err, "Cause: {error}");
    device.close();
    SessionReport {
        exit_code: 1,
        finished: false,
        stats,
    }
}

#[cfg(test)]
mod tests;
