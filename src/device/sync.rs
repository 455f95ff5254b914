//! Capture synchronisation as the SDK's capturesync does it: pairs depth and colour captures
//! by device timestamp, with the depth delay, the start-up filter and the SDK's queue sizes.
//!
//! Each stream keeps its oldest unpaired item in a slot and a backlog behind it. A depth item
//! and a colour item match when one falls within a frame period of the other, starting a
//! quarter period early and shifted by the depth delay; the older of two that cannot match is
//! published alone (or dropped with synchronised-images-only). The colour start resets the
//! device timebase, so depth items are discarded until one is stamped within ten frame periods
//! of zero.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{DropCounters, StreamError};
use crate::types::{Capture, Image};

/// Captures waiting for `get_capture` (the SDK's output queue).
pub const OUTPUT_QUEUE_DEPTH: usize = 7;
/// Backlog per stream while pairing (`QUEUE_DEFAULT_SIZE`).
pub const STREAM_BACKLOG: usize = 15;

/// How pairing is set up for one camera start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SyncParams {
    /// Both cameras on (and pairing not disabled).
    pub pairing: bool,
    /// Deliver only paired captures.
    pub synchronized_only: bool,
    /// Depth delay off colour, µs.
    pub depth_delay_usec: i32,
    /// Frame period P, µs.
    pub period_usec: u64,
}

struct Slot {
    ts_usec: i64,
    capture: Capture,
}

struct State {
    params: Option<SyncParams>,
    depth_stabilizing: bool,
    depth_slot: Option<Slot>,
    color_slot: Option<Slot>,
    depth_queue: VecDeque<Slot>,
    color_queue: VecDeque<Slot>,
    output: VecDeque<Capture>,
    error: Option<StreamError>,
}

/// The capture synchroniser and output queue.
pub(crate) struct CaptureSync {
    state: Mutex<State>,
    ready: Condvar,
}

