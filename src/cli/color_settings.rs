//! The colour controls `freek4a record` sets besides k4arecorder's `-e` and `-g`:
//! `--white-balance K|auto`, `--brightness`, `--contrast`, `--saturation`, `--sharpness`,
//! `--powerline 50|60`, `--backlight-compensation`. Values are checked against the range each
//! unit reports before anything starts, set before the cameras start, read back, and stored in
//! the recording as `FREEK4A_COLOR_*` tags.

use crate::cli::args::Exposure;
use crate::device::{ColorControl, ControlMode, Device, DeviceError};

/// White balance: automatic or a colour temperature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhiteBalance {
    /// The camera chooses.
    Auto,
    /// Manual, Kelvin.
    Kelvin(i32),
}

/// The colour controls asked for on the command line (`None`: leave the camera's value).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ColorSettings {
    /// `--white-balance`.
    pub white_balance: Option<WhiteBalance>,
    /// `--brightness`.
    pub brightness: Option<i32>,
    /// `--contrast`.
    pub contrast: Option<i32>,
    /// `--saturation`.
    pub saturation: Option<i32>,
    /// `--sharpness`.
    pub sharpness: Option<i32>,
    /// `--powerline 50|60`, in Hz.
    pub powerline_hz: Option<u32>,
    /// `--backlight-compensation`.
    pub backlight_compensation: Option<bool>,
}

/// Why a colour setting was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ColorSettingError {
    /// A value is outside what the unit reports.
    #[error("{option} {value} is out of range for unit {serial}: it accepts {min} to {max}{step}")]
    OutOfRange {
        /// The option as typed.
        option: &'static str,
        /// The value.
        value: i32,
        /// The unit.
        serial: String,
        /// Smallest value the unit accepts.
        min: i32,
        /// Largest value.
        max: i32,
        /// ", in steps of N" or empty.
        step: String,
    },
    /// The unit failed a control request.
    #[error("{option} on unit {serial}: {source}")]
    Device {
        /// The option.
        option: &'static str,
        /// The unit.
        serial: String,
        /// The device error.
        #[source]
        source: DeviceError,
    },
}

/// The command-line value of an option, parsed.
#[derive(Debug, thiserror::Error)]
#[error("{option}: {message}")]
pub struct ColorOptionError {
    /// The option.
    pub option: String,
    /// What is wrong.
    pub message: String,
}

