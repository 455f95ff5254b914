//! The sync cables between emulated units: who feeds whose sync-in, the pulse train a master's
//! colour camera drives down the chain, and the journal of the order in which units started.
//!
//! The model (facts and choices in `protocol/sync.md`): a master emits one pulse per colour
//! frame while its colour camera streams; a subordinate passes the pulses on from its sync-in
//! to its sync-out; a subordinate exposes one frame per pulse, its device clock following the
//! master's, so its frame timestamps are the master's plus its subordinate delay. Without
//! pulses a subordinate delivers nothing, and one that starts after the master only sees the
//! pulses from its own start on.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::types::WiredSyncMode;

/// The pulses a streaming master emits, in its device clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Train {
    /// Changes whenever the master starts a new train (a new colour session or timebase).
    pub id: u64,
    /// The master's clock: it read `epoch_ticks` at `epoch_instant` (real-time pacing).
    pub epoch_instant: Instant,
    /// See `epoch_instant`.
    pub epoch_ticks: u64,
    /// Device tick of the latest pulse.
    pub last_tick: u64,
}

/// One line of the start-order journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalEvent {
    /// Microseconds since the emulated units were created.
    pub at_usec: u64,
    /// Unit index.
    pub unit: usize,
    /// Unit serial number.
    pub serial: String,
    /// What happened: `sync-config`, `depth-start`, `color-start`, `first-pulse`, `color-stop`,
    /// `depth-stop`, `unplugged`.
    pub event: &'static str,
    /// The unit's wired sync mode at that moment.
    pub mode: WiredSyncMode,
    /// Extra facts (`delay_usec=…`, `tick=…`), or empty.
    pub detail: String,
}

impl std::fmt::Display for JournalEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} unit={} serial={} {} mode={}",
            self.at_usec,
            self.unit,
            self.serial,
            self.event,
            mode_word(self.mode)
        )?;
        if !self.detail.is_empty() {
            write!(f, " {}", self.detail)?;
        }
        Ok(())
    }
}

fn mode_word(m: WiredSyncMode) -> &'static str {
    match m {
        WiredSyncMode::Standalone => "standalone",
        WiredSyncMode::Master => "master",
        WiredSyncMode::Subordinate => "subordinate",
    }
}

struct BusState {
    modes: Vec<WiredSyncMode>,
    trains: Vec<Option<Train>>,
    next_train: u64,
    journal: Vec<JournalEvent>,
    journal_file: Option<std::fs::File>,
}

/// Wiring shared by all units of a backend.
pub(crate) struct SyncBus {
    /// `feeds[i]`: the unit whose sync-out is plugged into unit i's sync-in.
    feeds: Vec<Option<usize>>,
    state: Mutex<BusState>,
    pulsed: Condvar,
    created: Instant,
}

