//! `freek4a record --devices all|SERIAL,...`: a rig of units wired with sync cables, recorded
//! from one command.
//!
//! Before anything starts, every unit is opened once for its serial number, firmware and sync
//! jacks ([`UnitFacts`]); [`plan`] derives the roles and the chain order from the cables and
//! checks the rig (one master, every other unit cabled, same firmware, the master's colour on,
//! delays within the SDK's limit, colour control values within each unit's range). Then every
//! unit records with k4arecorder's sequence on its own thread into `OUTDIR/<serial>.mkv`:
//! subordinates (and standalone units) first, the master only once all of them have started
//! their cameras and wait for its pulses. Ctrl-C (or `-l`) stops every unit and finishes every
//! file; a unit that fails (unplugged) finishes its own file while the others go on, and the exit
//! status says so. `OUTDIR/rig.json` describes the rig, the options and each file.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::cli::args::{Exposure, RecorderOptions};
use crate::cli::color_settings::{ColorOptionError, ColorSettingError, ColorSettings};
use crate::cli::emulate::EmulateSpec;
use crate::cli::progress::format_progress;
use crate::cli::session::{run_recording, RecorderDevice, SessionIo, SessionReport};
use crate::cli::signal::{SignalInstallError, StopSignal};
use crate::cli::wiring::{DeviceSource, SourceError};
use crate::device::{self, DepthEngineChoice, Device, DeviceError, OpenOptions};
use crate::emulator::EmulatedBackend;
use crate::mkv::writer::{RecordedDevice, RecordingSettings};
use crate::protocol::payload::JackState;
use crate::record::{CaptureSource, FileSink, MonotonicClock, Progress, SinkError};
use crate::transport::nusb_backend::NusbBackend;
use crate::transport::Backend;
use crate::types::{
    Capture, ColorResolution, DeviceConfig, HardwareVersion, ImuSample, WiredSyncMode,
};

/// Microsoft's samples keep depth cameras at least this far apart so their lasers do not
/// interfere; the default delay of chain position p is p times this.
pub const DEPTH_INTERFERENCE_STEP_USEC: u32 = 160;

/// How long the master waits for every subordinate to start its cameras.
const SUBORDINATE_START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long subordinates go on after the master stopped, to deliver its last pulses' frames.
const SUBORDINATE_DRAIN: Duration = Duration::from_millis(400);

/// Which units to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSelection {
    /// Every connected unit.
    All,
    /// These serial numbers.
    Serials(Vec<String>),
}

/// The options `freek4a record` has besides k4arecorder's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RigOptions {
    /// `--devices`: record a rig.
    pub devices: Option<DeviceSelection>,
    /// `--master SERIAL`: the master, whatever the cables say.
    pub master: Option<String>,
    /// `--sync-delays SERIAL=USEC,...`.
    pub sync_delays: Vec<(String, u32)>,
    /// `--allow-standalone`: record units without cables standalone instead of refusing.
    pub allow_standalone: bool,
    /// `--allow-firmware-mismatch`: warn about differing firmware instead of refusing.
    pub allow_firmware_mismatch: bool,
    /// The colour controls.
    pub color: ColorSettings,
    /// k4arecorder options seen that a rig decides itself (`--device`, `--external-sync`,
    /// `--sync-delay`, `--preview`).
    pub single_unit_options: Vec<String>,
}

/// A `freek4a record` option of ours that is malformed.
#[derive(Debug, thiserror::Error)]
pub enum RigArgError {
    /// An option without its value.
    #[error("{0} needs a value")]
    MissingValue(String),
    /// `--sync-delays` item not SERIAL=USEC.
    #[error("--sync-delays: `{0}` must be SERIAL=MICROSECONDS")]
    BadDelay(String),
    /// `--devices` empty.
    #[error("--devices: give `all` or serial numbers separated by commas")]
    BadDevices,
    /// A colour option.
    #[error(transparent)]
    Color(#[from] ColorOptionError),
}

impl RigOptions {
    /// Whether a rig was asked for.
    pub fn is_rig(&self) -> bool {
        self.devices.is_some()
    }
}

/// Takes `freek4a record`'s own options out of `args`, leaving k4arecorder's.
pub fn split_args(args: Vec<OsString>) -> Result<(RigOptions, Vec<OsString>), RigArgError> {
    let mut rig = RigOptions::default();
    let mut rest = Vec::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let text = arg.to_string_lossy().into_owned();
        let value = |it: &mut std::vec::IntoIter<OsString>| {
            it.next()
                .map(|v| v.to_string_lossy().into_owned())
                .ok_or_else(|| RigArgError::MissingValue(text.clone()))
        };
        match text.as_str() {
            "--devices" => {
                let v = value(&mut it)?;
                rig.devices = Some(if v.eq_ignore_ascii_case("all") {
                    DeviceSelection::All
                } else {
                    let serials: Vec<String> = v
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect();
                    if serials.is_empty() {
                        return Err(RigArgError::BadDevices);
                    }
                    DeviceSelection::Serials(serials)
                });
            }
            "--master" => rig.master = Some(value(&mut it)?),
            "--sync-delays" => {
                for item in value(&mut it)?.split(',').filter(|s| !s.trim().is_empty()) {
                    let (serial, usec) = item
                        .split_once('=')
                        .ok_or_else(|| RigArgError::BadDelay(item.into()))?;
                    let usec = usec
                        .trim()
                        .parse::<u32>()
                        .map_err(|_| RigArgError::BadDelay(item.into()))?;
                    rig.sync_delays.push((serial.trim().to_string(), usec));
                }
            }
            "--allow-standalone" => rig.allow_standalone = true,
            "--allow-firmware-mismatch" => rig.allow_firmware_mismatch = true,
            t if ColorSettings::OPTIONS.iter().any(|(o, _)| *o == t) => {
                let takes = ColorSettings::OPTIONS.iter().any(|(o, v)| *o == t && *v);
                let v = if takes { Some(value(&mut it)?) } else { None };
                rig.color.set_option(t, v.as_deref())?;
            }
            _ => {
                if matches!(
                    text.as_str(),
                    "--device" | "--external-sync" | "--sync-delay"
                ) || text.starts_with("--preview")
                {
                    rig.single_unit_options.push(text);
                }
                rest.push(arg);
            }
        }
    }
    Ok((rig, rest))
}

/// A unit's role in the rig.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Drives the pulses (sync-out cabled, sync-in empty).
    Master,
    /// Follows the pulses (sync-in cabled).
    Subordinate,
    /// No cables, recorded on its own (`--allow-standalone`).
    Standalone,
}

impl Role {
    fn sync_mode(self) -> WiredSyncMode {
        match self {
            Role::Master => WiredSyncMode::Master,
            Role::Subordinate => WiredSyncMode::Subordinate,
            Role::Standalone => WiredSyncMode::Standalone,
        }
    }
    fn word(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Subordinate => "subordinate",
            Role::Standalone => "standalone",
        }
    }
}

/// What a unit says about itself before the rig starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitFacts {
    /// Index in the device list.
    pub index: usize,
    /// Serial number.
    pub serial: String,
    /// Firmware versions.
    pub firmware: HardwareVersion,
    /// Cables in its sync jacks.
    pub jack: JackState,
}

