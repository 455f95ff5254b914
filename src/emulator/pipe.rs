//! The USB model of an emulated bulk IN endpoint: how the bytes a device sends become the
//! host's transfers.
//!
//! The device side queues [`Message`]s; the bus cuts each into packets of at most
//! wMaxPacketSize. The host side queues transfers of a requested length. A transfer ends when
//!
//! - a packet shorter than wMaxPacketSize arrives (a short packet, a zero-length one included):
//!   status Ok with the bytes so far;
//! - the requested length is filled by whole packets: status Ok, and whatever the device still
//!   has (the rest of a message, or the zero-length packet that would have ended it) goes to the
//!   next transfer;
//! - a packet does not fit the room left in the buffer, or the device sends a packet longer than
//!   wMaxPacketSize (the [`Message::babble`] fault): babble, status
//!   [`TransferError::Overflow`] (the kernel's EOVERFLOW) with the bytes of the packets before it;
//!   the offending packet is lost.
//!
//! Messages are not transfers: when a message is a whole number of packets and the device does
//! not end it with a zero-length packet, the host's transfer goes on with the next message.
//! These are the rules of USB and of Linux's usbfs (`protocol/kernel.md`); the one rule that is
//! nusb's, not the kernel's (IN lengths are non-zero multiples of wMaxPacketSize), is checked at
//! submit unless the pipe models the kernel's own view ([`InPipe::new`]).
//!
//! One engine serves every emulated IN bulk endpoint (command responses, depth, IMU), whichever
//! host drives it: the in-process transport or a usbfs front end.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::transport::{check_in_length, Completion, EndpointQueue, TransferError};

/// Bytes the device sends in one go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Message {
    /// The data.
    pub bytes: Vec<u8>,
    /// Whether the device ends the message with a zero-length packet when its length is a
    /// multiple of wMaxPacketSize (a zero-byte message with `zlp` is a lone zero-length packet;
    /// without it, nothing).
    pub zlp: bool,
    /// The device babbles instead of sending these bytes: its packet is longer than
    /// wMaxPacketSize (a fault; real devices do this only when broken).
    pub babble: bool,
}

impl Message {
    /// A message that ends the host's transfer (short packet, or a zero-length one).
    pub fn terminated(bytes: Vec<u8>) -> Message {
        Message {
            bytes,
            zlp: true,
            babble: false,
        }
    }
}

struct HostTransfer {
    /// Received bytes (its length is the count so far).
    buf: Vec<u8>,
    requested: usize,
    cancelled: bool,
    refused: Option<TransferError>,
}

/// One bulk IN endpoint: the device's packets on one side, the host's transfers on the other.
pub(crate) struct InPipe {
    address: u8,
    max_packet_size: usize,
    nusb_rules: bool,
    transfers: VecDeque<HostTransfer>,
    fifo: VecDeque<Message>,
    /// Bytes of `fifo.front()` already sent.
    offset: usize,
    /// A buffer the host gave up (swapped for a message), for the device to reuse.
    spare: Option<Vec<u8>>,
}

impl InPipe {
    /// A pipe for endpoint `address` with packets of `max_packet_size` bytes. With `nusb_rules`,
    /// IN lengths that are not non-zero multiples of the packet size are refused at submit
    /// ([`TransferError::InvalidLength`]), as nusb does; without it any length is taken, as the
    /// kernel does.
    pub fn new(address: u8, max_packet_size: usize, nusb_rules: bool) -> InPipe {
        InPipe {
            address,
            max_packet_size: max_packet_size.max(1),
            nusb_rules,
            transfers: VecDeque::new(),
            fifo: VecDeque::new(),
            offset: 0,
            spare: None,
        }
    }

    /// The endpoint address.
    pub fn address(&self) -> u8 {
        self.address
    }

