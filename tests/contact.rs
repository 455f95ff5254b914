//! Integration tests: first contact. What a new user meets first — no command destroys data,
//! damaged calibrations are reported everywhere, repair keeps what survives, an empty
//! recording passes the judges, and the messages help.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use freek4a::playback::info::RecordingInfo;
use serde_json::Value;

use crate::util::{self, fixture, Oracle, TempDir, REAL_RECORDING};

fn run_in(bin: &str, dir: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(util::bin_path(bin));
    cmd.args(args)
        .env_remove("FREEK4A_EMULATE")
        .env_remove("FREEK4A_DEPTH_ENGINE");
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    cmd.output().unwrap()
}

fn freek4a_in(dir: &Path, args: &[&str]) -> Output {
    run_in("freek4a", Some(dir), args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every judge that is installed reads `path` without complaint: Microsoft's playback opens it
/// (returned), mkvinfo, mkvmerge -J and ffprobe (every packet demuxed).
fn judges(path: &Path) -> Option<Value> {
    if util::have_tool("mkvinfo") {
        util::mkvinfo(path).unwrap();
    }
    if util::have_tool("mkvmerge") {
        util::mkvmerge_identify(path).unwrap();
    }
    if util::have_tool("ffprobe") {
        util::ffprobe_packets(path).unwrap();
    }
    let oracle = Oracle::get()?;
    let v = oracle.playback(path);
    assert_eq!(v["opened"], Value::Bool(true), "{}: {v:#}", path.display());
    Some(v)
}

/// Names and contents of every entry in `dir` (recursively), sorted.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(p.clone());
                out.push((p, Vec::new()));
            } else if ft.is_symlink() {
                out.push((
                    p.clone(),
                    std::fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                ));
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Item 1: repair never destroys its input or an existing output.
#[test]
fn repair_never_destroys_its_input_or_an_existing_output() {
    let dir = TempDir::new("contact-no-destroy");
    let input = dir.join("in.mkv");
    std::fs::copy(fixture(REAL_RECORDING), &input).unwrap();
    std::os::unix::fs::symlink("in.mkv", dir.join("link.mkv")).unwrap();
    std::fs::hard_link(&input, dir.join("hard.mkv")).unwrap();
    std::fs::write(dir.join("keep.txt"), b"keep me\n").unwrap();
    std::fs::write(dir.join("garbage.mkv"), vec![0x5Au8; 5000]).unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let before = snapshot(dir.path());

    let refusals: &[(&[&str], &str)] = &[
        (&["repair", "in.mkv", "-o", "in.mkv"], "is the input file"),
        (&["repair", "in.mkv", "-o", "./in.mkv"], "is the input file"),
        (&["repair", "in.mkv", "-o", "link.mkv"], "is the input file"),
        (&["repair", "in.mkv", "-o", "hard.mkv"], "is the input file"),
        (
            &["repair", "in.mkv", "-o", "sub/../in.mkv"],
            "is the input file",
        ),
        (
            &["repair", "in.mkv", "-o", "in.mkv", "--force"],
            "is the input file",
        ),
        (
            &["repair", "in.mkv", "-o", "./in.mkv", "--force"],
            "is the input file",
        ),
        (
            &["repair", "in.mkv", "-o", "link.mkv", "--force"],
            "is the input file",
        ),
        (
            &["repair", "in.mkv", "-o", "hard.mkv", "--force"],
            "is the input file",
        ),
        (
            &["repair", "link.mkv", "-o", "in.mkv", "--force"],
            "is the input file",
        ),
        (&["repair", "in.mkv", "-o", "keep.txt"], "already exists"),
        (
            &["repair", "in.mkv", "-o", "x.mkv", "--calibration", "x.mkv"],
            "x.mkv",
        ),
        // Failures after the output checks: nothing may appear or change either.
        (
            &["repair", "garbage.mkv", "-o", "keep.txt", "--force"],
            "garbage.mkv",
        ),
        (&["repair", "garbage.mkv", "-o", "new.mkv"], "garbage.mkv"),
        (&["repair", "missing.mkv", "-o", "new.mkv"], "missing.mkv"),
        (&["repair", "in.mkv", "-o", "nodir/out.mkv"], "nodir"),
        (&["extract", "in.mkv", "-o", "in.mkv"], "in.mkv"),
    ];
    for (args, says) in refusals {
        let out = freek4a_in(dir.path(), args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert_eq!(
            snapshot(dir.path()),
            before,
            "{args:?} changed the folder (input bytes, outputs or temporary files)"
        );
    }

    // Allowed with --force: the existing output is replaced by a valid recording, the input
    // is untouched.
    let out = freek4a_in(
        dir.path(),
        &["repair", "in.mkv", "-o", "keep.txt", "--force"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read(&input).unwrap(),
        std::fs::read(fixture(REAL_RECORDING)).unwrap()
    );
    judges(&dir.join("keep.txt"));
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".partial")), "{names:?}");
}

/// Item 5: extract refuses a destination holding files unless --force.
#[test]
fn extract_refuses_a_non_empty_destination() {
    let dir = TempDir::new("contact-extract-dest");
    let rec = fixture(REAL_RECORDING);
    let rec = rec.to_str().unwrap();
    let out = freek4a_in(dir.path(), &["extract", rec, "-o", "frames"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let first = snapshot(&dir.join("frames"));
    assert!(first.iter().any(|(p, _)| p.ends_with("calibration.json")));
    assert!(first.iter().any(|(p, _)| p.ends_with("imu.csv")));

    let other = fixture("sdk142-mjpg720-off-imu-30fps.mkv");
    let out = freek4a_in(
        dir.path(),
        &["extract", other.to_str().unwrap(), "-o", "frames"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("frames is not empty") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(snapshot(&dir.join("frames")), first, "nothing mixed in");

    // An existing but empty folder is fine.
    std::fs::create_dir(dir.join("empty")).unwrap();
    let out = freek4a_in(dir.path(), &["extract", rec, "-o", "empty"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(snapshot(&dir.join("empty")).len(), first.len());

    // --force writes into it (same names replaced), and leaves no temporary files.
    let out = freek4a_in(dir.path(), &["extract", rec, "-o", "frames", "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(snapshot(&dir.join("frames")), first);
}
