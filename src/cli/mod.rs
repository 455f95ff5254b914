//! The command-line product surface: k4arecorder's exact option parser, help and `--list`
//! text, the freek4a toolbox commands, Ctrl-C handling, the progress line, k4arecorder's
//! messages around `record::Recorder`, and the udev rules.
//!
//! Not part of the library: both binaries in `src/bin/` compile this module into themselves
//! (`#[path]`), parse, call into here and turn results into exit codes. Its paths name the
//! library's layers as `crate::…`, which each binary's root imports from `freek4a`.
//!
//! Exit codes: k4arecorder keeps Microsoft's (0 success, help, usage or `--list`; 1 every
//! failure); the `freek4a` toolbox uses 0 success, 1 runtime failure, 2 usage error.

pub mod args;
pub mod emulate;
pub mod help;
pub mod hints;
pub mod list;
pub mod progress;
pub mod session;
pub mod signal;
pub mod toolbox;
pub mod udev;

pub mod color_settings;
pub mod extract;
pub mod extract_geometry;
pub mod gl;
pub mod rig;
pub mod view;
pub mod wiring;
