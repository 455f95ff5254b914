//! One camera's lens model in pixels for one mode: projection of normalised image
//! coordinates through Brown–Conrady or rational 6KT distortion, and its inverse by Newton
//! iteration with the SDK's validity rules.
//!
//! The arithmetic is single precision and follows the SDK's order of operations, so results
//! and validity flags agree with libk4a's to the last bits in practice.

use super::GeometryError;
use crate::protocol::calibration::{param, CameraCalibration, LensModel};

/// Newton passes the SDK allows when undistorting.
const UNPROJECT_PASSES: u32 = 20;
/// Squared reprojection error (px²) under which iteration stops early.
const CONVERGED_ERR_PX2: f32 = 1e-22;
/// Squared reprojection error (px²) above which an undistorted point is invalid.
const VALID_ERR_PX2: f32 = 1e-6;

/// A camera's intrinsics in pixels, (0, 0) at the centre of the top-left pixel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Camera {
    /// Image width in pixels.
    pub width: i32,
    /// Image height in pixels.
    pub height: i32,
    /// Lens model: [`LensModel::BrownConrady`] or [`LensModel::Rational6KT`].
    pub model: LensModel,
    /// Principal point x, pixels.
    pub cx: f32,
    /// Principal point y, pixels.
    pub cy: f32,
    /// Focal length x, pixels.
    pub fx: f32,
    /// Focal length y, pixels.
    pub fy: f32,
    /// Radial coefficients k1–k6 (numerator k1–k3, denominator k4–k6).
    pub k: [f32; 6],
    /// Centre of distortion x, normalised (0 for Brown–Conrady).
    pub codx: f32,
    /// Centre of distortion y, normalised.
    pub cody: f32,
    /// Tangential p1.
    pub p1: f32,
    /// Tangential p2.
    pub p2: f32,
    /// Normalised radius beyond which the model is not trusted: points further out do not
    /// project.
    pub metric_radius: f32,
}

/// A projection with its 2×2 Jacobian (d pixel / d normalised coordinate, row-major).
struct Projected {
    uv: [f32; 2],
    jacobian: [f32; 4],
}

impl Camera {
    /// The model of a mode-specific calibration in pixels (see
    /// [`CameraCalibration::for_depth_mode`]). Only the two models the SDK transforms with are
    /// accepted, with at least 14 parameters and positive focal lengths.
    pub fn new(c: &CameraCalibration) -> Result<Self, GeometryError> {
        if !matches!(c.model, LensModel::BrownConrady | LensModel::Rational6KT)
            || c.parameter_count < 14
        {
            return Err(GeometryError::LensModel {
                model: c.model,
                parameters: c.parameter_count,
            });
        }
        let p = &c.parameters;
        let cam = Camera {
            width: c.resolution_width,
            height: c.resolution_height,
            model: c.model,
            cx: p[param::CX],
            cy: p[param::CY],
            fx: p[param::FX],
            fy: p[param::FY],
            k: std::array::from_fn(|i| p[param::K1 + i]),
            codx: p[param::CODX],
            cody: p[param::CODY],
            p1: p[param::P1],
            p2: p[param::P2],
            metric_radius: c.metric_radius,
        };
        if !(cam.fx > 0.0 && cam.fy > 0.0) {
            return Err(GeometryError::FocalLength {
                fx: cam.fx,
                fy: cam.fy,
            });
        }
        Ok(cam)
    }

    /// Whether the tangential terms are the rational model's (single xy term) rather than
    /// Brown–Conrady's (doubled).
    fn rational(&self) -> bool {
        self.model == LensModel::Rational6KT
    }

    /// Distorts normalised coordinates into pixels; `None` beyond the metric radius.
    fn distort(&self, xy: [f32; 2], with_jacobian: bool) -> Option<Projected> {
        let [k1, k2, k3, k4, k5, k6] = self.k;
        let (p1, p2) = (self.p1, self.p2);
        let xp = xy[0] - self.codx;
        let yp = xy[1] - self.cody;
        let xp2 = xp * xp;
        let yp2 = yp * yp;
        let xyp = xp * yp;
        let rs = xp2 + yp2;
        if rs > self.metric_radius * self.metric_radius {
            return None;
        }
        let rss = rs * rs;
        let rsc = rss * rs;
        let a = 1.0 + k1 * rs + k2 * rss + k3 * rsc;
        let b = 1.0 + k4 * rs + k5 * rss + k6 * rsc;
        let bi = if b != 0.0 { 1.0 / b } else { 1.0 };
        let d = a * bi;
        let mut xd = xp * d;
        let mut yd = yp * d;
        let rs_2xp2 = rs + 2.0 * xp2;
        let rs_2yp2 = rs + 2.0 * yp2;
        // The tangential cross term is doubled in Brown–Conrady, single in rational 6KT.
        if self.rational() {
            xd += rs_2xp2 * p2 + xyp * p1;
            yd += rs_2yp2 * p1 + xyp * p2;
        } else {
            xd += rs_2xp2 * p2 + 2.0 * xyp * p1;
            yd += rs_2yp2 * p1 + 2.0 * xyp * p2;
        }
        let uv = [
            (xd + self.codx) * self.fx + self.cx,
            (yd + self.cody) * self.fy + self.cy,
        ];
        if !with_jacobian {
            return Some(Projected {
                uv,
                jacobian: [0.0; 4],
            });
        }
        let da_drs = k1 + 2.0 * k2 * rs + 3.0 * k3 * rss;
        let db_drs = k4 + 2.0 * k5 * rs + 3.0 * k6 * rss;
        let dd_drs = (da_drs * b - a * db_drs) * (bi * bi);
        let dd_drs_2 = dd_drs * 2.0;
        let xp_dd_drs_2 = xp * dd_drs_2;
        let yp_xp_dd_drs_2 = yp * xp_dd_drs_2;
        let jacobian = if self.rational() {
            [
                self.fx * (d + xp * xp_dd_drs_2 + 6.0 * xp * p2 + yp * p1),
                self.fx * (yp_xp_dd_drs_2 + 2.0 * yp * p2 + xp * p1),
                self.fy * (yp_xp_dd_drs_2 + 2.0 * xp * p1 + yp * p2),
                self.fy * (d + yp * yp * dd_drs_2 + 6.0 * yp * p1 + xp * p2),
            ]
        } else {
            [
                self.fx * (d + xp * xp_dd_drs_2 + 6.0 * xp * p2 + 2.0 * yp * p1),
                self.fx * (yp_xp_dd_drs_2 + 2.0 * yp * p2 + 2.0 * xp * p1),
                self.fy * (yp_xp_dd_drs_2 + 2.0 * xp * p1 + 2.0 * yp * p2),
                self.fy * (d + yp * yp * dd_drs_2 + 6.0 * yp * p1 + 2.0 * xp * p2),
            ]
        };
        Some(Projected { uv, jacobian })
    }

