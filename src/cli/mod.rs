//! The command-line product surface: k4arecorder's exact option parser, help and `--list`
//! text, the freek4a toolbox commands, Ctrl-C handling, the progress line, the recording
//! sequence (against small traits the device and writer implement) and the udev rules.
//!
//! The binaries in `src/bin/` are thin: they parse, call into here and turn results into exit
//! codes. Exit codes: k4arecorder keeps Microsoft's (0 success, help, usage or `--list`;
//! 1 every failure); the `freek4a` toolbox uses 0 success, 1 runtime failure, 2 usage error.

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

pub use args::{
    parse_recorder_args, stoi, Exposure, OptionValueError, RecorderArgError, RecorderCommand,
    RecorderOptions, DEPTH_ENGINE_ENV,
};
pub use emulate::{EmulateSpec, EmulateSpecError, EmulateSpeed, EMULATE_ENV};
pub use help::recorder_help;
pub use list::{format_device_list, ListedDevice};
pub use progress::{format_progress, format_summary, ProgressRenderer, ProgressStats};
pub use session::{
    record_on_console, run_recording, Clock, DroppedFrames, MonotonicClock, RecorderDevice,
    RecordingSink, SessionIo, SessionReport, WaitResult,
};
pub use signal::{SignalAction, StopSignal};
pub use toolbox::ToolboxError;
pub mod color_settings;
pub mod extract;
pub mod extract_geometry;
pub mod gl;
pub mod rig;
pub mod view;
pub mod wiring;
