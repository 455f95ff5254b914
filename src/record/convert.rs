//! [`convert_depth`]: a raw depth recording ([`super::raw`]) made into a standard one, its raw
//! frames run through a depth engine into DEPTH and IR tracks, colour and IMU copied as they are.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::raw::{
    RAW_DEPTH_CALIBRATION_FILE, RAW_DEPTH_DELAY_TAG, RAW_DEPTH_FPS_TAG, RAW_DEPTH_MODE_TAG,
    RAW_DEPTH_TRACK,
};
use crate::depthengine::{Converted, DepthEngine, DepthEngineError, FrameConverter};
use crate::mkv::k4a::HOST_START_TIME_TAG;
use crate::mkv::writer::{K4aWriter, RecordedDevice, RecordingSettings, WriteError};
use crate::playback::{self, Playback};
use crate::safe_output::{Inputs, OutputError, PendingFile};
use crate::types::{
    Capture, DepthMode, DeviceConfig, DropCounts, Fps, ImuSample, TrackKind, Version,
};

/// Why a conversion failed. The output is only renamed into place after a complete run, so a
/// failure leaves nothing at the destination.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The input could not be opened or read.
    #[error("reading {path}: {source}")]
    Read {
        /// The input.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: playback::Error,
    },
    /// The input has no raw depth track.
    #[error("{0} is not a raw depth recording (it has no {RAW_DEPTH_TRACK} track; record with --raw-depth)")]
    NotRaw(PathBuf),
    /// Something the conversion needs is missing or malformed.
    #[error("{path}: {what}")]
    Malformed {
        /// The input.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The depth engine failed.
    #[error("depth engine: {0}")]
    Engine(#[source] DepthEngineError),
    /// Writing the output failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The output.
        path: PathBuf,
        /// The writer's error.
        #[source]
        source: WriteError,
    },
    /// The output could not be created or put in place.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// What a conversion did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConvertSummary {
    /// Raw frames read.
    pub raw_frames: u64,
    /// Depth captures written (one DEPTH and one IR image each; IR only for passive IR).
    pub depth_captures: u64,
    /// Raw frames the engine dropped (GPU errors, invalid timestamps), counted in the output's
    /// drop tags.
    pub engine_drops: u64,
    /// Colour images copied.
    pub color_images: u64,
    /// IMU samples copied.
    pub imu_samples: u64,
    /// Output size in bytes.
    pub bytes: u64,
}

/// Options of [`convert_depth`].
#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    /// Replace an existing output.
    pub overwrite: bool,
}

