//! What freek4a and its emulated depth engine must agree on, in a crate of its own so the
//! engine (a shared library) does not depend on the whole of freek4a and freek4a can build the
//! engine alongside its binaries:
//!
//! - [`abi`]: the depth-engine plugin ABI (`k4a_register_plugin` and the structures it fills);
//! - [`depth_raw`]: the raw depth frame and calibration block as freek4a's emulator lays them
//!   out (our own choice; the real sensor's format is undocumented).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod abi;
pub mod depth_raw;
