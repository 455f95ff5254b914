//! Integration tests: headless_gl. Microsoft's engines (`libdepthengine.so.2.0` from
//! pyk4a-bundle) on an OpenGL context without a display, through `libfreek4a_headless_gl.so`,
//! against the same engines on an X server (Xvfb with Mesa's GLX).
//!
//! The engine library, the headless library and the GL stack are process-wide and never
//! unloaded, so every case runs in a child process: this test binary again, filtered to the
//! ignored `child` test, with the case in `FREEK4A_TEST_GL_CHILD` and its own `DISPLAY`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use freek4a::depthengine::abi::Extrinsics;
use freek4a::depthengine::{
    headless, CameraCalibration, DepthEngine, DepthXyTables, GlChoice, GlPath, TransformCalibration,
};
use freek4a::types::DepthMode;
use serde_json::{json, Value};

use crate::util;

const CHILD_ENV: &str = "FREEK4A_TEST_GL_CHILD";

/// The headless library cargo built for this test run (see [`util::built_library`]).
pub fn headless_library() -> PathBuf {
    util::built_library(headless::HEADLESS_GL_FILE_NAME)
}

/// An Xvfb server on a free display number, killed on drop.
pub struct Xvfb {
    child: Child,
    /// `:N`.
    pub display: String,
}

