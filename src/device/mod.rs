//! The device layer: an Azure Kinect unit over any [`Backend`] (real USB or the emulator).
//!
//! [`list`] counts units as the SDK does, [`Device::open`] pairs the depth and colour halves by
//! Container ID and reads serial, versions and calibration with the SDK's retries, and
//! [`Device::start_cameras`] / [`Device::start_imu`] issue the SDK's start sequence
//! (`protocol/sequences.md`). Captures are paired like the SDK's capturesync (`sync.rs`) and popped
//! with [`Device::get_capture`]; IMU samples with [`Device::get_imu_sample`]. Everything the
//! device layer drops is counted in [`Device::drops`].

mod command;
pub mod controls;
mod streams;
mod sync;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::types::Stream;
pub use command::CommandFailure;
pub use controls::{
    exposure_from_recorder_value, ColorControl, ControlError, ControlMode, ControlRange,
};
pub use streams::{monotonic_ns, RawDepthFrame, IMU_QUEUE_DEPTH};
pub use sync::{OUTPUT_QUEUE_DEPTH, STREAM_BACKLOG};

use command::CommandChannel;
use streams::{DepthSink, DropOldest, Reader};
use sync::{CaptureSync, SyncParams};

use crate::depthengine::{self, DepthEngine, DepthEngineError, DepthPipeline};
use crate::protocol::calibration::{Calibration, CalibrationError};
use crate::protocol::command::{
    ComponentVersionGet, DepthFpsSet, DepthModeSet, DepthStart, DepthStop, DepthStreamStart,
    DepthStreamStop, GetJackState, ImuStreamStart, ImuStreamStop, NvDataGet, ReadCalibrationData,
    ReadProductSerial, SensorMode, SetSysCfg, CALIBRATION_READ_ATTEMPTS,
};
use crate::protocol::depth_raw;
use crate::protocol::descriptors::{
    container_id_text, descriptor_type, parse_container_id, Configuration, DescriptorError,
    InEndpoint, StreamEndpoint, UvcFormatKind, ALT_SETTING_ZERO_BANDWIDTH, COLOR_MCU, DEPTH_MCU,
    GUID_NV12, GUID_YUY2, PID_COLOR, PID_DEPTH, UVC_CONTROL_INTERFACE, UVC_STREAMING_INTERFACE,
    VID_MICROSOFT,
};
use crate::protocol::modes::{self, validate_configuration, ConfigError, DepthModeInfo};
use crate::protocol::payload::{
    check_minimum_firmware, FirmwareTooOld, JackState, NvTag, SyncConfig,
};
use crate::protocol::uvc::{self as uvcp, PowerLine, ProbeCommit, UvcError};
use crate::transport::{
    self, usbfs_memory, Backend, ControlSetup, DeviceInfo, TransferError, UsbDevice, UsbInterface,
};
use crate::types::{
    Capture, ColorResolution, DepthMode, DeviceConfig, DropCounts, HardwareVersion, ImageFormat,
    ImuSample, TrackKind,
};

/// Why a stream stopped delivering.
#[derive(Clone, Debug)]
pub enum StreamError {
    /// A transfer failed (disconnect, stall, fault).
    Transfer {
        /// The stream.
        stream: Stream,
        /// Why.
        source: TransferError,
    },
    /// The depth engine failed (shared: every waiting reader sees the same failure).
    DepthEngine(Arc<DepthEngineError>),
    /// A reader thread could not be started.
    Thread(Arc<std::io::Error>),
    /// The stream is not running.
    NotStreaming,
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Transfer { stream, source } => {
                write!(f, "{stream} stream: transfer failed: {source}")
            }
            StreamError::DepthEngine(e) => write!(f, "depth engine: {e}"),
            StreamError::Thread(e) => write!(f, "could not start a stream thread: {e}"),
            StreamError::NotStreaming => f.write_str("the stream is not running"),
        }
    }
}

// By hand rather than derived: the shared causes are reported as themselves, not as `Arc`s,
// so callers can downcast them.
impl std::error::Error for StreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StreamError::Transfer { source, .. } => Some(source),
            StreamError::DepthEngine(e) => Some(e.as_ref()),
            StreamError::Thread(e) => Some(e.as_ref()),
            StreamError::NotStreaming => None,
        }
    }
}

