//! The recorder's sequence plugged into the real layers: a [`Device`] over the nusb backend or
//! the emulator, opened on the sequence's request. Recording itself is `record::Recorder`'s.

use std::time::Duration;

use crate::cli::args::{Exposure, RecorderOptions};
use crate::cli::emulate::{EmulateSpec, EmulateSpeed};
use crate::cli::session::RecorderDevice;
use crate::device::{self, ColorControl, ControlMode, DepthEngineChoice, Device, DeviceError};
use crate::emulator::EmulatedBackend;
use crate::mkv::writer::RecordedDevice;
use crate::record::CaptureSource;
use crate::transport::nusb_backend::NusbBackend;
use crate::transport::Backend;
use crate::types::DropCounts;
use crate::types::{Capture, DeviceConfig, HardwareVersion, ImuSample};

/// The backend a recorder run talks to: USB, or emulated units.
pub fn backend_for(emulate: Option<&EmulateSpec>) -> Box<dyn Backend> {
    match emulate {
        None => Box::new(NusbBackend::new()),
        Some(spec) => Box::new(EmulatedBackend::new(spec.emulator_spec())),
    }
}

/// A device for the recorder: the backend, and the unit once it is open.
pub struct DeviceSource {
    backend: Box<dyn Backend>,
    options: device::OpenOptions,
    device: Option<Device>,
    /// The emulated units, when to unplug and which unit (`--emulate=unplug_after=S`,
    /// `unplug_unit=N`).
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
            _ if options.raw_depth => DepthEngineChoice::RawOnly,
            (Some(p), _) => DepthEngineChoice::Path(p.clone()),
            (None, Some(_)) => DepthEngineChoice::Emulated,
            (None, None) => DepthEngineChoice::System,
        };
        // At maximum speed an emulated unit runs at the recorder's pace instead of dropping.
        let backpressure = emulated.is_some_and(|s| s.speed == EmulateSpeed::Max);
        let (backend, unplug): (Box<dyn Backend>, _) = match emulated {
            Some(spec) => {
                let b = EmulatedBackend::new(spec.emulator_spec());
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
            if !options.raw_depth {
                source.options.depth_engine = match &options.depth_engine_path {
                    Some(p) => DepthEngineChoice::Path(p.clone()),
                    None => DepthEngineChoice::Emulated,
                };
            }
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

impl CaptureSource for DeviceSource {
    type Error = SourceError;

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

    fn get_capture(&mut self, timeout: Duration) -> Result<Option<Capture>, SourceError> {
        Ok(self.open_device()?.get_capture(timeout)?)
    }

    fn get_imu_sample(&mut self, timeout: Duration) -> Result<Option<ImuSample>, SourceError> {
        Ok(self.open_device()?.get_imu_sample(timeout)?)
    }

    fn stop_imu(&mut self) {
        if let Some(d) = self.device.as_mut() {
            CaptureSource::stop_imu(d);
        }
    }

    fn stop_cameras(&mut self) {
        if let Some(d) = self.device.as_mut() {
            CaptureSource::stop_cameras(d);
        }
    }

    fn dropped(&self) -> DropCounts {
        self.device
            .as_ref()
            .map_or_else(DropCounts::default, CaptureSource::dropped)
    }

    fn recorded_device(&self) -> Option<RecordedDevice> {
        self.device
            .as_ref()
            .and_then(CaptureSource::recorded_device)
    }

    fn get_raw_depth(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<device::RawDepthFrame>, SourceError> {
        Ok(self.open_device()?.get_raw_depth(timeout)?)
    }

    fn depth_engine_calibration(&mut self) -> Result<Option<Vec<u8>>, SourceError> {
        Ok(Some(
            self.open_device()?.depth_engine_calibration()?.to_vec(),
        ))
    }
}

impl RecorderDevice for DeviceSource {
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

    fn close(&mut self) {
        self.device = None;
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
