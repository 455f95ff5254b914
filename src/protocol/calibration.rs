//! The factory calibration JSON (DEPTH_READ_CALIBRATION_DATA), the 128-byte
//! `k4a_calibration_camera_t` handed to the depth engine, and the per-mode intrinsics the SDK
//! derives (crop and scale per depth mode and colour resolution). See
//! `protocol/calibration.md`.

use serde_json::Value;
use thiserror::Error;

use super::imu::ImuIntrinsicModel;
use super::wire::{f32_at, i32_at, u32_at, PutLe};
use crate::types::{ColorResolution, DepthMode};

/// A calibration that could not be parsed (the SDK then fails `k4a_device_open`).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CalibrationError {
    /// Not JSON.
    #[error("calibration JSON does not parse: {0}")]
    Json(String),
    /// A key is missing or has the wrong type.
    #[error("calibration JSON: {path} is missing or not {expected}")]
    Field {
        /// Where.
        path: String,
        /// What type was expected.
        expected: &'static str,
    },
    /// An array has the wrong number of elements.
    #[error("calibration JSON: {path} has {got} elements, expected {expected}")]
    Count {
        /// Where.
        path: String,
        /// Elements expected (at most, for model parameters).
        expected: usize,
        /// Elements found.
        got: usize,
    },
    /// A camera or IMU sensor the SDK needs is absent.
    #[error("calibration JSON: no {0}")]
    Missing(&'static str),
    /// An unknown lens model name.
    #[error("calibration JSON: unknown lens model {0:?}")]
    UnknownModel(String),
    /// The 128-byte camera structure is short.
    #[error("camera calibration: need 128 bytes, got {0}")]
    Truncated(usize),
}

/// Lens distortion models (`k4a_calibration_model_type_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LensModel {
    /// 0: unknown.
    Unknown,
    /// 1: theta (deprecated).
    Theta,
    /// 2: polynomial 3K (deprecated).
    Polynomial3K,
    /// 3: rational 6KT (deprecated, pre-production units).
    Rational6KT,
    /// 4: Brown-Conrady (production units).
    BrownConrady,
}

impl LensModel {
    /// The ABI value.
    pub fn value(self) -> i32 {
        self as i32
    }

    /// The model for an ABI value (unknown values become `Unknown`).
    pub fn from_value(v: i32) -> Self {
        match v {
            1 => LensModel::Theta,
            2 => LensModel::Polynomial3K,
            3 => LensModel::Rational6KT,
            4 => LensModel::BrownConrady,
            _ => LensModel::Unknown,
        }
    }

    fn from_json(name: &str) -> Option<Self> {
        Some(match name {
            "CALIBRATION_LensDistortionModelTheta" => LensModel::Theta,
            "CALIBRATION_LensDistortionModelPolynomial3K" => LensModel::Polynomial3K,
            "CALIBRATION_LensDistortionModelRational6KT" => LensModel::Rational6KT,
            "CALIBRATION_LensDistortionModelBrownConrady" => LensModel::BrownConrady,
            _ => return None,
        })
    }
}

/// Index of each intrinsic parameter in [`CameraCalibration::parameters`].
pub mod param {
    /// Principal point x.
    pub const CX: usize = 0;
    /// Principal point y.
    pub const CY: usize = 1;
    /// Focal length x.
    pub const FX: usize = 2;
    /// Focal length y.
    pub const FY: usize = 3;
    /// Radial k1 (k2..k6 follow at 5..9).
    pub const K1: usize = 4;
    /// Centre of distortion x.
    pub const CODX: usize = 10;
    /// Centre of distortion y.
    pub const CODY: usize = 11;
    /// Tangential p2.
    pub const P2: usize = 12;
    /// Tangential p1.
    pub const P1: usize = 13;
    /// Metric radius slot.
    pub const METRIC_RADIUS: usize = 14;
}

