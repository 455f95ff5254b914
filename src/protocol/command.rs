//! The "usbcommand" framing shared by the depth MCU and the colour MCU: a 20-byte command
//! header plus up to 128 bytes of command data, an optional data phase, and a 16-byte status
//! packet. Commands are types ([`Command`]) that know their code, their command data, their
//! data phase and how to parse their response.
//!
//! The host side drives a [`HostTransaction`]; the device side (the emulator) feeds each OUT
//! transfer to [`parse_command_packet`] and answers with a [`StatusPacket`].
//! See `protocol/commands.md`.

use std::fmt;

use thiserror::Error;

use super::payload::{
    FirmwarePackageInfo, FirmwareUpdateStatus, FirmwareVersions, JackState, NvTag, PayloadError,
    SerialNumber, SyncConfig,
};
use super::wire::{u32_at, PutLe};
use crate::types::Fps;

/// `packet_type` of every command packet (host to device).
#[doc(alias = "USB_CMD_PACKET_TYPE")]
pub const COMMAND_PACKET_TYPE: u32 = 0x0602_2009;
/// `packet_type` of every status packet (device to host).
#[doc(alias = "USB_CMD_PACKET_TYPE_RESPONSE")]
pub const STATUS_PACKET_TYPE: u32 = 0x0A6F_E000;
/// Length of the command header.
pub const COMMAND_HEADER_LEN: usize = 20;
/// Length of the status packet.
pub const STATUS_PACKET_LEN: usize = 16;
/// Most command data bytes one command may carry.
#[doc(alias = "USB_MAX_TX_DATA")]
pub const MAX_COMMAND_DATA_LEN: usize = 128;
/// Per-phase timeout the SDK uses, in milliseconds (for the transport, not used here).
pub const COMMAND_TIMEOUT_MS: u32 = 2000;

/// Which microcontroller a command is addressed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mcu {
    /// Depth MCU: PID 0x097C, interface 0, OUT 0x02, IN 0x81.
    Depth,
    /// Colour/IMU MCU: PID 0x097D, interface 2, OUT 0x04, IN 0x83.
    Color,
}

/// Every command code the SDK defines, for both MCUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandCode {
    /// 0x00000000 `DEV_CMD_RESET` (depth MCU).
    DepthReset,
    /// 0x00000002 `DEV_CMD_VERSION_GET` (defined, unused).
    VersionGet,
    /// 0x00000009 `DEV_CMD_DEPTH_START`.
    DepthStart,
    /// 0x0000000A `DEV_CMD_DEPTH_STOP`.
    DepthStop,
    /// 0x00000022 `DEV_CMD_NV_DATA_GET`.
    NvDataGet,
    /// 0x000000E1 `DEV_CMD_DEPTH_MODE_SET`.
    DepthModeSet,
    /// 0x000000EF `DEV_CMD_DEPTH_POWER_OFF`.
    DepthPowerOff,
    /// 0x000000F0 `DEV_CMD_DEPTH_POWER_ON`.
    DepthPowerOn,
    /// 0x000000F1 `DEV_CMD_DEPTH_STREAM_START`.
    DepthStreamStart,
    /// 0x000000F2 `DEV_CMD_DEPTH_STREAM_STOP`.
    DepthStreamStop,
    /// 0x00000103 `DEV_CMD_DEPTH_FPS_SET`.
    DepthFpsSet,
    /// 0x00000111 `DEV_CMD_DEPTH_READ_CALIBRATION_DATA`.
    ReadCalibrationData,
    /// 0x00000115 `DEV_CMD_DEPTH_READ_PRODUCT_SN`.
    ReadProductSerial,
    /// 0x00000201 `DEV_CMD_COMPONENT_VERSION_GET`.
    ComponentVersionGet,
    /// 0x00000202 `DEV_CMD_DOWNLOAD_FIRMWARE`.
    DownloadFirmware,
    /// 0x00000203 `DEV_CMD_GET_FIRMWARE_UPDATE_STATUS`.
    GetFirmwareUpdateStatus,
    /// 0x80000000 `DEV_CMD_RESET` (colour MCU).
    ColorReset,
    /// 0x80000001 `DEV_CMD_SET_SYS_CFG`.
    SetSysCfg,
    /// 0x80000002 `DEV_CMD_GET_SYS_CFG` (defined, unused).
    GetSysCfg,
    /// 0x80000003 `DEV_CMD_IMU_STREAM_START`.
    ImuStreamStart,
    /// 0x80000004 `DEV_CMD_IMU_STREAM_STOP`.
    ImuStreamStop,
    /// 0x80000006 `DEV_CMD_GET_JACK_STATE`.
    GetJackState,
}

const CODES: [(CommandCode, u32, &str); 22] = [
    (CommandCode::DepthReset, 0x0000_0000, "RESET"),
    (CommandCode::VersionGet, 0x0000_0002, "VERSION_GET"),
    (CommandCode::DepthStart, 0x0000_0009, "DEPTH_START"),
    (CommandCode::DepthStop, 0x0000_000A, "DEPTH_STOP"),
    (CommandCode::NvDataGet, 0x0000_0022, "NV_DATA_GET"),
    (CommandCode::DepthModeSet, 0x0000_00E1, "DEPTH_MODE_SET"),
    (CommandCode::DepthPowerOff, 0x0000_00EF, "DEPTH_POWER_OFF"),
    (CommandCode::DepthPowerOn, 0x0000_00F0, "DEPTH_POWER_ON"),
    (
        CommandCode::DepthStreamStart,
        0x0000_00F1,
        "DEPTH_STREAM_START",
    ),
    (
        CommandCode::DepthStreamStop,
        0x0000_00F2,
        "DEPTH_STREAM_STOP",
    ),
    (CommandCode::DepthFpsSet, 0x0000_0103, "DEPTH_FPS_SET"),
    (
        CommandCode::ReadCalibrationData,
        0x0000_0111,
        "DEPTH_READ_CALIBRATION_DATA",
    ),
    (
        CommandCode::ReadProductSerial,
        0x0000_0115,
        "DEPTH_READ_PRODUCT_SN",
    ),
    (
        CommandCode::ComponentVersionGet,
        0x0000_0201,
        "COMPONENT_VERSION_GET",
    ),
    (
        CommandCode::DownloadFirmware,
        0x0000_0202,
        "DOWNLOAD_FIRMWARE",
    ),
    (
        CommandCode::GetFirmwareUpdateStatus,
        0x0000_0203,
        "GET_FIRMWARE_UPDATE_STATUS",
    ),
    (CommandCode::ColorReset, 0x8000_0000, "RESET"),
    (CommandCode::SetSysCfg, 0x8000_0001, "SET_SYS_CFG"),
    (CommandCode::GetSysCfg, 0x8000_0002, "GET_SYS_CFG"),
    (CommandCode::ImuStreamStart, 0x8000_0003, "IMU_STREAM_START"),
    (CommandCode::ImuStreamStop, 0x8000_0004, "IMU_STREAM_STOP"),
    (CommandCode::GetJackState, 0x8000_0006, "GET_JACK_STATE"),
];

