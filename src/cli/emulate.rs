//! The `--emulate[=SPEC]` / `FREEK4A_EMULATE=SPEC` specification of an emulated device.
//!
//! SPEC is a comma-separated list of `key=value` items:
//!
//! * `units=N`: how many Azure Kinect units to emulate (1…[`EmulateSpec::MAX_UNITS`]);
//! * `speed=realtime|max|<factor>`: stream in real time, as fast as the host consumes, or at a
//!   multiple of real time (a positive finite number, `2` is twice as fast);
//! * `seed=N`: seed (unsigned 64-bit) for the emulator's synthetic content;
//! * `unplug_after=SECONDS`: unplug unit 0 this long after its cameras start (a positive
//!   number; for testing what the recorder does when the cable is pulled);
//! * `fault=STREAM:FAULT:AFTER[:TIMES]`: inject a fault on unit 0's `depth`, `color` or `imu`
//!   endpoint (`timeout`, `stall`, `short`, `corrupt`, `babble` or `disconnect`; `babble` on the
//!   bulk `depth` and `imu` endpoints only) after AFTER transfers,
//!   TIMES times (default once). This key may be given several times.
//! * `cables=chain|none`: sync cables wiring the units as a daisy chain, unit 0 the master
//!   (unit i's sync-out into unit i+1's sync-in), or none (the default);
//! * `cable=UNIT:in|out|in+out`: cables in one unit's sync jacks. A sync-in cable not fed by the
//!   chain carries an external generator's pulses, so that unit can record as `Subordinate`; a
//!   sync-out cable lets a unit record as `Master`. This key may be given several times.
//!
//! * `unplug_unit=N`: the unit `unplug_after` unplugs (default 0);
//! * `firmware=UNIT:RGB/DEPTH`: unit UNIT reports these colour and depth firmware versions
//!   (dotted, e.g. `1:1.6.108/1.6.79`) instead of the current ones. May be given several times;
//! * `journal=PATH`: append the emulated units' start-order journal (sync configurations,
//!   stream starts and stops, first sync pulses, unplugs; one event a line) to PATH.
//!
//! An empty SPEC means one unit in real time with seed 0. Keys are lower case; the speed words
//! are matched case-insensitively. A key given twice is refused so that a typo cannot silently
//! override an earlier value.

use std::fmt;
use std::str::FromStr;

use crate::emulator::{EmulatorSpec, Fault, FaultRule, FaultTarget, Speed, SyncJacks};
use crate::types::Stream;

/// Environment variable read when `--emulate` is not on the command line.
pub const EMULATE_ENV: &str = "FREEK4A_EMULATE";

/// How fast the emulated device streams.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum EmulateSpeed {
    /// Frames arrive at the camera's frame rate, as from real hardware.
    #[default]
    Realtime,
    /// Frames arrive as fast as the host takes them.
    Max,
    /// Real time multiplied by this factor (positive and finite).
    Factor(f64),
}

impl fmt::Display for EmulateSpeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmulateSpeed::Realtime => f.write_str("realtime"),
            EmulateSpeed::Max => f.write_str("max"),
            EmulateSpeed::Factor(x) => write!(f, "{x}"),
        }
    }
}

/// A parsed emulation specification.
#[derive(Clone, Debug, PartialEq)]
pub struct EmulateSpec {
    /// Number of emulated units (at least 1).
    pub units: u8,
    /// Streaming speed.
    pub speed: EmulateSpeed,
    /// Seed for synthetic content.
    pub seed: u64,
    /// Unplug unit 0 this many seconds after its cameras start.
    pub unplug_after_sec: Option<f64>,
    /// Faults injected on unit 0's streaming endpoints.
    pub faults: Vec<StreamFault>,
    /// `cables=chain`: the units are wired as a daisy chain with unit 0 as the master.
    pub chain: bool,
    /// `cable=` items: cables in single units' jacks.
    pub cables: Vec<UnitCable>,
    /// `unplug_unit=N`: the unit `unplug_after` unplugs.
    pub unplug_unit: u8,
    /// `firmware=` items: units reporting other firmware (unit, colour, depth).
    pub firmware: Vec<UnitFirmware>,
    /// `journal=PATH`: where the start-order journal goes.
    pub journal: Option<std::path::PathBuf>,
}