    /// Projects a 3D point (camera frame, any unit) to pixels. `None` when it is behind the
    /// camera (z ≤ 0) or outside the lens model's radius; the pixel may lie outside the image.
    pub fn project(&self, p: [f32; 3]) -> Option<[f32; 2]> {
        if p[2] <= 0.0 {
            return None;
        }
        self.distort([p[0] / p[2], p[1] / p[2]], false)
            .map(|r| r.uv)
    }

    /// The normalised coordinates (x/z, y/z) seen at pixel `uv`, or `None` when the undistortion
    /// leaves the model's radius or does not converge to 1e-3 px.
    pub fn undistort(&self, uv: [f32; 2]) -> Option<[f32; 2]> {
        let [k1, k2, k3, k4, k5, k6] = self.k;
        // A closed-form first guess (radial inverted by swapping numerator and denominator,
        // tangential to first order), refined by Newton's method.
        let xd = (uv[0] - self.cx) / self.fx - self.codx;
        let yd = (uv[1] - self.cy) / self.fy - self.cody;
        let rs = xd * xd + yd * yd;
        let rss = rs * rs;
        let rsc = rss * rs;
        let a = 1.0 + k1 * rs + k2 * rss + k3 * rsc;
        let b = 1.0 + k4 * rs + k5 * rss + k6 * rsc;
        let ai = if a != 0.0 { 1.0 / a } else { 1.0 };
        let di = ai * b;
        let mut x = xd * di;
        let mut y = yd * di;
        let two_xy = 2.0 * x * y;
        let xx = x * x;
        let yy = y * y;
        x -= (yy + 3.0 * xx) * self.p2 + two_xy * self.p1;
        y -= (xx + 3.0 * yy) * self.p1 + two_xy * self.p2;
        let mut xy = [x + self.codx, y + self.cody];

        let mut best_xy = [0.0f32; 2];
        let mut best_err = f32::MAX;
        for pass in 0..UNPROJECT_PASSES {
            let pr = self.distort(xy, true)?;
            let ex = uv[0] - pr.uv[0];
            let ey = uv[1] - pr.uv[1];
            let err = ex * ex + ey * ey;
            if err >= best_err {
                xy = best_xy;
                break;
            }
            best_err = err;
            best_xy = xy;
            if pass + 1 == UNPROJECT_PASSES || best_err < CONVERGED_ERR_PX2 {
                break;
            }
            let j = pr.jacobian;
            let inv_det = 1.0 / (j[0] * j[3] - j[1] * j[2]);
            let jinv = [
                inv_det * j[3],
                -inv_det * j[1],
                -inv_det * j[2],
                inv_det * j[0],
            ];
            xy[0] += jinv[0] * ex + jinv[1] * ey;
            xy[1] += jinv[2] * ex + jinv[3] * ey;
        }
        (best_err <= VALID_ERR_PX2).then_some(xy)
    }

    /// The 3D point (camera frame, the unit of `depth`) seen at pixel `uv` at distance `depth`
    /// along the optical axis; `None` for depth 0 or where [`Camera::undistort`] fails.
    pub fn unproject(&self, uv: [f32; 2], depth: f32) -> Option<[f32; 3]> {
        if depth == 0.0 {
            return None;
        }
        let [x, y] = self.undistort(uv)?;
        Some([x * depth, y * depth, depth])
    }

    /// Whether `uv` lies inside the image (pixel centres at integers, edges at −0.5 excluded
    /// as the SDK does: 0 ≤ u < width).
    pub fn contains(&self, uv: [f32; 2]) -> bool {
        uv[0] >= 0.0 && uv[0] < self.width as f32 && uv[1] >= 0.0 && uv[1] < self.height as f32
    }
}
