//! Integration tests: protocol.
//!
//! Calibration golden values were produced by Microsoft's SDK 1.4.2 (`libk4a`, from the
//! `pyk4a-bundle` wheel) with `k4a_calibration_get_from_raw` on the fixture JSONs
//! (`tests/fixtures/calibration-001514394512-pretty.json`, from pyk4a's test assets, a real
//! unit; `tests/fixtures/calibration-eden-ev2-rational6kt.json`, from the SDK's C# unit tests,
//! a pre-production unit with the Rational6KT model). They are facts about the SDK's output.

use freek4a::protocol::calibration::{Calibration, LensModel};
use freek4a::protocol::command::DeviceStatus;
use freek4a::protocol::command::{
    parse_command_packet, ComponentVersionGet, DeviceCommand, HostTransaction, Mcu,
    ReadCalibrationData, StatusPacket, TransactionIds,
};
use freek4a::protocol::payload::FirmwareVersions;
use freek4a::types::{ColorResolution, DepthMode};

const REAL: &[u8] = include_bytes!("fixtures/calibration-001514394512-pretty.json");
const EDEN: &[u8] = include_bytes!("fixtures/calibration-eden-ev2-rational6kt.json");

/// (depth mode, colour resolution, depth [cx, cy, fx, fy], colour [cx, cy, fx, fy]) from the SDK.
type Golden = (DepthMode, ColorResolution, [f32; 4], [f32; 4]);

const REAL_GOLDEN: [Golden; 6] = [
    (
        DepthMode::NfovUnbinned,
        ColorResolution::R1080p,
        [332.781_07, 348.829_7, 504.607_64, 504.732_5],
        [959.206_54, 549.029_36, 917.693, 917.890_44],
    ),
    (
        DepthMode::Nfov2x2Binned,
        ColorResolution::R720p,
        [166.140_53, 174.164_86, 252.303_82, 252.366_26],
        [639.304_3, 365.852_9, 611.795_35, 611.927],
    ),
    (
        DepthMode::Wfov2x2Binned,
        ColorResolution::R3072p,
        [262.140_53, 264.164_86, 252.303_82, 252.366_26],
        [2_046.873_9, 1_555.829_3, 1_957.745_1, 1_958.166_3],
    ),
    (
        DepthMode::WfovUnbinned,
        ColorResolution::R1536p,
        [524.781_07, 528.829_7, 504.607_64, 504.732_5],
        [1_023.186_95, 777.664_7, 978.872_56, 979.083_1],
    ),
    (
        DepthMode::PassiveIr,
        ColorResolution::R2160p,
        [524.781_07, 528.829_7, 504.607_64, 504.732_5],
        [1_918.913_1, 1_098.558_7, 1_835.386, 1_835.780_9],
    ),
    (
        DepthMode::NfovUnbinned,
        ColorResolution::R1440p,
        [332.781_07, 348.829_7, 504.607_64, 504.732_5],
        [1_279.108_6, 732.205_8, 1_223.590_7, 1_223.854],
    ),
];

const EDEN_GOLDEN: [Golden; 6] = [
    (
        DepthMode::NfovUnbinned,
        ColorResolution::R1080p,
        [329.979_5, 331.784_3, 505.361_15, 505.552_64],
        [971.786_5, 541.320_4, 908.506_16, 908.090_8],
    ),
    (
        DepthMode::Nfov2x2Binned,
        ColorResolution::R720p,
        [164.739_75, 165.642_15, 252.680_57, 252.776_32],
        [647.691, 360.713_6, 605.670_8, 605.393_86],
    ),
    (
        DepthMode::Wfov2x2Binned,
        ColorResolution::R3072p,
        [260.739_75, 255.642_15, 252.680_57, 252.776_32],
        [2_073.711_2, 1_539.383_5, 1_938.146_5, 1_937.260_5],
    ),
    (
        DepthMode::WfovUnbinned,
        ColorResolution::R1536p,
        [521.979_5, 511.784_3, 505.361_15, 505.552_64],
        [1_036.605_6, 769.441_8, 969.073_24, 968.630_25],
    ),
    (
        DepthMode::PassiveIr,
        ColorResolution::R2160p,
        [521.979_5, 511.784_3, 505.361_15, 505.552_64],
        [1_944.073, 1_083.140_7, 1_817.012_3, 1_816.181_6],
    ),
    (
        DepthMode::NfovUnbinned,
        ColorResolution::R1440p,
        [329.979_5, 331.784_3, 505.361_15, 505.552_64],
        [1_295.882, 721.927_2, 1_211.341_6, 1_210.787_7],
    ),
];

