//! The URB engine: one thread per active endpoint owns the emulator's transfer queue for it,
//! feeds it the URBs the program submits and hands their completions back.
//!
//! The emulator's queues complete in order and only cancel everything at once, while usbfs
//! unlinks one URB at a time (`DISCARDURB`). A discard therefore cancels the whole queue,
//! reports the discarded URBs and submits the others again: a cancelled emulator transfer has
//! consumed nothing, so the stream continues where it was.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use freek4a::transport::{EndpointQueue, IsoInQueue, IsoPacket, TransferError};

/// A finished transfer, before the kernel's bookkeeping is applied.
pub struct Finished {
    /// Ok, or why it ended.
    pub status: Result<(), TransferError>,
    /// IN data (isochronous: packet `i` at `i * packet_size`).
    pub data: Vec<u8>,
    /// Bytes moved (bulk and interrupt).
    pub actual: usize,
    /// Isochronous packets.
    pub packets: Option<Vec<IsoPacket>>,
}

impl Finished {
    /// A transfer that never reached the device or was taken back.
    pub fn cancelled() -> Finished {
        Finished {
            status: Err(TransferError::Cancelled),
            data: Vec::new(),
            actual: 0,
            packets: Some(Vec::new()),
        }
    }
}

/// Where completions go.
pub trait Sink: Send + Sync {
    /// URB `urb` finished.
    fn finished(&self, urb: u64, f: Finished);
}

/// One emulator queue of either kind.
pub enum Queue {
    /// Bulk or interrupt.
    Bulk(Box<dyn EndpointQueue>),
    /// Isochronous IN.
    Iso(Box<dyn IsoInQueue>),
}

impl Queue {
    fn submit(&mut self, data: Vec<u8>, len: usize) {
        match self {
            Queue::Bulk(q) => q.submit(data, len),
            Queue::Iso(q) => q.submit(data),
        }
    }
    fn wait(&mut self, t: Duration) -> Option<Finished> {
        match self {
            Queue::Bulk(q) => q.wait_next_complete(t).map(|c| Finished {
                status: c.status,
                actual: c.actual_len,
                data: c.data,
                packets: None,
            }),
            Queue::Iso(q) => q.wait_next_complete(t).map(|c| Finished {
                status: c.status,
                actual: c.packets.iter().map(|p| p.actual_len).sum(),
                data: c.data,
                packets: Some(c.packets),
            }),
        }
    }
    fn cancel_all(&mut self) {
        match self {
            Queue::Bulk(q) => q.cancel_all(),
            Queue::Iso(q) => q.cancel_all(),
        }
    }
}

#[derive(Default)]
struct Inbox {
    new: VecDeque<(u64, Vec<u8>, usize)>,
    discard: HashSet<u64>,
    stop: bool,
}

/// Handle of an endpoint thread.
pub struct Worker {
    inbox: Mutex<Inbox>,
    wake: Condvar,
}

const POLL_STEP: Duration = Duration::from_millis(2);
const CANCEL_WAIT: Duration = Duration::from_secs(2);

impl Worker {
    /// Starts the thread of endpoint `ep` over `queue`.
    pub fn start(ep: u8, queue: Queue, sink: Weak<dyn Sink>) -> std::io::Result<Arc<Worker>> {
        let w = Arc::new(Worker {
            inbox: Mutex::new(Inbox::default()),
            wake: Condvar::new(),
        });
        let wk = w.clone();
        std::thread::Builder::new()
            .name(format!("usbfs-ep-{ep:02x}"))
            .spawn(move || run(wk, queue, sink))?;
        Ok(w)
    }

    /// Queues URB `urb` (OUT data, or an IN buffer of capacity `len`).
    pub fn submit(&self, urb: u64, data: Vec<u8>, len: usize) {
        self.lock().new.push_back((urb, data, len));
        self.wake.notify_all();
    }

    /// Asks for URB `urb` to be unlinked.
    pub fn discard(&self, urb: u64) {
        self.lock().discard.insert(urb);
        self.wake.notify_all();
    }

    /// Asks the thread to give back every URB (as cancelled when the device has not finished
    /// it) and end.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn cancel_and_collect(q: &mut Queue, count: usize) -> Vec<Finished> {
    q.cancel_all();
    let deadline = Instant::now() + CANCEL_WAIT;
    let mut back = Vec::with_capacity(count);
    while back.len() < count && Instant::now() < deadline {
        if let Some(c) = q.wait(POLL_STEP) {
            back.push(c);
        }
    }
    back
}

fn run(w: Arc<Worker>, mut q: Queue, sink: Weak<dyn Sink>) {
    let mut in_flight: VecDeque<(u64, usize)> = VecDeque::new();
    loop {
        let (new, discard, stop) = {
            let mut inbox = w.lock();
            while in_flight.is_empty() && inbox.new.is_empty() && !inbox.stop {
                inbox = w
                    .wake
                    .wait_timeout(inbox, Duration::from_millis(200))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            let new: Vec<_> = inbox.new.drain(..).collect();
            (new, std::mem::take(&mut inbox.discard), inbox.stop)
        };
        for (urb, data, len) in new {
            in_flight.push_back((urb, len));
            q.submit(data, len);
        }
        let Some(s) = sink.upgrade() else {
            q.cancel_all();
            return;
        };
        if stop {
            let back = cancel_and_collect(&mut q, in_flight.len());
            let mut back = back.into_iter();
            for (urb, _) in in_flight.drain(..) {
                s.finished(urb, back.next().unwrap_or_else(Finished::cancelled));
            }
            return;
        }
        if in_flight.iter().any(|(u, _)| discard.contains(u)) {
            let back = cancel_and_collect(&mut q, in_flight.len());
            let old: Vec<(u64, usize)> = in_flight.drain(..).collect();
            let returned = back.len();
            for ((urb, len), c) in old.iter().copied().zip(back) {
                if discard.contains(&urb) || c.status != Err(TransferError::Cancelled) {
                    s.finished(urb, c);
                } else {
                    in_flight.push_back((urb, len));
                    q.submit(c.data, len);
                }
            }
            // Transfers the emulator did not hand back stay in flight, behind the others.
            in_flight.extend(old.into_iter().skip(returned));
            continue;
        }
        if in_flight.is_empty() {
            continue;
        }
        if let Some(c) = q.wait(POLL_STEP) {
            if let Some((urb, _)) = in_flight.pop_front() {
                s.finished(urb, c);
            }
        }
    }
}