/// Errors of the device layer; each names what failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The transport failed (open, claim, descriptors).
    #[error(transparent)]
    Transport(#[from] transport::Error),
    /// The kernel's usbfs memory budget cannot hold the streams asked for (or cannot be read).
    #[error(transparent)]
    UsbfsMemory(#[from] transport::usbfs_memory::UsbfsMemoryError),
    /// No unit at this index.
    #[error("Device not found: no unit at index {index} ({count} connected)")]
    NotFound {
        /// Index asked for.
        index: usize,
        /// Units present.
        count: usize,
    },
    /// The depth device has no Container ID.
    #[error("{device}: LIBUSB_BT_CONTAINER_ID not found")]
    NoContainerId {
        /// The device.
        device: String,
    },
    /// No colour function carries the depth function's Container ID.
    #[error("no colour function (045E:097D) with Container ID {0}")]
    NoColorFunction(String),
    /// A command failed.
    #[error(transparent)]
    Command(#[from] CommandFailure),
    /// The depth MCU never became ready.
    #[error("depth MCU not ready after {attempts} attempts of COMPONENT_VERSION_GET: {last}")]
    NotReady {
        /// Attempts made.
        attempts: usize,
        /// The last failure.
        last: CommandFailure,
    },
    /// Firmware too old (the SDK's message).
    #[error("{0}")]
    FirmwareTooOld(#[source] FirmwareTooOld),
    /// The calibration JSON could not be read after every retry.
    #[error("calibration JSON could not be read in {attempts} attempts: {last}")]
    CalibrationRead {
        /// Attempts made.
        attempts: usize,
        /// The last failure.
        last: CommandFailure,
    },
    /// The calibration JSON did not parse.
    #[error("calibration JSON: {0}")]
    Calibration(#[source] CalibrationError),
    /// The configuration is refused (the SDK's message).
    #[error(transparent)]
    InvalidConfig(#[from] ConfigError),
    /// `start_cameras` while a camera runs (the SDK's message).
    #[error(
        "k4a_device_start_cameras called while one of the sensors are running, depth:{} color:{}",
        u8::from(*depth),
        u8::from(*color)
    )]
    CamerasRunning {
        /// The depth camera runs.
        depth: bool,
        /// The colour camera runs.
        color: bool,
    },
    /// `start_cameras` while the IMU runs (the SDK's message).
    #[error(
        "k4a_device_start_cameras called while the IMU is running is not supported, stop the IMU"
    )]
    ImuRunning,
    /// `start_imu` without a running camera (the SDK's message).
    #[error(
        "k4a_device_start_imu called while the color/depth camera is not running is not supported"
    )]
    CamerasNotRunning,
    /// `start_imu` twice.
    #[error("the IMU is already running")]
    ImuAlreadyRunning,
    /// A depth mode the mode table or the sensor does not know.
    #[error("{}", match .0 {
        DepthModeGap::NoModeInfo(m) => format!("no depth mode table entry for {}", m.sdk_name()),
        DepthModeGap::NoSensorMode(_) => "depth mode has no sensor mode".to_string(),
    })]
    DepthMode(DepthModeGap),
    /// The colour function's configuration descriptor did not parse.
    #[error("colour configuration descriptor: {0}")]
    ColorDescriptor(#[source] DescriptorError),
    /// The camera's answer to the probe control did not parse.
    #[error("probe control: {0}")]
    ProbeControl(#[source] UvcError),
    /// No streaming alternate setting has the bandwidth the camera negotiated.
    #[error("no streaming alternate setting carries {bytes_per_interval} bytes per interval")]
    NoAltSetting {
        /// dwMaxPayloadTransferSize the camera negotiated.
        bytes_per_interval: u32,
    },
    /// The usbfs budget has no room for one colour transfer beside the depth transfers.
    #[error(
        "colour camera: no room for one {transfer_bytes}-byte isochronous transfer beside the \
         depth transfers: {}",
        usbfs_memory::USBFS_MEMORY_HINT
    )]
    NoRoomForColor {
        /// Bytes of one isochronous transfer.
        transfer_bytes: usize,
    },
    /// Depth needs an engine and raw-only mode has none.
    #[error("depth engine: raw-only mode has no engine")]
    RawOnlyHasNoEngine,
    /// The depth engine could not be loaded.
    #[error("depth engine: {0}")]
    DepthEngine(#[source] DepthEngineError),
    /// The depth engine's pipeline did not start.
    #[error("depth engine: Depth Engine thread failed to start: {0}")]
    DepthEngineStart(#[source] DepthEngineError),
    /// The colour camera has no frame for the configuration.
    #[error("colour camera offers no {format:?} {width}x{height} at {fps} fps")]
    NoColorFormat {
        /// Format.
        format: ImageFormat,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Frames per second.
        fps: u32,
    },
    /// A UVC control request failed.
    #[error("UVC {what} failed: {source}")]
    Uvc {
        /// Which request.
        what: &'static str,
        /// Why.
        source: TransferError,
    },
    /// A colour control failed.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// A stream failed.
    #[error(transparent)]
    Stream(#[from] StreamError),
}

/// What the tables lack for a depth mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepthModeGap {
    /// No entry in the depth mode table.
    NoModeInfo(DepthMode),
    /// No sensor mode to command.
    NoSensorMode(DepthMode),
}

/// Counters of everything the device layer dropped, per stream and reason; read as [`Drops`].
#[derive(Debug, Default)]
pub(crate) struct DropCounters {
    /// Raw depth transfers of the wrong size.
    pub depth_invalid_size: AtomicU64,
    /// Depth transfers that timed out (resubmitted).
    pub depth_timeouts: AtomicU64,
    /// Raw frames dropped from a full raw queue (raw mode).
    pub depth_queue_full: AtomicU64,
    /// Depth captures dropped by the start-up timestamp filter.
    pub depth_startup: AtomicU64,
    /// Colour frames without a FrameAlignInfo timestamp (or PTS 0, or no metadata).
    pub color_no_timestamp: AtomicU64,
    /// Uncompressed colour frames of the wrong size.
    pub color_bad_size: AtomicU64,
    /// Colour payloads that were malformed, flagged as errors, or oversized frames.
    pub color_bad_packet: AtomicU64,
    /// IMU packets that did not decode.
    pub imu_malformed: AtomicU64,
    /// IMU samples dropped by the start-up timestamp filter.
    pub imu_startup: AtomicU64,
    /// IMU samples dropped from a full queue.
    pub imu_queue_full: AtomicU64,
    /// Captures dropped from a full output queue.
    pub capture_queue_full: AtomicU64,
    /// Captures that could not be paired (published alone, or discarded when synchronized-only).
    pub unmatched: AtomicU64,
}

impl DropCounters {
    fn add(&self, c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// A snapshot of what the device layer dropped, per stream and reason, plus the depth engine's
/// own drops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    /// Raw depth transfers of the wrong size.
    pub depth_invalid_size: u64,
    /// Depth transfers that timed out.
    pub depth_timeouts: u64,
    /// Raw frames dropped from the raw queue.
    pub depth_queue_full: u64,
    /// Depth captures dropped waiting for timestamps to stabilise.
    pub depth_startup: u64,
    /// Frames the depth engine pipeline dropped (queue full, bad timestamp, GPU error).
    pub depth_engine: u64,
    /// Colour frames without a usable timestamp.
    pub color_no_timestamp: u64,
    /// Uncompressed colour frames of the wrong size.
    pub color_bad_size: u64,
    /// Malformed colour payloads.
    pub color_bad_packet: u64,
    /// Malformed IMU packets.
    pub imu_malformed: u64,
    /// IMU samples dropped at start-up.
    pub imu_startup: u64,
    /// IMU samples dropped from a full queue.
    pub imu_queue_full: u64,
    /// Captures dropped from a full output queue.
    pub capture_queue_full: u64,
    /// Unpaired captures.
    pub unmatched: u64,
}

impl Drops {
    /// The losses in the recording's streams: a lost depth frame loses its depth and IR
    /// images, a capture dropped from the output queue loses all its images. Start-up
    /// filtering and unpaired captures are not losses.
    pub fn per_stream(&self) -> DropCounts {
        let depth = self.depth_invalid_size
            + self.depth_queue_full
            + self.depth_engine
            + self.capture_queue_full;
        let mut d = DropCounts::default();
        d[TrackKind::Color] = self.color_no_timestamp
            + self.color_bad_size
            + self.color_bad_packet
            + self.capture_queue_full;
        d[TrackKind::Depth] = depth;
        d[TrackKind::Ir] = depth;
        d[TrackKind::Imu] = self.imu_malformed + self.imu_queue_full;
        d
    }

    /// Frames or samples lost for any reason other than start-up filtering and pairing.
    pub fn lost(&self) -> u64 {
        self.depth_invalid_size
            + self.depth_queue_full
            + self.depth_engine
            + self.color_no_timestamp
            + self.color_bad_size
            + self.color_bad_packet
            + self.imu_malformed
            + self.imu_queue_full
            + self.capture_queue_full
    }
}

/// How depth frames are turned into images.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DepthEngineChoice {
    /// The engine at this path.
    Path(PathBuf),
    /// `$FREEK4A_DEPTH_ENGINE`, else `libdepthengine.so.2.0` through the loader (as the SDK).
    #[default]
    System,
    /// freek4a's emulated engine, linked into the program (for emulated units).
    Emulated,
    /// No engine: raw frames are kept for [`Device::get_raw_depth`]; captures carry colour only.
    RawOnly,
}

/// Options for [`Device::open`].
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// Depth engine to use.
    pub depth_engine: DepthEngineChoice,
    /// Depth transfer pool limit in bytes (`K4A_MAX_LIBUSB_POOL`; default 10 000 000).
    pub max_pool_bytes: Option<usize>,
    /// Pause between readiness attempts (the SDK's 500 ms).
    pub readiness_retry_delay: Option<Duration>,
    /// Wait instead of dropping when a host-side queue is full (depth engine input, output
    /// captures, raw frames, IMU samples); the SDK drops the oldest. With an emulated unit at
    /// maximum speed this makes the whole unit run at the application's pace, losslessly; a
    /// real sensor does not wait, so leave it off for hardware.
    pub backpressure: bool,
}