/// Converts the raw depth recording `input` into a standard recording at `output` with
/// `engine`: the raw frames become DEPTH and IR tracks with the engine's timestamps, colour,
/// IMU, device facts and our tags are copied, and the drop counts add the engine's drops.
pub fn convert_depth(
    input: &Path,
    output: &Path,
    engine: &DepthEngine,
    options: &ConvertOptions,
) -> Result<ConvertSummary, ConvertError> {
    let read_err = |source| ConvertError::Read {
        path: input.to_path_buf(),
        source,
    };
    let malformed = |what: String| ConvertError::Malformed {
        path: input.to_path_buf(),
        what,
    };
    let mut pb = Playback::open(input).map_err(read_err)?;
    if !pb.tracks().iter().any(|t| t.name == RAW_DEPTH_TRACK) {
        return Err(ConvertError::NotRaw(input.to_path_buf()));
    }
    let tag = |name: &str| {
        pb.tag(name)
            .map(str::to_owned)
            .ok_or_else(|| malformed(format!("the tag {name} is missing")))
    };
    let mode_name = tag(RAW_DEPTH_MODE_TAG)?;
    let mode = DepthMode::from_name(&mode_name)
        .filter(|m| *m != DepthMode::Off)
        .ok_or_else(|| malformed(format!("{RAW_DEPTH_MODE_TAG} is {mode_name:?}")))?;
    let fps_text = tag(RAW_DEPTH_FPS_TAG)?;
    let fps = fps_text
        .parse()
        .ok()
        .and_then(Fps::from_hz)
        .ok_or_else(|| malformed(format!("{RAW_DEPTH_FPS_TAG} is {fps_text:?}")))?;
    let delay_text = tag(RAW_DEPTH_DELAY_TAG)?;
    let depth_delay_ns: i64 = delay_text
        .parse()
        .map_err(|_| malformed(format!("{RAW_DEPTH_DELAY_TAG} is {delay_text:?}")))?;
    let cal_block = pb
        .attachment(RAW_DEPTH_CALIBRATION_FILE)
        .map(|a| a.data.clone())
        .ok_or_else(|| {
            malformed(format!(
                "the attachment {RAW_DEPTH_CALIBRATION_FILE} is missing"
            ))
        })?;
    let calibration_json = pb.calibration().map(<[u8]>::to_vec);
    let camera = match &calibration_json {
        Some(json) => Some(crate::device::depth_camera(
            &crate::protocol::calibration::Calibration::from_json(json)
                .map_err(|e| malformed(format!("calibration.json: {e}")))?
                .depth,
        )),
        None => None,
    };

    let settings = output_settings(&pb, mode, fps, depth_delay_ns, calibration_json);
    let mut dropped = DropCounts::default();
    for kind in TrackKind::ALL {
        dropped[kind] = pb
            .tag(kind.dropped_tag())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
    }

    let mut converter = FrameConverter::new(engine, mode, &cal_block, camera.as_ref())
        .map_err(ConvertError::Engine)?;
    let mut pending = PendingFile::create(output, options.overwrite, &Inputs::new([input]))?;
    let write_err = |source| ConvertError::Write {
        path: output.to_path_buf(),
        source,
    };
    let mut summary = ConvertSummary::default();
    let bytes = {
        let file = BufWriter::with_capacity(1 << 20, pending.file());
        let mut w = K4aWriter::create(file, settings).map_err(write_err)?;
        let mut items = Merge::new(&mut pb).map_err(read_err)?;
        while let Some(item) = items.next(&mut pb).map_err(read_err)? {
            match item {
                Item::Color(capture) => {
                    w.write_capture_owned(capture).map_err(write_err)?;
                    summary.color_images += 1;
                }
                Item::Imu(sample) => {
                    w.write_imu(&sample).map_err(write_err)?;
                    summary.imu_samples += 1;
                }
                Item::Raw(mut block) => {
                    summary.raw_frames += 1;
                    match converter
                        .convert(&mut block.data, 0)
                        .map_err(ConvertError::Engine)?
                    {
                        Converted::Capture(c) => {
                            w.write_capture_owned(c).map_err(write_err)?;
                            summary.depth_captures += 1;
                        }
                        Converted::GpuError(_) | Converted::BadTimestamp => {
                            summary.engine_drops += 1;
                            for k in super::raw::carried_streams(mode) {
                                dropped[k] += 1;
                            }
                        }
                    }
                }
            }
        }
        let (mut file, written) = w.finish(dropped).map_err(write_err)?;
        file.flush().map_err(|source| {
            write_err(WriteError::Io {
                what: "file",
                source,
            })
        })?;
        written.bytes
    };
    pending.commit()?;
    summary.bytes = bytes;
    Ok(summary)
}

