//! The unit's device clock (90 kHz ticks) and the pacing of its streams.
//!
//! Every stream of a unit computes the device tick of its next item from its own schedule and
//! asks the [`Pacer`] when it may hand it over. In real time (or a multiple of it) the answer
//! comes from a monotonic clock. In `Speed::Max` there is no clock at all: a stream may run
//! ahead of the slowest *active* stream by at most a small window, so depth, colour and IMU
//! stay in step however fast the host drains them, and capture pairing sees what it would see
//! on hardware.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::types::{PerStream, Stream};

/// After this long without a request from its host, a stream stops holding others back.
const STALE: Duration = Duration::from_millis(40);

/// Device timestamp rate.
pub const TICKS_PER_SECOND: u64 = 90_000;

/// How fast an emulated unit runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// Paced by the monotonic clock, like the hardware.
    RealTime,
    /// Paced by the monotonic clock, `factor` times faster than the hardware.
    Factor(f64),
    /// As fast as the host takes the data (streams kept in step with each other).
    Max,
}

struct PacerState {
    /// Monotonic instant at which the device clock read `epoch_ticks`.
    epoch_instant: Instant,
    epoch_ticks: u64,
    /// Bumped at every timebase reset so streams re-anchor their schedules.
    generation: u64,
    /// Next item tick of every stream taking part in lock-step (Max speed), and when its host
    /// last asked for data.
    next_ticks: PerStream<Option<(u64, Instant)>>,
    /// Highest tick handed out since the last reset (the clock in Max speed).
    virtual_now_ticks: u64,
    /// Max speed: the timebase was reset in this session, so streams that start now start
    /// at its zero (there is no wall clock saying how much time has passed).
    start_at_zero: bool,
}

/// Shared clock of one unit.
pub struct Pacer {
    speed: Speed,
    /// How far one stream may run ahead of the slowest one in Max speed.
    window_ticks: u64,
    state: Mutex<PacerState>,
    changed: Condvar,
}