    /// wMaxPacketSize.
    pub fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }

    /// Queues a host transfer of `requested` bytes, reusing `buffer`'s allocation.
    pub fn submit(&mut self, mut buffer: Vec<u8>, requested: usize) {
        buffer.clear();
        let refused = if self.nusb_rules {
            check_in_length(self.address, requested, self.max_packet_size).err()
        } else {
            None
        };
        self.transfers.push_back(HostTransfer {
            buf: buffer,
            requested,
            cancelled: false,
            refused,
        });
    }

    /// Host transfers not yet returned.
    pub fn pending(&self) -> usize {
        self.transfers.len()
    }

    /// Marks every pending transfer cancelled; each completes as Cancelled with what it had.
    pub fn cancel_all(&mut self) {
        for t in self.transfers.iter_mut() {
            t.cancelled = true;
        }
    }

    /// Whether the device has nothing queued.
    #[cfg(test)]
    pub fn is_idle(&self) -> bool {
        self.fifo.is_empty()
    }

    /// Queues bytes on the device side.
    pub fn push(&mut self, message: Message) {
        self.fifo.push_back(message);
    }

    /// A buffer the host handed over, for the device's next message.
    pub fn take_spare(&mut self) -> Vec<u8> {
        self.spare.take().unwrap_or_default()
    }

    /// Ends the oldest transfer with `error` (stall, disconnect…), keeping what it received.
    pub fn fail_front(&mut self, error: TransferError) -> Option<Completion> {
        let t = self.transfers.pop_front()?;
        Some(done(t, Err(error)))
    }

    /// Moves the device's packets into the oldest transfer; returns it when it ends, `None`
    /// when it needs more data from the device (or nothing is pending).
    pub fn next_completion(&mut self) -> Option<Completion> {
        let front = self.transfers.front()?;
        if let Some(e) = front.refused {
            let t = self.transfers.pop_front()?;
            return Some(done(t, Err(e)));
        }
        if front.cancelled {
            let t = self.transfers.pop_front()?;
            return Some(done(t, Err(TransferError::Cancelled)));
        }
        let mps = self.max_packet_size;
        loop {
            let m = self.fifo.front()?;
            let t = self.transfers.front_mut()?;
            if m.babble {
                self.pop_message();
                return self.finish(Err(TransferError::Overflow));
            }
            let left = m.bytes.len() - self.offset;
            if left == 0 {
                // Whole packets sent: a zero-length packet ends the transfer, if the device
                // sends one.
                let zlp = m.zlp;
                self.pop_message();
                if zlp {
                    return self.finish(Ok(()));
                }
                continue;
            }
            let room = t.requested - t.buf.len();
            let ends_short = !left.is_multiple_of(mps) || m.zlp;
            if t.buf.is_empty() && self.offset == 0 && left <= room && ends_short {
                // The whole message lands in this transfer and ends it: hand its buffer over.
                let bytes = std::mem::take(&mut self.fifo.front_mut()?.bytes);
                let host = std::mem::replace(&mut self.transfers.front_mut()?.buf, bytes);
                self.spare = Some(host);
                self.pop_message();
                if left.is_multiple_of(mps) && left == room {
                    // Whole packets filled the transfer: the device's zero-length packet is the
                    // next transfer's.
                    self.fifo.push_front(Message::terminated(Vec::new()));
                }
                return self.finish(Ok(()));
            }
            let whole = (left / mps).min(room / mps) * mps;
            if whole > 0 {
                let start = self.offset;
                t.buf.extend_from_slice(&m.bytes[start..start + whole]);
                self.offset += whole;
                if t.buf.len() == t.requested {
                    if self.offset == m.bytes.len() && !m.zlp {
                        self.pop_message();
                    }
                    return self.finish(Ok(()));
                }
                continue;
            }
            // The next packet is short, or a full one that does not fit.
            let packet = left.min(mps);
            if packet > room {
                self.offset += packet;
                if self.offset == m.bytes.len() {
                    self.pop_message();
                }
                return self.finish(Err(TransferError::Overflow));
            }
            let start = self.offset;
            t.buf.extend_from_slice(&m.bytes[start..start + packet]);
            self.pop_message();
            return self.finish(Ok(()));
        }
    }

    fn pop_message(&mut self) {
        if let Some(m) = self.fifo.pop_front() {
            if self.spare.is_none() && m.bytes.capacity() > 0 {
                self.spare = Some(m.bytes);
            }
        }
        self.offset = 0;
    }

    fn finish(&mut self, status: Result<(), TransferError>) -> Option<Completion> {
        let t = self.transfers.pop_front()?;
        Some(done(t, status))
    }
}

