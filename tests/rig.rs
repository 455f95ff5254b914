//! Rigs of units wired with sync cables: the emulator's model (pulses, start order, a late
//! subordinate), `freek4a record --devices`, `freek4a match` and `freek4a info OUTDIR`.

use std::time::Duration;

use freek4a::device::{DepthEngineChoice, Device, OpenOptions};
use freek4a::emulator::{EmulatedBackend, EmulatorSpec, Speed};
use freek4a::types::{
    Capture, ColorResolution, DepthMode, DeviceConfig, Fps, ImageFormat, WiredSyncMode,
};

const WAIT: Duration = Duration::from_secs(20);

fn raw_options() -> OpenOptions {
    OpenOptions {
        depth_engine: DepthEngineChoice::RawOnly,
        ..Default::default()
    }
}

fn rig_config(mode: WiredSyncMode, delay_usec: u32) -> DeviceConfig {
    DeviceConfig {
        color_format: ImageFormat::Nv12,
        color_resolution: ColorResolution::R720p,
        depth_mode: DepthMode::NfovUnbinned,
        camera_fps: Fps::Fps30,
        wired_sync_mode: mode,
        subordinate_delay_off_master_usec: delay_usec,
        ..Default::default()
    }
}

fn color_usec(c: &Capture) -> u64 {
    c.color
        .as_ref()
        .expect("colour image")
        .device_timestamp_usec
}

fn chain(units: usize, speed: Speed) -> EmulatedBackend {
    EmulatedBackend::new(EmulatorSpec {
        units,
        speed,
        seed: 11,
        sync_cables: true,
        ..Default::default()
    })
}

/// Subordinates started first and then the master: every subordinate frame is the master's
/// frame time plus its delay, on the master's clock; the journal shows the order.
#[test]
fn subordinates_follow_the_master_clock_plus_their_delay() {
    let _lock = crate::util::heavy_test_lock();
    let b = chain(3, Speed::RealTime);
    let mut master = Device::open_with(&b, 0, raw_options()).unwrap();
    let mut subs: Vec<Device> = (1..3)
        .map(|i| Device::open_with(&b, i, raw_options()).unwrap())
        .collect();
    for (i, s) in subs.iter_mut().enumerate() {
        let delay = 160 * (i as u32 + 1);
        s.start_cameras(&rig_config(WiredSyncMode::Subordinate, delay))
            .unwrap();
    }
    assert!(subs[0]
        .get_capture(Duration::from_millis(300))
        .unwrap()
        .is_none());
    master
        .start_cameras(&rig_config(WiredSyncMode::Master, 0))
        .unwrap();
    let mut master_ts: Vec<u64> = Vec::new();
    let mut sub_ts: Vec<Vec<u64>> = vec![Vec::new(); 2];
    for _ in 0..20 {
        master_ts.push(color_usec(&master.get_capture(WAIT).unwrap().unwrap()));
        for (i, s) in subs.iter().enumerate() {
            sub_ts[i].push(color_usec(&s.get_capture(WAIT).unwrap().unwrap()));
        }
    }
    for (i, ts) in sub_ts.iter().enumerate() {
        let delay = 160 * (i as u64 + 1);
        let matched = ts
            .iter()
            .filter(|t| {
                master_ts
                    .iter()
                    .any(|m| (**t as i64 - *m as i64 - delay as i64).abs() <= 12)
            })
            .count();
        // Pairing at start may leave the first capture or two out of step; the rest match.
        assert!(
            matched >= 17,
            "unit {}: {ts:?} vs master {master_ts:?}",
            i + 1
        );
    }
    master.stop_cameras().unwrap();
    for s in subs.iter_mut() {
        s.stop_cameras().unwrap();
    }
    let journal = b.journal();
    let first = |unit: usize, event: &str| {
        journal
            .iter()
            .position(|e| e.unit == unit && e.event == event)
            .unwrap_or_else(|| panic!("no {event} for unit {unit}: {journal:#?}"))
    };
    for sub in 1..3 {
        assert!(first(sub, "color-start") < first(0, "color-start"));
        assert!(first(sub, "depth-start") < first(0, "depth-start"));
        assert!(first(0, "first-pulse") < first(sub, "first-pulse"));
    }
}

