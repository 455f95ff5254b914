//! The emulated functions as transport devices: descriptors, interfaces, control requests
//! and the command/response endpoint queues.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::color::{self, ColorStream};
use super::commands::OutResult;
use super::pipe::{BulkIn, InPipe, Message, Source};
use super::streams::{DepthStream, ImuStream};
use super::{Function, Unit};
use crate::protocol::descriptors::{
    bos_descriptor, color_configuration, depth_configuration, descriptor_type, string_descriptor,
    string_index, string_languages, DeviceDescriptor, InterfaceNumber, McuChannel, StreamEndpoint,
    ALT_SETTING_ZERO_BANDWIDTH, COLOR_MCU, COLOR_VENDOR_INTERFACE, DEPTH_INTERFACE, DEPTH_MCU,
    EP_UVC_VIDEO_IN, TRANSFER_TYPE_BULK, UVC_CONTROL_INTERFACE, UVC_STREAMING_INTERFACE,
};
use crate::protocol::uvc::{
    self as uvcp, request as uvc_req, ProbeCommit, UvcControl, PROBE_LEN_UVC10, VS_COMMIT_CONTROL,
    VS_PROBE_CONTROL,
};
use crate::transport::{
    self, Completion, ControlSetup, DeviceInfo, EndpointQueue, ErrorKind, IsoInQueue,
    TransferError, UsbDevice, UsbInterface,
};
use crate::types::Stream;

fn disconnected(context: String) -> transport::Error {
    transport::Error::new(ErrorKind::Disconnected, context)
}

/// One opened function of a unit.
pub(crate) struct EmuDevice {
    unit: Arc<Unit>,
    function: Function,
    info: DeviceInfo,
    nusb_rules: bool,
}

/// wMaxPacketSize of a bulk endpoint of `function`'s vendor interface, from the descriptors
/// the function presents.
fn bulk_max_packet_size(
    function: Function,
    interface: InterfaceNumber,
    address: u8,
) -> Option<usize> {
    let config = match function {
        Function::Depth => depth_configuration(),
        Function::Color => color_configuration(),
    };
    config
        .endpoints(interface)
        .iter()
        .find(|e| e.address == address && e.transfer_type() == TRANSFER_TYPE_BULK)
        .map(|e| e.packet_size())
}

impl EmuDevice {
    pub fn new(
        unit: Arc<Unit>,
        function: Function,
        info: DeviceInfo,
        nusb_rules: bool,
    ) -> EmuDevice {
        EmuDevice {
            unit,
            function,
            info,
            nusb_rules,
        }
    }

    fn string(&self, index: u8) -> Option<String> {
        match index {
            string_index::MANUFACTURER => Some("Microsoft".into()),
            string_index::PRODUCT => Some(match self.function {
                Function::Depth => "Azure Kinect Depth Camera".into(),
                Function::Color => "Azure Kinect 4K Camera".into(),
            }),
            string_index::SERIAL => Some(self.unit.serial.clone()),
            _ => None,
        }
    }
}