/// One camera's calibration: the 128-byte `k4a_calibration_camera_t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CameraCalibration {
    /// Rotation, row-major.
    pub rotation: [f32; 9],
    /// Translation, millimetres.
    pub translation_mm: [f32; 3],
    /// Lens model.
    pub model: LensModel,
    /// Number of meaningful parameters (≤ 15).
    pub parameter_count: u32,
    /// cx, cy, fx, fy, k1–k6, codx, cody, p2, p1, metric radius; unused slots 0.
    pub parameters: [f32; 15],
    /// Image width.
    pub resolution_width: i32,
    /// Image height.
    pub resolution_height: i32,
    /// Metric radius (a JSON value ≤ 0.0001 becomes 1.7).
    pub metric_radius: f32,
}

/// Size of `k4a_calibration_camera_t`.
pub const CAMERA_CALIBRATION_LEN: usize = 128;

impl CameraCalibration {
    /// Encodes the 128-byte C layout.
    pub fn encode(&self) -> [u8; CAMERA_CALIBRATION_LEN] {
        let mut v = Vec::with_capacity(CAMERA_CALIBRATION_LEN);
        self.rotation.iter().for_each(|&x| v.put_f32(x));
        self.translation_mm.iter().for_each(|&x| v.put_f32(x));
        v.put_i32(self.model.value());
        v.put_u32(self.parameter_count);
        self.parameters.iter().for_each(|&x| v.put_f32(x));
        v.put_i32(self.resolution_width);
        v.put_i32(self.resolution_height);
        v.put_f32(self.metric_radius);
        let mut out = [0; CAMERA_CALIBRATION_LEN];
        out.copy_from_slice(&v);
        out
    }

    /// Decodes the 128-byte C layout.
    pub fn decode(b: &[u8]) -> Result<Self, CalibrationError> {
        if b.len() < CAMERA_CALIBRATION_LEN {
            return Err(CalibrationError::Truncated(b.len()));
        }
        let f = |i: usize| f32_at(b, i * 4);
        Ok(CameraCalibration {
            rotation: std::array::from_fn(&f),
            translation_mm: std::array::from_fn(|i| f(9 + i)),
            model: LensModel::from_value(i32_at(b, 48)),
            parameter_count: u32_at(b, 52),
            parameters: std::array::from_fn(|i| f(14 + i)),
            resolution_width: i32_at(b, 116),
            resolution_height: i32_at(b, 120),
            metric_radius: f32_at(b, 124),
        })
    }

    /// Re-expresses normalised intrinsics for a mode: the sensor image binned to
    /// `binned` pixels, cropped at `crop`, output `out` pixels wide and high. With `pixels`, the
    /// result is in pixels with (0, 0) at the centre of the top-left pixel (the convention of
    /// every mapping); otherwise it stays normalised with (0, 0) at that pixel's corner. The
    /// arithmetic follows the SDK's order so both round alike.
    fn for_mode(
        &self,
        binned: (f32, f32),
        crop: (f32, f32),
        out: (i32, i32),
        pixels: bool,
    ) -> Self {
        let mut c = *self;
        let p = &mut c.parameters;
        let cx = p[param::CX] * binned.0 - crop.0;
        let cy = p[param::CY] * binned.1 - crop.1;
        let fx = p[param::FX] * binned.0;
        let fy = p[param::FY] * binned.1;
        if pixels {
            p[param::CX] = cx - 0.5;
            p[param::CY] = cy - 0.5;
            p[param::FX] = fx;
            p[param::FY] = fy;
        } else {
            p[param::CX] = cx / out.0 as f32;
            p[param::CY] = cy / out.1 as f32;
            p[param::FX] = fx / out.0 as f32;
            p[param::FY] = fy / out.1 as f32;
        }
        c.resolution_width = out.0;
        c.resolution_height = out.1;
        c
    }

    /// The depth camera's intrinsics in pixels for a depth mode (from the raw 1024×1024
    /// calibration): NFOV crops 640×576 at (192, 180); 2×2 binned modes halve. `None` for OFF
    /// or a raw calibration that is not 1024×1024.
    pub fn for_depth_mode(&self, mode: DepthMode) -> Option<Self> {
        if (self.resolution_width, self.resolution_height) != (1024, 1024) {
            return None;
        }
        let (w, h) = mode.dimensions()?;
        let (binned, crop) = match mode {
            DepthMode::Off => return None,
            DepthMode::NfovUnbinned => (1024.0, (192.0, 180.0)),
            DepthMode::Nfov2x2Binned => (512.0, (96.0, 90.0)),
            DepthMode::Wfov2x2Binned => (512.0, (0.0, 0.0)),
            DepthMode::WfovUnbinned | DepthMode::PassiveIr => (1024.0, (0.0, 0.0)),
        };
        Some(self.for_mode((binned, binned), crop, (w as i32, h as i32), true))
    }

