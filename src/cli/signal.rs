//! Ctrl-C / SIGTERM handling with k4arecorder's two-step behaviour.
//!
//! The first SIGINT or SIGTERM (SIGHUP too, through ctrlc's `termination` feature) sets the stop
//! flag, so the recording loop can finish the file; the loop prints `Stopping recording...` when
//! it acts on it (printing from the handler let the line overtake `Device started`).
//! A further signal more than one second after the first prints `Forcing stop.` and exits with
//! 1; one within that second is ignored (a held-down Ctrl-C should not kill the finalisation).
//! Microsoft's tool measured that second with `clock()` (processor time); we use a monotonic
//! clock.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::record::StopFlag;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long after the first signal a further one is ignored.
pub const FORCE_GRACE: Duration = Duration::from_secs(1);

/// What a received signal means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalAction {
    /// First signal: stop gracefully (the recording sequence prints `Stopping recording...`).
    Stop,
    /// A later signal after the grace period: print `Forcing stop.` and exit with 1.
    Force,
    /// A later signal within the grace period: do nothing.
    Ignore,
}

/// Error installing the process signal handler.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the Ctrl-C/SIGTERM handler")]
pub struct SignalInstallError(#[source] ctrlc::Error);

#[derive(Debug, Default)]
struct State {
    stopping: StopFlag,
    announced: AtomicBool,
    first_at: Mutex<Option<Instant>>,
}

/// A shareable stop flag fed by signals (or by [`StopSignal::request_stop`]).
#[derive(Clone, Debug, Default)]
pub struct StopSignal {
    state: Arc<State>,
}

impl StopSignal {
    /// A flag that is not yet set and not connected to any signal.
    pub fn new() -> StopSignal {
        StopSignal::default()
    }

    /// Connects this flag to SIGINT, SIGTERM and SIGHUP for the rest of the process. The
    /// messages go to stdout, like Microsoft's. Only one handler can be installed per process.
    pub fn install(&self) -> Result<(), SignalInstallError> {
        let me = self.clone();
        ctrlc::set_handler(move || match me.on_signal(Instant::now()) {
            // The recording sequence prints "Stopping recording..." when it acts on the
            // flag, so the line never overtakes the ones printed before it.
            SignalAction::Stop => {}
            SignalAction::Force => {
                println!("Forcing stop.");
                std::process::exit(1);
            }
            SignalAction::Ignore => {}
        })
        .map_err(SignalInstallError)
    }

    /// Records a signal received at `now` and says what to do about it.
    pub fn on_signal(&self, now: Instant) -> SignalAction {
        let mut first = self
            .state
            .first_at
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match *first {
            None => {
                *first = Some(now);
                self.state.stopping.stop();
                SignalAction::Stop
            }
            Some(t) if now.saturating_duration_since(t) > FORCE_GRACE => SignalAction::Force,
            Some(_) => SignalAction::Ignore,
        }
    }

    /// Sets the stop flag without a signal (and without the message). A later real signal is
    /// then treated as a second one.
    pub fn request_stop(&self) {
        let mut first = self
            .state
            .first_at
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        first.get_or_insert_with(Instant::now);
        self.state.stopping.stop();
    }

    /// True exactly once, for the caller that prints "Stopping recording...".
    pub fn announce_stop(&self) -> bool {
        !self.state.announced.swap(true, Ordering::SeqCst)
    }

    /// Whether a stop was asked for.
    pub fn is_stopping(&self) -> bool {
        self.state.stopping.is_stopped()
    }

    /// The flag a [`Recorder`](crate::record::Recorder) checks: set by the signals.
    pub fn flag(&self) -> StopFlag {
        self.state.stopping.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_step() {
        let s = StopSignal::new();
        let t0 = Instant::now();
        assert!(!s.is_stopping());
        assert_eq!(s.on_signal(t0), SignalAction::Stop);
        assert!(s.is_stopping());
        assert_eq!(
            s.on_signal(t0 + Duration::from_millis(500)),
            SignalAction::Ignore
        );
        assert_eq!(
            s.on_signal(t0 + Duration::from_millis(1000)),
            SignalAction::Ignore
        );
        assert_eq!(
            s.on_signal(t0 + Duration::from_millis(1001)),
            SignalAction::Force
        );
    }

    #[test]
    fn clones_share_the_flag() {
        let s = StopSignal::new();
        let c = s.clone();
        c.request_stop();
        assert!(s.is_stopping());
    }
}
