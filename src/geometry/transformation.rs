//! Whole-image transformations (the SDK's `k4a_transformation_*`): point clouds, depth
//! re-rendered in the colour camera (optionally with a depth-aligned custom image such as IR),
//! colour resampled into the depth camera.
//!
//! Per-pixel rays ("xy tables") are computed once per camera and reused for every frame;
//! frames are processed on all cores with rayon.

use std::sync::OnceLock;

use rayon::prelude::*;

use super::calibration::{Calibration, Sensor};
use super::camera::Camera;
use super::GeometryError;

/// Each pixel's normalised ray (x/z, y/z); x is NaN where the lens model gives none.
#[derive(Clone, Debug)]
pub struct XyTable {
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
    /// x/z per pixel, row-major; NaN marks pixels without a ray.
    pub x: Vec<f32>,
    /// y/z per pixel (0 where x is NaN).
    pub y: Vec<f32>,
}

impl XyTable {
    /// Undistorts every pixel centre of `cam`.
    pub fn new(cam: &Camera) -> XyTable {
        let (w, h) = (cam.width as usize, cam.height as usize);
        let mut x = vec![0.0f32; w * h];
        let mut y = vec![0.0f32; w * h];
        x.par_chunks_mut(w)
            .zip(y.par_chunks_mut(w))
            .enumerate()
            .for_each(|(row, (xr, yr))| {
                for (col, (xo, yo)) in xr.iter_mut().zip(yr.iter_mut()).enumerate() {
                    match cam.unproject([col as f32, row as f32], 1.0) {
                        Some(p) => (*xo, *yo) = (p[0], p[1]),
                        None => (*xo, *yo) = (f32::NAN, 0.0),
                    }
                }
            });
        XyTable {
            width: w,
            height: h,
            x,
            y,
        }
    }
}

/// How values of a custom image are resampled into the colour camera.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Interpolation {
    /// The value of the nearest depth pixel (for labels, masks).
    Nearest,
    /// Barycentric blend of the three depth pixels around (for IR and other intensities).
    #[default]
    Linear,
}

/// A depth-aligned image resampled alongside depth.
#[derive(Clone, Copy, Debug)]
pub enum CustomImage<'a> {
    /// 8 bits per pixel.
    U8(&'a [u8]),
    /// 16 bits per pixel (IR16, for example).
    U16(&'a [u16]),
}

/// Output of [`Transformation::depth_to_color_custom`] for the custom image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CustomOutput {
    /// 8 bits per pixel.
    U8(Vec<u8>),
    /// 16 bits per pixel.
    U16(Vec<u16>),
}

/// Where one depth pixel lands in the colour camera.
#[derive(Clone, Copy, Debug, Default)]
struct Vertex {
    uv: [f32; 2],
    /// Distance along the colour camera's axis, mm.
    z: f32,
    valid: bool,
}

impl Vertex {
    fn midpoint(a: &Vertex, b: &Vertex) -> Vertex {
        Vertex {
            uv: [(a.uv[0] + b.uv[0]) * 0.5, (a.uv[1] + b.uv[1]) * 0.5],
            z: (a.z + b.z) * 0.5,
            valid: a.valid & b.valid,
        }
    }
}

/// Depth spread (relative to the nearest corner) above which a quad is a depth edge and is
/// not filled: sin(0.234375°) / cos(85°), one WFOV-binned pixel's angle on a surface slanted at
/// 85°, as the SDK uses.
const SKIP_INTERPOLATION_RATIO: f32 = 0.046_934_42;

/// Rows of depth image per point-cloud task: large enough that scheduling costs little next to
/// a loop of a few nanoseconds per pixel.
const CLOUD_ROWS: usize = 64;

/// An xy table laid out for the point-cloud loop: no NaN (rays that do not exist are 0 and
/// their depth is masked off), so the loop is the same arithmetic for every pixel and
/// vectorises.
#[derive(Clone, Debug)]
struct CloudTable {
    width: usize,
    x: Vec<f32>,
    y: Vec<f32>,
    /// 0xFFFF where the pixel has a ray, 0 where it has none.
    z_mask: Vec<u16>,
}