/// Number of units: the larger of the depth and colour function counts (as the SDK).
pub fn list(backend: &dyn Backend) -> Result<usize, DeviceError> {
    let all = backend.list()?;
    let count = |pid| {
        all.iter()
            .filter(|d| d.vendor_id == VID_MICROSOFT && d.product_id == pid)
            .count()
    };
    Ok(count(PID_DEPTH).max(count(PID_COLOR)))
}

const DESCRIPTOR_TIMEOUT: Duration = Duration::from_secs(1);
const READY_ATTEMPTS: usize = 20;

struct Running {
    config: DeviceConfig,
    depth_reader: Option<Reader>,
    depth_forwarder: Option<Reader>,
    pipeline: Option<Arc<Mutex<DepthPipeline>>>,
    color_reader: Option<Reader>,
    color_started_at: Option<Instant>,
    /// What the depth transfers in flight take of the usbfs budget.
    depth_usbfs_bytes: u64,
}

/// Isochronous colour transfers kept in flight when the usbfs budget allows.
const COLOR_TRANSFERS: usize = 8;

/// The usbfs memory the IMU and command transfers take, plus `color_transfers` of the largest
/// colour transfer (32 packets of 3 × 16 × 1024 bytes).
fn stream_reservation(color_transfers: usize) -> usbfs_memory::StreamReservation {
    usbfs_memory::StreamReservation::new(
        color_transfers,
        32,
        3 * 16 * 1024,
        modes::MAX_TRANSFERS,
        modes::IMU_TRANSFER_BYTES.div_ceil(1024) * 1024,
    )
}

/// The least usbfs memory one unit streaming `config` takes: one depth transfer of the mode,
/// one colour transfer when colour is on, and the IMU and command transfers. Every unit on the
/// host draws on the kernel's one budget (`usbfs_memory_mb`), so a rig needs this times its
/// units at the very least.
pub fn min_usbfs_bytes(config: &DeviceConfig) -> u64 {
    let depth = depth_raw::sensor_mode_for(config.depth_mode)
        .and_then(depth_raw::raw_frame_size)
        .map_or(0, |raw| {
            usbfs_memory::urb_cost_bytes(crate::transport::in_transfer_len(raw, 1024), 0)
        });
    let color = usize::from(config.color_resolution != ColorResolution::Off);
    depth + stream_reservation(color).total_bytes()
}

