//! A whole Azure Kinect DK behind the transport traits.
//!
//! [`EmulatedBackend`] implements [`Backend`] with any number of
//! units. Each unit presents a depth function (045E:097C) and a colour function (045E:097D)
//! with the same 12-digit serial and BOS Container ID, parses the host's real command packets,
//! answers with real status packets, streams raw depth frames of the exact per-mode size (the
//! layout of [`crate::protocol::depth_raw`]), IMU packets from a physical model, and UVC
//! payloads with headers and the vendor metadata timestamp. Faults can be injected per
//! command or endpoint. Its behaviour follows what the hardware does; where that is unknown
//! the choice is written down next to the code.
//!
//! ```no_run
//! use freek4a::emulator::{EmulatedBackend, EmulatorSpec, Speed};
//! let backend = EmulatedBackend::new(EmulatorSpec { units: 2, speed: Speed::Max, ..Default::default() });
//! ```

pub mod calibration;
pub mod clock;
mod color;
mod commands;
pub mod images;
pub mod imu;
mod pipe;
mod streams;
mod sync;
mod usb;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

pub use clock::{Speed, TICKS_PER_SECOND};
pub use imu::{ImuModel, ImuTruth};
pub use sync::JournalEvent;

use crate::protocol::depth_raw::Scene;
use crate::protocol::descriptors::{InterfaceNumber, PID_COLOR, PID_DEPTH, VID_MICROSOFT};
use crate::transport::{self, Backend, DeviceInfo, UsbDevice};
use crate::types::{HardwareVersion, Stream, Version};

/// A small deterministic generator (xorshift64*), so a seed reproduces a run.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value, 0 included).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Approximately standard normal (sum of 12 uniforms).
    pub fn gaussian(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }
}

/// Which function of a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Function {
    /// 045E:097C: depth MCU and depth stream.
    Depth,
    /// 045E:097D: UVC camera, colour MCU and IMU.
    Color,
}

/// A fault to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The transfer ends with a stall.
    Stall,
    /// The device never answers (the host's transfer times out).
    Timeout,
    /// The answer is cut short.
    Short,
    /// The answer is longer than it should be.
    Oversized,
    /// The device babbles: it sends a packet longer than the endpoint's wMaxPacketSize instead
    /// of the answer, and the host's transfer fails with EOVERFLOW (bulk IN endpoints).
    Babble,
    /// The answer's bytes are damaged (header or metadata).
    Corrupt,
    /// The status packet carries another transaction id.
    WrongTransactionId,
    /// The status packet carries a wrong magic.
    WrongMagic,
    /// The status packet carries this non-zero status.
    BadStatus(u32),
    /// The unit goes away: every transfer fails with Disconnected from then on.
    Disconnect,
}

/// Where a fault applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultTarget {
    /// A command code, on whichever MCU receives it.
    Command(u32),
    /// The endpoint carrying a stream ([`crate::protocol::descriptors::StreamEndpoint::of`]).
    Stream(Stream),
}

/// One fault rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultRule {
    /// Unit index.
    pub unit: usize,
    /// Where.
    pub target: FaultTarget,
    /// What.
    pub fault: Fault,
    /// Matching events to let through before the fault fires.
    pub after: u64,
    /// How many times it fires (`None`: every time from then on).
    pub times: Option<u64>,
}

impl FaultRule {
    /// A fault that fires on every matching event.
    pub fn always(unit: usize, target: FaultTarget, fault: Fault) -> FaultRule {
        FaultRule {
            unit,
            target,
            fault,
            after: 0,
            times: None,
        }
    }
    /// A fault that fires once, after `after` matching events.
    pub fn once_after(unit: usize, target: FaultTarget, fault: Fault, after: u64) -> FaultRule {
        FaultRule {
            unit,
            target,
            fault,
            after,
            times: Some(1),
        }
    }
}

/// Cables plugged into one unit's sync jacks, besides the chain of
/// [`EmulatorSpec::sync_cables`]. A sync-in cable that no emulated unit drives comes from an
/// external sync generator that always pulses (so a lone unit can run as subordinate); a
/// sync-out cable that feeds no emulated unit goes to equipment outside the emulation (so a
/// lone unit can run as master). Only the jack detection and the pulses are modelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncJacks {
    /// Index of the unit.
    pub unit: usize,
    /// A cable in the sync-in jack.
    pub sync_in: bool,
    /// A cable in the sync-out jack.
    pub sync_out: bool,
}

