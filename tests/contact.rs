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

/// Runs freek4a in `dir`, expects exit 1 with every one of `says` on stderr; returns stderr.
fn refused(dir: &Path, args: &[&str], says: &[&str]) -> String {
    let out = freek4a_in(dir, args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    for s in says {
        assert!(err.contains(s), "{args:?}: {err}");
    }
    err
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

/// The real recording with one byte of its calibration JSON changed (`:` after the first key
/// becomes `;`).
fn damaged_calibration_copy(dir: &TempDir) -> (PathBuf, usize) {
    let mut bytes = std::fs::read(fixture(REAL_RECORDING)).unwrap();
    let key = b"\"CalibrationInformation\"";
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("calibration JSON in the fixture")
        + key.len();
    assert_eq!(bytes[at], b':');
    bytes[at] = b';';
    let path = dir.join("badcal.mkv");
    std::fs::write(&path, &bytes).unwrap();
    (path, at)
}

/// Item 2: a damaged calibration is reported by info (text and JSON), refused by extract unless
/// skipped, refused by repair unless a replacement is given, and replaced by --calibration.
#[test]
fn damaged_calibration_is_reported_everywhere_and_replaceable() {
    let dir = TempDir::new("contact-badcal");
    let (bad, _) = damaged_calibration_copy(&dir);
    let bad_s = bad.to_str().unwrap();

    let out = freek4a_in(dir.path(), &["info", bad_s]);
    assert!(out.status.success());
    let info = text(&out.stdout);
    assert!(!info.contains("Problems:         none"), "{info}");
    let line = info
        .lines()
        .find(|l| l.contains("calibration attachment calibration.json is damaged"))
        .unwrap_or_else(|| panic!("no calibration problem listed:\n{info}"));
    assert!(
        line.contains("line 1 column 26"),
        "position of the parse error: {line}"
    );

    let out = freek4a_in(dir.path(), &["info", bad_s, "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let diag = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "bad_calibration")
        .unwrap_or_else(|| panic!("{:#}", v["diagnostics"]));
    assert_eq!(diag["file_name"], "calibration.json");
    assert!(
        diag["reason"]
            .as_str()
            .unwrap()
            .contains("line 1 column 26"),
        "{diag}"
    );

    // extract: refused before writing anything, unless told to skip the calibration.
    refused(
        dir.path(),
        &["extract", bad_s, "-o", "x"],
        &[
            "calibration attachment is damaged",
            "--skip-bad-calibration",
        ],
    );
    assert!(!dir.join("x").exists());
    let out = freek4a_in(
        dir.path(),
        &["extract", bad_s, "-o", "x", "--skip-bad-calibration"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
    assert!(dir.join("x/calibration-damaged.json").is_file());
    assert!(!dir.join("x/calibration.json").exists() && !dir.join("x/intrinsics.json").exists());
    assert_eq!(std::fs::read_dir(dir.join("x/color")).unwrap().count(), 1);

    // repair: cannot rebuild it, says how to replace it, writes nothing.
    refused(
        dir.path(),
        &["repair", bad_s, "-o", "fixed.mkv"],
        &["--calibration FILE", "line 1 column 26"],
    );
    assert!(!dir.join("fixed.mkv").exists());
    // A replacement that does not parse either is refused.
    refused(
        dir.path(),
        &[
            "repair",
            bad_s,
            "-o",
            "fixed.mkv",
            "--calibration",
            "x/calibration-damaged.json",
        ],
        &[
            "calibration file x/calibration-damaged.json",
            "does not parse",
        ],
    );
    assert!(!dir.join("fixed.mkv").exists());

    // The unit's calibration from extract of an intact recording replaces it.
    let good = fixture(REAL_RECORDING);
    let out = freek4a_in(
        dir.path(),
        &["extract", good.to_str().unwrap(), "-o", "good"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = freek4a_in(
        dir.path(),
        &[
            "repair",
            bad_s,
            "-o",
            "fixed.mkv",
            "--calibration",
            "good/calibration.json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("replaced the calibration attachment"),
        "{}",
        text(&out.stdout)
    );
    let fixed = dir.join("fixed.mkv");
    let info = RecordingInfo::read(&fixed).unwrap();
    assert!(info.diagnostics.is_empty(), "{:?}", info.diagnostics);
    assert_eq!(info.captures, 1);
    if let Some(v) = judges(&fixed) {
        let want = Oracle::get().unwrap().playback(&good);
        assert_eq!(v["calibration"]["sha256"], want["calibration"]["sha256"]);
        assert_eq!(v["captures"], want["captures"]);
        assert_eq!(v["images"], want["images"]);
    }
}

/// `info`'s counts of a file, as (captures, colour, depth, IR, IMU samples).
fn counts(path: &Path) -> (u64, u64, u64, u64, u64) {
    let i = RecordingInfo::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (
        i.captures,
        i.color_images,
        i.depth_images,
        i.ir_images,
        i.imu_samples,
    )
}

fn oracle_counts(v: &Value) -> (u64, u64, u64, u64, u64) {
    let n = |x: &Value| x.as_u64().unwrap();
    (
        n(&v["captures"]),
        n(&v["images"]["color"]["count"]),
        n(&v["images"]["depth"]["count"]),
        n(&v["images"]["ir"]["count"]),
        n(&v["imu"]["count"]),
    )
}

/// Item 3: a file cut inside a cluster keeps every complete block; info and repair agree, and
/// Microsoft's playback yields the same from the repaired file.
#[test]
fn repair_keeps_the_complete_blocks_of_a_cut_cluster() {
    let dir = TempDir::new("contact-cut");
    for name in [REAL_RECORDING, "sdk142-off-nfovbin-imu-5fps.mkv"] {
        let full = std::fs::read(fixture(name)).unwrap();
        for percent in [75usize, 60, 90] {
            let cut = dir.join(&format!("cut{percent}-{name}"));
            std::fs::write(&cut, &full[..full.len() * percent / 100]).unwrap();
            let before = counts(&cut);
            let fixed = dir.join(&format!("fixed{percent}-{name}"));
            let report = freek4a::playback::repair::repair(&cut, &fixed).unwrap();
            let after = counts(&fixed);
            assert_eq!(
                after, before,
                "{name} cut at {percent} %: info before and after repair"
            );
            assert_eq!(report.captures_kept as u64, before.0, "{name} {percent} %");
            assert_eq!(
                report.imu_samples_kept as u64, before.4,
                "{name} {percent} %"
            );
            if let Some(v) = judges(&fixed) {
                assert_eq!(
                    oracle_counts(&v),
                    after,
                    "{name} {percent} %: Microsoft's counts"
                );
            }
            if name == REAL_RECORDING && percent == 75 {
                // Microsoft's recorder put the whole capture in one cluster; its colour and
                // depth images are complete at 75 %.
                assert_eq!(before, (1, 1, 1, 0, 1));
                assert!(report
                    .fixes
                    .iter()
                    .any(|f| f.contains("kept the complete blocks")));
            }
        }
    }
}

/// Item 3: the other repair cases a user meets.
#[test]
fn repair_rebuilds_a_zeroed_header_refuses_non_k4a_and_says_when_nothing_was_wrong() {
    let dir = TempDir::new("contact-repair-cases");
    let real = fixture(REAL_RECORDING);
    let real_s = real.to_str().unwrap();

    // A healthy file: says so.
    let out = freek4a_in(dir.path(), &["repair", real_s, "-o", "copy.mkv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.starts_with("Nothing to fix:"), "{said}");
    assert!(!said.contains("rebuilt"), "{said}");
    assert_eq!(counts(&dir.join("copy.mkv")), counts(&real));
    judges(&dir.join("copy.mkv"));

    // The EBML header zeroed, the Segment intact.
    let mut bytes = std::fs::read(&real).unwrap();
    bytes[..40].fill(0);
    std::fs::write(dir.join("zeroed.mkv"), &bytes).unwrap();
    assert!(RecordingInfo::read(dir.join("zeroed.mkv")).is_err());
    let out = freek4a_in(dir.path(), &["repair", "zeroed.mkv", "-o", "unzeroed.mkv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("rebuilt the EBML header"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(counts(&dir.join("unzeroed.mkv")), counts(&real));
    assert_eq!(
        std::fs::read(dir.join("unzeroed.mkv")).unwrap()[..40],
        std::fs::read(&real).unwrap()[..40]
    );
    judges(&dir.join("unzeroed.mkv"));

    // Cut inside the cluster: no "rebuilt Cues" unless Cues were written.
    let report = freek4a::playback::repair::repair(&real, dir.join("again.mkv")).unwrap();
    assert!(report.nothing_to_fix);
    assert!(
        !report.fixes.iter().any(|f| f.contains("rebuilt Cues")),
        "{:?}",
        report.fixes
    );

    // A plain Matroska file that is not an Azure Kinect recording: refused, nothing written.
    if util::have_tool("ffmpeg") {
        let st = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=duration=1:size=64x48:rate=5",
            ])
            .args(["-c:v", "mjpeg", "-y"])
            .arg(dir.join("plain.mkv"))
            .status()
            .unwrap();
        assert!(st.success());
        let out = freek4a_in(dir.path(), &["repair", "plain.mkv", "-o", "k4a.mkv"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("not an Azure Kinect recording"),
            "{}",
            text(&out.stderr)
        );
        assert!(!dir.join("k4a.mkv").exists());
    }
}

/// Strings anywhere in a JSON document, with their paths.
fn strings<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::String(s) => out.push((path, s)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| strings(x, format!("{path}[{i}]"), out)),
        Value::Object(o) => o
            .iter()
            .for_each(|(k, x)| strings(x, format!("{path}.{k}"), out)),
        _ => {}
    }
}

/// Item 12: `info --json` uses the SDK's names only, has a schema version, and the README
/// describes every field.
#[test]
fn info_json_speaks_the_sdks_names_and_is_documented() {
    let dir = TempDir::new("contact-info-json");
    let readme = std::fs::read_to_string(util::repo_root().join("README.md")).unwrap();
    let section = readme
        .split("\n### `info --json`")
        .nth(1)
        .expect("README has a section \"### `info --json`\"");
    let section = section.split("\n#").next().unwrap();
    let cut = dir.join("cut.mkv");
    let full = std::fs::read(fixture(REAL_RECORDING)).unwrap();
    std::fs::write(&cut, &full[..full.len() * 3 / 4]).unwrap();
    for file in [
        fixture(REAL_RECORDING),
        fixture("sdk142-off-nfovbin-imu-5fps.mkv"),
        cut,
    ] {
        let out = freek4a_in(dir.path(), &["info", "--json", file.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["schema_version"], 1);
        for (k, want) in [
            ("color_resolution", "K4A_COLOR_RESOLUTION_"),
            ("depth_mode", "K4A_DEPTH_MODE_"),
            ("camera_fps", "K4A_FRAMES_PER_SECOND_"),
            ("wired_sync_mode", "K4A_WIRED_SYNC_MODE_"),
        ] {
            let s = v["config"][k]
                .as_str()
                .unwrap_or_else(|| panic!("{k}: {}", v["config"]));
            assert!(s.starts_with(want), "{k} = {s}");
        }
        let c = &v["config"]["color_format"];
        assert!(
            c.is_null() || c.as_str().unwrap().starts_with("K4A_IMAGE_FORMAT_"),
            "{c}"
        );
        for t in v["tracks"].as_array().unwrap() {
            assert!(
                ["COLOR", "DEPTH", "IR", "IMU", "CUSTOM"].contains(&t["kind"].as_str().unwrap()),
                "{t}"
            );
        }
        assert!(v["dropped"].is_object());
        for d in v["diagnostics"].as_array().unwrap() {
            assert!(d["kind"].is_string() && d["message"].is_string(), "{d}");
        }
        // No Rust enum spelling anywhere (CamelCase words such as R720p, NfovUnbinned, Fps5).
        let mut all = Vec::new();
        strings(&v, String::new(), &mut all);
        let rusty = [
            "R720p",
            "R1080p",
            "R1440p",
            "R1536p",
            "R2160p",
            "R3072p",
            "Nfov",
            "Wfov",
            "PassiveIr",
            "Fps5",
            "Fps15",
            "Fps30",
            "Standalone",
            "Master",
            "Subordinate",
            "Mjpg",
            "Nv12",
            "Yuy2",
            "Bgra32",
            "Depth16",
            "Ir16",
        ];
        for (path, s) in &all {
            if path.starts_with(".tags")
                || path.starts_with(".attachments")
                || path.starts_with(".writing_app")
            {
                continue; // the file's own strings
            }
            assert!(!rusty.iter().any(|r| s.contains(r)), "{path} = {s}");
        }
        // Every top-level field is described in the README.
        for key in v.as_object().unwrap().keys() {
            assert!(
                section.contains(&format!("`{key}`")),
                "README's info --json section lacks `{key}`"
            );
        }
        for key in v["config"].as_object().unwrap().keys() {
            assert!(
                section.contains(&format!("`{key}`")),
                "README's info --json section lacks config `{key}`"
            );
        }
    }
}

/// Item 4: Ctrl-C before the first capture (the emulated streams time out, so none arrives)
/// leaves a finished file that every judge reads, and the messages keep their order.
#[test]
fn ctrl_c_before_the_first_capture_leaves_a_file_every_judge_reads() {
    use std::io::{BufRead, BufReader};
    let dir = TempDir::new("contact-ctrl-c");
    for (mode, fourcc) in [("1080p", "MJPG"), ("720p_NV12", "NV12")] {
        let path = dir.join(&format!("empty-{mode}.mkv"));
        let mut child = Command::new(util::bin_path("k4arecorder"))
            .args(["--no-progress", "-c", mode, "-l", "20"])
            .arg("--emulate=fault=depth:timeout:0:1000000,fault=color:timeout:0:1000000")
            .arg(&path)
            .env_remove("FREEK4A_EMULATE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = Vec::new();
        for l in lines.by_ref() {
            let l = l.unwrap();
            seen.push(l.clone());
            if l == "Device started" {
                break;
            }
        }
        assert_eq!(
            seen.last().map(String::as_str),
            Some("Device started"),
            "{seen:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
        seen.extend(lines.map(Result::unwrap));
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(
            seen[seen.len() - 2..],
            [
                "Device started".to_string(),
                "Stopping recording...".to_string()
            ],
            "{seen:?}"
        );
        assert_eq!(text(&out.stderr), "");

        let info = RecordingInfo::read(&path).unwrap();
        assert_eq!(
            (info.captures, info.color_images, info.depth_images),
            (0, 0, 0)
        );
        if util::have_tool("mkvinfo") {
            util::mkvinfo(&path).unwrap();
        }
        if util::have_tool("mkvmerge") {
            util::mkvmerge_identify(&path).unwrap();
        }
        if util::have_tool("ffprobe") {
            // With no frame at all ffmpeg cannot know an MJPG stream's pixel format (it must
            // decode one); that one line is inherent to an empty MJPG track. Anything else —
            // such as the "Duplicate element" / "exceeds containing master element" of a file
            // without any Cluster — fails.
            match util::ffprobe_packets(&path) {
                Ok(p) => assert!(p.is_empty(), "{p:?}"),
                Err(e) => {
                    let complaints = e
                        .strip_prefix("ffprobe exit status: 0: ")
                        .unwrap_or_else(|| panic!("ffprobe failed: {e}"));
                    let inherent = |l: &str| {
                        l.contains("(Video: mjpeg (MJPG / 0x47504A4D)")
                            && l.contains("unspecified pixel format")
                    };
                    assert!(fourcc == "MJPG" && complaints.lines().all(inherent), "{e}");
                }
            }
        }
        if let Some(oracle) = Oracle::get() {
            let v = oracle.playback(&path);
            assert_eq!(v["opened"], Value::Bool(true), "{v:#}");
            assert_eq!(v["open_log"], Value::Array(vec![]), "{v:#}");
            assert_eq!(v["captures"], 0);
            assert_eq!(v["config"]["color_format"], fourcc);
            assert_eq!(v["calibration"]["present"], true);
        }
    }
}

/// Item 9: every error names the path that failed and prints its cause once.
#[test]
fn errors_print_their_cause_once_and_name_the_failing_path() {
    let dir = TempDir::new("contact-errors");
    std::fs::write(dir.join("empty.mkv"), b"").unwrap();
    std::fs::create_dir(dir.join("folder.mkv")).unwrap();
    let real = fixture(REAL_RECORDING);
    let real_s = real.to_str().unwrap();
    let one_line = |args: &[&str]| -> String {
        let out = freek4a_in(dir.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        err
    };
    for args in [
        &["info", "nonexist.mkv"][..],
        &["info", "nonexist.mkv", "--json"][..],
        &["extract", "nonexist.mkv", "-o", "x"][..],
        &["repair", "nonexist.mkv", "-o", "y.mkv"][..],
    ] {
        let err = one_line(args);
        assert_eq!(
            err, "freek4a: cannot open nonexist.mkv: No such file or directory (os error 2)\n",
            "{args:?}"
        );
    }
    for args in [
        &["info", "empty.mkv"][..],
        &["extract", "empty.mkv", "-o", "x"][..],
        &["repair", "empty.mkv", "-o", "y.mkv"][..],
    ] {
        assert_eq!(
            one_line(args),
            "freek4a: empty.mkv: the file is empty (0 bytes)\n",
            "{args:?}"
        );
    }
    // `info DIR` summarises a rig; a directory without recordings says so.
    let err = one_line(&["info", "folder.mkv"]);
    assert_eq!(err, "freek4a: folder.mkv holds no .mkv recording\n");
    let err = one_line(&["repair", "folder.mkv", "-o", "z.mkv"]);
    assert!(
        err.contains("folder.mkv") && err.contains("is a directory"),
        "{err}"
    );
    // Repair's output failures name the output, not the input.
    let err = one_line(&["repair", real_s, "-o", "nodir/out.mkv"]);
    assert!(
        err.contains("nodir/out.mkv") && !err.contains(REAL_RECORDING),
        "{err}"
    );
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    // A depth engine path that is not a library: the loader's own reason.
    std::fs::write(dir.join("notalib.so"), b"not a library\n").unwrap();
    let out = run_in(
        "k4arecorder",
        Some(dir.path()),
        &[
            "--no-progress",
            "--emulate",
            "--depth-engine",
            "./notalib.so",
            "-l",
            "1",
            "d.mkv",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("./notalib.so: file too short"), "{err}");
}

/// Item 10: without a camera "Device not found." keeps its line and hints follow on stderr;
/// --version exists on both binaries; a mistyped option names itself.
#[test]
fn device_not_found_explains_itself_and_version_is_printed() {
    let dir = TempDir::new("contact-messages");
    let presence = freek4a::transport::discovery::UsbPresence::scan();
    let plugged = presence.functions.iter().any(|f| f.accessible);
    for (bin, args) in [
        ("k4arecorder", &["out.mkv"][..]),
        ("freek4a", &["record", "out.mkv"][..]),
    ] {
        if plugged {
            util::skip("an Azure Kinect is attached; cannot check \"Device not found.\"");
            break;
        }
        let out = run_in(bin, Some(dir.path()), args);
        assert_eq!(out.status.code(), Some(1), "{bin}");
        assert_eq!(text(&out.stdout), "", "{bin}");
        let err = text(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines[0], "Device not found.", "{bin}: {err}");
        let hints: Vec<&str> = lines[1..]
            .iter()
            .copied()
            .take_while(|l| l.starts_with("Hint: "))
            .collect();
        assert_eq!(hints.len(), 2, "{bin}: {err}");
        assert!(hints[1].contains("--emulate"), "{err}");
        let cause = if !Path::new("/dev/bus/usb").is_dir() {
            "no /dev/bus/usb"
        } else if presence.functions.is_empty() {
            "no Azure Kinect is plugged in"
        } else {
            "udev"
        };
        assert!(hints[0].contains(cause), "{bin}: {err}");
        assert!(!dir.join("out.mkv").exists());
    }
    // The hints read sysfs and usbfs; check them on a made-up tree too.
    let sys = dir.join("sys");
    let dev = dir.join("dev");
    for (name, pid, devnum) in [("2-1", "097c", 5), ("2-1.1", "097d", 6), ("1-1", "0001", 2)] {
        let d = sys.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("idVendor"),
            if pid == "0001" { "1d6b\n" } else { "045e\n" },
        )
        .unwrap();
        std::fs::write(d.join("idProduct"), format!("{pid}\n")).unwrap();
        std::fs::write(d.join("busnum"), "2\n").unwrap();
        std::fs::write(d.join("devnum"), format!("{devnum}\n")).unwrap();
    }
    std::fs::create_dir_all(dev.join("002")).unwrap();
    std::fs::write(dev.join("002/006"), b"").unwrap();
    let p = freek4a::transport::discovery::UsbPresence::scan_in(&sys, &dev);
    assert!(p.usbfs);
    assert_eq!(p.functions.len(), 2, "{p:?}");
    // The depth function's node is missing (no access), the colour function's is there; the
    // hints built from this are the CLI's unit tests'.
    let access: Vec<(String, bool)> = p
        .functions
        .iter()
        .map(|f| (f.node.display().to_string(), f.accessible))
        .collect();
    assert!(
        access.iter().any(|(n, a)| n.ends_with("002/005") && !a)
            && access.iter().any(|(n, a)| n.ends_with("002/006") && *a),
        "{access:?}"
    );
    let p = freek4a::transport::discovery::UsbPresence::scan_in(&sys, &dir.join("nothing"));
    assert!(!p.usbfs);

    let version = env!("CARGO_PKG_VERSION");
    let out = run_in("k4arecorder", None, &["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!("k4arecorder (freek4a) {version}\n")
    );
    let out = run_in("freek4a", None, &["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), format!("freek4a {version}\n"));
    // Microsoft's behaviour for a mistyped option (help on stdout, exit 0) plus one line.
    let out = run_in(
        "k4arecorder",
        Some(dir.path()),
        &["--rate", "15", "--colour-mode", "720p", "o.mkv"],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("k4arecorder [options] output.mkv\n"));
    assert_eq!(
        text(&out.stderr),
        "k4arecorder: unknown option '--colour-mode'\n"
    );
    let out = run_in(
        "freek4a",
        Some(dir.path()),
        &["record", "--colour-mode", "720p", "o.mkv"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).ends_with("freek4a: unknown option '--colour-mode'\n"),
        "{}",
        text(&out.stderr)
    );
}

/// Item 11: on a terminal, the summary gives the finished file's size (not 0 B) and the
/// progress line and summary count IR drops.
#[test]
fn terminal_summary_shows_the_file_size_and_ir_drops() {
    if !util::have_tool("script") {
        return;
    }
    let dir = TempDir::new("contact-summary");
    let out_path = dir.join("out.mkv");
    let cmd = format!(
        "{} --emulate -c 720p_NV12 -l 2 {}",
        util::bin_path("k4arecorder").display(),
        out_path.display()
    );
    // `script` runs the recorder on a pseudo-terminal, as a user would see it.
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("FREEK4A_EMULATE")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{shown}");
    let size = std::fs::metadata(&out_path).unwrap().len();
    assert!(size > 1_000_000);
    let summary = shown
        .split(['\r', '\n'])
        .find_map(|l| l.find("Recorded ").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("no summary in {shown:?}"));
    // ", 12.3 MiB (": the file's size in binary units, one decimal.
    let shown_bytes = summary
        .split(", ")
        .find_map(|part| {
            let (n, rest) = part.split_once(' ')?;
            let unit = rest.split(' ').next()?;
            let scale = match unit {
                "KiB" => 1u64 << 10,
                "MiB" => 1 << 20,
                "GiB" => 1 << 30,
                _ => return None,
            };
            Some((n.parse::<f64>().ok()?, scale))
        })
        .unwrap_or_else(|| panic!("no size in {summary}"));
    assert!(
        (shown_bytes.0 - size as f64 / shown_bytes.1 as f64).abs() <= 0.05,
        "{summary} (file is {size} bytes)"
    );
    // "dropped colour C depth D ir I imu M", with numbers (the shared machine may drop some).
    let counted = |l: &str| {
        let w: Vec<&str> = l.split_whitespace().collect();
        w.windows(9).any(|x| {
            x[0] == "dropped"
                && [x[1], x[3], x[5], x[7]] == ["colour", "depth", "ir", "imu"]
                && [x[2], x[4], x[6], x[8]]
                    .iter()
                    .all(|n| n.trim_end_matches(',').parse::<u64>().is_ok())
        })
    };
    assert!(counted(summary), "{summary}");
    assert!(
        shown
            .split(['\r', '\n'])
            .any(|l| l.contains("captures  dropped") && counted(l)),
        "no progress line with IR drops: {shown:?}"
    );
    judges(&out_path);
}
