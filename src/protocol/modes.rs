//! Streaming facts per camera mode (raw depth frame sizes, transfer counts, depth engine
//! modes, allowed rates, colour combinations) and the SDK's configuration validation with its
//! exact messages. See `protocol/depth-stream.md` and `protocol/sequences.md`.

use thiserror::Error;

use super::command::SensorMode;
use super::payload::JackState;
use crate::types::{ColorResolution, DepthMode, DeviceConfig, Fps, ImageFormat, WiredSyncMode};

/// Depth engine processing mode (plugin ABI `k4a_depth_engine_mode_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DepthEngineMode {
    /// 2: NFOV 2×2 binned in software.
    LtSwBinning,
    /// 3: passive IR.
    Pcm,
    /// 4: NFOV unbinned.
    LtNative,
    /// 5: WFOV unbinned.
    MegaPixel,
    /// 7: WFOV 2×2 binned.
    QuarterMegaPixel,
}

impl DepthEngineMode {
    /// The ABI value.
    pub fn value(self) -> i32 {
        match self {
            DepthEngineMode::LtSwBinning => 2,
            DepthEngineMode::Pcm => 3,
            DepthEngineMode::LtNative => 4,
            DepthEngineMode::MegaPixel => 5,
            DepthEngineMode::QuarterMegaPixel => 7,
        }
    }
}

/// Depth engine input format (plugin ABI `k4a_depth_engine_input_type_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DepthEngineInputFormat {
    /// 3: 12-bit compressed.
    Compressed12Bit,
    /// 4: 8-bit compressed (WFOV unbinned only).
    Compressed8Bit,
}

impl DepthEngineInputFormat {
    /// The ABI value.
    pub fn value(self) -> i32 {
        match self {
            DepthEngineInputFormat::Compressed12Bit => 3,
            DepthEngineInputFormat::Compressed8Bit => 4,
        }
    }
}

/// Everything the host and the emulator need to know about one depth mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthModeInfo {
    /// The k4a mode.
    pub mode: DepthMode,
    /// Value sent with DEPTH_MODE_SET.
    pub sensor_mode: SensorMode,
    /// Exact raw frame size; transfers of any other length are dropped.
    pub raw_frame_bytes: usize,
    /// Raw size rounded up to 1024: the length of each bulk transfer.
    pub buffer_bytes: usize,
    /// Depth engine mode.
    pub engine_mode: DepthEngineMode,
    /// Depth engine input format.
    pub engine_input_format: DepthEngineInputFormat,
    /// Output image width and height.
    pub output_width: u32,
    /// Output image height.
    pub output_height: u32,
    /// Allowed camera rates.
    pub rates: &'static [Fps],
}

const ALL_RATES: &[Fps] = &[Fps::Fps5, Fps::Fps15, Fps::Fps30];
const NO_30: &[Fps] = &[Fps::Fps5, Fps::Fps15];

/// The per-mode table, in k4a enum order (NFOV 2×2 binned first).
pub const DEPTH_MODES: [DepthModeInfo; 5] = [
    DepthModeInfo {
        mode: DepthMode::Nfov2x2Binned,
        sensor_mode: SensorMode::LongThrowNative,
        raw_frame_bytes: 5_310_760,
        buffer_bytes: 5_311_488,
        engine_mode: DepthEngineMode::LtSwBinning,
        engine_input_format: DepthEngineInputFormat::Compressed12Bit,
        output_width: 320,
        output_height: 288,
        rates: ALL_RATES,
    },
    DepthModeInfo {
        mode: DepthMode::NfovUnbinned,
        sensor_mode: SensorMode::LongThrowNative,
        raw_frame_bytes: 5_310_760,
        buffer_bytes: 5_311_488,
        engine_mode: DepthEngineMode::LtNative,
        engine_input_format: DepthEngineInputFormat::Compressed12Bit,
        output_width: 640,
        output_height: 576,
        rates: ALL_RATES,
    },
    DepthModeInfo {
        mode: DepthMode::Wfov2x2Binned,
        sensor_mode: SensorMode::QuarterMegaPixel,
        raw_frame_bytes: 3_777_232,
        buffer_bytes: 3_777_536,
        engine_mode: DepthEngineMode::QuarterMegaPixel,
        engine_input_format: DepthEngineInputFormat::Compressed12Bit,
        output_width: 512,
        output_height: 512,
        rates: ALL_RATES,
    },
    DepthModeInfo {
        mode: DepthMode::WfovUnbinned,
        sensor_mode: SensorMode::MegaPixel,
        raw_frame_bytes: 9_438_664,
        buffer_bytes: 9_439_232,
        engine_mode: DepthEngineMode::MegaPixel,
        engine_input_format: DepthEngineInputFormat::Compressed8Bit,
        output_width: 1024,
        output_height: 1024,
        rates: NO_30,
    },
    DepthModeInfo {
        mode: DepthMode::PassiveIr,
        sensor_mode: SensorMode::PseudoCommon,
        raw_frame_bytes: 1_678_024,
        buffer_bytes: 1_678_336,
        engine_mode: DepthEngineMode::Pcm,
        engine_input_format: DepthEngineInputFormat::Compressed12Bit,
        output_width: 1024,
        output_height: 1024,
        rates: ALL_RATES,
    },
];

