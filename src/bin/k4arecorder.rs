//! `k4arecorder`: a drop-in replacement for Microsoft's Azure Kinect recorder.
//!
//! Same options, defaults, help text, messages and exit codes (0: recorded, help, usage or
//! `--list`; 1: any failure), plus `--emulate`, `--depth-engine` and `--no-progress`.

use std::process::ExitCode;

use cli::args::RecorderCommand;

// The command-line glue (option parser, messages, exit codes) shared by both binaries; it is
// compiled into each of them and is not part of the library's API.
#[path = "../cli/mod.rs"]
#[allow(dead_code)] // k4arecorder uses the recording half of it.
mod cli;
// The CLI modules name the library's layers as `crate::…`.
#[allow(unused_imports)]
use freek4a::{
    depthengine, device, emulator, geometry, mkv, playback, protocol, record, safe_output,
    transport, types, view,
};

fn main() -> ExitCode {
    let code = match cli::args::parse_recorder_args(std::env::args_os().skip(1)) {
        Err(e) => {
            eprintln!("{e}");
            e.exit_code()
        }
        Ok(RecorderCommand::Help) => {
            print!("{}", cli::help::recorder_help("k4arecorder"));
            0
        }
        Ok(RecorderCommand::Usage) => {
            // Microsoft's tool prints the help and exits 0; the one extra line says why.
            print!("{}", cli::help::recorder_help("k4arecorder"));
            if let Some(reason) = cli::args::usage_reason(std::env::args_os().skip(1)) {
                eprintln!("k4arecorder: {reason}");
            }
            0
        }
        Ok(RecorderCommand::Version) => {
            println!("k4arecorder (freek4a) {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(RecorderCommand::List(mut options)) => {
            // Microsoft's tool exits 0 whatever listing finds.
            match options.apply_environment(|k| std::env::var_os(k)) {
                Err(e) => {
                    eprintln!("{e}");
                    e.exit_code()
                }
                Ok(()) => {
                    let devices = cli::toolbox::list_devices(options.emulate.as_ref())
                        .unwrap_or_else(|e| {
                            eprintln!("k4arecorder: {e}");
                            Vec::new()
                        });
                    print!("{}", cli::list::format_device_list(&devices));
                    0
                }
            }
        }
        Ok(RecorderCommand::Record(mut options)) => {
            match options.apply_environment(|k| std::env::var_os(k)) {
                Err(e) => {
                    eprintln!("{e}");
                    e.exit_code()
                }
                Ok(()) => match cli::toolbox::record(&options) {
                    Ok(code) => code,
                    Err(e) => {
                        eprintln!("k4arecorder: {e}");
                        1
                    }
                },
            }
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