/// What a device sends on one bulk IN endpoint, made when the host's transfer needs it.
pub(crate) trait Source: Send {
    /// The device's next message; or how the host's oldest transfer ends without one
    /// (`Err(Some(_))`, from [`InPipe::fail_front`]: stall, disconnect); or `Err(None)` when
    /// nothing comes before `deadline`.
    fn produce(
        &mut self,
        pipe: &mut InPipe,
        deadline: Instant,
    ) -> Result<Message, Option<Completion>>;

    /// The host cancelled its transfers.
    fn cancelled(&mut self) {}
}

/// A bulk IN endpoint queue: the host's transfers, filled through the packet model from what
/// the source sends.
pub(crate) struct BulkIn<S> {
    pipe: InPipe,
    source: S,
}

impl<S: Source> BulkIn<S> {
    /// The endpoint `pipe` fed by `source`.
    pub fn new(pipe: InPipe, source: S) -> BulkIn<S> {
        BulkIn { pipe, source }
    }
}

impl<S: Source> EndpointQueue for BulkIn<S> {
    fn address(&self) -> u8 {
        self.pipe.address()
    }
    fn max_packet_size(&self) -> usize {
        self.pipe.max_packet_size()
    }
    fn submit(&mut self, buffer: Vec<u8>, length: usize) {
        self.pipe.submit(buffer, length);
    }
    fn wait_next_complete(&mut self, timeout: Duration) -> Option<Completion> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.pipe.pending() == 0 {
                return None;
            }
            if let Some(c) = self.pipe.next_completion() {
                return Some(c);
            }
            match self.source.produce(&mut self.pipe, deadline) {
                Ok(m) => self.pipe.push(m),
                Err(ended) => return ended,
            }
        }
    }
    fn pending(&self) -> usize {
        self.pipe.pending()
    }
    fn cancel_all(&mut self) {
        self.pipe.cancel_all();
        self.source.cancelled();
    }
}

