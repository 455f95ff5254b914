//! Raw depth recording (`--raw-depth`) and `freek4a convert-depth`, judged by Microsoft's
//! playback and mkvmerge: the raw file opens as a recording without depth, and its conversion
//! has the same depth and IR images as a direct recording of the same emulated unit.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::{bin_path, mkvmerge_identify, Oracle, TempDir};

/// Records `args` for 4 s with `k4arecorder --emulate=seed=11` into `out`: in real time, so the
/// raw frames' block times follow the unit's clock as they would on hardware, and at 5 fps, so
/// the raw data rate (27 MB/s in NFOV) stays within what a shared test machine's disk takes.
fn record(out: &Path, args: &[&str]) {
    let o = Command::new(bin_path("k4arecorder"))
        .args(["--emulate=seed=11", "--no-progress", "-l", "4", "-r", "5"])
        .args(args)
        .arg(out)
        .env_remove("FREEK4A_EMULATE")
        .env_remove("FREEK4A_DEPTH_ENGINE")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "k4arecorder {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// (timestamp, SHA-256) of every image of `stream` as Microsoft's playback returned them.
fn images(v: &Value, stream: &str) -> BTreeMap<u64, String> {
    let s = &v["images"][stream];
    let ts = s["timestamps_usec"].as_array().expect("timestamps listed");
    let shas = s["sha256s"].as_array().expect("hashes listed");
    assert_eq!(ts.len(), shas.len());
    ts.iter()
        .zip(shas)
        .map(|(t, h)| (t.as_u64().unwrap(), h.as_str().unwrap().to_owned()))
        .collect()
}

fn check_mode(o: &Oracle, dir: &TempDir, depth_mode: &str, color: &str) {
    let label = format!("{depth_mode} colour {color}");
    let direct = dir.join(&format!("{depth_mode}-{color}-direct.mkv"));
    let raw = dir.join(&format!("{depth_mode}-{color}-raw.mkv"));
    let converted = dir.join(&format!("{depth_mode}-{color}-converted.mkv"));
    let mode_args = ["-d", depth_mode, "-c", color];
    record(&direct, &mode_args);
    let mut raw_args = mode_args.to_vec();
    raw_args.push("--raw-depth");
    record(&raw, &raw_args);

    // Microsoft's playback opens the raw file as a recording without depth and reads its
    // colour and IMU; the raw track is not a capture stream to it.
    let r = o.playback(&raw);
    assert_eq!(r["opened"], true, "{label}: {r}");
    assert_eq!(r["config"]["depth_mode"], "OFF", "{label}");
    assert_eq!(r["images"]["depth"]["count"], 0, "{label}");
    assert_eq!(r["images"]["ir"]["count"], 0, "{label}");
    assert_eq!(r["config"]["imu_track_enabled"], true, "{label}");
    assert!(
        r["imu"]["count"].as_u64().unwrap() > 4000,
        "{label}: {}",
        r["imu"]
    );
    if color != "OFF" {
        assert!(
            r["images"]["color"]["count"].as_u64().unwrap() >= 18,
            "{label}"
        );
    }
    assert_eq!(
        r["other_tags"]["FREEK4A_RAW_DEPTH_MODE"], depth_mode,
        "{label}"
    );
    assert_eq!(r["calibration"]["present"], true, "{label}");
    // mkvmerge sees the raw track with our codec id.
    let id = mkvmerge_identify(&raw).unwrap();
    let codecs: Vec<&str> = id["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["properties"]["codec_id"].as_str())
        .collect();
    assert!(
        codecs.contains(&"V_FREEK4A/DEPTH_RAW"),
        "{label}: {codecs:?}"
    );

    let out = Command::new(bin_path("freek4a"))
        .args(["convert-depth"])
        .arg(&raw)
        .arg("-o")
        .arg(&converted)
        .env_remove("FREEK4A_DEPTH_ENGINE")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{label}: convert-depth: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("(0 dropped by the engine)"),
        "{label}: {text}"
    );

    let d = o.playback(&direct);
    let c = o.playback(&converted);
    assert_eq!(c["opened"], true, "{label}: {c}");
    // The same configuration; the start offset is each file's first data.
    let config = |v: &Value| {
        let mut c = v["config"].clone();
        c.as_object_mut()
            .unwrap()
            .remove("start_timestamp_offset_usec");
        c
    };
    assert_eq!(config(&c), config(&d), "{label}: configuration");
    assert_eq!(c["calibration"], d["calibration"], "{label}: calibration");
    for stream in ["depth", "ir"] {
        let (dm, cm) = (images(&d, stream), images(&c, stream));
        let common: Vec<u64> = cm.keys().filter(|t| dm.contains_key(t)).copied().collect();
        // Both files cover about 4 s at 5 fps; they start at slightly different frames.
        assert!(
            common.len() >= 16,
            "{label} {stream}: only {} of {} converted images share a timestamp with the direct \
             recording's {}",
            common.len(),
            cm.len(),
            dm.len()
        );
        let differing: Vec<u64> = common.iter().filter(|t| cm[t] != dm[t]).copied().collect();
        assert!(
            differing.is_empty(),
            "{label} {stream}: images differ at {differing:?}"
        );
        assert_eq!(c["images"][stream]["width"], d["images"][stream]["width"]);
        assert_eq!(c["images"][stream]["format"], d["images"][stream]["format"]);
    }
    // Colour and IMU are copied unchanged.
    let raw_colour = images(&r, "color");
    assert_eq!(images(&c, "color"), raw_colour, "{label}: colour");
    assert_eq!(c["imu"]["sha256"], r["imu"]["sha256"], "{label}: IMU");
}

#[test]
fn raw_depth_converts_to_the_images_of_a_direct_recording() {
    let Some(o) = Oracle::get() else { return };
    let _heavy = crate::util::heavy_test_lock();
    let dir = TempDir::new("raw-depth");
    check_mode(o, &dir, "NFOV_UNBINNED", "720p");
    // Colour off: raw frames are the only captures, placed on the IMU's clock.
    check_mode(o, &dir, "WFOV_2X2BINNED", "OFF");
}

#[test]
fn convert_depth_refuses_what_it_cannot_convert() {
    let dir = TempDir::new("raw-depth-refusals");
    let fixture = crate::util::fixture("sdk141-mjpg720-nfov-1capture.mkv");
    let out = dir.join("out.mkv");
    let run = |input: &Path, extra: &[&str]| {
        Command::new(bin_path("freek4a"))
            .arg("convert-depth")
            .arg(input)
            .arg("-o")
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };
    // A standard recording has nothing to convert.
    let o = run(&fixture, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a raw depth recording"), "{err}");
    assert!(!out.exists());

    // A raw recording converts once; the output is not replaced without --force.
    let raw = dir.join("raw.mkv");
    record(
        &raw,
        &[
            "-d",
            "PASSIVE_IR",
            "-c",
            "OFF",
            "--imu",
            "OFF",
            "--raw-depth",
        ],
    );
    let o = run(&raw, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&raw, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    assert!(run(&raw, &["--force"]).status.success());
    // Converting into the input itself is refused.
    let o = Command::new(bin_path("freek4a"))
        .args(["convert-depth", "--force", "-o"])
        .arg(&raw)
        .arg(&raw)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is the input file"));
    // A file cut in the middle of its raw frames still converts what it holds.
    let bytes = std::fs::read(&raw).unwrap();
    let cut = dir.join("cut.mkv");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let converted_cut = dir.join("cut-converted.mkv");
    let o = Command::new(bin_path("freek4a"))
        .arg("convert-depth")
        .arg(&cut)
        .arg("-o")
        .arg(&converted_cut)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("raw frames into"), "{text}");
}
