//! The recorder's sequence plugged into the real layers: a [`Device`] over the nusb backend or
//! the emulator, and a [`RecordingWriter`] on its own thread.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cli::args::{Exposure, RecorderOptions};
use crate::cli::emulate::{EmulateSpec, EmulateSpeed, FaultKind};
use crate::cli::session::{DroppedFrames, RecorderDevice, RecordingSink, WaitResult};
use crate::device::{self, ColorControl, ControlMode, DepthEngineChoice, Device, DeviceError};
use crate::emulator::{
    EmulatedBackend, EmulatorSpec, Fault, FaultRule, FaultTarget, Speed, SyncJacks,
};
use crate::mkv::writer::{DeviceInfo, DropCounts, RecordingSettings};
use crate::record::{RecordError, RecordingWriter, WriterStats};
use crate::transport::nusb_backend::NusbBackend;
use crate::transport::Backend;
use crate::types::{Capture, DeviceConfig, HardwareVersion, ImuSample};

/// Bytes of captures and samples allowed to wait for the writer thread. At the heaviest mode
/// (3072p MJPEG + WFOV unbinned depth and IR, about 90 MB/s) this is about a second of data, and
/// it bounds the recorder's memory whatever the disk does; a longer stall drops frames, counted.
pub const WRITER_QUEUE_LIMIT_BYTES: usize = 96 << 20;

/// How long (device time) the recorder's writer keeps a cluster open for late data. Captures and
/// IMU samples reach the writer in device-time order give or take the pipeline's latency (a
/// frame or two), so a quarter of a second is ample, and it is all a killed recorder can lose; the SDK
/// holds two seconds.
pub const RECORDER_CLUSTER_WRITE_DELAY_NS: u64 = 250_000_000;

/// Test-only: milliseconds every write to the recording file sleeps, to emulate a slow disk.
/// Deliberately not in the help text.
pub const TEST_WRITE_DELAY_ENV: &str = "FREEK4A_TEST_WRITE_DELAY_MS";

/// Small writes are gathered up to this many bytes; larger ones (image payloads) go straight to
/// the file, so a killed recorder loses little beyond what the writer itself still holds.
const FILE_BUFFER_BYTES: usize = 64 << 10;

/// The backend a recorder run talks to: USB, or emulated units.
pub fn backend_for(emulate: Option<&EmulateSpec>) -> Box<dyn Backend> {
    match emulate {
        None => Box::new(NusbBackend::new()),
        Some(spec) => Box::new(EmulatedBackend::new(emulator_spec(spec))),
    }
}

/// The emulator configuration for a command-line `--emulate` spec.
pub fn emulator_spec(spec: &EmulateSpec) -> EmulatorSpec {
    EmulatorSpec {
        units: usize::from(spec.units.max(1)),
        speed: match spec.speed {
            EmulateSpeed::Realtime => Speed::RealTime,
            EmulateSpeed::Max => Speed::Max,
            EmulateSpeed::Factor(f) => Speed::Factor(f),
        },
        seed: spec.seed,
        sync_cables: spec.chain,
        jacks: spec
            .cables
            .iter()
            .map(|c| SyncJacks {
                unit: usize::from(c.unit),
                sync_in: c.sync_in,
                sync_out: c.sync_out,
            })
            .collect(),
        faults: spec
            .faults
            .iter()
            .map(|f| FaultRule {
                unit: 0,
                target: FaultTarget::Stream(f.stream),
                fault: match f.kind {
                    FaultKind::Timeout => Fault::Timeout,
                    FaultKind::Stall => Fault::Stall,
                    FaultKind::Short => Fault::Short,
                    FaultKind::Corrupt => Fault::Corrupt,
                    FaultKind::Disconnect => Fault::Disconnect,
                    FaultKind::Babble => Fault::Babble,
                },
                after: f.after,
                times: Some(f.times),
            })
            .collect(),
        firmware_overrides: spec
            .firmware
            .iter()
            .map(|f| {
                let mut v = EmulatorSpec::default().firmware;
                v.rgb = f.rgb;
                v.depth = f.depth;
                (usize::from(f.unit), v)
            })
            .collect(),
        journal_path: spec.journal.clone(),
        ..EmulatorSpec::default()
    }
}

