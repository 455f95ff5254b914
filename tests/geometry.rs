//! `freek4a::geometry` against Microsoft's libk4a 1.4.2 (`tests/oracle/geometry.py`): the
//! calibration functions on dense grids and the image transformations on synthetic scenes, with
//! the fixtures' two real calibrations (Brown–Conrady and rational 6KT), every depth mode and
//! every colour resolution. libk4a's image transformations need OpenGL 4.4: they run under Xvfb
//! with Mesa's software renderer.

use std::path::{Path, PathBuf};
use std::process::Command;

use freek4a::geometry::{
    Calibration, CustomImage, CustomOutput, Interpolation, Sensor, Transformation,
};
use freek4a::types::{ColorResolution, DepthMode};
use serde_json::{json, Value};

use crate::util::{self, Oracle, TempDir};

/// The fixtures' calibrations: a production unit (Brown–Conrady) and a pre-production one
/// (rational 6KT).
pub const CALIBRATIONS: [&str; 2] = [
    "calibration-001514394512-pretty.json",
    "calibration-eden-ev2-rational6kt.json",
];

fn cal_name(r: ColorResolution) -> &'static str {
    r.sdk_name().trim_start_matches("K4A_COLOR_RESOLUTION_")
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn write_f32(path: &Path, v: &[f32]) {
    let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, b).unwrap();
}

fn write_u16(path: &Path, v: &[u16]) {
    let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, b).unwrap();
}

fn read_u16(path: &Path) -> Vec<u16> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// A small deterministic hash for test patterns.
pub fn hash(i: u64) -> u64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 29)
}

/// A synthetic depth scene in a `w`×`h` depth image (mm): a slanted back wall, a box in front,
/// a sphere, a floor, a hole of zeros and sparse dropouts, with ±2 mm of noise.
pub fn scene_depth(w: usize, h: usize) -> Vec<u16> {
    let mut d = vec![0u16; w * h];
    for y in 0..h {
        for x in 0..w {
            let (u, v) = (x as f32 / w as f32, y as f32 / h as f32);
            let mut z = 2600.0 + 900.0 * (u - 0.5) + 300.0 * (v - 0.5);
            if v > 0.75 {
                z = z.min(900.0 / (v - 0.6));
            }
            if (0.2..0.45).contains(&u) && (0.3..0.6).contains(&v) {
                z = 1100.0 + 200.0 * (u - 0.2);
            }
            let (dx, dy) = (u - 0.7, v - 0.4);
            let r2 = dx * dx + dy * dy;
            if r2 < 0.02 {
                z = z.min(1500.0 - 3000.0 * (0.02 - r2).sqrt());
            }
            let i = (y * w + x) as u64;
            let noise = (hash(i) % 5) as f32 - 2.0;
            let hole = (0.55..0.62).contains(&u) && (0.1..0.2).contains(&v);
            let dropout = hash(i ^ 0xABCD).is_multiple_of(97);
            d[y * w + x] = if hole || dropout {
                0
            } else {
                (z + noise) as u16
            };
        }
    }
    d
}

/// A 16-bit "IR" image for a depth image: a smooth field with texture.
pub fn scene_ir(w: usize, h: usize) -> Vec<u16> {
    (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            (200 + (x * 3 + y * 2) % 900 + (hash(i as u64) % 50) as usize) as u16
        })
        .collect()
}

/// A BGRA colour image with gradients and texture.
pub fn scene_bgra(w: usize, h: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(w * h * 4);
    for y in 0..h {
        for x in 0..w {
            let t = hash((y * w + x) as u64);
            out.extend_from_slice(&[
                (x * 255 / w) as u8,
                (y * 255 / h) as u8,
                ((x / 7 + y / 5) % 256) as u8 ^ (t as u8 & 0x0F),
                255,
            ]);
        }
    }
    out
}

/// Points of a grid over a `w`×`h` image (with a 10 % margin outside it) at fractional
/// positions, each with a depth (some 0).
fn grid_2d(w: i32, h: i32, nx: usize, ny: usize, seed: u64) -> Vec<f32> {
    let mut v = Vec::with_capacity(nx * ny * 3);
    for j in 0..ny {
        for i in 0..nx {
            let k = (j * nx + i) as u64 + seed * 1_000_003;
            let fu = (i as f32 + (hash(k) % 1000) as f32 / 1000.0) / nx as f32;
            let fv = (j as f32 + (hash(k + 7) % 1000) as f32 / 1000.0) / ny as f32;
            let u = -0.1 * w as f32 + 1.2 * w as f32 * fu;
            let vv = -0.1 * h as f32 + 1.2 * h as f32 * fv;
            let d = if hash(k + 3).is_multiple_of(41) {
                0.0
            } else {
                250.0 + (hash(k + 5) % 6000) as f32 + 0.25 * (hash(k + 9) % 4) as f32
            };
            v.extend_from_slice(&[u, vv, d]);
        }
    }
    v
}

/// 3D points (mm) spread over a wide cone in front of (and some behind) a sensor.
fn grid_3d(n: usize, seed: u64) -> Vec<f32> {
    let mut v = Vec::with_capacity(n * 3);
    for i in 0..n {
        let k = i as u64 + seed * 7_777_777;
        let z = if hash(k).is_multiple_of(53) {
            -100.0
        } else {
            200.0 + (hash(k + 1) % 6000) as f32
        };
        let ax = ((hash(k + 2) % 20001) as f32 / 10000.0 - 1.0) * 1.6;
        let ay = ((hash(k + 3) % 20001) as f32 / 10000.0 - 1.0) * 1.4;
        v.extend_from_slice(&[ax * z, ay * z, z]);
    }
    v
}

