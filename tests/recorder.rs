//! Integration tests: the recorder binaries end to end on emulated units, judged by Microsoft's
//! playback (tests/oracle/playback.py), plus the robustness trials (kill -9, full disk, unplug,
//! slow disk, stream faults, mutated files). `scripts/trials.sh` runs the trials at full size
//! through the same tests: `FREEK4A_KILL_TRIALS` (default 5) and `FREEK4A_FUZZ_EXECS` (default
//! 400) scale them; every trial prints a `TRIAL` line with its counts.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use freek4a::playback::info::RecordingInfo;
use freek4a::types::DepthMode;
use serde_json::Value;

use crate::util::{self, Oracle, TempDir};

/// A k4arecorder run whose stdout lines are timestamped as they arrive.
struct Run {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    seen: Vec<(Instant, String)>,
    stderr: std::thread::JoinHandle<String>,
    peak_rss_kb: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

fn spawn(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(util::bin_path("k4arecorder"));
    cmd.arg("--no-progress")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("FREEK4A_EMULATE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start k4arecorder");
    let out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send((Instant::now(), l));
        }
    });
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    // Peak RSS (VmHWM) of the recorder, polled while it runs.
    let peak_rss_kb = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (peak, pid) = (peak_rss_kb.clone(), child.id());
    std::thread::spawn(move || {
        let path = format!("/proc/{pid}/status");
        while let Ok(s) = std::fs::read_to_string(&path) {
            if let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak.fetch_max(kb, std::sync::atomic::Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    Run {
        child,
        lines,
        seen: Vec::new(),
        stderr,
        peak_rss_kb,
    }
}

impl Run {
    /// Waits for a stdout line starting with `prefix`; returns when it arrived.
    fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Instant {
        if let Some((t, _)) = self.seen.iter().find(|(_, l)| l.starts_with(prefix)) {
            return *t;
        }
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((t, l)) => {
                    let hit = l.starts_with(prefix);
                    self.seen.push((t, l));
                    if hit {
                        return t;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no line {prefix:?} within {timeout:?}; saw {:?}", self.seen);
                }
            }
        }
    }

    fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, sig).expect("send signal");
    }

    /// Waits for the exit (bounded); returns the status, all stdout lines and stderr.
    fn finish(mut self, timeout: Duration) -> (ExitStatus, Vec<(Instant, String)>, String) {
        let end = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!("k4arecorder did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = self.stderr.join().unwrap();
        self.seen.extend(self.lines.try_iter());
        // The reader thread ends with the pipe; collect anything still in flight.
        while let Ok(x) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(x);
        }
        (status, self.seen, stderr)
    }
}

fn out_of(lines: &[(Instant, String)]) -> String {
    lines.iter().map(|(_, l)| format!("{l}\n")).collect()
}

/// Microsoft's playback of `path`; asserts the SDK opened it.
fn judged(oracle: &Oracle, path: &Path) -> Value {
    let v = oracle.playback(path);
    assert_eq!(v["opened"], Value::Bool(true), "{}: {v:#}", path.display());
    v
}

/// A finished file: Segment size patched to the file's length and Cues present (the SDK logs
/// a warning when a file has no Cues, so a clean open log means they were found).
fn assert_finalized(path: &Path, v: &Value) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[40..44], &[0x18, 0x53, 0x80, 0x67], "Segment id");
    assert_eq!(bytes[44], 0x01, "8-byte Segment size");
    let mut size = 0u64;
    for b in &bytes[45..52] {
        size = size << 8 | u64::from(*b);
    }
    assert_ne!(size, (1 << 56) - 1, "Segment size still unknown");
    assert_eq!(size, bytes.len() as u64 - 52, "Segment size");
    assert_eq!(v["open_log"], Value::Array(vec![]), "SDK warnings: {v:#}");
}

