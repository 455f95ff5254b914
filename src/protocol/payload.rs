//! Command payloads: the structures carried in command data or in a data phase (firmware
//! versions, firmware update status, synchronisation configuration, jack state, serial number,
//! NV tags), with both directions so the emulator can answer with the same types the host
//! parses. See `protocol/commands.md`.

use std::fmt;

use thiserror::Error;

use super::wire::{i32_at, u16_at, u32_at, PutLe};
use crate::types::{HardwareVersion, Version, WiredSyncMode};

/// A payload that could not be decoded or does not satisfy the SDK's rules.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PayloadError {
    /// Fewer bytes than the structure needs.
    #[error("{structure}: need {need} bytes, got {got}")]
    Truncated {
        /// Structure being decoded.
        structure: &'static str,
        /// Bytes required.
        need: usize,
        /// Bytes available.
        got: usize,
    },
    /// A length the SDK requires exactly was not met.
    #[error("{structure}: expected exactly {expected} bytes, got {got}")]
    WrongLength {
        /// Structure being decoded.
        structure: &'static str,
        /// Bytes required.
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// A field holds a value outside its range.
    #[error("{structure}: field {field} has invalid value {value}")]
    InvalidValue {
        /// Structure being decoded.
        structure: &'static str,
        /// Field name.
        field: &'static str,
        /// The offending value.
        value: i64,
    },
    /// The serial number has a byte that is not a printable, non-space ASCII character.
    #[error("serial number: byte 0x{byte:02x} at index {index} is not printable")]
    SerialNotPrintable {
        /// The offending byte.
        byte: u8,
        /// Its position.
        index: usize,
    },
    /// The serial number is longer than the 25 characters the SDK's buffer holds.
    #[error("serial number: {len} characters, at most {MAX_SERIAL_LEN} fit")]
    SerialTooLong {
        /// Its length.
        len: usize,
    },
    /// The serial number is empty.
    #[error("serial number: empty")]
    SerialEmpty,
    /// The serial number does not follow the documented 12-digit check-digit rule.
    #[error("serial number {serial:?} fails the 12-digit check-digit rule")]
    SerialCheckDigit {
        /// The serial number checked.
        serial: String,
    },
    /// The calibration JSON filled the whole read buffer, leaving no room for the NUL.
    #[error("calibration data filled the {buffer_len}-byte buffer; a larger buffer is needed")]
    CalibrationBufferFull {
        /// Buffer size that was too small.
        buffer_len: usize,
    },
    /// NV data shorter than 4 bytes (the SDK's "not available or sensor not turned on").
    #[error("Depth calibration data not available or sensor not turned on ({got} bytes)")]
    NvDataTooShort {
        /// Bytes received.
        got: usize,
    },
}

fn need(structure: &'static str, bytes: &[u8], n: usize) -> Result<(), PayloadError> {
    if bytes.len() < n {
        return Err(PayloadError::Truncated {
            structure,
            need: n,
            got: bytes.len(),
        });
    }
    Ok(())
}

fn exact(structure: &'static str, bytes: &[u8], n: usize) -> Result<(), PayloadError> {
    if bytes.len() != n {
        return Err(PayloadError::WrongLength {
            structure,
            expected: n,
            got: bytes.len(),
        });
    }
    Ok(())
}

/// The 18-byte COMPONENT_VERSION_GET result, field for field as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FirmwareVersions {
    /// Colour firmware (major, minor, build).
    pub rgb: (u8, u8, u16),
    /// Depth firmware (major, minor, build).
    pub depth: (u8, u8, u16),
    /// Audio firmware (major, minor, build).
    pub audio: (u8, u8, u16),
    /// Depth sensor configuration (major, minor).
    pub depth_sensor_cfg: (u16, u16),
    /// 0 release, 1 debug; other values count as debug.
    pub build_config: u8,
    /// 0 Microsoft, 1 test, 2 unsigned; other values count as unsigned.
    pub signature_type: u8,
}

impl FirmwareVersions {
    /// Size on the wire.
    pub const LEN: usize = 18;