impl CloudTable {
    fn new(t: &XyTable) -> CloudTable {
        let valid = |x: f32| !x.is_nan();
        CloudTable {
            width: t.width,
            x: t.x
                .iter()
                .map(|&x| if valid(x) { x } else { 0.0 })
                .collect(),
            y: t.y
                .iter()
                .zip(&t.x)
                .map(|(&y, &x)| if valid(x) { y } else { 0.0 })
                .collect(),
            z_mask: t
                .x
                .iter()
                .map(|&x| if valid(x) { 0xFFFF } else { 0 })
                .collect(),
        }
    }
}

/// 1.5 · 2²³: adding it to an f32 of magnitude below 2²² rounds to the nearest integer, ties
/// to even (the SSE conversion the SDK uses), and leaves that integer in the low mantissa
/// bits, so the conversion is an integer subtraction that vectorises (Rust's saturating
/// float-to-int casts and `round_ties_even` do not on baseline x86-64).
const ROUND_MAGIC: f32 = 12_582_912.0;

/// One coordinate: x/z (or y/z) times depth, rounded half to even; |ray| · 65535 stays far
/// below 2²², where the rounding trick holds.
#[inline(always)]
fn cloud_coordinate(ray: f32, z: f32) -> i32 {
    (ray * z + ROUND_MAGIC).to_bits() as i32 - ROUND_MAGIC.to_bits() as i32
}

/// Pixels per step of the point-cloud loop: the arithmetic runs on whole arrays (vector
/// registers), then the three outputs are interleaved.
const CLOUD_LANES: usize = 64;

/// The point-cloud loop over whole rows: three outputs per depth pixel, coordinates saturated to
/// i16 as the SDK's packing does.
fn cloud_rows(out: &mut [i16], depth: &[u16], xs: &[f32], ys: &[f32], z_mask: &[u16]) {
    // Not inlined: the compiler then vectorises each step's loops on their own instead of
    // gathering across steps.
    #[inline(never)]
    fn step<const N: usize>(o: &mut [i16], d: &[u16; N], x: &[f32; N], y: &[f32; N], m: &[u16; N]) {
        let mut cx = [0i16; N];
        let mut cy = [0i16; N];
        let mut cz = [0i16; N];
        for k in 0..N {
            let z = d[k] as f32;
            cx[k] = cloud_coordinate(x[k], z).clamp(-32768, 32767) as i16;
            cy[k] = cloud_coordinate(y[k], z).clamp(-32768, 32767) as i16;
            // Depth above 32767 mm wraps, as in the SDK's 16-bit output.
            cz[k] = (d[k] & m[k]) as i16;
        }
        for (((p, x), y), z) in o.chunks_exact_mut(3).zip(cx).zip(cy).zip(cz) {
            p.copy_from_slice(&[x, y, z]);
        }
    }
    let (d_steps, d_rest) = depth.as_chunks::<CLOUD_LANES>();
    let (x_steps, x_rest) = xs.as_chunks::<CLOUD_LANES>();
    let (y_steps, y_rest) = ys.as_chunks::<CLOUD_LANES>();
    let (m_steps, m_rest) = z_mask.as_chunks::<CLOUD_LANES>();
    let (o_steps, o_rest) = out.split_at_mut(d_steps.len() * CLOUD_LANES * 3);
    for ((((o, d), x), y), m) in o_steps
        .chunks_exact_mut(CLOUD_LANES * 3)
        .zip(d_steps)
        .zip(x_steps)
        .zip(y_steps)
        .zip(m_steps)
    {
        step(o, d, x, y, m);
    }
    let rest = o_rest.chunks_exact_mut(3).zip(d_rest).zip(x_rest);
    for ((((o, d), x), y), m) in rest.zip(y_rest).zip(m_rest) {
        step::<1>(o, &[*d], &[*x], &[*y], &[*m]);
    }
}

/// Rows of colour output per rasterisation band (each band is one rayon task).
const BAND_ROWS: usize = 32;

