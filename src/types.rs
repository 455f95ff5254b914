//! Types shared by every layer: camera modes, device configuration, images, captures and IMU
//! samples.
//!
//! These mirror the public vocabulary of the Azure Kinect (colour resolutions and formats, depth
//! modes, frame rates, wired sync) so that the device, the recorder and the recording layers can
//! speak of the same things without knowing of each other.

use std::fmt;

/// Colour camera resolution (`K4A_COLOR_RESOLUTION_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ColorResolution {
    /// Colour camera disabled.
    Off,
    /// 1280×720, 16:9.
    R720p,
    /// 1920×1080, 16:9.
    R1080p,
    /// 2560×1440, 16:9.
    R1440p,
    /// 2048×1536, 4:3.
    R1536p,
    /// 3840×2160, 16:9.
    R2160p,
    /// 4096×3072, 4:3 (15 fps at most).
    R3072p,
}

impl ColorResolution {
    /// Every resolution that produces images, smallest height first.
    pub const ON: [ColorResolution; 6] = [
        ColorResolution::R720p,
        ColorResolution::R1080p,
        ColorResolution::R1440p,
        ColorResolution::R1536p,
        ColorResolution::R2160p,
        ColorResolution::R3072p,
    ];

    /// Width and height in pixels; `None` for [`ColorResolution::Off`].
    pub fn dimensions(self) -> Option<(u32, u32)> {
        match self {
            ColorResolution::Off => None,
            ColorResolution::R720p => Some((1280, 720)),
            ColorResolution::R1080p => Some((1920, 1080)),
            ColorResolution::R1440p => Some((2560, 1440)),
            ColorResolution::R1536p => Some((2048, 1536)),
            ColorResolution::R2160p => Some((3840, 2160)),
            ColorResolution::R3072p => Some((4096, 3072)),
        }
    }

    /// The resolution with these pixel dimensions, if the camera has one.
    pub fn from_dimensions(width: u32, height: u32) -> Option<ColorResolution> {
        Self::ON
            .into_iter()
            .find(|r| r.dimensions() == Some((width, height)))
    }

    /// The SDK enum value (`K4A_COLOR_RESOLUTION_OFF` = 0 … `3072P` = 6).
    pub fn sdk_value(self) -> u32 {
        self as u32
    }

    /// The SDK enum name, as it appears in the SDK's messages (`K4A_COLOR_RESOLUTION_720P`).
    pub fn sdk_name(self) -> &'static str {
        match self {
            ColorResolution::Off => "K4A_COLOR_RESOLUTION_OFF",
            ColorResolution::R720p => "K4A_COLOR_RESOLUTION_720P",
            ColorResolution::R1080p => "K4A_COLOR_RESOLUTION_1080P",
            ColorResolution::R1440p => "K4A_COLOR_RESOLUTION_1440P",
            ColorResolution::R1536p => "K4A_COLOR_RESOLUTION_1536P",
            ColorResolution::R2160p => "K4A_COLOR_RESOLUTION_2160P",
            ColorResolution::R3072p => "K4A_COLOR_RESOLUTION_3072P",
        }
    }
}

/// Image pixel format (`K4A_IMAGE_FORMAT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// Motion JPEG: one complete JPEG per image.
    Mjpg,
    /// NV12: Y plane then interleaved UV plane, stride = width.
    Nv12,
    /// YUY2 (YUYV): packed, stride = 2 × width.
    Yuy2,
    /// BGRA32: 4 bytes per pixel, decoded from MJPEG on the host.
    Bgra32,
    /// 16-bit depth in millimetres, little-endian in memory.
    Depth16,
    /// 16-bit infrared brightness, little-endian in memory.
    Ir16,
}

impl ImageFormat {
    /// The SDK enum value (MJPG 0, NV12 1, YUY2 2, BGRA32 3, DEPTH16 4, IR16 5).
    pub fn sdk_value(self) -> u32 {
        self as u32
    }

