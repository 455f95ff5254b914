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
        [
            332.781_066_894_531_25,
            348.829_711_914_062_5,
            504.607_635_498_046_9,
            504.732_513_427_734_4,
        ],
        [
            959.206_542_968_75,
            549.029_357_910_156_2,
            917.692_993_164_062_5,
            917.890_441_894_531_2,
        ],
    ),
    (
        DepthMode::Nfov2x2Binned,
        ColorResolution::R720p,
        [
            166.140_533_447_265_62,
            174.164_855_957_031_25,
            252.303_817_749_023_44,
            252.366_256_713_867_2,
        ],
        [
            639.304_321_289_062_5,
            365.852_905_273_437_5,
            611.795_349_121_093_8,
            611.927_001_953_125,
        ],
    ),
    (
        DepthMode::Wfov2x2Binned,
        ColorResolution::R3072p,
        [
            262.140_533_447_265_6,
            264.164_855_957_031_25,
            252.303_817_749_023_44,
            252.366_256_713_867_2,
        ],
        [
            2046.873_901_367_187_5,
            1555.829_345_703_125,
            1957.745_117_187_5,
            1958.166_259_765_625,
        ],
    ),
    (
        DepthMode::WfovUnbinned,
        ColorResolution::R1536p,
        [
            524.781_066_894_531_2,
            528.829_711_914_062_5,
            504.607_635_498_046_9,
            504.732_513_427_734_4,
        ],
        [
            1023.186_950_683_593_8,
            777.664_672_851_562_5,
            978.872_558_593_75,
            979.083_129_882_812_5,
        ],
    ),
    (
        DepthMode::PassiveIr,
        ColorResolution::R2160p,
        [
            524.781_066_894_531_2,
            528.829_711_914_062_5,
            504.607_635_498_046_9,
            504.732_513_427_734_4,
        ],
        [
            1918.913_085_937_5,
            1098.558_715_820_312_5,
            1835.385_986_328_125,
            1835.780_883_789_062_5,
        ],
    ),
    (
        DepthMode::NfovUnbinned,
        ColorResolution::R1440p,
        [
            332.781_066_894_531_25,
            348.829_711_914_062_5,
            504.607_635_498_046_9,
            504.732_513_427_734_4,
        ],
        [
            1279.108_642_578_125,
            732.205_810_546_875,
            1223.590_698_242_187_5,
            1223.854_003_906_25,
        ],
    ),
];

const EDEN_GOLDEN: [Golden; 6] = [
    (
        DepthMode::NfovUnbinned,
        ColorResolution::R1080p,
        [
            329.979_492_187_5,
            331.784_301_757_812_5,
            505.361_145_019_531_25,
            505.552_642_822_265_6,
        ],
        [
            971.786_499_023_437_5,
            541.320_373_535_156_2,
            908.506_164_550_781_2,
            908.090_820_312_5,
        ],
    ),
    (
        DepthMode::Nfov2x2Binned,
        ColorResolution::R720p,
        [
            164.739_746_093_75,
            165.642_150_878_906_25,
            252.680_572_509_765_62,
            252.776_321_411_132_8,
        ],
        [
            647.690_979_003_906_2,
            360.713_592_529_296_9,
            605.670_776_367_187_5,
            605.393_859_863_281_2,
        ],
    ),
    (
        DepthMode::Wfov2x2Binned,
        ColorResolution::R3072p,
        [
            260.739_746_093_75,
            255.642_150_878_906_25,
            252.680_572_509_765_62,
            252.776_321_411_132_8,
        ],
        [
            2073.711_181_640_625,
            1539.383_544_921_875,
            1938.146_484_375,
            1937.260_498_046_875,
        ],
    ),
    (
        DepthMode::WfovUnbinned,
        ColorResolution::R1536p,
        [
            521.979_492_187_5,
            511.784_301_757_812_5,
            505.361_145_019_531_25,
            505.552_642_822_265_6,
        ],
        [
            1036.605_590_820_312_5,
            769.441_772_460_937_5,
            969.073_242_187_5,
            968.630_249_023_437_5,
        ],
    ),
    (
        DepthMode::PassiveIr,
        ColorResolution::R2160p,
        [
            521.979_492_187_5,
            511.784_301_757_812_5,
            505.361_145_019_531_25,
            505.552_642_822_265_6,
        ],
        [
            1944.072_998_046_875,
            1083.140_747_070_312_5,
            1817.012_329_101_562_5,
            1816.181_640_625,
        ],
    ),
    (
        DepthMode::NfovUnbinned,
        ColorResolution::R1440p,
        [
            329.979_492_187_5,
            331.784_301_757_812_5,
            505.361_145_019_531_25,
            505.552_642_822_265_6,
        ],
        [
            1295.881_958_007_812_5,
            721.927_185_058_593_8,
            1211.341_552_734_375,
            1210.787_719_726_562_5,
        ],
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
    assert_eq!(t, [-32.083_431, -2.205_373, 3.883_692_7]);
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