/// The master started first (what the recorder never does): the subordinate misses every
/// frame before its own start, so the files begin out of step.
#[test]
fn a_subordinate_started_after_the_master_misses_the_earlier_frames() {
    let _lock = crate::util::heavy_test_lock();
    let b = chain(2, Speed::RealTime);
    let mut master = Device::open_with(&b, 0, raw_options()).unwrap();
    let mut sub = Device::open_with(&b, 1, raw_options()).unwrap();
    master
        .start_cameras(&rig_config(WiredSyncMode::Master, 0))
        .unwrap();
    let mut master_ts = Vec::new();
    for _ in 0..15 {
        master_ts.push(color_usec(&master.get_capture(WAIT).unwrap().unwrap()));
    }
    sub.start_cameras(&rig_config(WiredSyncMode::Subordinate, 160))
        .unwrap();
    let first_sub = color_usec(&sub.get_capture(WAIT).unwrap().unwrap());
    // 15 master frames (half a second) went by before the subordinate ever saw a pulse.
    assert!(
        first_sub > master_ts[14],
        "subordinate's first frame {first_sub} should come after {:?}",
        master_ts
    );
    // From then on it is on the master's grid plus its delay.
    let m = color_usec(&master.get_capture(WAIT).unwrap().unwrap());
    // The grid is k × 33 333.3 µs (to within the 90 kHz tick rounding).
    let off_grid = |t_usec: u64| {
        let period = 1e6 / 30.0;
        let t = t_usec as f64;
        (t - (t / period).round() * period).abs()
    };
    assert!(off_grid(first_sub - 160) <= 12.0, "{first_sub}");
    assert!(off_grid(m) <= 12.0, "{m}");
    let journal = b.journal();
    let pos = |unit: usize, event: &str| {
        journal
            .iter()
            .position(|e| e.unit == unit && e.event == event)
    };
    assert!(pos(0, "color-start") < pos(1, "color-start"));
    master.stop_cameras().unwrap();
    // The master's pulses stopped: the subordinate delivers nothing more once drained.
    let mut after_stop = 0;
    while sub
        .get_capture(Duration::from_millis(300))
        .unwrap()
        .is_some()
    {
        after_stop += 1;
        assert!(after_stop < 10, "subordinate kept streaming without pulses");
    }
    sub.stop_cameras().unwrap();
}

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::util::{bin_path, Oracle, TempDir};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `freek4a ARGS` with no emulation from the environment.
fn freek4a(args: &[&str]) -> Output {
    Command::new(bin_path("freek4a"))
        .args(args)
        .stdin(Stdio::null())
        .env_remove("FREEK4A_EMULATE")
        .output()
        .expect("run freek4a")
}

fn rig_json(dir: &Path) -> serde_json::Value {
    let t = std::fs::read_to_string(dir.join("rig.json")).expect("rig.json");
    serde_json::from_str(&t).expect("rig.json is JSON")
}