/// The output's writer settings: the input's configuration with the depth mode restored, its
/// device facts, and the tags that are neither the SDK's nor the raw layout's.
fn output_settings<R: std::io::Read + std::io::Seek>(
    pb: &Playback<R>,
    mode: DepthMode,
    fps: Fps,
    depth_delay_ns: i64,
    calibration_json: Option<Vec<u8>>,
) -> RecordingSettings {
    let c = pb.config();
    let config = DeviceConfig {
        color_format: c
            .color_format
            .unwrap_or(DeviceConfig::default().color_format),
        color_resolution: c.color_resolution,
        depth_mode: mode,
        camera_fps: fps,
        depth_delay_off_color_usec: (depth_delay_ns / 1000) as i32,
        wired_sync_mode: c.wired_sync_mode,
        subordinate_delay_off_master_usec: c.subordinate_delay_off_master_usec,
        ..DeviceConfig::default()
    };
    let mut s = RecordingSettings::new(config, c.imu_track_enabled);
    let version = |name: &str| pb.tag(name).and_then(|v| v.parse::<Version>().ok());
    if let Some(json) = calibration_json {
        s.device = Some(RecordedDevice {
            serial_number: pb.tag("K4A_DEVICE_SERIAL_NUMBER").map(str::to_owned),
            color_firmware: version("K4A_COLOR_FIRMWARE_VERSION").unwrap_or_default(),
            depth_firmware: version("K4A_DEPTH_FIRMWARE_VERSION").unwrap_or_default(),
            calibration_json: json,
        });
    }
    let written_by_writer = |name: &str| {
        name.starts_with("K4A_")
            || name.starts_with("FREEK4A_RAW_DEPTH_")
            || name.starts_with("FREEK4A_DROPPED_")
            || name == "FREEK4A_VERSION"
            || name == HOST_START_TIME_TAG
    };
    s.tags = pb
        .tags()
        .iter()
        .filter(|t| t.target == playback::TagTarget::Global && !written_by_writer(&t.name))
        .map(|t| (t.name.clone(), t.value.clone()))
        .collect();
    // The recording's start, not the conversion's.
    s.start_time = pb
        .tag(HOST_START_TIME_TAG)
        .and_then(parse_rfc3339_usec)
        .unwrap_or_else(SystemTime::now);
    s
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` as the writer renders it.
fn parse_rfc3339_usec(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 27 || b[26] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss, us) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..26)?);
    // Days from civil (proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let usec = ((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000 + us)
        .try_into()
        .ok()?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(usec))
}

/// One item of the input, in device-time order across its streams.
enum Item {
    Color(Capture),
    Imu(ImuSample),
    Raw(playback::DataBlock),
}

/// The input's colour images, IMU samples and raw frames merged by device time (each stream
/// is in order in the file; the reader keeps a cursor per stream).
struct Merge {
    color: Option<Capture>,
    imu: Option<ImuSample>,
    raw: Option<playback::DataBlock>,
}

impl Merge {
    fn new<R: std::io::Read + std::io::Seek>(
        pb: &mut Playback<R>,
    ) -> Result<Merge, playback::Error> {
        let mut m = Merge {
            color: None,
            imu: None,
            raw: None,
        };
        m.color = next_color(pb)?;
        m.imu = pb.next_imu_sample()?;
        m.raw = pb.next_data_block(RAW_DEPTH_TRACK)?;
        Ok(m)
    }

    fn next<R: std::io::Read + std::io::Seek>(
        &mut self,
        pb: &mut Playback<R>,
    ) -> Result<Option<Item>, playback::Error> {
        let color_t = self
            .color
            .as_ref()
            .and_then(|c| c.color.as_ref())
            .map(|i| i.device_timestamp_usec);
        let imu_t = self.imu.map(|s| s.acc_timestamp_usec);
        let raw_t = self.raw.as_ref().map(|b| b.device_timestamp_usec);
        let earliest = [color_t, imu_t, raw_t].into_iter().flatten().min();
        Ok(match earliest {
            None => None,
            Some(t) if color_t == Some(t) => {
                let item = self.color.take().map(Item::Color);
                self.color = next_color(pb)?;
                item
            }
            Some(t) if raw_t == Some(t) => {
                let item = self.raw.take().map(Item::Raw);
                self.raw = pb.next_data_block(RAW_DEPTH_TRACK)?;
                item
            }
            Some(_) => {
                let item = self.imu.take().map(Item::Imu);
                self.imu = pb.next_imu_sample()?;
                item
            }
        })
    }
}

/// The next capture with a colour image, reduced to that image.
fn next_color<R: std::io::Read + std::io::Seek>(
    pb: &mut Playback<R>,
) -> Result<Option<Capture>, playback::Error> {
    while let Some(c) = pb.next_capture()? {
        if let Some(color) = c.color {
            return Ok(Some(Capture {
                color: Some(color),
                depth: None,
                ir: None,
                temperature_c: f32::NAN,
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_round_trips_through_the_tag() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_796_313_600_123_456);
        let text = crate::mkv::k4a::render::rfc3339_usec(1_796_313_600_123_456);
        assert_eq!(parse_rfc3339_usec(&text), Some(t));
        assert_eq!(parse_rfc3339_usec("2026-12-03T16:06:38Z"), None);
    }
}