/// An opened unit.
pub struct Device {
    _depth_dev: Box<dyn UsbDevice>,
    color_dev: Box<dyn UsbDevice>,
    depth_cmd: CommandChannel,
    color_cmd: CommandChannel,
    depth_if: Arc<Box<dyn UsbInterface>>,
    vc: Box<dyn UsbInterface>,
    vs: Option<Box<dyn UsbInterface>>,
    serial: String,
    container_id: [u8; 16],
    hardware_version: HardwareVersion,
    raw_calibration: Vec<u8>,
    calibration: Option<Calibration>,
    cal_block: Option<Vec<u8>>,
    options: OpenOptions,
    engine: Option<DepthEngine>,
    powerline: PowerLine,
    running: Option<Running>,
    imu_reader: Option<Reader>,
    imu_queue: Arc<DropOldest<ImuSample>>,
    raw_depth: Arc<DropOldest<RawDepthFrame>>,
    sync: Arc<CaptureSync>,
    drops: Arc<DropCounters>,
    depth_engine_drops_base: u64,
}

fn nth(backend: &dyn Backend, pid: u16) -> Result<Vec<DeviceInfo>, DeviceError> {
    Ok(backend
        .list()?
        .into_iter()
        .filter(|d| d.vendor_id == VID_MICROSOFT && d.product_id == pid)
        .collect())
}

impl Device {
    /// Opens unit `index` with default options.
    pub fn open(backend: &dyn Backend, index: usize) -> Result<Device, DeviceError> {
        Self::open_with(backend, index, OpenOptions::default())
    }

    /// Opens unit `index`: depth function by index, colour function by Container ID, then the
    /// SDK's open sequence (`protocol/sequences.md`, "Open").
    pub fn open_with(
        backend: &dyn Backend,
        index: usize,
        options: OpenOptions,
    ) -> Result<Device, DeviceError> {
        let depths = nth(backend, PID_DEPTH)?;
        let info = depths.get(index).ok_or(DeviceError::NotFound {
            index,
            count: depths.len(),
        })?;
        let depth_dev = backend.open(info)?;
        let bos = depth_dev.get_descriptor(descriptor_type::BOS, 0, 0, DESCRIPTOR_TIMEOUT)?;
        let container_id =
            parse_container_id(&bos)
                .ok()
                .flatten()
                .ok_or_else(|| DeviceError::NoContainerId {
                    device: info.to_string(),
                })?;
        let depth_if: Arc<Box<dyn UsbInterface>> =
            Arc::new(depth_dev.claim_interface(DEPTH_MCU.interface.get(), true)?);
        let depth_cmd = CommandChannel::new(depth_if.clone(), DEPTH_MCU)?;
        let serial = depth_cmd.execute(ReadProductSerial)?.as_str().to_string();

        let mut color = None;
        for c in nth(backend, PID_COLOR)? {
            let Ok(dev) = backend.open(&c) else { continue };
            let Ok(b) = dev.get_descriptor(descriptor_type::BOS, 0, 0, DESCRIPTOR_TIMEOUT) else {
                continue;
            };
            if parse_container_id(&b).ok().flatten() == Some(container_id) {
                color = Some(dev);
                break;
            }
        }
        let color_dev =
            color.ok_or_else(|| DeviceError::NoColorFunction(container_id_text(&container_id)))?;
        let color_if = color_dev.claim_interface(COLOR_MCU.interface.get(), true)?;
        let color_cmd = CommandChannel::new(Arc::new(color_if), COLOR_MCU)?;

        let raw_calibration = read_calibration(&depth_cmd)?;
        let json_end = raw_calibration.len().saturating_sub(1);
        let calibration = Calibration::from_json(&raw_calibration[..json_end])
            .map_err(DeviceError::Calibration)?;

        let delay = options
            .readiness_retry_delay
            .unwrap_or(Duration::from_millis(500));
        let mut last = None;
        for attempt in 0..READY_ATTEMPTS {
            match depth_cmd.execute(ComponentVersionGet) {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(e) => {
                    if e.is_disconnect() {
                        return Err(e.into());
                    }
                    last = Some(e);
                    if attempt + 1 < READY_ATTEMPTS {
                        std::thread::sleep(delay);
                    }
                }
            }
        }
        if let Some(last) = last {
            return Err(DeviceError::NotReady {
                attempts: READY_ATTEMPTS,
                last,
            });
        }
        let hardware_version = depth_cmd
            .execute(ComponentVersionGet)?
            .to_hardware_version();
        depth_cmd.execute(ReadProductSerial)?;
        check_minimum_firmware(&hardware_version).map_err(DeviceError::FirmwareTooOld)?;
        // Quiet stop in case an earlier session crashed: statuses ignored.
        let _ = depth_cmd.execute_with_status(DepthStreamStop);
        let _ = depth_cmd.execute_with_status(DepthStop);
        let vc = color_dev.claim_interface(UVC_CONTROL_INTERFACE.get(), true)?;
        let _ = color_cmd.execute_with_status(ImuStreamStop);

        Ok(Device {
            _depth_dev: depth_dev,
            color_dev,
            depth_cmd,
            color_cmd,
            depth_if,
            vc,
            vs: None,
            serial,
            container_id,
            hardware_version,
            raw_calibration,
            calibration: Some(calibration),
            cal_block: None,
            options,
            engine: None,
            powerline: PowerLine::Hz60,
            running: None,
            imu_reader: None,
            imu_queue: Arc::new(DropOldest::new(IMU_QUEUE_DEPTH)),
            raw_depth: Arc::new(DropOldest::new(OUTPUT_QUEUE_DEPTH)),
            sync: Arc::new(CaptureSync::new()),
            drops: Arc::new(DropCounters::default()),
            depth_engine_drops_base: 0,
        })
    }

    /// The product serial number.
    pub fn serial_number(&self) -> &str {
        &self.serial
    }

    /// Firmware versions.
    pub fn hardware_version(&self) -> HardwareVersion {
        self.hardware_version
    }