impl ColorSettings {
    /// The option names this module reads, and whether each takes a value.
    pub const OPTIONS: [(&'static str, bool); 7] = [
        ("--white-balance", true),
        ("--brightness", true),
        ("--contrast", true),
        ("--saturation", true),
        ("--sharpness", true),
        ("--powerline", true),
        ("--backlight-compensation", false),
    ];

    /// Takes one option (`value` is `None` for the flag).
    pub fn set_option(
        &mut self,
        option: &str,
        value: Option<&str>,
    ) -> Result<(), ColorOptionError> {
        let err = |message: String| ColorOptionError {
            option: option.to_string(),
            message,
        };
        let int = |v: Option<&str>| -> Result<i32, ColorOptionError> {
            let v = v.unwrap_or("");
            v.trim()
                .parse::<i32>()
                .map_err(|_| err(format!("`{v}` is not a whole number")))
        };
        match option {
            "--white-balance" => {
                let v = value.unwrap_or("");
                self.white_balance = Some(if v.eq_ignore_ascii_case("auto") {
                    WhiteBalance::Auto
                } else {
                    WhiteBalance::Kelvin(int(value).map_err(|_| {
                        err(format!(
                            "`{v}` is neither `auto` nor a temperature in Kelvin"
                        ))
                    })?)
                });
            }
            "--brightness" => self.brightness = Some(int(value)?),
            "--contrast" => self.contrast = Some(int(value)?),
            "--saturation" => self.saturation = Some(int(value)?),
            "--sharpness" => self.sharpness = Some(int(value)?),
            "--powerline" => {
                self.powerline_hz = Some(match value.map(str::trim) {
                    Some("50") => 50,
                    Some("60") => 60,
                    other => {
                        return Err(err(format!(
                            "`{}` must be 50 or 60 (Hz)",
                            other.unwrap_or("")
                        )))
                    }
                })
            }
            "--backlight-compensation" => self.backlight_compensation = Some(true),
            _ => return Err(err("not a colour option".into())),
        }
        Ok(())
    }

    /// Whether any control was asked for.
    pub fn is_empty(&self) -> bool {
        *self == ColorSettings::default()
    }

    fn manual(&self) -> Vec<(&'static str, ColorControl, i32)> {
        let mut v = Vec::new();
        if let Some(WhiteBalance::Kelvin(k)) = self.white_balance {
            v.push(("--white-balance", ColorControl::WhiteBalance, k));
        }
        for (option, control, value) in [
            ("--brightness", ColorControl::Brightness, self.brightness),
            ("--contrast", ColorControl::Contrast, self.contrast),
            ("--saturation", ColorControl::Saturation, self.saturation),
            ("--sharpness", ColorControl::Sharpness, self.sharpness),
        ] {
            if let Some(value) = value {
                v.push((option, control, value));
            }
        }
        v
    }

    /// Checks every value against the range the unit reports.
    pub fn validate(&self, device: &Device) -> Result<(), ColorSettingError> {
        let serial = device.serial_number().to_string();
        for (option, control, value) in self.manual() {
            let r = device.color_control_range(control).map_err(|source| {
                ColorSettingError::Device {
                    option,
                    serial: serial.clone(),
                    source,
                }
            })?;
            if !r.accepts(value) {
                return Err(ColorSettingError::OutOfRange {
                    option,
                    value,
                    serial,
                    min: r.min,
                    max: r.max,
                    step: if r.step > 1 {
                        format!(", in steps of {}", r.step)
                    } else {
                        String::new()
                    },
                });
            }
        }
        Ok(())
    }

    /// Sets the controls (powerline first: it changes the exposure table), then reads back
    /// every colour control the recording depends on and returns them as file tags. Values
    /// are expected to have passed [`ColorSettings::validate`].
    pub fn apply(
        &self,
        device: &mut Device,
        exposure: Exposure,
        gain: Option<u8>,
    ) -> Result<Vec<(String, String)>, DeviceError> {
        let fail = |_option: &'static str| |e: DeviceError| e;
        if let Some(hz) = self.powerline_hz {
            let v = if hz == 50 { 1 } else { 2 };
            device
                .set_color_control(ColorControl::PowerlineFrequency, ControlMode::Manual, v)
                .map_err(fail("--powerline"))?;
        }
        if self.white_balance == Some(WhiteBalance::Auto) {
            device
                .set_color_control(ColorControl::WhiteBalance, ControlMode::Auto, 0)
                .map_err(fail("--white-balance"))?;
        }
        if let Some(on) = self.backlight_compensation {
            device
                .set_color_control(
                    ColorControl::BacklightCompensation,
                    ControlMode::Manual,
                    i32::from(on),
                )
                .map_err(fail("--backlight-compensation"))?;
        }
        for (option, control, value) in self.manual() {
            device
                .set_color_control(control, ControlMode::Manual, value)
                .map_err(fail(option))?;
        }
        // `-e` and `-g` are set by the recording sequence; setting them here as well puts the
        // same values in place before the read-back.
        let (exposure_mode, exposure_value) = match exposure {
            Exposure::Auto => (ControlMode::Auto, 0),
            Exposure::ManualUsec(us) => {
                (ControlMode::Manual, i32::try_from(us).unwrap_or(i32::MAX))
            }
        };
        device
            .set_color_control(
                ColorControl::ExposureTimeAbsolute,
                exposure_mode,
                exposure_value,
            )
            .map_err(fail("-e"))?;
        if let Some(g) = gain {
            device
                .set_color_control(ColorControl::Gain, ControlMode::Manual, i32::from(g))
                .map_err(fail("-g"))?;
        }
        read_back(device).map_err(fail("reading the colour controls back"))
    }
}

/// The colour controls' current values as `FREEK4A_COLOR_*` tags.
pub fn read_back(device: &Device) -> Result<Vec<(String, String)>, DeviceError> {
    let mut tags = Vec::new();
    let mut put = |name: &str, value: String| tags.push((format!("FREEK4A_COLOR_{name}"), value));
    let (mode, v) = device.get_color_control(ColorControl::ExposureTimeAbsolute)?;
    put(
        "EXPOSURE_USEC",
        match mode {
            ControlMode::Auto => "auto".into(),
            ControlMode::Manual => v.to_string(),
        },
    );
    put(
        "GAIN",
        device.get_color_control(ColorControl::Gain)?.1.to_string(),
    );
    let (mode, v) = device.get_color_control(ColorControl::WhiteBalance)?;
    put(
        "WHITE_BALANCE_K",
        match mode {
            ControlMode::Auto => "auto".into(),
            ControlMode::Manual => v.to_string(),
        },
    );
    for (name, control) in [
        ("BRIGHTNESS", ColorControl::Brightness),
        ("CONTRAST", ColorControl::Contrast),
        ("SATURATION", ColorControl::Saturation),
        ("SHARPNESS", ColorControl::Sharpness),
        (
            "BACKLIGHT_COMPENSATION",
            ColorControl::BacklightCompensation,
        ),
    ] {
        put(name, device.get_color_control(control)?.1.to_string());
    }
    let pl = device
        .get_color_control(ColorControl::PowerlineFrequency)?
        .1;
    put(
        "POWERLINE_HZ",
        match pl {
            1 => "50".into(),
            2 => "60".into(),
            other => format!("off ({other})"),
        },
    );
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_refuse() {
        let mut s = ColorSettings::default();
        assert!(s.is_empty());
        s.set_option("--white-balance", Some("AUTO")).unwrap();
        assert_eq!(s.white_balance, Some(WhiteBalance::Auto));
        s.set_option("--white-balance", Some("4500")).unwrap();
        assert_eq!(s.white_balance, Some(WhiteBalance::Kelvin(4500)));
        s.set_option("--powerline", Some("50")).unwrap();
        s.set_option("--backlight-compensation", None).unwrap();
        assert_eq!(s.powerline_hz, Some(50));
        assert_eq!(s.backlight_compensation, Some(true));
        let e = s.set_option("--powerline", Some("55")).unwrap_err();
        assert_eq!(e.to_string(), "--powerline: `55` must be 50 or 60 (Hz)");
        let e = s.set_option("--brightness", Some("bright")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--brightness: `bright` is not a whole number"
        );
        let e = s.set_option("--white-balance", Some("warm")).unwrap_err();
        assert!(e.to_string().contains("neither `auto`"));
    }
}