    /// Decodes the data phase. The SDK's readiness probe needs at least 18 bytes; extra bytes
    /// are ignored.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        need("firmware versions", bytes, Self::LEN)?;
        Ok(FirmwareVersions {
            rgb: (bytes[0], bytes[1], u16_at(bytes, 2)),
            depth: (bytes[4], bytes[5], u16_at(bytes, 6)),
            audio: (bytes[8], bytes[9], u16_at(bytes, 10)),
            depth_sensor_cfg: (u16_at(bytes, 12), u16_at(bytes, 14)),
            build_config: bytes[16],
            signature_type: bytes[17],
        })
    }

    /// Encodes the 18 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::LEN);
        for (maj, min, build) in [self.rgb, self.depth, self.audio] {
            v.put_u8(maj);
            v.put_u8(min);
            v.put_u16(build);
        }
        v.put_u16(self.depth_sensor_cfg.0);
        v.put_u16(self.depth_sensor_cfg.1);
        v.put_u8(self.build_config);
        v.put_u8(self.signature_type);
        v
    }

    /// The SDK's view: unknown build configurations become debug, unknown signatures unsigned.
    pub fn to_hardware_version(&self) -> HardwareVersion {
        let v = |(a, b, c): (u8, u8, u16)| Version {
            major: a.into(),
            minor: b.into(),
            iteration: c.into(),
        };
        HardwareVersion {
            rgb: v(self.rgb),
            depth: v(self.depth),
            audio: v(self.audio),
            depth_sensor: Version {
                major: self.depth_sensor_cfg.0.into(),
                minor: self.depth_sensor_cfg.1.into(),
                iteration: 0,
            },
            release_build: self.build_config == 0,
            signature_type: self.signature_type.min(2),
        }
    }

    /// The wire form of a [`HardwareVersion`]; fields wider than the wire are truncated.
    pub fn from_hardware_version(hw: &HardwareVersion) -> Self {
        let v = |x: Version| (x.major as u8, x.minor as u8, x.iteration as u16);
        FirmwareVersions {
            rgb: v(hw.rgb),
            depth: v(hw.depth),
            audio: v(hw.audio),
            depth_sensor_cfg: (hw.depth_sensor.major as u16, hw.depth_sensor.minor as u16),
            build_config: if hw.release_build { 0 } else { 1 },
            signature_type: hw.signature_type,
        }
    }
}

/// The firmware component a version check names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirmwareComponent {
    /// Colour camera firmware.
    Rgb,
    /// Depth camera firmware.
    Depth,
    /// Microphone array firmware.
    Audio,
    /// Depth sensor configuration.
    DepthConfig,
}

impl FirmwareComponent {
    /// The name the SDK prints.
    pub fn sdk_name(self) -> &'static str {
        match self {
            FirmwareComponent::Rgb => "RGB",
            FirmwareComponent::Depth => "Depth",
            FirmwareComponent::Audio => "Audio",
            FirmwareComponent::DepthConfig => "Depth Config",
        }
    }
}

const fn ver(major: u32, minor: u32, iteration: u32) -> Version {
    Version {
        major,
        minor,
        iteration,
    }
}

/// Minimum firmware versions below which the SDK refuses to open the device.
pub const MINIMUM_FIRMWARE: [(FirmwareComponent, Version); 4] = [
    (FirmwareComponent::Rgb, ver(1, 5, 92)),
    (FirmwareComponent::Depth, ver(1, 5, 66)),
    (FirmwareComponent::Audio, ver(1, 5, 14)),
    (FirmwareComponent::DepthConfig, ver(5006, 27, 0)),
];

/// Suggested firmware versions below which the SDK warns.
pub const SUGGESTED_FIRMWARE: [(FirmwareComponent, Version); 4] = [
    (FirmwareComponent::Rgb, ver(1, 6, 110)),
    (FirmwareComponent::Depth, ver(1, 6, 79)),
    (FirmwareComponent::Audio, ver(1, 6, 14)),
    (FirmwareComponent::DepthConfig, ver(6109, 7, 0)),
];

fn component_version(hw: &HardwareVersion, c: FirmwareComponent) -> Version {
    match c {
        FirmwareComponent::Rgb => hw.rgb,
        FirmwareComponent::Depth => hw.depth,
        FirmwareComponent::Audio => hw.audio,
        FirmwareComponent::DepthConfig => hw.depth_sensor,
    }
}