/// The transformation engine of one calibration (`k4a_transformation_t`), without OpenGL.
pub struct Transformation {
    calibration: Calibration,
    depth_table: OnceLock<XyTable>,
    color_table: OnceLock<XyTable>,
    depth_cloud: OnceLock<CloudTable>,
    color_cloud: OnceLock<CloudTable>,
}

impl Transformation {
    /// An engine for `calibration`. Tables are built on first use.
    pub fn new(calibration: Calibration) -> Transformation {
        Transformation {
            calibration,
            depth_table: OnceLock::new(),
            color_table: OnceLock::new(),
            depth_cloud: OnceLock::new(),
            color_cloud: OnceLock::new(),
        }
    }

    /// The calibration.
    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// The xy table of a camera (built on first call).
    pub fn xy_table(&self, camera: Sensor) -> Result<&XyTable, GeometryError> {
        let cam = self.calibration.camera(camera)?;
        let cell = match camera {
            Sensor::Depth => &self.depth_table,
            _ => &self.color_table,
        };
        Ok(cell.get_or_init(|| XyTable::new(cam)))
    }

    fn both_cameras(&self) -> Result<(&Camera, &Camera), GeometryError> {
        Ok((
            self.calibration.camera(Sensor::Depth)?,
            self.calibration.camera(Sensor::Color)?,
        ))
    }

    /// A point cloud from a depth image in `camera`'s geometry (the depth camera's own image,
    /// or one already transformed to the colour camera): x, y, z in millimetres per pixel,
    /// interleaved, in that camera's frame; (0, 0, 0) where there is no depth or no ray.
    pub fn depth_image_to_point_cloud(
        &self,
        depth_mm: &[u16],
        camera: Sensor,
    ) -> Result<Vec<i16>, GeometryError> {
        let mut out = vec![0i16; depth_mm.len() * 3];
        self.depth_image_to_point_cloud_into(depth_mm, camera, &mut out)?;
        Ok(out)
    }

    /// [`Transformation::depth_image_to_point_cloud`] into a caller's buffer of three values per
    /// depth pixel, so a stream of frames reuses one allocation.
    pub fn depth_image_to_point_cloud_into(
        &self,
        depth_mm: &[u16],
        camera: Sensor,
        out: &mut [i16],
    ) -> Result<(), GeometryError> {
        let t = self.cloud_table(camera)?;
        check_len("depth image", t.x.len(), depth_mm.len())?;
        check_len("point cloud", t.x.len() * 3, out.len())?;
        let rows = CLOUD_ROWS * t.width;
        out.par_chunks_mut(rows * 3)
            .zip(depth_mm.par_chunks(rows))
            .zip(t.x.par_chunks(rows).zip(t.y.par_chunks(rows)))
            .zip(t.z_mask.par_chunks(rows))
            .for_each(|(((o, d), (xs, ys)), zm)| cloud_rows(o, d, xs, ys, zm));
        Ok(())
    }

    /// The point-cloud form of a camera's xy table (built on first call).
    fn cloud_table(&self, camera: Sensor) -> Result<&CloudTable, GeometryError> {
        let xy = self.xy_table(camera)?;
        let cell = match camera {
            Sensor::Depth => &self.depth_cloud,
            _ => &self.color_cloud,
        };
        Ok(cell.get_or_init(|| CloudTable::new(xy)))
    }

    fn vertex(&self, table: &XyTable, color: &Camera, i: usize, d: u16) -> Vertex {
        let x = table.x[i];
        if d == 0 || x.is_nan() {
            return Vertex::default();
        }
        let z = d as f32;
        let p = [x * z, table.y[i] * z, z];
        let c = self
            .calibration
            .extrinsics(Sensor::Depth, Sensor::Color)
            .apply(p);
        match color.project(c) {
            Some(uv) => Vertex {
                uv,
                z: c[2],
                valid: true,
            },
            None => Vertex {
                uv: [0.0; 2],
                z: c[2],
                valid: false,
            },
        }
    }