    /// The SDK enum name (`K4A_IMAGE_FORMAT_COLOR_MJPG`, …).
    pub fn sdk_name(self) -> &'static str {
        match self {
            ImageFormat::Mjpg => "K4A_IMAGE_FORMAT_COLOR_MJPG",
            ImageFormat::Nv12 => "K4A_IMAGE_FORMAT_COLOR_NV12",
            ImageFormat::Yuy2 => "K4A_IMAGE_FORMAT_COLOR_YUY2",
            ImageFormat::Bgra32 => "K4A_IMAGE_FORMAT_COLOR_BGRA32",
            ImageFormat::Depth16 => "K4A_IMAGE_FORMAT_DEPTH16",
            ImageFormat::Ir16 => "K4A_IMAGE_FORMAT_IR16",
        }
    }

    /// Bytes in one image of this format at `width`×`height`; `None` for variable-size MJPEG.
    pub fn image_size_bytes(self, width: u32, height: u32) -> Option<usize> {
        let px = width as usize * height as usize;
        match self {
            ImageFormat::Mjpg => None,
            ImageFormat::Nv12 => Some(px * 3 / 2),
            ImageFormat::Yuy2 | ImageFormat::Depth16 | ImageFormat::Ir16 => Some(px * 2),
            ImageFormat::Bgra32 => Some(px * 4),
        }
    }

    /// Row stride in bytes as the SDK reports it (0 for MJPEG).
    pub fn stride_bytes(self, width: u32) -> u32 {
        match self {
            ImageFormat::Mjpg => 0,
            ImageFormat::Nv12 => width,
            ImageFormat::Yuy2 | ImageFormat::Depth16 | ImageFormat::Ir16 => width * 2,
            ImageFormat::Bgra32 => width * 4,
        }
    }
}

/// Depth camera mode (`K4A_DEPTH_MODE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DepthMode {
    /// Depth camera disabled.
    Off,
    /// Narrow field of view, 2×2 binned in software: 320×288.
    Nfov2x2Binned,
    /// Narrow field of view: 640×576.
    NfovUnbinned,
    /// Wide field of view, 2×2 binned: 512×512.
    Wfov2x2Binned,
    /// Wide field of view: 1024×1024 (15 fps at most).
    WfovUnbinned,
    /// Passive infrared only, no depth: 1024×1024.
    PassiveIr,
}

impl DepthMode {
    /// Every mode that produces images.
    pub const ON: [DepthMode; 5] = [
        DepthMode::Nfov2x2Binned,
        DepthMode::NfovUnbinned,
        DepthMode::Wfov2x2Binned,
        DepthMode::WfovUnbinned,
        DepthMode::PassiveIr,
    ];

    /// Output image width and height; `None` for [`DepthMode::Off`].
    pub fn dimensions(self) -> Option<(u32, u32)> {
        match self {
            DepthMode::Off => None,
            DepthMode::Nfov2x2Binned => Some((320, 288)),
            DepthMode::NfovUnbinned => Some((640, 576)),
            DepthMode::Wfov2x2Binned => Some((512, 512)),
            DepthMode::WfovUnbinned | DepthMode::PassiveIr => Some((1024, 1024)),
        }
    }

    /// Whether this mode yields a DEPTH16 image (every mode but OFF and PASSIVE_IR).
    pub fn has_depth(self) -> bool {
        !matches!(self, DepthMode::Off | DepthMode::PassiveIr)
    }

    /// Whether this mode yields an IR16 image (every mode but OFF).
    pub fn has_ir(self) -> bool {
        self != DepthMode::Off
    }