/// A component whose firmware is older than a required or suggested version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("Firmware version for {} is {found} is not current enough. Use {required} or newer.", .component.sdk_name())]
pub struct FirmwareTooOld {
    /// Which component.
    pub component: FirmwareComponent,
    /// Its version.
    pub found: Version,
    /// The version it should have.
    pub required: Version,
}

fn first_older(
    hw: &HardwareVersion,
    table: &[(FirmwareComponent, Version); 4],
) -> Vec<FirmwareTooOld> {
    table
        .iter()
        .filter_map(|&(component, required)| {
            let found = component_version(hw, component);
            // Version's Ord compares major, minor, iteration in that order, like the SDK.
            (found < required).then_some(FirmwareTooOld {
                component,
                found,
                required,
            })
        })
        .collect()
}

/// The SDK's open-time check: the first component (RGB, Depth, Audio, Depth Config order)
/// below its minimum version fails the open with the SDK's message.
pub fn check_minimum_firmware(hw: &HardwareVersion) -> Result<(), FirmwareTooOld> {
    match first_older(hw, &MINIMUM_FIRMWARE).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Components below the suggested version (the SDK only warns, "Consider upgrading to …").
pub fn below_suggested_firmware(hw: &HardwareVersion) -> Vec<FirmwareTooOld> {
    first_older(hw, &SUGGESTED_FIRMWARE)
}

/// Outcome of one 2-bit step in the firmware update status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateStep {
    /// 0: not finished.
    InProgress,
    /// 1: failed.
    Failed,
    /// 2: not defined by the SDK.
    Unknown,
    /// 3: succeeded.
    Succeeded,
}

impl UpdateStep {
    fn from_bits(b: u16) -> Self {
        match b & 3 {
            0 => UpdateStep::InProgress,
            1 => UpdateStep::Failed,
            2 => UpdateStep::Unknown,
            _ => UpdateStep::Succeeded,
        }
    }
}

/// Update status of one component: a raw u16 whose 2-bit fields are the steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ComponentUpdateStatus(pub u16);

impl ComponentUpdateStatus {
    /// Bits 1:0.
    pub fn version_check(self) -> UpdateStep {
        UpdateStep::from_bits(self.0)
    }
    /// Bits 3:2.
    pub fn authentication_check(self) -> UpdateStep {
        UpdateStep::from_bits(self.0 >> 2)
    }
    /// Bits 5:4.
    pub fn image_transfer(self) -> UpdateStep {
        UpdateStep::from_bits(self.0 >> 4)
    }
    /// Bits 7:6.
    pub fn flash_erase(self) -> UpdateStep {
        UpdateStep::from_bits(self.0 >> 6)
    }
    /// Bits 9:8.
    pub fn flash_write(self) -> UpdateStep {
        UpdateStep::from_bits(self.0 >> 8)
    }
    /// Bits 15:14.
    pub fn overall(self) -> UpdateStep {
        UpdateStep::from_bits(self.0 >> 14)
    }
    /// A status with every step set to `step` (bits 13:10 zero).
    pub fn all(step: UpdateStep) -> Self {
        let b = match step {
            UpdateStep::InProgress => 0,
            UpdateStep::Failed => 1,
            UpdateStep::Unknown => 2,
            UpdateStep::Succeeded => 3,
        };
        ComponentUpdateStatus(b | b << 2 | b << 4 | b << 6 | b << 8 | b << 14)
    }
}

/// The 8-byte GET_FIRMWARE_UPDATE_STATUS result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FirmwareUpdateStatus {
    /// Depth firmware.
    pub depth: ComponentUpdateStatus,
    /// Colour firmware.
    pub rgb: ComponentUpdateStatus,
    /// Audio firmware.
    pub audio: ComponentUpdateStatus,
    /// Depth sensor configuration.
    pub depth_configure: ComponentUpdateStatus,
}

impl FirmwareUpdateStatus {
    /// Size on the wire.
    pub const LEN: usize = 8;