/// One `firmware=UNIT:RGB/DEPTH` item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnitFirmware {
    /// Index of the unit.
    pub unit: u8,
    /// Colour (RGB) firmware.
    pub rgb: crate::types::Version,
    /// Depth firmware.
    pub depth: crate::types::Version,
}

impl fmt::Display for UnitFirmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.unit, self.rgb, self.depth)
    }
}

fn parse_version(text: &str) -> Option<crate::types::Version> {
    text.parse().ok()
}

fn parse_firmware(value: &str) -> Result<UnitFirmware, EmulateSpecError> {
    let bad = || EmulateSpecError::BadFirmware {
        value: value.into(),
    };
    let (unit, versions) = value.split_once(':').ok_or_else(bad)?;
    let (rgb, depth) = versions.split_once('/').ok_or_else(bad)?;
    Ok(UnitFirmware {
        unit: unit.parse().map_err(|_| bad())?,
        rgb: parse_version(rgb).ok_or_else(bad)?,
        depth: parse_version(depth).ok_or_else(bad)?,
    })
}

/// One `cable=UNIT:in|out|in+out` item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnitCable {
    /// Index of the unit (0-based, as `--device`).
    pub unit: u8,
    /// A cable in the sync-in jack.
    pub sync_in: bool,
    /// A cable in the sync-out jack.
    pub sync_out: bool,
}

impl fmt::Display for UnitCable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let jacks = match (self.sync_in, self.sync_out) {
            (true, true) => "in+out",
            (true, false) => "in",
            _ => "out",
        };
        write!(f, "{}:{jacks}", self.unit)
    }
}

fn parse_cable(value: &str) -> Result<UnitCable, EmulateSpecError> {
    let bad = || EmulateSpecError::BadCable {
        value: value.into(),
    };
    let (unit, jacks) = value.split_once(':').ok_or_else(bad)?;
    let unit = unit.parse::<u8>().map_err(|_| bad())?;
    let (sync_in, sync_out) = match jacks {
        "in" => (true, false),
        "out" => (false, true),
        "in+out" | "out+in" => (true, true),
        _ => return Err(bad()),
    };
    Ok(UnitCable {
        unit,
        sync_in,
        sync_out,
    })
}

/// A fault kind, as named in `fault=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The transfer times out.
    Timeout,
    /// The endpoint stalls.
    Stall,
    /// The transfer is cut short.
    Short,
    /// The transfer's bytes are damaged.
    Corrupt,
    /// The unit goes away.
    Disconnect,
    /// The device sends a packet longer than wMaxPacketSize (EOVERFLOW on bulk endpoints).
    Babble,
}

/// One `fault=STREAM:FAULT:AFTER[:TIMES]` item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamFault {
    /// Which stream's endpoint.
    pub stream: Stream,
    /// What happens.
    pub kind: FaultKind,
    /// Transfers let through first.
    pub after: u64,
    /// How many transfers fail.
    pub times: u64,
}

impl fmt::Display for StreamFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stream = self.stream.name();
        let kind = match self.kind {
            FaultKind::Timeout => "timeout",
            FaultKind::Stall => "stall",
            FaultKind::Short => "short",
            FaultKind::Corrupt => "corrupt",
            FaultKind::Disconnect => "disconnect",
            FaultKind::Babble => "babble",
        };
        write!(f, "{stream}:{kind}:{}:{}", self.after, self.times)
    }
}

fn parse_fault(value: &str) -> Result<StreamFault, EmulateSpecError> {
    let bad = || EmulateSpecError::BadFault {
        value: value.into(),
    };
    let parts: Vec<&str> = value.split(':').collect();
    if !(3..=4).contains(&parts.len()) {
        return Err(bad());
    }
    let stream = Stream::from_name(parts[0]).ok_or_else(bad)?;
    let kind = match parts[1] {
        "timeout" => FaultKind::Timeout,
        "stall" => FaultKind::Stall,
        "short" => FaultKind::Short,
        "corrupt" => FaultKind::Corrupt,
        "disconnect" => FaultKind::Disconnect,
        // The colour endpoint is isochronous: no babble fault there.
        "babble" if stream != Stream::Color => FaultKind::Babble,
        _ => return Err(bad()),
    };
    let after = parts[2].parse().map_err(|_| bad())?;
    let times = match parts.get(3) {
        Some(t) => t.parse().ok().filter(|t| *t > 0).ok_or_else(bad)?,
        None => 1,
    };
    Ok(StreamFault {
        stream,
        kind,
        after,
        times,
    })
}

