//! Reader threads for the three streams: depth raw frames (bulk 0x83), colour UVC payloads
//! (isochronous 0x81) and IMU packets (bulk 0x82). Each owns its transport queue, keeps
//! transfers in flight, and hands what it decodes to the capture synchroniser or IMU queue.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::sync::CaptureSync;
use super::{DropCounters, Stream, StreamError};
use crate::depthengine::DepthPipeline;

/// The depth engine pipeline's input queue (the SDK's `DEWRAPPER_QUEUE_DEPTH`).
const ENGINE_INPUT_QUEUE_DEPTH: u64 = 2;
use crate::protocol::calibration::ImuSensorCalibration;
use crate::protocol::imu::{needs_reevaluation, ImuIntrinsics, ImuPacket};
use crate::protocol::uvc::{ColorFrameMetadata, FrameAssembler};
use crate::transport::{EndpointQueue, IsoInQueue, TransferError};
use crate::types::{Capture, Image, ImageFormat, ImuSample};

/// How long a reader waits for one completion before checking whether it should stop.
const POLL: Duration = Duration::from_millis(50);

/// Host `CLOCK_MONOTONIC` in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// A running reader thread.
pub(crate) struct Reader {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Reader {
    fn spawn(
        name: &str,
        f: impl FnOnce(Arc<AtomicBool>) + Send + 'static,
    ) -> Result<Reader, StreamError> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || f(s))
            .map_err(|e| StreamError::Thread(Arc::new(e)))?;
        Ok(Reader {
            stop,
            handle: Some(handle),
        })
    }

    /// Asks the thread to stop and waits for it.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A bounded queue that drops its oldest entry when full.
pub(crate) struct DropOldest<T> {
    items: Mutex<(VecDeque<T>, Option<StreamError>, bool)>,
    ready: Condvar,
    capacity: usize,
}

