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
use std::time::{Duration, Instant};

use crate::cli::args::{Exposure, RecorderOptions};
use crate::cli::progress::ProgressStats;
use crate::cli::signal::StopSignal;
use crate::types::{
    Capture, ColorResolution, DepthMode, HardwareVersion, ImuSample, WiredSyncMode,
};

/// How long to wait for the first capture (standalone and master).
pub const FIRST_CAPTURE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for the first capture in subordinate mode (the master may start later).
pub const FIRST_CAPTURE_TIMEOUT_SUBORDINATE: Duration = Duration::from_secs(360);
/// Poll interval while waiting for the first capture.
pub const FIRST_CAPTURE_POLL: Duration = Duration::from_millis(100);

/// Outcome of a wait for data, like the SDK's `k4a_wait_result_t`.
#[derive(Debug)]
pub enum WaitResult<T, E> {
    /// Data arrived.
    Ready(T),
    /// Nothing arrived within the timeout.
    Timeout,
    /// The stream failed.
    Failed(E),
}

/// Frames lost before they reached the recording, per stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DroppedFrames {
    /// Colour frames.
    pub color: u64,
    /// Depth frames.
    pub depth: u64,
    /// IR frames.
    pub ir: u64,
    /// IMU samples.
    pub imu: u64,
}

/// The device operations the recorder needs (an opened-or-not Azure Kinect, real or emulated).
pub trait RecorderDevice {
    /// The device's error type.
    type Error: std::error::Error + 'static;

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
    /// Starts the cameras with this configuration.
    fn start_cameras(&mut self, config: &crate::types::DeviceConfig) -> Result<(), Self::Error>;
    /// Starts the IMU.
    fn start_imu(&mut self) -> Result<(), Self::Error>;
    /// Waits up to `timeout` for the next capture.
    fn get_capture(&mut self, timeout: Duration) -> WaitResult<Capture, Self::Error>;
    /// Waits up to `timeout` (zero: just looks) for the next IMU sample.
    fn get_imu_sample(&mut self, timeout: Duration) -> WaitResult<ImuSample, Self::Error>;
    /// Stops the IMU.
    fn stop_imu(&mut self);
    /// Stops the cameras.
    fn stop_cameras(&mut self);
    /// Closes the device.
    fn close(&mut self);
    /// Frames dropped so far (shown on the progress line).
    fn dropped_frames(&self) -> DroppedFrames {
        DroppedFrames::default()
    }
    /// Lines for stderr after "Device not found.": why, and what to try.
    fn not_found_hints(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// Where the recording goes (the Matroska writer, in the real program).
pub trait RecordingSink {
    /// The sink's error type.
    type Error: std::error::Error + 'static;

    /// Adds the IMU track (before the header).
    fn add_imu_track(&mut self) -> Result<(), Self::Error>;
    /// Writes the file header.
    fn write_header(&mut self) -> Result<(), Self::Error>;
    /// Writes one capture.
    fn write_capture(&mut self, capture: &Capture) -> Result<(), Self::Error>;
    /// Writes one IMU sample.
    fn write_imu_sample(&mut self, sample: &ImuSample) -> Result<(), Self::Error>;
    /// Flushes everything written so far.
    fn flush(&mut self) -> Result<(), Self::Error>;
    /// Finishes the file (sizes, cues). Called once.
    fn close(&mut self) -> Result<(), Self::Error>;
    /// Bytes written so far (shown on the progress line).
    fn bytes_written(&self) -> u64 {
        0
    }
    /// Frames the sink dropped so far (a full queue in front of a slow disk).
    fn dropped_frames(&self) -> DroppedFrames {
        DroppedFrames::default()
    }
}

/// A source of monotonic time (so tests can run minutes of recording in no time).
pub trait Clock {
    /// The current time.
    fn now(&self) -> Instant;
}

/// The process's monotonic clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    fn now(&self) -> Instant {
        Instant::now()
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
    pub clock: &'a dyn Clock,
    /// Called after every written capture with the current counters.
    pub progress: &'a mut dyn FnMut(&ProgressStats),
}

/// How a recording run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionReport {
    /// k4arecorder's exit code (0 or 1).
    pub exit_code: i32,
    /// Whether the recording was finished (flushed and closed).
    pub finished: bool,
    /// Counters at the end.
    pub stats: ProgressStats,
}

macro_rules! say {
    ($w:expr, $($arg:tt)*) => {{
        // Console output failures must not change the recording's outcome.
        let _ = writeln!($w, $($arg)*);
    }};
}