fn mkv_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "mkv"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Checks a recorded rig with Microsoft's playback and `freek4a match`: every file opens with
/// its unit's wired sync mode and delay, capture counts are within one, every capture pairs
/// with the master's within 100 µs of its delay. Returns the capture counts by serial.
fn judge_rig(oracle: &Oracle, dir: &Path, units: usize, color_tags: &[(&str, &str)]) -> Vec<u64> {
    let rig = rig_json(dir);
    let planned = rig["units"].as_array().expect("units");
    assert_eq!(planned.len(), units, "{rig:#}");
    let mut counts = Vec::new();
    for u in planned {
        let serial = u["serial"].as_str().unwrap();
        let path = dir.join(format!("{serial}.mkv"));
        let v = oracle.playback(&path);
        assert_eq!(v["opened"], true, "{serial}: {v:#}");
        let (mode, delay) = match u["role"].as_str().unwrap() {
            "master" => ("MASTER", 0),
            _ => ("SUBORDINATE", 160 * u["chain_position"].as_u64().unwrap()),
        };
        assert_eq!(v["config"]["wired_sync_mode"], mode, "{serial}: {v:#}");
        assert_eq!(
            v["config"]["subordinate_delay_off_master_usec"], delay,
            "{serial}: {v:#}"
        );
        assert_eq!(u["subordinate_delay_usec"], delay, "{rig:#}");
        assert_eq!(v["tags"]["K4A_DEVICE_SERIAL_NUMBER"], serial);
        for (name, want) in color_tags {
            assert_eq!(
                v["other_tags"][format!("FREEK4A_COLOR_{name}")],
                *want,
                "{serial}: {:#}",
                v["other_tags"]
            );
        }
        let n = v["captures"].as_u64().unwrap();
        assert_eq!(u["result"]["captures"], n, "{rig:#}");
        assert_eq!(u["result"]["finished"], true, "{rig:#}");
        counts.push(n);
    }
    let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(hi - lo <= 1, "capture counts {counts:?}");
    assert!(*lo >= 30, "capture counts {counts:?}");
    let out = freek4a(&["match", dir.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).expect("match JSON");
    let others = m["units"].as_array().unwrap();
    assert_eq!(others.len(), units - 1, "{m:#}");
    for u in others {
        assert_eq!(u["matched"], u["captures"], "every capture paired: {m:#}");
        assert!(u["max_error_usec"].as_u64().unwrap() <= 100, "{m:#}");
        assert_eq!(u["gaps"], 0, "{m:#}");
    }
    let csv = std::fs::read_to_string(dir.join("match.csv")).unwrap();
    assert_eq!(
        csv.lines().count() as u64,
        1 + m["master_captures"].as_u64().unwrap()
    );
    counts
}

/// Journal lines of one event kind: (unit index, order in the journal).
fn journal_positions(journal: &str, event: &str) -> Vec<(usize, usize)> {
    journal
        .lines()
        .enumerate()
        .filter(|(_, l)| l.split_whitespace().nth(3) == Some(event))
        .filter_map(|(i, l)| {
            let unit = l
                .split_whitespace()
                .nth(1)?
                .strip_prefix("unit=")?
                .parse()
                .ok()?;
            Some((unit, i))
        })
        .collect()
}

/// Issue 13: rigs of 2, 3 and 4 emulated units on a daisy chain, recorded from one command.
#[test]
fn rigs_of_two_three_and_four_units_from_one_command() {
    let Some(oracle) = Oracle::get() else {
        return;
    };
    let _lock = crate::util::heavy_test_lock();
    let dir = TempDir::new("rig-chain");
    for units in [2usize, 3, 4] {
        let out_dir = dir.join(&format!("rig{units}"));
        let journal = dir.join(&format!("journal{units}.txt"));
        let out = freek4a(&[
            "record",
            "--devices",
            "all",
            &format!(
                "--emulate=units={units},cables=chain,journal={}",
                journal.display()
            ),
            "--no-progress",
            "-l",
            "2",
            "-c",
            "720p",
            "-d",
            "NFOV_2X2BINNED",
            "-r",
            "30",
            "--brightness",
            "100",
            "--white-balance",
            "4500",
            "--powerline",
            "50",
            "--sharpness",
            "3",
            out_dir.to_str().unwrap(),
        ]);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(0), "{units} units: {all}");
        assert_eq!(mkv_files(&out_dir).len(), units, "{all}");
        judge_rig(
            oracle,
            &out_dir,
            units,
            &[
                ("BRIGHTNESS", "100"),
                ("WHITE_BALANCE_K", "4500"),
                ("POWERLINE_HZ", "50"),
                ("SHARPNESS", "3"),
                ("EXPOSURE_USEC", "auto"),
            ],
        );
        // Every subordinate started its cameras before the master (unit 0 of the chain).
        let j = std::fs::read_to_string(&journal).expect("journal");
        for event in ["depth-start", "color-start"] {
            let pos = journal_positions(&j, event);
            assert_eq!(pos.len(), units, "{event}: {j}");
            let master = pos.iter().find(|(u, _)| *u == 0).unwrap().1;
            for (u, p) in &pos {
                assert!(
                    *u == 0 || *p < master,
                    "unit {u} {event} after the master:\n{j}"
                );
            }
        }
        // The info summary shows the rig.
        let info = freek4a(&["info", out_dir.to_str().unwrap()]);
        let info_text = text(&info);
        assert!(info.status.success(), "{info_text}");
        assert!(
            info_text.contains(&format!("{units} recordings")),
            "{info_text}"
        );
        assert!(info_text.contains("brightness=100"), "{info_text}");
    }
}

