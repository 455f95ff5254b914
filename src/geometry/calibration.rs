//! A unit's calibration for one depth mode and colour resolution: the two cameras' models in
//! pixels, the rigid transforms between depth camera, colour camera, gyroscope and
//! accelerometer, and the point mappings between them (the SDK's `k4a_calibration_*`).

use super::camera::Camera;
use super::GeometryError;
use crate::protocol::calibration::Calibration as RawCalibration;
use crate::types::{ColorResolution, DepthMode};

/// A sensor of the unit, in the SDK's order (`k4a_calibration_type_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sensor {
    /// The depth (and IR) camera: the unit's reference frame.
    Depth = 0,
    /// The colour camera.
    Color = 1,
    /// The gyroscope.
    Gyro = 2,
    /// The accelerometer.
    Accel = 3,
}

impl Sensor {
    /// All four, in enum order.
    pub const ALL: [Sensor; 4] = [Sensor::Depth, Sensor::Color, Sensor::Gyro, Sensor::Accel];

    fn name(self) -> &'static str {
        match self {
            Sensor::Depth => "depth camera",
            Sensor::Color => "colour camera",
            Sensor::Gyro => "gyroscope",
            Sensor::Accel => "accelerometer",
        }
    }
}

/// A rigid transform: `y = R·x + t`, rotation row-major, translation in millimetres.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Extrinsics {
    /// Rotation, row-major.
    pub rotation: [f32; 9],
    /// Translation, millimetres.
    pub translation_mm: [f32; 3],
}

impl Extrinsics {
    /// The identity.
    pub const IDENTITY: Extrinsics = Extrinsics {
        rotation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        translation_mm: [0.0; 3],
    };

    /// Applies the transform to a point (millimetres).
    pub fn apply(&self, p: [f32; 3]) -> [f32; 3] {
        let r = &self.rotation;
        let t = &self.translation_mm;
        [
            r[0] * p[0] + r[1] * p[1] + r[2] * p[2] + t[0],
            r[3] * p[0] + r[4] * p[1] + r[5] * p[2] + t[1],
            r[6] * p[0] + r[7] * p[1] + r[8] * p[2] + t[2],
        ]
    }

    fn rotate(r: &[f32; 9], v: &[f32; 3]) -> [f32; 3] {
        std::array::from_fn(|i| r[i * 3] * v[0] + r[i * 3 + 1] * v[1] + r[i * 3 + 2] * v[2])
    }

    /// The inverse transform.
    pub fn inverse(&self) -> Extrinsics {
        let r = &self.rotation;
        let rotation = [r[0], r[3], r[6], r[1], r[4], r[7], r[2], r[5], r[8]];
        let t = Self::rotate(&rotation, &self.translation_mm).map(|v| -v);
        Extrinsics {
            rotation,
            translation_mm: t,
        }
    }

    /// `self ∘ then`: first `then`, then `self`.
    pub fn after(&self, then: &Extrinsics) -> Extrinsics {
        let rt = Self::rotate(&self.rotation, &then.translation_mm);
        let translation_mm = std::array::from_fn(|i| rt[i] + self.translation_mm[i]);
        let (a, b) = (&self.rotation, &then.rotation);
        let rotation = std::array::from_fn(|k| {
            let (i, j) = (k / 3, k % 3);
            a[i * 3] * b[j] + a[i * 3 + 1] * b[3 + j] + a[i * 3 + 2] * b[6 + j]
        });
        Extrinsics {
            rotation,
            translation_mm,
        }
    }
}

/// Depth range (mm) searched along the epipolar line by [`Calibration::color_2d_to_depth_2d`].
const EPIPOLAR_DEPTH_RANGE_MM: [f32; 2] = [50.0, 14000.0];
/// Reprojection error (colour px) above which that search reports no match.
const EPIPOLAR_MAX_ERROR_PX: f32 = 10.0;

/// A calibration for one depth mode and colour resolution (`k4a_calibration_t`).
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// The depth mode the depth camera's model is for.
    pub depth_mode: DepthMode,
    /// The colour resolution the colour camera's model is for.
    pub color_resolution: ColorResolution,
    /// The depth camera in pixels of `depth_mode` (`None` when OFF).
    pub depth: Option<Camera>,
    /// The colour camera in pixels of `color_resolution` (`None` when OFF).
    pub color: Option<Camera>,
    /// `extrinsics[source][target]`: from `source`'s frame to `target`'s.
    pub extrinsics: [[Extrinsics; 4]; 4],
}

impl Calibration {
    /// Parses the factory calibration JSON (as stored in recordings and read from the device)
    /// and specialises it for a mode, like `k4a_calibration_get_from_raw`.
    pub fn from_json(
        json: &[u8],
        depth_mode: DepthMode,
        color_resolution: ColorResolution,
    ) -> Result<Self, GeometryError> {
        let raw = RawCalibration::from_json(json)?;
        Self::from_raw(&raw, depth_mode, color_resolution)
    }

