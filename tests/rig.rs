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
    let phase = (first_sub - 160) % 33_333;
    assert!(phase <= 12 || phase >= 33_321, "{first_sub}");
    assert!(m % 33_333 <= 12 || m % 33_333 >= 33_321, "{m}");
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