/// The serials `freek4a list --emulate=SPEC` shows, in order.
fn serials(spec: &str) -> Vec<String> {
    let out = freek4a(&["list", &format!("--emulate={spec}")]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 12)
                .map(str::to_string)
        })
        .collect()
}

/// Rigs that must not start: each refusal says why, and nothing is recorded.
#[test]
fn rigs_refused_before_anything_starts() {
    let dir = TempDir::new("rig-refused");
    let chain2 = "units=2,cables=chain";
    let s = serials(chain2);
    assert_eq!(s.len(), 2, "{s:?}");
    let cases: Vec<(String, Vec<String>, &str)> = vec![
        (
            chain2.into(),
            vec!["-c".into(), "OFF".into()],
            "must stream colour",
        ),
        (
            chain2.into(),
            vec!["--devices-override".into()],
            "is not connected",
        ),
        (
            "units=3,cable=0:out,cable=1:in".into(),
            vec![],
            "has no sync cable in either jack",
        ),
        (
            "units=2,cables=chain,firmware=1:1.6.108/1.6.79".into(),
            vec![],
            "different firmware",
        ),
        (
            "units=2,cable=0:out,cable=1:out".into(),
            vec![],
            "could be a master",
        ),
        (
            chain2.into(),
            vec!["--brightness".into(), "999".into()],
            "out of range",
        ),
        (
            chain2.into(),
            vec!["--external-sync".into(), "Master".into()],
            "cannot be used with --devices",
        ),
    ];
    for (i, (spec, extra, want)) in cases.iter().enumerate() {
        let out_dir = dir.join(&format!("refused{i}"));
        let mut args: Vec<String> = vec!["record".into(), "--devices".into()];
        if extra.first().map(String::as_str) == Some("--devices-override") {
            args.push(format!("{},000000000000", s[0]));
        } else {
            args.push("all".into());
            args.extend(extra.iter().cloned());
        }
        args.extend([
            format!("--emulate={spec}"),
            "--no-progress".into(),
            "-l".into(),
            "1".into(),
            out_dir.to_str().unwrap().into(),
        ]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = freek4a(&argv);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{spec} {extra:?}: {all}");
        assert!(
            all.contains(want),
            "{spec} {extra:?}: want `{want}` in: {all}"
        );
        assert!(mkv_files(&out_dir).is_empty(), "{spec}: files were written");
    }
}

/// A subordinate unplugged mid-recording finishes its own file, the others go on to the end,
/// the exit status says so, and every file plays in Microsoft's playback.
#[test]
fn a_unit_unplugged_mid_recording_finishes_its_file_and_the_rig_goes_on() {
    let Some(oracle) = Oracle::get() else {
        return;
    };
    let _lock = crate::util::heavy_test_lock();
    let dir = TempDir::new("rig-unplug");
    let spec = "units=3,cables=chain,unplug_after=1.5,unplug_unit=2";
    let s = serials(spec);
    let out_dir = dir.join("rig");
    let out = freek4a(&[
        "record",
        "--devices",
        "all",
        &format!("--emulate={spec}"),
        "--no-progress",
        "-l",
        "3",
        "-c",
        "720p",
        "-d",
        "NFOV_2X2BINNED",
        "-r",
        "30",
        out_dir.to_str().unwrap(),
    ]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&format!("Unit {} (subordinate): recording cut short", s[2])),
        "{all}"
    );
    let rig = rig_json(&out_dir);
    let mut counts = std::collections::HashMap::new();
    for u in rig["units"].as_array().unwrap() {
        let serial = u["serial"].as_str().unwrap().to_string();
        assert_eq!(u["result"]["finished"], true, "{rig:#}");
        let v = oracle.playback(&out_dir.join(format!("{serial}.mkv")));
        assert_eq!(v["opened"], true, "{serial}: {v:#}");
        assert_eq!(v["capture_end_result"], 2, "{serial}: {v:#}");
        counts.insert(serial, v["captures"].as_u64().unwrap());
    }
    // The unplugged unit stopped early; the master and the other subordinate went on.
    assert!(counts[&s[2]] + 20 < counts[&s[0]], "{counts:?}");
    assert!(counts[&s[0]].abs_diff(counts[&s[1]]) <= 1, "{counts:?}");
    assert!(counts[&s[0]] >= 80, "{counts:?}");
}