impl<T> DropOldest<T> {
    pub fn new(capacity: usize) -> DropOldest<T> {
        DropOldest {
            items: Mutex::new((VecDeque::new(), None, true)),
            ready: Condvar::new(),
            capacity,
        }
    }
    /// Pushes; returns true when the oldest entry was dropped to make room.
    pub fn push(&self, v: T) -> bool {
        let mut g = self.items.lock().unwrap_or_else(|e| e.into_inner());
        let dropped = g.0.len() == self.capacity;
        if dropped {
            g.0.pop_front();
        }
        g.0.push_back(v);
        self.ready.notify_all();
        dropped
    }
    pub fn fail(&self, e: StreamError) {
        let mut g = self.items.lock().unwrap_or_else(|e| e.into_inner());
        if g.1.is_none() {
            g.1 = Some(e);
        }
        self.ready.notify_all();
    }
    pub fn set_running(&self, running: bool) {
        let mut g = self.items.lock().unwrap_or_else(|e| e.into_inner());
        g.2 = running;
        if running {
            g.0.clear();
            g.1 = None;
        }
        self.ready.notify_all();
    }
    /// Waits until there is room (back-pressure), the queue stops or fails, or `stop` is set.
    pub fn wait_for_room(&self, stop: &AtomicBool) {
        let mut g = self.items.lock().unwrap_or_else(|e| e.into_inner());
        while g.0.len() >= self.capacity && g.1.is_none() && g.2 && !stop.load(Ordering::SeqCst) {
            g = self
                .ready
                .wait_timeout(g, POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    pub fn pop(&self, timeout: Duration) -> Result<Option<T>, StreamError> {
        let deadline = Instant::now() + timeout;
        let mut g = self.items.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(e) = &g.1 {
                return Err(e.clone());
            }
            if let Some(v) = g.0.pop_front() {
                self.ready.notify_all();
                return Ok(Some(v));
            }
            if !g.2 {
                return Err(StreamError::NotStreaming);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            g = self
                .ready
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A raw depth frame with its host reception time.
#[derive(Clone, Debug)]
pub struct RawDepthFrame {
    /// The raw payload (exactly the mode's size).
    pub data: Vec<u8>,
    /// `CLOCK_MONOTONIC` at transfer completion, ns.
    pub system_timestamp_ns: u64,
}

/// Where raw depth frames go.
pub(crate) enum DepthSink {
    /// Through the depth engine into capture sync.
    Engine {
        /// The running pipeline.
        pipeline: Arc<Mutex<DepthPipeline>>,
        /// Frames handed to it and captures that came out (for back-pressure).
        flow: Arc<EngineFlow>,
        /// Wait for the engine instead of letting its input queue drop frames.
        backpressure: bool,
    },
    /// Into a queue of raw frames (no engine).
    Raw(Arc<DropOldest<RawDepthFrame>>),
}

/// Parameters of the depth reader.
pub(crate) struct DepthReaderParams {
    pub queue: Box<dyn EndpointQueue>,
    pub raw_size: usize,
    pub buffer_size: usize,
    pub transfers: usize,
    pub sink: DepthSink,
    pub sync: Arc<CaptureSync>,
    pub drops: Arc<DropCounters>,
    pub backpressure: bool,
}

/// Starts the depth reader.
pub(crate) fn start_depth(p: DepthReaderParams) -> Result<Reader, StreamError> {
    Reader::spawn("freek4a-depth-usb", move |stop| {
        let DepthReaderParams {
            mut queue,
            raw_size,
            buffer_size,
            transfers,
            sink,
            sync,
            drops,
            backpressure,
        } = p;
        for _ in 0..transfers.max(1) {
            queue.submit(vec![0; buffer_size], buffer_size);
        }
        while !stop.load(Ordering::SeqCst) {
            let Some(c) = queue.wait_next_complete(POLL) else {
                continue;
            };
            let resubmit = |q: &mut Box<dyn EndpointQueue>, mut buf: Vec<u8>| {
                buf.resize(buffer_size, 0);
                q.submit(buf, buffer_size);
            };
            match c.status {
                Ok(()) if c.data.len() == raw_size => {
                    let ts = monotonic_ns();
                    let fresh = vec![0; buffer_size];
                    let data = c.data;
                    match &sink {
                        DepthSink::Engine {
                            pipeline,
                            flow,
                            backpressure,
                        } => {
                            if *backpressure {
                                flow.wait_for_room(pipeline, &stop);
                                if stop.load(Ordering::SeqCst) {
                                    break;
                                }
                            }
                            let p = pipeline.lock().unwrap_or_else(|e| e.into_inner());
                            flow.pushed.fetch_add(1, Ordering::SeqCst);
                            if let Err(e) = p.push(data, ts) {
                                sync.fail(StreamError::DepthEngine(Arc::new(e)));
                                break;
                            }
                        }
                        DepthSink::Raw(q) => {
                            if backpressure {
                                q.wait_for_room(&stop);
                                if stop.load(Ordering::SeqCst) {
                                    break;
                                }
                            }
                            if q.push(RawDepthFrame {
                                data,
                                system_timestamp_ns: ts,
                            }) {
                                drops.add(&drops.depth_queue_full, 1);
                            }
                        }
                    }
                    queue.submit(fresh, buffer_size);
                }
                Ok(()) | Err(TransferError::Overflow) => {
                    // "Dropping raw image due to invalid size"
                    drops.add(&drops.depth_invalid_size, 1);
                    resubmit(&mut queue, c.data);
                }
                Err(TransferError::Timeout) => {
                    drops.add(&drops.depth_timeouts, 1);
                    resubmit(&mut queue, c.data);
                }
                Err(TransferError::Cancelled) => {}
                Err(source) => {
                    let e = StreamError::Transfer {
                        stream: Stream::Depth,
                        source,
                    };
                    if let DepthSink::Raw(q) = &sink {
                        q.fail(e.clone());
                    }
                    sync.fail(e);
                    break;
                }
            }
        }
        queue.cancel_all();
        while queue.pending() > 0 && queue.wait_next_complete(POLL).is_some() {}
    })
}

/// Counts frames into and captures out of the depth engine.
#[derive(Default)]
pub(crate) struct EngineFlow {
    pushed: std::sync::atomic::AtomicU64,
    received: std::sync::atomic::AtomicU64,
}

impl EngineFlow {
    /// Waits while the engine's 2-deep input queue is full.
    fn wait_for_room(&self, pipeline: &Mutex<DepthPipeline>, stop: &AtomicBool) {
        loop {
            let dropped = {
                let c = pipeline
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .drop_counts();
                c.queue_full + c.invalid_size + c.bad_timestamp + c.gpu_error
            };
            let done = self.received.load(Ordering::SeqCst) + dropped;
            let in_flight = self.pushed.load(Ordering::SeqCst).saturating_sub(done);
            if in_flight < ENGINE_INPUT_QUEUE_DEPTH || stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Forwards the depth engine's captures into capture sync.
pub(crate) fn start_depth_forwarder(
    rx: crossbeam_channel::Receiver<Result<Capture, crate::depthengine::DepthEngineError>>,
    flow: Arc<EngineFlow>,
    sync: Arc<CaptureSync>,
    drops: Arc<DropCounters>,
    backpressure: bool,
) -> Result<Reader, StreamError> {
    Reader::spawn("freek4a-depth-out", move |stop| {
        while !stop.load(Ordering::SeqCst) {
            match rx.recv_timeout(POLL) {
                Ok(Ok(c)) => {
                    flow.received.fetch_add(1, Ordering::SeqCst);
                    if backpressure {
                        sync.wait_for_room(&stop);
                    }
                    sync.push_depth(c, &drops)
                }
                Ok(Err(e)) => {
                    sync.fail(StreamError::DepthEngine(Arc::new(e)));
                    break;
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
        }
    })
}

/// Parameters of the colour reader.
pub(crate) struct ColorReaderParams {
    pub queue: Box<dyn IsoInQueue>,
    pub transfers: usize,
    pub transfer_bytes: usize,
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    pub sync: Arc<CaptureSync>,
    pub drops: Arc<DropCounters>,
    pub backpressure: bool,
}

/// Starts the colour reader.
pub(crate) fn start_color(p: ColorReaderParams) -> Result<Reader, StreamError> {
    Reader::spawn("freek4a-color-usb", move |stop| {
        let ColorReaderParams {
            mut queue,
            transfers,
            transfer_bytes,
            format,
            width,
            height,
            sync,
            drops,
            backpressure,
        } = p;
        for _ in 0..transfers.max(1) {
            queue.submit(vec![0; transfer_bytes]);
        }
        let mut asm = FrameAssembler::new();
        let mut seen = asm.stats;
        let expected = format.image_size_bytes(width, height);
        while !stop.load(Ordering::SeqCst) {
            let Some(c) = queue.wait_next_complete(POLL) else {
                continue;
            };
            match c.status {
                Ok(()) => {}
                Err(TransferError::Cancelled) => continue,
                Err(source) => {
                    sync.fail(StreamError::Transfer {
                        stream: Stream::Color,
                        source,
                    });
                    break;
                }
            }
            for pk in &c.packets {
                if pk.status.is_err() {
                    drops.add(&drops.color_bad_packet, 1);
                    continue;
                }
                let Some(payload) = c.data.get(pk.offset..pk.offset + pk.actual_len) else {
                    drops.add(&drops.color_bad_packet, 1);
                    continue;
                };
                for frame in asm.push(payload) {
                    let meta = if frame.metadata_reused {
                        None
                    } else {
                        ColorFrameMetadata::parse(&frame.metadata).ok()
                    };
                    let Some(ts) = meta.and_then(|m| m.device_timestamp_usec()) else {
                        drops.add(&drops.color_no_timestamp, 1);
                        continue;
                    };
                    let data = if format == ImageFormat::Bgra32 {
                        match decode_bgra(&frame.data, width, height) {
                            Some(d) => d,
                            None => {
                                // "MJPEG decode failed, dropping image"
                                drops.add(&drops.color_bad_size, 1);
                                continue;
                            }
                        }
                    } else {
                        frame.data
                    };
                    if expected.is_some_and(|n| n != data.len()) {
                        drops.add(&drops.color_bad_size, 1);
                        continue;
                    }
                    let image = Image::new(format, width, height, ts, data)
                        .with_system_timestamp_nsec(monotonic_ns())
                        .with_exposure_usec(meta.and_then(|m| m.exposure_usec).unwrap_or(0));
                    if backpressure {
                        sync.wait_for_room(&stop);
                    }
                    sync.push_color(image, &drops);
                }
            }
            let st = asm.stats;
            let bad = (st.malformed_payloads - seen.malformed_payloads)
                + (st.error_payloads - seen.error_payloads)
                + (st.oversized_frames - seen.oversized_frames);
            if bad > 0 {
                drops.add(&drops.color_bad_packet, bad);
            }
            seen = st;
            let mut buf = c.data;
            buf.resize(transfer_bytes, 0);
            queue.submit(buf);
        }
        queue.cancel_all();
        while queue.pending() > 0 && queue.wait_next_complete(POLL).is_some() {}
    })
}

/// Decodes an MJPEG frame to BGRA32 of the expected size (the SDK's BGRA32 colour format).
fn decode_bgra(jpeg: &[u8], width: u32, height: u32) -> Option<Vec<u8>> {
    use zune_jpeg::zune_core::{
        bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions,
    };
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::BGRA)
        .set_max_width(width as usize)
        .set_max_height(height as usize);
    let mut d = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(jpeg), options);
    let out = d.decode().ok()?;
    (out.len() == width as usize * height as usize * 4).then_some(out)
}

/// Samples the IMU queue holds (the SDK's size).
pub const IMU_QUEUE_DEPTH: usize = 833;

/// IMU calibration applied when samples are delivered.
#[derive(Clone)]
pub(crate) struct ImuCalibration {
    pub gyro: ImuSensorCalibration,
    pub accel: ImuSensorCalibration,
}

/// Parameters of the IMU reader.
pub(crate) struct ImuReaderParams {
    pub queue: Box<dyn EndpointQueue>,
    pub out: Arc<DropOldest<ImuSample>>,
    pub drops: Arc<DropCounters>,
    pub calibration: Option<ImuCalibration>,
    /// Drop samples above 1.5 s until the first one below (colour started recently).
    pub startup_filter: bool,
    /// Wait for room in the IMU queue instead of dropping.
    pub backpressure: bool,
}

/// Starts the IMU reader.
pub(crate) fn start_imu(p: ImuReaderParams) -> Result<Reader, StreamError> {
    Reader::spawn("freek4a-imu-usb", move |stop| {
        let ImuReaderParams {
            mut queue,
            out,
            drops,
            calibration,
            mut startup_filter,
            backpressure,
        } = p;
        // The SDK's 252-byte buffer, rounded up to whole packets (nusb's rule); a packet longer
        // than 252 bytes is what the SDK's buffer would have refused (babble), so it is dropped.
        let max_packet = crate::protocol::modes::IMU_TRANSFER_BYTES;
        let len = crate::transport::in_transfer_len(max_packet, queue.max_packet_size());
        for _ in 0..crate::protocol::modes::MAX_TRANSFERS {
            queue.submit(vec![0; len], len);
        }
        let mut last_temp = 0.0f32;
        let mut at: Option<(ImuIntrinsics, ImuIntrinsics)> = calibration.as_ref().map(|c| {
            (
                c.gyro.model.evaluate(c.gyro.temperature_c),
                c.accel.model.evaluate(c.accel.temperature_c),
            )
        });
        while !stop.load(Ordering::SeqCst) {
            let Some(c) = queue.wait_next_complete(POLL) else {
                continue;
            };
            match c.status {
                Ok(()) => {}
                Err(TransferError::Cancelled) => continue,
                Err(TransferError::Overflow) | Err(TransferError::Timeout) => {
                    drops.add(&drops.imu_malformed, 1);
                    let mut b = c.data;
                    b.resize(len, 0);
                    queue.submit(b, len);
                    continue;
                }
                Err(source) => {
                    out.fail(StreamError::Transfer {
                        stream: Stream::Imu,
                        source,
                    });
                    break;
                }
            }
            match ImuPacket::decode(&c.data) {
                Err(_) => drops.add(&drops.imu_malformed, 1),
                Ok(_) if c.data.len() > max_packet => drops.add(&drops.imu_malformed, 1),
                Ok(packet) if packet.gyro.len() > 8 || packet.accel.len() > 8 => {
                    drops.add(&drops.imu_malformed, 1)
                }
                Ok(packet) => {
                    for mut s in packet.samples() {
                        if startup_filter {
                            if s.acc_timestamp_usec > 1_500_000 {
                                drops.add(&drops.imu_startup, 1);
                                continue;
                            }
                            startup_filter = false;
                        }
                        if let Some(cal) = &calibration {
                            if needs_reevaluation(last_temp, s.temperature_c) {
                                last_temp = s.temperature_c;
                                at = Some((
                                    cal.gyro.model.evaluate(last_temp),
                                    cal.accel.model.evaluate(last_temp),
                                ));
                            }
                            if let Some((g, a)) = &at {
                                s.gyro_radps = cal.gyro.model.apply(g, s.gyro_radps);
                                s.acc_mps2 = cal.accel.model.apply(a, s.acc_mps2);
                            }
                        }
                        if backpressure {
                            out.wait_for_room(&stop);
                            if stop.load(Ordering::SeqCst) {
                                break;
                            }
                        }
                        if out.push(s) {
                            drops.add(&drops.imu_queue_full, 1);
                        }
                    }
                }
            }
            let mut b = c.data;
            b.resize(len, 0);
            queue.submit(b, len);
        }
        queue.cancel_all();
        while queue.pending() > 0 && queue.wait_next_complete(POLL).is_some() {}
    })
}