    /// The calibration JSON as the SDK returns it (with its terminating NUL).
    pub fn raw_calibration(&self) -> &[u8] {
        &self.raw_calibration
    }

    /// The depth engine's calibration block (NV tag 2, what the engine is created with), read
    /// from the unit on first use and kept. A raw depth recording stores it, so that an engine
    /// can convert the frames later.
    pub fn depth_engine_calibration(&mut self) -> Result<&[u8], DeviceError> {
        if self.cal_block.is_none() {
            let block = self.depth_cmd.execute(NvDataGet {
                tag: NvTag::IrSensorCalibration,
            })?;
            self.cal_block = Some(block);
        }
        Ok(self.cal_block.as_deref().unwrap_or_default())
    }

    /// The parsed calibration.
    pub fn calibration(&self) -> Option<&Calibration> {
        self.calibration.as_ref()
    }

    /// The BOS Container ID shared by both functions.
    pub fn container_id(&self) -> [u8; 16] {
        self.container_id
    }

    /// Drop counters so far.
    pub fn drops(&self) -> Drops {
        let d = &self.drops;
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let engine = self
            .running
            .as_ref()
            .and_then(|r| r.pipeline.as_ref())
            .map(|p| {
                p.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .drop_counts()
                    .total()
            })
            .unwrap_or(0);
        Drops {
            depth_invalid_size: g(&d.depth_invalid_size),
            depth_timeouts: g(&d.depth_timeouts),
            depth_queue_full: g(&d.depth_queue_full),
            depth_startup: g(&d.depth_startup),
            depth_engine: self.depth_engine_drops_base + engine,
            color_no_timestamp: g(&d.color_no_timestamp),
            color_bad_size: g(&d.color_bad_size),
            color_bad_packet: g(&d.color_bad_packet),
            imu_malformed: g(&d.imu_malformed),
            imu_startup: g(&d.imu_startup),
            imu_queue_full: g(&d.imu_queue_full),
            capture_queue_full: g(&d.capture_queue_full),
            unmatched: g(&d.unmatched),
        }
    }

    fn load_engine(&mut self) -> Result<DepthEngine, DeviceError> {
        if let Some(e) = &self.engine {
            return Ok(e.clone());
        }
        let e = match &self.options.depth_engine {
            DepthEngineChoice::Path(p) => DepthEngine::load(Some(p)),
            DepthEngineChoice::System => DepthEngine::load(None),
            DepthEngineChoice::Emulated => DepthEngine::emulated(),
            DepthEngineChoice::RawOnly => return Err(DeviceError::RawOnlyHasNoEngine),
        }
        .map_err(DeviceError::DepthEngine)?;
        self.engine = Some(e.clone());
        Ok(e)
    }

    /// Starts the cameras with the SDK's validation and command order.
    pub fn start_cameras(&mut self, config: &DeviceConfig) -> Result<(), DeviceError> {
        if let Some(r) = &self.running {
            let depth = r.config.depth_mode != DepthMode::Off;
            let color = r.config.color_resolution != ColorResolution::Off;
            return Err(DeviceError::CamerasRunning { depth, color });
        }
        if self.imu_reader.is_some() {
            return Err(DeviceError::ImuRunning);
        }
        let jack = if modes::needs_jack_state(config) {
            self.color_cmd.execute(GetJackState)?
        } else {
            JackState::default()
        };
        validate_configuration(config, jack)?;
        let depth_on = config.depth_mode != DepthMode::Off;
        let color_on = config.color_resolution != ColorResolution::Off;
        let sys = SyncConfig::from_usec(
            config.wired_sync_mode,
            config.subordinate_delay_off_master_usec,
            config.depth_delay_off_color_usec,
            config.disable_streaming_indicator,
        );
        self.color_cmd.execute(SetSysCfg { config: sys })?;
        // Raw-only depth never reaches capture sync, so there is nothing to pair.
        let pairing = depth_on
            && color_on
            && self.options.depth_engine != DepthEngineChoice::RawOnly
            && !pairing_disabled_by_env();
        self.sync.start(SyncParams {
            pairing,
            synchronized_only: config.synchronized_images_only,
            depth_delay_usec: config.depth_delay_off_color_usec,
            period_usec: config.camera_fps.period_usec() as u64,
        });
        let mut running = Running {
            config: config.clone(),
            depth_reader: None,
            depth_forwarder: None,
            pipeline: None,
            color_reader: None,
            color_started_at: None,
            depth_usbfs_bytes: 0,
        };
        let result = self.start_streams(config, &mut running, depth_on, color_on);
        self.running = Some(running);
        if let Err(e) = result {
            let _ = self.stop_cameras();
            return Err(e);
        }
        Ok(())
    }