    /// Decodes at least 8 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        need("firmware update status", bytes, Self::LEN)?;
        Ok(FirmwareUpdateStatus {
            depth: ComponentUpdateStatus(u16_at(bytes, 0)),
            rgb: ComponentUpdateStatus(u16_at(bytes, 2)),
            audio: ComponentUpdateStatus(u16_at(bytes, 4)),
            depth_configure: ComponentUpdateStatus(u16_at(bytes, 6)),
        })
    }

    /// Encodes the 8 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::LEN);
        for s in [self.depth, self.rgb, self.audio, self.depth_configure] {
            v.put_u16(s.0);
        }
        v
    }
}

/// The 2-byte DOWNLOAD_FIRMWARE command data (legacy; the firmware ignores it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirmwarePackageInfo {
    /// Always 1 from the SDK.
    pub last_package: u8,
    /// Package size truncated to 8 bits.
    pub package_size: u8,
}

impl FirmwarePackageInfo {
    /// Size on the wire.
    pub const LEN: usize = 2;

    /// What the SDK sends for a package of `len` bytes.
    pub fn for_package_len(len: usize) -> Self {
        FirmwarePackageInfo {
            last_package: 1,
            package_size: len as u8,
        }
    }

    /// Decodes exactly 2 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        exact("firmware package info", bytes, Self::LEN)?;
        Ok(FirmwarePackageInfo {
            last_package: bytes[0],
            package_size: bytes[1],
        })
    }

    /// Encodes the 2 bytes.
    pub fn encode(&self) -> Vec<u8> {
        vec![self.last_package, self.package_size]
    }
}

/// The 13-byte SET_SYS_CFG command data (synchronisation configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncConfig {
    /// Wired sync role (wire value 0, 1, 2).
    pub mode: WiredSyncMode,
    /// Subordinate delay, 90 kHz ticks.
    pub subordinate_delay_off_master_ticks: u32,
    /// Depth delay relative to colour, 90 kHz ticks (signed).
    pub depth_delay_off_color_ticks: i32,
    /// Privacy (streaming) LED on.
    pub enable_privacy_led: bool,
}

impl SyncConfig {
    /// Size on the wire.
    pub const LEN: usize = 13;

    /// What the SDK sends for a configuration given in microseconds: `usec × 9 / 100` with
    /// C truncation (toward zero for the signed depth delay).
    pub fn from_usec(
        mode: WiredSyncMode,
        subordinate_delay_off_master_usec: u32,
        depth_delay_off_color_usec: i32,
        disable_streaming_indicator: bool,
    ) -> Self {
        SyncConfig {
            mode,
            subordinate_delay_off_master_ticks: subordinate_delay_off_master_usec.wrapping_mul(9)
                / 100,
            // Rust's `/` truncates toward zero like C.
            depth_delay_off_color_ticks: depth_delay_off_color_usec.wrapping_mul(9) / 100,
            enable_privacy_led: !disable_streaming_indicator,
        }
    }

    /// The subordinate delay converted back, `ticks × 100 / 9` truncated.
    pub fn subordinate_delay_off_master_usec(&self) -> u32 {
        (u64::from(self.subordinate_delay_off_master_ticks) * 100 / 9) as u32
    }

    /// The depth delay converted back, `ticks × 100 / 9` truncated toward zero.
    pub fn depth_delay_off_color_usec(&self) -> i32 {
        (i64::from(self.depth_delay_off_color_ticks) * 100 / 9) as i32
    }

    /// Decodes exactly 13 bytes; the mode must be 0, 1 or 2.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        exact("sync config", bytes, Self::LEN)?;
        let mode = match u32_at(bytes, 0) {
            0 => WiredSyncMode::Standalone,
            1 => WiredSyncMode::Master,
            2 => WiredSyncMode::Subordinate,
            m => {
                return Err(PayloadError::InvalidValue {
                    structure: "sync config",
                    field: "mode",
                    value: m.into(),
                })
            }
        };
        Ok(SyncConfig {
            mode,
            subordinate_delay_off_master_ticks: u32_at(bytes, 4),
            depth_delay_off_color_ticks: i32_at(bytes, 8),
            enable_privacy_led: bytes[12] != 0,
        })
    }

    /// Encodes the 13 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::LEN);
        v.put_u32(self.mode.sdk_value());
        v.put_u32(self.subordinate_delay_off_master_ticks);
        v.put_i32(self.depth_delay_off_color_ticks);
        v.put_u8(u8::from(self.enable_privacy_led));
        v
    }
}