/// The recording file: a write buffer for the writer's small pieces, with two differences
/// from `BufWriter`. After a failed write (a full disk) the unwritable bytes are discarded, so
/// the writer can still seek back and patch the header in place; and an optional per-write
/// delay ([`TEST_WRITE_DELAY_ENV`]) emulates a slow disk in tests.
pub struct RecordingFile {
    file: File,
    buf: Vec<u8>,
    delay: Option<Duration>,
    /// Bytes that reached the file through this writer.
    written: u64,
}

impl RecordingFile {
    /// Wraps `file`, reading the test delay from the environment.
    pub fn new(file: File) -> RecordingFile {
        let delay = std::env::var(TEST_WRITE_DELAY_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis);
        RecordingFile {
            file,
            buf: Vec::with_capacity(FILE_BUFFER_BYTES),
            delay,
            written: 0,
        }
    }

    fn write_through(&mut self, data: &[u8]) -> std::io::Result<()> {
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
        self.file.write_all(data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    fn drain(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.buf);
        // On failure the bytes are dropped: retrying a full disk only fails again, and keeping
        // them would make every later seek (the header patches) fail too.
        let r = self.write_through(&data);
        self.buf = data;
        self.buf.clear();
        r
    }
}

impl Write for RecordingFile {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > FILE_BUFFER_BYTES {
            self.drain()?;
        }
        // The header goes straight to the file: the first cluster follows only seconds later
        // (the writer holds clusters for CLUSTER_WRITE_DELAY_NS), and a recorder killed before
        // then must still leave a file that opens.
        if data.len() >= FILE_BUFFER_BYTES || self.written < FILE_BUFFER_BYTES as u64 {
            self.drain()?;
            self.write_through(data)?;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.drain()?;
        self.file.flush()
    }
}

impl Seek for RecordingFile {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.drain()?;
        self.file.seek(pos)
    }
}

/// A device for the recorder: the backend, and the unit once it is open.
pub struct DeviceSource {
    backend: Box<dyn Backend>,
    options: device::OpenOptions,
    device: Option<Device>,
    /// Device-side drops as of the last stop, for the file's tags.
    final_drops: Arc<Mutex<DropCounts>>,
    /// The emulated units and when to unplug unit 0 (`--emulate=unplug_after=S`).
    unplug: Option<(EmulatedBackend, Duration, u8)>,
    /// Units come from `--emulate`.
    emulated: bool,
    /// The options whose OpenGL choice for the depth engine is made once a unit was found, so
    /// a missing camera is reported before anything about OpenGL.
    gl_setup: Option<RecorderOptions>,
}

impl DeviceSource {
    /// A source for the options' backend (`--emulate`) and depth engine (`--depth-engine`).
    pub fn for_options(options: &RecorderOptions) -> DeviceSource {
        let emulated = options.emulate.as_ref();
        let depth_engine = match (&options.depth_engine_path, emulated) {
            (Some(p), _) => DepthEngineChoice::Path(p.clone()),
            (None, Some(_)) => DepthEngineChoice::Emulated,
            (None, None) => DepthEngineChoice::System,
        };
        // At maximum speed an emulated unit runs at the recorder's pace instead of dropping.
        let backpressure = emulated.is_some_and(|s| s.speed == EmulateSpeed::Max);
        let (backend, unplug): (Box<dyn Backend>, _) = match emulated {
            Some(spec) => {
                let b = EmulatedBackend::new(emulator_spec(spec));
                let unplug = spec
                    .unplug_after_sec
                    .map(|s| (b.clone(), Duration::from_secs_f64(s), spec.unplug_unit));
                (Box::new(b), unplug)
            }
            None => (backend_for(None), None),
        };
        DeviceSource {
            backend,
            unplug,
            options: device::OpenOptions {
                depth_engine,
                backpressure,
                ..Default::default()
            },
            device: None,
            final_drops: Arc::default(),
            emulated: emulated.is_some(),
            gl_setup: Some(options.clone()),
        }
    }

