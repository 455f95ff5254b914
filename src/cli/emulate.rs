//! The `--emulate[=SPEC]` / `FREEK4A_EMULATE=SPEC` specification of an emulated device.
//!
//! SPEC is a comma-separated list of `key=value` items:
//!
//! * `units=N`: how many Azure Kinect units to emulate (1…[`EmulateSpec::MAX_UNITS`]);
//! * `speed=realtime|max|<factor>`: stream in real time, as fast as the host consumes, or at a
//!   multiple of real time (a positive finite number, `2` is twice as fast);
//! * `seed=N`: seed (unsigned 64-bit) for the emulator's synthetic content.
//!
//! An empty SPEC means one unit in real time with seed 0. Keys are lower case; the speed words
//! are matched case-insensitively. A key given twice is refused so that a typo cannot silently
//! override an earlier value.

use std::fmt;
use std::str::FromStr;

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
}

impl Default for EmulateSpec {
    fn default() -> Self {
        EmulateSpec {
            units: 1,
            speed: EmulateSpeed::Realtime,
            seed: 0,
        }
    }
}

impl EmulateSpec {
    /// Largest accepted `units` value (one master and a chain of subordinates).
    pub const MAX_UNITS: u8 = 16;
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
    #[error("unknown emulate key `{key}` (expected units, speed or seed)")]
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
}

impl FromStr for EmulateSpec {
    type Err = EmulateSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut out = EmulateSpec::default();
        if spec.trim().is_empty() {
            return Ok(out);
        }
        let mut seen: [bool; 3] = [false; 3];
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
                _ => {
                    out.seed = value.parse().map_err(|_| EmulateSpecError::BadSeed {
                        value: value.into(),
                    })?;
                }
            }
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
        )
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
    fn display_round_trips() {
        for text in ["units=2,speed=realtime,seed=7", "units=1,speed=0.5,seed=0"] {
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
        assert_eq!(
            err("units=0").to_string(),
            "emulate units `0` must be a whole number from 1 to 16"
        );
    }
}
