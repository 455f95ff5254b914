//! What `--emulate` offers, judged by programs we did not write: colour frames in every format
//! as ffmpeg decodes them, and wired sync between emulated units in Microsoft's playback.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::{self, TempDir};

/// Runs `k4arecorder --no-progress ARGS` and asserts exit 0.
fn record(args: &[&str]) {
    let out = Command::new(util::bin_path("k4arecorder"))
        .arg("--no-progress")
        .args(args)
        .stdin(Stdio::null())
        .env_remove("FREEK4A_EMULATE")
        .output()
        .expect("run k4arecorder");
    assert_eq!(
        out.status.code(),
        Some(0),
        "k4arecorder {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Mean RGB of a 9x9 patch centred on (x, y).
fn patch(rgb: &[u8], w: usize, x: usize, y: usize) -> [i32; 3] {
    let mut sum = [0i32; 3];
    for yy in y - 4..=y + 4 {
        for xx in x - 4..=x + 4 {
            for (c, s) in sum.iter_mut().enumerate() {
                *s += rgb[(yy * w + xx) * 3 + c] as i32;
            }
        }
    }
    sum.map(|s| s / 81)
}

/// Issue 11 item 14: default recordings of every colour format k4arecorder offers pass ffprobe
/// at warning level with every colour frame decoded, and all formats decode to the same
/// full-range colour bars (MJPEG used to decode to 16–235, NV12 and YUY2 to 0–255).
#[test]
fn every_colour_format_decodes_cleanly_to_the_same_full_range_bars() {
    if !util::have_tool("ffprobe") || !util::have_tool("ffmpeg") {
        return;
    }
    let dir = TempDir::new("colour-formats");
    let mut bars: Vec<(String, Vec<[i32; 3]>)> = Vec::new();
    for (label, colour) in [
        ("1080p", None),
        ("720p", Some("720p")),
        ("NV12", Some("720p_NV12")),
        ("YUY2", Some("720p_YUY2")),
    ] {
        let path = dir.join(&format!("{label}.mkv"));
        let mut args = vec!["--emulate", "-l", "1"];
        if let Some(c) = colour {
            args.extend(["-c", c]);
        }
        let p = path.to_str().unwrap();
        args.push(p);
        record(&args);
        util::ffprobe(&path).unwrap_or_else(|e| panic!("{label}: {e}"));
        let frames = util::ffprobe_colour_frames(&path).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert!(frames >= 20, "{label}: {frames} colour frames decoded");
        let (w, h, rgb) =
            util::ffmpeg_first_colour_rgb(&path).unwrap_or_else(|e| panic!("{label}: {e}"));
        let (lo, hi) = (*rgb.iter().min().unwrap(), *rgb.iter().max().unwrap());
        assert!(
            lo <= 3 && hi >= 252,
            "{label}: decodes to {lo}..{hi}, not full range"
        );
        // Bar centres on the middle row (the first frame's square sits in the top-left corner).
        let row = h / 2;
        let centres: Vec<[i32; 3]> = (0..8)
            .map(|i| patch(&rgb, w, (2 * i + 1) * w / 16, row))
            .collect();
        check_bars(label, &centres, Path::new(&path));
        bars.push((label.to_string(), centres));
    }
    let (first, reference) = &bars[0];
    for (label, centres) in &bars[1..] {
        for (i, (a, b)) in reference.iter().zip(centres).enumerate() {
            for c in 0..3 {
                assert!(
                    (a[c] - b[c]).abs() <= 8,
                    "bar {i}: {first} {a:?} vs {label} {b:?}"
                );
            }
        }
    }
}

/// White, yellow, cyan, green, magenta, red, blue, black at full range.
fn check_bars(label: &str, centres: &[[i32; 3]], path: &Path) {
    const WANT: [[i32; 3]; 8] = [
        [255, 255, 255],
        [255, 255, 0],
        [0, 255, 255],
        [0, 255, 0],
        [255, 0, 255],
        [255, 0, 0],
        [0, 0, 255],
        [0, 0, 0],
    ];
    for (i, (got, want)) in centres.iter().zip(WANT).enumerate() {
        for c in 0..3 {
            assert!(
                (got[c] - want[c]).abs() <= 12,
                "{label} ({}): bar {i} is {got:?}, want {want:?}",
                path.display()
            );
        }
    }
}

/// Records one second with `--emulate=SPEC` and the extra options; returns the exit code and
/// everything printed.
fn try_record(spec: &str, extra: &[&str], path: &Path) -> (Option<i32>, String) {
    let out = Command::new(util::bin_path("k4arecorder"))
        .args(["--no-progress", &format!("--emulate={spec}"), "-l", "1"])
        .args(extra)
        .arg(path)
        .stdin(Stdio::null())
        .env_remove("FREEK4A_EMULATE")
        .output()
        .expect("run k4arecorder");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), all)
}