    /// Specialises a parsed factory calibration for a mode. At least one camera must be on.
    pub fn from_raw(
        raw: &RawCalibration,
        depth_mode: DepthMode,
        color_resolution: ColorResolution,
    ) -> Result<Self, GeometryError> {
        if depth_mode == DepthMode::Off && color_resolution == ColorResolution::Off {
            return Err(GeometryError::BothOff);
        }
        let depth = match depth_mode {
            DepthMode::Off => None,
            m => Some(Camera::new(&raw.depth.for_depth_mode(m).ok_or(
                GeometryError::SensorSize {
                    sensor: "depth camera",
                    width: raw.depth.resolution_width,
                    height: raw.depth.resolution_height,
                },
            )?)?),
        };
        let color = match color_resolution {
            ColorResolution::Off => None,
            r => Some(Camera::new(&raw.color.for_color_resolution(r).ok_or(
                GeometryError::SensorSize {
                    sensor: "colour camera",
                    width: raw.color.resolution_width,
                    height: raw.color.resolution_height,
                },
            )?)?),
        };
        // Each sensor's calibration is the transform from the unit's frame into the sensor's.
        let world_to = |rotation: [f32; 9], translation_mm: [f32; 3]| Extrinsics {
            rotation,
            translation_mm,
        };
        let from_world = [
            world_to(raw.depth.rotation, raw.depth.translation_mm),
            world_to(raw.color.rotation, raw.color.translation_mm),
            world_to(raw.gyro.rotation, raw.gyro.translation_mm),
            world_to(raw.accel.rotation, raw.accel.translation_mm),
        ];
        let extrinsics = std::array::from_fn(|s| {
            let to_world = from_world[s].inverse();
            std::array::from_fn(|t| from_world[t].after(&to_world))
        });
        Ok(Calibration {
            depth_mode,
            color_resolution,
            depth,
            color,
            extrinsics,
        })
    }

    /// The transform from `source`'s frame into `target`'s.
    pub fn extrinsics(&self, source: Sensor, target: Sensor) -> &Extrinsics {
        &self.extrinsics[source as usize][target as usize]
    }

    /// The model of a camera; an error for the IMU sensors or a camera that is off.
    pub fn camera(&self, sensor: Sensor) -> Result<&Camera, GeometryError> {
        match sensor {
            Sensor::Depth => self.depth.as_ref(),
            Sensor::Color => self.color.as_ref(),
            Sensor::Gyro | Sensor::Accel => return Err(GeometryError::NotACamera(sensor.name())),
        }
        .ok_or(GeometryError::CameraOff(sensor.name()))
    }

    fn check_on(&self, sensor: Sensor) -> Result<(), GeometryError> {
        match sensor {
            Sensor::Depth | Sensor::Color => self.camera(sensor).map(|_| ()),
            Sensor::Gyro | Sensor::Accel => Ok(()),
        }
    }

    /// A 3D point (mm) from one sensor's frame into another's (`k4a_calibration_3d_to_3d`).
    pub fn convert_3d_to_3d(
        &self,
        p: [f32; 3],
        source: Sensor,
        target: Sensor,
    ) -> Result<[f32; 3], GeometryError> {
        self.check_on(source)?;
        self.check_on(target)?;
        if source == target {
            return Ok(p);
        }
        Ok(self.extrinsics(source, target).apply(p))
    }

    /// The 3D point (mm, in `target`'s frame) seen at pixel `p` of camera `source` at `depth_mm`
    /// (`k4a_calibration_2d_to_3d`); `Ok(None)` where the SDK reports the result invalid.
    pub fn convert_2d_to_3d(
        &self,
        p: [f32; 2],
        depth_mm: f32,
        source: Sensor,
        target: Sensor,
    ) -> Result<Option<[f32; 3]>, GeometryError> {
        let Some(p3) = self.camera(source)?.unproject(p, depth_mm) else {
            return Ok(None);
        };
        self.convert_3d_to_3d(p3, source, target).map(Some)
    }

    /// The pixel of camera `target` that sees the 3D point `p` (mm, `source`'s frame)
    /// (`k4a_calibration_3d_to_2d`); `Ok(None)` behind the camera or outside its lens model.
    /// The pixel may lie outside the image.
    pub fn convert_3d_to_2d(
        &self,
        p: [f32; 3],
        source: Sensor,
        target: Sensor,
    ) -> Result<Option<[f32; 2]>, GeometryError> {
        let cam = self.camera(target)?;
        let p = if source == target {
            p
        } else {
            self.convert_3d_to_3d(p, source, target)?
        };
        Ok(cam.project(p))
    }

    /// Pixel `p` of camera `source` at `depth_mm` as seen by camera `target`
    /// (`k4a_calibration_2d_to_2d`).
    pub fn convert_2d_to_2d(
        &self,
        p: [f32; 2],
        depth_mm: f32,
        source: Sensor,
        target: Sensor,
    ) -> Result<Option<[f32; 2]>, GeometryError> {
        if source == target {
            return Ok(Some(p));
        }
        let Some(p3) = self.convert_2d_to_3d(p, depth_mm, source, target)? else {
            return Ok(None);
        };
        self.convert_3d_to_2d(p3, target, target)
    }