/// What to emulate.
#[derive(Clone, Debug)]
pub struct EmulatorSpec {
    /// Number of units.
    pub units: usize,
    /// Pace of every unit.
    pub speed: Speed,
    /// Seed for serial numbers, Container IDs and noise.
    pub seed: u64,
    /// Sync cables: unit 0 drives sync-out into unit 1's sync-in, and so on down the chain.
    pub sync_cables: bool,
    /// Further cables in single units' jacks (see [`SyncJacks`]).
    pub jacks: Vec<SyncJacks>,
    /// Firmware versions every unit reports.
    pub firmware: HardwareVersion,
    /// Calibration JSON every unit serves (`None`: a generated one per unit).
    pub calibration_json: Option<String>,
    /// The IMU's physical model.
    pub imu: ImuModel,
    /// The depth scene.
    pub scene: Scene,
    /// Faults active from the start.
    pub faults: Vec<FaultRule>,
    /// Units that report other firmware than `firmware` (index, versions).
    pub firmware_overrides: Vec<(usize, HardwareVersion)>,
    /// Also append the start-order journal ([`EmulatedBackend::journal`]) to this file.
    pub journal_path: Option<std::path::PathBuf>,
}

impl Default for EmulatorSpec {
    /// One unit in real time, current firmware, no faults.
    fn default() -> Self {
        let v = |major, minor, iteration| Version {
            major,
            minor,
            iteration,
        };
        EmulatorSpec {
            units: 1,
            speed: Speed::RealTime,
            seed: 1,
            sync_cables: false,
            jacks: Vec::new(),
            firmware: HardwareVersion {
                rgb: v(1, 6, 110),
                depth: v(1, 6, 79),
                audio: v(1, 6, 14),
                depth_sensor: v(6109, 7, 0),
                release_build: true,
                signature_type: 0,
            },
            calibration_json: None,
            imu: ImuModel::default(),
            scene: Scene::default(),
            faults: Vec::new(),
            firmware_overrides: Vec::new(),
            journal_path: None,
        }
    }
}

/// A 12-digit serial obeying the check-digit rule (digit 7 = 7 − (sum of digits 1–6 mod 7)).
pub fn make_serial(rng: &mut Rng) -> String {
    let mut d: Vec<u8> = (0..12).map(|_| (rng.next_u64() % 10) as u8).collect();
    let sum: u32 = d[..6].iter().map(|&x| x as u32).sum();
    d[6] = (7 - sum % 7) as u8;
    d.iter().map(|x| (b'0' + x) as char).collect()
}

/// Emulated state of the depth MCU.
#[derive(Clone, Debug, Default)]
pub(crate) struct DepthMcu {
    pub mode: Option<u32>,
    pub fps: Option<u32>,
    pub started: bool,
    pub streaming: bool,
}

/// Emulated state of the colour camera (UVC).
#[derive(Clone, Debug, Default)]
pub(crate) struct ColorCam {
    pub probe: crate::protocol::uvc::ProbeCommit,
    pub committed: Option<crate::protocol::uvc::ProbeCommit>,
    pub streaming: bool,
    /// Selected alternate setting of the streaming interface.
    pub alt: u8,
    /// Control values set with SET_CUR.
    pub controls: std::collections::HashMap<crate::protocol::uvc::UvcControl, i32>,
}

/// Mutable state of one unit.
#[derive(Debug, Default)]
pub(crate) struct UnitState {
    pub depth: DepthMcu,
    pub color: ColorCam,
    pub sync_mode: crate::types::WiredSyncMode,
    pub subordinate_delay_ticks: u32,
    pub depth_delay_ticks: i32,
    pub imu_streaming: bool,
    pub claimed: std::collections::HashSet<(Function, InterfaceNumber)>,
}

/// Responses waiting on a response IN endpoint.
#[derive(Default)]
pub(crate) struct ResponseChannel {
    pub queue: Mutex<std::collections::VecDeque<pipe::Message>>,
    pub ready: Condvar,
}

/// One emulated unit.
pub(crate) struct Unit {
    pub index: usize,
    pub serial: String,
    pub container_id: [u8; 16],
    pub firmware: HardwareVersion,
    pub calibration_json: String,
    pub cal_block: Vec<u8>,
    pub imu_model: ImuModel,
    pub scene: Scene,
    pub seed: u64,
    pub sync_in: bool,
    pub sync_out: bool,
    /// Sync-in is fed by an external generator rather than a unit up the chain.
    pub external_sync_in: bool,
    pub pacer: clock::Pacer,
    pub state: Mutex<UnitState>,
    pub changed: Condvar,
    pub depth_resp: ResponseChannel,
    pub color_resp: ResponseChannel,
    pub disconnected: AtomicBool,
    pub faults: Mutex<Vec<(FaultRule, u64)>>,
    pub bus: Arc<sync::SyncBus>,
    /// The master's train this unit's clock follows, and the clock generation since then.
    pub followed: Mutex<Option<(u64, u64)>>,
    pub imu_truth: Mutex<std::collections::VecDeque<ImuTruth>>,
}