impl Default for EmulateSpec {
    fn default() -> Self {
        EmulateSpec {
            units: 1,
            speed: EmulateSpeed::Realtime,
            seed: 0,
            unplug_after_sec: None,
            faults: Vec::new(),
            chain: false,
            cables: Vec::new(),
            unplug_unit: 0,
            firmware: Vec::new(),
            journal: None,
        }
    }
}

impl EmulateSpec {
    /// Largest accepted `units` value (one master and a chain of subordinates).
    pub const MAX_UNITS: u8 = 16;

    /// The emulator configuration for this spec.
    pub fn emulator_spec(&self) -> EmulatorSpec {
        EmulatorSpec {
            units: usize::from(self.units.max(1)),
            speed: match self.speed {
                EmulateSpeed::Realtime => Speed::RealTime,
                EmulateSpeed::Max => Speed::Max,
                EmulateSpeed::Factor(f) => Speed::Factor(f),
            },
            seed: self.seed,
            sync_cables: self.chain,
            jacks: self
                .cables
                .iter()
                .map(|c| SyncJacks {
                    unit: usize::from(c.unit),
                    sync_in: c.sync_in,
                    sync_out: c.sync_out,
                })
                .collect(),
            faults: self
                .faults
                .iter()
                .map(|f| FaultRule {
                    unit: 0,
                    target: FaultTarget::Stream(f.stream),
                    fault: match f.kind {
                        FaultKind::Timeout => Fault::Timeout,
                        FaultKind::Stall => Fault::Stall,
                        FaultKind::Short => Fault::Short,
                        FaultKind::Corrupt => Fault::Corrupt,
                        FaultKind::Disconnect => Fault::Disconnect,
                        FaultKind::Babble => Fault::Babble,
                    },
                    after: f.after,
                    times: Some(f.times),
                })
                .collect(),
            firmware_overrides: self
                .firmware
                .iter()
                .map(|f| {
                    let mut v = EmulatorSpec::default().firmware;
                    v.rgb = f.rgb;
                    v.depth = f.depth;
                    (usize::from(f.unit), v)
                })
                .collect(),
            journal_path: self.journal.clone(),
            ..EmulatorSpec::default()
        }
    }
}

/// Why an emulation specification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmulateSpecError {
    /// An item has no `=`.
    #[error("emulate item `{item}` is not of the form key=value")]
    MissingEquals {
        /// The offending item.
        item: String,
    },
    /// An item between commas is empty.
    #[error("empty item in emulate specification (two commas in a row, or a trailing comma)")]
    EmptyItem,
    /// The key is not one we know.
    #[error("unknown emulate key `{key}` (expected units, speed, seed, unplug_after, unplug_unit, fault, cables, cable, firmware or journal)")]
    UnknownKey {
        /// The offending key.
        key: String,
    },
    /// The key appeared twice.
    #[error("emulate key `{key}` given more than once")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },
    /// `units` is not a whole number in range.
    #[error("emulate units `{value}` must be a whole number from 1 to {max}", max = EmulateSpec::MAX_UNITS)]
    BadUnits {
        /// The offending value.
        value: String,
    },
    /// `speed` is neither a word nor a positive finite number.
    #[error("emulate speed `{value}` must be realtime, max or a positive number")]
    BadSpeed {
        /// The offending value.
        value: String,
    },
    /// `seed` is not an unsigned 64-bit number.
    #[error("emulate seed `{value}` must be a whole number from 0 to 18446744073709551615")]
    BadSeed {
        /// The offending value.
        value: String,
    },
    /// `unplug_after` is not a positive finite number of seconds.
    #[error("emulate unplug_after `{value}` must be a positive number of seconds")]
    BadUnplug {
        /// The offending value.
        value: String,
    },
    /// `cables` is neither `chain` nor `none`.
    #[error("emulate cables `{value}` must be chain or none")]
    BadCables {
        /// The offending value.
        value: String,
    },
    /// `cable` is not UNIT:in|out|in+out.
    #[error(
        "emulate cable `{value}` must be UNIT:in, UNIT:out or UNIT:in+out with UNIT a unit index"
    )]
    BadCable {
        /// The offending value.
        value: String,
    },
    /// `cable` names a unit that is not emulated.
    #[error("emulate cable `{value}` names unit {unit}, but units 0 to {last} are emulated")]
    CableUnitOutOfRange {
        /// The offending value.
        value: String,
        /// Its unit.
        unit: u8,
        /// The last unit's index.
        last: u8,
    },
    /// `firmware` is not `UNIT:RGB/DEPTH`.
    #[error("emulate firmware `{value}` must be UNIT:RGB/DEPTH with dotted versions, e.g. 1:1.6.108/1.6.79")]
    BadFirmware {
        /// The offending value.
        value: String,
    },
    /// `unplug_unit` is not a unit index.
    #[error("emulate unplug_unit `{value}` must be the index of an emulated unit")]
    BadUnplugUnit {
        /// The offending value.
        value: String,
    },
    /// `fault` is not `STREAM:FAULT:AFTER[:TIMES]`.
    #[error("emulate fault `{value}` must be STREAM:FAULT:AFTER[:TIMES] with STREAM depth, color or imu and FAULT timeout, stall, short, corrupt, babble or disconnect")]
    BadFault {
        /// The offending value.
        value: String,
    },
}