    /// The colour camera's intrinsics in pixels for a resolution (from the raw 4:3 calibration,
    /// or a legacy 16:9 one first re-expressed as 4:3): 16:9 resolutions crop the 4:3 image's
    /// centre rows, then every resolution scales to its width. `None` for OFF or a raw
    /// calibration of another aspect ratio.
    pub fn for_color_resolution(&self, res: ColorResolution) -> Option<Self> {
        let (rw, rh) = (self.resolution_width, self.resolution_height);
        let full = if rw * 9 / 16 == rh {
            self.for_mode((4096.0, 2304.0), (0.0, -384.0), (4096, 3072), false)
        } else if rw * 3 / 4 == rh {
            *self
        } else {
            return None;
        };
        let (w, h) = res.dimensions()?;
        // The 4:3 image binned to the output width; 16:9 outputs keep its centre rows.
        let binned_h = w * 3 / 4;
        let crop_y = (binned_h - h) / 2;
        Some(full.for_mode(
            (w as f32, binned_h as f32),
            (0.0, crop_y as f32),
            (w as i32, h as i32),
            true,
        ))
    }
}

/// One IMU sensor's calibration.
#[derive(Clone, Debug, PartialEq)]
pub struct ImuSensorCalibration {
    /// Temperature tables.
    pub model: ImuIntrinsicModel,
    /// `BiasUncertainty`.
    pub bias_uncertainty: [f32; 3],
    /// `ModelTypeMask`.
    pub model_type_mask: u32,
    /// `Noise`.
    pub noise: [f32; 6],
    /// Depth-to-IMU rotation, row-major.
    pub rotation: [f32; 9],
    /// Depth-to-IMU translation, mm.
    pub translation_mm: [f32; 3],
    /// `TemperatureBounds`, °C.
    pub temperature_bounds_c: [f32; 2],
    /// `TemperatureC`: where the tables are first evaluated.
    pub temperature_c: f32,
}

/// A unit's calibration as the SDK reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// Depth camera (`CALIBRATION_CameraLocationD0`), raw normalised intrinsics at the
    /// sensor resolution: what the depth engine receives.
    pub depth: CameraCalibration,
    /// Colour camera (`CALIBRATION_CameraLocationPV0`), raw normalised intrinsics.
    pub color: CameraCalibration,
    /// Gyroscope.
    pub gyro: ImuSensorCalibration,
    /// Accelerometer.
    pub accel: ImuSensorCalibration,
}

/// Metric radius the SDK substitutes for values ≤ 0.0001.
pub const DEFAULT_METRIC_RADIUS: f32 = 1.7;

fn get<'a>(v: &'a Value, path: &str, key: &str) -> Result<&'a Value, CalibrationError> {
    v.get(key).ok_or_else(|| CalibrationError::Field {
        path: format!("{path}.{key}"),
        expected: "present",
    })
}

fn num(v: &Value, path: &str, key: &str) -> Result<f64, CalibrationError> {
    get(v, path, key)?
        .as_f64()
        .ok_or_else(|| CalibrationError::Field {
            path: format!("{path}.{key}"),
            expected: "a number",
        })
}

fn floats<const N: usize>(v: &Value, path: &str, key: &str) -> Result<[f32; N], CalibrationError> {
    let p = format!("{path}.{key}");
    let arr = get(v, path, key)?
        .as_array()
        .ok_or_else(|| CalibrationError::Field {
            path: p.clone(),
            expected: "an array",
        })?;
    if arr.len() != N {
        return Err(CalibrationError::Count {
            path: p,
            expected: N,
            got: arr.len(),
        });
    }
    let mut out = [0.0; N];
    for (o, x) in out.iter_mut().zip(arr) {
        *o = x.as_f64().ok_or_else(|| CalibrationError::Field {
            path: p.clone(),
            expected: "an array of numbers",
        })? as f32;
    }
    Ok(out)
}