    fn start_streams(
        &mut self,
        config: &DeviceConfig,
        running: &mut Running,
        depth_on: bool,
        color_on: bool,
    ) -> Result<(), DeviceError> {
        if depth_on {
            let mode = config.depth_mode;
            let info = DepthModeInfo::for_mode(mode)
                .ok_or(DeviceError::DepthMode(DepthModeGap::NoModeInfo(mode)))?;
            let sensor = depth_raw::sensor_mode_for(mode)
                .and_then(SensorMode::from_value)
                .ok_or(DeviceError::DepthMode(DepthModeGap::NoSensorMode(mode)))?;
            self.depth_cmd.execute(DepthModeSet { mode: sensor })?;
            self.depth_engine_calibration()?;
            let sink = if self.options.depth_engine == DepthEngineChoice::RawOnly {
                self.raw_depth.set_running(true);
                DepthSink::Raw(self.raw_depth.clone())
            } else {
                let engine = self.load_engine()?;
                let camera = self.calibration.as_ref().map(|c| depth_camera(&c.depth));
                let p = DepthPipeline::start(
                    &engine,
                    config.depth_mode,
                    config.camera_fps,
                    self.cal_block.clone().unwrap_or_default(),
                    camera,
                )
                .map_err(DeviceError::DepthEngineStart)?;
                let rx = p.receiver().clone();
                let p = Arc::new(Mutex::new(p));
                let flow = Arc::new(streams::EngineFlow::default());
                running.depth_forwarder = Some(streams::start_depth_forwarder(
                    rx,
                    flow.clone(),
                    self.sync.clone(),
                    self.drops.clone(),
                    self.options.backpressure,
                )?);
                running.pipeline = Some(p.clone());
                DepthSink::Engine {
                    pipeline: p,
                    flow,
                    backpressure: self.options.backpressure,
                }
            };
            self.depth_cmd.execute(DepthFpsSet {
                fps: config.camera_fps,
            })?;
            self.depth_cmd.execute(DepthStart)?;
            self.depth_cmd.execute(DepthStreamStart)?;
            let raw_size = depth_raw::raw_frame_size(sensor.value()).unwrap_or(0);
            let queue = self
                .depth_if
                .endpoint(StreamEndpoint::of(Stream::Depth).endpoint.address())?;
            // Whole packets of the endpoint's own size (1024 on the hardware, so the SDK's
            // 1024-rounded buffer).
            let buffer_size = crate::transport::in_transfer_len(raw_size, queue.max_packet_size());
            let pool = self
                .options
                .max_pool_bytes
                .unwrap_or(modes::LINUX_MAX_POOL_BYTES);
            // Every URB is charged to the kernel's usbfs budget: the depth pool leaves room
            // for the IMU and command transfers and at least one colour transfer.
            let fit = usbfs_memory::depth_transfers_in_flight(
                usbfs_memory::read_usbfs_budget()?,
                buffer_size,
                &stream_reservation(usize::from(color_on)),
            )?;
            let transfers = info.transfers_queued(pool).min(fit).max(1);
            running.depth_usbfs_bytes =
                transfers as u64 * usbfs_memory::urb_cost_bytes(buffer_size, 0);
            running.depth_reader = Some(streams::start_depth(streams::DepthReaderParams {
                queue,
                raw_size,
                buffer_size,
                transfers,
                sink,
                sync: self.sync.clone(),
                drops: self.drops.clone(),
                backpressure: self.options.backpressure,
            })?);
        }
        if color_on {
            self.start_color(config, running)?;
        }
        Ok(())
    }

    fn start_color(
        &mut self,
        config: &DeviceConfig,
        running: &mut Running,
    ) -> Result<(), DeviceError> {
        let (width, height) = config.color_resolution.dimensions().unwrap_or((0, 0));
        let fps = config.camera_fps.hz();
        let want = match config.color_format {
            ImageFormat::Nv12 => UvcFormatKind::Uncompressed(GUID_NV12),
            ImageFormat::Yuy2 => UvcFormatKind::Uncompressed(GUID_YUY2),
            _ => UvcFormatKind::Mjpeg,
        };
        let bytes = self.color_dev.get_descriptor(
            descriptor_type::CONFIGURATION,
            0,
            0,
            DESCRIPTOR_TIMEOUT,
        )?;
        let descriptors = Configuration::decode(&bytes).map_err(DeviceError::ColorDescriptor)?;
        let formats = descriptors.uvc_formats();
        let no_format = || DeviceError::NoColorFormat {
            format: config.color_format,
            width,
            height,
            fps,
        };
        let uvc_format = formats
            .iter()
            .find(|f| f.kind == want)
            .ok_or_else(no_format)?;
        let frame = uvc_format
            .frames
            .iter()
            .find(|f| f.width as u32 == width && f.height as u32 == height)
            .ok_or_else(no_format)?;
        let interval = *frame
            .intervals_100ns
            .iter()
            .find(|&&i| uvcp::interval_matches(i, fps))
            .ok_or_else(no_format)?;
        let vs = match self.vs.take() {
            Some(v) => v,
            None => self
                .color_dev
                .claim_interface(UVC_STREAMING_INTERFACE.get(), true)?,
        };
        let probe = ProbeCommit {
            hint: 1,
            format_index: uvc_format.index,
            frame_index: frame.index,
            frame_interval_100ns: interval,
            ..Default::default()
        };
        let req = |request_type, request, selector: u8| ControlSetup {
            request_type,
            request,
            value: uvcp::vs_w_value(selector),
            index: uvcp::VS_W_INDEX,
        };
        let uvc_err = |what| move |source| DeviceError::Uvc { what, source };
        let t = Duration::from_secs(1);
        let r = uvcp::request::GET_REQUEST_TYPE;
        let w = uvcp::request::SET_REQUEST_TYPE;
        vs.control_in(
            req(r, uvcp::request::GET_MAX, uvcp::VS_PROBE_CONTROL),
            uvcp::PROBE_LEN_UVC10 as u16,
            t,
        )
        .map_err(uvc_err("GET_MAX probe"))?;
        vs.control_out(
            req(w, uvcp::request::SET_CUR, uvcp::VS_PROBE_CONTROL),
            &probe.encode(),
            t,
        )
        .map_err(uvc_err("SET_CUR probe"))?;
        let got = vs
            .control_in(
                req(r, uvcp::request::GET_CUR, uvcp::VS_PROBE_CONTROL),
                uvcp::PROBE_LEN_UVC10 as u16,
                t,
            )
            .map_err(uvc_err("GET_CUR probe"))?;
        let negotiated = ProbeCommit::decode(&got).map_err(DeviceError::ProbeControl)?;
        vs.control_out(
            req(w, uvcp::request::SET_CUR, uvcp::VS_COMMIT_CONTROL),
            &negotiated.encode(),
            t,
        )
        .map_err(uvc_err("SET_CUR commit"))?;
        // libuvc: the first alternate setting whose bytes per interval cover the payload size.
        let (alt, packet_size) = descriptors
            .interfaces
            .iter()
            .filter(|i| i.number == UVC_STREAMING_INTERFACE.get() && i.alternate > 0)
            .filter_map(|i| {
                let bpi = i
                    .endpoints
                    .iter()
                    .find_map(|e| e.companion)?
                    .bytes_per_interval;
                Some((i.alternate, bpi as usize))
            })
            .find(|(_, bpi)| *bpi >= negotiated.max_payload_transfer_size as usize)
            .ok_or(DeviceError::NoAltSetting {
                bytes_per_interval: negotiated.max_payload_transfer_size,
            })?;
        let packets =
            ((negotiated.max_video_frame_size as usize).div_ceil(packet_size)).clamp(1, 32);
        // As many isochronous transfers (up to 8) as the usbfs budget holds beside depth,
        // IMU and commands.
        let transfers = match usbfs_memory::read_usbfs_budget()?.limit_bytes() {
            None => COLOR_TRANSFERS,
            Some(limit) => {
                let left = limit
                    .saturating_sub(running.depth_usbfs_bytes)
                    .saturating_sub(stream_reservation(0).total_bytes());
                let cost = usbfs_memory::urb_cost_bytes(packets * packet_size, packets);
                usize::try_from(left / cost)
                    .unwrap_or(usize::MAX)
                    .min(COLOR_TRANSFERS)
            }
        };
        if transfers == 0 {
            return Err(DeviceError::NoRoomForColor {
                transfer_bytes: packets * packet_size,
            });
        }
        vs.set_alt_setting(alt)?;
        let video_in = StreamEndpoint::of(Stream::Color).endpoint;
        let queue = vs.iso_in_endpoint(video_in.address(), packets, packet_size)?;
        running.color_started_at = Some(Instant::now());
        running.color_reader = Some(streams::start_color(streams::ColorReaderParams {
            queue,
            transfers,
            transfer_bytes: packets * packet_size,
            format: config.color_format,
            width,
            height,
            sync: self.sync.clone(),
            drops: self.drops.clone(),
            backpressure: self.options.backpressure,
        })?);
        self.vs = Some(vs);
        Ok(())
    }