impl CommandCode {
    /// The 32-bit code on the wire.
    pub fn value(self) -> u32 {
        CODES.iter().find(|c| c.0 == self).map_or(0, |c| c.1)
    }

    /// The command for a code on a given MCU (colour codes have bit 31 set).
    pub fn from_value(mcu: Mcu, value: u32) -> Option<CommandCode> {
        let code = CODES.iter().find(|c| c.1 == value)?.0;
        (code.mcu() == mcu).then_some(code)
    }

    /// The MCU that implements this command.
    pub fn mcu(self) -> Mcu {
        if self.value() & 0x8000_0000 != 0 {
            Mcu::Color
        } else {
            Mcu::Depth
        }
    }

    /// The SDK's name without the `DEV_CMD_` prefix.
    pub fn name(self) -> &'static str {
        CODES.iter().find(|c| c.0 == self).map_or("?", |c| c.2)
    }
}

/// A command as named in errors: its name and code (the code alone for unknown commands).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandName {
    /// The wire code.
    pub code: u32,
    /// The known command, if any.
    pub command: Option<CommandCode>,
}

impl From<CommandCode> for CommandName {
    fn from(c: CommandCode) -> Self {
        CommandName {
            code: c.value(),
            command: Some(c),
        }
    }
}

impl fmt::Display for CommandName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.command {
            Some(c) => write!(f, "{} (0x{:08X})", c.name(), self.code),
            None => write!(f, "0x{:08X}", self.code),
        }
    }
}

/// Status codes in the status packet (`device_command_response_t`); the SDK only tests for 0.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceStatus {
    Success,
    Error,
    InvalidParameter,
    CommandBusy,
    NotImplemented,
    OutOfMemory,
    ParamBadTag,
    InvalidPayloadSize,
    Failed,
    WrongCommandState,
    WrongDeviceState,
    AdcInvalidChannel,
    AdcIncorrectChannel,
    AdcTimeout,
    AdcUnknownDevice,
    AdcUnsupportedDevice,
    AdcUnsupportedSignal,
    AdcInvalidInput,
    AdcDataNotAvailable,
    /// A value the SDK does not name.
    Unknown(u32),
}

const STATUSES: [(DeviceStatus, u32, &str); 19] = [
    (DeviceStatus::Success, 0x000, "SUCCESS"),
    (DeviceStatus::Error, 0x001, "ERROR"),
    (DeviceStatus::InvalidParameter, 0x003, "INVALID_PARAMETER"),
    (DeviceStatus::CommandBusy, 0x007, "COMMAND_BUSY"),
    (DeviceStatus::NotImplemented, 0x008, "NOT_IMPLEMENTED"),
    (DeviceStatus::OutOfMemory, 0x009, "OUT_OF_MEMORY"),
    (DeviceStatus::ParamBadTag, 0x00D, "PARAM_BAD_TAG"),
    (
        DeviceStatus::InvalidPayloadSize,
        0x012,
        "INVALID_PAYLOAD_SIZE",
    ),
    (DeviceStatus::Failed, 0x063, "FAILED"),
    (
        DeviceStatus::WrongCommandState,
        0x101,
        "WRONG_COMMAND_STATE",
    ),
    (DeviceStatus::WrongDeviceState, 0x102, "WRONG_DEVICE_STATE"),
    (
        DeviceStatus::AdcInvalidChannel,
        0x480,
        "ADC_INVALID_CHANNEL",
    ),
    (
        DeviceStatus::AdcIncorrectChannel,
        0x481,
        "ADC_INCORRECT_CHANNEL",
    ),
    (DeviceStatus::AdcTimeout, 0x482, "ADC_TIMEOUT"),
    (DeviceStatus::AdcUnknownDevice, 0x483, "ADC_UNKNOWN_DEVICE"),
    (
        DeviceStatus::AdcUnsupportedDevice,
        0x484,
        "ADC_UNSUPPORTED_DEVICE",
    ),
    (
        DeviceStatus::AdcUnsupportedSignal,
        0x485,
        "ADC_UNSUPPORTED_SIGNAL",
    ),
    (DeviceStatus::AdcInvalidInput, 0x486, "ADC_INVALID_INPUT"),
    (
        DeviceStatus::AdcDataNotAvailable,
        0x487,
        "ADC_DATA_NOT_AVAILABLE",
    ),
];

impl DeviceStatus {
    /// The wire value.
    pub fn value(self) -> u32 {
        match self {
            DeviceStatus::Unknown(v) => v,
            s => STATUSES.iter().find(|e| e.0 == s).map_or(0, |e| e.1),
        }
    }

    /// The status for a wire value.
    pub fn from_value(v: u32) -> DeviceStatus {
        STATUSES
            .iter()
            .find(|e| e.1 == v)
            .map_or(DeviceStatus::Unknown(v), |e| e.0)
    }

    /// The SDK's name, or `UNKNOWN` for values it does not define.
    pub fn name(self) -> &'static str {
        match self {
            DeviceStatus::Unknown(_) => "UNKNOWN",
            s => STATUSES
                .iter()
                .find(|e| e.0 == s)
                .map_or("UNKNOWN", |e| e.2),
        }
    }
}

impl fmt::Display for DeviceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:03X})", self.name(), self.value())
    }
}

/// A command transaction that failed, naming the command.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CommandError {
    /// The command data exceeds 128 bytes; nothing is sent.
    #[error("command {command}: {len} bytes of command data, at most {MAX_COMMAND_DATA_LEN}")]
    CommandDataTooLong {
        /// The command.
        command: CommandName,
        /// Its command-data length.
        len: usize,
    },
    /// A packet shorter than its header, or a status packet not exactly 16 bytes.
    #[error("command {command}: {what} has {got} bytes, expected {expected}")]
    WrongLength {
        /// The command.
        command: CommandName,
        /// "status packet" or "command packet".
        what: &'static str,
        /// Bytes expected.
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// `packet_type` is not the expected magic.
    #[error("command {command}: {what} has packet type 0x{found:08X}, expected 0x{expected:08X}")]
    WrongMagic {
        /// The command.
        command: CommandName,
        /// "status packet" or "command packet".
        what: &'static str,
        /// Magic expected.
        expected: u32,
        /// Magic found.
        found: u32,
    },
    /// The status packet does not echo the command's transaction id.
    #[error("command {command}: status for transaction {found}, expected {expected}")]
    TransactionIdMismatch {
        /// The command.
        command: CommandName,
        /// Id sent.
        expected: u32,
        /// Id received.
        found: u32,
    },
    /// The device answered with a non-zero status.
    #[error("command {command} ended in failure, status {status}")]
    Status {
        /// The command.
        command: CommandName,
        /// The status.
        status: DeviceStatus,
    },
    /// The data phase delivered more bytes than the host's buffer holds.
    #[error("command {command}: data phase of {got} bytes exceeds the {max}-byte buffer")]
    DataOverflow {
        /// The command.
        command: CommandName,
        /// Bytes received.
        got: usize,
        /// Buffer size.
        max: usize,
    },
    /// A transaction step was taken out of order (status before data, data twice, …).
    #[error("command {command}: {step} out of order")]
    OutOfOrder {
        /// The command.
        command: CommandName,
        /// The step attempted.
        step: &'static str,
    },
    /// The response data did not parse.
    #[error("command {command}: bad response")]
    BadResponse {
        /// The command.
        command: CommandName,
        /// Why.
        #[source]
        source: PayloadError,
    },
}