    /// The recording-file spelling (`NFOV_2X2BINNED`, …, `PASSIVE_IR`, `OFF`).
    pub fn name(self) -> &'static str {
        match self {
            DepthMode::Off => "OFF",
            DepthMode::Nfov2x2Binned => "NFOV_2X2BINNED",
            DepthMode::NfovUnbinned => "NFOV_UNBINNED",
            DepthMode::Wfov2x2Binned => "WFOV_2X2BINNED",
            DepthMode::WfovUnbinned => "WFOV_UNBINNED",
            DepthMode::PassiveIr => "PASSIVE_IR",
        }
    }

    /// Parses the recording-file spelling, including the legacy lower-case `x` variants.
    pub fn from_name(name: &str) -> Option<DepthMode> {
        match name {
            "OFF" => Some(DepthMode::Off),
            "NFOV_2X2BINNED" | "NFOV_2x2BINNED" => Some(DepthMode::Nfov2x2Binned),
            "NFOV_UNBINNED" => Some(DepthMode::NfovUnbinned),
            "WFOV_2X2BINNED" | "WFOV_2x2BINNED" => Some(DepthMode::Wfov2x2Binned),
            "WFOV_UNBINNED" => Some(DepthMode::WfovUnbinned),
            "PASSIVE_IR" => Some(DepthMode::PassiveIr),
            _ => None,
        }
    }

    /// The SDK enum value (OFF 0 … PASSIVE_IR 5).
    pub fn sdk_value(self) -> u32 {
        self as u32
    }

    /// The SDK enum name (`K4A_DEPTH_MODE_NFOV_UNBINNED`, …).
    pub fn sdk_name(self) -> &'static str {
        match self {
            DepthMode::Off => "K4A_DEPTH_MODE_OFF",
            DepthMode::Nfov2x2Binned => "K4A_DEPTH_MODE_NFOV_2X2BINNED",
            DepthMode::NfovUnbinned => "K4A_DEPTH_MODE_NFOV_UNBINNED",
            DepthMode::Wfov2x2Binned => "K4A_DEPTH_MODE_WFOV_2X2BINNED",
            DepthMode::WfovUnbinned => "K4A_DEPTH_MODE_WFOV_UNBINNED",
            DepthMode::PassiveIr => "K4A_DEPTH_MODE_PASSIVE_IR",
        }
    }
}

/// Camera frame rate (`K4A_FRAMES_PER_SECOND_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fps {
    /// 5 frames per second.
    Fps5,
    /// 15 frames per second.
    Fps15,
    /// 30 frames per second.
    Fps30,
}

impl Fps {
    /// Frames per second as a number.
    pub fn hz(self) -> u32 {
        match self {
            Fps::Fps5 => 5,
            Fps::Fps15 => 15,
            Fps::Fps30 => 30,
        }
    }

    /// The rate for a number of frames per second, if the camera has it.
    pub fn from_hz(hz: u32) -> Option<Fps> {
        match hz {
            5 => Some(Fps::Fps5),
            15 => Some(Fps::Fps15),
            30 => Some(Fps::Fps30),
            _ => None,
        }
    }

    /// Frame period in whole microseconds, as the SDK computes it (1 000 000 / fps).
    pub fn period_usec(self) -> u32 {
        1_000_000 / self.hz()
    }

    /// The SDK enum value (5 fps = 0, 15 fps = 1, 30 fps = 2).
    pub fn sdk_value(self) -> u32 {
        self as u32
    }

    /// The SDK enum name (`K4A_FRAMES_PER_SECOND_30`, …).
    pub fn sdk_name(self) -> &'static str {
        match self {
            Fps::Fps5 => "K4A_FRAMES_PER_SECOND_5",
            Fps::Fps15 => "K4A_FRAMES_PER_SECOND_15",
            Fps::Fps30 => "K4A_FRAMES_PER_SECOND_30",
        }
    }
}

/// Wired (cable) synchronisation role (`K4A_WIRED_SYNC_MODE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum WiredSyncMode {
    /// Not synchronised to other units.
    #[default]
    Standalone,
    /// Drives the sync-out jack.
    Master,
    /// Triggered through the sync-in jack.
    Subordinate,
}

impl WiredSyncMode {
    /// The recording-file spelling (`STANDALONE`, `MASTER`, `SUBORDINATE`).
    pub fn name(self) -> &'static str {
        match self {
            WiredSyncMode::Standalone => "STANDALONE",
            WiredSyncMode::Master => "MASTER",
            WiredSyncMode::Subordinate => "SUBORDINATE",
        }
    }

    /// Parses the recording-file spelling.
    pub fn from_name(name: &str) -> Option<WiredSyncMode> {
        match name {
            "STANDALONE" => Some(WiredSyncMode::Standalone),
            "MASTER" => Some(WiredSyncMode::Master),
            "SUBORDINATE" => Some(WiredSyncMode::Subordinate),
            _ => None,
        }
    }

    /// The SDK enum value (standalone 0, master 1, subordinate 2); also the wire value.
    pub fn sdk_value(self) -> u32 {
        self as u32
    }
}