    /// A source on a backend shared with other sources (one unit of a rig; the emulated
    /// units' `unplug_after` is left to the caller).
    pub fn on_backend(options: &RecorderOptions, backend: Box<dyn Backend>) -> DeviceSource {
        let mut source = DeviceSource::for_options(&RecorderOptions {
            emulate: None,
            ..options.clone()
        });
        if options.emulate.is_some() {
            source.options.depth_engine = match &options.depth_engine_path {
                Some(p) => DepthEngineChoice::Path(p.clone()),
                None => DepthEngineChoice::Emulated,
            };
            source.options.backpressure = options
                .emulate
                .as_ref()
                .is_some_and(|s| s.speed == EmulateSpeed::Max);
            source.emulated = true;
        }
        source.backend = backend;
        source.gl_setup = Some(options.clone());
        source
    }

    /// Device-side drops per stream in the recording's terms (a lost depth frame loses its
    /// depth and IR images; a capture dropped from the output queue loses all its images).
    pub fn drop_counts(&self) -> DropCounts {
        let Some(d) = self.device.as_ref() else {
            return DropCounts::default();
        };
        let x = d.drops();
        let depth =
            x.depth_invalid_size + x.depth_queue_full + x.depth_engine + x.capture_queue_full;
        DropCounts {
            color: x.color_no_timestamp
                + x.color_bad_size
                + x.color_bad_packet
                + x.capture_queue_full,
            depth,
            ir: depth,
            imu: x.imu_malformed + x.imu_queue_full,
        }
    }

    fn remember_drops(&self) {
        if self.device.is_some() {
            if let Ok(mut g) = self.final_drops.lock() {
                *g = self.drop_counts();
            }
        }
    }

    /// The open device, if any.
    pub fn device(&self) -> Option<&Device> {
        self.device.as_ref()
    }

    /// The open device, if any, for changing its settings.
    pub fn device_mut(&mut self) -> Option<&mut Device> {
        self.device.as_mut()
    }

    fn open_device(&mut self) -> Result<&mut Device, SourceError> {
        self.device.as_mut().ok_or(SourceError::NotOpen)
    }
}

impl RecorderDevice for DeviceSource {
    type Error = SourceError;

    fn installed_count(&mut self) -> u32 {
        device::list(self.backend.as_ref()).map_or(0, |n| n as u32)
    }

    fn not_found_hints(&mut self) -> Vec<String> {
        if self.emulated {
            let n = device::list(self.backend.as_ref()).unwrap_or(0);
            return vec![format!(
                "Hint: {n} emulated unit(s) (--emulate=units=N); --device counts from 0."
            )];
        }
        crate::cli::hints::device_not_found_hints(&crate::transport::discovery::UsbPresence::scan())
    }

    fn open(&mut self, index: u8) -> Result<(), SourceError> {
        if let Some(options) = self.gl_setup.take() {
            if let Some(line) = crate::cli::gl::prepare_for_recording(&options) {
                eprintln!("{line}");
            }
        }
        let dev = Device::open_with(
            self.backend.as_ref(),
            usize::from(index),
            self.options.clone(),
        )?;
        self.device = Some(dev);
        Ok(())
    }

    fn serial_number(&mut self) -> Result<String, SourceError> {
        Ok(self.open_device()?.serial_number().to_string())
    }

    fn hardware_version(&mut self) -> Result<HardwareVersion, SourceError> {
        Ok(self.open_device()?.hardware_version())
    }

