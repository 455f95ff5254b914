//! The raw depth frame and calibration block as freek4a's emulator lays them out (our own
//! choice; see `protocol/` and the `freek4a-depth-abi` crate, which the emulated engine shares).

pub use freek4a_depth_abi::depth_raw::*;

/// The sensor mode (MODE_SET value) a depth mode streams in; `None` for OFF.
pub fn sensor_mode_for(mode: crate::types::DepthMode) -> Option<u32> {
    use crate::types::DepthMode;
    match mode {
        DepthMode::Off => None,
        DepthMode::Nfov2x2Binned | DepthMode::NfovUnbinned => Some(4),
        DepthMode::Wfov2x2Binned => Some(7),
        DepthMode::WfovUnbinned => Some(5),
        DepthMode::PassiveIr => Some(3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_sizes() {
        use crate::types::DepthMode;
        let sizes: Vec<_> = DepthMode::ON
            .iter()
            .map(|m| raw_frame_size(sensor_mode_for(*m).unwrap()).unwrap())
            .collect();
        assert_eq!(
            sizes,
            [5_310_760, 5_310_760, 3_777_232, 9_438_664, 1_678_024]
        );
        assert_eq!(raw_frame_size(6), None);
        assert_eq!(sensor_mode_for(DepthMode::Off), None);
    }
}