    fn vertices(&self, depth_mm: &[u16]) -> Result<Vec<Vertex>, GeometryError> {
        let (_, color) = self.both_cameras()?;
        let table = self.xy_table(Sensor::Depth)?;
        check_len("depth image", table.width * table.height, depth_mm.len())?;
        let mut v = vec![Vertex::default(); depth_mm.len()];
        v.par_chunks_mut(table.width)
            .enumerate()
            .for_each(|(row, out)| {
                let base = row * table.width;
                for (k, o) in out.iter_mut().enumerate() {
                    *o = self.vertex(table, color, base + k, depth_mm[base + k]);
                }
            });
        Ok(v)
    }

    /// Depth re-rendered in the colour camera (`k4a_transformation_depth_image_to_color_camera`):
    /// each 2×2 block of depth pixels becomes two triangles, rasterised with a z-buffer; blocks
    /// that straddle a depth edge are left empty. Millimetres along the colour camera's axis;
    /// 0 where nothing lands. With WFOV depth, as libk4a does, a strip along the colour image's
    /// left edge is mostly empty (see `group_first_row_only`).
    pub fn depth_to_color(&self, depth_mm: &[u16]) -> Result<Vec<u16>, GeometryError> {
        Ok(self.render(depth_mm, None, Interpolation::Linear, 0)?.0)
    }

    /// [`Transformation::depth_to_color`] with a depth-aligned custom image (IR, labels…)
    /// resampled alongside (`k4a_transformation_depth_image_to_color_camera_custom`). Custom
    /// pixels where no depth lands hold `invalid_value`.
    pub fn depth_to_color_custom(
        &self,
        depth_mm: &[u16],
        custom: CustomImage<'_>,
        interpolation: Interpolation,
        invalid_value: u16,
    ) -> Result<(Vec<u16>, CustomOutput), GeometryError> {
        let (d, c) = self.render(depth_mm, Some(custom), interpolation, invalid_value)?;
        Ok((d, c.expect("custom output requested")))
    }

    fn render(
        &self,
        depth_mm: &[u16],
        custom: Option<CustomImage<'_>>,
        interpolation: Interpolation,
        invalid_value: u16,
    ) -> Result<(Vec<u16>, Option<CustomOutput>), GeometryError> {
        let (dc, cc) = self.both_cameras()?;
        let (dw, dh) = (dc.width as usize, dc.height as usize);
        check_len("depth image", dw * dh, depth_mm.len())?;
        let custom_u16: Option<Vec<u16>> = match custom {
            None => None,
            Some(CustomImage::U8(c)) => {
                check_len("custom image", dw * dh, c.len())?;
                Some(c.iter().map(|&v| v as u16).collect())
            }
            Some(CustomImage::U16(c)) => {
                check_len("custom image", dw * dh, c.len())?;
                Some(c.to_vec())
            }
        };
        let verts = self.vertices(depth_mm)?;
        let (cw, ch) = (cc.width as usize, cc.height as usize);
        let mut out = vec![0u16; cw * ch];
        let mut cust = vec![invalid_value; if custom.is_some() { cw * ch } else { 0 }];
        let linear = interpolation == Interpolation::Linear;

        // Each quad's covered rows, so a band only visits quads that reach it.
        let quads: Vec<Quad> = (1..dh)
            .into_par_iter()
            .flat_map_iter(|y| {
                let verts = &verts;
                let custom_u16 = custom_u16.as_deref();
                let row = &verts[(y - 1) * dw..(y + 1) * dw];
                let first_row_only: Vec<bool> = (0..(dw - 1).div_ceil(QUAD_GROUP))
                    .map(|g| group_first_row_only(row, dw, g * QUAD_GROUP, ch as f32))
                    .collect();
                (1..dw).filter_map(move |x| {
                    let i = |xx: usize, yy: usize| yy * dw + xx;
                    let corners = [i(x - 1, y - 1), i(x, y - 1), i(x, y), i(x - 1, y)];
                    let v = corners.map(|k| verts[k]);
                    let c = corners.map(|k| custom_u16.map_or(0, |c| c[k]));
                    let mut q = Quad::new(v, c, linear, cw as i32, ch as i32)?;
                    if first_row_only[(x - 1) / QUAD_GROUP] {
                        q.y_end = q.y_end.min(q.y_begin + 1);
                    }
                    Some(q)
                })
            })
            .collect();

        let band_px = BAND_ROWS * cw;
        let bands = out.len().div_ceil(band_px);
        let custom_bands: Vec<&mut [u16]> = if cust.is_empty() {
            (0..bands).map(|_| &mut [][..]).collect()
        } else {
            cust.chunks_mut(band_px).collect()
        };
        out.par_chunks_mut(band_px)
            .zip(custom_bands.into_par_iter())
            .enumerate()
            .for_each(|(band, (o, c))| {
                let y0 = (band * BAND_ROWS) as i32;
                let y1 = y0 + (o.len() / cw) as i32;
                for q in &quads {
                    if q.y_end <= y0 || q.y_begin >= y1 {
                        continue;
                    }
                    q.draw(o, c, cw, y0, y1, linear);
                }
            });
        let custom_out = match custom {
            None => None,
            Some(CustomImage::U8(_)) => {
                Some(CustomOutput::U8(cust.iter().map(|&v| v as u8).collect()))
            }
            Some(CustomImage::U16(_)) => Some(CustomOutput::U16(cust)),
        };
        Ok((out, custom_out))
    }

