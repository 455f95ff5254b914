//! Sans-IO protocol: bytes in, typed values out, and back. Nothing here touches USB, clocks
//! or threads.
//!
//! Every wire structure has an encoder (used by the emulator) and a decoder (used by the
//! driver), tested on literal bytes. The human-readable specification lives in the
//! repository's `protocol/` directory; each fact there is marked as the SDK's behaviour or as
//! the emulator's own choice.
//!
//! | Module | Covers |
//! |---|---|
//! | [`command`] | command/status framing, command codes and types, host and device sides |
//! | [`payload`] | firmware versions, update status, sync config, jack state, serial, NV tags |
//! | [`imu`] | IMU packets, unit conversion, intrinsic polynomial |
//! | [`modes`] | depth mode table, transfer counts, configuration validation |
//! | [`uvc`] | probe/commit, payload headers, frame assembler, metadata, controls, exposure |
//! | [`descriptors`] | USB device/configuration/UVC/BOS/string descriptors, both directions |
//! | [`calibration`] | calibration JSON, 128-byte camera struct, per-mode intrinsics |
//! | [`depth_raw`] | the emulator's raw depth frame layout (our own choice) |

pub mod calibration;
pub mod command;
pub mod depth_raw;
pub mod descriptors;
pub mod imu;
pub mod modes;
pub mod payload;
pub mod uvc;
mod wire;

pub use wire::{ticks_to_usec, usec_to_ticks};