impl DepthModeInfo {
    /// The table row for a mode; `None` for OFF.
    pub fn for_mode(mode: DepthMode) -> Option<&'static DepthModeInfo> {
        DEPTH_MODES.iter().find(|m| m.mode == mode)
    }

    /// Whether the mode allows `fps`.
    pub fn allows(&self, fps: Fps) -> bool {
        self.rates.contains(&fps)
    }

    /// Transfers queued with the SDK's pool rule (see [`transfers_queued`]).
    pub fn transfers_queued(&self, max_pool_bytes: usize) -> usize {
        transfers_queued(self.buffer_bytes, max_pool_bytes)
    }
}

/// The SDK's default pool limit on Linux.
pub const LINUX_MAX_POOL_BYTES: usize = 10_000_000;
/// The SDK's default pool limit on Windows.
pub const WINDOWS_MAX_POOL_BYTES: usize = 80_000_000;
/// Most transfers the SDK queues on one stream.
pub const MAX_TRANSFERS: usize = 8;
/// Buffer length of each IMU transfer.
pub const IMU_TRANSFER_BYTES: usize = 252;

/// Rounds a frame size up to a multiple of 1024 (the SDK's "USB3" buffer rounding).
pub fn round_up_1024(bytes: usize) -> usize {
    bytes.div_ceil(1024) * 1024
}

/// How many transfers of `buffer_bytes` the SDK queues: the pool starts at one buffer; for
/// at most 8 iterations, while the pool is below the limit, one more transfer is queued and
/// the pool grows by one buffer. A buffer at or above the limit queues none.
pub fn transfers_queued(buffer_bytes: usize, max_pool_bytes: usize) -> usize {
    let mut pool = buffer_bytes;
    let mut count = 0;
    while count < MAX_TRANSFERS && pool < max_pool_bytes {
        count += 1;
        pool = pool.saturating_add(buffer_bytes);
    }
    count
}

/// Highest colour rate for a resolution; `None` for OFF.
pub fn color_max_fps(res: ColorResolution) -> Option<Fps> {
    match res {
        ColorResolution::Off => None,
        ColorResolution::R3072p => Some(Fps::Fps15),
        _ => Some(Fps::Fps30),
    }
}

/// Whether the SDK allows this colour resolution, format and rate together
/// (`protocol/sequences.md`, "Configuration validation"):
/// MJPG and BGRA32 at every resolution, YUY2 and NV12 at 720p only, 3072p at 15 fps at most.
pub fn color_combination_supported(res: ColorResolution, format: ImageFormat, fps: Fps) -> bool {
    let Some(max) = color_max_fps(res) else {
        return false;
    };
    let format_ok = match format {
        ImageFormat::Mjpg | ImageFormat::Bgra32 => true,
        ImageFormat::Yuy2 | ImageFormat::Nv12 => res == ColorResolution::R720p,
        ImageFormat::Depth16 | ImageFormat::Ir16 => false,
    };
    format_ok && fps.hz() <= max.hz()
}