fn check_golden(json: &[u8], golden: &[Golden]) {
    let cal = Calibration::from_json(json).unwrap();
    for (mode, res, d, c) in golden {
        let dm = cal.depth.for_depth_mode(*mode).unwrap();
        let cm = cal.color.for_color_resolution(*res).unwrap();
        assert_eq!(
            Some((dm.resolution_width as u32, dm.resolution_height as u32)),
            mode.dimensions()
        );
        assert_eq!(
            Some((cm.resolution_width as u32, cm.resolution_height as u32)),
            res.dimensions()
        );
        for i in 0..4 {
            // Within 2e-4 px of the SDK's float32 result (the order of the SDK's float
            // operations is not known exactly; the values agree to the last few ulps).
            assert!(
                (dm.parameters[i] - d[i]).abs() < 2e-4,
                "{mode:?} depth param {i}: {} vs {}",
                dm.parameters[i],
                d[i]
            );
            assert!(
                (cm.parameters[i] - c[i]).abs() < 2e-4,
                "{res:?} colour param {i}: {} vs {}",
                cm.parameters[i],
                c[i]
            );
        }
        // Distortion coefficients are not mode-dependent.
        assert_eq!(dm.parameters[4..14], cal.depth.parameters[4..14]);
    }
}

#[test]
fn real_unit_brown_conrady_golden_intrinsics() {
    check_golden(REAL, &REAL_GOLDEN);
    let cal = Calibration::from_json(REAL).unwrap();
    assert_eq!(cal.depth.model, LensModel::BrownConrady);
    assert_eq!(cal.depth.parameter_count, 14);
    assert_eq!(
        (cal.depth.resolution_width, cal.depth.resolution_height),
        (1024, 1024)
    );
    assert_eq!(
        (cal.color.resolution_width, cal.color.resolution_height),
        (4096, 3072)
    );
    assert_eq!(cal.depth.metric_radius, 1.739_999_8);
    assert_eq!(cal.color.metric_radius, 1.7); // JSON 0 → the SDK's 1.7
    let (r, t) = cal.depth_to_color();
    assert_eq!(t, [-32.083_43, -2.205_373, 3.883_692_7]);
    assert_eq!(r[5], 0.086_160_324);
    assert_eq!(cal.gyro.model_type_mask, 16);
    assert_eq!(cal.accel.model_type_mask, 56);
}

#[test]
fn eden_rational6kt_golden_intrinsics() {
    check_golden(EDEN, &EDEN_GOLDEN);
    let cal = Calibration::from_json(EDEN).unwrap(); // starts with a UTF-8 BOM
    assert_eq!(cal.depth.model, LensModel::Rational6KT);
    assert_eq!(cal.depth.parameter_count, 15);
    assert_eq!(cal.depth.metric_radius, 1.738_992_8);
    assert_eq!(cal.color.parameters[14], 1.4);
    let (_, t) = cal.depth_to_color();
    assert_eq!(t, [-31.966_917, -1.937_559_5, 4.245_358]);
}

#[test]
fn calibration_read_with_retry_and_nul() {
    // The device answers the 10240-byte read with a failure status; the host retries larger.
    let mut ids = TransactionIds::new();
    let cmd = ReadCalibrationData::attempt(0);
    let t = HostTransaction::new(cmd, ids.next_id()).unwrap();
    let got = parse_command_packet(Mcu::Depth, &t.out_packet()).unwrap();
    assert_eq!(
        got.command,
        DeviceCommand::ReadCalibrationData { buffer_len: 10_240 }
    );
    let mut t = HostTransaction::new(ReadCalibrationData::attempt(1), ids.next_id()).unwrap();
    t.accept_data(REAL).unwrap();
    let json = t
        .finish(&StatusPacket::new(1, DeviceStatus::Success).encode())
        .unwrap();
    let mut with_nul = json.clone();
    with_nul.push(0);
    assert!(Calibration::from_json(&with_nul).is_ok());
}

#[test]
fn emulator_and_host_speak_the_same_bytes() {
    let fw = FirmwareVersions {
        rgb: (1, 6, 110),
        depth: (1, 6, 79),
        audio: (1, 6, 14),
        depth_sensor_cfg: (6109, 7),
        build_config: 0,
        signature_type: 0,
    };
    let mut host = HostTransaction::new(ComponentVersionGet, 41).unwrap();
    let received = parse_command_packet(Mcu::Depth, &host.out_packet()).unwrap();
    let DeviceCommand::ComponentVersionGet { buffer_len } = received.command else {
        panic!("wrong command")
    };
    let reply = fw.encode();
    host.accept_data(&reply[..buffer_len.min(reply.len())])
        .unwrap();
    let status = StatusPacket::new(received.header.transaction_id, DeviceStatus::Success).encode();
    assert_eq!(
        host.finish(&status)
            .unwrap()
            .to_hardware_version()
            .rgb
            .to_string(),
        "1.6.110"
    );
}
