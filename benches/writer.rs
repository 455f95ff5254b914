//! Writer benchmark: our recording writer (with library defaults, `ours`, and with the settings
//! `k4arecorder` uses, `ours-rec`) vs Microsoft's libk4arecord vs a plain sequential write of the
//! same payload bytes, on identical synthetic captures (2160p MJPG + NFOV_UNBINNED depth and IR
//! at 30 fps + 1600 Hz IMU). Each side runs in its own process so peak RSS is its own.
//!
//! Run: `cargo bench --bench writer` (env: `FREEK4A_BENCH_FRAMES`, default 400 ≈ 1.07 GB;
//! `FREEK4A_BENCH_DIR`, default `target/bench`; the SDK side needs `tests/oracle/install.sh`).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use freek4a::mkv::writer::RecordingSettings;
use freek4a::record::{
    recorder_settings, writer_queue_limit_bytes, RecordingFile, RecordingWriter,
};
use freek4a::types::*;

const MJPG_BYTES: usize = 1_200_000;
/// Queue of the `ours` side (library defaults otherwise).
const QUEUE_LIMIT_BYTES: usize = 16 << 20;

/// Which writer configuration a run of our writer uses.
#[derive(Clone, Copy)]
enum Config {
    /// `RecordingSettings::new` as is (the SDK's 2 s cluster delay) and a 16 MiB queue.
    Library,
    /// What `record::Recorder` (and so `k4arecorder`) uses: its cluster delay and the queue
    /// sized from this mode's data rate.
    Recorder,
}

/// A byte count from the environment, for experiments only.
fn env_bytes(key: &str) -> Option<usize> {
    std::env::var(key).ok().and_then(|v| v.parse().ok())
}

/// Settings and queue limit for `config`. For trying budgets without rebuilding,
/// `FREEK4A_BENCH_PENDING_BYTES` and `FREEK4A_BENCH_QUEUE_BYTES` override the pending budget and
/// the queue limit of the recorder configuration (unset, it is exactly the recorder's).
fn writer_settings(config: Config, cfg: DeviceConfig) -> (RecordingSettings, usize) {
    match config {
        Config::Library => (RecordingSettings::new(cfg, true), QUEUE_LIMIT_BYTES),
        Config::Recorder => {
            let mut settings = recorder_settings(&cfg, true);
            if let Some(b) = env_bytes("FREEK4A_BENCH_PENDING_BYTES") {
                settings.pending_limit_bytes = b;
            }
            let queue = env_bytes("FREEK4A_BENCH_QUEUE_BYTES")
                .unwrap_or_else(|| writer_queue_limit_bytes(&cfg, true));
            (settings, queue)
        }
    }
}

fn pattern(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + seed) & 0xFF) as u8).collect()
}

/// Our sides and `plain` write through this sink: the recorder's own recording file (64 KiB of
/// buffering for small pieces, larger writes straight to the file), so `ours-rec` is exactly
/// what `k4arecorder` writes through.
fn sink(out: &Path) -> RecordingFile {
    RecordingFile::new(File::create(out).expect("create output"))
}

