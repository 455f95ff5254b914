//! Pairs the captures of a synchronised rig's recordings across files.
//!
//! Every file's captures are placed on one time line by their device timestamps (the colour
//! image's, or the depth image's less the file's depth delay when there is no colour). The
//! subordinates' clocks follow the master's, with each subordinate exposing its subordinate delay
//! after the master, so a subordinate capture belongs to the master capture whose time plus
//! that delay is nearest, within half a frame period. This is the pairing Microsoft's
//! `playback_external_sync` example does by merging the files in timestamp order, made explicit.

use std::path::{Path, PathBuf};

use crate::playback::{Error, Playback};
use crate::types::{Capture, WiredSyncMode};

/// One recording's capture times.
#[derive(Clone, Debug)]
pub struct RecordingTimes {
    /// The file.
    pub path: PathBuf,
    /// Serial number from the file's tags (the file name's stem when absent).
    pub serial: String,
    /// Its wired sync mode.
    pub mode: WiredSyncMode,
    /// Subordinate delay off the master, µs.
    pub delay_usec: u32,
    /// Frame period, µs.
    pub period_usec: u32,
    /// Each capture's time, µs of device time.
    pub capture_usec: Vec<u64>,
}

fn capture_usec(c: &Capture, depth_delay_usec: i32) -> Option<u64> {
    if let Some(i) = &c.color {
        return Some(i.device_timestamp_usec);
    }
    let d = c.depth.as_ref().or(c.ir.as_ref())?;
    Some((d.device_timestamp_usec as i64 - i64::from(depth_delay_usec)).max(0) as u64)
}

impl RecordingTimes {
    /// Reads every capture's time from a recording.
    pub fn read(path: &Path) -> Result<RecordingTimes, Error> {
        let mut p = Playback::open(path)?;
        let cfg = p.config().clone();
        let serial = p
            .tag("K4A_DEVICE_SERIAL_NUMBER")
            .map(str::to_string)
            .unwrap_or_else(|| {
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
        let mut times = Vec::new();
        while let Some(c) = p.next_capture()? {
            if let Some(t) = capture_usec(&c, cfg.depth_delay_off_color_usec) {
                times.push(t);
            }
        }
        Ok(RecordingTimes {
            path: path.to_path_buf(),
            serial,
            mode: cfg.wired_sync_mode,
            delay_usec: cfg.subordinate_delay_off_master_usec,
            period_usec: cfg.camera_fps.period_usec(),
            capture_usec: times,
        })
    }
}

/// How one unit's captures pair with the master's.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct UnitMatch {
    /// Serial number.
    pub serial: String,
    /// File.
    pub file: String,
    /// Wired sync mode.
    pub mode: &'static str,
    /// Configured delay, µs.
    pub delay_usec: u32,
    /// Captures in the file.
    pub captures: usize,
    /// Captures paired with a master capture.
    pub matched: usize,
    /// Offsets from the master (capture time − master's), µs: mean, min, max, standard deviation.
    pub offset_mean_usec: f64,
    /// Smallest offset.
    pub offset_min_usec: i64,
    /// Largest offset.
    pub offset_max_usec: i64,
    /// Standard deviation.
    pub offset_stddev_usec: f64,
    /// Largest |offset − delay|, µs.
    pub max_error_usec: u64,
    /// This unit's captures before its first paired one.
    pub unmatched_at_start: usize,
    /// This unit's captures after its last paired one.
    pub unmatched_at_end: usize,
    /// Master captures between this unit's first and last paired ones without a partner.
    pub gaps: usize,
    /// This unit's captures between its first and last paired ones without a partner.
    pub unpaired_between: usize,
}

/// One row of the pairing: the master capture's index and time, and each other unit's
/// paired capture index and time.
pub type MatchRow = (usize, u64, Vec<Option<(usize, u64)>>);

/// The pairing of a whole rig.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RigMatch {
    /// The master's file.
    pub master_file: String,
    /// The master's serial.
    pub master_serial: String,
    /// The master's captures.
    pub master_captures: usize,
    /// Every other unit.
    pub units: Vec<UnitMatch>,
    /// Per master capture: its index and time, and each unit's paired capture index and time.
    #[serde(skip)]
    pub rows: Vec<MatchRow>,
}