/// Runs Microsoft's recording sequence (k4arecorder's `do_recording`) for `options`:
/// device lookup and open, serial and versions, colour controls, start, recording creation
/// (`create_sink`), the wait for the first capture (dropped, not written), the main loop with
/// the IMU drain, and the orderly stop. Returns the exit code and counters.
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
    F: FnOnce(&mut D, &RecorderOptions) -> Result<S, E>,
{
    let mut stats = ProgressStats::default();
    let report = |exit_code, finished, stats| SessionReport {
        exit_code,
        finished,
        stats,
    };
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

    if let Err(e) = device.start_cameras(config) {
        return check_failed(
            device,
            io,
            "k4a_device_start_cameras(device, device_config)",
            &e,
            stats,
        );
    }
    if options.imu_enabled {
        if let Err(e) = device.start_imu() {
            return check_failed(device, io, "k4a_device_start_imu(device)", &e, stats);
        }
    }
    say!(io.out, "Device started");

    let mut sink = match create_sink(device, options) {
        Ok(s) => s,
        Err(e) => {
            say!(
                io.err,
                "Unable to create recording file: {}",
                options.output_path.display()
            );
            say!(io.err, "Cause: {e}");
            return report(1, false, stats);
        }
    };
    if options.imu_enabled {
        if let Err(e) = sink.add_imu_track() {
            return check_failed(device, io, "k4a_record_add_imu_track(recording)", &e, stats);
        }
    }
    if let Err(e) = sink.write_header() {
        return check_failed(device, io, "k4a_record_write_header(recording)", &e, stats);
    }

    // Wait for the first capture; it only proves the streams run and is not written.
    let first_timeout = if config.wired_sync_mode == WiredSyncMode::Subordinate {
        say!(io.out, "[subordinate mode] Waiting for signal from master");
        FIRST_CAPTURE_TIMEOUT_SUBORDINATE
    } else {
        FIRST_CAPTURE_TIMEOUT
    };
    let wait_start = io.clock.now();
    let mut got_first = false;
    while !io.stop.is_stopping()
        && io.clock.now().saturating_duration_since(wait_start) < first_timeout
    {
        match device.get_capture(FIRST_CAPTURE_POLL) {
            WaitResult::Ready(_) => {
                got_first = true;
                break;
            }
            WaitResult::Timeout => {}
            WaitResult::Failed(e) => {
                say!(
                    io.err,
                    "Runtime error: k4a_device_get_capture() returned error: 1"
                );
                say!(io.err, "Cause: {e}");
                return report(1, false, stats);
            }
        }
    }
    if io.stop.is_stopping() {
        if io.stop.announce_stop() {
            say!(io.out, "Stopping recording...");
        }
        device.close();
        // Microsoft leaves the file unfinished here; closing it costs nothing and keeps it valid.
        let finished = sink.close().is_ok();
        return report(0, finished, stats);
    }
    if !got_first {
        say!(io.err, "Timed out waiting for first capture.");
        return report(1, false, stats);
    }

    say!(io.out, "Started recording");
    let limit = options
        .record_length_sec
        .map(|s| Duration::from_secs(u64::from(s)));
    if options.record_length_sec.unwrap_or(0) == 0 {
        say!(io.out, "Press Ctrl-C to stop recording.");
    }

    let start = io.clock.now();
    let capture_timeout = Duration::from_millis(u64::from(1000 / config.camera_fps.hz()));
    let clock = io.clock;
    let within_length = || limit.is_none_or(|l| clock.now().saturating_duration_since(start) < l);
    // The length also ends the recording once the captures written span it in device time: a
    // backlog queued while the device started would otherwise stretch the file past `-l`.
    let period_usec = 1_000_000 / u64::from(config.camera_fps.hz());
    let mut first_device_usec: Option<u64> = None;
    let mut device_length_reached = false;
    let mut failed = false;
    loop {
        match device.get_capture(capture_timeout) {
            WaitResult::Timeout => {}
            WaitResult::Failed(e) => {
                say!(io.err, "Runtime error: k4a_device_get_capture() returned 1");
                say!(io.err, "Cause: {e}");
                say!(
                    io.err,
                    "The device stopped delivering captures; finishing the recording with what it holds."
                );
                failed = true;
                break;
            }
            WaitResult::Ready(capture) => {
                if let Err(e) = sink.write_capture(&capture) {
                    return write_failed(
                        device,
                        sink,
                        io,
                        options,
                        "k4a_record_write_capture(recording, capture)",
                        &e,
                        stats,
                    );
                }
                stats.captures += 1;
                if let (Some(l), Some(t)) = (limit, capture_device_usec(&capture)) {
                    let t0 = *first_device_usec.get_or_insert(t);
                    // Half a period of slack: timestamps are whole microseconds.
                    let span_usec = t.saturating_sub(t0) + period_usec + period_usec / 2;
                    device_length_reached = u128::from(span_usec) >= l.as_micros();
                }
                if options.imu_enabled {
                    loop {
                        match device.get_imu_sample(Duration::ZERO) {
                            WaitResult::Timeout => break,
                            WaitResult::Failed(e) => {
                                say!(io.err, "Runtime error: k4a_imu_get_sample() returned 1");
                                say!(io.err, "Cause: {e}");
                                failed = true;
                                break;
                            }
                            WaitResult::Ready(sample) => {
                                if let Err(e) = sink.write_imu_sample(&sample) {
                                    return write_failed(
                                        device,
                                        sink,
                                        io,
                                        options,
                                        "k4a_record_write_imu_sample()",
                                        &e,
                                        stats,
                                    );
                                }
                                stats.imu_samples += 1;
                            }
                        }
                        if io.stop.is_stopping() || !within_length() {
                            break;
                        }
                    }
                }
                let (dev, file) = (device.dropped_frames(), sink.dropped_frames());
                stats.dropped_color = dev.color + file.color;
                stats.dropped_depth = dev.depth + file.depth;
                stats.dropped_ir = dev.ir + file.ir;
                stats.dropped_imu = dev.imu + file.imu;
                stats.bytes_written = sink.bytes_written();
                stats.elapsed = io.clock.now().saturating_duration_since(start);
                (io.progress)(&stats);
            }
        }
        if io.stop.is_stopping() || failed || device_length_reached || !within_length() {
            break;
        }
    }

    io.stop.request_stop();
    if io.stop.announce_stop() {
        say!(io.out, "Stopping recording...");
    }
    if options.imu_enabled {
        device.stop_imu();
    }
    device.stop_cameras();
    say!(io.out, "Saving recording...");
    if let Err(e) = sink.flush() {
        return check_failed(device, io, "k4a_record_flush(recording)", &e, stats);
    }
    if let Err(e) = sink.close() {
        say!(
            io.err,
            "Runtime error: cannot finish the recording file {}",
            options.output_path.display()
        );
        say!(io.err, "Cause: {e}");
        device.close();
        return report(1, false, stats);
    }
    stats.bytes_written = sink.bytes_written();
    stats.elapsed = io.clock.now().saturating_duration_since(start);
    say!(io.out, "Done");
    device.close();
    // A device failure cut the recording short: the file is complete, the run is not.
    report(if failed { 1 } else { 0 }, true, stats)
}

