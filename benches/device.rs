//! Benchmark of the device path: an emulated unit at maximum speed, its heaviest modes pushed
//! through transport → protocol → capture assembly, consumed as fast as possible.
//!
//! ```text
//! cargo bench --bench device -- [--seconds 20] [--engine raw|emulated]
//! ```
//!
//! For each scenario it prints the device seconds recorded, the wall-clock seconds taken, the
//! speed-up over real time, CPU seconds (user + system, from /proc/self/stat, the counters
//! getrusage reports) per recorded second, and every drop counter (the goal is zero).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use freek4a::device::{DepthEngineChoice, Device, OpenOptions};
use freek4a::emulator::{EmulatedBackend, EmulatorSpec, Speed};
use freek4a::types::{ColorResolution, DepthMode, DeviceConfig, Fps, ImageFormat};

/// User and system CPU seconds of this process so far.
fn cpu_seconds() -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("read /proc/self/stat")?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("parse /proc/self/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        Ok(f.get(i).context("short /proc/self/stat")?.parse::<f64>()?)
    };
    // Linux reports these in USER_HZ, which is 100 on every current architecture.
    Ok((ticks(11)? / 100.0, ticks(12)? / 100.0))
}

struct Scenario {
    name: &'static str,
    color: ColorResolution,
    depth: DepthMode,
    fps: Fps,
}

fn run(s: &Scenario, seconds: u32, engine: &DepthEngineChoice) -> Result<()> {
    println!("{}", s.name);
    let backend = EmulatedBackend::new(EmulatorSpec {
        units: 1,
        speed: Speed::Max,
        seed: 1,
        ..Default::default()
    });
    let options = OpenOptions {
        depth_engine: engine.clone(),
        backpressure: true,
        ..Default::default()
    };
    let mut d = Device::open_with(&backend, 0, options)?;
    let config = DeviceConfig {
        color_format: ImageFormat::Mjpg,
        color_resolution: s.color,
        depth_mode: s.depth,
        camera_fps: s.fps,
        ..Default::default()
    };
    let want = (s.fps.hz() * seconds) as usize;
    // Outside the measurement: the emulator encodes its MJPEG frames once per process.
    let (w, h) = s.color.dimensions().unwrap_or((0, 0));
    let t = Instant::now();
    let set = freek4a::emulator::images::jpeg_set(w, h).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "  pre-encoded {} MJPEG frames of {w}x{h} in {:.2} s ({} bytes each on average)",
        set.len(),
        t.elapsed().as_secs_f64(),
        set.iter().map(|j| j.bytes.len()).sum::<usize>() / set.len().max(1)
    );
    let (u0, s0) = cpu_seconds()?;
    let t0 = Instant::now();
    d.start_cameras(&config)?;
    d.start_imu()?;
    let (mut colors, mut depths, mut imus) = (0usize, 0usize, 0usize);
    let (mut first_ts, mut last_ts) = (None, 0u64);
    let mut bytes = 0usize;
    while colors < want {
        let Some(c) = d.get_capture(Duration::from_secs(5))? else {
            bail!("no capture within 5 s: {:?}", d.drops())
        };
        if let Some(img) = &c.color {
            colors += 1;
            bytes += img.data.len();
            first_ts.get_or_insert(img.device_timestamp_usec);
            last_ts = img.device_timestamp_usec;
        }
        if let Some(ir) = &c.ir {
            depths += 1;
            bytes += ir.data.len() + c.depth.as_ref().map_or(0, |d| d.data.len());
        }
        while let Some(r) = d.get_raw_depth(Duration::ZERO).unwrap_or(None) {
            depths += 1;
            bytes += r.data.len();
        }
        while d.get_imu_sample(Duration::ZERO)?.is_some() {
            imus += 1;
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let (u1, s1) = cpu_seconds()?;
    let drops = d.drops();
    d.stop_imu()?;
    d.stop_cameras()?;
    let recorded = (last_ts - first_ts.unwrap_or(0)) as f64 / 1e6 + 1.0 / s.fps.hz() as f64;
    let cpu = (u1 - u0) + (s1 - s0);
    println!(
        "  recorded {recorded:.2} s of device time in {wall:.2} s wall: {:.1}x real time",
        recorded / wall
    );
    println!(
        "  {colors} colour frames, {depths} depth frames, {imus} IMU samples, {:.0} MB/s through the host",
        bytes as f64 / wall / 1e6
    );
    println!(
        "  CPU {cpu:.2} s (user {:.2}, system {:.2}) = {:.2} CPU s per recorded second",
        u1 - u0,
        s1 - s0,
        cpu / recorded
    );
    println!("  drops: {} lost; {drops:?}", drops.lost());
    Ok(())
}

fn main() -> Result<()> {
    let mut seconds = 20;
    let mut engine = DepthEngineChoice::RawOnly;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            // What `cargo bench` passes to every bench target.
            "--bench" => {}
            "--seconds" => seconds = args.next().context("--seconds N")?.parse()?,
            "--engine" => {
                engine = match args.next().as_deref() {
                    Some("raw") => DepthEngineChoice::RawOnly,
                    Some("emulated") => DepthEngineChoice::Emulated,
                    other => bail!("--engine raw|emulated, not {other:?}"),
                }
            }
            other => bail!("unknown argument {other}"),
        }
    }
    println!(
        "engine: {engine:?}; {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for s in [
        Scenario {
            name: "3072p MJPEG @15 + WFOV_UNBINNED @15 + IMU",
            color: ColorResolution::R3072p,
            depth: DepthMode::WfovUnbinned,
            fps: Fps::Fps15,
        },
        Scenario {
            name: "2160p MJPEG @30 + NFOV_UNBINNED @30 + IMU",
            color: ColorResolution::R2160p,
            depth: DepthMode::NfovUnbinned,
            fps: Fps::Fps30,
        },
    ] {
        run(&s, seconds, &engine)?;
    }
    Ok(())
}