    /// A BGRA colour image resampled into the depth camera
    /// (`k4a_transformation_color_image_to_depth_camera`): bilinear at the colour pixel each
    /// depth pixel's point lands on, with a texture unit's 8-bit position and level arithmetic;
    /// (0, 0, 0, 0) where there is no depth or it lands outside the pixel centres,
    /// and a valid black becomes (1, 0, 0, 0) so it stays distinguishable.
    pub fn color_to_depth(&self, depth_mm: &[u16], bgra: &[u8]) -> Result<Vec<u8>, GeometryError> {
        let (dc, cc) = self.both_cameras()?;
        let (dw, dh) = (dc.width as usize, dc.height as usize);
        let (cw, ch) = (cc.width as usize, cc.height as usize);
        check_len("depth image", dw * dh, depth_mm.len())?;
        check_len("BGRA colour image", cw * ch * 4, bgra.len())?;
        let table = self.xy_table(Sensor::Depth)?;
        let mut out = vec![0u8; dw * dh * 4];
        out.par_chunks_mut(dw * 4).enumerate().for_each(|(row, o)| {
            for (k, px) in o.chunks_exact_mut(4).enumerate() {
                let i = row * dw + k;
                let v = self.vertex(table, cc, i, depth_mm[i]);
                if !v.valid {
                    continue;
                }
                let [u, w] = v.uv;
                if !(0.0..=(cw - 1) as f32).contains(&u) || !(0.0..=(ch - 1) as f32).contains(&w) {
                    continue;
                }
                // Sampled as a texture unit does: the position in 1/256 texel steps, and each
                // of the three linear steps rounded to a whole level; the last row and column
                // repeat at the edge. This keeps the output equal to the SDK's on GPUs.
                let (sx, sy) = ((u * 256.0).round() as usize, (w * 256.0).round() as usize);
                let (x0, y0) = ((sx >> 8).min(cw - 1), (sy >> 8).min(ch - 1));
                let (x1, y1) = ((x0 + 1).min(cw - 1), (y0 + 1).min(ch - 1));
                let (wx, wy) = ((sx & 0xff) as i32, (sy & 0xff) as i32);
                let at = |x: usize, y: usize, c: usize| i32::from(bgra[(y * cw + x) * 4 + c]);
                for (c, p) in px.iter_mut().enumerate() {
                    let top = texel_lerp(at(x0, y0, c), at(x1, y0, c), wx);
                    let bottom = texel_lerp(at(x0, y1, c), at(x1, y1, c), wx);
                    *p = texel_lerp(top, bottom, wy) as u8;
                }
                if px == [0, 0, 0, 0] {
                    px[0] = 1;
                }
            }
        });
        Ok(out)
    }
}

/// Quads of one depth row that libk4a's engine handles together, from a column that is a
/// multiple of this.
const QUAD_GROUP: usize = 8;