impl CaptureSync {
    pub fn new() -> CaptureSync {
        CaptureSync {
            state: Mutex::new(State {
                params: None,
                depth_stabilizing: true,
                depth_slot: None,
                color_slot: None,
                depth_queue: VecDeque::new(),
                color_queue: VecDeque::new(),
                output: VecDeque::new(),
                error: None,
            }),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a new session (clears everything).
    pub fn start(&self, params: SyncParams) {
        let mut s = self.lock();
        s.params = Some(params);
        s.depth_stabilizing = true;
        s.depth_slot = None;
        s.color_slot = None;
        s.depth_queue.clear();
        s.color_queue.clear();
        s.output.clear();
        s.error = None;
    }

    /// Stops the session: waiting `get_capture` calls return.
    pub fn stop(&self) {
        let mut s = self.lock();
        s.params = None;
        s.output.clear();
        s.depth_slot = None;
        s.color_slot = None;
        s.depth_queue.clear();
        s.color_queue.clear();
        self.ready.notify_all();
    }

    /// A stream failed: the queues stop and `get_capture` reports it.
    pub fn fail(&self, e: StreamError) {
        let mut s = self.lock();
        if s.error.is_none() {
            s.error = Some(e);
        }
        self.ready.notify_all();
    }

    fn publish(&self, s: &mut State, c: Capture, drops: &DropCounters) {
        if s.output.len() == OUTPUT_QUEUE_DEPTH {
            s.output.pop_front();
            drops.add(&drops.capture_queue_full, 1);
        }
        s.output.push_back(c);
        self.ready.notify_all();
    }

    fn publish_alone(&self, s: &mut State, c: Capture, drops: &DropCounters) {
        drops.add(&drops.unmatched, 1);
        if !s.params.is_some_and(|p| p.synchronized_only) {
            self.publish(s, c, drops);
        }
    }

    /// A depth capture (depth and/or IR images) arrived.
    pub fn push_depth(&self, capture: Capture, drops: &DropCounters) {
        let ts = capture
            .ir
            .as_ref()
            .or(capture.depth.as_ref())
            .map_or(0, |i| i.device_timestamp_usec) as i64;
        self.push(
            true,
            Slot {
                ts_usec: ts,
                capture,
            },
            drops,
        );
    }

    /// A colour image arrived.
    pub fn push_color(&self, image: Image, drops: &DropCounters) {
        let ts = image.device_timestamp_usec as i64;
        let capture = Capture {
            color: Some(image),
            temperature_c: f32::NAN,
            ..Default::default()
        };
        self.push(
            false,
            Slot {
                ts_usec: ts,
                capture,
            },
            drops,
        );
    }

    fn push(&self, depth: bool, slot: Slot, drops: &DropCounters) {
        let mut s = self.lock();
        let Some(p) = s.params else { return };
        if s.error.is_some() {
            return;
        }
        if !p.pairing {
            self.publish(&mut s, slot.capture, drops);
            return;
        }
        if depth && s.depth_stabilizing {
            // The colour start resets the timebase; earlier depth stamps are meaningless.
            if slot.ts_usec / p.period_usec as i64 > 10 {
                drops.add(&drops.depth_startup, 1);
                return;
            }
            s.depth_stabilizing = false;
        }
        let st = &mut *s;
        let (own_slot, own_queue) = if depth {
            (&mut st.depth_slot, &mut st.depth_queue)
        } else {
            (&mut st.color_slot, &mut st.color_queue)
        };
        if own_slot.is_none() {
            *own_slot = Some(slot);
        } else {
            own_queue.push_back(slot);
            if own_queue.len() > STREAM_BACKLOG {
                let early = own_slot.take();
                *own_slot = own_queue.pop_front();
                if let Some(e) = early {
                    self.publish_alone(&mut s, e.capture, drops);
                }
            }
        }
        self.pair(&mut s, p, drops);
    }

    fn pair(&self, s: &mut State, p: SyncParams, drops: &DropCounters) {
        let period = p.period_usec as i64;
        let q = period / 4;
        let d = p.depth_delay_usec as i64;
        loop {
            let (Some(dep), Some(col)) = (&s.depth_slot, &s.color_slot) else {
                return;
            };
            let (dts, cts) = (dep.ts_usec, col.ts_usec);
            enum Act {
                DropDepth,
                DropColor,
                Match,
            }
            let act = if d < 0 {
                let begin = (dts - q).max(0) + d.abs();
                let end = begin + period;
                if cts > end {
                    Act::DropDepth
                } else if cts < begin {
                    Act::DropColor
                } else {
                    Act::Match
                }
            } else {
                let begin = ((cts - q).max(0) + d).max(0);
                let end = begin + period;
                if dts > end {
                    Act::DropColor
                } else if dts < begin {
                    Act::DropDepth
                } else {
                    Act::Match
                }
            };
            match act {
                Act::DropDepth => {
                    let x = s.depth_slot.take();
                    s.depth_slot = s.depth_queue.pop_front();
                    if let Some(x) = x {
                        self.publish_alone(s, x.capture, drops);
                    }
                }
                Act::DropColor => {
                    let x = s.color_slot.take();
                    s.color_slot = s.color_queue.pop_front();
                    if let Some(x) = x {
                        self.publish_alone(s, x.capture, drops);
                    }
                }
                Act::Match => {
                    let (Some(mut dep), Some(col)) = (s.depth_slot.take(), s.color_slot.take())
                    else {
                        return;
                    };
                    dep.capture.color = col.capture.color;
                    s.depth_slot = s.depth_queue.pop_front();
                    s.color_slot = s.color_queue.pop_front();
                    self.publish(s, dep.capture, drops);
                }
            }
        }
    }

    /// Waits until the output queue has room for a few captures (back-pressure), the session
    /// ends, or `stop` is set.
    pub fn wait_for_room(&self, stop: &std::sync::atomic::AtomicBool) {
        let mut s = self.lock();
        while s.output.len() + 3 > OUTPUT_QUEUE_DEPTH
            && s.params.is_some()
            && s.error.is_none()
            && !stop.load(std::sync::atomic::Ordering::SeqCst)
        {
            s = self
                .ready
                .wait_timeout(s, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Pops the oldest capture, waiting up to `timeout`. `Ok(None)` on timeout.
    pub fn pop(&self, timeout: Duration) -> Result<Option<Capture>, StreamError> {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        loop {
            if let Some(e) = &s.error {
                return Err(e.clone());
            }
            if let Some(c) = s.output.pop_front() {
                self.ready.notify_all();
                return Ok(Some(c));
            }
            if s.params.is_none() {
                return Err(StreamError::NotStreaming);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            s = self
                .ready
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
