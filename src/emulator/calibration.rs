//! The factory calibration JSON an emulated unit serves (command 0x111).
//!
//! It has every key the SDK's parser needs. The camera intrinsics are plausible values for a
//! Brown–Conrady model; the IMU intrinsics are the identity (mixing matrix 1, bias 0, no
//! second-order term) so a host that applies them gets back exactly what the sensor sent.

use serde_json::{json, Value};

fn camera(
    location: &str,
    w: u32,
    h: u32,
    params: [f64; 14],
    rotation: [f64; 9],
    translation_m: [f64; 3],
) -> Value {
    json!({
        "Intrinsics": {
            "ModelParameterCount": 14,
            "ModelParameters": params,
            "ModelType": "CALIBRATION_LensDistortionModelBrownConrady"
        },
        "Location": location,
        "Purpose": if location.ends_with("D0") { "CALIBRATION_CameraPurposeDepth" } else { "CALIBRATION_CameraPurposePhotoVideo" },
        "MetricRadius": if location.ends_with("D0") { 1.74 } else { 0.0 },
        "Rt": { "Rotation": rotation, "Translation": translation_m },
        "SensorHeight": h,
        "SensorWidth": w,
        "Shutter": "CALIBRATION_ShutterTypeUndefined",
        "ThermalAdjustmentParams": { "Params": vec![0.0f64; 12] }
    })
}

fn inertial(
    kind: &str,
    model_type_mask: u32,
    rotation: [f64; 9],
    translation_m: [f64; 3],
) -> Value {
    let mut mixing = [0.0f64; 36];
    for d in 0..3 {
        mixing[(3 * d + d) * 4] = 1.0;
    }
    json!({
        "BiasTemperatureModel": vec![0.0f64; 12],
        "BiasUncertainty": [0.0001, 0.0001, 0.0001],
        "Id": "CALIBRATION_InertialSensorId_LSM6DSM",
        "MixingMatrixTemperatureModel": mixing.to_vec(),
        "ModelTypeMask": model_type_mask,
        "Noise": [0.00095, 0.00095, 0.00095, 0.0, 0.0, 0.0],
        "Rt": { "Rotation": rotation, "Translation": translation_m },
        "SecondOrderScaling": vec![0.0f64; 9],
        "SensorType": kind,
        "TemperatureBounds": [5.0, 60.0],
        "TemperatureC": 0.0
    })
}

/// The calibration JSON of an emulated unit with serial `serial` (compact, no NUL).
pub fn default_json(serial: &str) -> String {
    let identity = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
    let depth = camera(
        "CALIBRATION_CameraLocationD0",
        1024,
        1024,
        [
            0.5, 0.5, 0.49, 0.49, 0.6, 0.1, 0.002, 0.95, 0.25, 0.01, 0.0, 0.0, -0.00005, 0.00003,
        ],
        identity,
        [0.0, 0.0, 0.0],
    );
    let color = camera(
        "CALIBRATION_CameraLocationPV0",
        4096,
        3072,
        [
            0.5, 0.5, 0.47, 0.62, 0.5, -2.7, 1.6, 0.4, -2.5, 1.5, 0.0, 0.0, 0.0005, -0.0002,
        ],
        [
            1.0, 0.0016, -0.0003, -0.0016, 0.995, 0.104, 0.0004, -0.104, 0.995,
        ],
        [-0.032, -0.002, 0.004],
    );
    let gyro = inertial(
        "CALIBRATION_InertialSensorType_Gyro",
        16,
        [0.0, 0.1, -1.0, -1.0, 0.0, 0.0, 0.0, 1.0, 0.1],
        [0.0, 0.0, 0.0],
    );
    let accel = inertial(
        "CALIBRATION_InertialSensorType_Accelerometer",
        56,
        [0.0, 0.1, -1.0, -1.0, 0.0, 0.0, 0.0, 1.0, 0.1],
        [-0.051, 0.003, 0.001],
    );
    json!({
        "CalibrationInformation": {
            "Cameras": [depth, color],
            "InertialSensors": [gyro, accel],
            "Metadata": {
                "SerialId": serial,
                "FactoryCalDate": "1/1/2026 12:00:00 AM GMT",
                "Version": { "Major": 1, "Minor": 2 },
                "DeviceName": "AzureKinect-PV",
                "Notes": "freek4a emulated unit"
            }
        }
    })
    .to_string()
}