/// Samples of ground truth kept per unit (the newest).
const IMU_TRUTH_KEPT: usize = 1 << 16;

impl Unit {
    /// Whether sync pulses reach this unit's sync-in: from an external generator, or from a
    /// master up the chain whose colour camera streams.
    pub fn sync_pulses(&self) -> bool {
        self.external_sync_in || self.bus.train_for(self.index).is_some()
    }

    /// Appends an event to the start-order journal.
    pub fn log(&self, event: &'static str, detail: String) {
        self.bus.log(self.index, &self.serial, event, detail);
    }

    pub fn lock(&self) -> MutexGuard<'_, UnitState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn notify(&self) {
        self.changed.notify_all();
    }

    pub fn is_disconnected(&self) -> bool {
        self.disconnected.load(Ordering::SeqCst)
    }

    pub fn disconnect(&self) {
        if !self.disconnected.swap(true, Ordering::SeqCst) {
            self.log("unplugged", String::new());
        }
        self.bus.stop_train(self.index);
        self.notify();
        self.depth_resp.ready.notify_all();
        self.color_resp.ready.notify_all();
    }

    /// Takes the fault that fires for `target` at this event, if any, counting the event.
    pub fn take_fault(&self, target: FaultTarget) -> Option<Fault> {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let mut fired = None;
        for (rule, seen) in faults.iter_mut() {
            if rule.target != target {
                continue;
            }
            let n = *seen;
            *seen += 1;
            let active = n >= rule.after && rule.times.is_none_or(|t| n < rule.after + t);
            if active && fired.is_none() {
                fired = Some(rule.fault);
            }
        }
        if fired == Some(Fault::Disconnect) {
            drop(faults);
            self.disconnect();
        }
        fired
    }

    /// Whether a `Timeout` fault is armed forever on a stream endpoint (so pacing ignores it).
    pub fn stream_silenced(&self, target: FaultTarget) -> bool {
        let faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        faults.iter().any(|(r, seen)| {
            r.target == target && r.fault == Fault::Timeout && r.times.is_none() && *seen >= r.after
        })
    }

    pub fn record_imu_truth(&self, t: ImuTruth) {
        let mut q = self.imu_truth.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() == IMU_TRUTH_KEPT {
            q.pop_front();
        }
        q.push_back(t);
    }
}

/// A whole set of emulated units behind the transport seam.
#[derive(Clone)]
pub struct EmulatedBackend {
    units: Arc<Vec<Arc<Unit>>>,
    /// Whether bulk IN endpoints refuse lengths that are not whole packets, as nusb does.
    nusb_rules: bool,
}

impl EmulatedBackend {
    /// Builds the units of `spec`.
    pub fn new(spec: EmulatorSpec) -> EmulatedBackend {
        let mut rng = Rng::new(spec.seed);
        let bus = Arc::new(sync::SyncBus::new(
            spec.units,
            spec.sync_cables,
            spec.journal_path.as_ref(),
        ));
        let units = (0..spec.units)
            .map(|index| {
                let serial = make_serial(&mut rng);
                let mut container_id = [0u8; 16];
                for c in container_id.chunks_mut(8) {
                    c.copy_from_slice(&rng.next_u64().to_le_bytes());
                }
                let calibration_json = spec
                    .calibration_json
                    .clone()
                    .unwrap_or_else(|| calibration::default_json(&serial));
                let cal_block = crate::protocol::depth_raw::encode_cal_block(serial.as_bytes());
                // Power-on time differs per unit, as on real hardware (~1–2 h of uptime).
                let power_on_ticks = 324_000_000 + rng.next_u64() % 324_000_000;
                let unit_seed = rng.next_u64();
                let chain_in = spec.sync_cables && index > 0;
                let jacks = spec.jacks.iter().filter(|j| j.unit == index);
                let (jack_in, jack_out) = jacks.fold((false, false), |(i, o), j| {
                    (i || j.sync_in, o || j.sync_out)
                });
                Arc::new(Unit {
                    index,
                    serial,
                    container_id,
                    firmware: spec
                        .firmware_overrides
                        .iter()
                        .rev()
                        .find(|(u, _)| *u == index)
                        .map_or(spec.firmware, |(_, v)| *v),
                    calibration_json,
                    cal_block,
                    imu_model: spec.imu,
                    scene: spec.scene,
                    seed: unit_seed,
                    sync_in: chain_in || jack_in,
                    sync_out: spec.sync_cables && index + 1 < spec.units || jack_out,
                    external_sync_in: jack_in && !chain_in,
                    pacer: clock::Pacer::new(spec.speed, power_on_ticks),
                    state: Mutex::new(UnitState::default()),
                    changed: Condvar::new(),
                    depth_resp: ResponseChannel::default(),
                    color_resp: ResponseChannel::default(),
                    disconnected: AtomicBool::new(false),
                    faults: Mutex::new(
                        spec.faults
                            .iter()
                            .filter(|f| f.unit == index)
                            .map(|f| (*f, 0))
                            .collect(),
                    ),
                    bus: bus.clone(),
                    followed: Mutex::new(None),
                    imu_truth: Mutex::new(Default::default()),
                })
            })
            .collect();
        EmulatedBackend {
            units: Arc::new(units),
            nusb_rules: true,
        }
    }