impl Xvfb {
    /// Starts Xvfb (with its GLX extension, Mesa's) or says why not (skip). Xvfb picks a free
    /// display itself (`-displayfd`), which also copes with stale locks left by servers that
    /// were killed.
    pub fn start() -> Option<Xvfb> {
        if Command::new("Xvfb").arg("-help").output().is_err() {
            util::skip("Xvfb is not installed (apt-get install xvfb)");
            return None;
        }
        let mut child = match Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "640x480x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                util::skip(&format!("could not start Xvfb: {e}"));
                return None;
            }
        };
        // Xvfb writes the display number once it listens, and closes the pipe if it fails.
        let mut line = String::new();
        let read = child
            .stdout
            .take()
            .map(|out| std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line));
        match (read, line.trim().parse::<u32>()) {
            (Some(Ok(_)), Ok(n)) => Some(Xvfb {
                child,
                display: format!(":{n}"),
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                util::skip("Xvfb did not report a display (-displayfd)");
                None
            }
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // SIGTERM lets the server remove its socket and lock; SIGKILL only if it hangs.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a child process is asked to set up OpenGL.
#[derive(Clone, Copy, Debug)]
enum Setup {
    /// No headless library at all: the engine on its own, as with the SDK.
    EngineOnly,
    /// `headless::prepare(Auto)`: X if usable, else headless.
    Auto,
    /// `headless::prepare(Headless)`: `--headless-gl`.
    Forced,
}

/// Runs one case in a child process and returns its JSON report.
fn run_child(case: &str, setup: Setup, dir: &Path, display: Option<&str>) -> Value {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        "headless_gl::child",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(
        CHILD_ENV,
        json!({"case": case, "setup": format!("{setup:?}"), "dir": dir}).to_string(),
    )
    .env(
        headless::HEADLESS_GL_LIBRARY_ENV,
        headless_library().as_os_str(),
    )
    .env_remove("FREEK4A_HEADLESS_GL")
    .env_remove("LD_PRELOAD");
    match display {
        Some(d) => cmd.env("DISPLAY", d),
        None => cmd.env_remove("DISPLAY"),
    };
    let out = cmd.output().expect("run child test process");
    let report_path = dir.join(format!(
        "report-{case}-{setup:?}-{}.json",
        display.is_some()
    ));
    let text = std::fs::read_to_string(&report_path).unwrap_or_else(|e| {
        panic!(
            "child {case}/{setup:?} wrote no report ({e}); status {}; stderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(&text).expect("child report is JSON")
}

/// Libraries mapped in this process whose file name starts with `prefix`.
fn mapped(prefix: &str) -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .any(|p| {
            Path::new(p)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
}

fn read_f32s(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn camera(bytes: &[u8]) -> CameraCalibration {
    let f = |o: usize| f32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let i = |o: usize| i32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let mut c = CameraCalibration {
        intrinsics_type: i(48),
        parameter_count: i(52) as u32,
        resolution_width: i(116),
        resolution_height: i(120),
        metric_radius: f(124),
        ..CameraCalibration::default()
    };
    for k in 0..9 {
        c.rotation[k] = f(4 * k);
    }
    for k in 0..3 {
        c.translation_mm[k] = f(36 + 4 * k);
    }
    for k in 0..15 {
        c.parameters[k] = f(56 + 4 * k);
    }
    c
}

fn extrinsics(bytes: &[u8]) -> Extrinsics {
    let f = |o: usize| f32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let mut e = Extrinsics::default();
    for k in 0..9 {
        e.rotation[k] = f(4 * k);
    }
    for k in 0..3 {
        e.translation_mm[k] = f(36 + 4 * k);
    }
    e
}

/// What the oracle's libk4a makes for the transform engine from the real recording's
/// calibration: the engine calibration, the depth camera's xy tables and the first depth
/// image, in `dir`.
fn transform_inputs(dir: &Path) -> Option<Value> {
    let oracle = util::Oracle::get()?;
    let out = Command::new(&oracle.python)
        .arg(oracle.scripts.join("transform.py"))
        .arg(util::fixture(util::REAL_RECORDING))
        .arg(dir)
        .env_remove("LD_PRELOAD")
        .output()
        .expect("run transform.py");
    assert!(
        out.status.success(),
        "transform.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("transform.py prints JSON"))
}

// ------------------------------------------------------------------------------------------
// The child side.

fn child_setup(setup: &str) -> Result<Value, String> {
    let choice = match setup {
        "EngineOnly" => return Ok(json!({"path": "engine only"})),
        "Auto" => GlChoice::Auto,
        _ => GlChoice::Headless,
    };
    match headless::prepare(choice, None).map_err(|e| e.to_string())? {
        GlPath::X { display } => Ok(json!({"path": "x", "display": display})),
        GlPath::Headless(info) => Ok(json!({
            "path": "headless",
            "egl_vendor": info.egl_vendor,
            "gl_renderer": info.gl_renderer,
            "gl_version": info.gl_version,
            "platform": info.platform,
        })),
    }
}

fn child_transform(dir: &Path, report: &mut Value) -> Result<(), String> {
    let oracle = util::Oracle::get().ok_or("no oracle")?;
    let engine = DepthEngine::load(Some(&oracle.libdepthengine)).map_err(|e| e.to_string())?;
    let cal = std::fs::read(dir.join("calibration.bin")).map_err(|e| e.to_string())?;
    let calibration = TransformCalibration {
        depth_camera: camera(&cal[0..128]),
        color_camera: camera(&cal[128..256]),
        depth_to_color: extrinsics(&cal[256..304]),
        color_to_depth: extrinsics(&cal[304..352]),
    };
    let (w, h) = (
        calibration.depth_camera.resolution_width as usize,
        calibration.depth_camera.resolution_height as usize,
    );
    let both = read_f32s(&dir.join("xy_tables.bin"));
    let tables = DepthXyTables {
        width: w,
        height: h,
        x: both[..w * h].to_vec(),
        y: both[w * h..].to_vec(),
    };
    let depth = std::fs::read(dir.join("depth.bin")).map_err(|e| e.to_string())?;
    let mut te = engine
        .create_transform(&calibration, &tables)
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let out = te.depth_to_color(&depth).map_err(|e| e.to_string())?;
    report["process_ms"] = json!(start.elapsed().as_secs_f64() * 1e3);
    // A second frame through the same context must give the same bytes.
    let again = te.depth_to_color(&depth).map_err(|e| e.to_string())?;
    report["repeatable"] = json!(again == out);
    drop(te);
    let name = format!("out-{}.bin", report["path"].as_str().unwrap_or("unknown"));
    std::fs::write(dir.join(&name), &out).map_err(|e| e.to_string())?;
    report["output"] = json!(name);
    Ok(())
}

fn child_depth(report: &mut Value) -> Result<(), String> {
    let oracle = util::Oracle::get().ok_or("no oracle")?;
    let engine = DepthEngine::load(Some(&oracle.libdepthengine)).map_err(|e| e.to_string())?;
    let block = crate::depthengine::cal_block();
    let camera = crate::depthengine::camera();
    match engine.create_context(DepthMode::NfovUnbinned, &block, camera.as_ref()) {
        Ok(_) => report["engine_result"] = json!(0),
        Err(e) => {
            report["engine_result"] = json!(e.engine_result().map(|r| r.code()));
            report["engine_error"] = json!(e.to_string());
        }
    }
    Ok(())
}

#[test]
#[ignore = "runs only as a child process of the other headless_gl tests"]
fn child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let spec: Value = serde_json::from_str(&spec).unwrap();
    let case = spec["case"].as_str().unwrap();
    let setup = spec["setup"].as_str().unwrap();
    let dir = PathBuf::from(spec["dir"].as_str().unwrap());
    let has_display = std::env::var_os("DISPLAY").is_some();
    let mut report = match child_setup(setup) {
        Ok(v) => v,
        Err(e) => json!({"path": "none", "setup_error": e}),
    };
    if report.get("setup_error").is_none() {
        let result = match case {
            "transform" => child_transform(&dir, &mut report),
            _ => child_depth(&mut report),
        };
        if let Err(e) = result {
            report["error"] = json!(e);
        }
    }
    report["stats"] = json!(headless::stats());
    report["glx_vendor_library_mapped"] = json!(mapped("libGLX_mesa"));
    report["egl_vendor_library_mapped"] = json!(mapped("libEGL_mesa"));
    std::fs::write(
        dir.join(format!("report-{case}-{setup}-{has_display}.json")),
        report.to_string(),
    )
    .unwrap();
}

// ------------------------------------------------------------------------------------------
// The tests.

fn work_dir() -> &'static Option<(util::TempDir, Value)> {
    static DIR: OnceLock<Option<(util::TempDir, Value)>> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = util::TempDir::new("headless-gl");
        let summary = transform_inputs(dir.path())?;
        Some((dir, summary))
    })
}

fn depth16(data: &[u8]) -> impl Iterator<Item = u16> + '_ {
    data.chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
}

#[test]
fn transform_engine_without_display_equals_xvfb_and_libk4a() {
    let _heavy = crate::util::heavy_test_lock();
    let Some((dir, summary)) = work_dir() else {
        return;
    };
    let dir = dir.path();
    assert_eq!(summary["depth"], json!([640, 576]), "{summary}");
    assert_eq!(summary["color"], json!([1280, 720]), "{summary}");

    // What users of the SDK see today: no display, no transform engine.
    let bare = run_child("transform", Setup::EngineOnly, dir, None);
    let err = bare["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("204"),
        "expected GPU_FROM_API without a display: {bare}"
    );

    // Headless, chosen automatically because there is no DISPLAY.
    let headless = run_child("transform", Setup::Auto, dir, None);
    assert_eq!(headless["path"], "headless", "{headless}");
    assert!(headless.get("error").is_none(), "{headless}");
    assert_eq!(headless["repeatable"], true, "{headless}");
    assert_eq!(headless["glx_vendor_library_mapped"], false, "{headless}");
    assert_eq!(headless["egl_vendor_library_mapped"], true, "{headless}");
    let stats = &headless["stats"];
    assert_eq!(stats[2], 0, "no X display may be opened: {headless}");
    assert!(stats[1].as_u64().unwrap() >= 1, "{headless}");
    assert!(
        headless["gl_renderer"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{headless}"
    );
    eprintln!(
        "headless: {} / {} / {}, depth->colour {:.1} ms",
        headless["egl_vendor"],
        headless["gl_renderer"],
        headless["platform"],
        headless["process_ms"]
    );
    let out_headless = std::fs::read(dir.join("out-headless.bin")).unwrap();
    assert_eq!(out_headless.len(), 1280 * 720 * 2);
    let covered = depth16(&out_headless).filter(|&d| d != 0).count();
    assert!(
        covered > 200_000,
        "only {covered} colour pixels got a depth value"
    );

    // The same engine on an X server: the X path, untouched (no library of ours global).
    let Some(xvfb) = Xvfb::start() else { return };
    let x = run_child("transform", Setup::Auto, dir, Some(&xvfb.display));
    assert_eq!(x["path"], "x", "{x}");
    assert!(x.get("error").is_none(), "{x}");
    assert_eq!(
        x["stats"],
        Value::Null,
        "headless library must stay out: {x}"
    );
    assert_eq!(x["glx_vendor_library_mapped"], true, "{x}");
    let out_x = std::fs::read(dir.join("out-x.bin")).unwrap();
    let differing = depth16(&out_x)
        .zip(depth16(&out_headless))
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        differing, 0,
        "headless and Xvfb outputs differ in {differing} pixels"
    );
    assert_eq!(out_x, out_headless);

    // `--headless-gl` with a working X display still takes the headless path.
    let forced = run_child("transform", Setup::Forced, dir, Some(&xvfb.display));
    assert_eq!(forced["path"], "headless", "{forced}");
    assert_eq!(forced["stats"][2], 0, "{forced}");
    assert_eq!(
        std::fs::read(dir.join("out-headless.bin")).unwrap(),
        out_x,
        "forced headless output differs"
    );
    drop(xvfb);

    // Microsoft's own libk4a transformation, with the library as LD_PRELOAD and no display.
    let oracle = util::Oracle::get().unwrap();
    let sdk_dir = dir.join("sdk");
    let out = Command::new(&oracle.python)
        .arg(oracle.scripts.join("transform.py"))
        .arg(util::fixture(util::REAL_RECORDING))
        .arg(&sdk_dir)
        .arg("--sdk-transform")
        .env("LD_PRELOAD", headless_library())
        .env_remove("DISPLAY")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "transform.py under LD_PRELOAD: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(report["sdk_transform"], "ok", "{report}");
    let sdk_out = std::fs::read(sdk_dir.join("sdk_depth_to_color.bin")).unwrap();
    assert_eq!(sdk_out, out_headless, "libk4a's result differs from ours");
}

#[test]
fn depth_engine_without_display_reaches_its_calibration_check() {
    let _heavy = crate::util::heavy_test_lock();
    let Some((dir, _)) = work_dir() else { return };
    let dir = dir.path();
    let headless = run_child("depth", Setup::Auto, dir, None);
    assert_eq!(headless["path"], "headless", "{headless}");
    assert_eq!(headless["engine_result"], 103, "{headless}");
    assert_eq!(headless["stats"][2], 0, "{headless}");
    eprintln!("headless depth engine: {headless}");
    let Some(xvfb) = Xvfb::start() else { return };
    let x = run_child("depth", Setup::Auto, dir, Some(&xvfb.display));
    assert_eq!(x["path"], "x", "{x}");
    assert_eq!(x["engine_result"], 103, "{x}");
    assert_eq!(x["stats"], Value::Null, "{x}");
    eprintln!("X depth engine: {x}");
}

#[test]
fn binaries_do_not_carry_the_headless_symbols() {
    // The crate is a dependency only so cargo builds the library; if its X/GLX symbols ever got
    // linked into freek4a's binaries, the engine would bind to them even with X working.
    for bin in ["k4arecorder", "freek4a"] {
        let path = util::bin_path(bin);
        let out = Command::new("nm")
            .args(["-D", "--defined-only"])
            .arg(&path)
            .output();
        let Ok(out) = out else {
            util::skip("nm (binutils) is not installed");
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        for sym in ["XOpenDisplay", "glXMakeCurrent", "glXGetProcAddressARB"] {
            assert!(
                !text.lines().any(|l| l.ends_with(&format!(" {sym}"))),
                "{bin} exports {sym}"
            );
        }
    }
}

#[test]
fn recorder_names_the_headless_renderer_and_stays_quiet_under_x() {
    let _heavy = crate::util::heavy_test_lock();
    let Some(oracle) = util::Oracle::get() else {
        return;
    };
    let dir = util::TempDir::new("headless-gl-recorder");
    // Microsoft's engine on an emulated unit stops at the calibration check (103), after the
    // OpenGL choice has been made and shown.
    let run = |display: Option<&str>, extra: &[&str]| {
        let mut cmd = Command::new(util::bin_path("k4arecorder"));
        cmd.args(["--emulate", "--no-progress", "-l", "1", "--depth-engine"])
            .arg(&oracle.libdepthengine)
            .args(extra)
            .arg(dir.join("x.mkv"))
            .env(headless::HEADLESS_GL_LIBRARY_ENV, headless_library());
        match display {
            Some(d) => cmd.env("DISPLAY", d),
            None => cmd.env_remove("DISPLAY"),
        };
        let out = cmd.output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(None, &[]);
    let line = err
        .lines()
        .find(|l| l.starts_with("Depth engine OpenGL: headless (EGL "))
        .unwrap_or_else(|| panic!("no headless line in:\n{err}"));
    assert!(
        line.contains("; renderer ") && line.contains("; OpenGL 4."),
        "{line}"
    );
    assert!(err.contains("103"), "{err}");
    // DISPLAY naming a server that is not there counts as no display.
    let err = run(Some(":239"), &[]);
    assert!(err.contains("Depth engine OpenGL: headless (EGL "), "{err}");
    assert!(err.contains("103"), "{err}");
    let Some(xvfb) = Xvfb::start() else { return };
    let err = run(Some(&xvfb.display), &[]);
    assert!(!err.contains("Depth engine OpenGL"), "{err}");
    assert!(err.contains("103"), "{err}");
    let err = run(Some(&xvfb.display), &["--headless-gl"]);
    assert!(err.contains("Depth engine OpenGL: headless (EGL "), "{err}");
}
