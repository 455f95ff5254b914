//! The one integration-test binary; each module covers one area.

mod util;

mod cli;
mod depthengine;
mod device;
mod geometry;
mod judges;
mod libk4a_client;
mod mkv_writer;
mod playback;
mod protocol;
mod recorder;