impl UsbDevice for EmuDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn get_descriptor(
        &self,
        descriptor_type: u8,
        index: u8,
        _lang: u16,
        _t: Duration,
    ) -> Result<Vec<u8>, transport::Error> {
        if self.unit.is_disconnected() {
            return Err(disconnected(format!(
                "get descriptor {descriptor_type} of {}",
                self.info
            )));
        }
        let pid = self.info.product_id;
        match (descriptor_type, index) {
            (descriptor_type::DEVICE, 0) => Ok(DeviceDescriptor::for_product(pid).encode()),
            (descriptor_type::CONFIGURATION, 0) => Ok(match self.function {
                Function::Depth => depth_configuration().encode(),
                Function::Color => color_configuration().encode(),
            }),
            (descriptor_type::STRING, 0) => Ok(string_languages()),
            (descriptor_type::STRING, i) => self
                .string(i)
                .map(|s| string_descriptor(&s))
                .ok_or_else(|| {
                    transport::Error::new(
                        ErrorKind::NotFound,
                        format!("string {i} of {}", self.info),
                    )
                }),
            (descriptor_type::BOS, 0) => Ok(bos_descriptor(self.unit.container_id)),
            _ => Err(transport::Error::new(
                ErrorKind::NotFound,
                format!("descriptor {descriptor_type}/{index} of {}", self.info),
            )),
        }
    }

    fn claim_interface(
        &self,
        number: u8,
        _detach: bool,
    ) -> Result<Box<dyn UsbInterface>, transport::Error> {
        let ctx = format!("claim interface {number} of {}", self.info);
        if self.unit.is_disconnected() {
            return Err(disconnected(ctx));
        }
        let number = InterfaceNumber::new(number);
        let valid = match self.function {
            Function::Depth => number == DEPTH_INTERFACE,
            Function::Color => [
                UVC_CONTROL_INTERFACE,
                UVC_STREAMING_INTERFACE,
                COLOR_VENDOR_INTERFACE,
            ]
            .contains(&number),
        };
        if !valid {
            return Err(transport::Error::new(ErrorKind::NotFound, ctx));
        }
        if !self.unit.lock().claimed.insert((self.function, number)) {
            return Err(transport::Error::new(ErrorKind::Busy, ctx));
        }
        Ok(Box::new(EmuInterface {
            unit: self.unit.clone(),
            function: self.function,
            number,
            nusb_rules: self.nusb_rules,
        }))
    }
}

/// A claimed interface.
pub(crate) struct EmuInterface {
    unit: Arc<Unit>,
    function: Function,
    number: InterfaceNumber,
    nusb_rules: bool,
}

impl Drop for EmuInterface {
    fn drop(&mut self) {
        let mut st = self.unit.lock();
        st.claimed.remove(&(self.function, self.number));
        if self.is_vs() && st.color.streaming {
            st.color.streaming = false;
            drop(st);
            self.unit.notify();
        }
    }
}

impl EmuInterface {
    fn is_vs(&self) -> bool {
        self.function == Function::Color && self.number == UVC_STREAMING_INTERFACE
    }
    fn is_vc(&self) -> bool {
        self.function == Function::Color && self.number == UVC_CONTROL_INTERFACE
    }
    /// The MCU command channel this interface carries, if any.
    fn mcu(&self) -> Option<McuChannel> {
        match self.function {
            Function::Depth => Some(DEPTH_MCU),
            Function::Color => Some(COLOR_MCU),
        }
        .filter(|c| c.interface == self.number)
    }
}

impl UsbInterface for EmuInterface {
    fn number(&self) -> u8 {
        self.number.get()
    }

    fn control_in(
        &self,
        setup: ControlSetup,
        length: u16,
        _t: Duration,
    ) -> Result<Vec<u8>, TransferError> {
        if self.unit.is_disconnected() {
            return Err(TransferError::Disconnected);
        }
        let selector = uvcp::selector_of(setup.value);
        if self.is_vs() && uvcp::interface_of(setup.index) == UVC_STREAMING_INTERFACE.get() {
            if selector != VS_PROBE_CONTROL && selector != VS_COMMIT_CONTROL {
                return Err(TransferError::Stall);
            }
            let st = self.unit.lock();
            let p = match setup.request {
                uvc_req::GET_CUR => {
                    if selector == VS_COMMIT_CONTROL {
                        st.color.committed.unwrap_or(st.color.probe)
                    } else {
                        st.color.probe
                    }
                }
                uvc_req::GET_MIN | uvc_req::GET_DEF => color::negotiate(&ProbeCommit {
                    format_index: 1,
                    frame_index: 1,
                    ..Default::default()
                }),
                uvc_req::GET_MAX => color::negotiate(&ProbeCommit {
                    format_index: 1,
                    frame_index: 6,
                    ..Default::default()
                }),
                _ => return Err(TransferError::Stall),
            };
            let mut b = p.encode();
            b.truncate(length as usize);
            return Ok(b);
        }
        if self.is_vc() {
            let control =
                UvcControl::addressed_by(setup.value, setup.index).ok_or(TransferError::Stall)?;
            let st = self.unit.lock();
            let v = color::control_get(&st.color, control, setup.request)
                .ok_or(TransferError::Stall)?;
            let mut b = v.to_le_bytes()[..usize::from(control.len)].to_vec();
            b.truncate(length as usize);
            return Ok(b);
        }
        Err(TransferError::Stall)
    }

