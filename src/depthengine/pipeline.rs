//! The streaming pipeline around an engine, shaped like the SDK's dewrapper: one thread owns
//! the engine (create, every process call, destroy), fed by a 2-deep queue that drops the
//! oldest raw frame.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender};

use super::{CameraCalibration, DepthEngine, DepthEngineError};
use crate::protocol::depth_raw;
use crate::types::{Capture, DepthMode, Fps, Image, ImageFormat};

/// Raw frames waiting for the engine (the SDK's `DEWRAPPER_QUEUE_DEPTH`).
pub const INPUT_QUEUE_DEPTH: usize = 2;

/// Converted captures waiting for the consumer before the worker blocks.
const OUTPUT_QUEUE_DEPTH: usize = 8;

/// How often a worker blocked on a full output queue checks for `stop`.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Frames the pipeline dropped, by reason (the device reports their [`total`](Self::total) as
/// its depth engine drops).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineDrops {
    /// Oldest raw frame dropped because the 2-deep input queue was full.
    pub queue_full: u64,
    /// Raw frame of the wrong size for the mode (as the SDK's depth layer drops them).
    pub invalid_size: u64,
    /// Converted frame with a 0 centre-of-exposure tick after a valid one.
    pub bad_timestamp: u64,
    /// Frame the engine failed with 106 or 208 (GPU trouble; the SDK drops and carries on).
    pub gpu_error: u64,
}

impl PipelineDrops {
    /// Frames dropped for any reason.
    pub fn total(&self) -> u64 {
        self.queue_full + self.invalid_size + self.bad_timestamp + self.gpu_error
    }
}

#[derive(Default)]
struct Counters {
    queue_full: AtomicU64,
    invalid_size: AtomicU64,
    bad_timestamp: AtomicU64,
    gpu_error: AtomicU64,
    slow: AtomicU64,
}