/// The 1-byte GET_JACK_STATE result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct JackState {
    /// A cable is plugged into sync-in (bit 0).
    pub sync_in_connected: bool,
    /// A cable is plugged into sync-out (bit 1).
    pub sync_out_connected: bool,
}

impl JackState {
    /// Size on the wire.
    pub const LEN: usize = 1;

    /// Decodes; the SDK requires exactly 1 byte.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        exact("jack state", bytes, Self::LEN)?;
        Ok(JackState {
            sync_in_connected: bytes[0] & 1 != 0,
            sync_out_connected: bytes[0] & 2 != 0,
        })
    }

    /// Encodes the byte.
    pub fn encode(&self) -> Vec<u8> {
        vec![u8::from(self.sync_in_connected) | u8::from(self.sync_out_connected) << 1]
    }
}

/// Longest serial number the SDK's 26-byte buffer holds (plus NUL).
pub const MAX_SERIAL_LEN: usize = 25;

/// A product serial number that passed the SDK's checks (printable, no spaces, ≤ 25 chars).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SerialNumber(String);

impl SerialNumber {
    /// Validates a serial string with the SDK's rules: every byte ASCII and `isgraph`, at most
    /// 25 characters. Emptiness is refused too (our rule: an empty serial cannot match the
    /// colour device's iSerialNumber).
    pub fn new(s: &str) -> Result<Self, PayloadError> {
        Self::from_bytes(s.as_bytes())
    }

    fn from_bytes(b: &[u8]) -> Result<Self, PayloadError> {
        if let Some((index, &byte)) = b.iter().enumerate().find(|(_, c)| !c.is_ascii_graphic()) {
            return Err(PayloadError::SerialNotPrintable { byte, index });
        }
        if b.is_empty() {
            return Err(PayloadError::SerialEmpty);
        }
        if b.len() > MAX_SERIAL_LEN {
            return Err(PayloadError::SerialTooLong { len: b.len() });
        }
        // All bytes are ASCII graphic, so this is valid UTF-8.
        Ok(SerialNumber(b.iter().map(|&c| c as char).collect()))
    }

    /// Parses the READ_PRODUCT_SN data phase: truncated at the first NUL, then validated.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let end = bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len());
        Self::from_bytes(&bytes[..end])
    }

    /// The data phase the device sends: the ASCII characters followed by one NUL.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.0.as_bytes().to_vec();
        v.push(0);
        v
    }

    /// The serial as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The documented format check (`depth_ft.cpp`): exactly 12 ASCII digits, and digit 7
    /// (1-based) equals `7 − (sum of digits 1–6 mod 7)`. The SDK's own test never enforces
    /// it, so this is a separate check.
    pub fn check_digit_valid(&self) -> Result<(), PayloadError> {
        let b = self.0.as_bytes();
        let fail = || PayloadError::SerialCheckDigit {
            serial: self.0.clone(),
        };
        if b.len() != 12 || !b.iter().all(u8::is_ascii_digit) {
            return Err(fail());
        }
        let sum: u32 = b[..6].iter().map(|&c| u32::from(c - b'0')).sum();
        let expected = 7 - sum % 7;
        if u32::from(b[6] - b'0') != expected {
            return Err(fail());
        }
        Ok(())
    }
}

impl fmt::Display for SerialNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Tags for NV_DATA_GET (`DEV_CMD_NV_TAG`); the SDK reads only
/// [`NvTag::IrSensorCalibration`].
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NvTag {
    NoData,
    SerialNumber,
    /// Also called IR_P0_CORRECTION: the depth engine's calibration block ("CCB").
    IrSensorCalibration,
    IrLenseDistortionCorrection,
    IrRgbIrRegistrationCorrection,
    AudioMicrophoneBarEq,
    LaserPower,
    Deprecated1,
    Deprecated2,
    Accelerometer,
    EnableShutdown,
    IrDacValues,
    AudioMicrophoneBarEqMs,
    IrShutterGainValues,
    HomeCalibration,
    IrP0HwCorrection,
    IrColumnGainArray,
    WovGrammarAndModel,
    Deprecated3,
    UsbTub,
    TraceEnableDefault,
    TraceControl,
    ProductType,
    ProductConfiguration,
    IrLighthouseDacValues,
    IrSensorPropertyBlock,
    IrMalkaEepromPropertyBlock,
    IrMalkaEepromCalDataBlock,
    IrMaccabiEepromPropertyBlock,
    IrMaccabiEepromCalDataBlock,
}

