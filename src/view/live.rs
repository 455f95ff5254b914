//! The live preview of a running recorder.
//!
//! The recorder never waits for the preview and never gives it a frame the file needs: the
//! sink wrapper copies a capture into a one-capture slot only when a browser has asked since
//! the last handover (`try_lock`: if the server holds the slot at that moment, the preview
//! skips this capture), then hands the capture itself to the file.
//! IMU samples go to a bounded ring the same way.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{Frame, Unit, UnitError};
use crate::mkv::writer::DropCounts;
use crate::protocol::calibration::Calibration;
use crate::record::RecordingSink;
use crate::types::{Capture, DepthMode, ImuSample, TrackKind};

/// IMU samples kept for the preview (about five seconds at the IMU's rate).
const IMU_KEPT: usize = 8192;
/// How long a browser's request waits for the recorder's next capture.
const FRAME_WAIT: Duration = Duration::from_secs(2);
/// Least time between two captures copied for browsers, whatever the number of pages asking:
/// at most five copies (and encodings) a second.
const MIN_HANDOVER_INTERVAL: Duration = Duration::from_millis(200);

/// What the recorder shares with the preview server.
pub struct PreviewSlot {
    /// Serialises browsers' requests and remembers when the last one was served.
    gate: Mutex<Option<Instant>>,
    wanted: AtomicBool,
    latest: Mutex<Option<Capture>>,
    arrived: Condvar,
    imu: Mutex<VecDeque<ImuSample>>,
    captures: AtomicU64,
    handed: AtomicU64,
    bytes: AtomicU64,
    dropped: Mutex<DropCounts>,
    started: Instant,
    meta: Mutex<Value>,
    depth_mode: DepthMode,
    calibration: std::sync::OnceLock<Calibration>,
}

impl PreviewSlot {
    /// A slot for a recording in `depth_mode`; `meta` fills the info panel (modes...).
    pub fn new(depth_mode: DepthMode, meta: Value) -> Arc<Self> {
        Arc::new(PreviewSlot {
            gate: Mutex::new(None),
            wanted: AtomicBool::new(false),
            latest: Mutex::new(None),
            arrived: Condvar::new(),
            imu: Mutex::new(VecDeque::with_capacity(IMU_KEPT)),
            captures: AtomicU64::new(0),
            handed: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            dropped: Mutex::new(DropCounts::default()),
            started: Instant::now(),
            meta: Mutex::new(meta),
            depth_mode,
            calibration: std::sync::OnceLock::new(),
        })
    }

    /// Adds what is known once the device is open: info panel entries and the calibration.
    pub fn set_device(&self, entries: Value, calibration: Option<Calibration>) {
        if let (Ok(mut m), Value::Object(add)) = (self.meta.lock(), entries) {
            if let Value::Object(m) = &mut *m {
                m.extend(add);
            }
        }
        if let Some(c) = calibration {
            let _ = self.calibration.set(c);
        }
    }

    /// Called by the recorder with every capture it writes.
    pub fn offer(&self, capture: &Capture) {
        self.captures.fetch_add(1, Ordering::Relaxed);
        if !self.wanted.load(Ordering::Acquire) {
            return;
        }
        if let Ok(mut slot) = self.latest.try_lock() {
            *slot = Some(capture.clone());
            self.wanted.store(false, Ordering::Release);
            self.handed.fetch_add(1, Ordering::Relaxed);
            self.arrived.notify_all();
        }
    }

    /// Called by the recorder for every IMU sample it wrote.
    pub fn offer_imu(&self, sample: &ImuSample) {
        if let Ok(mut ring) = self.imu.try_lock() {
            if ring.len() == IMU_KEPT {
                ring.pop_front();
            }
            ring.push_back(*sample);
        }
    }

    fn counters(&self, bytes: u64, dropped: DropCounts) {
        self.bytes.store(bytes, Ordering::Relaxed);
        if let Ok(mut d) = self.dropped.try_lock() {
            *d = dropped;
        }
    }

    /// Captures copied out for browsers so far.
    pub fn handed_out(&self) -> u64 {
        self.handed.load(Ordering::Relaxed)
    }