    fn control_out(
        &self,
        setup: ControlSetup,
        data: &[u8],
        _t: Duration,
    ) -> Result<(), TransferError> {
        if self.unit.is_disconnected() {
            return Err(TransferError::Disconnected);
        }
        let selector = uvcp::selector_of(setup.value);
        if setup.request != uvc_req::SET_CUR {
            return Err(TransferError::Stall);
        }
        if self.is_vs() {
            let p = ProbeCommit::decode(data).map_err(|_| TransferError::Stall)?;
            if data.len() < PROBE_LEN_UVC10 || color::frame_for(&p).is_none() {
                return Err(TransferError::Stall);
            }
            let mut st = self.unit.lock();
            let n = color::negotiate(&p);
            match selector {
                VS_PROBE_CONTROL => st.color.probe = n,
                VS_COMMIT_CONTROL => {
                    st.color.committed = Some(n);
                    drop(st);
                    // Encode the MJPEG frames now, before streaming starts, so the first
                    // frames are not late.
                    if let Some(f) =
                        color::frame_for(&n).filter(|f| f.pixels == color::Pixels::Mjpeg)
                    {
                        super::images::jpeg_set(f.width.into(), f.height.into())
                            .map_err(|_| TransferError::Stall)?;
                    }
                }
                _ => return Err(TransferError::Stall),
            }
            return Ok(());
        }
        if self.is_vc() {
            let control =
                UvcControl::addressed_by(setup.value, setup.index).ok_or(TransferError::Stall)?;
            let mut st = self.unit.lock();
            return color::control_set(&mut st.color, control, data).ok_or(TransferError::Stall);
        }
        Err(TransferError::Stall)
    }

    fn set_alt_setting(&self, alt: u8) -> Result<(), transport::Error> {
        let ctx = format!("set alternate setting {alt} of interface {}", self.number);
        if self.unit.is_disconnected() {
            return Err(disconnected(ctx));
        }
        if !self.is_vs() {
            return if alt == ALT_SETTING_ZERO_BANDWIDTH {
                Ok(())
            } else {
                Err(transport::Error::new(ErrorKind::NotFound, ctx))
            };
        }
        let mut st = self.unit.lock();
        match alt {
            ALT_SETTING_ZERO_BANDWIDTH => st.color.streaming = false,
            a if (a as usize) <= color::alt_settings() => {
                if st.color.committed.is_none() {
                    return Err(transport::Error::new(
                        ErrorKind::Other,
                        format!("{ctx}: no committed format"),
                    ));
                }
                st.color.streaming = true;
                st.color.alt = alt;
            }
            _ => return Err(transport::Error::new(ErrorKind::NotFound, ctx)),
        }
        let starting = st.color.streaming;
        drop(st);
        if starting {
            // Starting the colour camera resets the device timebase (as the SDK assumes).
            self.unit.pacer.reset();
            self.unit.log("color-start", String::new());
        } else {
            self.unit.bus.stop_train(self.unit.index);
            self.unit.log("color-stop", String::new());
        }
        self.unit.notify();
        Ok(())
    }

    fn endpoint(&self, address: u8) -> Result<Box<dyn EndpointQueue>, transport::Error> {
        let ctx = || format!("endpoint 0x{address:02X} of interface {}", self.number);
        if self.unit.is_disconnected() {
            return Err(disconnected(ctx()));
        }
        let u = self.unit.clone();
        let mps = bulk_max_packet_size(self.function, self.number, address)
            .ok_or_else(|| transport::Error::new(ErrorKind::NotFound, ctx()))?;
        let pipe = || InPipe::new(address, mps, self.nusb_rules);
        let mcu = self
            .mcu()
            .ok_or_else(|| transport::Error::new(ErrorKind::NotFound, ctx()))?;
        // The bulk stream beside the MCU channel.
        let stream = StreamEndpoint::of(match self.function {
            Function::Depth => Stream::Depth,
            Function::Color => Stream::Imu,
        });
        Ok(if address == mcu.command_out.address() {
            Box::new(CommandOut {
                unit: u,
                function: self.function,
                address,
                max_packet_size: mps,
                pending: VecDeque::new(),
            })
        } else if address == mcu.response_in.address() {
            Box::new(BulkIn::new(
                pipe(),
                Responses {
                    unit: u,
                    function: self.function,
                },
            ))
        } else if address == stream.endpoint.address() {
            match self.function {
                Function::Depth => Box::new(BulkIn::new(pipe(), DepthStream::new(u))),
                Function::Color => Box::new(BulkIn::new(pipe(), ImuStream::new(u))),
            }
        } else {
            return Err(transport::Error::new(ErrorKind::NotFound, ctx()));
        })
    }