impl FromStr for EmulateSpec {
    type Err = EmulateSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut out = EmulateSpec::default();
        if spec.trim().is_empty() {
            return Ok(out);
        }
        let mut seen: [bool; 7] = [false; 7];
        for raw in spec.split(',') {
            let item = raw.trim();
            if item.is_empty() {
                return Err(EmulateSpecError::EmptyItem);
            }
            let Some((key, value)) = item.split_once('=') else {
                return Err(EmulateSpecError::MissingEquals { item: item.into() });
            };
            let (key, value) = (key.trim(), value.trim());
            let slot = match key {
                "units" => 0,
                "speed" => 1,
                "seed" => 2,
                "unplug_after" => 3,
                "fault" => {
                    out.faults.push(parse_fault(value)?);
                    continue;
                }
                "cable" => {
                    out.cables.push(parse_cable(value)?);
                    continue;
                }
                "cables" => 4,
                "unplug_unit" => 5,
                "journal" => 6,
                "firmware" => {
                    out.firmware.push(parse_firmware(value)?);
                    continue;
                }
                _ => return Err(EmulateSpecError::UnknownKey { key: key.into() }),
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(EmulateSpecError::DuplicateKey { key: key.into() });
            }
            match slot {
                0 => {
                    out.units = value
                        .parse::<u8>()
                        .ok()
                        .filter(|n| (1..=EmulateSpec::MAX_UNITS).contains(n))
                        .ok_or_else(|| EmulateSpecError::BadUnits {
                            value: value.into(),
                        })?;
                }
                1 => out.speed = parse_speed(value)?,
                5 => {
                    out.unplug_unit =
                        value.parse().map_err(|_| EmulateSpecError::BadUnplugUnit {
                            value: value.into(),
                        })?;
                }
                6 => out.journal = Some(value.into()),
                4 => {
                    out.chain = match value {
                        "chain" => true,
                        "none" => false,
                        _ => {
                            return Err(EmulateSpecError::BadCables {
                                value: value.into(),
                            })
                        }
                    };
                }
                3 => {
                    out.unplug_after_sec = match parse_speed(value) {
                        Ok(EmulateSpeed::Factor(x)) => Some(x),
                        _ => {
                            return Err(EmulateSpecError::BadUnplug {
                                value: value.into(),
                            })
                        }
                    };
                }
                _ => {
                    out.seed = value.parse().map_err(|_| EmulateSpecError::BadSeed {
                        value: value.into(),
                    })?;
                }
            }
        }
        if out.unplug_unit >= out.units {
            return Err(EmulateSpecError::BadUnplugUnit {
                value: out.unplug_unit.to_string(),
            });
        }
        if let Some(f) = out.firmware.iter().find(|f| f.unit >= out.units) {
            return Err(EmulateSpecError::BadFirmware {
                value: f.to_string(),
            });
        }
        if let Some(c) = out.cables.iter().find(|c| c.unit >= out.units) {
            return Err(EmulateSpecError::CableUnitOutOfRange {
                value: c.to_string(),
                unit: c.unit,
                last: out.units - 1,
            });
        }
        Ok(out)
    }
}