impl Pacer {
    /// A clock that reads `power_on_ticks` now.
    pub fn new(speed: Speed, power_on_ticks: u64) -> Pacer {
        Pacer {
            speed,
            window_ticks: TICKS_PER_SECOND / 15,
            state: Mutex::new(PacerState {
                epoch_instant: Instant::now(),
                epoch_ticks: power_on_ticks,
                generation: 0,
                next_ticks: PerStream::default(),
                virtual_now_ticks: power_on_ticks,
                start_at_zero: false,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PacerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The speed this clock runs at.
    pub fn speed(&self) -> Speed {
        self.speed
    }

    fn factor(&self) -> f64 {
        match self.speed {
            Speed::RealTime => 1.0,
            Speed::Factor(f) if f > 0.0 => f,
            Speed::Factor(_) => 1.0,
            Speed::Max => 1.0,
        }
    }

    /// The device clock now.
    pub fn now_ticks(&self) -> u64 {
        let s = self.lock();
        match self.speed {
            Speed::Max => s.virtual_now_ticks,
            _ => {
                let el = s.epoch_instant.elapsed().as_secs_f64() * self.factor();
                s.epoch_ticks + (el * TICKS_PER_SECOND as f64) as u64
            }
        }
    }

    /// Resets the device timebase to 0 (what starting the colour camera does).
    pub fn reset(&self) {
        let mut s = self.lock();
        s.epoch_instant = Instant::now();
        s.epoch_ticks = 0;
        s.virtual_now_ticks = 0;
        s.start_at_zero = true;
        s.generation += 1;
        for (_, t) in s.next_ticks.iter_mut() {
            if let Some(t) = t {
                t.0 = 0;
            }
        }
        self.changed.notify_all();
    }

    /// The clock's reference point: it read these ticks at this instant (real-time pacing).
    pub fn epoch(&self) -> (Instant, u64) {
        let s = self.lock();
        (s.epoch_instant, s.epoch_ticks)
    }

    /// Makes this clock read another unit's clock (a subordinate locking onto its master's
    /// pulses): the other clock's reference point in real time, `now_ticks` in Max speed.
    /// Streams re-anchor their schedules, as after a reset.
    pub fn follow(&self, epoch: (Instant, u64), now_ticks: u64) {
        let mut s = self.lock();
        s.epoch_instant = epoch.0;
        s.epoch_ticks = epoch.1;
        s.virtual_now_ticks = now_ticks;
        s.start_at_zero = false;
        s.generation += 1;
        for (_, t) in s.next_ticks.iter_mut() {
            if let Some(t) = t {
                t.0 = now_ticks;
            }
        }
        self.changed.notify_all();
    }

    /// In Max speed, moves the clock forward by `ticks` (time that passes between sessions,
    /// which an idle virtual clock would otherwise not see). No effect in real time.
    pub fn advance_idle(&self, ticks: u64) {
        if self.speed == Speed::Max {
            let mut s = self.lock();
            s.virtual_now_ticks += ticks;
            s.start_at_zero = false;
        }
    }

    /// Where a stream that starts now anchors its schedule of `period_ticks`.
    pub fn start_ticks(&self, period_ticks: u64) -> u64 {
        let zero = self.speed == Speed::Max && self.lock().start_at_zero;
        if zero {
            0
        } else {
            self.now_ticks().div_ceil(period_ticks.max(1)) * period_ticks
        }
    }

    /// Timebase generation (changes at every reset).
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Registers a stream for lock-step with its first item tick.
    pub fn join(&self, stream: Stream, first_ticks: u64) {
        let mut s = self.lock();
        s.next_ticks[stream] = Some((first_ticks, Instant::now()));
        self.changed.notify_all();
    }

    /// Removes a stream from lock-step (stopped, or no longer drained).
    pub fn leave(&self, stream: Stream) {
        let mut s = self.lock();
        s.next_ticks[stream] = None;
        self.changed.notify_all();
    }

    /// Waits until the item of `stream` at `ticks` may be delivered, or until `deadline`.
    /// Returns false on deadline, or when the timebase was reset meanwhile (`generation`
    /// differs) so the caller re-anchors its schedule.
    pub fn wait_until(
        &self,
        stream: Stream,
        ticks: u64,
        generation: u64,
        deadline: Instant,
    ) -> bool {
        let mut s = self.lock();
        s.next_ticks[stream] = Some((ticks, Instant::now()));
        self.changed.notify_all();
        loop {
            if s.generation != generation {
                return false;
            }
            let now = Instant::now();
            match self.speed {
                Speed::Max => {
                    s.next_ticks[stream] = Some((ticks, now));
                    // A stream whose host stopped asking for data (not draining it) does
                    // not hold the others back.
                    let slowest = s
                        .next_ticks
                        .iter()
                        .filter_map(|(id, next)| next.filter(|_| id != stream))
                        .filter(|(_, seen)| now.duration_since(*seen) < STALE)
                        .map(|(t, _)| t)
                        .min();
                    if slowest.is_none_or(|m| ticks <= m.saturating_add(self.window_ticks)) {
                        s.virtual_now_ticks = s.virtual_now_ticks.max(ticks);
                        return true;
                    }
                    if now >= deadline {
                        return false;
                    }
                    let (g, _) = self
                        .changed
                        .wait_timeout(s, (deadline - now).min(STALE / 4))
                        .unwrap_or_else(|e| e.into_inner());
                    s = g;
                }
                _ => {
                    let due = s.epoch_instant
                        + Duration::from_secs_f64(
                            ticks.saturating_sub(s.epoch_ticks) as f64
                                / TICKS_PER_SECOND as f64
                                / self.factor(),
                        );
                    if now >= due {
                        return true;
                    }
                    if now >= deadline {
                        return false;
                    }
                    let until = due.min(deadline);
                    let (g, _) = self
                        .changed
                        .wait_timeout(s, until - now)
                        .unwrap_or_else(|e| e.into_inner());
                    s = g;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_speed_keeps_streams_in_step() {
        let p = Pacer::new(Speed::Max, 0);
        let g = p.generation();
        let soon = Instant::now() + Duration::from_millis(20);
        p.join(Stream::Color, 3000);
        assert!(p.wait_until(Stream::Depth, 3000, g, soon));
        // Depth may not run a whole second ahead of colour.
        assert!(!p.wait_until(Stream::Depth, 90_000, g, soon));
        p.leave(Stream::Color);
        assert!(p.wait_until(Stream::Depth, 90_000, g, soon));
        assert_eq!(p.now_ticks(), 90_000);
    }

    #[test]
    fn reset_restarts_the_timebase() {
        let p = Pacer::new(Speed::Factor(1000.0), 1_000_000);
        assert!(p.now_ticks() >= 1_000_000);
        let g = p.generation();
        p.reset();
        assert_ne!(p.generation(), g);
        assert!(p.now_ticks() < 1_000_000);
        assert!(!p.wait_until(
            Stream::Imu,
            10,
            g,
            Instant::now() + Duration::from_millis(5)
        ));
    }
}