/// A configuration the SDK refuses; `Display` is the SDK's message text.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The colour format is not one of MJPG, YUY2, NV12, BGRA32.
    #[error("The configured color_format is not a valid k4a_color_format_t value.")]
    InvalidColorFormat,
    /// Subordinate without a sync-in cable.
    #[error("Failure to detect presence of sync in cable with wired sync mode K4A_WIRED_SYNC_MODE_SUBORDINATE.")]
    NoSyncInCable,
    /// Master without a sync-out cable.
    #[error("Failure to detect presence of sync out cable with wired sync mode K4A_WIRED_SYNC_MODE_MASTER.")]
    NoSyncOutCable,
    /// Master without the colour camera.
    #[error("Device wired_sync_mode is set to K4A_WIRED_SYNC_MODE_MASTER, so color camera must be used on master device. Color_resolution can not be set to K4A_COLOR_RESOLUTION_OFF.")]
    MasterNeedsColor,
    /// Subordinate delay longer than one frame period.
    #[error("The configured subordinate device delay from the master device cannot exceed one frame interval of {period_usec}. User requested {requested_usec}")]
    SubordinateDelayTooLong {
        /// Frame period, µs.
        period_usec: u32,
        /// Requested delay, µs.
        requested_usec: u32,
    },
    /// Subordinate delay set outside subordinate mode.
    #[error("When wired_sync_mode is K4A_WIRED_SYNC_MODE_STANDALONE or K4A_WIRED_SYNC_MODE_MASTER, the subordinate_delay_off_master_usec must be 0.")]
    SubordinateDelayNotSubordinate,
    /// Depth delay beyond ± one frame period.
    #[error("The configured depth_delay_off_color_usec must be within +/- one frame interval of {period_usec}. User requested {requested_usec}")]
    DepthDelayTooLong {
        /// Frame period, µs.
        period_usec: u32,
        /// Requested delay, µs.
        requested_usec: i32,
    },
    /// Both cameras off.
    #[error("Neither depth camera nor color camera are enabled in the configuration, at least one needs to be enabled.")]
    NoCamera,
    /// Depth delay with only one camera.
    #[error("If depth_delay_off_color_usec is not 0, both depth camera and color camera must be enabled.")]
    DepthDelayNeedsBothCameras,
    /// Synchronised-only with only one camera.
    #[error("To enable synchronized_images_only, both depth camera and color camera must also be enabled.")]
    SynchronizedNeedsBothCameras,
    /// Depth mode and rate do not go together.
    #[error("The configured depth_mode {} does not support the configured camera_fps {}.", .mode.sdk_name(), .fps.sdk_name())]
    DepthModeFps {
        /// The mode.
        mode: DepthMode,
        /// The rate.
        fps: Fps,
    },
    /// Colour resolution, format and rate do not go together.
    #[error("The combination of color_resolution at {}, color_format at {}, and camera_fps at {} is not supported.", .resolution.sdk_name(), .format.sdk_name(), .fps.sdk_name())]
    ColorCombination {
        /// The resolution.
        resolution: ColorResolution,
        /// The format.
        format: ImageFormat,
        /// The rate.
        fps: Fps,
    },
}

/// Whether validation reads GET_JACK_STATE (only in master or subordinate mode).
pub fn needs_jack_state(config: &DeviceConfig) -> bool {
    config.wired_sync_mode != WiredSyncMode::Standalone
}

