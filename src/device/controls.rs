//! Colour camera controls (`protocol/color-stream.md`, "Controls"): UVC class requests on the
//! VideoControl interface, with the SDK's mapping of exposure times onto the 50/60 Hz table.

use std::time::Duration;

use crate::protocol::uvc::{
    self, exposure_usec_to_uvc, exposure_uvc_to_usec, request, PowerLine, UvcControl,
};
use crate::transport::{ControlSetup, TransferError, UsbInterface};

/// A colour camera control (`k4a_color_control_command_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ColorControl {
    /// Exposure time, µs.
    ExposureTimeAbsolute,
    /// Deprecated; does nothing.
    AutoExposurePriority,
    /// Brightness.
    Brightness,
    /// Contrast.
    Contrast,
    /// Saturation.
    Saturation,
    /// Sharpness.
    Sharpness,
    /// White balance, Kelvin.
    WhiteBalance,
    /// Backlight compensation (0 or 1).
    BacklightCompensation,
    /// Gain.
    Gain,
    /// Powerline frequency: 1 = 50 Hz, 2 = 60 Hz.
    PowerlineFrequency,
}

/// Automatic or manual control.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlMode {
    /// The camera chooses.
    Auto,
    /// The value given.
    Manual,
}

/// Why a control request failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The SDK refuses this request before sending anything.
    #[error("color control {control:?}: {reason}")]
    Refused {
        /// The control.
        control: ColorControl,
        /// The SDK's reason.
        reason: &'static str,
    },
    /// The UVC request failed.
    #[error("color control {control:?}: UVC request 0x{request:02X} selector 0x{selector:02X} failed: {source}")]
    Transfer {
        /// The control.
        control: ColorControl,
        /// bRequest.
        request: u8,
        /// Control selector.
        selector: u8,
        /// Why.
        source: TransferError,
    },
    /// The camera answered with fewer bytes than the control has.
    #[error("color control {control:?}: short answer ({got} bytes)")]
    Short {
        /// The control.
        control: ColorControl,
        /// Bytes received.
        got: usize,
    },
}

/// Converts k4arecorder's `--exposure-control` value: −11..1 are 2^v seconds (in µs,
/// truncated), 2..200000 are µs; anything else is `None`.
pub fn exposure_from_recorder_value(v: i32) -> Option<u32> {
    match v {
        -11..=1 => Some((2f32.powi(v) * 1e6) as u32),
        2..=200_000 => Some(v as u32),
        _ => None,
    }
}

const TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) struct Controls<'a> {
    pub vc: &'a dyn UsbInterface,
    pub control: ColorControl,
}

impl Controls<'_> {
    pub fn get(&self, c: UvcControl, req: u8) -> Result<i32, ControlError> {
        let setup = ControlSetup {
            request_type: request::GET_REQUEST_TYPE,
            request: req,
            value: c.w_value(),
            index: c.w_index(),
        };
        let b = self
            .vc
            .control_in(setup, c.len, TIMEOUT)
            .map_err(|source| ControlError::Transfer {
                control: self.control,
                request: req,
                selector: c.selector,
                source,
            })?;
        if b.len() < c.len as usize {
            return Err(ControlError::Short {
                control: self.control,
                got: b.len(),
            });
        }
        Ok(match c.len {
            1 => b[0] as i32,
            2 => i16::from_le_bytes([b[0], b[1]]) as i32,
            _ => i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        })
    }

    pub fn set(&self, c: UvcControl, v: i32) -> Result<(), ControlError> {
        let setup = ControlSetup {
            request_type: request::SET_REQUEST_TYPE,
            request: request::SET_CUR,
            value: c.w_value(),
            index: c.w_index(),
        };
        let bytes = v.to_le_bytes();
        self.vc
            .control_out(setup, &bytes[..c.len as usize], TIMEOUT)
            .map_err(|source| ControlError::Transfer {
                control: self.control,
                request: request::SET_CUR,
                selector: c.selector,
                source,
            })
    }
}

/// The UVC control behind a k4a control (manual value).
pub(crate) fn uvc_control(c: ColorControl) -> Option<UvcControl> {
    Some(match c {
        ColorControl::ExposureTimeAbsolute => uvc::CT_EXPOSURE_TIME_ABSOLUTE,
        ColorControl::AutoExposurePriority => return None,
        ColorControl::Brightness => uvc::PU_BRIGHTNESS,
        ColorControl::Contrast => uvc::PU_CONTRAST,
        ColorControl::Saturation => uvc::PU_SATURATION,
        ColorControl::Sharpness => uvc::PU_SHARPNESS,
        ColorControl::WhiteBalance => uvc::PU_WHITE_BALANCE_TEMPERATURE,
        ColorControl::BacklightCompensation => uvc::PU_BACKLIGHT_COMPENSATION,
        ColorControl::Gain => uvc::PU_GAIN,
        ColorControl::PowerlineFrequency => uvc::PU_POWER_LINE_FREQUENCY,
    })
}

