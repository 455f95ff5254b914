//! Raw depth recordings: the unit's depth payloads stored as they come off the USB endpoint, with
//! no depth engine at record time, for [`convert_depth`](super::convert_depth) to turn into the
//! standard DEPTH and IR tracks later.
//!
//! The layout follows k4arecord's custom-track conventions, so Microsoft's playback opens the
//! file and reads its colour and IMU while skipping the raw track:
//! - the K4A tags describe a recording whose depth mode is OFF (no DEPTH or IR track);
//! - a custom video track [`RAW_DEPTH_TRACK`] (CodecID [`RAW_DEPTH_CODEC_ID`], the depth mode's
//!   pixel size and the camera rate), tagged `K4A_CUSTOM_TRACK_DEPTH_RAW`, one SimpleBlock per
//!   raw frame, its bytes exactly as the unit sent them;
//! - the depth engine's calibration block (NV tag 2) attached as [`RAW_DEPTH_CALIBRATION_FILE`];
//! - the depth configuration in our own tags: [`RAW_DEPTH_MODE_TAG`], [`RAW_DEPTH_FPS_TAG`],
//!   [`RAW_DEPTH_DELAY_TAG`];
//! - drops of raw frames counted as depth and IR drops (`FREEK4A_DROPPED_DEPTH`, `_IR`).
//!
//! A raw frame's block time is an estimate: the unit's device timestamp of a frame is only known
//! once an engine has processed it. The recorder maps the frame's host reception time onto the
//! device clock through the newest colour image (which carries both clocks), else through the
//! IMU, else it starts the device clock at the first frame. The estimate only orders the raw
//! blocks among the colour and IMU blocks; converted images carry the engine's timestamps.

use crate::mkv::writer::{AttachedFile, CustomTrack, CustomVideo, RecordingSettings};
use crate::protocol::depth_raw;
use crate::types::{DepthMode, DeviceConfig, TrackKind};

/// Name of the custom track holding raw depth frames.
pub const RAW_DEPTH_TRACK: &str = "DEPTH_RAW";
/// CodecID of the raw depth track (no public codec decodes it).
pub const RAW_DEPTH_CODEC_ID: &str = "V_FREEK4A/DEPTH_RAW";
/// File name of the attached depth engine calibration block.
pub const RAW_DEPTH_CALIBRATION_FILE: &str = "depth_engine_calibration.bin";
/// Tag holding the depth mode the raw frames were streamed in (`NFOV_UNBINNED`...).
pub const RAW_DEPTH_MODE_TAG: &str = "FREEK4A_RAW_DEPTH_MODE";
/// Tag holding the camera rate in frames per second.
pub const RAW_DEPTH_FPS_TAG: &str = "FREEK4A_RAW_DEPTH_FPS";
/// Tag holding the configured depth delay off colour, in nanoseconds (`K4A_DEPTH_DELAY_NS`'s
/// value when the depth tracks are written).
pub const RAW_DEPTH_DELAY_TAG: &str = "FREEK4A_RAW_DEPTH_DELAY_NS";

/// The streams the raw track stands for in a recording of `mode`.
pub fn carried_streams(mode: DepthMode) -> Vec<TrackKind> {
    [
        (mode.has_depth(), TrackKind::Depth),
        (mode.has_ir(), TrackKind::Ir),
    ]
    .into_iter()
    .filter(|x| x.0)
    .map(|x| x.1)
    .collect()
}

/// Turns the writer settings of a direct recording of `config` into those of a raw one: depth
/// off in the K4A tags, the raw track, the calibration block attached, the depth configuration
/// in our tags. `config.depth_mode` must be on.
pub fn raw_depth_settings(
    mut settings: RecordingSettings,
    config: &DeviceConfig,
    engine_calibration: Vec<u8>,
) -> RecordingSettings {
    let mode = config.depth_mode;
    let (width, height) = mode.dimensions().unwrap_or_default();
    settings.config.depth_mode = DepthMode::Off;
    // Clusters stay open for the cluster delay; with raw frames of megabytes each, the default
    // budget would write them early and refuse the IMU samples that follow as late.
    let delay_sec = settings.cluster_write_delay_ns as f64 / 1e9;
    let held = (raw_depth_bytes_per_sec(config) as f64 * (delay_sec + 0.1)) as usize;
    settings.pending_limit_bytes = settings.pending_limit_bytes.max(held);
    settings.custom_tracks.push(CustomTrack {
        name: RAW_DEPTH_TRACK.into(),
        codec_id: RAW_DEPTH_CODEC_ID.into(),
        codec_private: None,
        video: Some(CustomVideo {
            width,
            height,
            frame_rate: config.camera_fps.hz(),
        }),
        carries: carried_streams(mode),
    });
    settings.attachments.push(AttachedFile {
        file_name: RAW_DEPTH_CALIBRATION_FILE.into(),
        data: engine_calibration,
    });
    settings
        .tags
        .push((RAW_DEPTH_MODE_TAG.into(), mode.name().into()));
    settings
        .tags
        .push((RAW_DEPTH_FPS_TAG.into(), config.camera_fps.hz().to_string()));
    settings.tags.push((
        RAW_DEPTH_DELAY_TAG.into(),
        (i64::from(config.depth_delay_off_color_usec) * 1000).to_string(),
    ));
    settings
}

