//! freek4a: a userspace driver, recorder, reader and device emulator for the Azure Kinect DK.
//!
//! The crate talks to the camera over USB without Microsoft's SDK, writes recordings in the
//! Matroska layout Microsoft's `k4arecorder` writes (so every tool that reads Microsoft's
//! recordings reads these), reads recordings from either, and repairs cut ones. An emulated unit
//! stands in for the hardware behind the same USB seam, so everything here also runs on a
//! machine without a camera. The `k4arecorder` and `freek4a` binaries are thin programs over
//! this library.
//!
//! # Layers
//!
//! Each layer only uses the ones below it (`ARCHITECTURE.md` in the repository has the map):
//!
//! | Layer | What it does |
//! |---|---|
//! | [`types`] | the shared vocabulary: modes, [`DeviceConfig`], [`Image`], [`Capture`], [`ImuSample`] |
//! | [`protocol`] | the wire formats (commands, UVC, IMU packets, descriptors, calibration); no I/O |
//! | [`transport`] | the USB seam: the [`Backend`] trait, [`NusbBackend`] for real units, Linux usbfs isochronous transfers |
//! | [`emulator`] | a whole Azure Kinect behind the seam: [`EmulatedBackend`] |
//! | [`depthengine`] | raw depth → depth and IR images through a depth-engine plugin |
//! | [`device`] | one unit: open, start and stop, captures, IMU samples, colour controls |
//! | [`geometry`] | calibration model, 2D/3D mappings, point clouds (no I/O) |
//! | [`mkv`] | EBML, Matroska ids and the K4A recording layout ([`K4aWriter`]); knows no devices |
//! | [`record`] | the writer on its own thread behind a bounded queue ([`RecordingWriter`]) |
//! | [`playback`] | reading recordings ([`Playback`]), summaries, repair |
//! | [`view`] | the browser viewer for files, rigs and a recorder's live preview |
//!
//! # How to
//!
//! **List units.** [`device::list`] counts the units a backend sees, as the SDK does; opening
//! each one gives its serial number and firmware versions. A machine with no USB at all simply
//! has none (`examples/list_units.rs`).
//!
//! ```no_run
//! use freek4a::{device, Device, NusbBackend};
//!
//! let usb = NusbBackend::new();
//! for index in 0..device::list(&usb)? {
//!     let unit = Device::open(&usb, index)?;
//!     let versions = unit.hardware_version();
//!     println!("{index}: {} colour {} depth {}", unit.serial_number(), versions.rgb, versions.depth);
//! }
//! # Ok::<(), freek4a::DeviceError>(())
//! ```
//!
//! **Open a unit.** [`Device::open`] takes any [`Backend`]: [`NusbBackend`] for the hardware, or
//! an [`EmulatedBackend`] built from an [`EmulatorSpec`] (units, pace, seed, sync cables,
//! faults). Depth needs a depth engine: with real units Microsoft's `libdepthengine.so.2.0`
//! (found like the SDK finds it, or at [`DepthEngineChoice::Path`]); with emulated units the
//! emulated engine linked into the crate ([`DepthEngineChoice::Emulated`]).
//!
//! **Stream captures.** [`Device::start_cameras`] with a [`DeviceConfig`], then
//! [`Device::get_capture`]; [`Device::start_imu`] (after the cameras), then
//! [`Device::get_imu_sample`]. Frames the device layer had to drop are counted in
//! [`Device::drops`]. Setting [`OpenOptions::backpressure`] makes an emulated unit wait for a
//! slow reader instead of dropping, which a real sensor cannot do.
//!
//! **Write a recording.** [`K4aWriter`] writes captures and IMU samples to any `Write + Seek`
//! in the K4A layout (crash-safe: a file cut at any byte still plays);
//! [`RecordingSettings`] shape the header (modes, tracks, device facts and calibration, tags).
//! [`RecordingWriter`] runs a writer on its own thread behind a queue bounded in bytes, so a
//! slow disk costs counted drops, never a stalled device. The whole device-to-file loop, with
//! the stop flag, length limit and device facts, is the recorder [`record::Recorder`] (the type
//! both binaries use; `examples/record_emulated.rs`).
//!
//! **Read a recording.** [`Playback`] opens files written by freek4a or by any version of
//! Microsoft's recorder, cut or damaged ones included: configuration, tags, attachments and
//! calibration, then captures and IMU samples in order, with the SDK's capture grouping and
//! seeking ([`playback::Origin`]); [`playback::info::RecordingInfo`] is the summary
//! `freek4a info` prints (`examples/read_recording.rs`).
//!
//! **Repair.** [`playback::repair::repair`] turns an unclosed or cut recording (killed recorder,
//! full disk, power loss) into one Microsoft's playback opens, keeping every complete cluster.
//!
//! ```no_run
//! let report = freek4a::playback::repair::repair("cut.mkv", "fixed.mkv")?;
//! println!("kept {} captures", report.captures_kept);
//! # Ok::<(), freek4a::playback::repair::RepairError>(())
//! ```
//!
//! # Example: record from an emulated unit, read the file back
//!
//! ```
//! use std::io::Cursor;
//! use std::time::Duration;
//!
//! use freek4a::emulator::Speed;
//! use freek4a::{
//!     ColorResolution, DepthEngineChoice, DepthMode, Device, DeviceConfig, EmulatedBackend,
//!     EmulatorSpec, Fps, K4aWriter, OpenOptions, Playback, RecordingSettings,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // One emulated unit, running as fast as this program reads it.
//! let backend = EmulatedBackend::new(EmulatorSpec { speed: Speed::Max, ..Default::default() });
//! let options = OpenOptions {
//!     depth_engine: DepthEngineChoice::Emulated,
//!     backpressure: true,
//!     ..Default::default()
//! };
//! let mut unit = Device::open_with(&backend, 0, options)?;
//!
//! let config = DeviceConfig {
//!     color_resolution: ColorResolution::R720p,
//!     depth_mode: DepthMode::Nfov2x2Binned,
//!     camera_fps: Fps::Fps30,
//!     ..Default::default()
//! };
//! unit.start_cameras(&config)?;
//! unit.start_imu()?;
//!
//! // Ten captures and the IMU samples that came with them, into a file in memory.
//! let mut writer = K4aWriter::create(Cursor::new(Vec::new()), RecordingSettings::new(config, true))?;
//! let mut captures = 0;
//! while captures < 10 {
//!     let capture = unit.get_capture(Duration::from_secs(10))?.ok_or("no capture in 10 s")?;
//!     writer.write_capture(&capture)?;
//!     captures += 1;
//!     while let Some(sample) = unit.get_imu_sample(Duration::ZERO)? {
//!         writer.write_imu(&sample)?;
//!     }
//! }
//! unit.stop_imu()?;
//! unit.stop_cameras()?;
//! let (file, summary) = writer.finish(Default::default())?;
//! assert!(summary.imu_samples > 0);
//!
//! // Read it back as any recording.
//! let mut playback = Playback::from_reader(Cursor::new(file.into_inner()))?;
//! assert_eq!(playback.config().depth_mode, DepthMode::Nfov2x2Binned);
//! assert!(playback.config().imu_track_enabled);
//! let mut read = 0;
//! while let Some(capture) = playback.next_capture()? {
//!     if let Some(depth) = &capture.depth {
//!         assert_eq!((depth.width, depth.height), (320, 288));
//!     }
//!     read += 1;
//! }
//! let mut samples = 0;
//! while playback.next_imu_sample()?.is_some() {
//!     samples += 1;
//! }
//! assert_eq!(read, 10);
//! assert_eq!(samples, summary.imu_samples);
//! # Ok(())
//! # }
//! ```
//!
//! # Example: a recording made by Microsoft's k4arecorder on a real unit
//!
//! ```
//! use freek4a::Playback;
//!
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sdk141-mjpg720-nfov-1capture.mkv");
//! let mut playback = Playback::open(path)?;
//! assert_eq!(playback.tag("K4A_DEVICE_SERIAL_NUMBER"), Some("001514394512"));
//! let capture = playback.next_capture()?.expect("one capture");
//! assert_eq!(capture.depth.map(|d| d.device_timestamp_usec), Some(800_222));
//! let sample = playback.next_imu_sample()?.expect("one IMU sample");
//! assert_eq!(sample.acc_timestamp_usec, 336_277);
//! # Ok::<(), freek4a::playback::Error>(())
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod depthengine;
pub mod device;
pub mod emulator;
pub mod geometry;
pub mod mkv;
pub mod playback;
pub mod protocol;
pub mod record;
pub mod safe_output;
pub mod transport;
pub mod types;
pub mod view;

// What a program starts with; everything else is reached through its module.
pub use device::{DepthEngineChoice, Device, DeviceError, OpenOptions};
pub use emulator::{EmulatedBackend, EmulatorSpec};
pub use mkv::writer::{K4aWriter, RecordingSettings};
pub use playback::Playback;
pub use record::RecordingWriter;
pub use transport::nusb_backend::NusbBackend;
pub use transport::Backend;
pub use types::{
    Capture, ColorResolution, DepthMode, DeviceConfig, Fps, Image, ImageFormat, ImuSample,
};
