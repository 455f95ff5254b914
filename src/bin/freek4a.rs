//! `freek4a`: the Azure Kinect toolbox (record, list, info, extract, repair, convert-depth,
//! view, udev).
//!
//! Exit codes, for every subcommand: 0 success, 1 runtime failure, 2 usage error.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use cli::args::RecorderCommand;
use cli::udev;

// The command-line glue (option parser, messages, exit codes) shared by both binaries; it is
// compiled into each of them and is not part of the library's API.
#[path = "../cli/mod.rs"]
mod cli;
// The CLI modules name the library's layers as `crate::…`.
#[allow(unused_imports)]
use freek4a::{
    depthengine, device, emulator, geometry, mkv, playback, protocol, record, safe_output,
    transport, types, view,
};

const EXIT_CODES: &str = "Exit codes: 0 success, 1 runtime failure, 2 usage error.";

/// Userspace tools for the Microsoft Azure Kinect DK.
#[derive(Parser, Debug)]
#[command(name = "freek4a", version, after_help = EXIT_CODES, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Record to a Matroska file (the same options as k4arecorder; see `freek4a record --help`)
    #[command(disable_help_flag = true, after_help = EXIT_CODES)]
    Record {
        /// k4arecorder options followed by the output file
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<OsString>,
    },
    /// List the connected Azure Kinect devices
    #[command(after_help = EXIT_CODES)]
    List {
        /// List emulated units instead of USB devices (SPEC as for k4arecorder's --emulate;
        /// also read from FREEK4A_EMULATE)
        #[arg(long, value_name = "SPEC", num_args = 0..=1, default_missing_value = "", require_equals = true)]
        emulate: Option<String>,
    },
    /// Describe a recording (modes, tracks, duration, calibration, tags), or a rig's directory
    #[command(after_help = EXIT_CODES)]
    Info {
        /// The recording, or a directory recorded with `record --devices`
        file: PathBuf,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Pair the captures of a synchronised rig's recordings (a directory, or the files)
    #[command(after_help = EXIT_CODES)]
    Match {
        /// A rig's directory, or its recordings (the master's among them)
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Where to write the pairing (default: match.csv in the directory)
        #[arg(long, value_name = "PATH")]
        csv: Option<PathBuf>,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Write a recording's frames, IMU samples and calibration as files
    #[command(after_help = EXIT_CODES)]
    Extract {
        /// The recording
        file: PathBuf,
        /// Output directory
        #[arg(short = 'o', long = "output", value_name = "DIR")]
        out_dir: PathBuf,
        /// Write into a directory that is not empty (files of the same names are replaced)
        #[arg(long)]
        force: bool,
        /// Extract a recording whose calibration attachment is damaged (its bytes go to
        /// calibration-damaged.json, no intrinsics.json)
        #[arg(long)]
        skip_bad_calibration: bool,
        /// Also write 8-bit previews: colourised depth (range in the name) and normalised IR
        #[arg(long)]
        preview: bool,
        #[command(flatten)]
        geometry: cli::extract_geometry::GeometryOutputs,
    },
    /// Rebuild a damaged or unfinished recording into one every reader opens
    #[command(after_help = EXIT_CODES)]
    Repair {
        /// The damaged recording
        input: PathBuf,
        /// Where to write the repaired recording (never the input)
        #[arg(short = 'o', long = "output", value_name = "OUT")]
        output: PathBuf,
        /// Replace OUT if it exists
        #[arg(long)]
        force: bool,
        /// Store this calibration JSON instead of the recording's own (a damaged one cannot be
        /// rebuilt): the unit's calibration.json from another recording or from `extract`
        #[arg(long, value_name = "FILE")]
        calibration: Option<PathBuf>,
    },
    /// Turn a raw depth recording (`record --raw-depth`) into depth and IR tracks with a depth
    /// engine
    #[command(name = "convert-depth", after_help = EXIT_CODES)]
    ConvertDepth {
        /// The raw depth recording
        input: PathBuf,
        /// Where to write the converted recording (never the input)
        #[arg(short = 'o', long = "output", value_name = "OUT")]
        output: PathBuf,
        /// Replace OUT if it exists
        #[arg(long)]
        force: bool,
        /// Path of the depth engine library (default: FREEK4A_DEPTH_ENGINE, then the SDK's
        /// search locations; recordings from emulated units use the emulated engine)
        #[arg(long, value_name = "PATH")]
        depth_engine: Option<PathBuf>,
        /// Run the depth engine on OpenGL without a display (EGL), even when X works
        #[arg(long)]
        headless_gl: bool,
    },
    /// Show recordings (a file, or a rig directory side by side) in a browser
    #[command(after_help = EXIT_CODES)]
    View {
        /// A recording, or a directory of recordings
        path: PathBuf,
        /// Address to serve on (default: 127.0.0.1 and a free port)
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<String>,
        /// Open the page in the desktop's browser
        #[arg(long)]
        open: bool,
    },
    /// Print or install the udev rules that give users access to the device
    #[command(after_help = EXIT_CODES)]
    Udev {
        #[command(subcommand)]
        action: UdevCmd,
    },
}

#[derive(Subcommand, Debug)]
enum UdevCmd {
    /// Print the rules
    Print,
    /// Write the rules to /etc/udev/rules.d (or DIR) and reload udev
    Install {
        /// Write into this directory instead of /etc/udev/rules.d
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Do not run `udevadm control --reload-rules` and `udevadm trigger`
        #[arg(long)]
        no_reload: bool,
    },
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

fn runtime(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: 1,
        error: error.into(),
    }
}

fn usage(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: 2,
        error: error.into(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { code, error }) => {
            eprintln!("freek4a: {}", cli::toolbox::error_text(error.as_ref()));
            ExitCode::from(code)
        }
    }
}