/// The earliest device timestamp of a capture's images.
fn capture_device_usec(capture: &Capture) -> Option<u64> {
    [&capture.color, &capture.depth, &capture.ir]
        .into_iter()
        .flatten()
        .map(|i| i.device_timestamp_usec)
        .min()
}

/// Writing the recording failed (typically a full disk): stop the device, let the writer
/// finish the file in place with what reached the disk, report the real cause, exit code 1.
#[allow(clippy::too_many_arguments)]
fn write_failed<D: RecorderDevice, S: RecordingSink>(
    device: &mut D,
    mut sink: S,
    io: &mut SessionIo<'_>,
    options: &RecorderOptions,
    call: &str,
    error: &dyn std::error::Error,
    mut stats: ProgressStats,
) -> SessionReport {
    say!(io.err, "Runtime error: {call} returned 1");
    if options.imu_enabled {
        device.stop_imu();
    }
    device.stop_cameras();
    // The sink's own error names the failed write (for example "No space left on device").
    let cause = match sink.close() {
        Err(e) => e.to_string(),
        Ok(()) => error.to_string(),
    };
    say!(io.err, "Cause: {cause}");
    stats.bytes_written = sink.bytes_written();
    say!(
        io.err,
        "Recording stopped: writing {} failed; the file was finished with what reached the disk.",
        options.output_path.display()
    );
    device.close();
    SessionReport {
        exit_code: 1,
        finished: true,
        stats,
    }
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
    F: FnOnce(&mut D, &RecorderOptions) -> Result<S, E>,
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
    let mut progress = |stats: &ProgressStats| renderer.borrow_mut().update(stats, Instant::now());
    let report = {
        let mut io = SessionIo {
            out: &mut out,
            err: &mut err,
            stop,
            clock: &MonotonicClock,
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
    stats: ProgressStats,
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
