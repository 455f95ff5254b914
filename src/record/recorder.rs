//! [`Recorder`]: a unit's captures and IMU samples into a recording, the loop of `k4arecorder`
//! as a library type.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::file::{FileSink, SinkError};
use crate::device::{Device, DeviceError, RawDepthFrame};
use crate::mkv::writer::{DropCounts, RecordedDevice, RecordingSettings};
use crate::types::{Capture, ColorResolution, DepthMode, DeviceConfig, ImageFormat, ImuSample};

/// How long (device time) the recorder's writer keeps a cluster open for late data. Captures
/// and IMU samples reach the writer in device-time order give or take the pipeline's latency (a
/// frame or two), so a quarter of a second is ample, and it is all a killed recorder can lose;
/// the SDK holds two seconds.
pub const RECORDER_CLUSTER_WRITE_DELAY_NS: u64 = 250_000_000;

/// How much of the mode's data rate the writer queue holds: a disk stall this long is absorbed
/// without a drop. The queue only fills while the disk stalls (the camera paces the producer),
/// and every byte of it is memory, so it is kept to the cluster delay.
pub const WRITER_QUEUE_BUDGET: Duration = Duration::from_millis(250);

/// How much of the data rate the writer queue holds in a raw depth recording. Raw frames are
/// 1.7–9.4 MB each and arrive at up to 160 MB/s, so a stall of the writing thread the size of
/// an ordinary one (a scheduling delay on a loaded machine, the kernel throttling dirty pages)
/// needs a queue of many frames; this is the memory raw recording costs.
pub const RAW_WRITER_QUEUE_BUDGET: Duration = Duration::from_millis(750);

/// Bounds of the writer queue whatever the mode.
pub const WRITER_QUEUE_MIN_BYTES: usize = 4 << 20;
/// See [`WRITER_QUEUE_MIN_BYTES`].
pub const WRITER_QUEUE_MAX_BYTES: usize = 32 << 20;

/// Bytes per pixel assumed for an MJPEG frame when sizing buffers: a quarter of a byte (two
/// bits) per pixel is above what the colour camera's encoder produces for a busy scene.
const MJPG_BYTES_PER_PIXEL_ESTIMATE: f64 = 0.25;

/// Poll interval while waiting for the first capture.
pub const FIRST_CAPTURE_POLL: Duration = Duration::from_millis(100);

/// Bytes per second the streams of `config` deliver (MJPEG estimated, the rest exact), plus
/// the IMU when `imu` is set.
pub fn stream_bytes_per_sec(config: &DeviceConfig, imu: bool) -> u64 {
    let fps = f64::from(config.camera_fps.hz());
    let color = match config.color_resolution {
        ColorResolution::Off => 0.0,
        r => match r.dimensions() {
            Some((w, h)) if config.color_format == ImageFormat::Mjpg => {
                f64::from(w) * f64::from(h) * MJPG_BYTES_PER_PIXEL_ESTIMATE
            }
            Some((w, h)) => config.color_format.image_size_bytes(w, h).unwrap_or(0) as f64,
            None => 0.0,
        },
    };
    let depth = config
        .depth_mode
        .dimensions()
        .map_or(0.0, |(w, h)| f64::from(w) * f64::from(h) * 2.0);
    let images =
        usize::from(config.depth_mode.has_depth()) + usize::from(config.depth_mode.has_ir());
    // 1.6 kHz of accelerometer and gyroscope samples, about 40 bytes each in the file.
    let imu_bytes = if imu { 1600.0 * 40.0 } else { 0.0 };
    ((color + depth * images as f64) * fps + imu_bytes) as u64
}

/// The writer queue for `config`: [`WRITER_QUEUE_BUDGET`] of its data rate, clamped to
/// [`WRITER_QUEUE_MIN_BYTES`]..=[`WRITER_QUEUE_MAX_BYTES`].
pub fn writer_queue_limit_bytes(config: &DeviceConfig, imu: bool) -> usize {
    let rate = stream_bytes_per_sec(config, imu) as f64;
    let bytes = (rate * WRITER_QUEUE_BUDGET.as_secs_f64()) as usize;
    bytes.clamp(WRITER_QUEUE_MIN_BYTES, WRITER_QUEUE_MAX_BYTES)
}

/// The writer settings the recorder uses for `config`: the library defaults with the
/// recorder's cluster delay.
pub fn recorder_settings(config: &DeviceConfig, imu: bool) -> RecordingSettings {
    let mut settings = RecordingSettings::new(config.clone(), imu);
    settings.cluster_write_delay_ns = RECORDER_CLUSTER_WRITE_DELAY_NS;
    settings
}