/// Colour rows below the image within which a group's first quad still truncates the group
/// (see [`group_first_row_only`]). Fitted: with the production calibration the cut lies
/// between 4 and 12 rows; with the rational 6KT one libk4a already stops truncating between
/// −5 and 3 rows, so a few bottom-left groups there are cut here and drawn whole by libk4a.
const GROUP_BELOW_IMAGE_ROWS: f32 = 8.0;

/// Whether the group of quads starting at depth column `x0` is drawn only on the first colour
/// row of each quad's bounding box. `rows` holds the vertices of the two depth rows of the quad
/// row.
///
/// Observed of libk4a 1.4.2 (its GPU engine, rendered by Mesa's llvmpipe), not documented: in
/// each depth row, quads come in groups of eight from a column that is a multiple of eight.
/// When the group's first quad lies wholly left of colour column −1 (every corner that projects
/// has u ≤ −1) and its top is above row `height + 8`, every quad of the group fills only
/// the first colour row of its clamped bounding box; the rest of it stays empty. Only WFOV
/// modes put depth pixels that far left of the colour image, so the image's left edge shows a
/// strip of mostly empty rows up to about 55 colour columns wide (2×2 binned into 1536p);
/// elsewhere such a first quad would lie outside the image together with its whole group.
/// The pixels libk4a does fill in such a group sit within a pixel of the quads' true edges but
/// with slightly different interpolation weights, so a pixel on an edge shared with an
/// untruncated neighbour can change hands.
fn group_first_row_only(rows: &[Vertex], dw: usize, x0: usize, color_height: f32) -> bool {
    let corners = [rows[x0], rows[x0 + 1], rows[dw + x0 + 1], rows[dw + x0]];
    let mut projected = corners.iter().filter(|v| v.valid).peekable();
    if projected.peek().is_none() {
        return false;
    }
    let mut top = f32::INFINITY;
    for v in projected {
        if v.uv[0] > -1.0 {
            return false;
        }
        top = top.min(v.uv[1]);
    }
    top.ceil() < color_height + GROUP_BELOW_IMAGE_ROWS
}

/// One linear step between two 8-bit levels with a weight in 1/256 steps, rounded to the
/// nearest level.
fn texel_lerp(a: i32, b: i32, weight: i32) -> i32 {
    a + ((weight * (b - a) + 128) >> 8)
}

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), GeometryError> {
    if expected == got {
        Ok(())
    } else {
        Err(GeometryError::ImageSize {
            what,
            expected,
            got,
        })
    }
}

/// One 2×2 block of depth pixels in colour pixels: corners clockwise from top-left after the
/// SDK's substitution of one invalid corner, with their custom values.
struct Quad {
    v: [Vertex; 4],
    c: [u16; 4],
    x_begin: i32,
    x_end: i32,
    y_begin: i32,
    y_end: i32,
}

/// Signed double area of (a, b, c); negative when c is left of a→b.
fn area(a: [f32; 2], b: [f32; 2], c: [f32; 2]) -> f32 {
    (c[1] - a[1]) * (b[0] - a[0]) - (c[0] - a[0]) * (b[1] - a[1])
}