fn rt(v: &Value, path: &str) -> Result<([f32; 9], [f32; 3]), CalibrationError> {
    let rt = get(v, path, "Rt")?;
    let p = format!("{path}.Rt");
    let r = floats::<9>(rt, &p, "Rotation")?;
    // Metres in the JSON, millimetres in the struct.
    let t = floats::<3>(rt, &p, "Translation")?.map(|m| m * 1000.0);
    Ok((r, t))
}

fn camera(v: &Value, path: &str) -> Result<CameraCalibration, CalibrationError> {
    let intr = get(v, path, "Intrinsics")?;
    let ip = format!("{path}.Intrinsics");
    let model_name =
        get(intr, &ip, "ModelType")?
            .as_str()
            .ok_or_else(|| CalibrationError::Field {
                path: format!("{ip}.ModelType"),
                expected: "a string",
            })?;
    let model = LensModel::from_json(model_name)
        .ok_or_else(|| CalibrationError::UnknownModel(model_name.to_string()))?;
    let count = num(intr, &ip, "ModelParameterCount")? as u32;
    let params = get(intr, &ip, "ModelParameters")?
        .as_array()
        .ok_or_else(|| CalibrationError::Field {
            path: format!("{ip}.ModelParameters"),
            expected: "an array",
        })?;
    if count as usize > 15 || params.len() < count as usize {
        return Err(CalibrationError::Count {
            path: format!("{ip}.ModelParameters"),
            expected: 15.min(count as usize),
            got: params.len(),
        });
    }
    let mut parameters = [0.0; 15];
    for (o, x) in parameters
        .iter_mut()
        .zip(params.iter().take(count as usize))
    {
        *o = x.as_f64().ok_or_else(|| CalibrationError::Field {
            path: format!("{ip}.ModelParameters"),
            expected: "an array of numbers",
        })? as f32;
    }
    let (rotation, translation_mm) = rt(v, path)?;
    let mut metric_radius = num(v, path, "MetricRadius")? as f32;
    if metric_radius <= 0.0001 {
        metric_radius = DEFAULT_METRIC_RADIUS;
    }
    Ok(CameraCalibration {
        rotation,
        translation_mm,
        model,
        parameter_count: count,
        parameters,
        resolution_width: num(v, path, "SensorWidth")? as i32,
        resolution_height: num(v, path, "SensorHeight")? as i32,
        metric_radius,
    })
}

fn imu(v: &Value, path: &str) -> Result<ImuSensorCalibration, CalibrationError> {
    let (rotation, translation_mm) = rt(v, path)?;
    Ok(ImuSensorCalibration {
        model: ImuIntrinsicModel {
            bias_temperature_model: floats(v, path, "BiasTemperatureModel")?,
            mixing_matrix_temperature_model: floats(v, path, "MixingMatrixTemperatureModel")?,
            second_order_scaling: floats(v, path, "SecondOrderScaling")?,
        },
        bias_uncertainty: floats(v, path, "BiasUncertainty")?,
        model_type_mask: num(v, path, "ModelTypeMask")? as u32,
        noise: floats(v, path, "Noise")?,
        rotation,
        translation_mm,
        temperature_bounds_c: floats(v, path, "TemperatureBounds")?,
        temperature_c: num(v, path, "TemperatureC")? as f32,
    })
}

fn find<'a>(list: &'a [Value], key: &str, value: &str) -> Option<(usize, &'a Value)> {
    list.iter()
        .enumerate()
        .find(|(_, v)| v.get(key).and_then(Value::as_str) == Some(value))
}

