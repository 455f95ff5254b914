//! The one integration-test binary; each module covers one area.

mod util;

mod cli;
mod contact;
mod depthengine;
mod device;
mod emulated_units;
mod geometry;
mod headless_gl;
mod install;
mod judges;
mod libk4a_client;
mod mkv_writer;
mod playback;
mod protocol;
mod raw_depth;
mod recorder;
mod rig;
mod usb_rules;
mod usbfs;
mod viewer;