/// The SDK's `validate_configuration`, rule by rule in its order. `jack` is consulted only
/// when [`needs_jack_state`] is true. The SDK logs the message with the prefix
/// `validate_configuration(). `.
pub fn validate_configuration(config: &DeviceConfig, jack: JackState) -> Result<(), ConfigError> {
    let color_on = config.color_resolution != ColorResolution::Off;
    let depth_on = config.depth_mode != DepthMode::Off;
    if matches!(
        config.color_format,
        ImageFormat::Depth16 | ImageFormat::Ir16
    ) {
        return Err(ConfigError::InvalidColorFormat);
    }
    let period_usec = config.camera_fps.period_usec();
    match config.wired_sync_mode {
        WiredSyncMode::Subordinate if !jack.sync_in_connected => {
            return Err(ConfigError::NoSyncInCable)
        }
        WiredSyncMode::Master if !jack.sync_out_connected => {
            return Err(ConfigError::NoSyncOutCable)
        }
        WiredSyncMode::Master if !color_on => return Err(ConfigError::MasterNeedsColor),
        _ => {}
    }
    if config.wired_sync_mode == WiredSyncMode::Subordinate
        && config.subordinate_delay_off_master_usec > period_usec
    {
        return Err(ConfigError::SubordinateDelayTooLong {
            period_usec,
            requested_usec: config.subordinate_delay_off_master_usec,
        });
    }
    if config.wired_sync_mode != WiredSyncMode::Subordinate
        && config.subordinate_delay_off_master_usec != 0
    {
        return Err(ConfigError::SubordinateDelayNotSubordinate);
    }
    if color_on && depth_on {
        if config.depth_delay_off_color_usec.unsigned_abs() > period_usec {
            return Err(ConfigError::DepthDelayTooLong {
                period_usec,
                requested_usec: config.depth_delay_off_color_usec,
            });
        }
    } else if !color_on && !depth_on {
        return Err(ConfigError::NoCamera);
    } else {
        if config.depth_delay_off_color_usec != 0 {
            return Err(ConfigError::DepthDelayNeedsBothCameras);
        }
        if config.synchronized_images_only {
            return Err(ConfigError::SynchronizedNeedsBothCameras);
        }
    }
    if let Some(info) = DepthModeInfo::for_mode(config.depth_mode) {
        if !info.allows(config.camera_fps) {
            return Err(ConfigError::DepthModeFps {
                mode: config.depth_mode,
                fps: config.camera_fps,
            });
        }
    }
    if color_on
        && !color_combination_supported(
            config.color_resolution,
            config.color_format,
            config.camera_fps,
        )
    {
        return Err(ConfigError::ColorCombination {
            resolution: config.color_resolution,
            format: config.color_format,
            fps: config.camera_fps,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_table_facts() {
        for m in DEPTH_MODES {
            assert_eq!(m.buffer_bytes, round_up_1024(m.raw_frame_bytes));
            assert_ne!(m.raw_frame_bytes % 1024, 0, "no zero-length packet needed");
            assert_eq!(Some((m.output_width, m.output_height)), m.mode.dimensions());
        }
        let counts: Vec<_> = DEPTH_MODES
            .iter()
            .map(|m| m.transfers_queued(LINUX_MAX_POOL_BYTES))
            .collect();
        assert_eq!(counts, [1, 1, 2, 1, 5]);
        assert!(DEPTH_MODES
            .iter()
            .all(|m| m.transfers_queued(WINDOWS_MAX_POOL_BYTES) == 8));
        assert_eq!(
            transfers_queued(IMU_TRANSFER_BYTES, LINUX_MAX_POOL_BYTES),
            8
        );
        assert_eq!(transfers_queued(20_000_000, LINUX_MAX_POOL_BYTES), 0);
        assert_eq!(
            DepthModeInfo::for_mode(DepthMode::WfovUnbinned)
                .unwrap()
                .raw_frame_bytes,
            9 * 1024 * 1024 + 1480
        );
        assert_eq!(DepthModeInfo::for_mode(DepthMode::Off), None);
    }

    fn ok_jack() -> JackState {
        JackState {
            sync_in_connected: true,
            sync_out_connected: true,
        }
    }

    #[test]
    fn default_config_is_valid() {
        assert_eq!(
            validate_configuration(&DeviceConfig::default(), JackState::default()),
            Ok(())
        );
    }

    #[test]
    fn messages() {
        let base = DeviceConfig::default();
        let check = |c: &DeviceConfig, j| validate_configuration(c, j).unwrap_err().to_string();

        let c = DeviceConfig {
            depth_mode: DepthMode::WfovUnbinned,
            ..base.clone()
        };
        assert_eq!(check(&c, ok_jack()), "The configured depth_mode K4A_DEPTH_MODE_WFOV_UNBINNED does not support the configured camera_fps K4A_FRAMES_PER_SECOND_30.");

        let c = DeviceConfig {
            color_resolution: ColorResolution::R3072p,
            ..base.clone()
        };
        assert_eq!(check(&c, ok_jack()), "The combination of color_resolution at K4A_COLOR_RESOLUTION_3072P, color_format at K4A_IMAGE_FORMAT_COLOR_MJPG, and camera_fps at K4A_FRAMES_PER_SECOND_30 is not supported.");
        let c = DeviceConfig {
            color_resolution: ColorResolution::R3072p,
            camera_fps: Fps::Fps15,
            ..base.clone()
        };
        assert_eq!(validate_configuration(&c, ok_jack()), Ok(()));

        let c = DeviceConfig {
            color_format: ImageFormat::Nv12,
            ..base.clone()
        };
        assert!(matches!(
            validate_configuration(&c, ok_jack()),
            Err(ConfigError::ColorCombination { .. })
        ));
        let c = DeviceConfig {
            color_format: ImageFormat::Yuy2,
            color_resolution: ColorResolution::R720p,
            ..base.clone()
        };
        assert_eq!(validate_configuration(&c, ok_jack()), Ok(()));
        let c = DeviceConfig {
            color_format: ImageFormat::Depth16,
            ..base.clone()
        };
        assert_eq!(
            check(&c, ok_jack()),
            "The configured color_format is not a valid k4a_color_format_t value."
        );

        let c = DeviceConfig {
            wired_sync_mode: WiredSyncMode::Subordinate,
            ..base.clone()
        };
        assert_eq!(check(&c, JackState::default()), "Failure to detect presence of sync in cable with wired sync mode K4A_WIRED_SYNC_MODE_SUBORDINATE.");
        let c = DeviceConfig {
            wired_sync_mode: WiredSyncMode::Master,
            ..base.clone()
        };
        assert_eq!(check(&c, JackState::default()), "Failure to detect presence of sync out cable with wired sync mode K4A_WIRED_SYNC_MODE_MASTER.");
        let c = DeviceConfig {
            wired_sync_mode: WiredSyncMode::Master,
            color_resolution: ColorResolution::Off,
            ..base.clone()
        };
        assert!(check(&c, ok_jack()).starts_with(
            "Device wired_sync_mode is set to K4A_WIRED_SYNC_MODE_MASTER, so color camera"
        ));

        let c = DeviceConfig {
            wired_sync_mode: WiredSyncMode::Subordinate,
            subordinate_delay_off_master_usec: 33_334,
            ..base.clone()
        };
        assert_eq!(check(&c, ok_jack()), "The configured subordinate device delay from the master device cannot exceed one frame interval of 33333. User requested 33334");
        let c = DeviceConfig {
            wired_sync_mode: WiredSyncMode::Subordinate,
            subordinate_delay_off_master_usec: 33_333,
            ..base.clone()
        };
        assert_eq!(validate_configuration(&c, ok_jack()), Ok(()));
        let c = DeviceConfig {
            subordinate_delay_off_master_usec: 1,
            ..base.clone()
        };
        assert_eq!(
            validate_configuration(&c, ok_jack()),
            Err(ConfigError::SubordinateDelayNotSubordinate)
        );

        let c = DeviceConfig {
            depth_delay_off_color_usec: -33_334,
            ..base.clone()
        };
        assert_eq!(check(&c, ok_jack()), "The configured depth_delay_off_color_usec must be within +/- one frame interval of 33333. User requested -33334");
        let c = DeviceConfig {
            depth_delay_off_color_usec: -33_333,
            ..base.clone()
        };
        assert_eq!(validate_configuration(&c, ok_jack()), Ok(()));

        let c = DeviceConfig {
            depth_mode: DepthMode::Off,
            color_resolution: ColorResolution::Off,
            ..base.clone()
        };
        assert_eq!(
            validate_configuration(&c, ok_jack()),
            Err(ConfigError::NoCamera)
        );
        let c = DeviceConfig {
            depth_mode: DepthMode::Off,
            depth_delay_off_color_usec: 5,
            ..base.clone()
        };
        assert_eq!(
            validate_configuration(&c, ok_jack()),
            Err(ConfigError::DepthDelayNeedsBothCameras)
        );
        let c = DeviceConfig {
            color_resolution: ColorResolution::Off,
            synchronized_images_only: true,
            ..base.clone()
        };
        assert_eq!(check(&c, ok_jack()), "To enable synchronized_images_only, both depth camera and color camera must also be enabled.");
        assert!(!needs_jack_state(&base));
    }
}