/// Runs `tests/oracle/geometry.py` on `spec`; under `xvfb-run` when `gl`.
fn run_oracle(o: &Oracle, spec: &Value, dir: &TempDir, gl: bool) -> Value {
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let script = o.scripts.join("geometry.py");
    let mut cmd = if gl {
        let mut c = Command::new("xvfb-run");
        c.args(["-a", "-s", "-screen 0 640x480x24"]).arg(&o.python);
        c.env("LIBGL_ALWAYS_SOFTWARE", "1");
        c
    } else {
        Command::new(&o.python)
    };
    let out = cmd
        .arg(&script)
        .arg(&spec_path)
        .output()
        .expect("run geometry.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "geometry.py printed no JSON ({}):\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert_eq!(v["ok"], json!(true), "geometry.py failed: {v:#}");
    v
}

/// Whether `xvfb-run` is there (libk4a's image transformations need an X server for OpenGL).
pub fn have_xvfb() -> bool {
    match Command::new("sh")
        .args(["-c", "command -v xvfb-run"])
        .output()
    {
        Ok(o) if o.status.success() => true,
        _ => {
            util::skip("xvfb-run is not installed (apt: xvfb, xauth, libgl1-mesa-dri)");
            false
        }
    }
}

fn ours(
    cal: &Calibration,
    kind: &str,
    src: Sensor,
    dst: Sensor,
    input: &[f32],
) -> Vec<(Vec<f32>, bool)> {
    input
        .chunks_exact(3)
        .map(|q| match kind {
            "2d_to_3d" => match cal.convert_2d_to_3d([q[0], q[1]], q[2], src, dst).unwrap() {
                Some(p) => (p.to_vec(), true),
                None => (vec![], false),
            },
            "3d_to_2d" => match cal.convert_3d_to_2d([q[0], q[1], q[2]], src, dst).unwrap() {
                Some(p) => (p.to_vec(), true),
                None => (vec![], false),
            },
            _ => match cal.convert_2d_to_2d([q[0], q[1]], q[2], src, dst).unwrap() {
                Some(p) => (p.to_vec(), true),
                None => (vec![], false),
            },
        })
        .collect()
}

/// Compares our results with libk4a's (`stride` floats per point, the last one the flag).
/// Returns (points, valid points, worst difference).
fn compare_points(
    what: &str,
    ours: &[(Vec<f32>, bool)],
    theirs: &[f32],
    stride: usize,
    tol: f32,
) -> (usize, usize, f32) {
    assert_eq!(ours.len() * stride, theirs.len(), "{what}: point count");
    let mut worst = 0.0f32;
    let mut valid = 0;
    for (i, ((v, ok), t)) in ours.iter().zip(theirs.chunks_exact(stride)).enumerate() {
        let flag = t[stride - 1];
        assert!(flag >= 0.0, "{what}: libk4a failed the call at point {i}");
        assert_eq!(
            *ok,
            flag == 1.0,
            "{what}: valid flag differs at point {i}: ours {v:?}, libk4a {t:?}"
        );
        if *ok {
            valid += 1;
            for (a, b) in v.iter().zip(t) {
                let d = (a - b).abs();
                worst = worst.max(d);
                assert!(
                    d <= tol,
                    "{what}: point {i} ours {v:?} libk4a {t:?} differ by {d}"
                );
            }
        }
    }
    (ours.len(), valid, worst)
}

#[test]
fn calibration_functions_match_libk4a() {
    let _heavy = crate::util::heavy_test_lock();
    let Some(o) = Oracle::get() else { return };
    let dir = TempDir::new("geometry-points");
    const DEPTH: Sensor = Sensor::Depth;
    const COLOR: Sensor = Sensor::Color;
    // (function, source, target, floats per output point)
    let ops: [(&str, Sensor, Sensor, usize); 12] = [
        ("2d_to_3d", DEPTH, COLOR, 4),
        ("2d_to_3d", COLOR, DEPTH, 4),
        ("2d_to_3d", DEPTH, DEPTH, 4),
        ("2d_to_3d", COLOR, COLOR, 4),
        ("2d_to_3d", DEPTH, Sensor::Gyro, 4),
        ("2d_to_3d", COLOR, Sensor::Accel, 4),
        ("3d_to_2d", DEPTH, COLOR, 3),
        ("3d_to_2d", COLOR, DEPTH, 3),
        ("3d_to_2d", Sensor::Gyro, DEPTH, 3),
        ("3d_to_2d", Sensor::Accel, COLOR, 3),
        ("2d_to_2d", DEPTH, COLOR, 3),
        ("2d_to_2d", COLOR, DEPTH, 3),
    ];
    let mut summary = Vec::new();
    for cal_file in CALIBRATIONS {
        let json = std::fs::read(util::fixture(cal_file)).unwrap();
        let mut cases = Vec::new();
        let mut expect = Vec::new();
        for (di, &dm) in DepthMode::ON.iter().enumerate() {
            for (ci, &cr) in ColorResolution::ON.iter().enumerate() {
                let cal = Calibration::from_json(&json, dm, cr).unwrap();
                let tag = format!("{}-{}-{}", cal_file.len(), dm.name(), cal_name(cr));
                // Dense grids on the diagonal of modes, lighter ones on the other pairs.
                let dense = di == ci % 5;
                let (nx, ny, n3) = if dense {
                    (160, 120, 19200)
                } else {
                    (48, 36, 1728)
                };
                let mut case_ops =
                    vec![json!({"op": "calibration", "out": dir.join(&format!("{tag}-cal"))})];
                for (k, &(kind, src, dst, stride)) in ops.iter().enumerate() {
                    let input = if kind == "3d_to_2d" {
                        grid_3d(n3, k as u64)
                    } else {
                        let cam = cal.camera(src).unwrap();
                        grid_2d(cam.width, cam.height, nx, ny, k as u64)
                    };
                    let inp = dir.join(&format!("{tag}-{k}-in"));
                    let out = dir.join(&format!("{tag}-{k}-out"));
                    write_f32(&inp, &input);
                    case_ops.push(
                        json!({"op": kind, "source": src as i32, "target": dst as i32,
                        "in": inp, "out": out}),
                    );
                    expect.push((
                        format!(
                            "{cal_file} {} {} {kind} {src:?}->{dst:?}",
                            dm.name(),
                            cal_name(cr)
                        ),
                        ours(&cal, kind, src, dst, &input),
                        out,
                        stride,
                    ));
                }
                // Colour pixel → depth pixel by epipolar search, on the synthetic scene.
                let dcam = cal.camera(DEPTH).unwrap();
                let ccam = cal.camera(COLOR).unwrap();
                let depth = scene_depth(dcam.width as usize, dcam.height as usize);
                let dpath = dir.join(&format!("{tag}-depth"));
                write_u16(&dpath, &depth);
                let g = grid_2d(ccam.width, ccam.height, 24, 18, 99);
                let pts: Vec<f32> = g.chunks_exact(3).flat_map(|q| [q[0], q[1]]).collect();
                let inp = dir.join(&format!("{tag}-c2d-in"));
                let out = dir.join(&format!("{tag}-c2d-out"));
                write_f32(&inp, &pts);
                case_ops.push(
                    json!({"op": "color_2d_to_depth_2d", "in": inp, "depth": dpath, "out": out}),
                );
                let mine: Vec<(Vec<f32>, bool)> = pts
                    .chunks_exact(2)
                    .map(|q| match cal.color_2d_to_depth_2d([q[0], q[1]], &depth) {
                        Ok(Some(p)) => (p.to_vec(), true),
                        Ok(None) => (vec![], false),
                        Err(e) => panic!("color_2d_to_depth_2d: {e}"),
                    })
                    .collect();
                expect.push((
                    format!(
                        "{cal_file} {} {} color_2d_to_depth_2d",
                        dm.name(),
                        cal_name(cr)
                    ),
                    mine,
                    out,
                    3,
                ));
                cases.push(json!({"depth_mode": dm.name(), "color_resolution": cal_name(cr), "ops": case_ops}));
            }
        }
        let spec = json!({"calibration": util::fixture(cal_file), "cases": cases});
        run_oracle(o, &spec, &dir, false);
        let (mut n, mut valid, mut worst) = (0, 0, 0.0f32);
        for (what, mine, out, stride) in &expect {
            let theirs = f32s(&std::fs::read(out).unwrap());
            let (a, b, w) = compare_points(what, mine, &theirs, *stride, 1e-3);
            n += a;
            valid += b;
            worst = worst.max(w);
        }
        summary.push(format!(
            "{cal_file}: {n} points, {valid} valid, same flags, worst difference {worst:e}"
        ));
    }
    for s in &summary {
        eprintln!("{s}");
    }
}

/// The per-mode intrinsics equal libk4a's `k4a_calibration_t` to the bit, for every mode.
#[test]
fn mode_intrinsics_match_libk4a() {
    let Some(o) = Oracle::get() else { return };
    let dir = TempDir::new("geometry-intrinsics");
    for cal_file in CALIBRATIONS {
        let json = std::fs::read(util::fixture(cal_file)).unwrap();
        let raw = freek4a::protocol::calibration::Calibration::from_json(&json).unwrap();
        let mut cases = Vec::new();
        let mut expect = Vec::new();
        for &dm in &DepthMode::ON {
            for &cr in &ColorResolution::ON {
                let out = dir.join(&format!("{}-{}-cal", dm.name(), cal_name(cr)));
                cases.push(
                    json!({"depth_mode": dm.name(), "color_resolution": cal_name(cr),
                    "ops": [{"op": "calibration", "out": out}]}),
                );
                expect.push((dm, cr, out));
            }
        }
        run_oracle(
            o,
            &json!({"calibration": util::fixture(cal_file), "cases": cases}),
            &dir,
            false,
        );
        for (dm, cr, out) in expect {
            let b = std::fs::read(&out).unwrap();
            assert_eq!(b.len(), 1032);
            let d = raw.depth.for_depth_mode(dm).unwrap();
            let c = raw.color.for_color_resolution(cr).unwrap();
            // Model, count, the 14 parameters, size and metric radius; libk4a leaves the 15th
            // slot uninitialised when the JSON has 14.
            for (off, cam, what) in [(0, d.encode(), "depth"), (128, c.encode(), "colour")] {
                let bytes = |r: std::ops::Range<usize>| {
                    (b[off + r.start..off + r.end].to_vec(), cam[r].to_vec())
                };
                for r in [48..112, 116..128] {
                    let (theirs, mine) = bytes(r);
                    assert_eq!(theirs, mine, "{cal_file} {dm:?} {cr:?} {what} intrinsics");
                }
            }
            let cal = Calibration::from_raw(&raw, dm, cr).unwrap();
            let ex = f32s(&b[256..256 + 16 * 48]);
            for s in 0..4 {
                for t in 0..4 {
                    let e = &cal.extrinsics[s][t];
                    let theirs = &ex[(s * 4 + t) * 12..(s * 4 + t + 1) * 12];
                    let mine: Vec<f32> = e
                        .rotation
                        .iter()
                        .chain(&e.translation_mm)
                        .copied()
                        .collect();
                    for (a, b) in mine.iter().zip(theirs) {
                        assert!(
                            (a - b).abs() <= 1e-5,
                            "{cal_file} extrinsics[{s}][{t}]: {mine:?} vs {theirs:?}"
                        );
                    }
                }
            }
        }
    }
}

/// The vectorised point cloud equals the plain per-pixel formula on the xy table (x/z and y/z
/// times depth rounded half to even and saturated to i16, depth wrapping above 32767 mm,
/// (0, 0, 0) where there is no ray) for every depth mode and the colour camera, with depths
/// from 0 to 65535 so the saturating and wrapping cases occur. No oracle needed: libk4a's
/// own point cloud is compared in `image_transformations_match_libk4a`.
#[test]
fn point_cloud_matches_per_pixel_formula() {
    let json = std::fs::read(util::fixture(CALIBRATIONS[0])).unwrap();
    for dm in [
        DepthMode::Nfov2x2Binned,
        DepthMode::NfovUnbinned,
        DepthMode::Wfov2x2Binned,
        DepthMode::WfovUnbinned,
    ] {
        let t =
            Transformation::new(Calibration::from_json(&json, dm, ColorResolution::R720p).unwrap());
        for camera in [Sensor::Depth, Sensor::Color] {
            let xy = t.xy_table(camera).unwrap().clone();
            let n = xy.width * xy.height;
            let depth: Vec<u16> = (0..n)
                .map(|i| match hash(i as u64) % 8 {
                    0 => 0,
                    1 => 65535 - (hash(i as u64 ^ 7) % 40_000) as u16,
                    _ => (hash(i as u64 ^ 3) % 12_000) as u16,
                })
                .collect();
            let got = t.depth_image_to_point_cloud(&depth, camera).unwrap();
            let mut into = vec![7i16; n * 3];
            t.depth_image_to_point_cloud_into(&depth, camera, &mut into)
                .unwrap();
            assert_eq!(got, into, "{dm:?} {camera:?}: _into differs");
            let coordinate =
                |ray: f32, z: f32| (ray * z).round_ties_even().clamp(-32768.0, 32767.0) as i16;
            for i in 0..n {
                let (x, y, d) = (xy.x[i], xy.y[i], depth[i]);
                let want = if x.is_nan() {
                    [0, 0, 0]
                } else {
                    [coordinate(x, d as f32), coordinate(y, d as f32), d as i16]
                };
                assert_eq!(
                    got[i * 3..i * 3 + 3],
                    want,
                    "{dm:?} {camera:?} pixel {i} depth {d}"
                );
            }
        }
    }
}

/// Pixels of two images: share equal, and the worst difference of the others.
fn image_diff(a: &[u16], b: &[u16]) -> (f64, u32, usize) {
    assert_eq!(a.len(), b.len());
    let mut equal = 0usize;
    let mut worst = 0u32;
    for (x, y) in a.iter().zip(b) {
        if x == y {
            equal += 1;
        } else {
            worst = worst.max((*x as i32 - *y as i32).unsigned_abs());
        }
    }
    (equal as f64 / a.len() as f64, worst, a.len() - equal)
}

struct ImageCase {
    what: String,
    ours: Vec<u16>,
    out: PathBuf,
    /// Bytes per value in libk4a's output (1 or 2).
    bytes: usize,
}

/// NFOV unbinned depth into 720p colour: ≥ 99.9 % of depth and custom pixels equal to libk4a's
/// (the others within 1 mm, or one grey level with linear interpolation); colour into depth
/// likewise (see `judge_images`). The point cloud is compared too.
#[test]
fn image_transformations_match_libk4a() {
    let _heavy = crate::util::heavy_test_lock();
    compare_images(&[(DepthMode::NfovUnbinned, ColorResolution::R720p)]);
}

/// WFOV 2×2 binned depth into 1536p colour. Along the colour image's left edge libk4a (as
/// rendered here, by Mesa's llvmpipe) fills only one row per quad in groups of eight quads
/// whose first quad lies left of the image; `depth_to_color` reproduces that (see
/// `group_first_row_only` in src/geometry/transformation.rs). With the production calibration
/// every image case passes (depth 99.98 % equal, worst 1 mm). A known gap remains with the
/// rational 6KT calibration: 99.97 % equal, but a few hundred pixels in the bottom-left corner
/// that libk4a draws whole are cut to one row here. Kept runnable so the gap stays measured:
/// `cargo test --release --test tests geometry::image_transformations_wfov -- --ignored --nocapture`
#[test]
#[ignore = "known gap: rational 6KT calibration, bottom-left corner of WFOV depth in colour"]
fn image_transformations_wfov_binned_match_libk4a() {
    let _heavy = crate::util::heavy_test_lock();
    compare_images(&[(DepthMode::Wfov2x2Binned, ColorResolution::R1536p)]);
}

/// Every depth mode × colour resolution (24 pairs, both calibrations; about an hour with
/// libk4a on Mesa's software renderer). `FREEK4A_GEOMETRY_PAIRS=NFOV_2X2BINNED:1080P,...`
/// picks a subset.
/// `cargo test --release --test tests geometry::image_transformations_all_modes -- --ignored --nocapture`
#[test]
#[ignore = "about an hour: run explicitly"]
fn image_transformations_all_modes_match_libk4a() {
    let _heavy = crate::util::heavy_test_lock();
    let all: Vec<(DepthMode, ColorResolution)> = DepthMode::ON
        .into_iter()
        .filter(|dm| dm.has_depth())
        .flat_map(|dm| ColorResolution::ON.map(|cr| (dm, cr)))
        .collect();
    let pairs = match std::env::var("FREEK4A_GEOMETRY_PAIRS") {
        Ok(list) => list
            .split(',')
            .map(|p| {
                all.iter()
                    .copied()
                    .find(|&(dm, cr)| format!("{}:{}", dm.name(), cal_name(cr)) == p.trim())
                    .unwrap_or_else(|| panic!("FREEK4A_GEOMETRY_PAIRS: unknown pair {p:?}"))
            })
            .collect(),
        Err(_) => all,
    };
    compare_images(&pairs);
}

/// Runs every image transformation for `pairs` on both fixture calibrations, in libk4a (under
/// Xvfb, Mesa's software OpenGL; about a minute per pair) and here.
fn compare_images(pairs: &[(DepthMode, ColorResolution)]) {
    let Some(o) = Oracle::get() else { return };
    if !have_xvfb() {
        return;
    }
    let dir = TempDir::new("geometry-images");
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for cal_file in CALIBRATIONS {
        let json = std::fs::read(util::fixture(cal_file)).unwrap();
        let mut cases = Vec::new();
        let mut expect: Vec<ImageCase> = Vec::new();
        let mut clouds = Vec::new();
        // libk4a on Mesa's software renderer takes about a minute per mode pair: a sample of
        // pairs covering both field-of-view families and 16:9 and 4:3 colour.
        for &(dm, cr) in pairs {
            {
                let cal = Calibration::from_json(&json, dm, cr).unwrap();
                let t = Transformation::new(cal);
                let dcam = *t.calibration().camera(Sensor::Depth).unwrap();
                let ccam = *t.calibration().camera(Sensor::Color).unwrap();
                let (dw, dh) = (dcam.width as usize, dcam.height as usize);
                let (cw, ch) = (ccam.width as usize, ccam.height as usize);
                // The calibration in the names too: both calibrations share the directory.
                let tag = format!(
                    "{}-{}-{}",
                    cal_file.trim_end_matches(".json"),
                    dm.name(),
                    cal_name(cr)
                );
                let p = |s: &str| dir.join(&format!("{tag}-{s}"));
                let depth = scene_depth(dw, dh);
                let ir = scene_ir(dw, dh);
                let ir8: Vec<u8> = ir.iter().map(|&v| (v / 5) as u8).collect();
                let bgra = scene_bgra(cw, ch);
                write_u16(&p("depth"), &depth);
                write_u16(&p("ir16"), &ir);
                std::fs::write(p("ir8"), &ir8).unwrap();
                std::fs::write(p("bgra"), &bgra).unwrap();
                let mut ops = vec![
                    json!({"op": "point_cloud", "camera": 0, "depth": p("depth"), "out": p("pc")}),
                    json!({"op": "depth_to_color", "depth": p("depth"), "out": p("d2c")}),
                    json!({"op": "color_to_depth", "depth": p("depth"), "color": p("bgra"), "out": p("c2d")}),
                ];
                clouds.push((
                    format!("{tag} point cloud"),
                    t.depth_image_to_point_cloud(&depth, Sensor::Depth).unwrap(),
                    p("pc"),
                ));
                let d2c = t.depth_to_color(&depth).unwrap();
                expect.push(ImageCase {
                    what: format!("{tag} depth->colour"),
                    ours: d2c,
                    out: p("d2c"),
                    bytes: 2,
                });
                let c2d = t.color_to_depth(&depth, &bgra).unwrap();
                expect.push(ImageCase {
                    what: format!("{tag} colour->depth"),
                    ours: c2d.iter().map(|&v| v as u16).collect(),
                    out: p("c2d"),
                    bytes: 1,
                });
                for (bits, interp, invalid) in [
                    (16, Interpolation::Linear, 0u16),
                    (8, Interpolation::Nearest, 255),
                    (16, Interpolation::Nearest, 7),
                    (8, Interpolation::Linear, 0),
                ] {
                    let name = format!("custom{bits}-{interp:?}");
                    let custom = if bits == 8 {
                        CustomImage::U8(&ir8)
                    } else {
                        CustomImage::U16(&ir)
                    };
                    let (d, c) = t
                        .depth_to_color_custom(&depth, custom, interp, invalid)
                        .unwrap();
                    let c: Vec<u16> = match c {
                        CustomOutput::U8(v) => v.iter().map(|&x| x as u16).collect(),
                        CustomOutput::U16(v) => v,
                    };
                    ops.push(json!({"op": "custom", "depth": p("depth"), "custom": p(if bits == 8 { "ir8" } else { "ir16" }),
                        "bits": bits, "interpolation": if interp == Interpolation::Linear { 1 } else { 0 }, "invalid": invalid,
                        "out_depth": p(&format!("{name}-d")), "out_custom": p(&format!("{name}-c"))}));
                    expect.push(ImageCase {
                        what: format!("{tag} {name} depth"),
                        ours: d,
                        out: p(&format!("{name}-d")),
                        bytes: 2,
                    });
                    expect.push(ImageCase {
                        what: format!("{tag} {name} custom"),
                        ours: c,
                        out: p(&format!("{name}-c")),
                        bytes: bits / 8,
                    });
                }
                cases.push(
                    json!({"depth_mode": dm.name(), "color_resolution": cal_name(cr), "ops": ops}),
                );
            }
        }
        run_oracle(
            o,
            &json!({"calibration": util::fixture(cal_file), "cases": cases}),
            &dir,
            true,
        );
        for (what, mine, out) in &clouds {
            let theirs: Vec<i16> = std::fs::read(out)
                .unwrap()
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            assert_eq!(mine.len(), theirs.len(), "{what}");
            let worst = mine
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (*a as i32 - *b as i32).abs())
                .max()
                .unwrap_or(0);
            if worst > 1 {
                failures.push(format!("{what}: differs by up to {worst} mm"));
            }
            report.push(format!("{what}: worst {worst} mm"));
        }
        let mut image_failures = judge_images(&expect, &mut report);
        if !image_failures.is_empty() {
            // libk4a renders these on Mesa's software OpenGL, which now and then returns a
            // garbled image for one case that other runs render correctly (seen on a fresh CI
            // machine and here, a different case each time). Ours is a pure function of its
            // input, so a disagreement is only charged to us if libk4a gives the same answer
            // in two runs: libk4a runs up to twice more, and each case is judged on an output
            // two runs agree on (the last one if none do).
            let read_all = || -> Vec<Vec<u8>> {
                expect
                    .iter()
                    .map(|c| std::fs::read(&c.out).unwrap())
                    .collect()
            };
            let spec = json!({"calibration": util::fixture(cal_file), "cases": cases});
            let mut runs = vec![read_all()];
            let mut unsettled: Vec<usize> = (0..expect.len()).collect();
            while runs.len() < 3 && !unsettled.is_empty() {
                run_oracle(o, &spec, &dir, true);
                let latest = read_all();
                unsettled.retain(|&i| runs.iter().all(|r| r[i] != latest[i]));
                runs.push(latest);
            }
            for (i, c) in expect.iter().enumerate() {
                let outputs: Vec<&Vec<u8>> = runs.iter().map(|r| &r[i]).collect();
                let agreed = outputs
                    .iter()
                    .find(|x| outputs.iter().filter(|y| y == x).count() >= 2);
                let distinct = outputs
                    .iter()
                    .enumerate()
                    .filter(|(k, x)| !outputs[..*k].contains(x))
                    .count();
                if distinct > 1 {
                    report.push(format!(
                        "{}: libk4a gave {distinct} different outputs in {} runs on the same input; {}",
                        c.what,
                        runs.len(),
                        if agreed.is_some() {
                            "judged on the one two runs agree on"
                        } else {
                            "judged on the last"
                        }
                    ));
                }
                std::fs::write(&c.out, agreed.unwrap_or(outputs.last().unwrap())).unwrap();
            }
            image_failures = judge_images(&expect, &mut report);
        }
        failures.extend(image_failures);
    }
    for r in &report {
        eprintln!("{r}");
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Compares each image case with libk4a's output on disk: reports every case and returns the
/// ones outside the tolerances.
fn judge_images(expect: &[ImageCase], report: &mut Vec<String>) -> Vec<String> {
    let mut failures = Vec::new();
    for c in expect {
        let raw = std::fs::read(&c.out).unwrap();
        let theirs: Vec<u16> = if c.bytes == 2 {
            read_u16(&c.out)
        } else {
            raw.iter().map(|&v| v as u16).collect()
        };
        if std::env::var("FREEK4A_KEEP_TMP").is_ok_and(|v| v == "1") {
            // Ours beside libk4a's, for looking at the differences (kept with the directory).
            let mut path = c.out.clone().into_os_string();
            path.push(".ours");
            write_u16(Path::new(&path), &c.ours);
        }
        let (share, worst, n) = image_diff(&c.ours, &theirs);
        report.push(format!(
            "{}: {:.4} % equal, {n} differ, worst {worst}",
            c.what,
            share * 100.0
        ));
        // Nearest-neighbour custom values differ by more where the nearest corner is a tie
        // (a few pixels).
        let nearest = c.what.contains("Nearest custom");
        let min_share = 0.999;
        if share < min_share || (!nearest && worst > 1) {
            failures.push(format!(
                "{}: {:.4} % of pixels equal ({n} differ, worst {worst})",
                c.what,
                share * 100.0
            ));
        }
    }
    failures
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Our depth→colour at 2160p and point cloud at NFOV unbinned against libk4a's (GPU path on
/// Mesa's software renderer under Xvfb), on the same frames in one run, rounds interleaved.
/// Prints best and median per frame, the ratios, and ours on one core.
/// `cargo test --release --test tests geometry::speed -- --ignored --nocapture`
#[test]
#[ignore = "benchmark: run explicitly"]
fn speed() {
    let _heavy = crate::util::heavy_test_lock();
    let Some(o) = Oracle::get() else { return };
    if !have_xvfb() {
        return;
    }
    let dir = TempDir::new("geometry-speed");
    let json = std::fs::read(util::fixture(CALIBRATIONS[0])).unwrap();
    let (dm, cr) = (DepthMode::NfovUnbinned, ColorResolution::R2160p);
    let t = Transformation::new(Calibration::from_json(&json, dm, cr).unwrap());
    let depth = scene_depth(640, 576);
    write_u16(&dir.join("depth"), &depth);
    // libk4a's depth→colour at 2160p takes seconds a frame on Mesa's software renderer: fewer
    // of those.
    let (reps_d2c, reps_pc) = (3, 20);
    let spec = json!({"calibration": util::fixture(CALIBRATIONS[0]), "cases": [{
    "depth_mode": dm.name(), "color_resolution": cal_name(cr), "ops": [
        {"op": "depth_to_color", "depth": dir.join("depth"), "out": dir.join("d2c"), "repeat": reps_d2c},
        {"op": "point_cloud", "camera": 0, "depth": dir.join("depth"), "out": dir.join("pc"), "repeat": reps_pc},
    ]}]});
    // Tables are built once per engine on both sides, outside the timings; like libk4a's
    // (created before its timed call), our point-cloud output buffer is allocated once.
    t.depth_to_color(&depth).unwrap();
    let mut cloud = t.depth_image_to_point_cloud(&depth, Sensor::Depth).unwrap();
    let cloud = std::sync::Mutex::new(&mut cloud[..]);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let (mut k_d2c, mut k_pc, mut o_d2c, mut o_pc, mut s_d2c, mut s_pc) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let time = |f: &dyn Fn()| {
        let t0 = std::time::Instant::now();
        f();
        t0.elapsed().as_secs_f64()
    };
    for _round in 0..3 {
        let v = run_oracle(o, &spec, &dir, true);
        let ops = &v["cases"][0]["ops"];
        let secs = |i: usize| -> Vec<f64> {
            ops[i]["seconds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        };
        k_d2c.extend(secs(0));
        k_pc.extend(secs(1));
        let pc = || {
            let mut out = cloud.lock().unwrap();
            t.depth_image_to_point_cloud_into(&depth, Sensor::Depth, &mut out)
                .unwrap();
        };
        for _ in 0..reps_d2c {
            o_d2c.push(time(&|| {
                t.depth_to_color(&depth).unwrap();
            }));
            one.install(|| {
                s_d2c.push(time(&|| {
                    t.depth_to_color(&depth).unwrap();
                }));
            });
        }
        for _ in 0..reps_pc {
            o_pc.push(time(&pc));
            one.install(|| s_pc.push(time(&pc)));
        }
    }
    let best = |v: &[f64]| v.iter().cloned().fold(f64::MAX, f64::min);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("load average: {}", load.trim());
    for (name, k, ours, single) in [
        (
            "depth->colour NFOV_UNBINNED->2160P",
            &mut k_d2c,
            &mut o_d2c,
            &mut s_d2c,
        ),
        ("point cloud NFOV_UNBINNED", &mut k_pc, &mut o_pc, &mut s_pc),
    ] {
        let (kb, ob, sb) = (best(k), best(ours), best(single));
        let (km, om, sm) = (median(k), median(ours), median(single));
        eprintln!(
            "{name}: libk4a best {:.2} ms median {:.2} ms | ours (all cores) best {:.2} ms median {:.2} ms | ours one core best {:.2} ms median {:.2} ms | libk4a/ours: best {:.1}x median {:.1}x",
            kb * 1e3, km * 1e3, ob * 1e3, om * 1e3, sb * 1e3, sm * 1e3, kb / ob, km / om
        );
    }
}

/// The Python of the tools venv (`plyfile`), made by `.ci/run` (`FREEK4A_TOOLS_VENV`, default
/// `.venv-tools/`); `None` after [`util::skip`] when it is missing.
fn tools_python() -> Option<PathBuf> {
    let venv = std::env::var_os("FREEK4A_TOOLS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| util::repo_root().join(".venv-tools"));
    let py = venv.join("bin").join("python");
    let ok = Command::new(&py)
        .args(["-c", "import plyfile"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(py)
    } else {
        util::skip(&format!("{} with plyfile (made by .ci/run)", py.display()));
        None
    }
}

/// `freek4a extract --align color --ply --open3d` on the real recording: PLY files that
/// `plyfile` reads with the points of our point cloud, aligned depth as our transformation
/// gives it, and Open3D's dataset layout with its field names.
#[test]
fn extract_geometry_outputs() {
    let dir = TempDir::new("geometry-extract");
    let out = dir.join("out");
    let rec = util::fixture(util::REAL_RECORDING);
    let run = Command::new(util::bin_path("freek4a"))
        .arg("extract")
        .arg(&rec)
        .arg("-o")
        .arg(&out)
        .args(["--align", "color", "--ply", "--open3d"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "extract failed: {stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("1 aligned images, 1 PLY files, 1 Open3D frames"),
        "{stdout}"
    );

    // Our own numbers for the one capture.
    let mut pb = freek4a::playback::Playback::open(&rec).unwrap();
    let json = pb.calibration().unwrap().to_vec();
    let cap = pb.next_capture().unwrap().unwrap();
    let depth: Vec<u16> = cap
        .depth
        .as_ref()
        .unwrap()
        .data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let t = Transformation::new(
        Calibration::from_json(&json, DepthMode::NfovUnbinned, ColorResolution::R720p).unwrap(),
    );
    let cloud = t.depth_image_to_point_cloud(&depth, Sensor::Depth).unwrap();
    let points = cloud.chunks_exact(3).filter(|p| p[2] != 0).count();
    assert_eq!(
        points, 281_945,
        "non-zero depth pixels listed in the fixtures' README"
    );

    let names = |d: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(out.join(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("ply"), ["000000_800222.ply"]);
    assert_eq!(names("depth_in_color"), ["000000_800222.png"]);
    assert_eq!(
        names("open3d"),
        ["color", "config.json", "depth", "intrinsic.json"]
    );
    assert_eq!(names("open3d/color"), ["00000.jpg"]);
    assert_eq!(names("open3d/depth"), ["00000.png"]);

    // Aligned depth: a 16-bit PNG equal to our transformation.
    let expect = t.depth_to_color(&depth).unwrap();
    for f in [
        out.join("depth_in_color/000000_800222.png"),
        out.join("open3d/depth/00000.png"),
    ] {
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&f).unwrap()));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!(
            (info.width, info.height, info.bit_depth),
            (1280, 720, png::BitDepth::Sixteen)
        );
        let got: Vec<u16> = buf
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(got, expect, "{}", f.display());
    }
    assert_eq!(
        std::fs::read(out.join("open3d/color/00000.jpg")).unwrap(),
        cap.color.as_ref().unwrap().data,
        "Open3D colour frame is the recorded JPEG"
    );

    // Open3D's MKVMetadata (PinholeCameraIntrinsic + serial, modes, length) and its
    // reconstruction system's config keys.
    let intr: Value =
        serde_json::from_slice(&std::fs::read(out.join("open3d/intrinsic.json")).unwrap()).unwrap();
    let c = t.calibration().camera(Sensor::Color).unwrap();
    assert_eq!(intr["width"], json!(1280));
    assert_eq!(intr["height"], json!(720));
    let m: Vec<f64> = intr["intrinsic_matrix"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(m.len(), 9);
    assert_eq!(
        (m[0] as f32, m[4] as f32, m[6] as f32, m[7] as f32, m[8]),
        (c.fx, c.fy, c.cx, c.cy, 1.0),
        "column-major K"
    );
    assert_eq!(intr["serial_number"], json!("001514394512"));
    assert_eq!(intr["color_mode"], json!("MJPG_720P"));
    assert_eq!(intr["depth_mode"], json!("NFOV_UNBINNED"));
    assert_eq!(intr["stream_length_usec"], json!(463945));
    let config: Value =
        serde_json::from_slice(&std::fs::read(out.join("open3d/config.json")).unwrap()).unwrap();
    let abs = std::path::absolute(out.join("open3d")).unwrap();
    assert_eq!(config["path_dataset"], json!(abs));
    assert_eq!(config["path_intrinsic"], json!(abs.join("intrinsic.json")));

    // The PLY in a PLY reader: vertex count, properties, and the points themselves (metres).
    let Some(py) = tools_python() else { return };
    let script = r#"
import json, sys
from plyfile import PlyData
d = PlyData.read(sys.argv[1])
v = d['vertex']
print(json.dumps({"count": v.count, "props": [p.name for p in v.properties],
                  "text": d.text, "comments": d.comments,
                  "first": [float(v['x'][0]), float(v['y'][0]), float(v['z'][0])],
                  "rgb0": [int(v['red'][0]), int(v['green'][0]), int(v['blue'][0])],
                  "sum_z": float(v['z'].astype('float64').sum())}))
"#;
    let o = Command::new(&py)
        .arg("-c")
        .arg(script)
        .arg(out.join("ply/000000_800222.ply"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "plyfile: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["count"], json!(points));
    assert_eq!(v["props"], json!(["x", "y", "z", "red", "green", "blue"]));
    assert_eq!(v["text"], json!(false), "binary PLY");
    assert!(v["comments"].to_string().contains("metres"), "{v}");
    let p0 = cloud.chunks_exact(3).find(|p| p[2] != 0).unwrap();
    let first: Vec<f64> = v["first"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    for k in 0..3 {
        assert!(
            (first[k] - p0[k] as f64 / 1000.0).abs() < 1e-6,
            "{first:?} vs {p0:?}"
        );
    }
    let sum_z: f64 = cloud
        .chunks_exact(3)
        .map(|p| p[2] as u16 as f64 / 1000.0)
        .sum();
    assert!((v["sum_z"].as_f64().unwrap() - sum_z).abs() < 1e-2 * sum_z.max(1.0) * 1e-3);
}