const NV_TAGS: [(u32, NvTag, &str); 30] = [
    (0, NvTag::NoData, "NO_DATA"),
    (1, NvTag::SerialNumber, "SERIAL_NUMBER"),
    (2, NvTag::IrSensorCalibration, "IR_SENSOR_CALIBRATION"),
    (
        3,
        NvTag::IrLenseDistortionCorrection,
        "IR_LENSE_DISTORTION_CORRECTION",
    ),
    (
        4,
        NvTag::IrRgbIrRegistrationCorrection,
        "IR_RGB_IR_REGISTRATION_CORRECTION",
    ),
    (5, NvTag::AudioMicrophoneBarEq, "AUDIO_MICROPHONE_BAR_EQ"),
    (6, NvTag::LaserPower, "LASER_POWER"),
    (8, NvTag::Deprecated1, "DEPRECATED_1"),
    (9, NvTag::Deprecated2, "DEPRECATED_2"),
    (10, NvTag::Accelerometer, "ACCELEROMETER"),
    (11, NvTag::EnableShutdown, "ENABLE_SHUTDOWN"),
    (12, NvTag::IrDacValues, "IR_DAC_VALUES"),
    (
        13,
        NvTag::AudioMicrophoneBarEqMs,
        "AUDIO_MICROPHONE_BAR_EQ_MS",
    ),
    (14, NvTag::IrShutterGainValues, "IR_SHUTTERGAIN_VALUES"),
    (15, NvTag::HomeCalibration, "HOME_CALIBRATION"),
    (16, NvTag::IrP0HwCorrection, "IR_P0_HW_CORRECTION"),
    (17, NvTag::IrColumnGainArray, "IR_COLUMN_GAIN_ARRAY"),
    (18, NvTag::WovGrammarAndModel, "WOV_GRAMMAR_AND_MODEL"),
    (19, NvTag::Deprecated3, "DEPRECATED_3"),
    (20, NvTag::UsbTub, "USB_TUB"),
    (21, NvTag::TraceEnableDefault, "TRACE_ENABLE_DEFAULT"),
    (22, NvTag::TraceControl, "TRACE_CONTROL"),
    (23, NvTag::ProductType, "PRODUCT_TYPE"),
    (24, NvTag::ProductConfiguration, "PRODUCT_CONFIGURATION"),
    (25, NvTag::IrLighthouseDacValues, "IR_LIGHTHOUSE_DAC_VALUES"),
    (30, NvTag::IrSensorPropertyBlock, "IR_SENSOR_PROPERTY_BLOCK"),
    (
        31,
        NvTag::IrMalkaEepromPropertyBlock,
        "IR_MALKA_EEPROM_PROPERTY_BLOCK",
    ),
    (
        32,
        NvTag::IrMalkaEepromCalDataBlock,
        "IR_MALKA_EEPROM_CAL_DATA_BLOCK",
    ),
    (
        33,
        NvTag::IrMaccabiEepromPropertyBlock,
        "IR_MACCABI_EEPROM_PROPERTY_BLOCK",
    ),
    (
        34,
        NvTag::IrMaccabiEepromCalDataBlock,
        "IR_MACCABI_EEPROM_CAL_DATA_BLOCK",
    ),
];

impl NvTag {
    /// The wire value.
    pub fn value(self) -> u32 {
        NV_TAGS
            .iter()
            .find(|(_, t, _)| *t == self)
            .map_or(0, |(v, _, _)| *v)
    }

    /// The tag for a wire value, if it is defined.
    pub fn from_value(v: u32) -> Option<NvTag> {
        NV_TAGS.iter().find(|(n, _, _)| *n == v).map(|(_, t, _)| *t)
    }