/// What to stream: the equivalent of the SDK's `k4a_device_configuration_t`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Colour image format (ignored when the resolution is OFF).
    pub color_format: ImageFormat,
    /// Colour resolution, or OFF.
    pub color_resolution: ColorResolution,
    /// Depth mode, or OFF.
    pub depth_mode: DepthMode,
    /// Frame rate of both cameras.
    pub camera_fps: Fps,
    /// Deliver only captures that hold both colour and depth.
    pub synchronized_images_only: bool,
    /// Depth capture offset from colour capture, in microseconds (± one frame period).
    pub depth_delay_off_color_usec: i32,
    /// Wired sync role.
    pub wired_sync_mode: WiredSyncMode,
    /// Subordinate capture delay after the master's pulse, in microseconds.
    pub subordinate_delay_off_master_usec: u32,
    /// Turn off the streaming LED.
    pub disable_streaming_indicator: bool,
}

impl Default for DeviceConfig {
    /// k4arecorder's defaults: MJPG 1080p, NFOV unbinned, 30 fps, standalone.
    fn default() -> Self {
        DeviceConfig {
            color_format: ImageFormat::Mjpg,
            color_resolution: ColorResolution::R1080p,
            depth_mode: DepthMode::NfovUnbinned,
            camera_fps: Fps::Fps30,
            synchronized_images_only: false,
            depth_delay_off_color_usec: 0,
            wired_sync_mode: WiredSyncMode::Standalone,
            subordinate_delay_off_master_usec: 0,
            disable_streaming_indicator: false,
        }
    }
}

impl DeviceConfig {
    /// The recording-file spelling of the colour mode (`MJPG_1080P`, `NV12_720P`, `BGRA_720P`),
    /// or `None` when colour is off.
    pub fn color_mode_name(&self) -> Option<String> {
        let (_, h) = self.color_resolution.dimensions()?;
        let fmt = match self.color_format {
            ImageFormat::Mjpg => "MJPG",
            ImageFormat::Nv12 => "NV12",
            ImageFormat::Yuy2 => "YUY2",
            ImageFormat::Bgra32 => "BGRA",
            ImageFormat::Depth16 | ImageFormat::Ir16 => return None,
        };
        Some(format!("{fmt}_{h}P"))
    }
}

/// Firmware version of one component, printed `major.minor.iteration`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Iteration (build) number.
    pub iteration: u32,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.iteration)
    }
}

/// A version that is not three dot-separated unsigned numbers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a version (major.minor.iteration): {0:?}")]
pub struct VersionParseError(pub String);

impl std::str::FromStr for Version {
    type Err = VersionParseError;

    /// Parses `major.minor.iteration`, as [`Version`] prints and recordings store it.
    fn from_str(text: &str) -> Result<Version, VersionParseError> {
        let mut it = text.split('.').map(|p| p.parse::<u32>().ok());
        let mut next = || {
            it.next()
                .flatten()
                .ok_or_else(|| VersionParseError(text.into()))
        };
        let v = Version {
            major: next()?,
            minor: next()?,
            iteration: next()?,
        };
        match it.next() {
            None => Ok(v),
            Some(_) => Err(VersionParseError(text.into())),
        }
    }
}

/// Firmware versions of a unit (the SDK's `k4a_hardware_version_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HardwareVersion {
    /// Colour camera firmware.
    pub rgb: Version,
    /// Depth camera firmware.
    pub depth: Version,
    /// Microphone array firmware.
    pub audio: Version,
    /// Depth sensor configuration (iteration is always 0).
    pub depth_sensor: Version,
    /// True for a release build, false for a debug build.
    pub release_build: bool,
    /// Signature: 0 Microsoft, 1 test, 2 unsigned.
    pub signature_type: u8,
}

/// One image with its timestamps. Pixel data is owned; 16-bit formats are little-endian.
#[derive(Debug, PartialEq, Eq)]
pub struct Image {
    /// Pixel format.
    pub format: ImageFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Row stride in bytes (0 for MJPEG).
    pub stride_bytes: u32,
    /// Device timestamp (centre of exposure) in microseconds.
    pub device_timestamp_usec: u64,
    /// Host `CLOCK_MONOTONIC` time at reception, in nanoseconds (0 when unknown).
    pub system_timestamp_nsec: u64,
    /// Exposure time in microseconds (colour only; 0 when unknown).
    pub exposure_usec: u64,
    /// The bytes (a `Vec<u8>` through `Deref`; [`ImageData::into_vec`] takes it out).
    pub data: ImageData,
}