/// A frame as a device delivers it: the pattern copied into `buf` (each side pays this copy).
fn image(format: ImageFormat, w: u32, h: u32, ts: u64, pattern: &[u8], mut buf: Vec<u8>) -> Image {
    buf.extend_from_slice(pattern);
    Image::new(format, w, h, ts, buf)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn ours(out: &Path, frames: u64, config: Config) {
    let color = pattern(MJPG_BYTES, 1);
    let depth = pattern(640 * 576 * 2, 2);
    let ir = pattern(640 * 576 * 2, 3);
    let cfg = DeviceConfig {
        color_resolution: ColorResolution::R2160p,
        depth_mode: DepthMode::NfovUnbinned,
        ..Default::default()
    };
    let (settings, queue_limit_bytes) = writer_settings(config, cfg);
    let t0 = Instant::now();
    let w = RecordingWriter::spawn(sink(out), settings, queue_limit_bytes).expect("spawn writer");
    let fill = |format, width, height, ts, pattern: &[u8]| {
        image(
            format,
            width,
            height,
            ts,
            pattern,
            w.recycled_buffer(pattern.len()),
        )
    };
    for n in 0..frames {
        let ts = 1_000_000 + n * 33_333;
        let cap = Capture {
            color: Some(fill(ImageFormat::Mjpg, 3840, 2160, ts, &color)),
            depth: Some(fill(ImageFormat::Depth16, 640, 576, ts, &depth)),
            ir: Some(fill(ImageFormat::Ir16, 640, 576, ts, &ir)),
            temperature_c: f32::NAN,
        };
        // Wait for room rather than drop: the benchmark measures a complete file.
        let need = RecordingWriter::capture_queue_bytes(&cap);
        while w.queued_bytes() + need > w.queue_limit_bytes() {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        assert!(w.submit_capture(cap));
        for j in 0..53 {
            let t = ts + 100 + j * 625;
            while w.queued_bytes() + 64 > w.queue_limit_bytes() {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            assert!(w.submit_imu(ImuSample {
                temperature_c: f32::NAN,
                acc_mps2: [0.1, -0.2, 9.8],
                acc_timestamp_usec: t,
                gyro_radps: [0.01, 0.02, -0.03],
                gyro_timestamp_usec: t,
            }));
        }
    }
    let stats = w.finish().expect("finish");
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(stats.drops.total(), 0);
    println!(
        "{{\"seconds\": {secs}, \"bytes\": {}, \"peak_rss_kib\": {}}}",
        stats.bytes_written,
        peak_rss_kib()
    );
}

fn plain(out: &Path, frames: u64) {
    let color = pattern(MJPG_BYTES, 1);
    let depth = pattern(640 * 576 * 2, 2);
    let ir = pattern(640 * 576 * 2, 3);
    let imu = [0u8; 40 * 53];
    let t0 = Instant::now();
    let mut f = sink(out);
    let mut bytes = 0u64;
    // The same producer copy as `ours` (a fresh frame lands in a buffer), into buffers reused
    // at once since a plain write needs no queue.
    let mut bufs = [&color, &depth, &ir].map(|p| Vec::with_capacity(p.len()));
    for _ in 0..frames {
        for (b, p) in bufs.iter_mut().zip([&color, &depth, &ir]) {
            b.clear();
            b.extend_from_slice(p);
            f.write_all(b).expect("write");
            bytes += b.len() as u64;
        }
        f.write_all(&imu).expect("write");
        bytes += imu.len() as u64;
    }
    f.flush().expect("flush");
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{{\"seconds\": {secs}, \"bytes\": {bytes}, \"peak_rss_kib\": {}}}",
        peak_rss_kib()
    );
}

fn json_field(s: &str, key: &str) -> f64 {
    let at = s
        .find(&format!("\"{key}\""))
        .unwrap_or_else(|| panic!("no {key} in {s}"));
    let rest = &s[at + key.len() + 3..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end].trim().parse().unwrap()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run side");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// Sides in run order: our writer with library defaults, with the recorder's settings, a plain
/// sequential write, libk4arecord.
const SIDES: [&str; 4] = ["ours", "ours-rec", "plain", "sdk"];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let frames: u64 = std::env::var("FREEK4A_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    if args.len() >= 3 && SIDES[..3].contains(&args[1].as_str()) {
        let out = PathBuf::from(&args[2]);
        match args[1].as_str() {
            "ours" => ours(&out, frames, Config::Library),
            "ours-rec" => ours(&out, frames, Config::Recorder),
            _ => plain(&out, frames),
        }
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var("FREEK4A_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/bench"));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let exe = std::env::current_exe().expect("current exe");
    let install = Command::new("bash")
        .arg(root.join("tests/oracle/install.sh"))
        .output()
        .expect("run install.sh");
    let python = String::from_utf8_lossy(&install.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("python=").map(str::to_owned));
    for key in ["FREEK4A_BENCH_PENDING_BYTES", "FREEK4A_BENCH_QUEUE_BYTES"] {
        if let Some(b) = env_bytes(key) {
            println!("{key}={b}: `ours-rec` is NOT the recorder's configuration in this run");
        }
    }
    let repeats: usize = std::env::var("FREEK4A_BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // Sides interleaved, each run in a fresh process, so a burst of load on the shared machine
    // hits all sides alike; the best run of each side is its figure (medians printed too).
    let mut runs: Vec<(&str, f64, f64, f64, f64)> = Vec::new();
    for round in 0..repeats {
        for side in SIDES {
            let path = dir.join(format!("{side}.mkv"));
            let line = match side {
                "sdk" => match &python {
                    Some(py) => run(Command::new(py)
                        .arg(root.join("benches/sdk_write.py"))
                        .arg(&path)
                        .arg(frames.to_string())
                        .arg(MJPG_BYTES.to_string())),
                    None => {
                        if round == 0 {
                            eprintln!("SKIPPED libk4arecord side: tests/oracle/install.sh failed");
                        }
                        continue;
                    }
                },
                _ => run(Command::new(&exe).arg(side).arg(&path)),
            };
            let _ = std::fs::remove_file(&path);
            // Let the previous file's writeback settle so it does not land on the next side.
            let _ = Command::new("sync").status();
            let secs = json_field(&line, "seconds");
            let bytes = json_field(&line, "bytes");
            let rss = json_field(&line, "peak_rss_kib") / 1024.0;
            let base = if side == "sdk" {
                json_field(&line, "baseline_rss_kib") / 1024.0
            } else {
                0.0
            };
            println!(
                "run {round} {side:>8}: {:.0} MB in {secs:.2} s = {:.0} MB/s, peak RSS {rss:.1} MiB",
                bytes / 1e6,
                bytes / 1e6 / secs
            );
            runs.push((side, bytes / secs, secs, rss, base));
        }
    }
    let mut rows = Vec::new();
    for side in SIDES {
        let mut rates: Vec<f64> = runs.iter().filter(|r| r.0 == side).map(|r| r.1).collect();
        if rates.is_empty() {
            continue;
        }
        rates.sort_by(f64::total_cmp);
        let best = rates[rates.len() - 1];
        let median = rates[rates.len() / 2];
        let rss = runs
            .iter()
            .filter(|r| r.0 == side)
            .map(|r| r.3)
            .fold(0.0, f64::max);
        let base = runs
            .iter()
            .filter(|r| r.0 == side)
            .map(|r| r.4)
            .fold(0.0, f64::max);
        println!(
            "{side:>8}: best {:.0} MB/s, median {:.0} MB/s of {} runs, peak RSS {rss:.1} MiB{}",
            best / 1e6,
            median / 1e6,
            rates.len(),
            if side == "sdk" {
                format!(" (Python baseline {base:.1} MiB)")
            } else {
                String::new()
            }
        );
        rows.push((side, best, median));
    }
    let rate = |s: &str| rows.iter().find(|r| r.0 == s).map(|r| (r.1, r.2));
    for (ours, label) in [
        ("ours", "ours (library defaults) "),
        ("ours-rec", "ours (recorder settings)"),
    ] {
        for (other, name) in [("plain", "plain write "), ("sdk", "libk4arecord")] {
            if let (Some(o), Some(p)) = (rate(ours), rate(other)) {
                println!(
                    "{label} / {name} = {:.2} (best), {:.2} (median)",
                    o.0 / p.0,
                    o.1 / p.1
                );
            }
        }
    }
}