/// One unit with the colour controls k4arecorder lacks: read back from the emulated camera
/// into the file's tags, as Microsoft's playback reads them.
#[test]
fn colour_controls_for_one_unit_reach_the_file() {
    let Some(oracle) = Oracle::get() else {
        return;
    };
    let dir = TempDir::new("rig-colour");
    let path = dir.join("one.mkv");
    let out = freek4a(&[
        "record",
        "--emulate=speed=max",
        "--no-progress",
        "-l",
        "1",
        "-c",
        "720p",
        "-d",
        "OFF",
        "--imu",
        "OFF",
        "-e",
        "8330",
        "-g",
        "40",
        "--contrast",
        "7",
        "--saturation",
        "40",
        "--white-balance",
        "auto",
        "--powerline",
        "60",
        "--backlight-compensation",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v = oracle.playback(&path);
    assert_eq!(v["opened"], true, "{v:#}");
    let tags = &v["other_tags"];
    for (name, want) in [
        ("CONTRAST", "7"),
        ("SATURATION", "40"),
        ("WHITE_BALANCE_K", "auto"),
        ("POWERLINE_HZ", "60"),
        ("BACKLIGHT_COMPENSATION", "1"),
        ("GAIN", "40"),
        ("EXPOSURE_USEC", "8330"),
    ] {
        assert_eq!(
            tags[format!("FREEK4A_COLOR_{name}")],
            want,
            "{name}: {tags:#}"
        );
    }
    // A value outside the camera's range is refused before recording.
    let bad = dir.join("bad.mkv");
    let out = freek4a(&[
        "record",
        "--emulate",
        "-l",
        "1",
        "--sharpness",
        "9",
        bad.to_str().unwrap(),
    ]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("--sharpness 9 is out of range"), "{all}");
    assert!(all.contains("accepts 0 to 4"), "{all}");
    assert!(!bad.exists());
}

/// The same rig through Linux's usbfs interface: the shipped binary, no `--emulate`, the
/// emulated units behind `freek4a-usbfs`. Three units' depth transfers need more than the
/// kernel's default 16 MiB usbfs budget (`usbcore.usbfs_memory_mb`), as on a real host; the
/// supervisor is given 64 MiB, as a rig's host would be configured.
#[test]
fn a_rig_through_the_usbfs_supervisor() {
    let Some(oracle) = Oracle::get() else {
        return;
    };
    let Some(tool) = crate::usbfs::supervisor() else {
        return;
    };
    let _lock = crate::util::heavy_test_lock();
    let dir = TempDir::new("rig-usbfs");
    // A rig of three chained units behind the supervisor with `memory_mb` of usbfs memory,
    // recording `args` into `out`.
    let rig = |memory_mb: &str, args: &[&str], out: &Path| {
        Command::new(tool)
            .args(["--emulate", "units=3,cables=chain"])
            .args(["--usbfs-memory-mb", memory_mb, "--"])
            .arg(bin_path("freek4a"))
            .args(["record", "--devices", "all", "--no-progress"])
            .args(["-c", "720p", "-d", "NFOV_2X2BINNED"])
            .args(args)
            .arg(out)
            .current_dir(dir.path())
            .env("FREEK4A_DEPTH_ENGINE", crate::util::emulated_depthengine())
            .env_remove("FREEK4A_EMULATE")
            .stdin(Stdio::null())
            .output()
            .expect("run freek4a-usbfs")
    };
    let out_dir = dir.join("rig");
    let out = rig(
        "64",
        &["-l", "2", "-r", "30", "--brightness", "90"],
        &out_dir,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("usbfs memory"), "{}", text(&out));
    judge_rig(oracle, &out_dir, 3, &[("BRIGHTNESS", "90")]);

    // The kernel's default 16 MiB cannot hold three units' transfers: the rig says so first.
    let small = rig("16", &["-l", "1"], &dir.join("rig16"));
    let all = text(&small);
    let warning = all
        .lines()
        .find(|l| l.starts_with("Warning: 3 units need at least"))
        .unwrap_or_else(|| panic!("no usbfs warning: {all}"));
    assert!(
        warning.contains("the kernel's limit of 16 MiB") && warning.contains("usbfs_memory_mb"),
        "{warning}"
    );
}