/// A shareable stop request: set it from anywhere (a signal handler, another thread, another
/// recorder) and the recording loop ends at its next check.
#[derive(Clone, Debug, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A flag that is not set.
    pub fn new() -> StopFlag {
        StopFlag::default()
    }

    /// Asks the recording to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A source of monotonic time (so tests can run minutes of recording in no time).
pub trait Clock: Send + Sync {
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

/// What the recorder needs of a unit: start and stop its streams, hand out captures and IMU
/// samples, and say what it lost and what it is. [`Device`] is the real one.
pub trait CaptureSource {
    /// The source's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Starts the cameras with `config`.
    fn start_cameras(&mut self, config: &DeviceConfig) -> Result<(), Self::Error>;
    /// Starts the IMU.
    fn start_imu(&mut self) -> Result<(), Self::Error>;
    /// Waits up to `timeout` for the next capture (`None`: nothing yet).
    fn get_capture(&mut self, timeout: Duration) -> Result<Option<Capture>, Self::Error>;
    /// Waits up to `timeout` (zero: just looks) for the next IMU sample.
    fn get_imu_sample(&mut self, timeout: Duration) -> Result<Option<ImuSample>, Self::Error>;
    /// Stops the IMU.
    fn stop_imu(&mut self);
    /// Stops the cameras.
    fn stop_cameras(&mut self);
    /// Frames lost so far before they were handed out, in the recording's streams.
    fn dropped(&self) -> DropCounts {
        DropCounts::default()
    }
    /// What the recording stores about the unit: serial number, firmware, calibration.
    fn recorded_device(&self) -> Option<RecordedDevice> {
        None
    }
    /// Waits up to `timeout` (zero: just looks) for the next raw depth frame, when the
    /// cameras run without a depth engine. A source that has none returns `None`.
    fn get_raw_depth(&mut self, timeout: Duration) -> Result<Option<RawDepthFrame>, Self::Error> {
        let _ = timeout;
        Ok(None)
    }
    /// The depth engine's calibration block, which a raw depth recording stores so that an
    /// engine can convert it later. A source that has none returns `None`.
    fn depth_engine_calibration(&mut self) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(None)
    }
}

impl<T: CaptureSource + ?Sized> CaptureSource for &mut T {
    type Error = T::Error;
    fn start_cameras(&mut self, config: &DeviceConfig) -> Result<(), Self::Error> {
        (**self).start_cameras(config)
    }
    fn start_imu(&mut self) -> Result<(), Self::Error> {
        (**self).start_imu()
    }
    fn get_capture(&mut self, timeout: Duration) -> Result<Option<Capture>, Self::Error> {
        (**self).get_capture(timeout)
    }
    fn get_imu_sample(&mut self, timeout: Duration) -> Result<Option<ImuSample>, Self::Error> {
        (**self).get_imu_sample(timeout)
    }
    fn stop_imu(&mut self) {
        (**self).stop_imu()
    }
    fn stop_cameras(&mut self) {
        (**self).stop_cameras()
    }
    fn dropped(&self) -> DropCounts {
        (**self).dropped()
    }
    fn recorded_device(&self) -> Option<RecordedDevice> {
        (**self).recorded_device()
    }
    fn get_raw_depth(&mut self, timeout: Duration) -> Result<Option<RawDepthFrame>, Self::Error> {
        (**self).get_raw_depth(timeout)
    }
    fn depth_engine_calibration(&mut self) -> Result<Option<Vec<u8>>, Self::Error> {
        (**self).depth_engine_calibration()
    }
}

impl CaptureSource for Device {
    type Error = DeviceError;

    fn start_cameras(&mut self, config: &DeviceConfig) -> Result<(), DeviceError> {
        Device::start_cameras(self, config)
    }
    fn start_imu(&mut self) -> Result<(), DeviceError> {
        Device::start_imu(self)
    }
    fn get_capture(&mut self, timeout: Duration) -> Result<Option<Capture>, DeviceError> {
        Device::get_capture(self, timeout)
    }
    fn get_imu_sample(&mut self, timeout: Duration) -> Result<Option<ImuSample>, DeviceError> {
        Device::get_imu_sample(self, timeout)
    }
    fn stop_imu(&mut self) {
        // Stopping a stream that is not running is not a failure worth reporting here.
        let _ = Device::stop_imu(self);
    }
    fn stop_cameras(&mut self) {
        let _ = Device::stop_cameras(self);
    }
    fn dropped(&self) -> DropCounts {
        self.drops().per_stream()
    }
    fn recorded_device(&self) -> Option<RecordedDevice> {
        let hw = self.hardware_version();
        let raw = self.raw_calibration();
        // The device stores the JSON NUL-terminated; the file's attachment is the JSON alone.
        let json = raw.strip_suffix(&[0]).unwrap_or(raw).to_vec();
        Some(RecordedDevice {
            serial_number: Some(self.serial_number().to_string()),
            color_firmware: hw.rgb,
            depth_firmware: hw.depth,
            calibration_json: json,
        })
    }
    fn get_raw_depth(&mut self, timeout: Duration) -> Result<Option<RawDepthFrame>, DeviceError> {
        Device::get_raw_depth(self, timeout)
    }
    fn depth_engine_calibration(&mut self) -> Result<Option<Vec<u8>>, DeviceError> {
        Device::depth_engine_calibration(self).map(|b| Some(b.to_vec()))
    }
}

