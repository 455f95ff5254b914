//! record layer (see DESIGN.md): device stream → capture queue → writer thread.
//!
//! [`Recorder`] is the recorder: it starts a unit's streams, runs the capture and IMU loop into
//! a [`FileSink`] (stop flag, length limit, drops forwarded into the file, the unit's facts in
//! its tags) and finishes the file. Both binaries and the examples record through it.
//!
//! [`RecordingWriter`] owns a [`K4aWriter`] on its own thread behind a queue bounded in bytes.
//! Producers never block: when the queue is full the item is dropped and counted per stream, and
//! the counts end up in the file's `FREEK4A_DROPPED_*` tags.
//!
//! [`RecordingWriter::submit_capture`] swaps depth and IR to big-endian and checksums every
//! image ([`PreparedCapture`]) on the submitting thread, while a freshly delivered capture is
//! still in that core's cache; the writing thread groups, renders and writes, reading each
//! payload byte once. Captures move by ownership. (Before, a separate preparing thread did
//! this after the capture had waited in the queue, so it read memory as cold as the writer's.)
//! A capture's bytes count against the queue bound until the writing thread takes them, and
//! from then on against the writer's pending-cluster budget
//! (`RecordingSettings::pending_limit_bytes`), so the memory held is at most the sum of the two.