/// The 20-byte command header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandHeader {
    /// Transaction id (the per-handle counter).
    pub transaction_id: u32,
    /// Data-phase size: the read buffer size, the write length, or 0.
    pub payload_size: u32,
    /// Command code.
    pub command: u32,
    /// Reserved, 0 from the SDK; kept so odd packets round-trip.
    pub reserved: u32,
}

impl CommandHeader {
    /// Encodes the header (magic first).
    pub fn encode(&self) -> [u8; COMMAND_HEADER_LEN] {
        let mut v = Vec::with_capacity(COMMAND_HEADER_LEN);
        v.put_u32(COMMAND_PACKET_TYPE);
        v.put_u32(self.transaction_id);
        v.put_u32(self.payload_size);
        v.put_u32(self.command);
        v.put_u32(self.reserved);
        let mut out = [0; COMMAND_HEADER_LEN];
        out.copy_from_slice(&v);
        out
    }
}

/// One command OUT transfer: header plus command data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandPacket {
    /// The header.
    pub header: CommandHeader,
    /// 0–128 bytes of command data.
    pub data: Vec<u8>,
}

impl CommandPacket {
    /// Encodes header and data: exactly `20 + data.len()` bytes, unpadded.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.header.encode().to_vec();
        v.extend_from_slice(&self.data);
        v
    }

    /// Decodes one OUT transfer, checking the length and the magic.
    pub fn decode(bytes: &[u8]) -> Result<Self, CommandError> {
        let unknown = |code| CommandName {
            code,
            command: None,
        };
        if bytes.len() < COMMAND_HEADER_LEN {
            return Err(CommandError::WrongLength {
                command: unknown(if bytes.len() >= 16 {
                    u32_at(bytes, 12)
                } else {
                    0
                }),
                what: "command packet",
                expected: COMMAND_HEADER_LEN,
                got: bytes.len(),
            });
        }
        let header = CommandHeader {
            transaction_id: u32_at(bytes, 4),
            payload_size: u32_at(bytes, 8),
            command: u32_at(bytes, 12),
            reserved: u32_at(bytes, 16),
        };
        let name = CODES
            .iter()
            .find(|c| c.1 == header.command)
            .map_or(unknown(header.command), |c| c.0.into());
        let magic = u32_at(bytes, 0);
        if magic != COMMAND_PACKET_TYPE {
            return Err(CommandError::WrongMagic {
                command: name,
                what: "command packet",
                expected: COMMAND_PACKET_TYPE,
                found: magic,
            });
        }
        let data = &bytes[COMMAND_HEADER_LEN..];
        if data.len() > MAX_COMMAND_DATA_LEN {
            return Err(CommandError::CommandDataTooLong {
                command: name,
                len: data.len(),
            });
        }
        Ok(CommandPacket {
            header,
            data: data.to_vec(),
        })
    }
}

/// The 16-byte status packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusPacket {
    /// Echo of the command's transaction id.
    pub transaction_id: u32,
    /// Result.
    pub status: DeviceStatus,
    /// Reserved, 0.
    pub reserved: u32,
}

impl StatusPacket {
    /// A status packet answering `transaction_id`.
    pub fn new(transaction_id: u32, status: DeviceStatus) -> Self {
        StatusPacket {
            transaction_id,
            status,
            reserved: 0,
        }
    }

    /// Encodes the 16 bytes.
    pub fn encode(&self) -> [u8; STATUS_PACKET_LEN] {
        let mut v = Vec::with_capacity(STATUS_PACKET_LEN);
        v.put_u32(STATUS_PACKET_TYPE);
        v.put_u32(self.transaction_id);
        v.put_u32(self.status.value());
        v.put_u32(self.reserved);
        let mut out = [0; STATUS_PACKET_LEN];
        out.copy_from_slice(&v);
        out
    }

    /// Decodes a status packet for `command`, checking exact length and magic (not the id).
    pub fn decode(command: CommandName, bytes: &[u8]) -> Result<Self, CommandError> {
        if bytes.len() != STATUS_PACKET_LEN {
            return Err(CommandError::WrongLength {
                command,
                what: "status packet",
                expected: STATUS_PACKET_LEN,
                got: bytes.len(),
            });
        }
        let magic = u32_at(bytes, 0);
        if magic != STATUS_PACKET_TYPE {
            return Err(CommandError::WrongMagic {
                command,
                what: "status packet",
                expected: STATUS_PACKET_TYPE,
                found: magic,
            });
        }
        Ok(StatusPacket {
            transaction_id: u32_at(bytes, 4),
            status: DeviceStatus::from_value(u32_at(bytes, 8)),
            reserved: u32_at(bytes, 12),
        })
    }
}

/// The data phase of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataPhase<'a> {
    /// Status follows the command directly.
    None,
    /// The host reads up to this many bytes before the status.
    Read(usize),
    /// The host writes these bytes in a second OUT transfer before the status.
    Write(&'a [u8]),
}

impl DataPhase<'_> {
    /// The `payload_size` header field for this phase.
    pub fn payload_size(&self) -> u32 {
        match self {
            DataPhase::None => 0,
            DataPhase::Read(n) => *n as u32,
            DataPhase::Write(b) => b.len() as u32,
        }
    }
}

/// A command as a type: its code, command data, data phase and response parser.
pub trait Command {
    /// What a successful transaction yields.
    type Response;
    /// The command code.
    const CODE: CommandCode;
    /// The command data after the header (at most 128 bytes).
    fn command_data(&self) -> Vec<u8> {
        Vec::new()
    }
    /// The data phase.
    fn data_phase(&self) -> DataPhase<'_> {
        DataPhase::None
    }
    /// Parses the data-phase bytes (empty when there is no read phase).
    fn parse_response(&self, data: &[u8]) -> Result<Self::Response, PayloadError>;
}