    fn iso_in_endpoint(
        &self,
        address: u8,
        packets: usize,
        packet_size: usize,
    ) -> Result<Box<dyn IsoInQueue>, transport::Error> {
        if self.unit.is_disconnected() {
            return Err(disconnected(format!("iso endpoint 0x{address:02X}")));
        }
        if !self.is_vs()
            || address != EP_UVC_VIDEO_IN.address()
            || !(256..=color::BYTES_PER_INTERVAL).contains(&packet_size)
            || packets == 0
        {
            return Err(transport::Error::new(
                ErrorKind::NotFound,
                format!("iso endpoint 0x{address:02X} ({packets} × {packet_size} bytes) of interface {}", self.number),
            ));
        }
        let alt = self.unit.lock().color.alt;
        if packet_size > color::bytes_per_interval(alt) {
            return Err(transport::Error::new(
                ErrorKind::Other,
                format!(
                    "iso endpoint {EP_UVC_VIDEO_IN}: {packet_size}-byte packets exceed alternate \
                     setting {alt}"
                ),
            ));
        }
        Ok(Box::new(ColorStream::new(
            self.unit.clone(),
            packets,
            packet_size,
        )))
    }
}

/// Command OUT endpoint: each transfer is one command packet, handled when collected.
struct CommandOut {
    unit: Arc<Unit>,
    function: Function,
    address: u8,
    max_packet_size: usize,
    pending: VecDeque<(Vec<u8>, usize)>,
}

impl EndpointQueue for CommandOut {
    fn address(&self) -> u8 {
        self.address
    }
    fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }
    fn submit(&mut self, buffer: Vec<u8>, length: usize) {
        self.pending.push_back((buffer, length));
    }
    fn wait_next_complete(&mut self, _timeout: Duration) -> Option<Completion> {
        let (data, len) = self.pending.pop_front()?;
        let len = len.min(data.len());
        if self.unit.is_disconnected() {
            return Some(Completion {
                data,
                actual_len: 0,
                status: Err(TransferError::Disconnected),
            });
        }
        let status = match self.unit.handle_command(self.function, &data[..len]) {
            OutResult::Ok => Ok(()),
            OutResult::Stall => Err(TransferError::Stall),
        };
        if self.unit.is_disconnected() {
            return Some(Completion {
                data,
                actual_len: 0,
                status: Err(TransferError::Disconnected),
            });
        }
        Some(Completion {
            data,
            actual_len: len,
            status,
        })
    }
    fn pending(&self) -> usize {
        self.pending.len()
    }
    fn cancel_all(&mut self) {}
}

/// Response IN endpoint: the data phases and status packets the MCU queued.
struct Responses {
    unit: Arc<Unit>,
    function: Function,
}

impl Source for Responses {
    fn produce(
        &mut self,
        pipe: &mut InPipe,
        deadline: Instant,
    ) -> Result<Message, Option<Completion>> {
        let chan = match self.function {
            Function::Depth => &self.unit.depth_resp,
            Function::Color => &self.unit.color_resp,
        };
        let mut q = chan.queue.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.unit.is_disconnected() {
                drop(q);
                return Err(pipe.fail_front(TransferError::Disconnected));
            }
            if let Some(msg) = q.pop_front() {
                return Ok(msg);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(None);
            }
            q = chan
                .ready
                .wait_timeout(q, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