/// Where a recording goes: a [`FileSink`] in the real recorder, anything else in tests or when
/// the captures are also wanted elsewhere (a preview).
pub trait RecordingSink {
    /// The sink's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Adds the IMU track (before the header).
    fn add_imu_track(&mut self) -> Result<(), Self::Error>;
    /// Writes the file header.
    fn write_header(&mut self) -> Result<(), Self::Error>;
    /// Writes one capture.
    fn write_capture(&mut self, capture: Capture) -> Result<(), Self::Error>;
    /// Writes one IMU sample.
    fn write_imu_sample(&mut self, sample: &ImuSample) -> Result<(), Self::Error>;
    /// Writes one frame of the custom track `track` (declared in the recording's settings).
    fn write_custom(
        &mut self,
        track: &str,
        device_timestamp_usec: u64,
        data: Vec<u8>,
    ) -> Result<(), Self::Error>;
    /// Adds frames lost before they reached the sink, so the file counts every loss.
    fn add_dropped(&mut self, dropped: DropCounts) {
        let _ = dropped;
    }
    /// Flushes everything written so far.
    fn flush(&mut self) -> Result<(), Self::Error>;
    /// Finishes the file (sizes, cues). Called once.
    fn close(&mut self) -> Result<(), Self::Error>;
    /// Bytes written so far.
    fn bytes_written(&self) -> u64 {
        0
    }
    /// Items the sink dropped so far (a full queue in front of a slow disk).
    fn dropped(&self) -> DropCounts {
        DropCounts::default()
    }
}

/// What to record.
#[derive(Clone, Debug)]
pub struct RecorderConfig {
    /// Camera modes, frame rate and synchronisation.
    pub device_config: DeviceConfig,
    /// Record the IMU too.
    pub imu: bool,
    /// End the recording after this long (wall clock from the start of [`Recorder::record`],
    /// and also once the captures written span it in device time). `None`: until stopped.
    pub length: Option<Duration>,
    /// Store the unit's raw depth frames instead of depth and IR images (no depth engine at
    /// record time; see [`super::raw`]). The source must run its cameras without an engine
    /// ([`DepthEngineChoice::RawOnly`](crate::device::DepthEngineChoice::RawOnly)).
    pub raw_depth: bool,
}

impl RecorderConfig {
    /// `device_config` with the IMU, until stopped.
    pub fn new(device_config: DeviceConfig) -> RecorderConfig {
        RecorderConfig {
            device_config,
            imu: true,
            length: None,
            raw_depth: false,
        }
    }

    /// Whether raw depth frames are recorded (asked for, and depth is on).
    pub fn records_raw_depth(&self) -> bool {
        self.raw_depth && self.device_config.depth_mode != DepthMode::Off
    }
}

/// Counters of a recording in progress or finished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Time since the recording loop started.
    pub elapsed: Duration,
    /// Captures written.
    pub captures: u64,
    /// IMU samples written.
    pub imu_samples: u64,
    /// Items lost before they reached the file, by the unit or the writer.
    pub drops: DropCounts,
    /// Bytes written to the recording so far.
    pub bytes_written: u64,
}

impl Progress {
    /// Average write rate in bytes per second (0 before any time has passed).
    pub fn bytes_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.bytes_written as f64 / secs
        } else {
            0.0
        }
    }
}

/// How [`Recorder::record`] ended without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The stop flag was set.
    Stopped,
    /// The configured length was reached.
    LengthReached,
}

/// How [`Recorder::wait_first_capture`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstCapture {
    /// A capture arrived (and was discarded): the streams run.
    Arrived,
    /// The stop flag was set first.
    Stopped,
    /// Nothing arrived in time.
    TimedOut,
}