fn parse_speed(value: &str) -> Result<EmulateSpeed, EmulateSpecError> {
    if value.eq_ignore_ascii_case("realtime") {
        return Ok(EmulateSpeed::Realtime);
    }
    if value.eq_ignore_ascii_case("max") {
        return Ok(EmulateSpeed::Max);
    }
    // Only plain decimal numbers: Rust's float parser would also take "inf" and "NaN".
    let plain = !value.is_empty()
        && value.chars().all(|c| c.is_ascii_digit() || c == '.')
        && value.chars().any(|c| c.is_ascii_digit());
    match value.parse::<f64>() {
        Ok(x) if plain && x.is_finite() && x > 0.0 => Ok(EmulateSpeed::Factor(x)),
        _ => Err(EmulateSpecError::BadSpeed {
            value: value.into(),
        }),
    }
}

impl fmt::Display for EmulateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "units={},speed={},seed={}",
            self.units, self.speed, self.seed
        )?;
        if let Some(s) = self.unplug_after_sec {
            write!(f, ",unplug_after={s}")?;
        }
        for fault in &self.faults {
            write!(f, ",fault={fault}")?;
        }
        if self.chain {
            f.write_str(",cables=chain")?;
        }
        for cable in &self.cables {
            write!(f, ",cable={cable}")?;
        }
        if self.unplug_unit != 0 {
            write!(f, ",unplug_unit={}", self.unplug_unit)?;
        }
        for fw in &self.firmware {
            write!(f, ",firmware={fw}")?;
        }
        if let Some(p) = &self.journal {
            write!(f, ",journal={}", p.display())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_one_unit_realtime() {
        assert_eq!("".parse::<EmulateSpec>().unwrap(), EmulateSpec::default());
        assert_eq!("  ".parse::<EmulateSpec>().unwrap().units, 1);
    }

    #[test]
    fn full_spec() {
        let s: EmulateSpec = "units=3, speed=MAX ,seed=42".parse().unwrap();
        assert_eq!(s.units, 3);
        assert_eq!(s.speed, EmulateSpeed::Max);
        assert_eq!(s.seed, 42);
        let s: EmulateSpec = "speed=2.5".parse().unwrap();
        assert_eq!(s.speed, EmulateSpeed::Factor(2.5));
        assert_eq!(s.units, 1);
    }

    #[test]
    fn unplug_and_faults() {
        let s: EmulateSpec = "unplug_after=2.5,fault=depth:timeout:30:4,fault=imu:corrupt:10"
            .parse()
            .unwrap();
        assert_eq!(s.unplug_after_sec, Some(2.5));
        assert_eq!(
            s.faults,
            vec![
                StreamFault {
                    stream: Stream::Depth,
                    kind: FaultKind::Timeout,
                    after: 30,
                    times: 4
                },
                StreamFault {
                    stream: Stream::Imu,
                    kind: FaultKind::Corrupt,
                    after: 10,
                    times: 1
                },
            ]
        );
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "units=2,speed=realtime,seed=7",
            "units=1,speed=0.5,seed=0",
            "units=1,speed=max,seed=0,unplug_after=1.5,fault=color:stall:9:1",
            "units=1,speed=realtime,seed=3,fault=depth:babble:2:1,fault=imu:babble:0:3",
        ] {
            let s: EmulateSpec = text.parse().unwrap();
            assert_eq!(s.to_string(), text);
            assert_eq!(s.to_string().parse::<EmulateSpec>().unwrap(), s);
        }
    }

    #[test]
    fn refusals() {
        use EmulateSpecError as E;
        let err = |s: &str| s.parse::<EmulateSpec>().unwrap_err();
        assert_eq!(err("units=0"), E::BadUnits { value: "0".into() });
        assert_eq!(err("units=17"), E::BadUnits { value: "17".into() });
        assert_eq!(
            err("units=two"),
            E::BadUnits {
                value: "two".into()
            }
        );
        assert_eq!(err("speed=0"), E::BadSpeed { value: "0".into() });
        assert_eq!(
            err("speed=inf"),
            E::BadSpeed {
                value: "inf".into()
            }
        );
        assert_eq!(err("speed=-1"), E::BadSpeed { value: "-1".into() });
        assert_eq!(err("seed=-1"), E::BadSeed { value: "-1".into() });
        assert_eq!(
            err("units"),
            E::MissingEquals {
                item: "units".into()
            }
        );
        assert_eq!(err("units=1,"), E::EmptyItem);
        assert_eq!(err("fast=1"), E::UnknownKey { key: "fast".into() });
        assert_eq!(err("seed=1,seed=2"), E::DuplicateKey { key: "seed".into() });
        assert_eq!(err("unplug_after=0"), E::BadUnplug { value: "0".into() });
        assert_eq!(
            err("fault=depth:melt:3"),
            E::BadFault {
                value: "depth:melt:3".into()
            }
        );
        assert_eq!(
            err("fault=color:babble:3"),
            E::BadFault {
                value: "color:babble:3".into()
            }
        );
        assert_eq!(
            err("fault=depth:stall:3:0"),
            E::BadFault {
                value: "depth:stall:3:0".into()
            }
        );
        assert_eq!(
            err("units=0").to_string(),
            "emulate units `0` must be a whole number from 1 to 16"
        );
    }

    #[test]
    fn sync_cables() {
        let s: EmulateSpec = "units=3,cables=chain".parse().unwrap();
        assert!(s.chain);
        assert_eq!(s.to_string(), "units=3,speed=realtime,seed=0,cables=chain");
        let s: EmulateSpec = "cable=0:in,units=2,cable=1:in+out".parse().unwrap();
        assert_eq!(
            s.cables,
            [
                UnitCable {
                    unit: 0,
                    sync_in: true,
                    sync_out: false
                },
                UnitCable {
                    unit: 1,
                    sync_in: true,
                    sync_out: true
                },
            ]
        );
        assert_eq!(s.to_string().parse::<EmulateSpec>().unwrap(), s);
        assert_eq!(
            "cables=ring".parse::<EmulateSpec>(),
            Err(EmulateSpecError::BadCables {
                value: "ring".into()
            })
        );
        for bad in ["0", "x:in", "0:sideways", "0:"] {
            assert_eq!(
                format!("cable={bad}").parse::<EmulateSpec>(),
                Err(EmulateSpecError::BadCable { value: bad.into() })
            );
        }
        let err = "cable=1:out".parse::<EmulateSpec>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "emulate cable `1:out` names unit 1, but units 0 to 0 are emulated"
        );
        let s: EmulateSpec = "units=3,firmware=2:1.6.108/1.6.79,unplug_unit=1,journal=/tmp/j"
            .parse()
            .unwrap();
        assert_eq!(s.firmware[0].unit, 2);
        assert_eq!(s.firmware[0].rgb.to_string(), "1.6.108");
        assert_eq!(s.unplug_unit, 1);
        assert_eq!(s.to_string().parse::<EmulateSpec>().unwrap(), s);
        for bad in [
            "firmware=0:1.6/1.6.79",
            "firmware=0:1.6.1",
            "units=2,firmware=2:1.1.1/1.1.1",
        ] {
            assert!(
                matches!(
                    bad.parse::<EmulateSpec>(),
                    Err(EmulateSpecError::BadFirmware { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            "unplug_unit=1".parse::<EmulateSpec>(),
            Err(EmulateSpecError::BadUnplugUnit { .. })
        ));
        assert!(matches!(
            "cables=chain,cables=none".parse::<EmulateSpec>(),
            Err(EmulateSpecError::DuplicateKey { .. })
        ));
    }

    #[test]
    fn spec_defaults_and_refusals() {
        let s: EmulateSpec = "units=2,speed=max,seed=9".parse().unwrap();
        assert_eq!((s.units, s.speed, s.seed), (2, EmulateSpeed::Max, 9));
        let s: EmulateSpec = "".parse().unwrap();
        assert_eq!((s.units, s.speed, s.seed), (1, EmulateSpeed::Realtime, 0));
        let s: EmulateSpec = "speed=4".parse().unwrap();
        assert_eq!(s.speed, EmulateSpeed::Factor(4.0));
        assert!("units=1,units=2".parse::<EmulateSpec>().is_err());
        assert!("speed=fast".parse::<EmulateSpec>().is_err());
    }
}