impl Image {
    /// An image of `format`, `width` × `height`, with the device timestamp of its centre of
    /// exposure. The stride is the format's ([`ImageFormat::stride_bytes`]); the host
    /// timestamp and the exposure are unknown (0) until set with
    /// [`Image::with_system_timestamp_nsec`] and [`Image::with_exposure_usec`].
    pub fn new(
        format: ImageFormat,
        width: u32,
        height: u32,
        device_timestamp_usec: u64,
        data: Vec<u8>,
    ) -> Image {
        Image {
            format,
            width,
            height,
            stride_bytes: format.stride_bytes(width),
            device_timestamp_usec,
            system_timestamp_nsec: 0,
            exposure_usec: 0,
            data: ImageData::from(data),
        }
    }

    /// The same image with other bytes (pooled storage, see [`ImageData`]).
    pub(crate) fn with_data(mut self, data: ImageData) -> Image {
        self.data = data;
        self
    }

    /// The same image with the host's reception time.
    pub fn with_system_timestamp_nsec(mut self, system_timestamp_nsec: u64) -> Image {
        self.system_timestamp_nsec = system_timestamp_nsec;
        self
    }

    /// The same image with its exposure time.
    pub fn with_exposure_usec(mut self, exposure_usec: u64) -> Image {
        self.exposure_usec = exposure_usec;
        self
    }
}

// `ImageData` has no `Clone` of its own, so `image.data.clone()` is the `Vec<u8>` it always was;
// a cloned image's bytes are plain memory, outside the original's pool.
impl Clone for Image {
    fn clone(&self) -> Image {
        Image {
            data: ImageData::from(self.data.bytes.clone()),
            ..*self
        }
    }
}

/// An image's bytes: a `Vec<u8>` (reached through `Deref`/`DerefMut`) that, when it came from
/// a reader's buffer pool, goes back to that pool when dropped, so a program that drops each
/// capture before reading the next reuses the same memory instead of asking the allocator (and
/// through it the kernel) for fresh pages every frame.
#[derive(Default)]
pub struct ImageData {
    bytes: Vec<u8>,
    /// The pool the storage returns to (gone once the pool's owner is dropped).
    home: Option<std::sync::Weak<PoolShelf>>,
}

impl ImageData {
    /// Takes the bytes out; the storage then no longer returns to any pool.
    pub fn into_vec(mut self) -> Vec<u8> {
        self.home = None;
        std::mem::take(&mut self.bytes)
    }
}

impl From<Vec<u8>> for ImageData {
    fn from(bytes: Vec<u8>) -> ImageData {
        ImageData { bytes, home: None }
    }
}

impl From<ImageData> for Vec<u8> {
    fn from(d: ImageData) -> Vec<u8> {
        d.into_vec()
    }
}

impl std::ops::Deref for ImageData {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.bytes
    }
}

impl std::ops::DerefMut for ImageData {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

impl AsRef<[u8]> for ImageData {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl PartialEq<Vec<u8>> for ImageData {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.bytes == *other
    }
}

impl PartialEq<ImageData> for Vec<u8> {
    fn eq(&self, other: &ImageData) -> bool {
        *self == other.bytes
    }
}

impl PartialEq<[u8]> for ImageData {
    fn eq(&self, other: &[u8]) -> bool {
        self.bytes == other
    }
}

impl PartialEq for ImageData {
    fn eq(&self, other: &ImageData) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for ImageData {}

impl fmt::Debug for ImageData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.bytes.fmt(f)
    }
}

impl Drop for ImageData {
    fn drop(&mut self) {
        if let Some(shelf) = self.home.take().and_then(|h| h.upgrade()) {
            shelf.put(std::mem::take(&mut self.bytes));
        }
    }
}