/// Why files cannot be matched.
#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: Error,
    },
    /// No master recording.
    #[error(
        "none of the recordings was made in master mode ({0}); matching needs the master's file"
    )]
    NoMaster(String),
    /// Two masters.
    #[error("{0} and {1} were both recorded as master; match one rig at a time")]
    TwoMasters(String, String),
    /// Fewer than two files.
    #[error("matching needs the master's recording and at least one other; found {0}")]
    TooFew(usize),
    /// Listing the directory failed.
    #[error("{path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The `.mkv` files of a directory, sorted by name.
pub fn recordings_in(dir: &Path) -> Result<Vec<PathBuf>, MatchError> {
    let entries = std::fs::read_dir(dir).map_err(|source| MatchError::Dir {
        path: dir.display().to_string(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("mkv")))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads and pairs the recordings.
pub fn match_files(files: &[PathBuf]) -> Result<RigMatch, MatchError> {
    let mut recs = Vec::new();
    for f in files {
        recs.push(RecordingTimes::read(f).map_err(|source| MatchError::Read {
            path: f.display().to_string(),
            source,
        })?);
    }
    match_recordings(&recs)
}

fn mode_word(m: WiredSyncMode) -> &'static str {
    match m {
        WiredSyncMode::Standalone => "standalone",
        WiredSyncMode::Master => "master",
        WiredSyncMode::Subordinate => "subordinate",
    }
}

/// Pairs recordings already read.
pub fn match_recordings(recs: &[RecordingTimes]) -> Result<RigMatch, MatchError> {
    if recs.len() < 2 {
        return Err(MatchError::TooFew(recs.len()));
    }
    let masters: Vec<&RecordingTimes> = recs
        .iter()
        .filter(|r| r.mode == WiredSyncMode::Master)
        .collect();
    let master = match masters.as_slice() {
        [m] => *m,
        [] => {
            return Err(MatchError::NoMaster(
                recs.iter()
                    .map(|r| r.path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ))
        }
        [a, b, ..] => {
            return Err(MatchError::TwoMasters(
                a.path.display().to_string(),
                b.path.display().to_string(),
            ))
        }
    };
    let others: Vec<&RecordingTimes> = recs.iter().filter(|r| !std::ptr::eq(*r, master)).collect();
    let m = &master.capture_usec;
    let mut rows: Vec<MatchRow> = m
        .iter()
        .enumerate()
        .map(|(i, t)| (i, *t, vec![None; others.len()]))
        .collect();
    let mut units = Vec::new();
    for (k, r) in others.iter().enumerate() {
        let half = i64::from(r.period_usec.max(master.period_usec) / 2);
        let delay = i64::from(r.delay_usec);
        // Both lists are in time order: walk them together.
        let mut j = 0usize;
        let mut pairs: Vec<(usize, usize, i64)> = Vec::new();
        for (i, &t) in r.capture_usec.iter().enumerate() {
            let expected_master = t as i64 - delay;
            while j + 1 < m.len() && (m[j + 1] as i64) <= expected_master {
                j += 1;
            }
            let best = [j, j + 1]
                .into_iter()
                .filter(|&c| c < m.len())
                .min_by_key(|&c| (m[c] as i64 - expected_master).abs());
            if let Some(c) = best {
                let err = m[c] as i64 - expected_master;
                let taken = pairs.last().is_some_and(|p| p.1 == c);
                if err.abs() < half && !taken {
                    pairs.push((i, c, t as i64 - m[c] as i64));
                }
            }
        }
        for &(i, c, _) in &pairs {
            rows[c].2[k] = Some((i, r.capture_usec[i]));
        }
        let n = pairs.len();
        let offsets: Vec<i64> = pairs.iter().map(|p| p.2).collect();
        let mean = if n > 0 {
            offsets.iter().sum::<i64>() as f64 / n as f64
        } else {
            0.0
        };
        let var = if n > 0 {
            offsets
                .iter()
                .map(|o| (*o as f64 - mean).powi(2))
                .sum::<f64>()
                / n as f64
        } else {
            0.0
        };
        let (first, last) = match (pairs.first(), pairs.last()) {
            (Some(a), Some(b)) => (Some(*a), Some(*b)),
            _ => (None, None),
        };
        units.push(UnitMatch {
            serial: r.serial.clone(),
            file: r.path.display().to_string(),
            mode: mode_word(r.mode),
            delay_usec: r.delay_usec,
            captures: r.capture_usec.len(),
            matched: n,
            offset_mean_usec: mean,
            offset_min_usec: offsets.iter().copied().min().unwrap_or(0),
            offset_max_usec: offsets.iter().copied().max().unwrap_or(0),
            offset_stddev_usec: var.sqrt(),
            max_error_usec: offsets
                .iter()
                .map(|o| (o - delay).unsigned_abs())
                .max()
                .unwrap_or(0),
            unmatched_at_start: first.map_or(r.capture_usec.len(), |p| p.0),
            unmatched_at_end: last.map_or(0, |p| r.capture_usec.len() - 1 - p.0),
            gaps: match (first, last) {
                (Some(a), Some(b)) => (b.1 - a.1 + 1) - n,
                _ => 0,
            },
            unpaired_between: match (first, last) {
                (Some(a), Some(b)) => (b.0 - a.0 + 1) - n,
                _ => 0,
            },
        });
    }
    Ok(RigMatch {
        master_file: master.path.display().to_string(),
        master_serial: master.serial.clone(),
        master_captures: m.len(),
        units,
        rows,
    })
}

impl RigMatch {
    /// `match.csv`: a header, then one row per master capture with each unit's paired capture
    /// index and time (empty when it has none).
    pub fn csv(&self) -> String {
        let mut out = format!("master_index,{}_usec", self.master_serial);
        for u in &self.units {
            out.push_str(&format!(",{0}_index,{0}_usec", u.serial));
        }
        out.push('\n');
        for (i, t, cells) in &self.rows {
            out.push_str(&format!("{i},{t}"));
            for c in cells {
                match c {
                    Some((j, tj)) => out.push_str(&format!(",{j},{tj}")),
                    None => out.push_str(",,"),
                }
            }
            out.push('\n');
        }
        out
    }
}

impl std::fmt::Display for RigMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "Master {} ({}): {} captures",
            self.master_serial, self.master_file, self.master_captures
        )?;
        for u in &self.units {
            writeln!(
                f,
                "{} {} ({}): {}/{} captures paired; offset from master mean {:.1} us, min {}, max {}, sd {:.1}; delay {} us, largest |offset - delay| {} us; unpaired at start {}, at end {}; gaps {} (master captures without a partner), {} unpaired in between",
                capitalise(u.mode),
                u.serial,
                u.file,
                u.matched,
                u.captures,
                u.offset_mean_usec,
                u.offset_min_usec,
                u.offset_max_usec,
                u.offset_stddev_usec,
                u.delay_usec,
                u.max_error_usec,
                u.unmatched_at_start,
                u.unmatched_at_end,
                u.gaps,
                u.unpaired_between
            )?;
        }
        Ok(())
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, mode: WiredSyncMode, delay: u32, times: &[u64]) -> RecordingTimes {
        RecordingTimes {
            path: PathBuf::from(format!("{name}.mkv")),
            serial: name.into(),
            mode,
            delay_usec: delay,
            period_usec: 33_333,
            capture_usec: times.to_vec(),
        }
    }

    #[test]
    fn pairs_by_time_plus_delay_and_counts_what_is_left() {
        let master: Vec<u64> = (1..=6).map(|i| i * 33_333).collect();
        // Starts one frame late, misses the 4th master frame, has one extra at the end.
        let sub: Vec<u64> = [2u64, 3, 5, 6, 7]
            .iter()
            .map(|i| i * 33_333 + 160 + (i % 2))
            .collect();
        let m = match_recordings(&[
            rec("sub", WiredSyncMode::Subordinate, 160, &sub),
            rec("master", WiredSyncMode::Master, 0, &master),
        ])
        .unwrap();
        assert_eq!(m.master_serial, "master");
        let u = &m.units[0];
        assert_eq!(
            (u.matched, u.unmatched_at_start, u.unmatched_at_end),
            (4, 0, 1)
        );
        assert_eq!(u.gaps, 1);
        assert_eq!((u.offset_min_usec, u.offset_max_usec), (160, 161));
        assert_eq!(u.max_error_usec, 1);
        let csv = m.csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "master_index,master_usec,sub_index,sub_usec");
        assert_eq!(lines[1], "0,33333,,");
        assert_eq!(lines[2], "1,66666,0,66826");
        assert_eq!(lines.len(), 7);
        assert!(matches!(
            match_recordings(&[rec("a", WiredSyncMode::Subordinate, 0, &[1])]),
            Err(MatchError::TooFew(1))
        ));
        assert!(matches!(
            match_recordings(&[
                rec("a", WiredSyncMode::Subordinate, 0, &[1]),
                rec("b", WiredSyncMode::Standalone, 0, &[1])
            ]),
            Err(MatchError::NoMaster(_))
        ));
    }
}