/// Bytes per second of raw depth in `config`'s mode (0 with depth off).
pub fn raw_depth_bytes_per_sec(config: &DeviceConfig) -> u64 {
    depth_raw::sensor_mode_for(config.depth_mode)
        .and_then(depth_raw::raw_frame_size)
        .map_or(0, |size| size as u64 * u64::from(config.camera_fps.hz()))
}

/// Maps raw frames' host reception times onto the unit's device clock (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RawClock {
    /// Host µs minus device µs, once known.
    host_minus_device_usec: Option<i128>,
    /// Host µs when the newest IMU sample was handed out, and its device time.
    imu: Option<(u64, u64)>,
}

impl RawClock {
    /// Learns the offset from an image that carries both clocks.
    pub fn observe_image(&mut self, device_usec: u64, system_nsec: u64) {
        if system_nsec != 0 {
            self.host_minus_device_usec =
                Some(i128::from(system_nsec / 1000) - i128::from(device_usec));
        }
    }

    /// Whether the offset between the clocks is known yet.
    pub fn knows_offset(&self) -> bool {
        self.host_minus_device_usec.is_some() || self.imu.is_some()
    }

    /// Notes an IMU sample handed out at host time `host_usec`.
    pub fn observe_imu(&mut self, host_usec: u64, device_usec: u64) {
        self.imu = Some((host_usec, device_usec));
    }

    /// The estimated device time of a frame received at host `system_nsec`.
    pub fn device_usec(&mut self, system_nsec: u64) -> u64 {
        let host_usec = i128::from(system_nsec / 1000);
        let offset = *self
            .host_minus_device_usec
            .get_or_insert_with(|| match self.imu {
                Some((h, d)) => i128::from(h) - i128::from(d),
                None => host_usec,
            });
        (host_usec - offset).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ColorResolution, Fps};

    #[test]
    fn settings_move_depth_into_the_raw_track() {
        let config = DeviceConfig {
            depth_mode: DepthMode::WfovUnbinned,
            color_resolution: ColorResolution::R720p,
            camera_fps: Fps::Fps15,
            depth_delay_off_color_usec: -120,
            ..DeviceConfig::default()
        };
        let s = raw_depth_settings(
            RecordingSettings::new(config.clone(), true),
            &config,
            vec![1, 2, 3],
        );
        assert_eq!(s.config.depth_mode, DepthMode::Off);
        assert_eq!(s.config.color_resolution, ColorResolution::R720p);
        let t = &s.custom_tracks[0];
        assert_eq!(
            (t.name.as_str(), t.codec_id.as_str()),
            ("DEPTH_RAW", "V_FREEK4A/DEPTH_RAW")
        );
        assert_eq!(
            t.video,
            Some(CustomVideo {
                width: 1024,
                height: 1024,
                frame_rate: 15
            })
        );
        assert_eq!(t.carries, [TrackKind::Depth, TrackKind::Ir]);
        assert_eq!(s.attachments[0].data, [1, 2, 3]);
        assert_eq!(
            s.tags,
            [
                (
                    "FREEK4A_RAW_DEPTH_MODE".to_string(),
                    "WFOV_UNBINNED".to_string()
                ),
                ("FREEK4A_RAW_DEPTH_FPS".into(), "15".into()),
                ("FREEK4A_RAW_DEPTH_DELAY_NS".into(), "-120000".into()),
            ]
        );
        assert_eq!(carried_streams(DepthMode::PassiveIr), [TrackKind::Ir]);
    }

    #[test]
    fn raw_rates() {
        let mut config = DeviceConfig {
            depth_mode: DepthMode::NfovUnbinned,
            ..DeviceConfig::default()
        };
        assert_eq!(raw_depth_bytes_per_sec(&config), 5_310_760 * 30);
        config.depth_mode = DepthMode::Off;
        assert_eq!(raw_depth_bytes_per_sec(&config), 0);
    }

    #[test]
    fn clock_prefers_colour_then_imu_then_first_frame() {
        let mut c = RawClock::default();
        c.observe_imu(5_000_000, 1_000_000);
        c.observe_image(2_000_000, 7_000_000_000);
        // Colour: host 7 s is device 2 s.
        assert_eq!(c.device_usec(7_033_000_000), 2_033_000);

        let mut c = RawClock::default();
        c.observe_imu(5_000_000, 1_000_000);
        assert_eq!(c.device_usec(5_500_000_000), 1_500_000);

        let mut c = RawClock::default();
        assert_eq!(c.device_usec(9_000_000_000), 0);
        assert_eq!(c.device_usec(9_033_333_000), 33_333);
    }
}