    /// Stops the cameras (depth stream stop and stop, colour stream stop).
    pub fn stop_cameras(&mut self) -> Result<(), DeviceError> {
        let Some(mut r) = self.running.take() else {
            return Ok(());
        };
        self.sync.stop();
        let mut first_err = None;
        if let Some(mut reader) = r.depth_reader.take() {
            reader.stop();
            for c in [
                self.depth_cmd.execute(DepthStreamStop),
                self.depth_cmd.execute(DepthStop),
            ] {
                if let (Err(e), None) = (c, &first_err) {
                    first_err = Some(DeviceError::from(e));
                }
            }
        }
        if let Some(p) = r.pipeline.take() {
            let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
            self.depth_engine_drops_base += p.drop_counts().total();
            let _ = p.stop();
        }
        if let Some(mut f) = r.depth_forwarder.take() {
            f.stop();
        }
        self.raw_depth.set_running(false);
        if let Some(mut c) = r.color_reader.take() {
            c.stop();
            if let Some(vs) = &self.vs {
                let _ = vs.set_alt_setting(ALT_SETTING_ZERO_BANDWIDTH);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Starts the IMU (refused unless a camera runs, as the SDK).
    pub fn start_imu(&mut self) -> Result<(), DeviceError> {
        let Some(r) = &self.running else {
            return Err(DeviceError::CamerasNotRunning);
        };
        if self.imu_reader.is_some() {
            return Err(DeviceError::ImuAlreadyRunning);
        }
        let startup_filter = r
            .color_started_at
            .is_some_and(|t| t.elapsed() < Duration::from_millis(1500));
        self.color_cmd.execute(ImuStreamStart)?;
        let queue = self.vc_sibling_endpoint(StreamEndpoint::of(Stream::Imu).endpoint)?;
        self.imu_queue.set_running(true);
        let calibration = self.calibration.as_ref().map(|c| streams::ImuCalibration {
            gyro: c.gyro.clone(),
            accel: c.accel.clone(),
        });
        self.imu_reader = Some(streams::start_imu(streams::ImuReaderParams {
            queue,
            out: self.imu_queue.clone(),
            drops: self.drops.clone(),
            calibration,
            startup_filter,
            backpressure: self.options.backpressure,
        })?);
        Ok(())
    }

    fn vc_sibling_endpoint(
        &self,
        endpoint: InEndpoint,
    ) -> Result<Box<dyn transport::EndpointQueue>, DeviceError> {
        Ok(self.color_cmd.interface().endpoint(endpoint.address())?)
    }

    /// Stops the IMU.
    pub fn stop_imu(&mut self) -> Result<(), DeviceError> {
        let Some(mut r) = self.imu_reader.take() else {
            return Ok(());
        };
        r.stop();
        self.imu_queue.set_running(false);
        self.color_cmd.execute(ImuStreamStop)?;
        Ok(())
    }

    /// The next capture, waiting up to `timeout`; `Ok(None)` on timeout.
    pub fn get_capture(&self, timeout: Duration) -> Result<Option<Capture>, DeviceError> {
        Ok(self.sync.pop(timeout)?)
    }

    /// The next IMU sample, waiting up to `timeout`; `Ok(None)` on timeout.
    pub fn get_imu_sample(&self, timeout: Duration) -> Result<Option<ImuSample>, DeviceError> {
        Ok(self.imu_queue.pop(timeout)?)
    }

    /// The next raw depth frame ([`DepthEngineChoice::RawOnly`] only); `Ok(None)` on timeout.
    pub fn get_raw_depth(&self, timeout: Duration) -> Result<Option<RawDepthFrame>, DeviceError> {
        Ok(self.raw_depth.pop(timeout)?)
    }

    fn controls(&self, control: ColorControl) -> controls::Controls<'_> {
        controls::Controls {
            vc: self.vc.as_ref(),
            control,
        }
    }

    /// Sets a colour control (exposure in µs, mapped onto the 50/60 Hz table).
    pub fn set_color_control(
        &mut self,
        control: ColorControl,
        mode: ControlMode,
        value: i32,
    ) -> Result<(), DeviceError> {
        if let Some(pl) = controls::set(&self.controls(control), mode, value, self.powerline)? {
            self.powerline = pl;
        }
        Ok(())
    }

    /// The range the camera reports for a manual colour control (white balance in Kelvin;
    /// exposure is better set through its 50/60 Hz table).
    pub fn color_control_range(&self, control: ColorControl) -> Result<ControlRange, DeviceError> {
        Ok(controls::range(&self.controls(control))?)
    }

    /// Which sync jacks have a cable in them (`k4a_device_get_sync_jack`).
    pub fn sync_jack(&self) -> Result<JackState, DeviceError> {
        Ok(self.color_cmd.execute(GetJackState)?)
    }

    /// Reads a colour control's mode and value.
    pub fn get_color_control(
        &self,
        control: ColorControl,
    ) -> Result<(ControlMode, i32), DeviceError> {
        Ok(controls::get(&self.controls(control), self.powerline)?)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.stop_imu();
        let _ = self.stop_cameras();
    }
}

fn pairing_disabled_by_env() -> bool {
    std::env::var("K4A_DISABLE_SYNCHRONIZATION").is_ok_and(|v| !v.is_empty() && !v.starts_with('0'))
}

/// The depth camera's calibration in the form the depth engine is created with.
pub(crate) fn depth_camera(
    c: &crate::protocol::calibration::CameraCalibration,
) -> depthengine::CameraCalibration {
    depthengine::CameraCalibration {
        rotation: c.rotation,
        translation_mm: c.translation_mm,
        intrinsics_type: c.model.value(),
        parameter_count: c.parameter_count,
        parameters: c.parameters,
        resolution_width: c.resolution_width,
        resolution_height: c.resolution_height,
        metric_radius: c.metric_radius,
    }
}

/// The SDK's calibration read: growing buffers, up to 10 attempts; the result has a NUL.
fn read_calibration(cmd: &CommandChannel) -> Result<Vec<u8>, DeviceError> {
    let mut last = None;
    for attempt in 0..CALIBRATION_READ_ATTEMPTS {
        match cmd.execute(ReadCalibrationData::attempt(attempt)) {
            Ok(mut json) => {
                json.push(0);
                return Ok(json);
            }
            Err(e) if e.is_disconnect() => return Err(e.into()),
            Err(e) => last = Some(e),
        }
    }
    Err(DeviceError::CalibrationRead {
        attempts: CALIBRATION_READ_ATTEMPTS,
        last: last.unwrap_or(CommandFailure::Timeout {
            command: ReadCalibrationDataName::get(),
            phase: "data",
        }),
    })
}

struct ReadCalibrationDataName;
impl ReadCalibrationDataName {
    fn get() -> crate::protocol::command::CommandName {
        crate::protocol::command::CommandCode::ReadCalibrationData.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn state_errors_keep_the_sdk_messages() {
        let cases = [
            (
                DeviceError::CamerasRunning {
                    depth: true,
                    color: false,
                },
                "k4a_device_start_cameras called while one of the sensors are running, depth:1 \
                 color:0",
            ),
            (
                DeviceError::ImuRunning,
                "k4a_device_start_cameras called while the IMU is running is not supported, stop \
                 the IMU",
            ),
            (
                DeviceError::CamerasNotRunning,
                "k4a_device_start_imu called while the color/depth camera is not running is not \
                 supported",
            ),
            (
                DeviceError::DepthMode(DepthModeGap::NoModeInfo(DepthMode::NfovUnbinned)),
                "no depth mode table entry for K4A_DEPTH_MODE_NFOV_UNBINNED",
            ),
            (
                DeviceError::NoAltSetting {
                    bytes_per_interval: 3072,
                },
                "no streaming alternate setting carries 3072 bytes per interval",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
            assert!(e.source().is_none());
        }
    }

    #[test]
    fn typed_causes_stay_reachable_through_source() {
        let cal = Calibration::from_json(b"not json").unwrap_err();
        let e = DeviceError::Calibration(cal.clone());
        assert_eq!(e.to_string(), format!("calibration JSON: {cal}"));
        let source = e.source().expect("a cause");
        assert_eq!(source.downcast_ref::<CalibrationError>(), Some(&cal));

        let probe = ProbeCommit::decode(&[0; 4]).unwrap_err();
        let e = DeviceError::ProbeControl(probe);
        assert!(e.source().unwrap().downcast_ref::<UvcError>().is_some());

        let engine = Arc::new(DepthEngineError::Stopped);
        let e = DeviceError::Stream(StreamError::DepthEngine(engine));
        assert_eq!(
            e.to_string(),
            "depth engine: depth engine pipeline has stopped"
        );
        // `Stream` is transparent: its source is the stream's own cause.
        let cause = e.source().expect("the engine's error");
        assert!(matches!(
            cause.downcast_ref::<DepthEngineError>(),
            Some(DepthEngineError::Stopped)
        ));
    }
}
