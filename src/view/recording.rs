//! Recordings served by the viewer: one file, or every recording of a rig directory, each read
//! once up front for its summary, timeline and IMU traces, then seeked per request.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{json, Value};

use super::imaging::DepthRange;
use super::{Frame, Unit, UnitError, ViewError};
use crate::playback::{info::RecordingInfo, Origin, Playback};
use crate::protocol::calibration::Calibration;
use crate::types::{Capture, DepthMode};

/// Most IMU points sent for a whole recording; longer traces are averaged down to this.
const IMU_POINTS: usize = 4000;

/// One recording file.
pub struct FileUnit {
    name: String,
    playback: Mutex<Option<Playback<File>>>,
    meta: Value,
    imu: Value,
    depth_mode: DepthMode,
    calibration: Option<Calibration>,
}

/// The recordings a path names: the file itself, or the `.mkv` files directly inside a
/// directory (sorted by name).
pub fn recordings_at(path: &Path) -> Result<Vec<PathBuf>, ViewError> {
    if !path.is_dir() {
        if !path.exists() {
            return Err(ViewError::NotFound(path.to_path_buf()));
        }
        return Ok(vec![path.to_path_buf()]);
    }
    let read = std::fs::read_dir(path).map_err(|source| ViewError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = read
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("mkv")))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ViewError::NoRecordings(path.to_path_buf()));
    }
    Ok(files)
}

/// Gaps in a stream's timestamps longer than 1.5 frame periods: (device µs of the first
/// missing frame, frames missing).
fn gaps(times: &[u64], period_usec: u64) -> Vec<(u64, u64)> {
    if period_usec == 0 {
        return Vec::new();
    }
    times
        .windows(2)
        .filter_map(|w| {
            let d = w[1].saturating_sub(w[0]);
            (d * 2 > period_usec * 3).then(|| {
                let missing = ((d + period_usec / 2) / period_usec)
                    .saturating_sub(1)
                    .max(1);
                (w[0] + period_usec, missing)
            })
        })
        .collect()
}

impl FileUnit {
    /// Opens and indexes a recording. A file that cannot be read at all still gives a unit
    /// that shows why.
    pub fn open(path: &Path) -> FileUnit {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        match Self::index(path) {
            Ok((pb, meta, imu, cal)) => FileUnit {
                depth_mode: pb.config().depth_mode,
                name,
                playback: Mutex::new(Some(pb)),
                meta,
                imu,
                calibration: cal,
            },
            Err(e) => FileUnit {
                meta: json!({ "problems": [format!("cannot read the recording: {e}")] }),
                name,
                playback: Mutex::new(None),
                imu: json!({ "t": [], "acc": [], "gyro": [] }),
                depth_mode: DepthMode::Off,
                calibration: None,
            },
        }
    }

    #[allow(clippy::type_complexity)]
    fn index(
        path: &Path,
    ) -> Result<(Playback<File>, Value, Value, Option<Calibration>), crate::playback::Error> {
        let mut pb = Playback::open(path)?;
        let mut problems: Vec<String> = Vec::new();
        let info = match RecordingInfo::from_playback(&mut pb) {
            Ok(i) => Some(i),
            Err(e) => {
                problems.push(format!("reading through the file stopped: {e}"));
                None
            }
        };
        let times = pb.image_timestamps_usec().unwrap_or_else(|e| {
            problems.push(format!("indexing images stopped: {e}"));
            Default::default()
        });
        let cfg = pb.config().clone();
        let period_usec = u64::from(cfg.camera_fps.period_usec());
        let gap = |k: usize| -> Vec<Value> {
            gaps(&times[k], period_usec)
                .into_iter()
                .map(|(t, n)| json!([t, n]))
                .collect()
        };
        let all = times.iter().flatten();
        let start = all.clone().min().copied();
        let end = all.max().copied();
        let imu = read_imu(&mut pb).unwrap_or_else(|e| {
            problems.push(format!("reading IMU samples stopped: {e}"));
            json!({ "t": [], "acc": [], "gyro": [] })
        });
        let calibration = match pb.calibration() {
            None => None,
            Some(j) => match Calibration::from_json(j) {
                Ok(c) => Some(c),
                Err(e) => {
                    problems.push(format!("calibration does not parse: {e}"));
                    None
                }
            },
        };
        pb.seek(0, Origin::Begin)?;
        if let Some(i) = &info {
            problems.extend(i.diagnostics.iter().map(ToString::to_string));
        }
        for d in pb.diagnostics() {
            let s = d.to_string();
            if !problems.contains(&s) {
                problems.push(s);
            }
        }
        let tag = |n: &str| pb.tag(n).map(str::to_owned);
        let color = cfg.color_track_enabled.then(|| {
            let (w, h) = cfg.color_resolution.dimensions().unwrap_or((0, 0));
            json!({
                "mode": info.as_ref().and_then(|i| i.color_mode.clone()),
                "format": cfg.color_format.map(|f| f.sdk_name()),
                "width": w, "height": h,
            })
        });
        let meta = json!({
            "color": color,
            "depth_mode": cfg.depth_mode.sdk_name(),
            "depth_range": DepthRange::for_mode(cfg.depth_mode),
            "fps": cfg.camera_fps.hz(),
            "imu": cfg.imu_track_enabled,
            "sync": cfg.wired_sync_mode.name(),
            "depth_delay_usec": cfg.depth_delay_off_color_usec,
            "serial": tag("K4A_DEVICE_SERIAL_NUMBER"),
            "color_firmware": tag("K4A_COLOR_FIRMWARE_VERSION"),
            "depth_firmware": tag("K4A_DEPTH_FIRMWARE_VERSION"),
            "host_start_time": tag("FREEK4A_HOST_START_TIME"),
            "writing_app": pb.writing_app(),
            "length_usec": info.as_ref().map(|i| i.length_usec),
            "start_offset_usec": cfg.start_timestamp_offset_usec,
            "captures": info.as_ref().map(|i| i.captures),
            "images": { "color": times[0].len(), "depth": times[1].len(), "ir": times[2].len() },
            "first_usec": start,
            "last_usec": end,
            "dropped_tags": info.as_ref().map(|i| i.dropped.clone()).unwrap_or_default(),
            "gaps": { "color": gap(0), "depth": gap(1), "ir": gap(2) },
            "problems": problems,
        });
        Ok((pb, meta, imu, calibration))
    }
}