    fn set_exposure(&mut self, exposure: Exposure) -> Result<(), SourceError> {
        let dev = self.open_device()?;
        match exposure {
            Exposure::Auto => {
                dev.set_color_control(ColorControl::ExposureTimeAbsolute, ControlMode::Auto, 0)?
            }
            Exposure::ManualUsec(us) => dev.set_color_control(
                ColorControl::ExposureTimeAbsolute,
                ControlMode::Manual,
                i32::try_from(us).unwrap_or(i32::MAX),
            )?,
        }
        Ok(())
    }

    fn set_gain(&mut self, gain: u8) -> Result<(), SourceError> {
        Ok(self.open_device()?.set_color_control(
            ColorControl::Gain,
            ControlMode::Manual,
            i32::from(gain),
        )?)
    }

    fn start_cameras(&mut self, config: &DeviceConfig) -> Result<(), SourceError> {
        self.open_device()?.start_cameras(config)?;
        if let Some((backend, after, unit)) = self.unplug.take() {
            std::thread::spawn(move || {
                std::thread::sleep(after);
                backend.disconnect(usize::from(unit));
            });
        }
        Ok(())
    }

    fn start_imu(&mut self) -> Result<(), SourceError> {
        Ok(self.open_device()?.start_imu()?)
    }

    fn get_capture(&mut self, timeout: Duration) -> WaitResult<Capture, SourceError> {
        match self.open_device().and_then(|d| Ok(d.get_capture(timeout)?)) {
            Ok(Some(c)) => WaitResult::Ready(c),
            Ok(None) => WaitResult::Timeout,
            Err(e) => WaitResult::Failed(e),
        }
    }

    fn get_imu_sample(&mut self, timeout: Duration) -> WaitResult<ImuSample, SourceError> {
        match self
            .open_device()
            .and_then(|d| Ok(d.get_imu_sample(timeout)?))
        {
            Ok(Some(s)) => WaitResult::Ready(s),
            Ok(None) => WaitResult::Timeout,
            Err(e) => WaitResult::Failed(e),
        }
    }

    fn stop_imu(&mut self) {
        if let Some(d) = self.device.as_mut() {
            let _ = d.stop_imu();
        }
        self.remember_drops();
    }

    fn stop_cameras(&mut self) {
        if let Some(d) = self.device.as_mut() {
            let _ = d.stop_cameras();
        }
        self.remember_drops();
    }

    fn close(&mut self) {
        self.remember_drops();
        self.device = None;
    }

    fn dropped_frames(&self) -> DroppedFrames {
        let Some(d) = self.device.as_ref() else {
            return DroppedFrames::default();
        };
        let _ = d;
        let x = self.drop_counts();
        DroppedFrames {
            color: x.color,
            depth: x.depth,
            ir: x.ir,
            imu: x.imu,
        }
    }
}

/// Why a device operation of the recorder failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// An operation that needs an open device before `open` succeeded.
    #[error("the device is not open")]
    NotOpen,
    /// The device layer failed.
    #[error(transparent)]
    Device(#[from] DeviceError),
}

/// Why the recording file failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The file could not be created.
    #[error("creating {path}: {source}")]
    Create {
        /// The output path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The writer failed.
    #[error(transparent)]
    Writer(#[from] Box<RecordError>),
    /// The writer thread stopped earlier (the cause was reported when the file was closed).
    #[error(
        "the writer stopped after an earlier error; the file was finalised with what it holds"
    )]
    Stopped,
    /// A call out of order (header twice, data before the header).
    #[error("recording file used out of order: {0}")]
    Order(&'static str),
}

/// The recording file: settings gathered before the header, then the writer thread.
pub struct FileSink {
    path: PathBuf,
    settings: Option<RecordingSettings>,
    writer: Option<RecordingWriter>,
    /// Frames the device layer dropped before they reached the writer, stored in the file.
    device_drops: Arc<Mutex<DropCounts>>,
    stats: Option<WriterStats>,
}

