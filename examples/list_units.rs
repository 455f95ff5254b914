//! Lists the Azure Kinect units this machine sees, with serial number and firmware versions,
//! or emulated units with `--emulate[=N]` (no camera needed).
//!
//! ```sh
//! cargo run --release --example list_units               # USB
//! cargo run --release --example list_units -- --emulate=2
//! ```
//!
//! A unit that is plugged in but cannot be opened (typically: no permission on its device
//! node) is listed with the reason. Exit codes: 0 every unit listed (none is fine), 1 listing
//! failed or a unit could not be opened, 2 wrong arguments.

use std::io::Write;
use std::process::ExitCode;

use freek4a::protocol::descriptors::container_id_text;
use freek4a::{
    device, Backend, DepthEngineChoice, Device, EmulatedBackend, EmulatorSpec, NusbBackend,
    OpenOptions,
};

const USAGE: &str = "usage: list_units [--emulate[=UNITS]]";

/// The most units `--emulate` accepts (as the command-line tools: a master and a sync chain).
const MAX_UNITS: usize = 16;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let backend: Box<dyn Backend> = match args.as_slice() {
        [] => Box::new(NusbBackend::new()),
        [flag] if flag == "-h" || flag == "--help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [flag] if flag == "--emulate" => Box::new(EmulatedBackend::new(EmulatorSpec::default())),
        [flag] if flag.starts_with("--emulate=") => {
            match flag["--emulate=".len()..].parse::<usize>() {
                Ok(units @ 1..=MAX_UNITS) => Box::new(EmulatedBackend::new(EmulatorSpec {
                    units,
                    ..EmulatorSpec::default()
                })),
                _ => {
                    eprintln!(
                        "list_units: --emulate takes a number of units from 1 to {MAX_UNITS}"
                    );
                    return ExitCode::from(2);
                }
            }
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };

    let count = match device::list(backend.as_ref()) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("list_units: listing USB devices failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    match print_units(backend.as_ref(), count, &mut std::io::stdout().lock()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("list_units: writing the list failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Opens and prints each of the `count` units; `false` if one could not be opened.
fn print_units(backend: &dyn Backend, count: usize, out: &mut impl Write) -> std::io::Result<bool> {
    if count == 0 {
        writeln!(out, "No units connected.")?;
        writeln!(
            out,
            "(Try --emulate to see how an emulated unit is listed.)"
        )?;
        return Ok(true);
    }

    // Listing needs no depth engine: the units are only opened, never started.
    let options = OpenOptions {
        depth_engine: DepthEngineChoice::RawOnly,
        ..OpenOptions::default()
    };
    let mut failed = false;
    for index in 0..count {
        match Device::open_with(backend, index, options.clone()) {
            Ok(unit) => {
                let v = unit.hardware_version();
                writeln!(
                    out,
                    "{index}: serial {}  colour firmware {}  depth firmware {}  audio firmware {}  \
                     container {}",
                    unit.serial_number(),
                    v.rgb,
                    v.depth,
                    v.audio,
                    container_id_text(&unit.container_id())
                )?;
            }
            Err(e) => {
                failed = true;
                writeln!(out, "{index}: cannot open: {e}")?;
            }
        }
    }
    Ok(!failed)
}
