//! The shipped binaries, unmodified, through Linux's usbfs interface: `freek4a-usbfs` runs
//! them in a namespace where emulated units appear under `/sys/bus/usb` and `/dev/bus/usb` and
//! answers their usbfs system calls with the kernel's rules. No `--emulate` reaches the
//! program: it finds, opens and streams the units the way it would a real camera.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

use crate::util::{bin_path, emulated_depthengine, profile_dir, repo_root, skip, Oracle, TempDir};

/// `freek4a-usbfs`, built on first use, once checked to work on this machine (namespaces and
/// seccomp user notification allowed). `None` after [`skip`] when it cannot run here.
pub(crate) fn supervisor() -> Option<&'static PathBuf> {
    static TOOL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = TOOL.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(repo_root()).args([
            "build",
            "-p",
            "freek4a-usbfs",
            "--bin",
            "freek4a-usbfs",
        ]);
        if profile_dir().file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().map_err(|e| format!("cargo build: {e}"))?;
        assert!(status.success(), "building freek4a-usbfs failed");
        let tool = profile_dir().join("freek4a-usbfs");
        let probe = Command::new(&tool)
            .args(["--", "/bin/sh", "-c", "test -d /sys/bus/usb/devices/2-1.1"])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", tool.display()))?;
        if probe.status.success() {
            Ok(tool)
        } else {
            Err(format!(
                "freek4a-usbfs cannot set up its namespace here: {}",
                String::from_utf8_lossy(&probe.stderr)
            ))
        }
    });
    match r {
        Ok(p) => Some(p),
        Err(e) => {
            skip(e);
            None
        }
    }
}