impl FileSink {
    /// A sink for `options` with the open device's identity and calibration.
    pub fn create(source: &mut DeviceSource, options: &RecorderOptions) -> Result<Self, SinkError> {
        let mut settings = RecordingSettings::new(options.device_config.clone(), false);
        settings.cluster_write_delay_ns = RECORDER_CLUSTER_WRITE_DELAY_NS;
        if let Some(dev) = source.device() {
            let hw = dev.hardware_version();
            let raw = dev.raw_calibration();
            let json = raw.strip_suffix(&[0]).unwrap_or(raw).to_vec();
            settings.device = Some(DeviceInfo {
                serial_number: Some(dev.serial_number().to_string()),
                color_firmware: hw.rgb,
                depth_firmware: hw.depth,
                calibration_json: json,
            });
        }
        // Check now that the file can be created, as k4a_record_create does.
        File::create(&options.output_path).map_err(|source| SinkError::Create {
            path: options.output_path.clone(),
            source,
        })?;
        Ok(FileSink {
            path: options.output_path.clone(),
            settings: Some(settings),
            writer: None,
            device_drops: source.final_drops.clone(),
            stats: None,
        })
    }

    /// Adds global tags to the file (before its header is written).
    pub fn add_tags(&mut self, tags: &[(String, String)]) -> Result<(), SinkError> {
        let s = self
            .settings
            .as_mut()
            .ok_or(SinkError::Order("tags after the header"))?;
        s.tags.extend_from_slice(tags);
        Ok(())
    }

    /// The writer's statistics once the file is closed.
    pub fn stats(&self) -> Option<WriterStats> {
        self.stats
    }

    fn writer(&self) -> Result<&RecordingWriter, SinkError> {
        self.writer
            .as_ref()
            .ok_or(SinkError::Order("data before the header"))
    }
}

impl RecordingSink for FileSink {
    type Error = SinkError;

    fn add_imu_track(&mut self) -> Result<(), SinkError> {
        let s = self
            .settings
            .as_mut()
            .ok_or(SinkError::Order("IMU track after the header"))?;
        s.imu = true;
        Ok(())
    }

    fn write_header(&mut self) -> Result<(), SinkError> {
        let settings = self
            .settings
            .take()
            .ok_or(SinkError::Order("header written twice"))?;
        let file = File::create(&self.path).map_err(|source| SinkError::Create {
            path: self.path.clone(),
            source,
        })?;
        let out = RecordingFile::new(file);
        self.writer = Some(
            RecordingWriter::spawn(out, settings, WRITER_QUEUE_LIMIT_BYTES).map_err(Box::new)?,
        );
        Ok(())
    }

    fn write_capture(&mut self, capture: &Capture) -> Result<(), SinkError> {
        let w = self.writer()?;
        if w.has_stopped() {
            return Err(SinkError::Stopped);
        }
        // A full queue is a counted drop, not a failure: the recording goes on.
        w.submit_capture(capture.clone());
        Ok(())
    }

    fn write_imu_sample(&mut self, sample: &ImuSample) -> Result<(), SinkError> {
        let w = self.writer()?;
        if w.has_stopped() {
            return Err(SinkError::Stopped);
        }
        w.submit_imu(*sample);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        let Some(w) = self.writer.take() else {
            return Ok(());
        };
        let device_drops = self.device_drops.lock().map(|g| *g).unwrap_or_default();
        w.add_dropped(device_drops);
        let stats = w.finish().map_err(Box::new)?;
        self.stats = Some(stats);
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        match (&self.writer, &self.stats) {
            (Some(w), _) => w.bytes_written(),
            // Closed: the finished file's size (Cues included).
            (None, Some(stats)) => stats.bytes_written,
            (None, None) => 0,
        }
    }

    fn dropped_frames(&self) -> DroppedFrames {
        self.writer
            .as_ref()
            .map_or_else(DroppedFrames::default, |w| {
                let d = w.drops();
                DroppedFrames {
                    color: d.color,
                    depth: d.depth,
                    ir: d.ir,
                    imu: d.imu,
                }
            })
    }
}