macro_rules! no_data_command {
    ($(#[$doc:meta] $name:ident => $code:ident;)*) => {$(
        #[$doc]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name;
        impl Command for $name {
            type Response = ();
            const CODE: CommandCode = CommandCode::$code;
            fn parse_response(&self, _data: &[u8]) -> Result<(), PayloadError> {
                Ok(())
            }
        }
    )*};
}

no_data_command! {
    /// Reset the unit through the depth MCU (firmware tool fallback).
    DepthReset => DepthReset;
    /// Start the depth sensor.
    DepthStart => DepthStart;
    /// Stop the depth sensor.
    DepthStop => DepthStop;
    /// Power the depth sensor on (sent only by the SDK's test tool).
    DepthPowerOn => DepthPowerOn;
    /// Power the depth sensor off (defined, unused by libk4a).
    DepthPowerOff => DepthPowerOff;
    /// Start pushing raw depth frames on endpoint 0x83.
    DepthStreamStart => DepthStreamStart;
    /// Stop the raw depth stream.
    DepthStreamStop => DepthStreamStop;
    /// Reset the unit through the colour MCU (tried first by the firmware tool).
    ColorReset => ColorReset;
    /// Start IMU packets on endpoint 0x82.
    ImuStreamStart => ImuStreamStart;
    /// Stop IMU packets.
    ImuStreamStop => ImuStreamStop;
}

/// Buffer size the SDK uses for NV_DATA_GET.
pub const NV_DATA_BUFFER_LEN: usize = 2_000_000;
/// Buffer size the SDK uses for READ_PRODUCT_SN.
pub const SERIAL_BUFFER_LEN: usize = 255;
/// First buffer size the SDK uses for READ_CALIBRATION_DATA.
pub const CALIBRATION_BUFFER_INITIAL_LEN: usize = 10_240;
/// Growth of the calibration buffer per retry.
pub const CALIBRATION_BUFFER_STEP_LEN: usize = 5_120;
/// Calibration read attempts.
pub const CALIBRATION_READ_ATTEMPTS: usize = 10;

/// Read an NV block (the SDK reads tag 2, the depth engine's calibration block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NvDataGet {
    /// The tag.
    pub tag: NvTag,
}

impl Command for NvDataGet {
    type Response = Vec<u8>;
    const CODE: CommandCode = CommandCode::NvDataGet;
    fn command_data(&self) -> Vec<u8> {
        self.tag.value().to_le_bytes().to_vec()
    }
    fn data_phase(&self) -> DataPhase<'_> {
        DataPhase::Read(NV_DATA_BUFFER_LEN)
    }
    fn parse_response(&self, data: &[u8]) -> Result<Vec<u8>, PayloadError> {
        if data.len() < 4 {
            return Err(PayloadError::NvDataTooShort { got: data.len() });
        }
        Ok(data.to_vec())
    }
}

/// Sensor modes sent with DEPTH_MODE_SET.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SensorMode {
    /// 3: passive IR.
    PseudoCommon,
    /// 4: NFOV (both binned and unbinned).
    LongThrowNative,
    /// 5: WFOV unbinned.
    MegaPixel,
    /// 7: WFOV 2×2 binned.
    QuarterMegaPixel,
}

impl SensorMode {
    /// The wire value.
    pub fn value(self) -> u32 {
        match self {
            SensorMode::PseudoCommon => 3,
            SensorMode::LongThrowNative => 4,
            SensorMode::MegaPixel => 5,
            SensorMode::QuarterMegaPixel => 7,
        }
    }

    /// The mode for a wire value.
    pub fn from_value(v: u32) -> Option<SensorMode> {
        match v {
            3 => Some(SensorMode::PseudoCommon),
            4 => Some(SensorMode::LongThrowNative),
            5 => Some(SensorMode::MegaPixel),
            7 => Some(SensorMode::QuarterMegaPixel),
            _ => None,
        }
    }
}

/// Set the depth sensor mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthModeSet {
    /// The mode.
    pub mode: SensorMode,
}

impl Command for DepthModeSet {
    type Response = ();
    const CODE: CommandCode = CommandCode::DepthModeSet;
    fn command_data(&self) -> Vec<u8> {
        self.mode.value().to_le_bytes().to_vec()
    }
    fn parse_response(&self, _data: &[u8]) -> Result<(), PayloadError> {
        Ok(())
    }
}

/// Set the depth frame rate (the literal 5, 15 or 30).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthFpsSet {
    /// The rate.
    pub fps: Fps,
}

impl Command for DepthFpsSet {
    type Response = ();
    const CODE: CommandCode = CommandCode::DepthFpsSet;
    fn command_data(&self) -> Vec<u8> {
        self.fps.hz().to_le_bytes().to_vec()
    }
    fn parse_response(&self, _data: &[u8]) -> Result<(), PayloadError> {
        Ok(())
    }
}

/// Read the factory calibration JSON into a buffer of `buffer_len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadCalibrationData {
    /// Host buffer size (10240, then +5120 per retry).
    pub buffer_len: usize,
}

impl ReadCalibrationData {
    /// The buffer size of the SDK's attempt number `attempt` (0-based).
    pub fn attempt(attempt: usize) -> Self {
        ReadCalibrationData {
            buffer_len: CALIBRATION_BUFFER_INITIAL_LEN + attempt * CALIBRATION_BUFFER_STEP_LEN,
        }
    }
}

impl Command for ReadCalibrationData {
    type Response = Vec<u8>;
    const CODE: CommandCode = CommandCode::ReadCalibrationData;
    fn data_phase(&self) -> DataPhase<'_> {
        DataPhase::Read(self.buffer_len)
    }
    /// Succeeds only when the data left room for the NUL, as the SDK requires.
    fn parse_response(&self, data: &[u8]) -> Result<Vec<u8>, PayloadError> {
        if data.len() >= self.buffer_len {
            return Err(PayloadError::CalibrationBufferFull {
                buffer_len: self.buffer_len,
            });
        }
        Ok(data.to_vec())
    }
}

/// Read the product serial number (255-byte buffer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadProductSerial;

impl Command for ReadProductSerial {
    type Response = SerialNumber;
    const CODE: CommandCode = CommandCode::ReadProductSerial;
    fn data_phase(&self) -> DataPhase<'_> {
        DataPhase::Read(SERIAL_BUFFER_LEN)
    }
    fn parse_response(&self, data: &[u8]) -> Result<SerialNumber, PayloadError> {
        SerialNumber::decode(data)
    }
}

/// Read the firmware versions (also the readiness probe).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ComponentVersionGet;