fn run(command: Cmd) -> Result<(), Failure> {
    match command {
        Cmd::Record { args } => record(args),
        Cmd::List { emulate } => {
            let text = emulate.or_else(|| {
                std::env::var_os(cli::emulate::EMULATE_ENV)
                    .map(|v| v.to_string_lossy().into_owned())
            });
            let spec = text
                .map(|t| t.parse::<cli::emulate::EmulateSpec>())
                .transpose()
                .context("--emulate")
                .map_err(usage)?;
            let devices = cli::toolbox::list_devices(spec.as_ref()).map_err(runtime)?;
            print!("{}", cli::list::format_device_list(&devices));
            Ok(())
        }
        Cmd::Info { file, json } if file.is_dir() => {
            print!("{}", cli::rig::rig_info(&file, json).map_err(runtime)?);
            Ok(())
        }
        Cmd::Match { paths, csv, json } => {
            print!(
                "{}",
                cli::rig::match_command(&paths, csv.as_deref(), json).map_err(runtime)?
            );
            Ok(())
        }
        Cmd::Info { file, json } => {
            let text = cli::toolbox::info(&file, json).map_err(runtime)?;
            print!("{text}");
            Ok(())
        }
        Cmd::Extract {
            file,
            out_dir,
            force,
            skip_bad_calibration,
            preview,
            geometry,
        } => {
            let options = cli::extract::ExtractOptions {
                progress: true,
                force,
                skip_bad_calibration,
                preview,
            };
            cli::toolbox::extract(&file, &out_dir, &options)
                .map_err(runtime)
                .and_then(|()| {
                    cli::extract_geometry::run(&file, &out_dir, geometry).map_err(runtime)
                })
        }
        Cmd::View { path, listen, open } => {
            cli::view::view(&path, listen.as_deref(), open).map_err(runtime)
        }
        Cmd::Repair {
            input,
            output,
            force,
            calibration,
        } => {
            let options = freek4a::playback::repair::RepairOptions {
                overwrite: force,
                calibration,
            };
            cli::toolbox::repair(&input, &output, &options).map_err(runtime)
        }
        Cmd::ConvertDepth {
            input,
            output,
            force,
            depth_engine,
            headless_gl,
        } => cli::toolbox::convert_depth(
            &input,
            &output,
            depth_engine.as_deref(),
            headless_gl,
            force,
        )
        .map_err(runtime),
        Cmd::Udev {
            action: UdevCmd::Print,
        } => {
            print!("{}", udev::RULES);
            Ok(())
        }
        Cmd::Udev {
            action: UdevCmd::Install { dir, no_reload },
        } => {
            let report = udev::install(dir.as_deref(), !no_reload)
                .context("installing the udev rules")
                .map_err(runtime)?;
            println!("Wrote {}", report.path.display());
            match report.reloaded_with {
                Some(udevadm) => println!(
                    "Reloaded udev with {}; now unplug and re-plug the Azure Kinect.",
                    udevadm.display()
                ),
                None if no_reload => println!(
                    "Not reloaded; run `udevadm control --reload-rules && udevadm trigger` as root, then re-plug the device."
                ),
                None => println!(
                    "udevadm not found; reload udev (or reboot), then re-plug the device."
                ),
            }
            Ok(())
        }
    }
}

fn record(args: Vec<OsString>) -> Result<(), Failure> {
    // freek4a's own options (a rig, colour controls) first; the rest is k4arecorder's.
    let (rig, args) = cli::rig::split_args(args).map_err(usage)?;
    match cli::args::parse_recorder_args(args.clone()).map_err(usage)? {
        RecorderCommand::Help => {
            print!("{}", cli::help::recorder_help("freek4a record"));
            Ok(())
        }
        RecorderCommand::Version => {
            println!("freek4a {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        RecorderCommand::Usage => {
            eprint!("{}", cli::help::recorder_help("freek4a record"));
            Err(usage(anyhow::anyhow!(
                "{}",
                cli::args::usage_reason(args).unwrap_or_else(|| {
                    "expected options followed by exactly one output file".into()
                })
            )))
        }
        RecorderCommand::List(mut options) => {
            options
                .apply_environment(|k| std::env::var_os(k))
                .map_err(usage)?;
            let devices = cli::toolbox::list_devices(options.emulate.as_ref()).map_err(runtime)?;
            print!("{}", cli::list::format_device_list(&devices));
            Ok(())
        }
        RecorderCommand::Record(mut options) => {
            options
                .apply_environment(|k| std::env::var_os(k))
                .map_err(usage)?;
            let code = if rig.is_rig() {
                cli::rig::record(&rig, &options).map_err(runtime)?
            } else if !rig.color.is_empty() {
                cli::rig::record_one(&rig.color, &options).map_err(runtime)?
            } else {
                cli::toolbox::record(&options).map_err(runtime)?
            };
            if code == 0 {
                Ok(())
            } else {
                Err(runtime(anyhow::anyhow!("recording failed")))
            }
        }
    }
}