    /// Asks for the recorder's next capture and waits for it.
    fn next(&self) -> Option<Capture> {
        let mut last = self.gate.lock().ok()?;
        if let Some(wait) = last.and_then(|t| MIN_HANDOVER_INTERVAL.checked_sub(t.elapsed())) {
            std::thread::sleep(wait);
        }
        let got = self.take_next();
        *last = Some(Instant::now());
        got
    }

    fn take_next(&self) -> Option<Capture> {
        let deadline = Instant::now() + FRAME_WAIT;
        let mut slot = self.latest.lock().ok()?;
        *slot = None;
        self.wanted.store(true, Ordering::Release);
        loop {
            if let Some(c) = slot.take() {
                return Some(c);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            slot = self.arrived.wait_timeout(slot, left).ok()?.0;
        }
    }
}

/// A recording sink that also feeds a [`PreviewSlot`].
pub struct PreviewSink<S> {
    inner: S,
    slot: Arc<PreviewSlot>,
}

impl<S: RecordingSink> PreviewSink<S> {
    /// Wraps the sink the recorder writes to.
    pub fn new(inner: S, slot: Arc<PreviewSlot>) -> Self {
        PreviewSink { inner, slot }
    }
}

impl<S: RecordingSink> RecordingSink for PreviewSink<S> {
    type Error = S::Error;

    fn add_imu_track(&mut self) -> Result<(), S::Error> {
        self.inner.add_imu_track()
    }

    fn write_header(&mut self) -> Result<(), S::Error> {
        self.inner.write_header()
    }

    fn write_capture(&mut self, capture: Capture) -> Result<(), S::Error> {
        self.slot.offer(&capture);
        self.inner.write_capture(capture)?;
        self.slot
            .counters(self.inner.bytes_written(), self.inner.dropped());
        Ok(())
    }

    fn write_imu_sample(&mut self, sample: &ImuSample) -> Result<(), S::Error> {
        self.inner.write_imu_sample(sample)?;
        self.slot.offer_imu(sample);
        Ok(())
    }

    fn write_custom(
        &mut self,
        track: &str,
        device_timestamp_usec: u64,
        data: Vec<u8>,
    ) -> Result<(), S::Error> {
        self.inner.write_custom(track, device_timestamp_usec, data)
    }

    fn flush(&mut self) -> Result<(), S::Error> {
        self.inner.flush()
    }

    fn close(&mut self) -> Result<(), S::Error> {
        self.inner.close()
    }

    fn bytes_written(&self) -> u64 {
        self.inner.bytes_written()
    }

    fn add_dropped(&mut self, dropped: DropCounts) {
        self.inner.add_dropped(dropped);
    }

    fn dropped(&self) -> DropCounts {
        self.inner.dropped()
    }
}

/// The running recorder as a viewer unit.
pub struct LiveUnit {
    name: String,
    slot: Arc<PreviewSlot>,
}

impl LiveUnit {
    /// A unit named `name` showing `slot`.
    pub fn new(name: String, slot: Arc<PreviewSlot>) -> Self {
        LiveUnit { name, slot }
    }
}

impl Unit for LiveUnit {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn meta(&self) -> Value {
        let mut m = self
            .slot
            .meta
            .lock()
            .map(|m| m.clone())
            .unwrap_or(json!({}));
        let d = self.slot.dropped.lock().map(|d| *d).unwrap_or_default();
        m["live"] = json!({
            "elapsed_sec": self.slot.started.elapsed().as_secs_f64(),
            "captures": self.slot.captures.load(Ordering::Relaxed),
            "bytes": self.slot.bytes.load(Ordering::Relaxed),
            "preview_frames": self.slot.handed_out(),
            "dropped": {
                "color": d[TrackKind::Color],
                "depth": d[TrackKind::Depth],
                "imu": d[TrackKind::Imu],
            },
        });
        m
    }

    fn imu(&self) -> Value {
        let samples: Vec<ImuSample> = self
            .slot
            .imu
            .lock()
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default();
        super::recording::imu_json(&samples)
    }

    fn depth_mode(&self) -> DepthMode {
        self.slot.depth_mode
    }

    fn calibration(&self) -> Option<Calibration> {
        self.slot.calibration.get().cloned()
    }

    fn frame(&self, _at_usec: Option<u64>, _step: i8) -> Result<Frame, UnitError> {
        self.slot.next().map(Frame::new).ok_or(UnitError::NoCapture)
    }
}