    /// The SDK's name without prefix (`IR_SENSOR_CALIBRATION`).
    pub fn name(self) -> &'static str {
        NV_TAGS
            .iter()
            .find(|(_, t, _)| *t == self)
            .map_or("?", |(_, _, n)| n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const VERSIONS: [u8; 18] = [
        1, 6, 0x6e, 0x00,     // rgb 1.6.110
        1, 6, 0x4f, 0x00,     // depth 1.6.79
        1, 6, 0x0e, 0x00,     // audio 1.6.14
        0xdd, 0x17, 0x07, 0x00, // depth sensor cfg 6109.7
        0,                    // build config: release
        0,                    // signature: MSFT
    ];

    #[test]
    fn firmware_versions_round_trip() {
        let v = FirmwareVersions::decode(&VERSIONS).unwrap();
        assert_eq!(v.rgb, (1, 6, 110));
        assert_eq!(v.depth, (1, 6, 79));
        assert_eq!(v.audio, (1, 6, 14));
        assert_eq!(v.depth_sensor_cfg, (6109, 7));
        assert_eq!(v.encode(), VERSIONS);
        let hw = v.to_hardware_version();
        assert_eq!(hw.depth.to_string(), "1.6.79");
        assert!(hw.release_build);
        assert_eq!(FirmwareVersions::from_hardware_version(&hw), v);
        assert!(check_minimum_firmware(&hw).is_ok());
        assert!(below_suggested_firmware(&hw).is_empty());
    }

    #[test]
    fn firmware_versions_short_and_odd_values() {
        assert_eq!(
            FirmwareVersions::decode(&VERSIONS[..17]),
            Err(PayloadError::Truncated {
                structure: "firmware versions",
                need: 18,
                got: 17
            })
        );
        let mut odd = VERSIONS;
        odd[16] = 7;
        odd[17] = 9;
        let hw = FirmwareVersions::decode(&odd)
            .unwrap()
            .to_hardware_version();
        assert!(!hw.release_build);
        assert_eq!(hw.signature_type, 2);
    }

    #[test]
    fn minimum_version_message() {
        let mut hw = FirmwareVersions::decode(&VERSIONS)
            .unwrap()
            .to_hardware_version();
        hw.depth = Version {
            major: 1,
            minor: 5,
            iteration: 65,
        };
        let e = check_minimum_firmware(&hw).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Firmware version for Depth is 1.5.65 is not current enough. Use 1.5.66 or newer."
        );
        hw.depth_sensor = Version {
            major: 5006,
            minor: 26,
            iteration: 0,
        };
        hw.depth = Version {
            major: 1,
            minor: 5,
            iteration: 66,
        };
        assert_eq!(
            check_minimum_firmware(&hw).unwrap_err().to_string(),
            "Firmware version for Depth Config is 5006.26.0 is not current enough. Use 5006.27.0 or newer."
        );
        assert_eq!(below_suggested_firmware(&hw).len(), 2);
    }

    #[rustfmt::skip]
    const SYNC: [u8; 13] = [
        0x02, 0, 0, 0,           // mode: subordinate
        0x5a, 0, 0, 0,           // subordinate delay: 90 ticks (1000 µs)
        0xf7, 0xff, 0xff, 0xff,  // depth delay: -9 ticks (-100 µs)
        0x00,                    // privacy LED off
    ];

    #[test]
    fn sync_config_round_trip() {
        let c = SyncConfig::decode(&SYNC).unwrap();
        assert_eq!(
            c,
            SyncConfig::from_usec(WiredSyncMode::Subordinate, 1000, -100, true)
        );
        assert_eq!(c.encode(), SYNC);
        assert_eq!(c.subordinate_delay_off_master_usec(), 1000);
        assert_eq!(c.depth_delay_off_color_usec(), -100);
    }

    #[test]
    fn sync_config_truncates_toward_zero() {
        let c = SyncConfig::from_usec(WiredSyncMode::Standalone, 33333, -33333, false);
        assert_eq!(c.subordinate_delay_off_master_ticks, 2999);
        assert_eq!(c.depth_delay_off_color_ticks, -2999);
        assert_eq!(
            SyncConfig::from_usec(WiredSyncMode::Master, 11, -11, false)
                .depth_delay_off_color_ticks,
            0
        );
        assert!(c.enable_privacy_led);
    }