impl Calibration {
    /// Parses the JSON as read from the device; a UTF-8 byte-order mark and a trailing NUL
    /// are accepted.
    pub fn from_json(bytes: &[u8]) -> Result<Self, CalibrationError> {
        let mut b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        while let Some(rest) = b.strip_suffix(b"\0") {
            b = rest;
        }
        let root: Value =
            serde_json::from_slice(b).map_err(|e| CalibrationError::Json(e.to_string()))?;
        let info = get(&root, "", "CalibrationInformation")?;
        let p = ".CalibrationInformation";
        let list = |key| {
            get(info, p, key)?
                .as_array()
                .ok_or_else(|| CalibrationError::Field {
                    path: format!("{p}.{key}"),
                    expected: "an array",
                })
        };
        let cams = list("Cameras")?;
        let sensors = list("InertialSensors")?;
        let (di, d) = find(cams, "Location", "CALIBRATION_CameraLocationD0").ok_or(
            CalibrationError::Missing("depth camera (CALIBRATION_CameraLocationD0)"),
        )?;
        let (ci, c) = find(cams, "Location", "CALIBRATION_CameraLocationPV0").ok_or(
            CalibrationError::Missing("colour camera (CALIBRATION_CameraLocationPV0)"),
        )?;
        let (gi, g) = find(sensors, "SensorType", "CALIBRATION_InertialSensorType_Gyro")
            .ok_or(CalibrationError::Missing("gyroscope"))?;
        let (ai, a) = find(
            sensors,
            "SensorType",
            "CALIBRATION_InertialSensorType_Accelerometer",
        )
        .ok_or(CalibrationError::Missing("accelerometer"))?;
        Ok(Calibration {
            depth: camera(d, &format!("{p}.Cameras[{di}]"))?,
            color: camera(c, &format!("{p}.Cameras[{ci}]"))?,
            gyro: imu(g, &format!("{p}.InertialSensors[{gi}]"))?,
            accel: imu(a, &format!("{p}.InertialSensors[{ai}]"))?,
        })
    }

    /// Depth-to-colour extrinsics: rotation (row-major) and translation in mm, composed from
    /// both cameras' transforms out of the depth camera's frame.
    pub fn depth_to_color(&self) -> ([f32; 9], [f32; 3]) {
        extrinsics_between(
            (&self.depth.rotation, &self.depth.translation_mm),
            (&self.color.rotation, &self.color.translation_mm),
        )
    }
}

/// Transform from frame S to frame T when both are given relative to a common frame:
/// R = R_t · R_sᵀ, t = t_t − R · t_s.
pub fn extrinsics_between(
    source: (&[f32; 9], &[f32; 3]),
    target: (&[f32; 9], &[f32; 3]),
) -> ([f32; 9], [f32; 3]) {
    let (rs, ts) = source;
    let (rt, tt) = target;
    let mut r = [0.0f32; 9];
    for i in 0..3 {
        for j in 0..3 {
            r[i * 3 + j] = (0..3).map(|k| rt[i * 3 + k] * rs[j * 3 + k]).sum();
        }
    }
    let t = std::array::from_fn(|i| tt[i] - (0..3).map(|k| r[i * 3 + k] * ts[k]).sum::<f32>());
    (r, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_struct_round_trip() {
        let c = CameraCalibration {
            rotation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            translation_mm: [-32.0, 2.0, 4.0],
            model: LensModel::BrownConrady,
            parameter_count: 14,
            parameters: [0.5; 15],
            resolution_width: 1024,
            resolution_height: 1024,
            metric_radius: 1.7,
        };
        let b = c.encode();
        #[rustfmt::skip]
        let head: [u8; 8] = [
            0x00, 0x00, 0x80, 0x3f, // rotation[0] = 1.0
            0x00, 0x00, 0x00, 0x00, // rotation[1] = 0.0
        ];
        assert_eq!(&b[..8], head);
        assert_eq!(&b[36..40], (-32.0f32).to_le_bytes());
        assert_eq!(&b[48..56], [4, 0, 0, 0, 14, 0, 0, 0]); // Brown-Conrady, 14 parameters
        assert_eq!(&b[116..124], [0, 4, 0, 0, 0, 4, 0, 0]); // 1024 × 1024
        assert_eq!(CameraCalibration::decode(&b).unwrap(), c);
        assert_eq!(
            CameraCalibration::decode(&b[..127]),
            Err(CalibrationError::Truncated(127))
        );
    }

    #[test]
    fn malformed_json() {
        assert!(matches!(
            Calibration::from_json(b"{"),
            Err(CalibrationError::Json(_))
        ));
        assert!(matches!(
            Calibration::from_json(b"{}"),
            Err(CalibrationError::Field { .. })
        ));
        let e = Calibration::from_json(
            br#"{"CalibrationInformation":{"Cameras":[],"InertialSensors":[]}}"#,
        );
        assert!(matches!(e, Err(CalibrationError::Missing(_))));
    }
}