/// Runs `program` under the supervisor with `options`, the emulated depth engine in the
/// environment (as a user's `FREEK4A_DEPTH_ENGINE` would be) and no `FREEK4A_EMULATE`.
fn under(tool: &Path, options: &[&str], program: &[&str], cwd: &Path) -> Output {
    Command::new(tool)
        .args(options)
        .arg("--")
        .args(program)
        .current_dir(cwd)
        .env("FREEK4A_DEPTH_ENGINE", emulated_depthengine())
        .env_remove("FREEK4A_EMULATE")
        .output()
        .expect("run freek4a-usbfs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The listing lines without their index (the kernel's directory order decides the index).
fn units(listing: &str) -> Vec<String> {
    let mut v: Vec<String> = listing
        .lines()
        .map(|l| l.split_once('\t').map_or(l, |(_, rest)| rest).to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn list_shows_both_units_through_usbfs() {
    let Some(tool) = supervisor() else { return };
    let dir = TempDir::new("usbfs-list");
    let recorder = bin_path("k4arecorder");
    let want = Command::new(&recorder)
        .args(["--emulate=units=2", "--list"])
        .output()
        .unwrap();
    let want = units(&text(&want.stdout));
    assert_eq!(want.len(), 2, "{want:?}");
    assert!(want
        .iter()
        .all(|l| l.starts_with("Serial:") && l.contains("\tColor:1.6.110\tDepth:1.6.79")));
    for program in [
        vec![recorder.to_str().unwrap(), "--list"],
        vec![bin_path("freek4a").to_str().unwrap(), "list"],
    ] {
        let out = under(tool, &["--emulate", "units=2"], &program, dir.path());
        assert_eq!(
            out.status.code(),
            Some(0),
            "{program:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(
            units(&text(&out.stdout)),
            want,
            "{program:?}: {}",
            text(&out.stderr)
        );
    }
}

/// One recording through usbfs, judged by Microsoft's playback: the configuration asked for,
/// captures within 10 % of rate × length, IMU when on, and depth showing the emulated scene.
struct Case {
    args: &'static [&'static str],
    format: &'static str,
    color: &'static str,
    depth: &'static str,
    fps: u64,
    imu: bool,
}

fn record_and_judge(
    tool: &Path,
    oracle: &Oracle,
    dir: &TempDir,
    n: usize,
    c: &Case,
    options: &[&str],
) {
    const SECS: u64 = 2;
    let name = format!("case{n}.mkv");
    let recorder = bin_path("k4arecorder");
    let mut program = vec![recorder.to_str().unwrap(), "-l", "2"];
    program.extend_from_slice(c.args);
    program.extend(["--imu", if c.imu { "ON" } else { "OFF" }, &name]);
    let out = under(tool, options, &program, dir.path());
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{:?}: {}{err}",
        c.args,
        text(&out.stdout)
    );
    let path = dir.join(&name);
    let depth_dims = freek4a::types::DepthMode::from_name(c.depth).and_then(|m| m.dimensions());
    let mut pixel_args = Vec::new();
    if let Some((w, h)) = depth_dims {
        pixel_args = vec![
            "--pixel".to_string(),
            format!("{},{}", w / 2, h / 2),
            "--pixel".to_string(),
            format!("{},{}", w / 16, h / 16),
        ];
    }
    let pa: Vec<&str> = pixel_args.iter().map(String::as_str).collect();
    let v = oracle.playback_with(&path, &pa);
    assert_eq!(v["opened"], true, "{:?}: {v:#}", c.args);
    assert_eq!(v["open_log"], Value::Array(vec![]), "{:?}: {v:#}", c.args);
    let cfg = &v["config"];
    assert_eq!(cfg["color_resolution"], c.color, "{:?}: {cfg}", c.args);
    assert_eq!(cfg["depth_mode"], c.depth, "{:?}: {cfg}", c.args);
    assert_eq!(cfg["camera_fps"], c.fps, "{:?}: {cfg}", c.args);
    assert_eq!(cfg["imu_track_enabled"], c.imu, "{:?}: {cfg}", c.args);
    if c.color != "OFF" {
        assert_eq!(cfg["color_format"], c.format, "{:?}: {cfg}", c.args);
        assert!(v["images"]["color"]["count"].as_u64().unwrap() > 0);
    }
    let captures = v["captures"].as_u64().unwrap();
    let want = (c.fps * SECS) as f64;
    assert!(
        (captures as f64 - want).abs() <= want * 0.1 + 1.0,
        "{:?}: {captures} captures for {SECS} s at {} fps",
        c.args,
        c.fps
    );
    if c.imu {
        assert!(v["imu"]["count"].as_u64().unwrap() > 0, "{:?}", c.args);
    }
    if let Some((w, h)) = depth_dims {
        let scene = freek4a::protocol::depth_raw::Scene::default();
        let (cx, cy, ex, ey) = (w / 2, h / 2, w / 16, h / 16);
        let ir = &v["first_pixels"]["ir"];
        assert_eq!(
            ir["at"][format!("{cx},{cy}")],
            scene.ir(cx, cy, w, h),
            "{:?}",
            c.args
        );
        if c.depth != "PASSIVE_IR" {
            let d = &v["first_pixels"]["depth"];
            assert_eq!(d["at"][format!("{cx},{cy}")], scene.box_mm, "{:?}", c.args);
            assert_eq!(d["at"][format!("{ex},{ey}")], scene.wall_mm, "{:?}", c.args);
        }
    }
    eprintln!("TRIAL usbfs {:?}: {captures} captures", c.args);
}

/// Every colour value and every depth value at least once, each at a rate it allows, IMU on
/// and off, through the real transport path with the kernel's default 16 MiB usbfs budget.
#[test]
fn recorder_records_every_mode_through_usbfs() {
    let Some(tool) = supervisor() else { return };
    let Some(oracle) = Oracle::get() else { return };
    let _serial = crate::util::heavy_test_lock();
    let dir = TempDir::new("usbfs-modes");
    let cases = [
        Case {
            args: &["-c", "720p", "-d", "NFOV_2X2BINNED"],
            format: "MJPG",
            color: "720P",
            depth: "NFOV_2X2BINNED",
            fps: 30,
            imu: true,
        },
        Case {
            args: &["-c", "1080p", "-d", "NFOV_UNBINNED"],
            format: "MJPG",
            color: "1080P",
            depth: "NFOV_UNBINNED",
            fps: 30,
            imu: false,
        },
        Case {
            args: &["-c", "1440p", "-d", "WFOV_2X2BINNED"],
            format: "MJPG",
            color: "1440P",
            depth: "WFOV_2X2BINNED",
            fps: 30,
            imu: true,
        },
        Case {
            args: &["-c", "1536p", "-d", "WFOV_UNBINNED", "-r", "15"],
            format: "MJPG",
            color: "1536P",
            depth: "WFOV_UNBINNED",
            fps: 15,
            imu: false,
        },
        Case {
            args: &["-c", "2160p", "-d", "PASSIVE_IR"],
            format: "MJPG",
            color: "2160P",
            depth: "PASSIVE_IR",
            fps: 30,
            imu: true,
        },
        Case {
            args: &["-c", "3072p", "-d", "OFF", "-r", "15"],
            format: "MJPG",
            color: "3072P",
            depth: "OFF",
            fps: 15,
            imu: true,
        },
        Case {
            args: &["-c", "720p_NV12", "-d", "WFOV_UNBINNED", "-r", "5"],
            format: "NV12",
            color: "720P",
            depth: "WFOV_UNBINNED",
            fps: 5,
            imu: false,
        },
        Case {
            args: &["-c", "720p_YUY2", "-d", "NFOV_UNBINNED"],
            format: "YUY2",
            color: "720P",
            depth: "NFOV_UNBINNED",
            fps: 30,
            imu: true,
        },
        Case {
            args: &["-c", "OFF", "-d", "PASSIVE_IR"],
            format: "",
            color: "OFF",
            depth: "PASSIVE_IR",
            fps: 30,
            imu: false,
        },
    ];
    for (n, c) in cases.iter().enumerate() {
        record_and_judge(tool, oracle, &dir, n, c, &["--emulate", "seed=3"]);
    }
}

/// Faults through the real path: unplugging, stalled endpoints, the usbfs budget.
#[test]
fn faults_through_usbfs() {
    let Some(tool) = supervisor() else { return };
    let Some(oracle) = Oracle::get() else { return };
    let _serial = crate::util::heavy_test_lock();
    let dir = TempDir::new("usbfs-faults");
    let recorder = bin_path("k4arecorder");
    let rec = recorder.to_str().unwrap();

    // Unplugged mid-recording: a finished file and exit 1.
    let out = under(
        tool,
        &["--emulate", "unplug_after=1.5"],
        &[rec, "unplug.mkv"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("disconnected"),
        "{}",
        text(&out.stderr)
    );
    let v = oracle.playback(&dir.join("unplug.mkv"));
    assert_eq!(v["opened"], true, "{v:#}");
    assert_eq!(v["open_log"], Value::Array(vec![]), "{v:#}");
    assert!(v["captures"].as_u64().unwrap() > 10, "{v:#}");

    // A stalled streaming endpoint fails its stream with a typed error naming it, as the SDK
    // does; the file is finished.
    for (stream, words) in [
        ("depth", "depth stream"),
        ("imu", "IMU stream"),
        ("color", "color stream"),
    ] {
        let name = format!("stall-{stream}.mkv");
        let spec = format!("fault={stream}:stall:40");
        let out = under(
            tool,
            &["--emulate", &spec],
            &[rec, "-l", "4", &name],
            dir.path(),
        );
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stream}: {err}");
        assert!(
            err.contains(words) && err.contains("endpoint stalled"),
            "{stream}: {err}"
        );
        let v = oracle.playback(&dir.join(&name));
        assert_eq!(v["opened"], true, "{stream}: {v:#}");
    }

    // The command endpoints: a stalled command and a device answering with more data than the
    // command's buffer holds fail the open with an error naming the command. The host reads
    // whole packets, so an answer longer than the SDK's buffer but within the packet is caught
    // by the length check rather than by babble (EOVERFLOW).
    for (fault, words) in [
        ("0x115:stall", "endpoint stalled"),
        ("0x115:oversized", "exceeds the 255-byte buffer"),
    ] {
        let out = under(
            tool,
            &["--fault", fault],
            &[rec, "-l", "1", "cmd.mkv"],
            dir.path(),
        );
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{fault}: {err}");
        assert!(
            err.contains("k4a_device_open() failed")
                && err.contains("DEPTH_READ_PRODUCT_SN (0x00000115)")
                && err.contains(words),
            "{fault}: {err}"
        );
    }

    // The kernel's default budget holds the heaviest mode.
    record_and_judge(
        tool,
        oracle,
        &dir,
        100,
        &Case {
            args: &["-c", "3072p", "-d", "WFOV_UNBINNED", "-r", "15"],
            format: "MJPG",
            color: "3072P",
            depth: "WFOV_UNBINNED",
            fps: 15,
            imu: true,
        },
        &["--usbfs-memory-mb", "16"],
    );

    // A budget too small for one depth transfer: refused up front, naming the parameter.
    let out = under(
        tool,
        &["--usbfs-memory-mb", "4"],
        &[rec, "-l", "1", "small.mkv"],
        dir.path(),
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("usbcore.usbfs_memory_mb"), "{err}");
}

/// Node permissions as a user without the udev rule sees them, and with it.
#[test]
fn node_permissions_through_usbfs() {
    let Some(tool) = supervisor() else { return };
    let Some(oracle) = Oracle::get() else { return };
    let _serial = crate::util::heavy_test_lock();
    let dir = TempDir::new("usbfs-perms");
    let root = rustix::process::getuid().is_root();
    let mut as_user: Vec<String> = Vec::new();
    let group: u32 = if root {
        // Run as nobody/nogroup, in a folder that user may write.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        as_user = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]
        .map(String::from)
        .to_vec();
        65534
    } else {
        rustix::process::getgid().as_raw()
    };
    let recorder = bin_path("k4arecorder");
    let run = |mode: &str, name: &str| -> Output {
        let mut cmd = if as_user.is_empty() {
            Command::new(tool)
        } else {
            let mut c = Command::new(&as_user[0]);
            c.args(&as_user[1..]).arg(tool);
            c
        };
        cmd.args([
            "--node-mode",
            mode,
            "--node-group",
            &group.to_string(),
            "--",
        ])
        .arg(&recorder)
        .args(["-l", "2", name])
        .current_dir(dir.path())
        .env("FREEK4A_DEPTH_ENGINE", emulated_depthengine())
        .env_remove("FREEK4A_EMULATE")
        .output()
        .expect("run freek4a-usbfs")
    };
    // Root-owned 0600 nodes, as without the rule.
    let out = run("0600", "denied.mkv");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("freek4a udev install"), "{err}");
    assert!(!dir.join("denied.mkv").exists());
    // The rule's mode and group.
    let out = run("0660", "allowed.mkv");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = oracle.playback(&dir.join("allowed.mkv"));
    assert_eq!(v["opened"], true, "{v:#}");
    assert!(v["captures"].as_u64().unwrap() > 40, "{v:#}");
}