    #[test]
    fn sync_config_malformed() {
        assert!(matches!(
            SyncConfig::decode(&SYNC[..12]),
            Err(PayloadError::WrongLength { .. })
        ));
        let mut bad = SYNC;
        bad[0] = 3;
        assert_eq!(
            SyncConfig::decode(&bad),
            Err(PayloadError::InvalidValue {
                structure: "sync config",
                field: "mode",
                value: 3
            })
        );
    }

    #[test]
    fn update_status_round_trip() {
        #[rustfmt::skip]
        let bytes = [
            0xff, 0xc3, // depth: all succeeded (bits 13:10 clear)
            0x01, 0x00, // rgb: version check failed
            0x00, 0x00, // audio: in progress
            0x0c, 0x00, // depth config: authentication succeeded
        ];
        let s = FirmwareUpdateStatus::decode(&bytes).unwrap();
        assert_eq!(s.depth, ComponentUpdateStatus::all(UpdateStep::Succeeded));
        assert_eq!(s.rgb.version_check(), UpdateStep::Failed);
        assert_eq!(s.audio.overall(), UpdateStep::InProgress);
        assert_eq!(
            s.depth_configure.authentication_check(),
            UpdateStep::Succeeded
        );
        assert_eq!(s.encode(), bytes);
        assert!(FirmwareUpdateStatus::decode(&bytes[..7]).is_err());
    }

    #[test]
    fn jack_state() {
        let j = JackState::decode(&[0b10]).unwrap();
        assert!(!j.sync_in_connected && j.sync_out_connected);
        assert_eq!(j.encode(), [0b10]);
        assert!(JackState::decode(&[]).is_err());
        assert!(JackState::decode(&[1, 0]).is_err());
    }

    #[test]
    fn package_info() {
        let p = FirmwarePackageInfo::for_package_len(0x1_2345);
        assert_eq!(p.encode(), [1, 0x45]);
        assert_eq!(FirmwarePackageInfo::decode(&[1, 0x45]).unwrap(), p);
        assert!(FirmwarePackageInfo::decode(&[1]).is_err());
    }

    #[test]
    fn serial_number_rules() {
        let s = SerialNumber::decode(b"000019484312\0garbage").unwrap();
        assert_eq!(s.as_str(), "000019484312");
        assert_eq!(s.encode(), b"000019484312\0");
        assert!(s.check_digit_valid().is_ok());
        assert!(SerialNumber::new("001514394512")
            .unwrap()
            .check_digit_valid()
            .is_ok());
        assert!(SerialNumber::new("000019584312")
            .unwrap()
            .check_digit_valid()
            .is_err());
        assert!(SerialNumber::new("ABC")
            .unwrap()
            .check_digit_valid()
            .is_err());
        assert_eq!(
            SerialNumber::decode(b"0001 2"),
            Err(PayloadError::SerialNotPrintable {
                byte: b' ',
                index: 4
            })
        );
        assert_eq!(
            SerialNumber::decode(&[b'1', 0x81]),
            Err(PayloadError::SerialNotPrintable {
                byte: 0x81,
                index: 1
            })
        );
        assert_eq!(
            SerialNumber::new(&"1".repeat(26)),
            Err(PayloadError::SerialTooLong { len: 26 })
        );
        assert!(SerialNumber::new(&"1".repeat(25)).is_ok());
        assert_eq!(SerialNumber::decode(b"\0"), Err(PayloadError::SerialEmpty));
    }

    #[test]
    fn nv_tags() {
        assert_eq!(NvTag::IrSensorCalibration.value(), 2);
        assert_eq!(
            NvTag::from_value(34),
            Some(NvTag::IrMaccabiEepromCalDataBlock)
        );
        assert_eq!(NvTag::from_value(7), None);
        assert_eq!(NvTag::from_value(8).map(NvTag::name), Some("DEPRECATED_1"));
        for (v, t, _) in NV_TAGS {
            assert_eq!(NvTag::from_value(v), Some(t));
            assert_eq!(t.value(), v);
        }
    }
}