use std::io::{Seek, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{unbounded, Receiver, Sender};

mod convert;
mod file;
pub mod raw;
mod recorder;

use crate::mkv::writer::{FileSummary, K4aWriter, PreparedCapture, RecordingSettings, WriteError};
pub use crate::types::DropCounts;
use crate::types::TrackKind;
use crate::types::{Capture, ImuSample};
pub use convert::{convert_depth, ConvertError, ConvertOptions, ConvertSummary};
pub use file::{FileSink, RecordingFile, SinkError, TEST_WRITE_DELAY_ENV};
pub use recorder::{
    recorder_settings, stream_bytes_per_sec, writer_queue_limit_bytes, CaptureSource, Clock,
    Ending, FirstCapture, MonotonicClock, Progress, Recorder, RecorderConfig, RecorderError,
    RecordingSink, StopFlag, FIRST_CAPTURE_POLL, RECORDER_CLUSTER_WRITE_DELAY_NS,
    WRITER_QUEUE_BUDGET, WRITER_QUEUE_MAX_BYTES, WRITER_QUEUE_MIN_BYTES,
};

/// Errors of the recording writer thread.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file header could not be written.
    #[error("creating the recording failed: {0}")]
    Create(#[source] WriteError),
    /// Writing stopped (the file was finalised in place as far as possible).
    #[error("recording stopped: {source}")]
    Write {
        /// What failed.
        #[source]
        source: WriteError,
        /// What had been written before.
        stats: Box<WriterStats>,
    },
    /// The writer thread could not be started.
    #[error("starting the writer thread failed: {0}")]
    Spawn(#[source] std::io::Error),
    /// The writer thread panicked (a bug).
    #[error("the writer thread panicked")]
    Panicked,
}

/// What a finished recording holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Captures handed to the file.
    pub captures_written: u64,
    /// IMU samples handed to the file.
    pub imu_samples_written: u64,
    /// File size in bytes.
    pub bytes_written: u64,
    /// Items dropped: queue full, refused as too late, or after a write error.
    pub drops: DropCounts,
    /// Of `drops`, those refused by the writer because they arrived too late.
    pub late: DropCounts,
    /// Clusters in the file.
    pub clusters: u64,
}

enum Msg {
    /// The prepared capture, its queue charge, and the streams it held (for drop counts).
    Capture(Box<PreparedCapture>, usize, Vec<TrackKind>),
    Imu(ImuSample),
    Custom(CustomData),
}

/// One frame of a custom track on its way to the writer.
struct CustomData {
    track: Arc<str>,
    device_timestamp_usec: u64,
    data: Vec<u8>,
    /// Queue charge.
    bytes: usize,
    /// The K4A streams the track carries (what a drop counts as).
    carries: Arc<[TrackKind]>,
}

fn kinds_of(c: &Capture) -> Vec<TrackKind> {
    [
        (c.color.is_some(), TrackKind::Color),
        (c.depth.is_some(), TrackKind::Depth),
        (c.ir.is_some(), TrackKind::Ir),
    ]
    .iter()
    .filter(|x| x.0)
    .map(|x| x.1)
    .collect()
}

struct Shared {
    queued_bytes: AtomicUsize,
    stopped: AtomicBool,
    drops: Mutex<DropCounts>,
    /// File size as of the last write (for progress displays).
    bytes_written: AtomicU64,
    /// Spent image buffers for [`RecordingWriter::recycled_buffer`], at most
    /// [`RECYCLE_POOL_LIMIT_BYTES`] of capacity.
    pool: Mutex<Pool>,
}

#[derive(Default)]
struct Pool {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

impl Pool {
    /// Keeps what fits under the limit; the rest is freed.
    fn give_back(&mut self, spent: &mut Vec<Vec<u8>>) {
        for v in spent.drain(..) {
            if self.bytes + v.capacity() <= RECYCLE_POOL_LIMIT_BYTES {
                self.bytes += v.capacity();
                self.buffers.push(v);
            }
        }
    }

    /// The smallest buffer holding `len` bytes, emptied.
    fn take(&mut self, len: usize) -> Option<Vec<u8>> {
        let i = self
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= len)
            .min_by_key(|(_, v)| v.capacity())?
            .0;
        let mut v = self.buffers.swap_remove(i);
        self.bytes -= v.capacity();
        v.clear();
        Some(v)
    }
}

/// Capacity of spent buffers kept for reuse; producers refilling them is what keeps the
/// recording from faulting in fresh pages for every frame.
pub const RECYCLE_POOL_LIMIT_BYTES: usize = 16 << 20;

/// New buffers are rounded up to this, so frames of varying size (MJPG) can reuse each other's.
const RECYCLE_GRANULE_BYTES: usize = 64 << 10;

impl Shared {
    fn drop_item(&self, kind: TrackKind) {
        self.drops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .count(kind);
    }

    fn drop_capture(&self, c: &Capture) {
        for kind in kinds_of(c) {
            self.drop_item(kind);
        }
    }

    fn add_drops(&self, dropped: DropCounts) {
        self.drops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(dropped);
    }

    fn drops(&self) -> DropCounts {
        *self.drops.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Bytes an IMU sample is charged in the queue.
const IMU_QUEUE_BYTES: usize = 64;

fn capture_bytes(c: &Capture) -> usize {
    [&c.color, &c.depth, &c.ir]
        .iter()
        .filter_map(|i| i.as_ref())
        .map(|i| i.data.len() + 128)
        .sum::<usize>()
        + 64
}

/// A recording written on its own thread. See the module docs.
pub struct RecordingWriter {
    /// Custom track names and the streams each carries.
    custom_tracks: Vec<(Arc<str>, Arc<[TrackKind]>)>,
    tx: Option<Sender<Msg>>,
    shared: Arc<Shared>,
    limit_bytes: usize,
    thread: Option<JoinHandle<Result<(FileSummary, WriterStats), RecordError>>>,
}

impl RecordingWriter {
    /// Writes the header to `file` and starts the writer thread. `queue_limit_bytes` bounds the
    /// image and sample bytes waiting for the thread.
    pub fn spawn<W: Write + Seek + Send + 'static>(
        file: W,
        settings: RecordingSettings,
        queue_limit_bytes: usize,
    ) -> Result<RecordingWriter, RecordError> {
        let custom_tracks = settings
            .custom_tracks
            .iter()
            .map(|t| (Arc::from(t.name.as_str()), Arc::from(t.carries.as_slice())))
            .collect();
        let mut writer = K4aWriter::create(file, settings).map_err(RecordError::Create)?;
        writer.set_recycling(true);
        let shared = Arc::new(Shared {
            queued_bytes: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            drops: Mutex::default(),
            bytes_written: AtomicU64::new(0),
            pool: Mutex::default(),
        });
        // Unbounded in items but bounded in bytes by `reserve`.
        let (tx, rx) = unbounded();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("freek4a-writer".into())
            .spawn(move || run(writer, rx, sh))
            .map_err(RecordError::Spawn)?;
        Ok(RecordingWriter {
            custom_tracks,
            tx: Some(tx),
            shared,
            limit_bytes: queue_limit_bytes,
            thread: Some(thread),
        })
    }

    fn reserve(&self, bytes: usize) -> bool {
        if self.shared.stopped.load(Ordering::Relaxed) {
            return false;
        }
        let mut cur = self.shared.queued_bytes.load(Ordering::Relaxed);
        loop {
            if cur + bytes > self.limit_bytes {
                return false;
            }
            match self.shared.queued_bytes.compare_exchange_weak(
                cur,
                cur + bytes,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// Queues a capture without waiting for the writer; `false` (and the images counted as
    /// dropped) when the queue is full or writing has stopped. An accepted capture is first
    /// prepared for the file ([`PreparedCapture`]) on the calling thread.
    pub fn submit_capture(&self, capture: Capture) -> bool {
        let bytes = capture_bytes(&capture);
        if !self.reserve(bytes) {
            self.shared.drop_capture(&capture);
            return false;
        }
        let kinds = kinds_of(&capture);
        let prepared = Box::new(PreparedCapture::new(capture));
        match self
            .tx
            .as_ref()
            .map(|t| t.send(Msg::Capture(prepared, bytes, kinds)))
        {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                if let Msg::Capture(_, b, kinds) = e.0 {
                    self.shared.queued_bytes.fetch_sub(b, Ordering::AcqRel);
                    for k in kinds {
                        self.shared.drop_item(k);
                    }
                }
                false
            }
            None => false,
        }
    }

    /// Queues an IMU sample without blocking; `false` (counted as dropped) when full or stopped.
    pub fn submit_imu(&self, sample: ImuSample) -> bool {
        if !self.reserve(IMU_QUEUE_BYTES) {
            self.shared.drop_item(TrackKind::Imu);
            return false;
        }
        match self.tx.as_ref().map(|t| t.send(Msg::Imu(sample))) {
            Some(Ok(())) => true,
            _ => {
                self.shared
                    .queued_bytes
                    .fetch_sub(IMU_QUEUE_BYTES, Ordering::AcqRel);
                self.shared.drop_item(TrackKind::Imu);
                false
            }
        }
    }

    /// Queues one frame of the custom track `track` without blocking; `false` when the queue
    /// is full, writing has stopped or the recording has no such track. A dropped frame counts
    /// against the streams the track carries.
    pub fn submit_custom(&self, track: &str, device_timestamp_usec: u64, data: Vec<u8>) -> bool {
        let Some((name, carries)) = self.custom_tracks.iter().find(|(n, _)| &**n == track) else {
            return false;
        };
        let drop = |carries: &[TrackKind]| {
            for &k in carries {
                self.shared.drop_item(k);
            }
        };
        let bytes = data.len() + 128;
        if !self.reserve(bytes) {
            drop(carries);
            return false;
        }
        let msg = Msg::Custom(CustomData {
            track: name.clone(),
            device_timestamp_usec,
            data,
            bytes,
            carries: carries.clone(),
        });
        match self.tx.as_ref().map(|t| t.send(msg)) {
            Some(Ok(())) => true,
            _ => {
                self.shared.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
                drop(carries);
                false
            }
        }
    }

    /// An empty buffer with room for at least `len` bytes for the next image: a spent one from
    /// an image already written when one fits, otherwise a new one. Filling it and submitting it
    /// as [`Image::data`](crate::types::Image::data) reuses memory that is already mapped.
    pub fn recycled_buffer(&self, len: usize) -> Vec<u8> {
        let reused = match self.shared.pool.lock() {
            Ok(mut p) => p.take(len),
            Err(_) => None,
        };
        reused.unwrap_or_else(|| Vec::with_capacity(len.next_multiple_of(RECYCLE_GRANULE_BYTES)))
    }

    /// Bytes currently waiting in the queue (producers that prefer waiting to dropping can
    /// poll this against the limit).
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued_bytes.load(Ordering::Relaxed)
    }

    /// The queue bound given to [`RecordingWriter::spawn`].
    pub fn queue_limit_bytes(&self) -> usize {
        self.limit_bytes
    }

    /// Bytes a capture is charged in the queue.
    pub fn capture_queue_bytes(capture: &Capture) -> usize {
        capture_bytes(capture)
    }

    /// Items dropped so far (queue full, late, or after a write error).
    pub fn drops(&self) -> DropCounts {
        self.shared.drops()
    }

    /// Adds frames lost before they reached this writer (for example by the device layer), so
    /// the file's `FREEK4A_DROPPED_*` tags count every loss of the recording.
    pub fn add_dropped(&self, dropped: DropCounts) {
        self.shared.add_drops(dropped);
    }

    /// The file's size as of the writer's last write.
    pub fn bytes_written(&self) -> u64 {
        self.shared.bytes_written.load(Ordering::Relaxed)
    }

    /// Whether the writer thread stopped on an error (later submissions are dropped).
    pub fn has_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::Relaxed)
    }

    /// Drains the queue, closes the file and returns what was written. A write error is
    /// returned after the file has been finalised in place as far as possible.
    pub fn finish(mut self) -> Result<WriterStats, RecordError> {
        self.tx.take();
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r.map(|(_, s)| s),
            _ => Err(RecordError::Panicked),
        }
    }
}