impl SyncBus {
    /// A bus for `units` units; with `chain`, unit i−1 feeds unit i. The journal is also
    /// appended to `journal_path` when given (a file that cannot be opened is ignored: the
    /// in-memory journal stays).
    pub fn new(units: usize, chain: bool, journal_path: Option<&PathBuf>) -> SyncBus {
        let journal_file = journal_path.and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
        SyncBus {
            feeds: (0..units)
                .map(|i| (chain && i > 0).then(|| i - 1))
                .collect(),
            state: Mutex::new(BusState {
                modes: vec![WiredSyncMode::Standalone; units],
                trains: vec![None; units],
                next_train: 1,
                journal: Vec::new(),
                journal_file,
            }),
            pulsed: Condvar::new(),
            created: Instant::now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BusState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether another emulated unit feeds this unit's sync-in.
    pub fn chain_fed(&self, unit: usize) -> bool {
        self.feeds.get(unit).copied().flatten().is_some()
    }

    /// Records unit `unit`'s sync mode (SET_SYS_CFG).
    pub fn set_mode(&self, unit: usize, mode: WiredSyncMode) {
        let mut s = self.lock();
        if let Some(m) = s.modes.get_mut(unit) {
            *m = mode;
        }
        if mode != WiredSyncMode::Master {
            if let Some(t) = s.trains.get_mut(unit) {
                *t = None;
            }
        }
        self.pulsed.notify_all();
    }

    /// The train reaching unit `unit`'s sync-in: walk up the chain through subordinates (which
    /// pass pulses on) to a master.
    pub fn train_for(&self, unit: usize) -> Option<Train> {
        let s = self.lock();
        Self::upstream(&self.feeds, &s, unit)
    }

    fn upstream(feeds: &[Option<usize>], s: &BusState, unit: usize) -> Option<Train> {
        let mut at = unit;
        for _ in 0..feeds.len() {
            let up = feeds.get(at).copied().flatten()?;
            match s.modes.get(up)? {
                WiredSyncMode::Master => return s.trains.get(up).copied().flatten(),
                WiredSyncMode::Subordinate => at = up,
                WiredSyncMode::Standalone => return None,
            }
        }
        None
    }

    /// A master's colour camera exposed a frame at `tick` (its own clock, read
    /// `epoch_ticks` at `epoch_instant`): a pulse on its sync-out. Returns true for the first
    /// pulse of a train.
    pub fn pulse(&self, unit: usize, tick: u64, epoch: (Instant, u64)) -> bool {
        let mut s = self.lock();
        let next_id = s.next_train;
        let Some(slot) = s.trains.get_mut(unit) else {
            return false;
        };
        // A new master timebase is a new train (the followers re-anchor).
        let fresh = match slot {
            Some(t) if t.epoch_instant == epoch.0 && t.epoch_ticks == epoch.1 => {
                t.last_tick = t.last_tick.max(tick);
                false
            }
            _ => {
                *slot = Some(Train {
                    id: next_id,
                    epoch_instant: epoch.0,
                    epoch_ticks: epoch.1,
                    last_tick: tick,
                });
                true
            }
        };
        if fresh {
            s.next_train += 1;
        }
        drop(s);
        self.pulsed.notify_all();
        fresh
    }

    /// Unit `unit` stopped emitting pulses (colour stopped, unplugged).
    pub fn stop_train(&self, unit: usize) {
        let mut s = self.lock();
        if let Some(t) = s.trains.get_mut(unit) {
            *t = None;
        }
        drop(s);
        self.pulsed.notify_all();
    }

    /// Waits until the pulse at `tick` reached unit `unit` (true), the train `train_id` ended
    /// or changed, or `deadline` passed (false).
    pub fn wait_pulse(&self, unit: usize, train_id: u64, tick: u64, deadline: Instant) -> bool {
        let mut s = self.lock();
        loop {
            match Self::upstream(&self.feeds, &s, unit) {
                Some(t) if t.id == train_id && t.last_tick >= tick => return true,
                Some(t) if t.id == train_id => {}
                _ => return false,
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Bounded waits: a master unplugged without a last notification must not hang us.
            let wait = (deadline - now).min(Duration::from_millis(20));
            s = self
                .pulsed
                .wait_timeout(s, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Appends to the start-order journal.
    pub fn log(&self, unit: usize, serial: &str, event: &'static str, detail: String) {
        let mut s = self.lock();
        let mode = s
            .modes
            .get(unit)
            .copied()
            .unwrap_or(WiredSyncMode::Standalone);
        let e = JournalEvent {
            at_usec: self.created.elapsed().as_micros() as u64,
            unit,
            serial: serial.to_string(),
            event,
            mode,
            detail,
        };
        if let Some(f) = s.journal_file.as_mut() {
            // The journal is a test aid: a failed write must not disturb the emulation.
            let _ = writeln!(f, "{e}");
        }
        s.journal.push(e);
    }

    /// The journal so far.
    pub fn journal(&self) -> Vec<JournalEvent> {
        self.lock().journal.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulses_pass_down_the_chain_through_subordinates_only() {
        let bus = SyncBus::new(3, true, None);
        let now = Instant::now();
        assert!(bus.train_for(2).is_none());
        bus.set_mode(0, WiredSyncMode::Master);
        bus.set_mode(1, WiredSyncMode::Subordinate);
        bus.set_mode(2, WiredSyncMode::Subordinate);
        assert!(bus.train_for(2).is_none(), "master not streaming yet");
        assert!(bus.pulse(0, 3000, (now, 0)));
        assert!(!bus.pulse(0, 6000, (now, 0)));
        let t = bus.train_for(2).unwrap();
        assert_eq!(t.last_tick, 6000);
        assert!(bus.wait_pulse(2, t.id, 6000, now));
        assert!(!bus.wait_pulse(2, t.id, 9000, Instant::now()));
        // A standalone unit in the middle breaks the chain.
        bus.set_mode(1, WiredSyncMode::Standalone);
        assert!(bus.train_for(2).is_none());
        assert!(bus.train_for(1).is_some());
        bus.stop_train(0);
        assert!(bus.train_for(1).is_none());
        assert!(
            bus.train_for(0).is_none(),
            "nothing feeds the head of the chain"
        );
    }
}
