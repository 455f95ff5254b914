//! freek4a: a userspace driver, recorder, reader and device emulator for the Azure Kinect DK.
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