impl Command for ComponentVersionGet {
    type Response = FirmwareVersions;
    const CODE: CommandCode = CommandCode::ComponentVersionGet;
    fn data_phase(&self) -> DataPhase<'_> {
        DataPhase::Read(FirmwareVersions::LEN)
    }
    fn parse_response(&self, data: &[u8]) -> Result<FirmwareVersions, PayloadError> {
        FirmwareVersions::decode(data)
    }
}

/// Download a firmware package (one write data phase).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadFirmware {
    /// The whole package.
    pub package: Vec<u8>,
}

impl Command for DownloadFirmware {
    type Response = ();
    const CODE: CommandCode = CommandCode::DownloadFirmware;
    fn command_data(&self) -> Vec<u8> {
        FirmwarePackageInfo::for_package_len(self.package.len()).encode()
    }
    fn data_phase(&self) -> DataPhase<'_> {
        DataPhase::Write(&self.package)
    }
    fn parse_response(&self, _data: &[u8]) -> Result<(), PayloadError> {
        Ok(())
    }
}

/// Poll firmware update progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GetFirmwareUpdateStatus;

impl Command for GetFirmwareUpdateStatus {
    type Response = FirmwareUpdateStatus;
    const CODE: CommandCode = CommandCode::GetFirmwareUpdateStatus;
    fn data_phase(&self) -> DataPhase<'_> {
        DataPhase::Read(FirmwareUpdateStatus::LEN)
    }
    fn parse_response(&self, data: &[u8]) -> Result<FirmwareUpdateStatus, PayloadError> {
        FirmwareUpdateStatus::decode(data)
    }
}

/// Program the synchronisation configuration (sent at every camera start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetSysCfg {
    /// The configuration.
    pub config: SyncConfig,
}

impl Command for SetSysCfg {
    type Response = ();
    const CODE: CommandCode = CommandCode::SetSysCfg;
    fn command_data(&self) -> Vec<u8> {
        self.config.encode()
    }
    fn parse_response(&self, _data: &[u8]) -> Result<(), PayloadError> {
        Ok(())
    }
}

/// Read which sync jacks have a cable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GetJackState;

impl Command for GetJackState {
    type Response = JackState;
    const CODE: CommandCode = CommandCode::GetJackState;
    fn data_phase(&self) -> DataPhase<'_> {
        DataPhase::Read(JackState::LEN)
    }
    fn parse_response(&self, data: &[u8]) -> Result<JackState, PayloadError> {
        JackState::decode(data)
    }
}

/// The per-handle transaction id counter: starts at 0, hands out its value, then wraps up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransactionIds {
    next: u32,
}

impl TransactionIds {
    /// A fresh counter (a fresh open starts at 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// The id for the next command.
    pub fn next_id(&mut self) -> u32 {
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        id
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    AwaitData,
    AwaitStatus,
}

/// Host side of one command transaction.
///
/// 1. Send [`HostTransaction::out_packet`] on the command OUT endpoint.
/// 2. If [`HostTransaction::write_data`] is `Some`, send it on the same endpoint; if
///    [`HostTransaction::read_len`] is `Some(n)`, read up to `n` bytes and pass them to
///    [`HostTransaction::accept_data`].
/// 3. Read 16 bytes and pass them to [`HostTransaction::finish`] (judged) or
///    [`HostTransaction::finish_with_status`] (status returned unjudged).
#[derive(Clone, Debug)]
pub struct HostTransaction<C: Command> {
    command: C,
    transaction_id: u32,
    command_data: Vec<u8>,
    phase: Phase,
    data: Vec<u8>,
}

impl<C: Command> HostTransaction<C> {
    /// Starts a transaction; fails before anything is sent if the command data is too long.
    pub fn new(command: C, transaction_id: u32) -> Result<Self, CommandError> {
        let command_data = command.command_data();
        if command_data.len() > MAX_COMMAND_DATA_LEN {
            return Err(CommandError::CommandDataTooLong {
                command: C::CODE.into(),
                len: command_data.len(),
            });
        }
        let phase = match command.data_phase() {
            DataPhase::Read(_) => Phase::AwaitData,
            _ => Phase::AwaitStatus,
        };
        Ok(HostTransaction {
            command,
            transaction_id,
            command_data,
            phase,
            data: Vec::new(),
        })
    }

    /// The command.
    pub fn command(&self) -> &C {
        &self.command
    }

    /// The transaction id in the header.
    pub fn transaction_id(&self) -> u32 {
        self.transaction_id
    }

    /// The command OUT transfer: header plus command data.
    pub fn out_packet(&self) -> Vec<u8> {
        CommandPacket {
            header: CommandHeader {
                transaction_id: self.transaction_id,
                payload_size: self.command.data_phase().payload_size(),
                command: C::CODE.value(),
                reserved: 0,
            },
            data: self.command_data.clone(),
        }
        .encode()
    }

    /// Bytes of the write data phase, if the command has one.
    pub fn write_data(&self) -> Option<&[u8]> {
        match self.command.data_phase() {
            DataPhase::Write(b) => Some(b),
            _ => None,
        }
    }

    /// Size of the read buffer, if the command has a read data phase.
    pub fn read_len(&self) -> Option<usize> {
        match self.command.data_phase() {
            DataPhase::Read(n) => Some(n),
            _ => None,
        }
    }

    /// Accepts the bytes of the read data phase (up to [`HostTransaction::read_len`]).
    pub fn accept_data(&mut self, bytes: &[u8]) -> Result<(), CommandError> {
        let command = C::CODE.into();
        let (Phase::AwaitData, Some(max)) = (&self.phase, self.read_len()) else {
            return Err(CommandError::OutOfOrder {
                command,
                step: "data phase",
            });
        };
        if bytes.len() > max {
            return Err(CommandError::DataOverflow {
                command,
                got: bytes.len(),
                max,
            });
        }
        self.data = bytes.to_vec();
        self.phase = Phase::AwaitStatus;
        Ok(())
    }

    fn status(&self, bytes: &[u8]) -> Result<DeviceStatus, CommandError> {
        let command = C::CODE.into();
        if self.phase != Phase::AwaitStatus {
            return Err(CommandError::OutOfOrder {
                command,
                step: "status phase",
            });
        }
        let status = StatusPacket::decode(command, bytes)?;
        if status.transaction_id != self.transaction_id {
            return Err(CommandError::TransactionIdMismatch {
                command,
                expected: self.transaction_id,
                found: status.transaction_id,
            });
        }
        Ok(status.status)
    }

    /// Accepts the status packet, returning the status without judging it and the raw
    /// data-phase bytes (the SDK's `*_with_status` calls).
    pub fn finish_with_status(self, bytes: &[u8]) -> Result<(DeviceStatus, Vec<u8>), CommandError> {
        let status = self.status(bytes)?;
        Ok((status, self.data))
    }