impl Drop for RecordingWriter {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run<W: Write + Seek>(
    mut writer: K4aWriter<W>,
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
) -> Result<(FileSummary, WriterStats), RecordError> {
    let mut stats = WriterStats::default();
    let mut failure = None;
    let mut spent = Vec::new();
    for msg in rx.iter() {
        match msg {
            Msg::Capture(c, bytes, kinds) => {
                if failure.is_some() {
                    for &k in &kinds {
                        shared.drop_item(k);
                    }
                } else {
                    match writer.write_prepared(*c) {
                        Ok(()) => {
                            stats.captures_written += 1;
                            shared
                                .bytes_written
                                .store(writer.summary().bytes, Ordering::Relaxed);
                        }
                        Err(WriteError::TooLate { .. })
                        | Err(WriteError::WrongImage { .. })
                        | Err(WriteError::StreamDisabled(_)) => {
                            for k in kinds {
                                shared.drop_item(k);
                                stats.late.count(k);
                            }
                        }
                        Err(e) => {
                            for k in kinds {
                                shared.drop_item(k);
                            }
                            shared.stopped.store(true, Ordering::Relaxed);
                            failure = Some(e);
                        }
                    }
                }
                shared.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            }
            Msg::Custom(d) => {
                let drop = |late: bool, stats: &mut WriterStats| {
                    for &k in d.carries.iter() {
                        shared.drop_item(k);
                        if late {
                            stats.late.count(k);
                        }
                    }
                };
                if failure.is_some() {
                    drop(false, &mut stats);
                } else {
                    match writer.write_custom(&d.track, d.device_timestamp_usec, d.data) {
                        Ok(()) => {
                            shared
                                .bytes_written
                                .store(writer.summary().bytes, Ordering::Relaxed);
                        }
                        Err(WriteError::CustomTooLate { .. }) | Err(WriteError::NoSuchTrack(_)) => {
                            drop(true, &mut stats)
                        }
                        Err(e) => {
                            drop(false, &mut stats);
                            shared.stopped.store(true, Ordering::Relaxed);
                            failure = Some(e);
                        }
                    }
                }
                shared.queued_bytes.fetch_sub(d.bytes, Ordering::AcqRel);
            }
            Msg::Imu(s) => {
                if failure.is_some() {
                    shared.drop_item(TrackKind::Imu);
                } else {
                    match writer.write_imu(&s) {
                        Ok(()) => stats.imu_samples_written += 1,
                        Err(WriteError::TooLate { .. }) | Err(WriteError::StreamDisabled(_)) => {
                            shared.drop_item(TrackKind::Imu);
                            stats.late.count(TrackKind::Imu);
                        }
                        Err(e) => {
                            shared.drop_item(TrackKind::Imu);
                            shared.stopped.store(true, Ordering::Relaxed);
                            failure = Some(e);
                        }
                    }
                }
                shared
                    .queued_bytes
                    .fetch_sub(IMU_QUEUE_BYTES, Ordering::AcqRel);
            }
        }
        // Clusters are written by captures and IMU samples alike.
        writer.take_spent_buffers(&mut spent);
        if !spent.is_empty() {
            if let Ok(mut p) = shared.pool.lock() {
                p.give_back(&mut spent);
            }
            spent.clear();
        }
    }
    stats.drops = shared.drops();
    let summary_before = writer.summary();
    let result = writer.finish(stats.drops);
    match (failure, result) {
        (None, Ok((_, summary))) => {
            stats.bytes_written = summary.bytes;
            stats.clusters = summary.clusters;
            Ok((summary, stats))
        }
        (Some(e), _) | (None, Err(e)) => {
            stats.bytes_written = summary_before.bytes;
            stats.clusters = summary_before.clusters;
            Err(RecordError::Write {
                source: e,
                stats: Box::new(stats),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, Cursor, Seek, SeekFrom, Write};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::types::{ColorResolution, DepthMode, DeviceConfig, Image, ImageFormat};

    /// A file that fails like a full disk once it would grow past `limit`.
    #[derive(Clone)]
    struct SmallDisk {
        data: Arc<Mutex<Cursor<Vec<u8>>>>,
        limit: u64,
    }

    impl Write for SmallDisk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut c = self.data.lock().unwrap();
            if c.position() + buf.len() as u64 > self.limit {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            c.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Seek for SmallDisk {
        fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
            self.data.lock().unwrap().seek(pos)
        }
    }

    fn capture(ts: u64, n: usize) -> Capture {
        Capture {
            color: Some(Image::new(ImageFormat::Mjpg, 1280, 720, ts, vec![1; n])),
            ..Default::default()
        }
    }

    fn settings() -> RecordingSettings {
        let cfg = DeviceConfig {
            color_resolution: ColorResolution::R720p,
            depth_mode: DepthMode::Off,
            ..Default::default()
        };
        RecordingSettings::new(cfg, true)
    }

    #[test]
    fn full_queue_drops_and_counts() {
        let disk = SmallDisk {
            data: Arc::new(Mutex::new(Cursor::new(Vec::new()))),
            limit: u64::MAX,
        };
        // Room for less than one capture: every capture is dropped, IMU samples fit.
        let w = RecordingWriter::spawn(disk.clone(), settings(), 1000).unwrap();
        assert!(!w.submit_capture(capture(1_000_000, 5000)));
        assert!(w.submit_imu(ImuSample {
            temperature_c: 0.0,
            acc_mps2: [0.0; 3],
            acc_timestamp_usec: 1_000_000,
            gyro_radps: [0.0; 3],
            gyro_timestamp_usec: 1_000_000,
        }));
        assert_eq!(w.drops()[TrackKind::Color], 1);
        let stats = w.finish().unwrap();
        assert_eq!(stats.drops[TrackKind::Color], 1);
        assert_eq!(stats.imu_samples_written, 1);
        assert_eq!(stats.captures_written, 0);
        let bytes = disk.data.lock().unwrap().get_ref().clone();
        assert!(bytes.windows(21).any(|w| w == b"FREEK4A_DROPPED_COLOR"));
        assert_eq!(stats.bytes_written, bytes.len() as u64);
    }

    #[test]
    fn written_image_buffers_come_back_for_reuse() {
        let disk = SmallDisk {
            data: Arc::new(Mutex::new(Cursor::new(Vec::new()))),
            limit: u64::MAX,
        };
        let w = RecordingWriter::spawn(disk, settings(), 64 << 20).unwrap();
        // Nothing written yet: a new buffer, rounded up to the granule.
        let fresh = w.recycled_buffer(50_000);
        assert_eq!((fresh.len(), fresh.capacity()), (0, RECYCLE_GRANULE_BYTES));
        // 3 s of captures: the first second's clusters are written and their buffers returned.
        for i in 0..90 {
            assert!(w.submit_capture(capture(1_000_000 + i * 33_333, 50_000)));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let reused = loop {
            let b = w.recycled_buffer(50_000);
            // Submitted buffers hold exactly 50 000 bytes; new ones are rounded up.
            if b.capacity() == 50_000 {
                break b;
            }
            assert!(std::time::Instant::now() < deadline, "no buffer came back");
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert!(reused.is_empty());
        // A buffer too small for the request is not handed out.
        assert!(w.recycled_buffer(60_000).capacity() >= 60_000);
        let stats = w.finish().unwrap();
        assert_eq!(stats.captures_written, 90);
    }

    #[test]
    fn disk_full_stops_and_finalises_in_place() {
        let disk = SmallDisk {
            data: Arc::new(Mutex::new(Cursor::new(Vec::new()))),
            limit: 400_000,
        };
        let w = RecordingWriter::spawn(disk.clone(), settings(), 64 << 20).unwrap();
        for i in 0..200 {
            w.submit_capture(capture(1_000_000 + i * 33_333, 50_000));
        }
        let err = w.finish().unwrap_err();
        let RecordError::Write { source, stats } = err else {
            panic!("expected a write error");
        };
        assert!(
            matches!(
                source,
                WriteError::Io {
                    what: "Cluster",
                    ..
                }
            ),
            "{source}"
        );
        assert!(stats.drops[TrackKind::Color] > 0);
        let bytes = disk.data.lock().unwrap().get_ref().clone();
        // The Segment ends after the last complete cluster.
        let size = u64::from_be_bytes(bytes[44..52].try_into().unwrap()) & 0x00FF_FFFF_FFFF_FFFF;
        assert_eq!(size + 52, stats.bytes_written);
        assert!(stats.bytes_written <= 400_000 && stats.bytes_written > 300_000);
    }
}