    /// The depth pixel whose measured depth reprojects closest to colour pixel `p`
    /// (`k4a_calibration_color_2d_to_depth_2d`): a walk along the epipolar line between 50 mm
    /// and 14 m, one undistorted depth pixel per step. `depth_mm` is the depth image of this
    /// calibration's depth mode, row-major. `Ok(None)` when nothing reprojects within 10 px.
    pub fn color_2d_to_depth_2d(
        &self,
        p: [f32; 2],
        depth_mm: &[u16],
    ) -> Result<Option<[f32; 2]>, GeometryError> {
        let depth_cam = self.camera(Sensor::Depth)?;
        let color_cam = self.camera(Sensor::Color)?;
        let (w, h) = (depth_cam.width, depth_cam.height);
        if depth_mm.len() != (w * h) as usize {
            return Err(GeometryError::ImageSize {
                what: "depth image",
                expected: (w * h) as usize,
                got: depth_mm.len(),
            });
        }
        let (pfx, pfy, ppx, ppy) = pinhole(self.depth_mode, w, h);
        let ends = EPIPOLAR_DEPTH_RANGE_MM
            .map(|d| self.convert_2d_to_3d(p, d, Sensor::Color, Sensor::Depth));
        let (start, stop) = match ends {
            [Ok(Some(a)), Ok(Some(b))] => (a, b),
            [Err(e), _] | [_, Err(e)] => return Err(e),
            _ => return Ok(None),
        };
        let to_pinhole = |q: [f32; 3]| [q[0] / q[2] * pfx + ppx, q[1] / q[2] * pfy + ppy];
        let (start, stop) = (to_pinhole(start), to_pinhole(stop));
        if stop[0] - start[0] == 0.0 {
            return Err(GeometryError::EpipolarLine);
        }
        let slope = (stop[1] - start[1]) / (stop[0] - start[0]);
        let step_x = slope.abs() < 1.0;
        let forward = if step_x {
            stop[0] > start[0]
        } else {
            stop[1] > start[1]
        };
        let mut best_err = f32::MAX;
        let mut best = None;
        let mut q = start;
        while within_segment(q, start, stop) {
            let ray = [(q[0] - ppx) / pfx, (q[1] - ppy) / pfy, 1.0];
            if let Some(dp) = depth_cam.project(ray) {
                if depth_cam.contains(dp) {
                    let u = (dp[0] + 0.5).floor() as i32;
                    let v = (dp[1] + 0.5).floor() as i32;
                    // Rounding can reach one past the last column (the next row's first
                    // pixel, as in the SDK) or row (then the row above).
                    let mut k = (v * w + u) as usize;
                    while k >= depth_mm.len() {
                        k -= w as usize;
                    }
                    let d = depth_mm[k];
                    if let Some(cp) =
                        self.convert_2d_to_2d(dp, d as f32, Sensor::Depth, Sensor::Color)?
                    {
                        if color_cam.contains(cp) {
                            let err = ((cp[0] - p[0]).powi(2) + (cp[1] - p[1]).powi(2)).sqrt();
                            if err < best_err {
                                best_err = err;
                                best = Some(dp);
                            }
                        }
                    }
                }
            }
            if step_x {
                let s = if forward { 1.0 } else { -1.0 };
                q = [q[0] + s, q[1] + s * slope];
            } else {
                // The SDK derives x from the stepped y here; kept so both walk the same pixels.
                let s = if forward { 1.0 } else { -1.0 };
                q[1] += s;
                q[0] = q[1] + s / slope;
            }
        }
        Ok(if best_err > EPIPOLAR_MAX_ERROR_PX {
            None
        } else {
            best
        })
    }
}

/// The ideal pinhole camera the epipolar search steps in: the mode's nominal field of view
/// over the image, centred. Returns (fx, fy, px, py).
fn pinhole(mode: DepthMode, w: i32, h: i32) -> (f32, f32, f32, f32) {
    let fov_deg: [f32; 2] = match mode {
        DepthMode::Nfov2x2Binned | DepthMode::NfovUnbinned => [75.0, 65.0],
        _ => [120.0, 120.0],
    };
    // The SDK writes 3.14159265f, which is this constant in single precision.
    let rad_per_deg = std::f32::consts::PI / 180.0;
    let f = fov_deg.map(|d| 0.5 / (0.5 * d * rad_per_deg).tan());
    (
        f[0] * w as f32,
        f[1] * h as f32,
        w as f32 / 2.0,
        h as f32 / 2.0,
    )
}

fn within_segment(p: [f32; 2], start: [f32; 2], stop: [f32; 2]) -> bool {
    let between = |v: f32, a: f32, b: f32| {
        if b >= a {
            b >= v && v >= a
        } else {
            b <= v && v <= a
        }
    };
    between(p[0], start[0], stop[0]) && between(p[1], start[1], stop[1])
}