/// Every IMU sample, averaged down to at most [`IMU_POINTS`] points.
fn read_imu(pb: &mut Playback<File>) -> Result<Value, crate::playback::Error> {
    let mut all = Vec::new();
    if pb.config().imu_track_enabled {
        pb.seek(0, Origin::Begin)?;
        while let Some(s) = pb.next_imu_sample()? {
            all.push(s);
        }
    }
    Ok(imu_json(&all))
}

/// IMU samples as the page plots them: times (device µs), accelerometer and gyro triples.
pub(crate) fn imu_json(samples: &[crate::types::ImuSample]) -> Value {
    let per = samples.len().div_ceil(IMU_POINTS).max(1);
    let mut t = Vec::new();
    let mut acc = Vec::new();
    let mut gyro = Vec::new();
    for chunk in samples.chunks(per) {
        let n = chunk.len() as f64;
        let mean = |f: &dyn Fn(&crate::types::ImuSample) -> f32| {
            let v = chunk.iter().map(|s| f64::from(f(s))).sum::<f64>() / n;
            (v * 1000.0).round() / 1000.0
        };
        t.push(chunk[0].acc_timestamp_usec);
        acc.push([
            mean(&|s| s.acc_mps2[0]),
            mean(&|s| s.acc_mps2[1]),
            mean(&|s| s.acc_mps2[2]),
        ]);
        gyro.push([
            mean(&|s| s.gyro_radps[0]),
            mean(&|s| s.gyro_radps[1]),
            mean(&|s| s.gyro_radps[2]),
        ]);
    }
    json!({ "t": t, "acc": acc, "gyro": gyro })
}

impl Unit for FileUnit {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn meta(&self) -> Value {
        self.meta.clone()
    }

    fn imu(&self) -> Value {
        self.imu.clone()
    }

    fn depth_mode(&self) -> DepthMode {
        self.depth_mode
    }

    fn calibration(&self) -> Option<Calibration> {
        self.calibration.clone()
    }

    fn frame(&self, at_usec: Option<u64>, step: i8) -> Result<Frame, UnitError> {
        let mut guard = self.playback.lock().map_err(|_| UnitError::Poisoned)?;
        let pb = guard.as_mut().ok_or(UnitError::Unreadable)?;
        let read = |e: crate::playback::Error| UnitError::Read(e.to_string());
        let t = at_usec.map_or(0, |t| i64::try_from(t).unwrap_or(i64::MAX));
        if at_usec.is_some() {
            pb.seek(t, Origin::DeviceTime).map_err(read)?;
        } else {
            pb.seek(0, Origin::Begin).map_err(read)?;
        }
        let capture: Option<Capture> = match step {
            s if s < 0 => pb.previous_capture().map_err(read)?,
            0 => pb.next_capture().map_err(read)?,
            _ => {
                pb.next_capture().map_err(read)?;
                pb.next_capture().map_err(read)?
            }
        };
        // Past the end (or before the start) the nearest capture is shown.
        let capture = match capture {
            Some(c) => c,
            None if step >= 0 => {
                pb.seek(0, Origin::End).map_err(read)?;
                pb.previous_capture()
                    .map_err(read)?
                    .ok_or(UnitError::NoCapture)?
            }
            None => {
                pb.seek(0, Origin::Begin).map_err(read)?;
                pb.next_capture()
                    .map_err(read)?
                    .ok_or(UnitError::NoCapture)?
            }
        };
        Ok(Frame::new(capture))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_found_with_their_size() {
        let t = [0, 33_333, 66_666, 166_666, 200_000, 266_666];
        assert_eq!(gaps(&t, 33_333), vec![(99_999, 2), (233_333, 1)]);
        assert!(gaps(&[0, 33_333, 70_000], 33_333).is_empty());
        assert!(gaps(&t, 0).is_empty());
    }
}