    /// The same units as the kernel's usbfs presents them to any program: bulk and interrupt IN
    /// transfers of any length are taken (a packet that does not fit the room left is babble,
    /// EOVERFLOW). The backend from [`EmulatedBackend::new`] also applies nusb's rule, which
    /// refuses IN lengths that are not non-zero multiples of wMaxPacketSize before they reach
    /// the kernel, so in-process tests see what a real camera's path sees
    /// (`protocol/kernel.md`).
    pub fn usbfs_view(&self) -> EmulatedBackend {
        EmulatedBackend {
            units: self.units.clone(),
            nusb_rules: false,
        }
    }

    /// Number of units.
    pub fn unit_count(&self) -> usize {
        self.units.len()
    }

    /// Serial number of unit `index`.
    pub fn serial(&self, index: usize) -> Option<&str> {
        self.units.get(index).map(|u| u.serial.as_str())
    }

    /// Container ID of unit `index`.
    pub fn container_id(&self, index: usize) -> Option<[u8; 16]> {
        self.units.get(index).map(|u| u.container_id)
    }

    /// The calibration JSON unit `index` serves.
    pub fn calibration_json(&self, index: usize) -> Option<&str> {
        self.units.get(index).map(|u| u.calibration_json.as_str())
    }

    /// Arms a fault on a running backend.
    pub fn inject(&self, rule: FaultRule) {
        if let Some(u) = self.units.get(rule.unit) {
            u.faults
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((rule, 0));
            u.notify();
        }
    }

    /// Unplugs unit `index` now.
    pub fn disconnect(&self, index: usize) {
        if let Some(u) = self.units.get(index) {
            u.disconnect();
        }
    }

    /// The IMU samples unit `index` has sent (the newest 65536), with their ground truth.
    pub fn imu_truth(&self, index: usize) -> Vec<ImuTruth> {
        self.units
            .get(index)
            .map(|u| {
                u.imu_truth
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The start-order journal: sync configurations, stream starts and stops, first pulses
    /// and unplugs of every unit, in the order they happened.
    pub fn journal(&self) -> Vec<JournalEvent> {
        self.units
            .first()
            .map(|u| u.bus.journal())
            .unwrap_or_default()
    }

    /// Current device clock of unit `index`, 90 kHz ticks.
    pub fn device_ticks(&self, index: usize) -> Option<u64> {
        self.units.get(index).map(|u| u.pacer.now_ticks())
    }

    fn key(unit: usize, f: Function) -> u64 {
        (unit as u64) << 1 | (f == Function::Color) as u64
    }
}

impl Backend for EmulatedBackend {
    fn list(&self) -> Result<Vec<DeviceInfo>, transport::Error> {
        let mut out = Vec::new();
        for u in self.units.iter().filter(|u| !u.is_disconnected()) {
            for (f, pid, port) in [
                (Function::Depth, PID_DEPTH, 1u8),
                (Function::Color, PID_COLOR, 2u8),
            ] {
                out.push(DeviceInfo {
                    vendor_id: VID_MICROSOFT,
                    product_id: pid,
                    bus: 2 + u.index as u8,
                    address: 2 + port,
                    port_path: vec![1, port],
                    serial: Some(u.serial.clone()),
                    key: Self::key(u.index, f),
                });
            }
        }
        Ok(out)
    }

    fn open(&self, device: &DeviceInfo) -> Result<Box<dyn UsbDevice>, transport::Error> {
        let unit = self.units.get((device.key >> 1) as usize).ok_or_else(|| {
            transport::Error::new(transport::ErrorKind::NotFound, format!("open {device}"))
        })?;
        if unit.is_disconnected() {
            return Err(transport::Error::new(
                transport::ErrorKind::Disconnected,
                format!("open {device}"),
            ));
        }
        let function = if device.key & 1 == 1 {
            Function::Color
        } else {
            Function::Depth
        };
        Ok(Box::new(usb::EmuDevice::new(
            unit.clone(),
            function,
            device.clone(),
            self.nusb_rules,
        )))
    }
}
