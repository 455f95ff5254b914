//! The one integration-test binary; each module covers one area.

mod util;

mod cli;
mod depthengine;
mod device;
mod judges;
mod mkv_writer;
mod playback;
mod protocol;