struct Queue {
    frames: VecDeque<(Vec<u8>, u64)>,
    stop: bool,
    finished: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    counters: Counters,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running depth pipeline: push raw frames in, receive captures (or the error that stopped
/// it) out. The engine lives on one dedicated thread from creation to destruction.
pub struct DepthPipeline {
    shared: Arc<Shared>,
    rx: Receiver<Result<Capture, DepthEngineError>>,
    worker: Option<JoinHandle<()>>,
    raw_size: usize,
}

impl DepthPipeline {
    /// Starts the worker thread, which creates the engine with the NV tag-2 calibration block
    /// and the depth camera's calibration; returns once creation has succeeded or with the
    /// engine's error (as the SDK's start waits for it).
    pub fn start(
        engine: &DepthEngine,
        mode: DepthMode,
        fps: Fps,
        cal_block: Vec<u8>,
        camera: Option<CameraCalibration>,
    ) -> Result<DepthPipeline, DepthEngineError> {
        let raw_size = depth_raw::sensor_mode_for(mode)
            .and_then(depth_raw::raw_frame_size)
            .ok_or(DepthEngineError::ModeOff(mode.sdk_name()))?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                frames: VecDeque::with_capacity(INPUT_QUEUE_DEPTH),
                stop: false,
                finished: false,
            }),
            wake: Condvar::new(),
            counters: Counters::default(),
        });
        let (tx, rx) = crossbeam_channel::bounded(OUTPUT_QUEUE_DEPTH);
        let (created_tx, created_rx) = mpsc::sync_channel(1);
        let worker = Worker {
            engine: engine.clone(),
            mode,
            period: Duration::from_micros(fps.period_usec().into()),
            shared: Arc::clone(&shared),
            tx,
        };
        let handle = std::thread::Builder::new()
            .name("freek4a-depthengine".into())
            .spawn(move || worker.run(cal_block, camera, created_tx))
            .map_err(|e| DepthEngineError::Thread(e.to_string()))?;
        match created_rx.recv() {
            Ok(Ok(())) => Ok(DepthPipeline {
                shared,
                rx,
                worker: Some(handle),
                raw_size,
            }),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(e)
            }
            Err(_) => {
                let _ = handle.join();
                Err(DepthEngineError::Thread(
                    "the worker ended before reporting creation".into(),
                ))
            }
        }
    }

    /// Queues one raw frame with its host reception time (`CLOCK_MONOTONIC`, ns). When two
    /// frames are already waiting the oldest is dropped and counted. A frame of the wrong size
    /// for the mode is dropped and counted. Fails once the pipeline has stopped.
    pub fn push(&self, raw: Vec<u8>, system_timestamp_ns: u64) -> Result<(), DepthEngineError> {
        let mut q = self.shared.lock();
        if q.stop || q.finished {
            return Err(DepthEngineError::Stopped);
        }
        if raw.len() != self.raw_size {
            self.shared
                .counters
                .invalid_size
                .fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        if q.frames.len() >= INPUT_QUEUE_DEPTH {
            q.frames.pop_front();
            self.shared
                .counters
                .queue_full
                .fetch_add(1, Ordering::Relaxed);
        }
        q.frames.push_back((raw, system_timestamp_ns));
        drop(q);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Converted captures, or the one error that stopped the pipeline (then disconnected).
    pub fn receiver(&self) -> &Receiver<Result<Capture, DepthEngineError>> {
        &self.rx
    }

    /// Raw frames dropped because the input queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.counters.queue_full.load(Ordering::Relaxed)
    }

    /// Every drop, by reason.
    pub fn drop_counts(&self) -> PipelineDrops {
        let c = &self.shared.counters;
        PipelineDrops {
            queue_full: c.queue_full.load(Ordering::Relaxed),
            invalid_size: c.invalid_size.load(Ordering::Relaxed),
            bad_timestamp: c.bad_timestamp.load(Ordering::Relaxed),
            gpu_error: c.gpu_error.load(Ordering::Relaxed),
        }
    }

    /// Frames whose processing took longer than the frame period.
    pub fn slow_frames(&self) -> u64 {
        self.shared.counters.slow.load(Ordering::Relaxed)
    }

    /// Stops the worker: frames still queued are discarded, the engine is destroyed on its
    /// thread. Captures already converted stay in the receiver. Idempotent.
    pub fn stop(&mut self) -> Result<(), DepthEngineError> {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        match self.worker.take() {
            Some(h) => h
                .join()
                .map_err(|_| DepthEngineError::Thread("the worker panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for DepthPipeline {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

struct Worker {
    engine: DepthEngine,
    mode: DepthMode,
    period: Duration,
    shared: Arc<Shared>,
    tx: Sender<Result<Capture, DepthEngineError>>,
}

impl Worker {
    fn run(
        self,
        cal_block: Vec<u8>,
        camera: Option<CameraCalibration>,
        created: mpsc::SyncSender<Result<(), DepthEngineError>>,
    ) {
        let converter = FrameConverter::new(&self.engine, self.mode, &cal_block, camera.as_ref());
        drop(cal_block);
        let mut converter = match converter {
            Ok(c) => {
                let _ = created.send(Ok(()));
                c
            }
            Err(e) => {
                self.shared.lock().finished = true;
                let _ = created.send(Err(e));
                return;
            }
        };
        if let Err(e) = self.stream(&mut converter) {
            self.shared.lock().finished = true;
            self.send(Err(e));
        }
        self.shared.lock().finished = true;
        // `converter` drops here: destroy runs on this thread, as creation did.
    }

    fn next_frame(&self) -> Option<(Vec<u8>, u64)> {
        let mut q = self.shared.lock();
        loop {
            if q.stop {
                return None;
            }
            if let Some(f) = q.frames.pop_front() {
                return Some(f);
            }
            q = self.shared.wake.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn stream(&self, converter: &mut FrameConverter) -> Result<(), DepthEngineError> {
        let counters = &self.shared.counters;
        while let Some((mut raw, system_ns)) = self.next_frame() {
            let started = Instant::now();
            let result = converter.convert(&mut raw, system_ns);
            let took = started.elapsed();
            drop(raw);
            if took > self.period {
                counters.slow.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "warning: Depth image processing is too slow at {}ms (this may be transient).",
                    took.as_millis()
                );
            }
            let capture = match result? {
                Converted::Capture(c) => c,
                Converted::GpuError(e) => {
                    counters.gpu_error.fetch_add(1, Ordering::Relaxed);
                    eprintln!("warning: {e}; SDK should be restarted since it looks like GPU has encountered an unrecoverable error. Dropping the frame.");
                    continue;
                }
                Converted::BadTimestamp => {
                    counters.bad_timestamp.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            if !self.send(Ok(capture)) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Sends to the consumer, waiting while its queue is full; false when it is gone or the
    /// pipeline is stopping.
    fn send(&self, mut item: Result<Capture, DepthEngineError>) -> bool {
        loop {
            match self.tx.send_timeout(item, STOP_POLL) {
                Ok(()) => return true,
                Err(SendTimeoutError::Disconnected(_)) => return false,
                Err(SendTimeoutError::Timeout(back)) => {
                    if self.shared.lock().stop {
                        return false;
                    }
                    item = back;
                }
            }
        }
    }
}

/// What one raw frame became.
#[derive(Debug)]
pub enum Converted {
    /// Depth (unless passive IR) and IR, timestamped with the engine's centre of exposure.
    Capture(Capture),
    /// The engine failed on this frame with a GPU error the SDK drops the frame for.
    GpuError(DepthEngineError),
    /// The engine gave a 0 timestamp after a valid one; the SDK drops such frames.
    BadTimestamp,
}

/// One engine context converting raw frames on the calling thread, with the SDK's rules for
/// what comes out: [`DepthPipeline`] runs one on its worker thread; offline conversion of a
/// raw recording calls it directly. Not `Send`, like the context it owns.
pub struct FrameConverter {
    ctx: super::EngineContext,
    mode: DepthMode,
    width: u32,
    height: u32,
    seen_valid: bool,
}

impl FrameConverter {
    /// Creates the engine context for `mode` with the unit's calibration block and depth
    /// camera calibration.
    pub fn new(
        engine: &DepthEngine,
        mode: DepthMode,
        cal_block: &[u8],
        camera: Option<&CameraCalibration>,
    ) -> Result<FrameConverter, DepthEngineError> {
        let (width, height) = mode
            .dimensions()
            .ok_or(DepthEngineError::ModeOff(mode.sdk_name()))?;
        let ctx = engine.create_context(mode, cal_block, camera)?;
        if ctx.output_size() == 0 {
            return Err(DepthEngineError::ZeroOutputSize {
                mode: mode.sdk_name(),
            });
        }
        Ok(FrameConverter {
            ctx,
            mode,
            width,
            height,
            seen_valid: false,
        })
    }

    /// Converts one raw frame received at host time `system_ns`. Errors other than the
    /// frame-dropping GPU errors end the conversion.
    pub fn convert(
        &mut self,
        raw: &mut [u8],
        system_ns: u64,
    ) -> Result<Converted, DepthEngineError> {
        let mut out = vec![0u8; self.ctx.output_size()];
        let info = match self.ctx.process(raw, &mut out) {
            Ok(info) => info,
            Err(e) if e.engine_result().is_some_and(|r| r.drops_frame()) => {
                return Ok(Converted::GpuError(e))
            }
            Err(e) => return Err(e),
        };
        let ticks = info.center_of_exposure_in_ticks;
        if ticks == 0 && self.seen_valid {
            return Ok(Converted::BadTimestamp);
        }
        self.seen_valid |= ticks != 0;
        self.capture(out, &info, system_ns).map(Converted::Capture)
    }

    fn capture(
        &self,
        mut out: Vec<u8>,
        info: &super::abi::OutputFrameInfo,
        system_ns: u64,
    ) -> Result<Capture, DepthEngineError> {
        let n = self.width as usize * self.height as usize * 2;
        let images = if self.mode.has_depth() { 2 } else { 1 };
        if u32::from(info.output_width) != self.width
            || u32::from(info.output_height) != self.height
            || out.len() < images * n
        {
            return Err(DepthEngineError::OutputMismatch {
                width: info.output_width,
                height: info.output_height,
                mode: self.mode.sdk_name(),
            });
        }
        let device_usec = crate::protocol::ticks_to_usec(info.center_of_exposure_in_ticks);
        let image = |format: ImageFormat, data: Vec<u8>| {
            Image::new(format, self.width, self.height, device_usec, data)
                .with_system_timestamp_nsec(system_ns)
        };
        let (depth, ir) = if self.mode.has_depth() {
            let ir = out[n..2 * n].to_vec();
            out.truncate(n);
            (
                Some(image(ImageFormat::Depth16, out)),
                image(ImageFormat::Ir16, ir),
            )
        } else {
            out.truncate(n);
            (None, image(ImageFormat::Ir16, out))
        };
        Ok(Capture {
            color: None,
            depth,
            ir: Some(ir),
            temperature_c: info.sensor_temp,
        })
    }
}