/// One unit of a planned rig.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedUnit {
    /// The unit.
    pub facts: UnitFacts,
    /// Its role.
    pub role: Role,
    /// Position in the chain (0 the master; standalone units have none).
    pub position: Option<usize>,
    /// Subordinate delay off the master, µs.
    pub delay_usec: u32,
}

/// The rig as it will be recorded: the master first, then the chain in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RigPlan {
    /// The units.
    pub units: Vec<PlannedUnit>,
    /// Whether the chain order follows from the cables (otherwise it is the order given).
    pub order_from_cables: bool,
    /// Warnings to print (accepted firmware differences).
    pub warnings: Vec<String>,
}

/// Why a rig cannot be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RigError {
    /// Listing or opening a unit failed.
    #[error("unit {which}: {source}")]
    Device {
        /// Serial or index.
        which: String,
        /// Why.
        #[source]
        source: DeviceError,
    },
    /// No unit is connected.
    #[error("no Azure Kinect is connected")]
    NoUnits,
    /// A named unit is not connected.
    #[error("unit {serial} is not connected (connected: {connected})")]
    Missing {
        /// The serial asked for.
        serial: String,
        /// The serials found.
        connected: String,
    },
    /// A serial given twice.
    #[error("unit {0} is listed twice in --devices")]
    Duplicate(String),
    /// The cables do not make a rig.
    #[error("{0}")]
    Topology(String),
    /// Units have different firmware.
    #[error("the units run different firmware ({0}); update them to the same version, or pass --allow-firmware-mismatch to record anyway")]
    Firmware(String),
    /// The master's colour camera is off.
    #[error("the master ({0}) must stream colour: its colour camera drives the sync pulses, so -c OFF cannot be used in a synchronised rig (record colour, or pass --allow-standalone with units that have no cables)")]
    MasterColorOff(String),
    /// A delay the SDK refuses, or for a unit that has none.
    #[error("--sync-delays: {0}")]
    Delay(String),
    /// A k4arecorder option that a rig decides itself.
    #[error("{0} cannot be used with --devices: the rig takes every unit named there, and roles and delays come from the sync cables (--master, --sync-delays)")]
    SingleUnitOption(String),
    /// `--raw-depth` with `--devices`.
    #[error("--raw-depth records one unit at a time: a rig's files are trimmed to common sync pulses by the depth engine's timestamps, which raw frames do not have yet")]
    RawDepth,
    /// A colour control value.
    #[error(transparent)]
    Color(#[from] ColorSettingError),
    /// The output directory.
    #[error("output directory {path}: {source}")]
    OutDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// rig.json could not be written.
    #[error("writing {path}: {source}")]
    RigJson {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The signal handler.
    #[error(transparent)]
    Signal(#[from] SignalInstallError),
}

fn jack_words(j: JackState) -> &'static str {
    match (j.sync_in_connected, j.sync_out_connected) {
        (false, false) => "no cables",
        (true, false) => "sync-in only",
        (false, true) => "sync-out only",
        (true, true) => "sync-in and sync-out",
    }
}

fn cabling(units: &[UnitFacts]) -> String {
    units
        .iter()
        .map(|u| format!("{}: {}", u.serial, jack_words(u.jack)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Roles, chain order and delays from the units' cables and the options; `period_usec` is the
/// frame period the SDK limits delays to.
pub fn plan(
    units: &[UnitFacts],
    rig: &RigOptions,
    period_usec: u32,
    color_on: bool,
) -> Result<RigPlan, RigError> {
    let cabled = |u: &UnitFacts| u.jack.sync_in_connected || u.jack.sync_out_connected;
    let loose: Vec<&UnitFacts> = units.iter().filter(|u| !cabled(u)).collect();
    if !loose.is_empty() && !rig.allow_standalone {
        return Err(RigError::Topology(format!(
            "{} {} no sync cable in either jack, so {} cannot be synchronised with the rig (cables: {}); plug {} in, leave {} out of --devices, or pass --allow-standalone to record {} unsynchronised",
            names(&loose),
            if loose.len() == 1 { "has" } else { "have" },
            if loose.len() == 1 { "it" } else { "they" },
            cabling(units),
            if loose.len() == 1 { "its cable" } else { "their cables" },
            if loose.len() == 1 { "it" } else { "them" },
            if loose.len() == 1 { "it" } else { "them" },
        )));
    }
    let wired: Vec<&UnitFacts> = units.iter().filter(|u| cabled(u)).collect();
    let mut warnings = Vec::new();
    let master = if wired.is_empty() {
        None
    } else if let Some(m) = &rig.master {
        let Some(u) = units.iter().find(|u| &u.serial == m) else {
            return Err(RigError::Topology(format!(
                "--master {m} is not one of the rig's units ({})",
                units
                    .iter()
                    .map(|u| u.serial.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        if !u.jack.sync_out_connected {
            return Err(RigError::Topology(format!(
                "--master {m}: its sync-out jack is empty, so its pulses reach no unit (cables: {})",
                cabling(units)
            )));
        }
        Some(u)
    } else {
        let candidates: Vec<&UnitFacts> = wired
            .iter()
            .copied()
            .filter(|u| u.jack.sync_out_connected && !u.jack.sync_in_connected)
            .collect();
        match candidates.len() {
            1 => Some(candidates[0]),
            0 => {
                return Err(RigError::Topology(format!(
                    "no unit can be the master: a master has a cable in sync-out and none in sync-in, but {} (cables: {}); check the cables, or name the master with --master",
                    if wired.iter().all(|u| u.jack.sync_in_connected) {
                        "every cabled unit has one in sync-in (a loop, or a cable from equipment outside the rig)"
                    } else {
                        "no unit has one in sync-out"
                    },
                    cabling(units)
                )))
            }
            _ => {
                return Err(RigError::Topology(format!(
                    "{} all have a cable in sync-out and none in sync-in, so each could be a master of its own chain (cables: {}); a rig has one master: join the chains, or name the master with --master",
                    names(&candidates),
                    cabling(units)
                )))
            }
        }
    };
    let mut middle = Vec::new();
    let mut ends = Vec::new();
    for u in &wired {
        if Some(u.serial.as_str()) == master.map(|m| m.serial.as_str()) {
            continue;
        }
        if !u.jack.sync_in_connected {
            return Err(RigError::Topology(format!(
                "{} has a cable in sync-out but none in sync-in, and {} is the master: a subordinate needs the master's pulses on its sync-in (cables: {})",
                u.serial,
                master.map_or("no unit", |m| m.serial.as_str()),
                cabling(units)
            )));
        }
        if u.jack.sync_out_connected {
            middle.push(*u);
        } else {
            ends.push(*u);
        }
    }
    if master.is_none() && !wired.is_empty() {
        return Err(RigError::Topology(format!(
            "no master among the cabled units (cables: {})",
            cabling(units)
        )));
    }
    let order_from_cables = middle.len() <= 1 && ends.len() <= 1;
    let mut planned = Vec::new();
    if let Some(m) = master {
        planned.push(PlannedUnit {
            facts: m.clone(),
            role: Role::Master,
            position: Some(0),
            delay_usec: 0,
        });
    }
    for (i, u) in middle.iter().chain(ends.iter()).enumerate() {
        let position = i + 1;
        planned.push(PlannedUnit {
            facts: (*u).clone(),
            role: Role::Subordinate,
            position: Some(position),
            delay_usec: DEPTH_INTERFERENCE_STEP_USEC * position as u32,
        });
    }
    for u in loose {
        planned.push(PlannedUnit {
            facts: u.clone(),
            role: Role::Standalone,
            position: None,
            delay_usec: 0,
        });
    }
    for (serial, usec) in &rig.sync_delays {
        let Some(u) = planned.iter_mut().find(|u| &u.facts.serial == serial) else {
            return Err(RigError::Delay(format!(
                "{serial} is not one of the rig's units"
            )));
        };
        if u.role != Role::Subordinate {
            return Err(RigError::Delay(format!(
                "{serial} is the rig's {}; only subordinates have a delay off the master",
                u.role.word()
            )));
        }
        u.delay_usec = *usec;
    }
    if let Some(u) = planned.iter().find(|u| u.delay_usec > period_usec) {
        return Err(RigError::Delay(format!(
            "{} would be {} us behind the master, but a subordinate's delay cannot exceed one frame interval ({period_usec} us at this frame rate)",
            u.facts.serial, u.delay_usec
        )));
    }
    if let Some(m) = planned.iter().find(|u| u.role == Role::Master) {
        if !color_on {
            return Err(RigError::MasterColorOff(m.facts.serial.clone()));
        }
    }
    let versions = |v: &HardwareVersion| {
        format!(
            "colour {}, depth {}, audio {}, depth sensor {}.{}",
            v.rgb, v.depth, v.audio, v.depth_sensor.major, v.depth_sensor.minor
        )
    };
    if let Some(first) = units.first() {
        if units
            .iter()
            .any(|u| versions(&u.firmware) != versions(&first.firmware))
        {
            let list = units
                .iter()
                .map(|u| format!("{}: {}", u.serial, versions(&u.firmware)))
                .collect::<Vec<_>>()
                .join("; ");
            if rig.allow_firmware_mismatch {
                warnings.push(format!(
                    "Warning: the units run different firmware ({list})."
                ));
            } else {
                return Err(RigError::Firmware(list));
            }
        }
    }
    if !order_from_cables {
        warnings.push(format!(
            "Note: the cables do not tell the chain order of {}; delays follow the order given ({}).",
            names(&middle.iter().chain(ends.iter()).copied().collect::<Vec<_>>()),
            planned
                .iter()
                .filter(|u| u.role == Role::Subordinate)
                .map(|u| u.facts.serial.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(RigPlan {
        units: planned,
        order_from_cables,
        warnings,
    })
}

fn names(units: &[&UnitFacts]) -> String {
    let list: Vec<&str> = units.iter().map(|u| u.serial.as_str()).collect();
    match list.len() {
        1 => format!("unit {}", list[0]),
        _ => format!("units {}", list.join(", ")),
    }
}

/// Makes a backend for one more unit of the rig (the emulated units are shared).
type BackendMaker = Box<dyn Fn() -> Box<dyn Backend> + Send + Sync>;

/// The backend a rig's units share.
fn rig_backend(emulate: Option<&EmulateSpec>) -> (BackendMaker, Option<EmulatedBackend>) {
    match emulate {
        Some(spec) => {
            let b = EmulatedBackend::new(spec.emulator_spec());
            let handle = b.clone();
            (
                Box::new(move || Box::new(b.clone()) as Box<dyn Backend>),
                Some(handle),
            )
        }
        None => (
            Box::new(|| Box::new(NusbBackend::new()) as Box<dyn Backend>),
            None,
        ),
    }
}

/// Opens every selected unit once for its facts, and checks the colour values against it.
fn gather(
    backend: &dyn Backend,
    selection: &DeviceSelection,
    color: &ColorSettings,
) -> Result<Vec<UnitFacts>, RigError> {
    let count = device::list(backend).map_err(|source| RigError::Device {
        which: "list".into(),
        source,
    })?;
    if count == 0 {
        return Err(RigError::NoUnits);
    }
    let options = OpenOptions {
        depth_engine: DepthEngineChoice::RawOnly,
        ..OpenOptions::default()
    };
    let mut all = Vec::new();
    for index in 0..count {
        let dev = Device::open_with(backend, index, options.clone()).map_err(|source| {
            RigError::Device {
                which: format!("#{index}"),
                source,
            }
        })?;
        let jack = dev.sync_jack().map_err(|source| RigError::Device {
            which: dev.serial_number().to_string(),
            source,
        })?;
        all.push((
            UnitFacts {
                index,
                serial: dev.serial_number().to_string(),
                firmware: dev.hardware_version(),
                jack,
            },
            dev,
        ));
    }
    let chosen: Vec<(UnitFacts, Device)> = match selection {
        DeviceSelection::All => all,
        DeviceSelection::Serials(serials) => {
            let connected = all
                .iter()
                .map(|(u, _)| u.serial.clone())
                .collect::<Vec<_>>()
                .join(", ");
            let mut out = Vec::new();
            for s in serials {
                if out
                    .iter()
                    .any(|(u, _): &(UnitFacts, Device)| &u.serial == s)
                {
                    return Err(RigError::Duplicate(s.clone()));
                }
                let Some(pos) = all.iter().position(|(u, _)| &u.serial == s) else {
                    return Err(RigError::Missing {
                        serial: s.clone(),
                        connected,
                    });
                };
                out.push(all.remove(pos));
            }
            out
        }
    };
    for (_, dev) in &chosen {
        color.validate(dev)?;
    }
    Ok(chosen.into_iter().map(|(u, _)| u).collect())
}

/// The stretch of the master's time line every file of the rig holds: every unit discards its
/// first capture (as k4arecorder does) and then writes only the captures from the first pulse
/// after every unit's first capture, up to the master's last written capture, so all files
/// begin and end on the same pulses.
#[derive(Default)]
struct RigWindow {
    /// Per unit: the master time of its first (discarded) capture, once it came.
    firsts: Mutex<Vec<Option<u64>>>,
    /// Units that will not report (failed first, or standalone).
    gone: Mutex<Vec<bool>>,
    /// Units still expected to report a first capture.
    expected: std::sync::atomic::AtomicUsize,
    /// Master time from which captures are written (µs; 0 until known).
    start_usec: std::sync::atomic::AtomicU64,
    /// Master time after which captures are dropped (µs; `u64::MAX` while the master records).
    end_usec: std::sync::atomic::AtomicU64,
    /// Master time of the master's latest written capture (subordinates do not run ahead).
    master_last_usec: std::sync::atomic::AtomicU64,
    /// When the first unit reported, to stop waiting for a unit that never does.
    first_report: Mutex<Option<Instant>>,
}

/// How long units wait for each other's first capture before the window opens without them.
const WINDOW_WAIT: Duration = Duration::from_secs(3);

impl RigWindow {
    fn new(units: usize) -> RigWindow {
        RigWindow {
            firsts: Mutex::new(vec![None; units]),
            gone: Mutex::new(vec![false; units]),
            expected: std::sync::atomic::AtomicUsize::new(units),
            start_usec: std::sync::atomic::AtomicU64::new(0),
            end_usec: std::sync::atomic::AtomicU64::new(u64::MAX),
            master_last_usec: std::sync::atomic::AtomicU64::new(0),
            first_report: Mutex::new(None),
        }
    }

    fn report_first(&self, unit: usize, master_usec: u64) {
        let g = self.gone.lock().unwrap_or_else(|e| e.into_inner());
        let mut f = self.firsts.lock().unwrap_or_else(|e| e.into_inner());
        if f[unit].is_none() && !g[unit] {
            f[unit] = Some(master_usec);
            self.expected
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            self.first_report
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(Instant::now);
        }
    }

    /// A unit that will not report (failed before streaming).
    fn give_up(&self, unit: usize) {
        let mut g = self.gone.lock().unwrap_or_else(|e| e.into_inner());
        let f = self.firsts.lock().unwrap_or_else(|e| e.into_inner());
        if f[unit].is_none() && !g[unit] {
            g[unit] = true;
            self.expected
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// The start, once every unit reported (or the wait is over); `None` meanwhile.
    fn start(&self, period_usec: u64) -> Option<u64> {
        use std::sync::atomic::Ordering::SeqCst;
        let s = self.start_usec.load(SeqCst);
        if s != 0 {
            return Some(s);
        }
        let waited = self
            .first_report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() >= WINDOW_WAIT);
        if self.expected.load(SeqCst) > 0 && !waited {
            return None;
        }
        let latest = self
            .firsts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flatten()
            .copied()
            .max()?;
        // The next pulse after the latest first capture (half a period of tolerance).
        let start = latest + period_usec / 2;
        let _ = self.start_usec.compare_exchange(0, start, SeqCst, SeqCst);
        Some(self.start_usec.load(SeqCst))
    }
}

/// One unit's device for the recording sequence: the source, plus the colour settings applied
/// before the cameras start, and a report when they started.
struct RigDevice {
    inner: DeviceSource,
    color: ColorSettings,
    gain: Option<u8>,
    /// Tags of the values read back.
    tags: Vec<(String, String)>,
    unit: usize,
    events: mpsc::Sender<Event>,
    /// The rig's common window, this unit's delay off the master and the frame period (µs).
    window: Option<(Arc<RigWindow>, u64, u64)>,
    /// Whether the first capture (discarded by the sequence) has been handed out.
    first_given: bool,
    /// Master time of the latest capture handed out.
    last_usec: Arc<std::sync::atomic::AtomicU64>,
    /// This unit is the rig's master.
    is_master: bool,
    /// A subordinate's capture held until the master has written its pulse.
    pending: Option<(Capture, u64)>,
}

/// The master's time line position of a capture: its colour time (or depth time) less the
/// unit's delay off the master.
fn master_usec(c: &Capture, delay_usec: u64) -> Option<u64> {
    let t = c
        .color
        .as_ref()
        .or(c.depth.as_ref())
        .or(c.ir.as_ref())?
        .device_timestamp_usec;
    Some(t.saturating_sub(delay_usec))
}

enum Event {
    Started(usize, SystemTime),
    StartFailed(usize),
    Done(usize, SessionReport),
}

impl RecorderDevice for RigDevice {
    fn installed_count(&mut self) -> u32 {
        self.inner.installed_count()
    }
    fn open(&mut self, index: u8) -> Result<(), SourceError> {
        self.inner.open(index)
    }
    fn serial_number(&mut self) -> Result<String, SourceError> {
        self.inner.serial_number()
    }
    fn hardware_version(&mut self) -> Result<HardwareVersion, SourceError> {
        self.inner.hardware_version()
    }
    fn set_exposure(&mut self, exposure: Exposure) -> Result<(), SourceError> {
        self.inner.set_exposure(exposure)?;
        let dev = self.inner.device_mut().ok_or(SourceError::NotOpen)?;
        self.tags = self.color.apply(dev, exposure, self.gain)?;
        Ok(())
    }
    fn set_gain(&mut self, gain: u8) -> Result<(), SourceError> {
        self.inner.set_gain(gain)
    }
    fn close(&mut self) {
        self.inner.close()
    }
    fn not_found_hints(&mut self) -> Vec<String> {
        self.inner.not_found_hints()
    }
}

impl CaptureSource for RigDevice {
    type Error = SourceError;

    fn start_cameras(&mut self, config: &DeviceConfig) -> Result<(), SourceError> {
        let r = self.inner.start_cameras(config);
        let _ = self.events.send(match r {
            Ok(()) => Event::Started(self.unit, SystemTime::now()),
            Err(_) => Event::StartFailed(self.unit),
        });
        r
    }
    fn start_imu(&mut self) -> Result<(), SourceError> {
        self.inner.start_imu()
    }
    fn get_capture(&mut self, timeout: Duration) -> Result<Option<Capture>, SourceError> {
        use std::sync::atomic::Ordering::SeqCst;
        let Some((window, delay, period)) = self.window.clone() else {
            return self.inner.get_capture(timeout);
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((c, t)) = self.pending.take() {
                // Captures before the rig's first common pulse, or after the master's last
                // written one, belong in no file; a subordinate hands a capture out only once
                // the master wrote the same pulse, so it never runs ahead.
                match window.start(period) {
                    None => self.pending = Some((c, t)),
                    Some(s) if t < s => continue,
                    Some(_) if self.is_master => {
                        self.last_usec.store(t, SeqCst);
                        window.master_last_usec.fetch_max(t, SeqCst);
                        return Ok(Some(c));
                    }
                    Some(_) => {
                        let end = window.end_usec.load(SeqCst);
                        if t > end {
                            continue;
                        }
                        if window.master_last_usec.load(SeqCst) + period / 2 >= t || end != u64::MAX
                        {
                            self.last_usec.store(t, SeqCst);
                            return Ok(Some(c));
                        }
                        self.pending = Some((c, t));
                    }
                }
                if Instant::now() >= deadline {
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let c = match self.inner.get_capture(left) {
                Ok(Some(c)) => c,
                Ok(None) => return Ok(None),
                Err(e) => {
                    window.give_up(self.unit);
                    return Err(e);
                }
            };
            let Some(t) = master_usec(&c, delay) else {
                continue;
            };
            if !self.first_given {
                self.first_given = true;
                window.report_first(self.unit, t);
                return Ok(Some(c));
            }
            self.pending = Some((c, t));
        }
    }
    fn get_imu_sample(&mut self, timeout: Duration) -> Result<Option<ImuSample>, SourceError> {
        self.inner.get_imu_sample(timeout)
    }
    fn stop_imu(&mut self) {
        self.inner.stop_imu()
    }
    fn stop_cameras(&mut self) {
        if let (true, Some((window, _, _))) = (self.is_master, &self.window) {
            // The master's last written pulse ends every file.
            window.end_usec.store(
                self.last_usec.load(std::sync::atomic::Ordering::SeqCst),
                std::sync::atomic::Ordering::SeqCst,
            );
        }
        self.inner.stop_cameras()
    }
    fn dropped(&self) -> crate::types::DropCounts {
        self.inner.dropped()
    }
    fn recorded_device(&self) -> Option<RecordedDevice> {
        self.inner.recorded_device()
    }
}

/// Console lines of one unit, each prefixed with its serial and written whole.
struct Prefixed {
    prefix: String,
    to_stderr: bool,
    line: Vec<u8>,
}

impl Write for Prefixed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            self.line.push(b);
            if b == b'\n' {
                let mut text = self.prefix.clone().into_bytes();
                text.append(&mut self.line);
                if self.to_stderr {
                    std::io::stderr().lock().write_all(&text)?;
                } else {
                    std::io::stdout().lock().write_all(&text)?;
                }
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a unit's recording produced, for rig.json and the summary.
#[derive(Clone, Debug, Default)]
struct UnitOutcome {
    started: Option<SystemTime>,
    report: Option<SessionReport>,
}

fn unix_usec(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn rig_json(
    plan: &RigPlan,
    options: &RecorderOptions,
    rig: &RigOptions,
    outcomes: &[UnitOutcome],
) -> serde_json::Value {
    let c = &options.device_config;
    let units: Vec<serde_json::Value> = plan
        .units
        .iter()
        .zip(outcomes)
        .map(|(u, o)| {
            let f = &u.facts.firmware;
            let mut v = serde_json::json!({
                "serial": u.facts.serial,
                "index": u.facts.index,
                "firmware": {
                    "color": f.rgb.to_string(),
                    "depth": f.depth.to_string(),
                    "audio": f.audio.to_string(),
                    "depth_sensor": format!("{}.{}", f.depth_sensor.major, f.depth_sensor.minor),
                },
                "jacks": {"sync_in": u.facts.jack.sync_in_connected, "sync_out": u.facts.jack.sync_out_connected},
                "role": u.role.word(),
                "chain_position": u.position,
                "subordinate_delay_usec": u.delay_usec,
                "depth_delay_usec": c.depth_delay_off_color_usec,
                "file": format!("{}.mkv", u.facts.serial),
                "start_unix_usec": o.started.map(unix_usec),
            });
            if let Some(r) = &o.report {
                v["result"] = serde_json::json!({
                    "exit_code": r.exit_code,
                    "finished": r.finished,
                    "captures": r.stats.captures,
                    "imu_samples": r.stats.imu_samples,
                    "bytes": r.stats.bytes_written,
                    "dropped": {
                        "color": r.stats.drops[crate::types::TrackKind::Color],
                        "depth": r.stats.drops[crate::types::TrackKind::Depth],
                        "ir": r.stats.drops[crate::types::TrackKind::Ir],
                        "imu": r.stats.drops[crate::types::TrackKind::Imu],
                    },
                });
            }
            v
        })
        .collect();
    serde_json::json!({
        "schema_version": 1,
        "writing_app": format!("freek4a-{}", env!("CARGO_PKG_VERSION")),
        "chain_order_from_cables": plan.order_from_cables,
        "options": {
            "color_resolution": c.color_resolution.sdk_name(),
            "color_format": c.color_format.sdk_name(),
            "depth_mode": c.depth_mode.sdk_name(),
            "camera_fps": c.camera_fps.hz(),
            "depth_delay_usec": c.depth_delay_off_color_usec,
            "imu": options.imu_enabled,
            "record_length_sec": options.record_length_sec,
            "exposure_usec": match options.exposure { Exposure::Auto => None, Exposure::ManualUsec(u) => Some(u) },
            "gain": options.gain,
            "master": rig.master,
            "sync_delays": rig.sync_delays.iter().map(|(s, d)| format!("{s}={d}")).collect::<Vec<_>>(),
            "allow_standalone": rig.allow_standalone,
            "emulate": options.emulate.as_ref().map(|e| e.to_string()),
        },
        "units": units,
    })
}

fn write_rig_json(path: &Path, value: &serde_json::Value) -> Result<(), RigError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default() + "\n";
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| RigError::RigJson {
            path: path.to_path_buf(),
            source,
        })
}

/// A unit's recording file, its colour-control tags and `extra_tags` added to its settings.
fn unit_file(
    device: &RigDevice,
    options: &RecorderOptions,
    mut settings: RecordingSettings,
    queue: usize,
    extra_tags: &[(String, String)],
) -> Result<FileSink, SinkError> {
    settings.tags.extend_from_slice(&device.tags);
    settings.tags.extend_from_slice(extra_tags);
    FileSink::create(&options.output_path, settings, queue)
}

/// A warning when `units` streaming `config` cannot all fit in the kernel's usbfs memory.
fn usbfs_budget_warning(units: usize, config: &DeviceConfig) -> Option<String> {
    use crate::transport::usbfs_memory::{read_usbfs_budget, UsbfsBudget, USBFS_MEMORY_HINT};
    let UsbfsBudget::Limited { megabytes } = read_usbfs_budget().ok()? else {
        return None;
    };
    let need = units as u64 * device::min_usbfs_bytes(config);
    (need > u64::from(megabytes) << 20).then(|| {
        format!(
            "Warning: {units} units need at least {:.1} MiB of usbfs memory together, more than \
             the kernel's limit of {megabytes} MiB, so some will not start; {USBFS_MEMORY_HINT}",
            need as f64 / f64::from(1 << 20)
        )
    })
}

/// `freek4a record --devices …`: records the rig; returns the exit code (0 when every unit
/// recorded to the end, 1 otherwise).
pub fn record(rig: &RigOptions, options: &RecorderOptions) -> Result<i32, RigError> {
    if let Some(o) = rig.single_unit_options.first() {
        return Err(RigError::SingleUnitOption(o.clone()));
    }
    if options.raw_depth {
        return Err(RigError::RawDepth);
    }
    let selection = rig.devices.clone().unwrap_or(DeviceSelection::All);
    let (make_backend, emulated) = rig_backend(options.emulate.as_ref());
    let facts = {
        let backend = make_backend();
        gather(backend.as_ref(), &selection, &rig.color)?
    };
    let config = &options.device_config;
    if emulated.is_none() {
        if let Some(line) = usbfs_budget_warning(facts.len(), config) {
            eprintln!("{line}");
        }
    }
    let plan = plan(
        &facts,
        rig,
        config.camera_fps.period_usec(),
        config.color_resolution != ColorResolution::Off,
    )?;
    for w in &plan.warnings {
        eprintln!("{w}");
    }
    let outdir = options.output_path.clone();
    std::fs::create_dir_all(&outdir).map_err(|source| RigError::OutDir {
        path: outdir.clone(),
        source,
    })?;
    let json_path = outdir.join("rig.json");
    let mut outcomes = vec![UnitOutcome::default(); plan.units.len()];
    write_rig_json(&json_path, &rig_json(&plan, options, rig, &outcomes))?;
    for u in &plan.units {
        println!(
            "Unit {}: {}{}{}",
            u.facts.serial,
            u.role.word(),
            u.position
                .map(|p| format!(", chain position {p}"))
                .unwrap_or_default(),
            if u.role == Role::Subordinate {
                format!(", delay {} us", u.delay_usec)
            } else {
                String::new()
            }
        );
    }

    let stop = StopSignal::new();
    stop.install()?;
    let unit_stops: Vec<StopSignal> = plan.units.iter().map(|_| StopSignal::new()).collect();
    let stats = Arc::new(Mutex::new(vec![Progress::default(); plan.units.len()]));
    let (tx, rx) = mpsc::channel::<Event>();
    let window = Arc::new(RigWindow::new(plan.units.len()));
    for (slot, u) in plan.units.iter().enumerate() {
        if u.role == Role::Standalone {
            window.give_up(slot);
        }
    }
    let last_usec: Vec<Arc<std::sync::atomic::AtomicU64>> =
        plan.units.iter().map(|_| Arc::default()).collect();

    let spawn = |slot: usize| {
        let u = &plan.units[slot];
        let mut opts = options.clone();
        opts.device_index = u8::try_from(u.facts.index).unwrap_or(u8::MAX);
        opts.output_path = outdir.join(format!("{}.mkv", u.facts.serial));
        opts.device_config.wired_sync_mode = u.role.sync_mode();
        opts.device_config.subordinate_delay_off_master_usec = u.delay_usec;
        opts.progress = false;
        opts.preview = None;
        let mut device = RigDevice {
            inner: DeviceSource::on_backend(options, make_backend()),
            color: rig.color.clone(),
            gain: options.gain,
            tags: Vec::new(),
            unit: slot,
            events: tx.clone(),
            window: (u.role != Role::Standalone).then(|| {
                (
                    window.clone(),
                    u64::from(u.delay_usec),
                    u64::from(config.camera_fps.period_usec()),
                )
            }),
            first_given: false,
            last_usec: last_usec[slot].clone(),
            is_master: u.role == Role::Master,
            pending: None,
        };
        // Subordinates record until the master's last pulse, whatever their own clock says.
        if u.role == Role::Subordinate {
            opts.record_length_sec = None;
        }
        let rig_tags = vec![
            ("FREEK4A_RIG_ROLE".to_string(), u.role.word().to_string()),
            (
                "FREEK4A_RIG_CHAIN_POSITION".to_string(),
                u.position.map_or_else(|| "none".into(), |p| p.to_string()),
            ),
            (
                "FREEK4A_RIG_MASTER".to_string(),
                plan.units
                    .iter()
                    .find(|m| m.role == Role::Master)
                    .map_or_else(|| "none".into(), |m| m.facts.serial.clone()),
            ),
        ];
        let unit_stop = unit_stops[slot].clone();
        let stats = stats.clone();
        let tx = tx.clone();
        let prefix = format!("[{}] ", u.facts.serial);
        std::thread::spawn(move || {
            let mut out = Prefixed {
                prefix: prefix.clone(),
                to_stderr: false,
                line: Vec::new(),
            };
            let mut err = Prefixed {
                prefix,
                to_stderr: true,
                line: Vec::new(),
            };
            let mut progress = |s: &Progress| {
                if let Ok(mut g) = stats.lock() {
                    g[slot] = *s;
                }
            };
            let mut io = SessionIo {
                out: &mut out,
                err: &mut err,
                stop: &unit_stop,
                clock: Arc::new(MonotonicClock),
                progress: &mut progress,
            };
            let create = |d: &RigDevice, o: &RecorderOptions, settings, queue| {
                unit_file(d, o, settings, queue, &rig_tags)
            };
            let report = run_recording(&mut device, create, &opts, &mut io);
            let _ = tx.send(Event::Done(slot, report));
        })
    };

    // Subordinates and standalone units first; the master once they all wait for it.
    let mut handles = Vec::new();
    let master_slot = plan.units.iter().position(|u| u.role == Role::Master);
    for slot in (0..plan.units.len()).filter(|s| Some(*s) != master_slot) {
        handles.push(spawn(slot));
    }
    let mut waiting: Vec<usize> = (0..plan.units.len())
        .filter(|s| Some(*s) != master_slot)
        .collect();
    let mut done = vec![false; plan.units.len()];
    let mut start_failed = Vec::new();
    let deadline = Instant::now() + SUBORDINATE_START_TIMEOUT;
    let handle_event = |e: Event,
                        outcomes: &mut Vec<UnitOutcome>,
                        done: &mut Vec<bool>,
                        waiting: &mut Vec<usize>,
                        start_failed: &mut Vec<usize>| match e {
        Event::Started(s, at) => {
            outcomes[s].started = Some(at);
            waiting.retain(|w| *w != s);
        }
        Event::StartFailed(s) => {
            waiting.retain(|w| *w != s);
            start_failed.push(s);
        }
        Event::Done(s, r) => {
            window.give_up(s);
            if waiting.contains(&s) {
                start_failed.push(s);
            }
            waiting.retain(|w| *w != s);
            outcomes[s].report = Some(r);
            done[s] = true;
        }
    };
    while !waiting.is_empty() && !stop.is_stopping() && Instant::now() < deadline {
        if let Ok(e) = rx.recv_timeout(Duration::from_millis(50)) {
            handle_event(e, &mut outcomes, &mut done, &mut waiting, &mut start_failed);
        }
    }
    let abort = !waiting.is_empty() || !start_failed.is_empty() || stop.is_stopping();
    if abort {
        for s in waiting.iter().chain(start_failed.iter()) {
            eprintln!(
                "Unit {} did not start its cameras; the master is not started without it.",
                plan.units[*s].facts.serial
            );
        }
        for s in &unit_stops {
            s.request_stop();
        }
    } else if let Some(m) = master_slot {
        handles.push(spawn(m));
        if let (Some(b), Some(spec)) = (&emulated, options.emulate.as_ref()) {
            if let Some(after) = spec.unplug_after_sec {
                let b = b.clone();
                let unit = usize::from(spec.unplug_unit);
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_secs_f64(after));
                    b.disconnect(unit);
                });
            }
        }
    }
    drop(tx);

    // Until every unit is done: Ctrl-C reaches every unit, progress shows one line per unit.
    let show_progress = options.progress && std::io::stderr().is_terminal();
    let mut drawn = 0usize;
    let mut last_draw = Instant::now();
    let mut master_done_at: Option<Instant> = None;
    while done.iter().any(|d| !d) {
        // The master stops first; the subordinates then deliver the frames of its last
        // pulses and stop too, so every file ends on the same pulse.
        if let Some(m) = master_slot {
            if done[m] && master_done_at.is_none() {
                master_done_at = Some(Instant::now());
                window.end_usec.store(
                    last_usec[m].load(std::sync::atomic::Ordering::SeqCst),
                    std::sync::atomic::Ordering::SeqCst,
                );
            }
            // Subordinates record without a length of their own: they end with the master.
            if master_done_at.is_some_and(|t| t.elapsed() >= SUBORDINATE_DRAIN) {
                for s in &unit_stops {
                    s.request_stop();
                }
            }
        }
        if stop.is_stopping() {
            match master_slot {
                Some(m) if !done[m] => unit_stops[m].request_stop(),
                _ => {
                    if master_done_at.is_none_or(|t| t.elapsed() >= SUBORDINATE_DRAIN) {
                        for s in &unit_stops {
                            s.request_stop();
                        }
                    }
                }
            }
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(e) => handle_event(e, &mut outcomes, &mut done, &mut waiting, &mut start_failed),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if show_progress && last_draw.elapsed() >= Duration::from_millis(500) {
            last_draw = Instant::now();
            let lines: Vec<String> = match stats.lock() {
                Ok(g) => plan
                    .units
                    .iter()
                    .zip(g.iter())
                    .map(|(u, s)| format!("{} {}", u.facts.serial, format_progress(s)))
                    .collect(),
                Err(_) => Vec::new(),
            };
            let mut e = std::io::stderr().lock();
            if drawn > 0 {
                let _ = write!(e, "\x1b[{drawn}A");
            }
            for l in &lines {
                let _ = writeln!(e, "\r\x1b[2K{l}");
            }
            drawn = lines.len();
        }
    }
    for h in handles {
        let _ = h.join();
    }
    write_rig_json(&json_path, &rig_json(&plan, options, rig, &outcomes))?;

    let mut code = 0;
    for (u, o) in plan.units.iter().zip(&outcomes) {
        let line = match &o.report {
            Some(r) if r.exit_code == 0 && r.finished => format!(
                "Unit {} ({}): {} captures, {} dropped, file finished.",
                u.facts.serial,
                u.role.word(),
                r.stats.captures,
                r.stats.drops[crate::types::TrackKind::Color]
                    + r.stats.drops[crate::types::TrackKind::Depth]
                    + r.stats.drops[crate::types::TrackKind::Imu]
            ),
            Some(r) if r.finished => {
                code = 1;
                format!(
                    "Unit {} ({}): recording cut short after {} captures (the unit failed or was unplugged); its file was finished with what it holds.",
                    u.facts.serial,
                    u.role.word(),
                    r.stats.captures
                )
            }
            Some(r) => {
                code = 1;
                format!(
                    "Unit {} ({}): recording failed after {} captures (exit code {}).",
                    u.facts.serial,
                    u.role.word(),
                    r.stats.captures,
                    r.exit_code
                )
            }
            None => {
                code = 1;
                format!("Unit {} ({}): not recorded.", u.facts.serial, u.role.word())
            }
        };
        if code == 0 {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    }
    if abort {
        code = 1;
    }
    println!("Rig written to {}", outdir.display());
    Ok(code)
}

/// `freek4a record` for one unit with colour controls: k4arecorder's sequence with the
/// controls set before the cameras start and stored in the file's tags.
pub fn record_one(color: &ColorSettings, options: &RecorderOptions) -> Result<i32, RigError> {
    // Values are checked against the unit's ranges before anything starts.
    {
        let backend = crate::cli::wiring::backend_for(options.emulate.as_ref());
        let count = device::list(backend.as_ref()).unwrap_or(0);
        let index = usize::from(options.device_index);
        if index < count {
            let options = OpenOptions {
                depth_engine: DepthEngineChoice::RawOnly,
                ..OpenOptions::default()
            };
            if let Ok(dev) = Device::open_with(backend.as_ref(), index, options) {
                color.validate(&dev)?;
            }
        }
    }
    let stop = StopSignal::new();
    stop.install()?;
    let (tx, _rx) = mpsc::channel();
    let mut device = RigDevice {
        inner: DeviceSource::for_options(options),
        color: color.clone(),
        gain: options.gain,
        tags: Vec::new(),
        unit: 0,
        events: tx,
        window: None,
        first_given: false,
        last_usec: Arc::default(),
        is_master: false,
        pending: None,
    };
    // The range check needs the open unit: it happens when the controls are set.
    let create =
        |d: &RigDevice, o: &RecorderOptions, settings, queue| unit_file(d, o, settings, queue, &[]);
    let report = crate::cli::session::record_on_console(&mut device, create, options, &stop);
    Ok(report.exit_code)
}

/// Why `freek4a match` or `freek4a info OUTDIR` failed.
#[derive(Debug, thiserror::Error)]
pub enum RigReadError {
    /// Matching failed.
    #[error(transparent)]
    Match(#[from] crate::playback::matching::MatchError),
    /// A recording could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: crate::playback::Error,
    },
    /// Writing match.csv failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The directory holds no recording.
    #[error("{0} holds no .mkv recording")]
    Empty(String),
}

/// `freek4a match OUTDIR|FILES [--csv PATH] [--json]`: pairs the captures, writes the CSV
/// (default `match.csv` next to the master's file) and returns the report text.
pub fn match_command(
    paths: &[PathBuf],
    csv: Option<&Path>,
    json: bool,
) -> Result<String, RigReadError> {
    use crate::playback::matching::{match_files, recordings_in};
    let files = match paths {
        [dir] if dir.is_dir() => recordings_in(dir)?,
        _ => paths.to_vec(),
    };
    let m = match_files(&files)?;
    let csv_path = match csv {
        Some(p) => p.to_path_buf(),
        None => match paths {
            [dir] if dir.is_dir() => dir.join("match.csv"),
            _ => Path::new(&m.master_file)
                .parent()
                .unwrap_or(Path::new("."))
                .join("match.csv"),
        },
    };
    std::fs::write(&csv_path, m.csv()).map_err(|source| RigReadError::Write {
        path: csv_path.display().to_string(),
        source,
    })?;
    if json {
        let mut v = serde_json::to_value(&m).unwrap_or_default();
        v["csv"] = serde_json::Value::String(csv_path.display().to_string());
        Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n")
    } else {
        Ok(format!("{m}Wrote {}\n", csv_path.display()))
    }
}

/// `freek4a info OUTDIR`: one line per recording of a rig (role, delay, captures, length,
/// colour settings), and the rig's description when `rig.json` is there.
pub fn rig_info(dir: &Path, json: bool) -> Result<String, RigReadError> {
    use crate::playback::info::RecordingInfo;
    let files = crate::playback::matching::recordings_in(dir)?;
    if files.is_empty() {
        return Err(RigReadError::Empty(dir.display().to_string()));
    }
    let rig: Option<serde_json::Value> = std::fs::read_to_string(dir.join("rig.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let mut rows = Vec::new();
    for f in &files {
        let info = RecordingInfo::read(f).map_err(|source| RigReadError::Read {
            path: f.display().to_string(),
            source,
        })?;
        let tag = |name: &str| {
            info.tags
                .iter()
                .find(|t| t.name == name)
                .map(|t| t.value.clone())
        };
        let color: Vec<String> = info
            .tags
            .iter()
            .filter_map(|t| {
                t.name
                    .strip_prefix("FREEK4A_COLOR_")
                    .map(|n| format!("{}={}", n.to_ascii_lowercase(), t.value))
            })
            .collect();
        rows.push(serde_json::json!({
            "file": f.file_name().map(|n| n.to_string_lossy().into_owned()),
            "serial": tag("K4A_DEVICE_SERIAL_NUMBER"),
            "wired_sync_mode": info.config.wired_sync_mode.name(),
            "subordinate_delay_usec": info.config.subordinate_delay_off_master_usec,
            "chain_position": tag("FREEK4A_RIG_CHAIN_POSITION"),
            "captures": info.captures,
            "length_usec": info.length_usec,
            "start_offset_usec": info.start_offset_usec,
            "color_firmware": tag("K4A_COLOR_FIRMWARE_VERSION"),
            "depth_firmware": tag("K4A_DEPTH_FIRMWARE_VERSION"),
            "color_settings": color,
        }));
    }
    if json {
        let v = serde_json::json!({"directory": dir.display().to_string(), "rig": rig, "recordings": rows});
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n");
    }
    let mut out = format!("Rig in {}: {} recordings\n", dir.display(), rows.len());
    if let Some(r) = &rig {
        let o = &r["options"];
        out.push_str(&format!(
            "Recorded with: {} {} / {} at {} fps{}\n",
            o["color_resolution"].as_str().unwrap_or("?"),
            o["color_format"].as_str().unwrap_or("?"),
            o["depth_mode"].as_str().unwrap_or("?"),
            o["camera_fps"],
            if r["chain_order_from_cables"] == true {
                ", chain order from the cables"
            } else {
                ", chain order as given"
            }
        ));
    }
    let counts: Vec<u64> = rows.iter().filter_map(|r| r["captures"].as_u64()).collect();
    for r in &rows {
        out.push_str(&format!(
            "{}  {:<11} delay {:>5} us  position {:<4}  {:>6} captures  {:>8.3} s  firmware C {} D {}  {}\n",
            r["serial"].as_str().unwrap_or("?"),
            r["wired_sync_mode"].as_str().unwrap_or("?"),
            r["subordinate_delay_usec"],
            r["chain_position"].as_str().unwrap_or("-"),
            r["captures"],
            r["length_usec"].as_u64().unwrap_or(0) as f64 / 1e6,
            r["color_firmware"].as_str().unwrap_or("?"),
            r["depth_firmware"].as_str().unwrap_or("?"),
            r["color_settings"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(" "))
                .unwrap_or_default()
        ));
    }
    if let (Some(lo), Some(hi)) = (counts.iter().min(), counts.iter().max()) {
        out.push_str(&format!(
            "Captures per file: {lo} to {hi}{}\n",
            if hi - lo > 1 {
                " (more than one apart: run `freek4a match` to see where)"
            } else {
                ""
            }
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `plan`'s refusal of `units` with default options, as text.
    fn refusal(units: &[UnitFacts], color_on: bool) -> String {
        plan(units, &RigOptions::default(), 33_333, color_on)
            .unwrap_err()
            .to_string()
    }

    fn unit(i: usize, sync_in: bool, sync_out: bool) -> UnitFacts {
        UnitFacts {
            index: i,
            serial: format!("00000{i}"),
            // An emulated unit's firmware.
            firmware: crate::emulator::EmulatorSpec::default().firmware,
            jack: JackState {
                sync_in_connected: sync_in,
                sync_out_connected: sync_out,
            },
        }
    }

    #[test]
    fn a_daisy_chain_gives_roles_order_and_delays() {
        // Listed out of order: the cables put the end unit last.
        let units = [
            unit(0, true, false),
            unit(1, false, true),
            unit(2, true, true),
        ];
        let p = plan(&units, &RigOptions::default(), 33_333, true).unwrap();
        let got: Vec<(&str, Role, Option<usize>, u32)> = p
            .units
            .iter()
            .map(|u| (u.facts.serial.as_str(), u.role, u.position, u.delay_usec))
            .collect();
        assert_eq!(
            got,
            [
                ("000001", Role::Master, Some(0), 0),
                ("000002", Role::Subordinate, Some(1), 160),
                ("000000", Role::Subordinate, Some(2), 320),
            ]
        );
        assert!(p.order_from_cables);
    }

    #[test]
    fn impossible_topologies_say_what_is_plugged_where() {
        let e = refusal(&[unit(0, false, true), unit(1, false, false)], true);
        assert!(e.contains("unit 000001 has no sync cable"), "{e}");
        assert!(
            e.contains("000000: sync-out only; 000001: no cables"),
            "{e}"
        );
        let e = refusal(&[unit(0, false, true), unit(1, false, true)], true);
        assert!(e.contains("could be a master"), "{e}");
        let e = refusal(&[unit(0, true, true), unit(1, true, false)], true);
        assert!(e.contains("no unit can be the master"), "{e}");
        let e = refusal(&[unit(0, false, true), unit(1, true, false)], false);
        assert!(e.contains("must stream colour"), "{e}");
        // --allow-standalone records the loose unit on its own.
        let rig = RigOptions {
            allow_standalone: true,
            ..Default::default()
        };
        let p = plan(
            &[
                unit(0, false, true),
                unit(1, true, false),
                unit(2, false, false),
            ],
            &rig,
            33_333,
            true,
        )
        .unwrap();
        assert_eq!(p.units[2].role, Role::Standalone);
    }

    #[test]
    fn delays_and_firmware_are_checked() {
        let units = [unit(0, false, true), unit(1, true, false)];
        let mut rig = RigOptions {
            sync_delays: vec![("000001".into(), 500)],
            ..Default::default()
        };
        assert_eq!(
            plan(&units, &rig, 33_333, true).unwrap().units[1].delay_usec,
            500
        );
        rig.sync_delays = vec![("000001".into(), 40_000)];
        let e = plan(&units, &rig, 33_333, true).unwrap_err().to_string();
        assert!(
            e.contains("cannot exceed one frame interval (33333 us"),
            "{e}"
        );
        rig.sync_delays = vec![("000000".into(), 10)];
        let e = plan(&units, &rig, 33_333, true).unwrap_err().to_string();
        assert!(e.contains("000000 is the rig's master"), "{e}");
        let mut old = unit(1, true, false);
        old.firmware.rgb.iteration = 108;
        let e = refusal(&[unit(0, false, true), old.clone()], true);
        assert!(e.contains("000001: colour 1.6.108"), "{e}");
        let rig = RigOptions {
            allow_firmware_mismatch: true,
            ..Default::default()
        };
        let p = plan(&[unit(0, false, true), old], &rig, 33_333, true).unwrap();
        assert!(p.warnings[0].contains("different firmware"));
    }

    #[test]
    fn our_options_are_split_from_k4arecorders() {
        let args: Vec<OsString> = [
            "--devices",
            "all",
            "-l",
            "5",
            "--brightness",
            "100",
            "--sync-delays",
            "A=160,B=320",
            "--backlight-compensation",
            "--master",
            "A",
            "out",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let (rig, rest) = split_args(args).unwrap();
        assert_eq!(rig.devices, Some(DeviceSelection::All));
        assert_eq!(rig.color.brightness, Some(100));
        assert_eq!(
            rig.sync_delays,
            [("A".to_string(), 160), ("B".to_string(), 320)]
        );
        assert_eq!(rig.master.as_deref(), Some("A"));
        assert_eq!(rest, ["-l", "5", "out"]);
        assert!(split_args(vec!["--devices".into()]).is_err());
        assert!(split_args(vec!["--sync-delays".into(), "A:1".into()]).is_err());
    }
}