/// Issue 11 item 15: `--emulate` plugs sync cables in (per unit, or `cables=chain`), so Master
/// and Subordinate recordings come from emulated units, and Microsoft's playback reads their
/// wired sync mode and subordinate delay back.
#[test]
fn master_and_subordinate_recordings_from_emulated_sync_cables() {
    let Some(oracle) = util::Oracle::get() else {
        return;
    };
    let dir = TempDir::new("sync-cables");
    let cases: [(&str, &[&str], &str, u64); 4] = [
        ("cable=0:out", &["--external-sync", "Master"], "MASTER", 0),
        (
            "cable=0:in",
            &["--external-sync", "Subordinate", "--sync-delay", "160"],
            "SUBORDINATE",
            160,
        ),
        // The chain's master, and a middle unit wired in and out.
        (
            "units=3,cables=chain",
            &["--device", "0", "--external-sync", "Master"],
            "MASTER",
            0,
        ),
        (
            "units=2,cables=chain,cable=1:in+out",
            &["--device", "1", "--external-sync", "Master"],
            "MASTER",
            0,
        ),
    ];
    for (i, (spec, extra, mode, delay)) in cases.iter().enumerate() {
        let path = dir.join(&format!("sync-{i}.mkv"));
        let (code, all) = try_record(spec, extra, &path);
        assert_eq!(code, Some(0), "{spec} {extra:?}: {all}");
        let v = oracle.playback(&path);
        assert_eq!(v["opened"], true, "{spec}: {v:#}");
        assert_eq!(v["config"]["wired_sync_mode"], *mode, "{spec}: {v:#}");
        assert_eq!(
            v["config"]["subordinate_delay_off_master_usec"], *delay,
            "{spec}: {v:#}"
        );
        assert!(v["captures"].as_u64().unwrap() >= 20, "{spec}: {v:#}");
        assert!(
            v["images"]["depth"]["count"].as_u64().unwrap() >= 20,
            "{spec}: {v:#}"
        );
    }
    // Without the cable the mode is refused as on hardware (the SDK checks the jacks).
    for (spec, extra) in [
        ("", &["--external-sync", "Master"][..]),
        ("", &["--external-sync", "Subordinate"][..]),
        (
            "units=2,cables=chain",
            &["--device", "0", "--external-sync", "Subordinate"][..],
        ),
        (
            "units=2,cables=chain",
            &["--device", "1", "--external-sync", "Master"][..],
        ),
    ] {
        let (code, all) = try_record(spec, extra, &dir.join("refused.mkv"));
        assert_eq!(code, Some(1), "{spec} {extra:?} was not refused: {all}");
        assert!(all.contains("sync"), "{spec} {extra:?}: {all}");
    }
    // A bad cable spec is refused before anything is opened.
    let (code, all) = try_record("cable=3:in", &[], &dir.join("bad.mkv"));
    assert_ne!(code, Some(0), "{all}");
    assert!(all.contains("emulate cable `3:in` names unit 3"), "{all}");
}