impl Quad {
    /// The block with corners top-left, top-right, bottom-right, bottom-left, or `None` when
    /// it is not drawn (two or more corners without a projection, or a depth edge).
    fn new(v: [Vertex; 4], c: [u16; 4], linear: bool, w: i32, h: i32) -> Option<Quad> {
        let [tl, tr, br, bl] = v;
        let [ctl, ctr, cbr, cbl] = c;
        let (mut vv, mut cc) = (v, c);
        let pick = |a: u16, b: u16, nearest: u16| {
            if linear {
                ((a as u32 + b as u32) / 2) as u16
            } else {
                nearest
            }
        };
        let mut invalid = 0;
        // One missing corner is replaced so the quad degenerates to the triangle of the other
        // three, keeping the clockwise winding.
        if !tl.valid {
            invalid += 1;
            vv[0] = Vertex::midpoint(&tr, &bl);
            cc[0] = pick(ctr, cbl, cbr);
        }
        if !tr.valid {
            invalid += 1;
            vv[1] = br;
            vv[2] = Vertex::midpoint(&br, &bl);
            cc[1] = cbr;
            cc[2] = pick(cbr, cbl, cbl);
        }
        if !br.valid {
            invalid += 1;
            vv[2] = Vertex::midpoint(&tr, &bl);
            cc[2] = pick(ctr, cbl, ctl);
        }
        if !bl.valid {
            invalid += 1;
            vv[3] = br;
            vv[2] = Vertex::midpoint(&tr, &br);
            cc[3] = cbr;
            cc[2] = pick(ctr, cbr, ctr);
        }
        if invalid >= 2 {
            return None;
        }
        let zs = vv.map(|x| x.z);
        let zmin = fmin(fmin(zs[0], zs[1]), fmin(zs[2], zs[3]));
        let zmax = fmax(fmax(zs[0], zs[1]), fmax(zs[2], zs[3]));
        if zmax - zmin > SKIP_INTERPOLATION_RATIO * zmin {
            return None;
        }
        let xs = vv.map(|x| x.uv[0]);
        let ys = vv.map(|x| x.uv[1]);
        let min4 = |a: [f32; 4]| fmin(fmin(a[0], a[1]), fmin(a[2], a[3]));
        let max4 = |a: [f32; 4]| fmax(fmax(a[0], a[1]), fmax(a[2], a[3]));
        let q = Quad {
            v: vv,
            c: cc,
            x_begin: (min4(xs).ceil() as i32).max(0),
            y_begin: (min4(ys).ceil() as i32).max(0),
            x_end: (max4(xs).ceil() as i32).min(w),
            y_end: (max4(ys).ceil() as i32).min(h),
        };
        (q.x_begin < q.x_end && q.y_begin < q.y_end).then_some(q)
    }

    /// Rasterises rows `y0..y1` of the colour image into `depth` (and `custom` unless empty),
    /// both holding exactly those rows.
    fn draw(
        &self,
        depth: &mut [u16],
        custom: &mut [u16],
        w: usize,
        y0: i32,
        y1: i32,
        linear: bool,
    ) {
        let [tl, tr, br, bl] = self.v;
        let [ctl, ctr, cbr, cbl] = self.c;
        for y in self.y_begin.max(y0)..self.y_end.min(y1) {
            let row = (y - y0) as usize * w;
            for x in self.x_begin..self.x_end {
                let p = [x as f32, y as f32];
                // The diagonal top-left → bottom-right splits the quad; each side is a triangle.
                let mid_area = area(tl.uv, br.uv, p);
                let ccw = mid_area >= 0.0;
                let (mid, cmid) = if ccw { (bl, cbl) } else { (tr, ctr) };
                let mut a_tl = area(mid.uv, tl.uv, p);
                let mut a_br = area(br.uv, mid.uv, p);
                let mut a_mid = mid_area;
                if !ccw {
                    a_tl = -a_tl;
                    a_br = -a_br;
                    a_mid = -a_mid;
                }
                // Top/left edges inclusive, bottom/right exclusive.
                if !(a_tl >= 0.0 && a_br > 0.0) {
                    continue;
                }
                let mut sum = a_tl + a_mid + a_br;
                if sum != 0.0 {
                    sum = 1.0 / sum;
                }
                let z = (a_tl * br.z + a_mid * mid.z + a_br * tl.z) * sum;
                let d = (z + 0.5) as u16;
                let k = row + x as usize;
                if depth[k] == 0 || d < depth[k] {
                    depth[k] = d;
                    if !custom.is_empty() {
                        let value = if linear {
                            (a_tl * cbr as f32 + a_mid * cmid as f32 + a_br * ctl as f32) * sum
                        } else if a_tl > a_mid {
                            if a_tl > a_br {
                                cbr as f32
                            } else {
                                ctl as f32
                            }
                        } else if a_mid > a_br {
                            cmid as f32
                        } else {
                            ctl as f32
                        };
                        custom[k] = (value + 0.5) as u16;
                    }
                }
            }
        }
    }
}

/// `min` as C's `a < b ? a : b` (NaN handling as the SDK's).
fn fmin(a: f32, b: f32) -> f32 {
    if a < b {
        a
    } else {
        b
    }
}

/// `max` as C's `a > b ? a : b`.
fn fmax(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}