    /// Accepts the status packet; a non-zero status is an error, otherwise the data phase
    /// is parsed into the command's response.
    pub fn finish(self, bytes: &[u8]) -> Result<C::Response, CommandError> {
        let command = C::CODE.into();
        let status = self.status(bytes)?;
        if status != DeviceStatus::Success {
            return Err(CommandError::Status { command, status });
        }
        self.command
            .parse_response(&self.data)
            .map_err(|source| CommandError::BadResponse { command, source })
    }
}

/// A command as the device receives it, with its typed command data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceCommand {
    /// Depth MCU reset.
    DepthReset,
    /// VERSION_GET (defined, unused by the SDK).
    VersionGet,
    /// Start the depth sensor.
    DepthStart,
    /// Stop the depth sensor.
    DepthStop,
    /// Read an NV block into a buffer of `buffer_len` bytes.
    NvDataGet {
        /// The tag (unknown tags are rejected with PARAM_BAD_TAG).
        tag: NvTag,
        /// The host's buffer size.
        buffer_len: usize,
    },
    /// Set the sensor mode.
    DepthModeSet(SensorMode),
    /// Power off.
    DepthPowerOff,
    /// Power on.
    DepthPowerOn,
    /// Start the raw stream.
    DepthStreamStart,
    /// Stop the raw stream.
    DepthStreamStop,
    /// Set the frame rate.
    DepthFpsSet(Fps),
    /// Read the calibration JSON into a buffer of `buffer_len` bytes.
    ReadCalibrationData {
        /// The host's buffer size.
        buffer_len: usize,
    },
    /// Read the serial number into a buffer of `buffer_len` bytes.
    ReadProductSerial {
        /// The host's buffer size.
        buffer_len: usize,
    },
    /// Read the versions into a buffer of `buffer_len` bytes.
    ComponentVersionGet {
        /// The host's buffer size.
        buffer_len: usize,
    },
    /// A firmware package of `package_len` bytes follows in a second OUT transfer.
    DownloadFirmware {
        /// The legacy package info.
        info: FirmwarePackageInfo,
        /// Bytes in the write data phase.
        package_len: usize,
    },
    /// Read the update status into a buffer of `buffer_len` bytes.
    GetFirmwareUpdateStatus {
        /// The host's buffer size.
        buffer_len: usize,
    },
    /// Colour MCU reset.
    ColorReset,
    /// Program the sync configuration.
    SetSysCfg(SyncConfig),
    /// GET_SYS_CFG (defined, unused by the SDK).
    GetSysCfg,
    /// Start IMU packets.
    ImuStreamStart,
    /// Stop IMU packets.
    ImuStreamStop,
    /// Read the jack state into a buffer of `buffer_len` bytes.
    GetJackState {
        /// The host's buffer size.
        buffer_len: usize,
    },
}

/// A command packet the device parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedCommand {
    /// The header (echo its transaction id in the status).
    pub header: CommandHeader,
    /// The typed command.
    pub command: DeviceCommand,
}

/// A command packet the device refuses, with the status to answer (if it can answer at all).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("rejected command packet: {reason}")]
pub struct RejectedCommand {
    /// Transaction id to echo; `None` when the header itself is unreadable (the emulator's
    /// choice is to send no status then, as the host will time out).
    pub transaction_id: Option<u32>,
    /// The status to answer with.
    pub status: DeviceStatus,
    /// What was wrong.
    pub reason: RejectReason,
}

/// Why a command packet was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RejectReason {
    /// The framing is broken (length or magic).
    #[error("{0}")]
    Framing(CommandError),
    /// The code is not a command of this MCU.
    #[error("unknown command 0x{code:08X}")]
    UnknownCommand {
        /// The code.
        code: u32,
    },
    /// Command data of the wrong length.
    #[error("command {command}: {got} bytes of command data, expected {expected}")]
    BadCommandDataLength {
        /// The command.
        command: CommandName,
        /// Bytes expected.
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// A parameter outside its range.
    #[error("command {command}: invalid parameter {value}")]
    BadParameter {
        /// The command.
        command: CommandName,
        /// The value.
        value: u32,
    },
}