/// The spare buffers of a [`BufferPool`], shared with the images it handed out.
#[derive(Debug)]
pub(crate) struct PoolShelf {
    buffers: std::sync::Mutex<Vec<Vec<u8>>>,
    max_buffers: usize,
    max_bytes: usize,
}

impl PoolShelf {
    fn put(&self, mut bytes: Vec<u8>) {
        if bytes.capacity() == 0 {
            return;
        }
        let Ok(mut shelf) = self.buffers.lock() else {
            return;
        };
        let held: usize = shelf.iter().map(Vec::capacity).sum();
        if shelf.len() < self.max_buffers && held + bytes.capacity() <= self.max_bytes {
            bytes.clear();
            shelf.push(bytes);
        }
    }
}

/// Recycled image buffers: [`BufferPool::take`] hands out storage that dropped
/// [`ImageData`]s gave back. Holds at most `max_buffers` buffers and `max_bytes` bytes; dropping
/// the pool frees them (images still alive then free their own storage as usual).
#[derive(Debug)]
pub(crate) struct BufferPool {
    shelf: std::sync::Arc<PoolShelf>,
}

impl BufferPool {
    /// An empty pool keeping at most `max_buffers` spare buffers of `max_bytes` in all.
    pub(crate) fn new(max_buffers: usize, max_bytes: usize) -> BufferPool {
        BufferPool {
            shelf: std::sync::Arc::new(PoolShelf {
                buffers: std::sync::Mutex::new(Vec::new()),
                max_buffers,
                max_bytes,
            }),
        }
    }

    /// An empty buffer that returns here when dropped, with room for `len_bytes` if a spare one
    /// had it (the smallest such), else the largest spare one or a new one.
    pub(crate) fn take(&self, len_bytes: usize) -> ImageData {
        let spare = self.shelf.buffers.lock().ok().and_then(|mut shelf| {
            let fit = shelf
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= len_bytes)
                .min_by_key(|(_, b)| b.capacity())
                .or_else(|| shelf.iter().enumerate().max_by_key(|(_, b)| b.capacity()))
                .map(|(i, _)| i)?;
            Some(shelf.swap_remove(fit))
        });
        ImageData {
            bytes: spare.unwrap_or_default(),
            home: Some(std::sync::Arc::downgrade(&self.shelf)),
        }
    }
}

/// Images captured together: any of colour, depth and IR may be missing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Capture {
    /// Colour image.
    pub color: Option<Image>,
    /// Depth image (DEPTH16).
    pub depth: Option<Image>,
    /// Infrared image (IR16).
    pub ir: Option<Image>,
    /// Depth sensor temperature in °C (NaN when unknown).
    pub temperature_c: f32,
}

/// One IMU sample after conversion to SI units (the SDK's `k4a_imu_sample_t`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImuSample {
    /// Sensor temperature in °C (NaN when unknown, as in recordings).
    pub temperature_c: f32,
    /// Acceleration in m/s² (x, y, z).
    pub acc_mps2: [f32; 3],
    /// Accelerometer device timestamp in microseconds.
    pub acc_timestamp_usec: u64,
    /// Angular velocity in rad/s (x, y, z).
    pub gyro_radps: [f32; 3],
    /// Gyroscope device timestamp in microseconds.
    pub gyro_timestamp_usec: u64,
}

// ---- Streams: the unit's three USB streams, and per-stream storage. ----

/// A stream of the unit, as the host and the emulated device both name it. Where each one
/// arrives on the wire is [`crate::protocol::descriptors::StreamEndpoint::of`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// Raw depth frames (bulk IN of the depth function).
    Depth,
    /// Colour UVC payloads (isochronous IN of the colour function).
    Color,
    /// IMU packets (bulk IN of the colour function's vendor interface).
    Imu,
}

impl Stream {
    /// Every stream, in index order.
    pub const ALL: [Stream; 3] = [Stream::Depth, Stream::Color, Stream::Imu];

    /// Position in [`Stream::ALL`] (and in a [`PerStream`]).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Lower-case name, as written in `fault=` items and file names.
    pub const fn name(self) -> &'static str {
        match self {
            Stream::Depth => "depth",
            Stream::Color => "color",
            Stream::Imu => "imu",
        }
    }

    /// The stream named `name` ([`Stream::name`]).
    pub fn from_name(name: &str) -> Option<Stream> {
        Stream::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Stream {
    /// As messages name it: "depth", "color", "IMU".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Imu => "IMU",
            s => s.name(),
        })
    }
}

