//! One MCU's command channel: the command OUT and response IN queues of a claimed vendor
//! interface, the per-handle transaction counter, and the three transaction phases.

use std::sync::Mutex;
use std::time::Duration;

use crate::protocol::command::{
    Command, CommandError, CommandName, DeviceStatus, HostTransaction, TransactionIds,
    COMMAND_TIMEOUT_MS, STATUS_PACKET_LEN,
};
use crate::protocol::descriptors::McuChannel;
use crate::transport::{in_transfer_len, EndpointQueue, TransferError, UsbInterface};

/// Why a command transaction failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandFailure {
    /// A USB transfer of one phase failed.
    #[error("command {command}: {phase} transfer failed: {source}")]
    Transfer {
        /// The command.
        command: CommandName,
        /// "command", "data" or "status".
        phase: &'static str,
        /// The transfer error.
        source: TransferError,
    },
    /// A phase did not complete within 2000 ms.
    #[error("command {command}: {phase} phase timed out after {COMMAND_TIMEOUT_MS} ms")]
    Timeout {
        /// The command.
        command: CommandName,
        /// "command", "data" or "status".
        phase: &'static str,
    },
    /// The device's answer broke the protocol or reported failure.
    #[error(transparent)]
    Protocol(#[from] CommandError),
}

impl CommandFailure {
    /// Whether the failure means the device is gone.
    pub fn is_disconnect(&self) -> bool {
        matches!(
            self,
            CommandFailure::Transfer {
                source: TransferError::Disconnected,
                ..
            }
        )
    }
}

struct Inner {
    out: Box<dyn EndpointQueue>,
    inq: Box<dyn EndpointQueue>,
    ids: TransactionIds,
}

/// A claimed vendor interface used for commands.
pub(crate) struct CommandChannel {
    inner: Mutex<Inner>,
    interface: std::sync::Arc<Box<dyn UsbInterface>>,
}

fn phase_timeout() -> Duration {
    Duration::from_millis(COMMAND_TIMEOUT_MS.into())
}

fn wait(
    q: &mut dyn EndpointQueue,
    command: CommandName,
    phase: &'static str,
) -> Result<crate::transport::Completion, CommandFailure> {
    match q.wait_next_complete(phase_timeout()) {
        Some(c) => match c.status {
            Ok(()) => Ok(c),
            Err(source) => Err(CommandFailure::Transfer {
                command,
                phase,
                source,
            }),
        },
        None => {
            // Leave the queue clean: cancel and collect what was in flight.
            q.cancel_all();
            while q.pending() > 0 {
                if q.wait_next_complete(Duration::from_millis(100)).is_none() {
                    break;
                }
            }
            Err(CommandFailure::Timeout { command, phase })
        }
    }
}

impl CommandChannel {
    pub fn new(
        interface: std::sync::Arc<Box<dyn UsbInterface>>,
        channel: McuChannel,
    ) -> Result<CommandChannel, crate::transport::Error> {
        let out = interface.endpoint(channel.command_out.address())?;
        let inq = interface.endpoint(channel.response_in.address())?;
        Ok(CommandChannel {
            inner: Mutex::new(Inner {
                out,
                inq,
                ids: TransactionIds::new(),
            }),
            interface,
        })
    }

    /// The claimed interface the channel runs on.
    pub fn interface(&self) -> &dyn UsbInterface {
        self.interface.as_ref().as_ref()
    }

    fn run<C: Command>(&self, command: C) -> Result<(HostTransaction<C>, Vec<u8>), CommandFailure> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *inner;
        let id = inner.ids.next_id();
        let mut t = HostTransaction::new(command, id)?;
        let name: CommandName = C::CODE.into();
        let packet = t.out_packet();
        let n = packet.len();
        inner.out.submit(packet, n);
        wait(inner.out.as_mut(), name, "command")?;
        if let Some(data) = t.write_data() {
            let d = data.to_vec();
            let n = d.len();
            inner.out.submit(d, n);
            wait(inner.out.as_mut(), name, "data")?;
        }
        // IN lengths are whole packets (nusb's rule): the buffer the command asks for, rounded
        // up. The header still announces the command's own size, so the device never sends
        // more than that and ends early with a short packet; more is refused by accept_data.
        let mps = inner.inq.max_packet_size();
        if let Some(len) = t.read_len() {
            let n = in_transfer_len(len, mps);
            inner.inq.submit(vec![0; n], n);
            let c = wait(inner.inq.as_mut(), name, "data")?;
            t.accept_data(&c.data)?;
        }
        // At least one whole packet, so an oversized status is seen as such.
        let n = in_transfer_len(STATUS_PACKET_LEN, mps);
        inner.inq.submit(vec![0; n], n);
        let c = wait(inner.inq.as_mut(), name, "status")?;
        Ok((t, c.data))
    }

    /// Runs `command` and parses its response; a non-zero status is an error.
    pub fn execute<C: Command>(&self, command: C) -> Result<C::Response, CommandFailure> {
        let (t, status) = self.run(command)?;
        Ok(t.finish(&status)?)
    }

    /// Runs `command` and returns the device status and the raw data phase without judging them.
    pub fn execute_with_status<C: Command>(
        &self,
        command: C,
    ) -> Result<(DeviceStatus, Vec<u8>), CommandFailure> {
        let (t, status) = self.run(command)?;
        Ok(t.finish_with_status(&status)?)
    }
}