type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why a recorder step failed. The cause (the device's or the sink's error) is the
/// [`source`](std::error::Error::source); downcast it to match on it.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// The cameras did not start.
    #[error("starting the cameras failed")]
    StartCameras(#[source] Cause),
    /// The IMU did not start.
    #[error("starting the IMU failed")]
    StartImu(#[source] Cause),
    /// The recording file could not be created.
    #[error("creating the recording failed")]
    Create(#[source] SinkError),
    /// The IMU track could not be added.
    #[error("adding the IMU track failed")]
    AddImuTrack(#[source] Cause),
    /// The file header could not be written.
    #[error("writing the recording header failed")]
    Header(#[source] Cause),
    /// The depth engine calibration a raw depth recording stores could not be read.
    #[error("reading the depth engine calibration failed")]
    DepthCalibration(#[source] Cause),
    /// The unit failed while delivering raw depth frames.
    #[error("the unit stopped delivering raw depth frames")]
    RawDepth(#[source] Cause),
    /// A raw depth frame could not be written.
    #[error("writing a raw depth frame failed")]
    WriteRawDepth(#[source] Cause),
    /// A step that needs the output ran before one was set.
    #[error("the recorder has no output (call create_file or set_sink first)")]
    NoOutput,
    /// The unit failed while delivering captures.
    #[error("the unit stopped delivering captures")]
    Capture(#[source] Cause),
    /// The unit failed while delivering IMU samples.
    #[error("the unit stopped delivering IMU samples")]
    ImuSample(#[source] Cause),
    /// A capture could not be written.
    #[error("writing a capture failed")]
    WriteCapture(#[source] Cause),
    /// An IMU sample could not be written.
    #[error("writing an IMU sample failed")]
    WriteImu(#[source] Cause),
    /// Flushing the recording failed.
    #[error("flushing the recording failed")]
    Flush(#[source] Cause),
    /// Finishing the recording (sizes, cues, tags) failed; it was finalised in place as far
    /// as possible.
    #[error("finishing the recording failed")]
    Close(#[source] Cause),
}

impl RecorderError {
    /// The underlying cause (the device's or the sink's error), for one-line messages.
    pub fn cause(&self) -> &(dyn std::error::Error + 'static) {
        use std::error::Error as _;
        self.source().unwrap_or(self)
    }
}

/// Records one unit: its captures and IMU samples through a writer thread into a file.
///
/// The steps are separate so several units can be recorded from one process (one recorder
/// each, each with its own stop flag and length): create every recorder and its file, start
/// the subordinates' streams, then the master's, then run each recorder's
/// [`record`](Recorder::record) on its own thread.
///
/// ```no_run
/// use std::time::Duration;
/// use freek4a::device::Device;
/// use freek4a::record::{Recorder, RecorderConfig};
/// use freek4a::types::DeviceConfig;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let backend = freek4a::transport::nusb_backend::NusbBackend::new();
/// let device = Device::open(&backend, 0)?;
/// let mut config = RecorderConfig::new(DeviceConfig::default());
/// config.length = Some(Duration::from_secs(5));
/// let mut recorder = Recorder::new(device, config);
/// recorder.create_file("out.mkv")?;
/// recorder.start()?;
/// recorder.record(|_progress| {})?;
/// let summary = recorder.finish()?;
/// println!("{} captures, {} bytes", summary.captures, summary.bytes_written);
/// # Ok(())
/// # }
/// ```
pub struct Recorder<S: CaptureSource = Device, K: RecordingSink = FileSink> {
    source: S,
    sink: Option<K>,
    config: RecorderConfig,
    stop: StopFlag,
    clock: Arc<dyn Clock>,
    cameras_started: bool,
    imu_started: bool,
    header_written: bool,
    progress: Progress,
    /// The depth engine calibration stored in a raw depth recording.
    depth_calibration: Option<Vec<u8>>,
    raw_clock: super::raw::RawClock,
}

impl<S: CaptureSource> Recorder<S, FileSink> {
    /// Creates the recording file at `path` with the unit's facts and the recorder's writer
    /// settings (cluster delay, a queue sized from the mode's data rate).
    pub fn create_file(&mut self, path: impl AsRef<Path>) -> Result<(), RecorderError> {
        self.load_depth_calibration()?;
        let sink = FileSink::create(path, self.recording_settings(), self.queue_limit_bytes())
            .map_err(RecorderError::Create)?;
        self.sink = Some(sink);
        Ok(())
    }
}

impl<S: CaptureSource, K: RecordingSink> Recorder<S, K> {
    /// A recorder of `source` (opened, not yet streaming) with `config`. Nothing happens until
    /// the output is set and the recorder started.
    pub fn new(source: S, config: RecorderConfig) -> Self {
        Recorder {
            source,
            sink: None,
            config,
            stop: StopFlag::new(),
            clock: Arc::new(MonotonicClock),
            cameras_started: false,
            imu_started: false,
            header_written: false,
            progress: Progress::default(),
            depth_calibration: None,
            raw_clock: super::raw::RawClock::default(),
        }
    }

    /// What the recorder records.
    pub fn config(&self) -> &RecorderConfig {
        &self.config
    }

    /// The writer settings for this recording: [`recorder_settings`] with the unit's facts
    /// (serial number, firmware versions, calibration).
    ///
    /// For a raw depth recording, call [`Recorder::load_depth_calibration`] (or start the
    /// streams) first: the settings hold the depth engine calibration read from the unit.
    pub fn recording_settings(&self) -> RecordingSettings {
        let mut s = recorder_settings(&self.config.device_config, false);
        s.device = self.source.recorded_device();
        if self.config.records_raw_depth() {
            let block = self.depth_calibration.clone().unwrap_or_default();
            s = super::raw::raw_depth_settings(s, &self.config.device_config, block);
        }
        s
    }

    /// Reads the depth engine calibration from the unit for a raw depth recording (nothing to
    /// do otherwise). Idempotent.
    pub fn load_depth_calibration(&mut self) -> Result<(), RecorderError> {
        if self.config.records_raw_depth() && self.depth_calibration.is_none() {
            self.depth_calibration = self
                .source
                .depth_engine_calibration()
                .map_err(|e| RecorderError::DepthCalibration(Box::new(e)))?;
        }
        Ok(())
    }

    /// The writer queue for this recording ([`writer_queue_limit_bytes`]; for raw depth, the
    /// same budget of the raw data rate).
    pub fn queue_limit_bytes(&self) -> usize {
        let config = &self.config.device_config;
        if self.config.records_raw_depth() {
            let mut rest = config.clone();
            rest.depth_mode = DepthMode::Off;
            let rate = stream_bytes_per_sec(&rest, self.config.imu)
                + super::raw::raw_depth_bytes_per_sec(config);
            return (rate as f64 * RAW_WRITER_QUEUE_BUDGET.as_secs_f64()) as usize
                + WRITER_QUEUE_MIN_BYTES;
        }
        writer_queue_limit_bytes(config, self.config.imu)
    }

    /// Writes to `sink` instead of a file made by [`Recorder::create_file`].
    pub fn set_sink(&mut self, sink: K) {
        self.sink = Some(sink);
    }

    /// The recorder's stop flag (a clone: setting it stops this recorder).
    pub fn stop_flag(&self) -> StopFlag {
        self.stop.clone()
    }

    /// Uses `stop` as the stop flag (for example one flag shared by several recorders).
    pub fn set_stop_flag(&mut self, stop: StopFlag) {
        self.stop = stop;
    }

    /// Uses `clock` for the recording length (tests run minutes in no time).
    pub fn set_clock(&mut self, clock: Arc<dyn Clock>) {
        self.clock = clock;
    }

    /// The source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The source, mutably (colour controls...).
    pub fn source_mut(&mut self) -> &mut S {
        &mut self.source
    }

    /// Counters so far.
    pub fn progress(&self) -> Progress {
        self.progress
    }

    /// Starts the cameras, then the IMU if configured. Idempotent.
    pub fn start_streams(&mut self) -> Result<(), RecorderError> {
        if !self.cameras_started {
            self.source
                .start_cameras(&self.config.device_config)
                .map_err(|e| RecorderError::StartCameras(Box::new(e)))?;
            self.cameras_started = true;
            self.load_depth_calibration()?;
        }
        if self.config.imu && !self.imu_started {
            self.source
                .start_imu()
                .map_err(|e| RecorderError::StartImu(Box::new(e)))?;
            self.imu_started = true;
        }
        Ok(())
    }

    /// Adds the IMU track if configured and writes the header. Idempotent.
    pub fn write_header(&mut self) -> Result<(), RecorderError> {
        if self.header_written {
            return Ok(());
        }
        let imu = self.config.imu;
        let sink = self.sink.as_mut().ok_or(RecorderError::NoOutput)?;
        if imu {
            sink.add_imu_track()
                .map_err(|e| RecorderError::AddImuTrack(Box::new(e)))?;
        }
        sink.write_header()
            .map_err(|e| RecorderError::Header(Box::new(e)))?;
        self.header_written = true;
        Ok(())
    }

    /// Writes the header, then starts the streams.
    pub fn start(&mut self) -> Result<(), RecorderError> {
        self.write_header()?;
        self.start_streams()
    }

    /// Waits up to `timeout` for a capture, which only proves the streams run and is not
    /// written (as `k4arecorder` does before it starts recording).
    pub fn wait_first_capture(&mut self, timeout: Duration) -> Result<FirstCapture, RecorderError> {
        let start = self.clock.now();
        while !self.stop.is_stopped() {
            if self.clock.now().saturating_duration_since(start) >= timeout {
                return Ok(FirstCapture::TimedOut);
            }
            if self.raw_depth_only() {
                match self.source.get_raw_depth(FIRST_CAPTURE_POLL) {
                    Ok(Some(_)) => return Ok(FirstCapture::Arrived),
                    Ok(None) => {}
                    Err(e) => return Err(RecorderError::RawDepth(Box::new(e))),
                }
                continue;
            }
            let arrived = match self.source.get_capture(FIRST_CAPTURE_POLL) {
                Ok(c) => c.is_some(),
                Err(e) => return Err(RecorderError::Capture(Box::new(e))),
            };
            if self.config.records_raw_depth() {
                // Raw frames from before the first capture are not recorded either, and
                // leaving them queued would overflow the unit's raw queue.
                while self
                    .source
                    .get_raw_depth(Duration::ZERO)
                    .map_err(|e| RecorderError::RawDepth(Box::new(e)))?
                    .is_some()
                {}
            }
            if arrived {
                return Ok(FirstCapture::Arrived);
            }
        }
        Ok(FirstCapture::Stopped)
    }

    /// Raw depth with colour off: raw frames are the only captures there are.
    fn raw_depth_only(&self) -> bool {
        self.config.records_raw_depth()
            && self.config.device_config.color_resolution == ColorResolution::Off
    }

    /// Records until the stop flag is set or the length is reached, calling `on_capture` after
    /// every capture written (with raw depth, every raw frame counts as a capture). Write errors and unit failures end the loop with an error; the
    /// file is still finished by [`Recorder::finish`] with what it holds.
    pub fn record(
        &mut self,
        mut on_capture: impl FnMut(&Progress),
    ) -> Result<Ending, RecorderError> {
        let sink = self.sink.as_mut().ok_or(RecorderError::NoOutput)?;
        let config = &self.config;
        let clock = &*self.clock;
        let stop = &self.stop;
        let progress = &mut self.progress;
        let start = clock.now();
        let hz = u64::from(config.device_config.camera_fps.hz());
        let capture_timeout = Duration::from_millis(1000 / hz);
        let within_length = || {
            config
                .length
                .is_none_or(|l| clock.now().saturating_duration_since(start) < l)
        };
        // The length also ends the recording once the captures written span it in device time:
        // a backlog queued while the unit started would otherwise stretch the file past it.
        let period_usec = 1_000_000 / hz;
        let mut first_device_usec: Option<u64> = None;
        let raw = config.records_raw_depth();
        let raw_only = raw && config.device_config.color_resolution == ColorResolution::Off;
        let raw_clock = &mut self.raw_clock;
        loop {
            // The device time of what this round wrote, and whether it wrote anything.
            let mut newest_usec = None;
            let mut wrote = false;
            if !raw_only {
                let capture = match self.source.get_capture(capture_timeout) {
                    Ok(c) => c,
                    Err(e) => return Err(RecorderError::Capture(Box::new(e))),
                };
                if let Some(capture) = capture {
                    if let Some(c) = &capture.color {
                        raw_clock.observe_image(c.device_timestamp_usec, c.system_timestamp_nsec);
                    }
                    newest_usec = capture_device_usec(&capture);
                    sink.write_capture(capture)
                        .map_err(|e| RecorderError::WriteCapture(Box::new(e)))?;
                    progress.captures += 1;
                    wrote = true;
                }
            }
            if raw {
                let mut timeout = if raw_only {
                    capture_timeout
                } else {
                    Duration::ZERO
                };
                loop {
                    let frame = match self.source.get_raw_depth(timeout) {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(e) => return Err(RecorderError::RawDepth(Box::new(e))),
                    };
                    timeout = Duration::ZERO;
                    if raw_only && config.imu && !raw_clock.knows_offset() {
                        // Put the raw frames on the IMU's clock from the first frame on.
                        match self.source.get_imu_sample(capture_timeout) {
                            Ok(Some(sample)) => {
                                write_imu(sink, &sample, progress, Some(&mut *raw_clock))?
                            }
                            Ok(None) => {}
                            Err(e) => return Err(RecorderError::ImuSample(Box::new(e))),
                        }
                    }
                    let t = raw_clock.device_usec(frame.system_timestamp_ns);
                    sink.write_custom(super::raw::RAW_DEPTH_TRACK, t, frame.data)
                        .map_err(|e| RecorderError::WriteRawDepth(Box::new(e)))?;
                    if raw_only {
                        progress.captures += 1;
                        newest_usec = Some(newest_usec.map_or(t, |n: u64| n.max(t)));
                    }
                    wrote = true;
                }
            }
            let mut device_length_reached = false;
            let mut imu_failure = None;
            if wrote {
                if let (Some(l), Some(t)) = (config.length, newest_usec) {
                    let t0 = *first_device_usec.get_or_insert(t);
                    // Half a period of slack: timestamps are whole microseconds.
                    let span_usec = t.saturating_sub(t0) + period_usec + period_usec / 2;
                    device_length_reached = u128::from(span_usec) >= l.as_micros();
                }
                if config.imu {
                    loop {
                        match self.source.get_imu_sample(Duration::ZERO) {
                            Ok(None) => break,
                            Err(e) => {
                                imu_failure = Some(RecorderError::ImuSample(Box::new(e)));
                                break;
                            }
                            Ok(Some(sample)) => {
                                let clock = raw.then_some(&mut *raw_clock);
                                write_imu(sink, &sample, progress, clock)?;
                            }
                        }
                        if stop.is_stopped() || !within_length() {
                            break;
                        }
                    }
                }
                let mut drops = self.source.dropped();
                drops.add(sink.dropped());
                progress.drops = drops;
                progress.bytes_written = sink.bytes_written();
                progress.elapsed = clock.now().saturating_duration_since(start);
                on_capture(progress);
            }
            if let Some(e) = imu_failure {
                return Err(e);
            }
            if stop.is_stopped() {
                return Ok(Ending::Stopped);
            }
            if device_length_reached || !within_length() {
                return Ok(Ending::LengthReached);
            }
        }
    }

    /// Stops the IMU and the cameras if they run. Idempotent.
    pub fn stop_streams(&mut self) {
        if self.imu_started {
            self.source.stop_imu();
            self.imu_started = false;
        }
        if self.cameras_started {
            self.source.stop_cameras();
            self.cameras_started = false;
        }
    }

    /// Stops the streams, stores the unit's drops in the file and finishes it (sizes, cues,
    /// tags). After a write error the file is finished in place with what reached the disk and
    /// the error names the cause.
    pub fn finish(mut self) -> Result<Progress, RecorderError> {
        self.stop_streams();
        let lost = self.source.dropped();
        let Some(sink) = self.sink.as_mut() else {
            return Ok(self.progress);
        };
        sink.add_dropped(lost);
        let flushed = sink.flush().map_err(|e| RecorderError::Flush(Box::new(e)));
        let closed = sink.close().map_err(|e| RecorderError::Close(Box::new(e)));
        self.progress.bytes_written = sink.bytes_written();
        self.progress.drops = sink.dropped();
        flushed?;
        closed?;
        Ok(self.progress)
    }

    /// Hands back the source (streams stopped, output finished or not) without finishing.
    pub fn into_source(mut self) -> S {
        self.stop_streams();
        let Recorder { source, .. } = self;
        source
    }
}

/// Writes one IMU sample and counts it; with raw depth, its arrival also ties the raw frames'
/// host clock to the device clock.
fn write_imu<K: RecordingSink>(
    sink: &mut K,
    sample: &ImuSample,
    progress: &mut Progress,
    raw_clock: Option<&mut super::raw::RawClock>,
) -> Result<(), RecorderError> {
    if let Some(clock) = raw_clock {
        clock.observe_imu(
            crate::device::monotonic_ns() / 1000,
            sample.acc_timestamp_usec,
        );
    }
    sink.write_imu_sample(sample)
        .map_err(|e| RecorderError::WriteImu(Box::new(e)))?;
    progress.imu_samples += 1;
    Ok(())
}

/// The earliest device timestamp of a capture's images.
fn capture_device_usec(capture: &Capture) -> Option<u64> {
    [&capture.color, &capture.depth, &capture.ir]
        .into_iter()
        .flatten()
        .map(|i| i.device_timestamp_usec)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Image, TrackKind};

    /// A unit that hands out a 30 fps capture (a small depth image) and one IMU sample per
    /// call, as fast as asked; its device clock advances with every capture.
    struct Synthetic {
        next_usec: u64,
        calls: Vec<&'static str>,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("never")]
    struct Never;

    impl CaptureSource for Synthetic {
        type Error = Never;
        fn start_cameras(&mut self, _: &DeviceConfig) -> Result<(), Never> {
            self.calls.push("start_cameras");
            Ok(())
        }
        fn start_imu(&mut self) -> Result<(), Never> {
            self.calls.push("start_imu");
            Ok(())
        }
        fn get_capture(&mut self, _: Duration) -> Result<Option<Capture>, Never> {
            std::thread::sleep(Duration::from_millis(1));
            self.next_usec += 33_333;
            let (w, h) = (320, 288);
            Ok(Some(Capture {
                depth: Some(Image {
                    format: ImageFormat::Depth16,
                    width: w,
                    height: h,
                    stride_bytes: w * 2,
                    device_timestamp_usec: self.next_usec,
                    system_timestamp_nsec: 0,
                    exposure_usec: 0,
                    data: vec![7; (w * h * 2) as usize].into(),
                }),
                ..Capture::default()
            }))
        }
        fn get_imu_sample(&mut self, _: Duration) -> Result<Option<ImuSample>, Never> {
            Ok(None)
        }
        fn stop_imu(&mut self) {
            self.calls.push("stop_imu");
        }
        fn stop_cameras(&mut self) {
            self.calls.push("stop_cameras");
        }
        fn dropped(&self) -> DropCounts {
            let mut d = DropCounts::default();
            d[TrackKind::Depth] = 2;
            d
        }
    }

    fn config() -> RecorderConfig {
        let mut c = RecorderConfig::new(DeviceConfig {
            color_resolution: ColorResolution::Off,
            depth_mode: DepthMode::Nfov2x2Binned,
            ..DeviceConfig::default()
        });
        c.imu = false;
        c
    }

    #[test]
    fn queue_follows_the_modes_data_rate() {
        let heavy = DeviceConfig {
            color_resolution: ColorResolution::R3072p,
            depth_mode: DepthMode::WfovUnbinned,
            camera_fps: crate::types::Fps::Fps15,
            ..DeviceConfig::default()
        };
        // 3072p MJPEG (estimated) + WFOV unbinned depth and IR at 15 fps: about 107 MB/s.
        let rate = stream_bytes_per_sec(&heavy, true);
        assert!((100_000_000..115_000_000).contains(&rate), "{rate}");
        let q = writer_queue_limit_bytes(&heavy, true);
        assert_eq!(q, (rate as f64 * 0.25) as usize);
        // A light mode gets the floor.
        assert_eq!(
            writer_queue_limit_bytes(&config().device_config, false),
            WRITER_QUEUE_MIN_BYTES
        );
    }

    #[test]
    fn two_recorders_started_separately_each_with_its_own_stop_and_length() {
        let dir = std::env::temp_dir().join(format!("freek4a-recorder-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let unit = || Synthetic {
            next_usec: 1_000_000,
            calls: Vec::new(),
        };
        let mut limited = Recorder::new(unit(), {
            let mut c = config();
            c.length = Some(Duration::from_secs(1));
            c
        });
        let mut stopped = Recorder::new(unit(), config());
        limited.create_file(dir.join("limited.mkv")).unwrap();
        stopped.create_file(dir.join("stopped.mkv")).unwrap();
        // Headers first, then the streams: the second unit starts before the first.
        limited.write_header().unwrap();
        stopped.write_header().unwrap();
        stopped.start_streams().unwrap();
        limited.start().unwrap();
        let stop = stopped.stop_flag();
        let other = std::thread::spawn(move || {
            let ending = stopped.record(|_| {}).unwrap();
            (ending, stopped.finish().unwrap())
        });
        assert_eq!(limited.record(|_| {}).unwrap(), Ending::LengthReached);
        let summary = limited.finish().unwrap();
        stop.stop();
        let (ending, other_summary) = other.join().unwrap();
        assert_eq!(ending, Ending::Stopped);
        assert!(other_summary.captures > 0);
        // One second of device time at 30 fps. The file holds every capture the writer's queue
        // took; its drop count is the source's 2 plus what a full queue refused (this source
        // is not paced by a camera).
        assert_eq!(summary.captures, 30);
        let mut pb = crate::playback::Playback::open(dir.join("limited.mkv")).unwrap();
        let mut n = 0;
        while pb.next_capture().unwrap().is_some() {
            n += 1;
        }
        let depth_drops = summary.drops[TrackKind::Depth];
        assert!(depth_drops >= 2);
        assert_eq!(n + (depth_drops - 2), 30);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn steps_out_of_order_are_errors_not_panics() {
        let mut r: Recorder<Synthetic> = Recorder::new(
            Synthetic {
                next_usec: 0,
                calls: Vec::new(),
            },
            config(),
        );
        assert!(matches!(r.write_header(), Err(RecorderError::NoOutput)));
        assert!(matches!(r.record(|_| {}), Err(RecorderError::NoOutput)));
        r.start_streams().unwrap();
        let source = r.into_source();
        assert_eq!(source.calls, ["start_cameras", "stop_cameras"]);
    }
}