fn done(t: HostTransfer, status: Result<(), TransferError>) -> Completion {
    Completion {
        actual_len: t.buf.len(),
        data: t.buf,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::descriptors::EP_DEPTH_RESPONSE_IN;

    const EP: u8 = EP_DEPTH_RESPONSE_IN.address();

    fn pipe() -> InPipe {
        InPipe::new(EP, 1024, true)
    }

    fn msg(len: usize, zlp: bool) -> Message {
        Message {
            bytes: (0..len).map(|i| i as u8).collect(),
            zlp,
            babble: false,
        }
    }

    #[test]
    fn nusb_refuses_lengths_that_are_not_whole_packets() {
        let mut p = pipe();
        p.submit(Vec::new(), 255);
        p.push(msg(13, true));
        let c = p.next_completion().unwrap();
        assert_eq!(
            c.status,
            Err(TransferError::InvalidLength {
                endpoint: EP,
                requested: 255,
                max_packet_size: 1024
            })
        );
        // The device's answer is still there for a proper transfer.
        p.submit(Vec::new(), 1024);
        let c = p.next_completion().unwrap();
        assert_eq!((c.status, c.data.len()), (Ok(()), 13));
    }

    #[test]
    fn a_short_packet_ends_the_transfer() {
        let mut p = pipe();
        p.submit(vec![9; 4096], 4096);
        p.push(msg(13, true));
        p.push(msg(16, true));
        let c = p.next_completion().unwrap();
        assert_eq!(c.status, Ok(()));
        assert_eq!(c.data, msg(13, true).bytes);
        assert_eq!(c.actual_len, 13);
        // The status packet is the next transfer's.
        assert!(p.next_completion().is_none());
        p.submit(Vec::new(), 1024);
        assert_eq!(p.next_completion().unwrap().data.len(), 16);
    }

    #[test]
    fn a_long_message_spans_transfers_of_whole_packets() {
        let mut p = pipe();
        let m = msg(2500, true);
        p.push(m.clone());
        p.submit(Vec::new(), 2048);
        p.submit(Vec::new(), 2048);
        let a = p.next_completion().unwrap();
        assert_eq!((a.status, a.data.len()), (Ok(()), 2048));
        let b = p.next_completion().unwrap();
        assert_eq!((b.status, b.data.len()), (Ok(()), 452));
        assert_eq!([a.data, b.data].concat(), m.bytes);
    }

    #[test]
    fn whole_packets_need_a_zero_length_packet_to_end_early() {
        let mut p = pipe();
        p.submit(Vec::new(), 4096);
        p.push(msg(2048, true));
        let c = p.next_completion().unwrap();
        assert_eq!((c.status, c.data.len()), (Ok(()), 2048));
        // Without one the transfer waits and runs on into the next message.
        p.submit(Vec::new(), 4096);
        p.push(msg(1024, false));
        assert!(p.next_completion().is_none());
        p.push(msg(16, true));
        let c = p.next_completion().unwrap();
        assert_eq!((c.status, c.data.len()), (Ok(()), 1040));
        // A transfer filled exactly leaves the zero-length packet to the next one.
        p.submit(Vec::new(), 1024);
        p.push(msg(1024, true));
        assert_eq!(p.next_completion().unwrap().data.len(), 1024);
        p.submit(Vec::new(), 1024);
        let c = p.next_completion().unwrap();
        assert_eq!((c.status, c.data.len()), (Ok(()), 0));
    }

    #[test]
    fn babble_when_a_packet_does_not_fit() {
        // The kernel takes any length; a 255-byte buffer meets a 1024-byte packet.
        let mut p = InPipe::new(EP, 1024, false);
        p.submit(Vec::new(), 255);
        p.push(msg(2061, true));
        p.push(msg(16, true));
        let c = p.next_completion().unwrap();
        assert_eq!((c.status, c.data.len()), (Err(TransferError::Overflow), 0));
        // The packet is lost; the rest of the message follows.
        p.submit(Vec::new(), 4096);
        assert_eq!(p.next_completion().unwrap().data.len(), 1037);
        // A short packet that fits is fine with any length.
        p.submit(Vec::new(), 255);
        let c = p.next_completion().unwrap();
        assert_eq!((c.status, c.data.len()), (Ok(()), 16));
        // Packets before the babble are kept.
        p.submit(Vec::new(), 1500);
        p.push(msg(3000, true));
        let c = p.next_completion().unwrap();
        assert_eq!(
            (c.status, c.data.len()),
            (Err(TransferError::Overflow), 1024)
        );
    }

    #[test]
    fn a_babbling_device_fails_any_transfer() {
        let mut p = pipe();
        p.submit(Vec::new(), 4096);
        p.push(Message {
            babble: true,
            ..msg(16, true)
        });
        let c = p.next_completion().unwrap();
        assert_eq!(c.status, Err(TransferError::Overflow));
        assert!(p.is_idle());
    }

    #[test]
    fn cancelled_and_failed_transfers_keep_their_bytes() {
        let mut p = pipe();
        p.submit(Vec::new(), 4096);
        p.push(msg(1024, false));
        assert!(p.next_completion().is_none());
        p.cancel_all();
        let c = p.next_completion().unwrap();
        assert_eq!(
            (c.status, c.data.len()),
            (Err(TransferError::Cancelled), 1024)
        );
        p.submit(Vec::new(), 4096);
        let c = p.fail_front(TransferError::Stall).unwrap();
        assert_eq!((c.status, c.data.len()), (Err(TransferError::Stall), 0));
        assert_eq!(p.pending(), 0);
        assert!(p.next_completion().is_none());
    }

    #[test]
    fn buffers_are_handed_over_not_copied() {
        let mut p = pipe();
        let host = Vec::with_capacity(8192);
        let host_ptr = host.as_ptr();
        p.submit(host, 8192);
        let m = msg(5000, true);
        let msg_ptr = m.bytes.as_ptr();
        p.push(m);
        let c = p.next_completion().unwrap();
        assert_eq!(c.data.as_ptr(), msg_ptr);
        let spare = p.take_spare();
        assert_eq!(spare.as_ptr(), host_ptr);
    }
}