fn info(path: &Path) -> RecordingInfo {
    RecordingInfo::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn within_10_percent(got: u64, want: f64) -> bool {
    (got as f64 - want).abs() <= want * 0.1 + 1.0
}

/// What a recording of `secs` seconds at `fps` must hold, checked in Microsoft's playback.
#[allow(clippy::too_many_arguments)]
fn check_recording(
    oracle: &Oracle,
    path: &Path,
    color: &str,
    depth: &str,
    fps: u64,
    imu: bool,
    secs: f64,
) -> Value {
    let v = judged(oracle, path);
    assert_finalized(path, &v);
    let c = &v["config"];
    assert_eq!(c["color_resolution"], color, "{c}");
    assert_eq!(c["depth_mode"], depth, "{c}");
    assert_eq!(c["camera_fps"], fps, "{c}");
    assert_eq!(c["imu_track_enabled"], imu, "{c}");
    if color != "OFF" {
        assert_eq!(c["color_format"], "MJPG", "{c}");
    }
    let captures = v["captures"].as_u64().unwrap();
    assert!(
        within_10_percent(captures, fps as f64 * secs),
        "{}: {captures} captures for {secs:.2} s at {fps} fps",
        path.display()
    );
    let ours = info(path);
    assert_eq!(
        ours.captures, captures,
        "our reader and Microsoft's disagree"
    );
    if imu {
        assert!(v["imu"]["count"].as_u64().unwrap() > 0);
        assert_eq!(v["imu"]["count"].as_u64().unwrap(), ours.imu_samples);
    } else {
        assert_eq!(ours.imu_samples, 0);
    }
    v
}

/// Device-time length of the images: first to last image plus one frame period, in µs.
fn image_span_usec(v: &Value, fps: u64) -> u64 {
    let (mut first, mut last) = (u64::MAX, 0);
    for k in ["color", "depth", "ir"] {
        let i = &v["images"][k];
        if i["count"].as_u64().unwrap_or(0) > 0 {
            first = first.min(i["first_usec"].as_u64().unwrap());
            last = last.max(i["last_usec"].as_u64().unwrap());
        }
    }
    last - first + 1_000_000 / fps
}

#[test]
fn microsoft_examples_with_length() {
    let _heavy = crate::util::heavy_test_lock();
    let Some(oracle) = Oracle::get() else { return };
    let dir = TempDir::new("rec-examples");
    // Microsoft's examples, -l shortened; and the default invocation with -l.
    // (arguments, colour resolution, depth mode, fps, IMU, seconds)
    type Case<'a> = (&'a [&'a str], &'a str, &'a str, u64, bool, u32);
    let cases: [Case; 3] = [
        (
            &[
                "-d",
                "WFOV_UNBINNED",
                "-c",
                "3072p",
                "-r",
                "15",
                "-l",
                "3",
                "--imu",
                "OFF",
            ],
            "3072P",
            "WFOV_UNBINNED",
            15,
            false,
            3,
        ),
        (
            &[
                "-d",
                "WFOV_2X2BINNED",
                "-c",
                "OFF",
                "--imu",
                "OFF",
                "-l",
                "2",
            ],
            "OFF",
            "WFOV_2X2BINNED",
            30,
            false,
            2,
        ),
        (&["-l", "3"], "1080P", "NFOV_UNBINNED", 30, true, 3),
    ];
    for (i, (args, color, depth, fps, imu, secs)) in cases.into_iter().enumerate() {
        let path = dir.join(&format!("ex{i}.mkv"));
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--emulate", path.to_str().unwrap()]);
        let mut run = spawn(&a, &[]);
        let started = run.wait_line("Started recording", Duration::from_secs(60));
        let stopping = run.wait_line("Stopping recording...", Duration::from_secs(30));
        let (status, lines, err) = run.finish(Duration::from_secs(60));
        assert_eq!(status.code(), Some(0), "{args:?}: {}{err}", out_of(&lines));
        let out = out_of(&lines);
        assert!(out.ends_with("Saving recording...\nDone\n"), "{out}");
        let v = check_recording(oracle, &path, color, depth, fps, imu, f64::from(secs));
        // -l N: N seconds of device time, within one frame period, and of wall time.
        let period_usec = 1_000_000 / fps;
        let span = image_span_usec(&v, fps);
        let want = u64::from(secs) * 1_000_000;
        assert!(
            span.abs_diff(want) <= period_usec,
            "{args:?}: recorded {span} µs of device time for -l {secs}"
        );
        let wall = stopping.duration_since(started);
        assert!(
            wall <= Duration::from_secs(u64::from(secs)) + Duration::from_micros(period_usec) * 3,
            "{args:?}: -l {secs} took {wall:?} of wall time"
        );
        eprintln!(
            "TRIAL example {args:?}: {span} µs device time, {wall:?} wall, {} captures",
            v["captures"]
        );
    }
}

fn record_until_signal(
    oracle: &Oracle,
    dir: &TempDir,
    name: &str,
    sig: rustix::process::Signal,
) -> (Value, PathBuf) {
    let path = dir.join(name);
    let mut run = spawn(&["--emulate", path.to_str().unwrap()], &[]);
    let started = run.wait_line("Started recording", Duration::from_secs(60));
    run.wait_line("Press Ctrl-C to stop recording.", Duration::from_secs(5));
    // Long enough that the captures queued while the device started (a few) stay within 10 %.
    std::thread::sleep(Duration::from_millis(4000));
    let sent = Instant::now();
    run.signal(sig);
    let (status, lines, err) = run.finish(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{}{err}", out_of(&lines));
    let out = out_of(&lines);
    assert!(
        out.ends_with("Stopping recording...\nSaving recording...\nDone\n"),
        "{out}"
    );
    let secs = sent.duration_since(started).as_secs_f64();
    let v = check_recording(oracle, &path, "1080P", "NFOV_UNBINNED", 30, true, secs);
    (v, path)
}

#[test]
fn default_invocation_stopped_by_sigint_or_sigterm_is_finished() {
    let _heavy = crate::util::heavy_test_lock();
    let Some(oracle) = Oracle::get() else { return };
    let dir = TempDir::new("rec-signal");
    record_until_signal(oracle, &dir, "int.mkv", rustix::process::Signal::INT);
    record_until_signal(oracle, &dir, "term.mkv", rustix::process::Signal::TERM);
}

#[test]
fn list_shows_both_emulated_units() {
    // `--emulate=units=2`: the command line's default seed is 0.
    let backend = freek4a::emulator::EmulatedBackend::new(freek4a::emulator::EmulatorSpec {
        units: 2,
        seed: 0,
        ..Default::default()
    });
    let want: String = (0..2)
        .map(|i| {
            format!(
                "Index:{i}\tSerial:{}\tColor:1.6.110\tDepth:1.6.79\n",
                backend.serial(i).unwrap()
            )
        })
        .collect();
    for (args, env) in [
        (vec!["--emulate=units=2", "--list"], None),
        (vec!["--list"], Some("units=2")),
    ] {
        let mut cmd = Command::new(util::bin_path("k4arecorder"));
        cmd.args(&args).env_remove("FREEK4A_EMULATE");
        if let Some(e) = env {
            cmd.env("FREEK4A_EMULATE", e);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            want,
            "{args:?} {env:?}"
        );
    }
}

#[test]
fn runtime_refusals_exit_one() {
    let dir = TempDir::new("rec-refuse");
    let p = dir.join("x.mkv");
    for (args, message) in [
        (vec!["--device", "1"], "Device not found.\n"),
        (
            vec!["-c", "OFF", "-d", "OFF"],
            "Either the color or depth modes must be enabled to record.\n",
        ),
    ] {
        let mut a = args.clone();
        a.extend(["--emulate", p.to_str().unwrap()]);
        let (status, _, err) = spawn(&a, &[]).finish(Duration::from_secs(30));
        assert_eq!(status.code(), Some(1), "{args:?}");
        // Microsoft's line on its own; "Device not found." is followed by a hint.
        let (first, rest) = err.split_at(message.len().min(err.len()));
        assert_eq!(first, message, "{args:?}");
        assert!(
            rest.is_empty() || rest.starts_with("Hint: "),
            "{args:?}: {err}"
        );
    }
    // An unwritable output path.
    let (status, _, err) =
        spawn(&["--emulate", "/nonexistent/dir/x.mkv"], &[]).finish(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1));
    assert!(
        err.starts_with("Unable to create recording file: /nonexistent/dir/x.mkv\n"),
        "{err}"
    );
}

fn freek4a(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(util::bin_path("freek4a"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn toolbox_info_and_extract_match_the_recording() {
    let Some(oracle) = Oracle::get() else { return };
    let dir = TempDir::new("rec-toolbox");
    let path = dir.join("t.mkv");
    let (status, lines, err) = spawn(
        &["-c", "720p", "-l", "2", "--emulate", path.to_str().unwrap()],
        &[],
    )
    .finish(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{}{err}", out_of(&lines));
    let v = oracle.playback_with(&path, &["--pixel", "320,288", "--pixel", "20,20"]);
    assert_eq!(v["opened"], true);

    // info --json against the SDK's view.
    let (code, json, e) = freek4a(&["info", "--json", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{e}");
    let j: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(j["captures"], v["captures"]);
    assert_eq!(j["imu_samples"], v["imu"]["count"]);
    assert_eq!(j["color_images"], v["images"]["color"]["count"]);
    assert_eq!(j["depth_images"], v["images"]["depth"]["count"]);
    assert_eq!(j["color_mode"], "MJPG_720P");
    assert_eq!(j["serial_number"], v["tags"]["K4A_DEVICE_SERIAL_NUMBER"]);
    assert_eq!(
        j["start_offset_usec"],
        v["config"]["start_timestamp_offset_usec"]
    );
    assert_eq!(j["length_usec"], v["length_usec"]);

    // extract: counts equal the reader's, depth values are the emulated scene's.
    let out_dir = dir.join("x");
    let (code, text, e) = freek4a(&[
        "extract",
        path.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{e}");
    let ours = info(&path);
    let count = |sub: &str| std::fs::read_dir(out_dir.join(sub)).unwrap().count() as u64;
    assert_eq!(count("color"), ours.color_images, "{text}");
    assert_eq!(count("depth"), ours.depth_images);
    assert_eq!(count("ir"), ours.ir_images);
    let imu_rows = std::fs::read_to_string(out_dir.join("imu.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count() as u64;
    assert_eq!(imu_rows, ours.imu_samples);
    let mut depth_files: Vec<_> = std::fs::read_dir(out_dir.join("depth"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    depth_files.sort();
    let dec = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&depth_files[0]).unwrap(),
    ));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut buf).unwrap();
    assert_eq!((frame.width, frame.height), (640, 576));
    let px = |x: usize, y: usize| {
        let i = (y * 640 + x) * 2;
        u16::from_be_bytes([buf[i], buf[i + 1]])
    };
    // The scene: a wall at 2000 mm with a box at 1000 mm in the middle; the SDK agrees.
    assert_eq!(px(320, 288), 1000);
    assert_eq!(px(20, 20), 2000);
    assert_eq!(v["first_pixels"]["depth"]["at"]["320,288"], 1000);
    assert_eq!(v["first_pixels"]["depth"]["at"]["20,20"], 2000);
    // calibration.json: the attachment's bytes.
    let cal = std::fs::read(out_dir.join("calibration.json")).unwrap();
    let mut pb = freek4a::playback::Playback::open(&path).unwrap();
    assert_eq!(Some(cal.as_slice()), pb.calibration());
    assert!(pb.next_capture().unwrap().is_some());
}

/// One kill -9 trial: record for `after`, kill, judge; then repair and judge again.
/// Returns (expected, recovered by the SDK, recovered after repair, lost bytes bound held).
fn kill_trial(oracle: &Oracle, dir: &TempDir, n: usize, after: Duration) -> (u64, u64, u64) {
    let path = dir.join(&format!("kill{n}.mkv"));
    let mut run = spawn(&["--emulate", path.to_str().unwrap()], &[]);
    let started = run.wait_line("Started recording", Duration::from_secs(60));
    std::thread::sleep(after);
    let killed_at = Instant::now();
    run.signal(rustix::process::Signal::KILL);
    let (status, _, _) = run.finish(Duration::from_secs(30));
    assert_eq!(status.code(), None, "killed by a signal");
    let expected = (killed_at.duration_since(started).as_secs_f64() * 30.0) as u64;
    let v = judged(oracle, &path);
    let sdk = v["captures"].as_u64().unwrap();
    let ours = info(&path);
    assert_eq!(sdk, ours.captures, "trial {n}: SDK and reader disagree");
    // Every cluster that reached the disk is readable: only a cut last cluster is missing.
    let pb = freek4a::playback::Playback::open(&path).unwrap();
    let incomplete = pb.clusters().iter().filter(|c| !c.complete).count();
    assert!(
        incomplete <= 1,
        "trial {n}: {incomplete} incomplete clusters"
    );
    // The recorder's writer holds clusters for RECORDER_CLUSTER_WRITE_DELAY_NS of device time
    // (the SDK holds 2 s) before they reach the disk; nothing older than that (plus a few
    // frames of pipeline latency) may be missing.
    let held = freek4a::record::RECORDER_CLUSTER_WRITE_DELAY_NS * 30 / 1_000_000_000;
    assert!(
        sdk + held + 4 >= expected,
        "trial {n}: {sdk} captures recovered of {expected}"
    );
    let fixed = dir.join(&format!("kill{n}-repaired.mkv"));
    let (code, _, e) = freek4a(&[
        "repair",
        path.to_str().unwrap(),
        "-o",
        fixed.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "trial {n}: repair: {e}");
    let r = judged(oracle, &fixed);
    assert_finalized(&fixed, &r);
    let repaired = r["captures"].as_u64().unwrap();
    // Repair drops the cut last cluster, whose complete blocks the readers still show (a 32 ms
    // cluster holds at most two captures); everything before it is kept.
    assert!(
        repaired <= sdk && sdk - repaired <= 2,
        "trial {n}: repair kept {repaired} of {sdk} captures"
    );
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&fixed);
    (expected, sdk, repaired)
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn trial_kill_9_at_random_moments() {
    let _heavy = crate::util::heavy_test_lock();
    let Some(oracle) = Oracle::get() else { return };
    let dir = TempDir::new("rec-kill");
    let trials = env_count("FREEK4A_KILL_TRIALS", 5);
    let mut rng = freek4a::emulator::Rng::new(0x6b69_6c6c);
    let (mut expected, mut sdk, mut repaired, mut opened) = (0, 0, 0, 0);
    for n in 0..trials {
        // From 1 s on: before the first cluster is written (up to 2 s, or 24 MiB, of data is held by
        // the writer) the file holds only its header, and Microsoft refuses a file without frames.
        let after = Duration::from_millis(1000 + rng.next_u64() % 3200);
        let (e, s, r) = kill_trial(oracle, &dir, n, after);
        eprintln!(
            "kill trial {n}: killed after {after:?}: expected ~{e}, SDK read {s}, repaired {r}"
        );
        expected += e;
        sdk += s;
        repaired += r;
        opened += 1;
    }
    eprintln!(
        "TRIAL kill-9: {trials} trials, {opened} opened by Microsoft's playback, captures expected ~{expected}, recovered {sdk}, after repair {repaired}"
    );
}

/// A small filesystem for the full-disk trial: tmpfs, else a loop-mounted image; unmounted on
/// drop.
struct SmallFs {
    dir: PathBuf,
    image: Option<PathBuf>,
}

impl SmallFs {
    fn mount(dir: &TempDir) -> Result<SmallFs, String> {
        let mnt = dir.join("small");
        std::fs::create_dir_all(&mnt).unwrap();
        let ok = |c: &mut Command| c.output().map(|o| o.status.success()).unwrap_or(false);
        if ok(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=40m", "tmpfs"])
            .arg(&mnt))
        {
            return Ok(SmallFs {
                dir: mnt,
                image: None,
            });
        }
        let img = dir.join("small.img");
        let made = ok(Command::new("truncate").args(["-s", "40M"]).arg(&img))
            && ok(Command::new("mkfs.ext4").arg("-q").arg(&img))
            && ok(Command::new("mount")
                .args(["-o", "loop"])
                .arg(&img)
                .arg(&mnt));
        if made {
            Ok(SmallFs {
                dir: mnt,
                image: Some(img),
            })
        } else {
            Err("cannot mount a 40 MB tmpfs or loop image here (needs root)".into())
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).output();
        if let Some(i) = &self.image {
            let _ = std::fs::remove_file(i);
        }
    }
}

#[test]
fn trial_full_disk_stops_with_a_finished_file() {
    let Some(oracle) = Oracle::get() else { return };
    let dir = TempDir::new("rec-full");
    let fs = match SmallFs::mount(&dir) {
        Ok(fs) => fs,
        Err(e) => return util::skip(&e),
    };
    let path = fs.dir.join("full.mkv");
    let (status, lines, err) = spawn(&["-l", "10", "--emulate", path.to_str().unwrap()], &[])
        .finish(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{}{err}", out_of(&lines));
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("Recording stopped: writing"), "{err}");
    let v = judged(oracle, &path);
    let ours = info(&path);
    assert!(ours.captures > 0);
    assert_eq!(v["captures"].as_u64(), Some(ours.captures));
    // Finished in place: the size and Duration are patched (no room was left for Cues).
    let bytes = std::fs::read(&path).unwrap();
    assert_ne!(
        &bytes[44..52],
        &[1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
    );
    assert!(ours.info_duration_usec.unwrap_or(0.0) > 0.0);
    eprintln!(
        "TRIAL full-disk: exit 1, Microsoft's playback opened, {} captures kept",
        ours.captures
    );
}

#[test]
fn trial_unplug_finishes_the_file_and_exits_one() {
    let Some(oracle) = Oracle::get() else { return };
    let dir = TempDir::new("rec-unplug");
    let path = dir.join("unplug.mkv");
    let (status, lines, err) = spawn(&["--emulate=unplug_after=2", path.to_str().unwrap()], &[])
        .finish(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{}{err}", out_of(&lines));
    assert!(err.contains("device disconnected"), "{err}");
    assert!(out_of(&lines).ends_with("Saving recording...\nDone\n"));
    let v = judged(oracle, &path);
    assert_finalized(&path, &v);
    let n = v["captures"].as_u64().unwrap();
    assert!((30..=66).contains(&n), "{n} captures in about 2 s");
    eprintln!("TRIAL unplug: exit 1, Microsoft's playback opened, {n} captures");
}

#[test]
fn trial_stream_faults() {
    let _heavy = crate::util::heavy_test_lock();
    let Some(oracle) = Oracle::get() else { return };
    let dir = TempDir::new("rec-faults");
    // Transient: damaged IMU packets and short colour payloads are dropped and counted; the
    // recording goes on.
    let path = dir.join("transient.mkv");
    let (status, lines, err) = spawn(
        &[
            "-l",
            "3",
            "--emulate=fault=imu:corrupt:50:5,fault=depth:short:20:3",
            path.to_str().unwrap(),
        ],
        &[],
    )
    .finish(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{}{err}", out_of(&lines));
    let v = judged(oracle, &path);
    assert_finalized(&path, &v);
    let ours = info(&path);
    let dropped = |k: &str| ours.dropped.iter().find(|(n, _)| n == k).map(|x| x.1);
    assert!(dropped("IMU").unwrap_or(0) >= 5, "{:?}", ours.dropped);
    assert!(dropped("DEPTH").unwrap_or(0) >= 3, "{:?}", ours.dropped);
    assert!(within_10_percent(ours.captures, 87.0), "{}", ours.captures);
    // A stalled depth endpoint fails the stream, as in the SDK: finished file, exit 1.
    let path = dir.join("stall.mkv");
    let (status, lines, err) = spawn(
        &["--emulate=fault=depth:stall:45", path.to_str().unwrap()],
        &[],
    )
    .finish(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{}{err}", out_of(&lines));
    assert!(
        err.contains("Runtime error: k4a_device_get_capture() returned 1"),
        "{err}"
    );
    assert!(err.to_lowercase().contains("stall"), "{err}");
    let v = judged(oracle, &path);
    assert_finalized(&path, &v);
    assert!(v["captures"].as_u64().unwrap() > 20);
    eprintln!(
        "TRIAL faults: transient drops {:?}; stall exit 1 with {} captures",
        ours.dropped, v["captures"]
    );
}

#[test]
fn trial_slow_disk_bounds_memory_and_counts_drops() {
    let Some(oracle) = Oracle::get() else { return };
    let dir = TempDir::new("rec-slow");
    let path = dir.join("slow.mkv");
    let mut run = spawn(
        &[
            "-d",
            "WFOV_UNBINNED",
            "-c",
            "3072p",
            "-r",
            "15",
            "--imu",
            "OFF",
            "-l",
            "8",
            "--emulate",
            path.to_str().unwrap(),
        ],
        &[("FREEK4A_TEST_WRITE_DELAY_MS", "60")],
    );
    run.wait_line("Started recording", Duration::from_secs(60));
    let peak = run.peak_rss_kb.clone();
    let (status, lines, err) = run.finish(Duration::from_secs(120));
    let peak_mb = peak.load(std::sync::atomic::Ordering::Relaxed) / 1024;
    assert_eq!(status.code(), Some(0), "{}{err}", out_of(&lines));
    let v = judged(oracle, &path);
    assert_finalized(&path, &v);
    let ours = info(&path);
    let dropped = |k: &str| ours.dropped.iter().find(|(n, _)| n == k).map_or(0, |x| x.1);
    let (dc, dd) = (dropped("COLOR"), dropped("DEPTH"));
    assert!(
        dc > 0 && dd > 0,
        "a slow disk must show drops: {:?}",
        ours.dropped
    );
    // Every frame is either in the file or counted.
    let total = ours.captures + dd;
    assert!(
        within_10_percent(total, 120.0),
        "{} kept + {dd} dropped",
        ours.captures
    );
    // The writer queue (256 MiB) and the writer's pending clusters bound the memory.
    assert!(peak_mb < 700, "peak RSS {peak_mb} MB");
    eprintln!(
        "TRIAL slow-disk: exit 0, Microsoft's playback opened, {} captures kept, dropped colour {dc} depth {dd}, peak RSS {peak_mb} MB",
        ours.captures
    );
}

fn mutate(rng: &mut freek4a::emulator::Rng, seed: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    let edits = 1 + rng.next_u64() % 8;
    for _ in 0..edits {
        if d.is_empty() {
            break;
        }
        let at = (rng.next_u64() % d.len() as u64) as usize;
        match rng.next_u64() % 6 {
            0 => d[at] ^= 1 << (rng.next_u64() % 8),
            1 => d[at] = [0x00, 0xFF, 0x80, 0x01, 0x7F, 0x08][(rng.next_u64() % 6) as usize],
            2 => d.truncate(at),
            3 => {
                let n = ((rng.next_u64() % 64) as usize).min(d.len() - at);
                d.drain(at..at + n);
            }
            4 => {
                let n = ((rng.next_u64() % 64) as usize).min(d.len() - at);
                let chunk = d[at..at + n].to_vec();
                d.splice(at..at, chunk);
            }
            _ => {
                // Size fields: overwrite 8 bytes with an EBML size prefix and a huge value.
                for (i, b) in [0x01u8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]
                    .iter()
                    .enumerate()
                {
                    if let Some(x) = d.get_mut(at + i) {
                        *x = *b;
                    }
                }
            }
        }
    }
    d
}

#[test]
fn trial_mutated_files_never_panic_the_reader() {
    let execs = env_count("FREEK4A_FUZZ_EXECS", 400);
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for e in std::fs::read_dir(util::repo_root().join("tests/fixtures")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "mkv") {
            let b = std::fs::read(&p).unwrap();
            seeds.push(b[..b.len().min(65536)].to_vec());
            if b.len() <= 300_000 {
                seeds.push(b);
            }
        }
    }
    assert!(!seeds.is_empty());
    let mut rng = freek4a::emulator::Rng::new(0xf022);
    let mut crashes = 0;
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let t0 = Instant::now();
    for i in 0..execs {
        let seed = &seeds[i % seeds.len()];
        let input = mutate(&mut rng, seed);
        if std::panic::catch_unwind(|| freek4a::playback::exercise::read_everything(&input))
            .is_err()
        {
            crashes += 1;
            let p = std::env::temp_dir().join(format!("freek4a-crash-{i}.mkv"));
            let _ = std::fs::write(&p, &input);
            eprintln!("crash on mutated input saved to {}", p.display());
        }
    }
    std::panic::set_hook(prev);
    eprintln!(
        "TRIAL fuzz: {execs} executions on {} seeds in {:?}, {crashes} crashes",
        seeds.len(),
        t0.elapsed()
    );
    assert_eq!(crashes, 0);
}

/// Every depth mode recorded from the emulated unit (through the emulated engine, loaded over
/// the plugin ABI) reads back in Microsoft's playback with the synthetic scene's distances —
/// a wall at 2000 mm, a box at 1000 mm over the middle half of the view — and IR present.
#[test]
fn depth_modes_show_the_scene_in_microsofts_playback() {
    let Some(oracle) = Oracle::get() else { return };
    let dir = TempDir::new("rec-depth-modes");
    let scene = freek4a::protocol::depth_raw::Scene::default();
    for (mode, rate) in [
        (DepthMode::Nfov2x2Binned, "30"),
        (DepthMode::NfovUnbinned, "30"),
        (DepthMode::Wfov2x2Binned, "30"),
        (DepthMode::WfovUnbinned, "15"),
        (DepthMode::PassiveIr, "30"),
    ] {
        let (w, h) = mode.dimensions().unwrap();
        let path = dir.join(&format!("{}.mkv", mode.name()));
        let (status, lines, err) = spawn(
            &[
                "-d",
                mode.name(),
                "-c",
                "OFF",
                "--imu",
                "OFF",
                "-r",
                rate,
                "-l",
                "1",
                "--emulate=speed=max",
                path.to_str().unwrap(),
            ],
            &[],
        )
        .finish(Duration::from_secs(60));
        assert_eq!(status.code(), Some(0), "{mode:?}: {}{err}", out_of(&lines));
        let (cx, cy, ex, ey) = (w / 2, h / 2, w / 16, h / 16);
        let centre = format!("{cx},{cy}");
        let edge = format!("{ex},{ey}");
        let v = oracle.playback_with(&path, &["--pixel", &centre, "--pixel", &edge]);
        assert_eq!(v["opened"], true, "{mode:?}");
        assert_eq!(v["config"]["depth_mode"], mode.name(), "{mode:?}");
        let ir = &v["first_pixels"]["ir"];
        assert_eq!(ir["count"], w * h, "{mode:?}: IR image size");
        assert_eq!(ir["at"][&centre], scene.ir(cx, cy, w, h), "{mode:?}");
        assert_eq!(ir["at"][&edge], scene.ir(ex, ey, w, h), "{mode:?}");
        if mode.has_depth() {
            let d = &v["first_pixels"]["depth"];
            assert_eq!(d["count"], w * h, "{mode:?}: depth image size");
            // Exact, so well within the 1 mm the issue asks for.
            assert_eq!(d["at"][&centre], scene.box_mm, "{mode:?}");
            assert_eq!(d["at"][&edge], scene.wall_mm, "{mode:?}");
            assert_eq!(d["min"], scene.box_mm.min(scene.wall_mm), "{mode:?}");
            assert_eq!(d["max"], scene.box_mm.max(scene.wall_mm), "{mode:?}");
        } else {
            assert!(
                v["first_pixels"].get("depth").is_none(),
                "{mode:?}: passive IR has no depth"
            );
        }
        assert!(v["images"]["ir"]["count"].as_u64().unwrap() > 0, "{mode:?}");
    }
}