/// Device side: parses one command OUT transfer addressed to `mcu`.
///
/// Rejections carry the status the emulator answers with (our choices, since the firmware's
/// are not documented): unknown code → NOT_IMPLEMENTED; wrong command-data length →
/// INVALID_PAYLOAD_SIZE; out-of-range parameter → INVALID_PARAMETER; unknown NV tag →
/// PARAM_BAD_TAG; broken framing → no status.
pub fn parse_command_packet(mcu: Mcu, bytes: &[u8]) -> Result<ReceivedCommand, RejectedCommand> {
    let packet = CommandPacket::decode(bytes).map_err(|e| RejectedCommand {
        transaction_id: None,
        status: DeviceStatus::Error,
        reason: RejectReason::Framing(e),
    })?;
    let header = packet.header;
    let reject = |status, reason| RejectedCommand {
        transaction_id: Some(header.transaction_id),
        status,
        reason,
    };
    let Some(code) = CommandCode::from_value(mcu, header.command) else {
        return Err(reject(
            DeviceStatus::NotImplemented,
            RejectReason::UnknownCommand {
                code: header.command,
            },
        ));
    };
    let name = CommandName::from(code);
    let data = &packet.data;
    let expect_len = |n: usize| {
        if data.len() == n {
            Ok(())
        } else {
            Err(reject(
                DeviceStatus::InvalidPayloadSize,
                RejectReason::BadCommandDataLength {
                    command: name,
                    expected: n,
                    got: data.len(),
                },
            ))
        }
    };
    let bad_param = |value| {
        reject(
            DeviceStatus::InvalidParameter,
            RejectReason::BadParameter {
                command: name,
                value,
            },
        )
    };
    let buffer_len = header.payload_size as usize;
    let command = match code {
        CommandCode::DepthModeSet => {
            expect_len(4)?;
            let v = u32_at(data, 0);
            DeviceCommand::DepthModeSet(SensorMode::from_value(v).ok_or_else(|| bad_param(v))?)
        }
        CommandCode::DepthFpsSet => {
            expect_len(4)?;
            let v = u32_at(data, 0);
            DeviceCommand::DepthFpsSet(Fps::from_hz(v).ok_or_else(|| bad_param(v))?)
        }
        CommandCode::NvDataGet => {
            expect_len(4)?;
            let v = u32_at(data, 0);
            let tag = NvTag::from_value(v).ok_or_else(|| {
                reject(
                    DeviceStatus::ParamBadTag,
                    RejectReason::BadParameter {
                        command: name,
                        value: v,
                    },
                )
            })?;
            DeviceCommand::NvDataGet { tag, buffer_len }
        }
        CommandCode::SetSysCfg => {
            expect_len(SyncConfig::LEN)?;
            DeviceCommand::SetSysCfg(
                SyncConfig::decode(data).map_err(|_| bad_param(u32_at(data, 0)))?,
            )
        }
        CommandCode::DownloadFirmware => {
            expect_len(FirmwarePackageInfo::LEN)?;
            DeviceCommand::DownloadFirmware {
                info: FirmwarePackageInfo {
                    last_package: data[0],
                    package_size: data[1],
                },
                package_len: buffer_len,
            }
        }
        other => {
            expect_len(0)?;
            match other {
                CommandCode::DepthReset => DeviceCommand::DepthReset,
                CommandCode::VersionGet => DeviceCommand::VersionGet,
                CommandCode::DepthStart => DeviceCommand::DepthStart,
                CommandCode::DepthStop => DeviceCommand::DepthStop,
                CommandCode::DepthPowerOff => DeviceCommand::DepthPowerOff,
                CommandCode::DepthPowerOn => DeviceCommand::DepthPowerOn,
                CommandCode::DepthStreamStart => DeviceCommand::DepthStreamStart,
                CommandCode::DepthStreamStop => DeviceCommand::DepthStreamStop,
                CommandCode::ReadCalibrationData => {
                    DeviceCommand::ReadCalibrationData { buffer_len }
                }
                CommandCode::ReadProductSerial => DeviceCommand::ReadProductSerial { buffer_len },
                CommandCode::ComponentVersionGet => {
                    DeviceCommand::ComponentVersionGet { buffer_len }
                }
                CommandCode::GetFirmwareUpdateStatus => {
                    DeviceCommand::GetFirmwareUpdateStatus { buffer_len }
                }
                CommandCode::ColorReset => DeviceCommand::ColorReset,
                CommandCode::GetSysCfg => DeviceCommand::GetSysCfg,
                CommandCode::ImuStreamStart => DeviceCommand::ImuStreamStart,
                CommandCode::ImuStreamStop => DeviceCommand::ImuStreamStop,
                CommandCode::GetJackState => DeviceCommand::GetJackState { buffer_len },
                // Handled in the outer match.
                CommandCode::DepthModeSet
                | CommandCode::DepthFpsSet
                | CommandCode::NvDataGet
                | CommandCode::SetSysCfg
                | CommandCode::DownloadFirmware => {
                    return Err(reject(
                        DeviceStatus::Error,
                        RejectReason::UnknownCommand {
                            code: header.command,
                        },
                    ))
                }
            }
        }
    };
    Ok(ReceivedCommand { header, command })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::WiredSyncMode;

    #[rustfmt::skip]
    const MODE_SET: [u8; 24] = [
        0x09, 0x20, 0x02, 0x06, // packet type 0x06022009
        0x07, 0x00, 0x00, 0x00, // transaction id 7
        0x00, 0x00, 0x00, 0x00, // payload size 0: no data phase
        0xe1, 0x00, 0x00, 0x00, // DEPTH_MODE_SET
        0x00, 0x00, 0x00, 0x00, // reserved
        0x04, 0x00, 0x00, 0x00, // sensor mode 4 (NFOV)
    ];

    #[rustfmt::skip]
    const STATUS_OK_7: [u8; 16] = [
        0x00, 0xe0, 0x6f, 0x0a, // packet type 0x0A6FE000
        0x07, 0x00, 0x00, 0x00, // transaction id 7
        0x00, 0x00, 0x00, 0x00, // SUCCESS
        0x00, 0x00, 0x00, 0x00, // reserved
    ];

    #[test]
    fn command_packet_round_trip() {
        let t = HostTransaction::new(
            DepthModeSet {
                mode: SensorMode::LongThrowNative,
            },
            7,
        )
        .unwrap();
        assert_eq!(t.out_packet(), MODE_SET);
        let p = CommandPacket::decode(&MODE_SET).unwrap();
        assert_eq!(p.header.command, 0xE1);
        assert_eq!(p.encode(), MODE_SET);
        let got = parse_command_packet(Mcu::Depth, &MODE_SET).unwrap();
        assert_eq!(
            got.command,
            DeviceCommand::DepthModeSet(SensorMode::LongThrowNative)
        );
        assert_eq!(got.header.transaction_id, 7);
    }

    #[test]
    fn status_packet_round_trip() {
        let s = StatusPacket::decode(CommandCode::DepthModeSet.into(), &STATUS_OK_7).unwrap();
        assert_eq!(s, StatusPacket::new(7, DeviceStatus::Success));
        assert_eq!(s.encode(), STATUS_OK_7);
    }

    #[test]
    fn host_transaction_no_data() {
        let t = HostTransaction::new(
            DepthModeSet {
                mode: SensorMode::LongThrowNative,
            },
            7,
        )
        .unwrap();
        assert_eq!(t.read_len(), None);
        t.finish(&STATUS_OK_7).unwrap();
    }

    #[test]
    fn host_transaction_read_versions() {
        let mut t = HostTransaction::new(ComponentVersionGet, 0).unwrap();
        #[rustfmt::skip]
        let expected_out = [
            0x09, 0x20, 0x02, 0x06, // packet type
            0x00, 0x00, 0x00, 0x00, // transaction id 0
            0x12, 0x00, 0x00, 0x00, // payload size 18
            0x01, 0x02, 0x00, 0x00, // COMPONENT_VERSION_GET
            0x00, 0x00, 0x00, 0x00, // reserved
        ];
        assert_eq!(t.out_packet(), expected_out);
        assert_eq!(t.read_len(), Some(18));
        let fw = FirmwareVersions {
            rgb: (1, 6, 110),
            depth: (1, 6, 79),
            ..Default::default()
        };
        t.accept_data(&fw.encode()).unwrap();
        let status = StatusPacket::new(0, DeviceStatus::Success).encode();
        assert_eq!(t.finish(&status).unwrap(), fw);
    }

    #[test]
    fn host_transaction_errors_name_the_command() {
        let mut t = HostTransaction::new(ReadProductSerial, 3).unwrap();
        // Status before data.
        let early = t
            .clone()
            .finish(&StatusPacket::new(3, DeviceStatus::Success).encode());
        assert!(matches!(early, Err(CommandError::OutOfOrder { .. })));
        t.accept_data(b"000019484312\0").unwrap();
        let e = t
            .clone()
            .finish(&StatusPacket::new(4, DeviceStatus::Success).encode())
            .unwrap_err();
        assert_eq!(
            e,
            CommandError::TransactionIdMismatch {
                command: CommandCode::ReadProductSerial.into(),
                expected: 3,
                found: 4,
            }
        );
        assert!(e.to_string().contains("DEPTH_READ_PRODUCT_SN (0x00000115)"));
        let e = t
            .clone()
            .finish(&StatusPacket::new(3, DeviceStatus::InvalidPayloadSize).encode())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "command DEPTH_READ_PRODUCT_SN (0x00000115) ended in failure, status INVALID_PAYLOAD_SIZE (0x012)"
        );
        let mut bad = StatusPacket::new(3, DeviceStatus::Success).encode();
        bad[0] = 0xff;
        assert!(matches!(
            t.clone().finish(&bad),
            Err(CommandError::WrongMagic {
                found: 0x0A6F_E0FF,
                ..
            })
        ));
        assert!(matches!(
            t.clone().finish(&bad[..15]),
            Err(CommandError::WrongLength { got: 15, .. })
        ));
        let (status, data) = t
            .clone()
            .finish_with_status(&StatusPacket::new(3, DeviceStatus::Failed).encode())
            .unwrap();
        assert_eq!((status, data.len()), (DeviceStatus::Failed, 13));
        assert_eq!(
            t.finish(&StatusPacket::new(3, DeviceStatus::Success).encode())
                .unwrap()
                .as_str(),
            "000019484312"
        );
    }

    #[test]
    fn data_overflow_and_bad_response() {
        let mut t = HostTransaction::new(GetJackState, 1).unwrap();
        assert!(matches!(
            t.accept_data(&[0, 0]),
            Err(CommandError::DataOverflow { got: 2, max: 1, .. })
        ));
        let mut t = HostTransaction::new(ComponentVersionGet, 1).unwrap();
        t.accept_data(&[0; 10]).unwrap();
        let e = t
            .finish(&StatusPacket::new(1, DeviceStatus::Success).encode())
            .unwrap_err();
        assert!(matches!(
            e,
            CommandError::BadResponse {
                source: PayloadError::Truncated { .. },
                ..
            }
        ));
    }

    #[test]
    fn calibration_read_needs_room_for_nul() {
        let c = ReadCalibrationData::attempt(2);
        assert_eq!(c.buffer_len, 20_480);
        assert!(c.parse_response(&vec![b' '; 20_480]).is_err());
        assert!(c.parse_response(&vec![b' '; 20_479]).is_ok());
    }

    #[test]
    fn set_sys_cfg_and_write_phase() {
        let cfg = SyncConfig::from_usec(WiredSyncMode::Master, 0, 100, false);
        let t = HostTransaction::new(SetSysCfg { config: cfg }, 9).unwrap();
        let out = t.out_packet();
        assert_eq!(out.len(), 20 + 13);
        let got = parse_command_packet(Mcu::Color, &out).unwrap();
        assert_eq!(got.command, DeviceCommand::SetSysCfg(cfg));
        // The colour code is not a depth command.
        let rej = parse_command_packet(Mcu::Depth, &out).unwrap_err();
        assert_eq!(rej.status, DeviceStatus::NotImplemented);
        assert_eq!(rej.transaction_id, Some(9));

        let fw = DownloadFirmware {
            package: vec![0xAB; 300],
        };
        let t = HostTransaction::new(fw, 1).unwrap();
        assert_eq!(t.write_data().map(<[u8]>::len), Some(300));
        let got = parse_command_packet(Mcu::Depth, &t.out_packet()).unwrap();
        assert_eq!(
            got.command,
            DeviceCommand::DownloadFirmware {
                info: FirmwarePackageInfo {
                    last_package: 1,
                    package_size: 44
                },
                package_len: 300,
            }
        );
    }

    #[test]
    fn device_rejections() {
        let mut p = MODE_SET;
        p[20] = 6; // sensor mode 6 does not exist
        let r = parse_command_packet(Mcu::Depth, &p).unwrap_err();
        assert_eq!(r.status, DeviceStatus::InvalidParameter);
        let r = parse_command_packet(Mcu::Depth, &MODE_SET[..22]).unwrap_err();
        assert_eq!(r.status, DeviceStatus::InvalidPayloadSize);
        let mut p = MODE_SET;
        p[12] = 0x55; // unknown code
        let r = parse_command_packet(Mcu::Depth, &p).unwrap_err();
        assert_eq!(r.status, DeviceStatus::NotImplemented);
        assert_eq!(r.reason, RejectReason::UnknownCommand { code: 0x55 });
        let mut p = MODE_SET;
        p[0] = 0;
        assert_eq!(
            parse_command_packet(Mcu::Depth, &p)
                .unwrap_err()
                .transaction_id,
            None
        );
        assert!(parse_command_packet(Mcu::Depth, &MODE_SET[..19]).is_err());
        let mut long = MODE_SET.to_vec();
        long.resize(20 + 129, 0);
        assert!(matches!(
            CommandPacket::decode(&long),
            Err(CommandError::CommandDataTooLong { len: 129, .. })
        ));
        // NV tag 7 is not defined.
        let t = HostTransaction::new(
            NvDataGet {
                tag: NvTag::LaserPower,
            },
            2,
        )
        .unwrap();
        let mut out = t.out_packet();
        out[20] = 7;
        assert_eq!(
            parse_command_packet(Mcu::Depth, &out).unwrap_err().status,
            DeviceStatus::ParamBadTag
        );
    }

    #[test]
    fn codes_and_ids() {
        for (c, v, _) in CODES {
            assert_eq!(CommandCode::from_value(c.mcu(), v), Some(c));
            assert_eq!(c.value(), v);
        }
        assert_eq!(CommandCode::from_value(Mcu::Color, 0x201), None);
        let mut ids = TransactionIds { next: u32::MAX };
        assert_eq!(ids.next_id(), u32::MAX);
        assert_eq!(ids.next_id(), 0);
        assert_eq!(
            DeviceStatus::from_value(0x484).name(),
            "ADC_UNSUPPORTED_DEVICE"
        );
        assert_eq!(
            DeviceStatus::from_value(0x999),
            DeviceStatus::Unknown(0x999)
        );
        assert_eq!(DeviceStatus::Unknown(0x999).value(), 0x999);
    }

    #[test]
    fn nv_data_short_is_an_error() {
        let mut t = HostTransaction::new(
            NvDataGet {
                tag: NvTag::IrSensorCalibration,
            },
            5,
        )
        .unwrap();
        assert_eq!(t.read_len(), Some(2_000_000));
        t.accept_data(&[1, 2, 3]).unwrap();
        let e = t
            .finish(&StatusPacket::new(5, DeviceStatus::Success).encode())
            .unwrap_err();
        assert!(matches!(
            e,
            CommandError::BadResponse {
                source: PayloadError::NvDataTooShort { got: 3 },
                ..
            }
        ));
    }
}