/// One `T` per [`Stream`], indexed by the stream rather than by a number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PerStream<T>([T; 3]);

impl<T> PerStream<T> {
    /// A value for each stream, made by `f`.
    pub fn from_fn(mut f: impl FnMut(Stream) -> T) -> Self {
        PerStream(Stream::ALL.map(&mut f))
    }

    /// Each stream with its value.
    pub fn iter(&self) -> impl Iterator<Item = (Stream, &T)> {
        Stream::ALL.into_iter().zip(self.0.iter())
    }

    /// Each stream with its value, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Stream, &mut T)> {
        Stream::ALL.into_iter().zip(self.0.iter_mut())
    }
}

impl<T> std::ops::Index<Stream> for PerStream<T> {
    type Output = T;
    fn index(&self, s: Stream) -> &T {
        &self.0[s.index()]
    }
}

impl<T> std::ops::IndexMut<Stream> for PerStream<T> {
    fn index_mut(&mut self, s: Stream) -> &mut T {
        &mut self.0[s.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_pooled_image_data_returns_its_storage() {
        let pool = BufferPool::new(2, 1 << 20);
        let mut a = pool.take(1000);
        a.extend_from_slice(&[1; 1000]);
        let ptr = a.as_ptr();
        drop(a);
        // The smallest spare buffer with room is the one just dropped, emptied.
        let b = pool.take(900);
        assert!(b.is_empty());
        assert_eq!((b.as_ptr(), b.capacity() >= 1000), (ptr, true));
        // Taken out with into_vec, the storage is the caller's and does not come back.
        let v = b.into_vec();
        assert_eq!(v.as_ptr(), ptr);
        assert_eq!(pool.take(10).capacity(), 0);
    }

    #[test]
    fn pool_keeps_at_most_its_limits() {
        let pool = BufferPool::new(2, 3000);
        let imgs = [1000, 1000, 1000].map(|n| fill_from(&pool, n));
        drop(imgs); // the third would be a third buffer
        assert_eq!(pool.shelf.buffers.lock().unwrap().len(), 2);
        let pool = BufferPool::new(4, 3000);
        let (big, small) = (fill_from(&pool, 2500), fill_from(&pool, 1000));
        drop(big);
        drop(small); // 2500 + 1000 > 3000 bytes
        assert_eq!(pool.shelf.buffers.lock().unwrap().len(), 1);
        // An image outliving its pool frees its own storage.
        let orphan = fill_from(&pool, 100);
        drop(pool);
        assert_eq!(orphan.len(), 100);
    }

    fn fill_from(pool: &BufferPool, n: usize) -> ImageData {
        let mut d = pool.take(n);
        d.resize(n, 7);
        d
    }

    #[test]
    fn image_data_reads_and_compares_as_bytes() {
        let img = Image::new(ImageFormat::Depth16, 1, 1, 5, vec![1, 2]);
        let copy = img.clone();
        assert_eq!(copy, img);
        assert_eq!(img.data, vec![1, 2]);
        assert_eq!(vec![1, 2], img.data);
        assert_eq!(&img.data[..], &[1, 2]);
        let v: Vec<u8> = img.data.clone();
        assert_eq!(v, [1, 2]);
        assert_eq!(format!("{:?}", img.data), "[1, 2]");
    }

    #[test]
    fn color_mode_names() {
        let mut c = DeviceConfig::default();
        assert_eq!(c.color_mode_name().as_deref(), Some("MJPG_1080P"));
        c.color_format = ImageFormat::Nv12;
        c.color_resolution = ColorResolution::R720p;
        assert_eq!(c.color_mode_name().as_deref(), Some("NV12_720P"));
        c.color_resolution = ColorResolution::Off;
        assert_eq!(c.color_mode_name(), None);
    }

    #[test]
    fn depth_mode_names_round_trip() {
        for m in DepthMode::ON {
            assert_eq!(DepthMode::from_name(m.name()), Some(m));
        }
        assert_eq!(
            DepthMode::from_name("NFOV_2x2BINNED"),
            Some(DepthMode::Nfov2x2Binned)
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(
            ImageFormat::Nv12.image_size_bytes(1280, 720),
            Some(1_382_400)
        );
        assert_eq!(
            ImageFormat::Yuy2.image_size_bytes(1280, 720),
            Some(1_843_200)
        );
        assert_eq!(
            ImageFormat::Depth16.image_size_bytes(640, 576),
            Some(737_280)
        );
        assert_eq!(Fps::Fps30.period_usec(), 33_333);
    }

    #[test]
    fn streams_index_their_own_storage() {
        let mut counts = PerStream::<u64>::default();
        counts[Stream::Imu] += 2;
        counts[Stream::Depth] += 1;
        let seen: Vec<_> = counts.iter().map(|(s, n)| (s, *n)).collect();
        assert_eq!(
            seen,
            [(Stream::Depth, 1), (Stream::Color, 0), (Stream::Imu, 2)]
        );
        for s in Stream::ALL {
            assert_eq!(Stream::from_name(s.name()), Some(s));
        }
        assert_eq!(Stream::from_name("ir"), None);
        assert_eq!(Stream::Imu.to_string(), "IMU");
        assert_eq!(PerStream::from_fn(Stream::name)[Stream::Color], "color");
    }
}

/// One of the recorded streams: the three images of a capture and the IMU (serialised as the
/// SDK's track name: `COLOR`, `DEPTH`, `IR`, `IMU`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TrackKind {
    /// Colour images.
    Color,
    /// Depth images.
    Depth,
    /// Infrared images.
    Ir,
    /// IMU samples.
    Imu,
}

impl TrackKind {
    /// Every recorded stream, in the order of the file's tracks.
    pub const ALL: [TrackKind; 4] = [
        TrackKind::Color,
        TrackKind::Depth,
        TrackKind::Ir,
        TrackKind::Imu,
    ];

    /// The track Name the SDK gives it.
    pub fn track_name(self) -> &'static str {
        match self {
            TrackKind::Color => "COLOR",
            TrackKind::Depth => "DEPTH",
            TrackKind::Ir => "IR",
            TrackKind::Imu => "IMU",
        }
    }

    fn slot(self) -> usize {
        match self {
            TrackKind::Color => 0,
            TrackKind::Depth => 1,
            TrackKind::Ir => 2,
            TrackKind::Imu => 3,
        }
    }
}

/// Items of each recorded stream that did not reach the file (dropped by the unit, by a full
/// queue, or refused as too late), indexed by [`TrackKind`]. The one drop count of the crate:
/// the device reports in it, the writer counts in it and stores it as `FREEK4A_DROPPED_*`
/// tags, the recorder shows it.
///
/// ```
/// use freek4a::types::{DropCounts, TrackKind};
/// let mut d = DropCounts::default();
/// d.count(TrackKind::Ir);
/// d[TrackKind::Color] += 2;
/// assert_eq!((d[TrackKind::Ir], d.total()), (1, 3));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts([u64; 4]);

impl DropCounts {
    /// Counts from a function of the stream.
    pub fn from_fn(mut f: impl FnMut(TrackKind) -> u64) -> DropCounts {
        DropCounts(TrackKind::ALL.map(&mut f))
    }

    /// Counts one dropped item of `kind`.
    pub fn count(&mut self, kind: TrackKind) {
        self[kind] += 1;
    }

    /// Stream-wise sum.
    pub fn add(&mut self, other: DropCounts) {
        for kind in TrackKind::ALL {
            self[kind] += other[kind];
        }
    }

    /// Total over all streams.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Each stream with its count, in track order.
    pub fn iter(&self) -> impl Iterator<Item = (TrackKind, u64)> + '_ {
        TrackKind::ALL.into_iter().map(|k| (k, self[k]))
    }
}

impl std::ops::Index<TrackKind> for DropCounts {
    type Output = u64;
    fn index(&self, kind: TrackKind) -> &u64 {
        &self.0[kind.slot()]
    }
}

impl std::ops::IndexMut<TrackKind> for DropCounts {
    fn index_mut(&mut self, kind: TrackKind) -> &mut u64 {
        &mut self.0[kind.slot()]
    }
}