/// Sets a control as the SDK does; returns the new powerline setting when it changed.
pub(crate) fn set(
    ctl: &Controls<'_>,
    mode: ControlMode,
    value: i32,
    pl: PowerLine,
) -> Result<Option<PowerLine>, ControlError> {
    let c = ctl.control;
    match (c, mode) {
        (ColorControl::AutoExposurePriority, _) => Ok(None),
        (ColorControl::ExposureTimeAbsolute, ControlMode::Auto) => ctl
            .set(uvc::CT_AE_MODE, uvc::AE_MODE_AUTO as i32)
            .map(|_| None),
        (ColorControl::ExposureTimeAbsolute, ControlMode::Manual) => {
            ctl.set(uvc::CT_AE_MODE, uvc::AE_MODE_MANUAL as i32)?;
            let v = exposure_usec_to_uvc(value.max(0) as u32, pl);
            ctl.set(uvc::CT_EXPOSURE_TIME_ABSOLUTE, v as i32)
                .map(|_| None)
        }
        (ColorControl::WhiteBalance, ControlMode::Auto) => ctl
            .set(uvc::PU_WHITE_BALANCE_TEMPERATURE_AUTO, 1)
            .map(|_| None),
        (ColorControl::WhiteBalance, ControlMode::Manual) => {
            ctl.set(uvc::PU_WHITE_BALANCE_TEMPERATURE_AUTO, 0)?;
            ctl.set(uvc::PU_WHITE_BALANCE_TEMPERATURE, value)
                .map(|_| None)
        }
        (_, ControlMode::Auto) => Err(ControlError::Refused {
            control: c,
            reason: "only manual mode is supported",
        }),
        (ColorControl::PowerlineFrequency, ControlMode::Manual) => {
            let new = match value {
                1 => PowerLine::Hz50,
                2 => PowerLine::Hz60,
                0 => {
                    return Err(ControlError::Refused {
                        control: c,
                        reason: "Can not disable Powerline Frequency Control",
                    })
                }
                _ => {
                    return Err(ControlError::Refused {
                        control: c,
                        reason: "value must be 1 (50 Hz) or 2 (60 Hz)",
                    })
                }
            };
            ctl.set(uvc::PU_POWER_LINE_FREQUENCY, new.uvc_value().into())?;
            Ok(Some(new))
        }
        (_, ControlMode::Manual) => {
            let u = uvc_control(c).ok_or(ControlError::Refused {
                control: c,
                reason: "deprecated",
            })?;
            ctl.set(u, value).map(|_| None)
        }
    }
}

/// What the camera reports for a control (`k4a_device_get_color_control_capabilities`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlRange {
    /// Smallest value.
    pub min: i32,
    /// Largest value.
    pub max: i32,
    /// Step between values.
    pub step: i32,
    /// Power-on value.
    pub default: i32,
}

impl ControlRange {
    /// Whether `value` is in range and on a step.
    pub fn accepts(&self, value: i32) -> bool {
        value >= self.min
            && value <= self.max
            && (self.step <= 1 || (value - self.min) % self.step == 0)
    }
}

/// Reads a manual control's range from the camera (GET_MIN, GET_MAX, GET_RES, GET_DEF).
pub(crate) fn range(ctl: &Controls<'_>) -> Result<ControlRange, ControlError> {
    let u = uvc_control(ctl.control).ok_or(ControlError::Refused {
        control: ctl.control,
        reason: "deprecated",
    })?;
    Ok(ControlRange {
        min: ctl.get(u, request::GET_MIN)?,
        max: ctl.get(u, request::GET_MAX)?,
        step: ctl.get(u, request::GET_RES)?,
        default: ctl.get(u, request::GET_DEF)?,
    })
}

/// Reads a control's mode and value as the SDK reports them.
pub(crate) fn get(ctl: &Controls<'_>, pl: PowerLine) -> Result<(ControlMode, i32), ControlError> {
    match ctl.control {
        ColorControl::AutoExposurePriority => Ok((ControlMode::Manual, 0)),
        ColorControl::ExposureTimeAbsolute => {
            let ae = ctl.get(uvc::CT_AE_MODE, request::GET_CUR)?;
            let mode = if uvc::ae_mode_is_manual(ae as u8) {
                ControlMode::Manual
            } else {
                ControlMode::Auto
            };
            let v = ctl.get(uvc::CT_EXPOSURE_TIME_ABSOLUTE, request::GET_CUR)?;
            Ok((mode, exposure_uvc_to_usec(v.max(0) as u32, pl) as i32))
        }
        ColorControl::WhiteBalance => {
            let auto = ctl.get(uvc::PU_WHITE_BALANCE_TEMPERATURE_AUTO, request::GET_CUR)?;
            let v = ctl.get(uvc::PU_WHITE_BALANCE_TEMPERATURE, request::GET_CUR)?;
            Ok((
                if auto != 0 {
                    ControlMode::Auto
                } else {
                    ControlMode::Manual
                },
                v,
            ))
        }
        c => {
            let u = uvc_control(c).ok_or(ControlError::Refused {
                control: c,
                reason: "deprecated",
            })?;
            Ok((ControlMode::Manual, ctl.get(u, request::GET_CUR)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_exposure_values() {
        assert_eq!(exposure_from_recorder_value(-11), Some(488));
        assert_eq!(exposure_from_recorder_value(1), Some(2_000_000));
        assert_eq!(exposure_from_recorder_value(2), Some(2));
        assert_eq!(exposure_from_recorder_value(200_000), Some(200_000));
        assert_eq!(exposure_from_recorder_value(-12), None);
        assert_eq!(exposure_from_recorder_value(200_001), None);
    }
}
