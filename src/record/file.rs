//! The recording file: a write buffer shaped for the writer, and the sink that owns the writer
//! thread.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::recorder::RecordingSink;
use super::{RecordError, RecordingWriter, WriterStats};
use crate::mkv::writer::{DropCounts, RecordingSettings};
use crate::types::{Capture, ImuSample};

/// Test-only: milliseconds every write to the recording file sleeps, to emulate a slow disk.
/// Deliberately not in any help text.
pub const TEST_WRITE_DELAY_ENV: &str = "FREEK4A_TEST_WRITE_DELAY_MS";

/// Small writes are gathered up to this many bytes; larger ones (the writer's cluster chunks of
/// 1 MiB and more) go straight to the file, so a killed recorder loses little beyond what the
/// writer itself still holds.
const FILE_BUFFER_BYTES: usize = 64 << 10;

/// The recording file: a write buffer for the writer's small pieces, with two differences
/// from `BufWriter`. After a failed write (a full disk) the unwritable bytes are discarded, so
/// the writer can still seek back and patch the header in place; and an optional per-write
/// delay ([`TEST_WRITE_DELAY_ENV`]) emulates a slow disk in tests.
pub struct RecordingFile {
    file: File,
    buf: Vec<u8>,
    delay: Option<Duration>,
    /// Bytes that reached the file through this writer.
    written: u64,
}

impl RecordingFile {
    /// Wraps `file`, reading the test delay from the environment.
    pub fn new(file: File) -> RecordingFile {
        let delay = std::env::var(TEST_WRITE_DELAY_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis);
        RecordingFile {
            file,
            buf: Vec::with_capacity(FILE_BUFFER_BYTES),
            delay,
            written: 0,
        }
    }

    fn write_through(&mut self, data: &[u8]) -> std::io::Result<()> {
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
        self.file.write_all(data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    fn drain(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.buf);
        // On failure the bytes are dropped: retrying a full disk only fails again, and keeping
        // them would make every later seek (the header patches) fail too.
        let r = self.write_through(&data);
        self.buf = data;
        self.buf.clear();
        r
    }
}

impl Write for RecordingFile {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > FILE_BUFFER_BYTES {
            self.drain()?;
        }
        // The header goes straight to the file: the first cluster follows only after the
        // writer's cluster delay, and a recorder killed before then must still leave a file
        // that opens.
        if data.len() >= FILE_BUFFER_BYTES || self.written < FILE_BUFFER_BYTES as u64 {
            self.drain()?;
            self.write_through(data)?;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.drain()?;
        self.file.flush()
    }
}

impl Seek for RecordingFile {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.drain()?;
        self.file.seek(pos)
    }
}

/// Why the recording file failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The file could not be created.
    #[error("creating {path}: {source}")]
    Create {
        /// The output path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The writer failed.
    #[error(transparent)]
    Writer(#[from] Box<RecordError>),
    /// The writer thread stopped earlier (the cause is returned when the file is closed).
    #[error(
        "the writer stopped after an earlier error; the file was finalised with what it holds"
    )]
    Stopped,
    /// A call out of order (header twice, data before the header).
    #[error("recording file used out of order: {0}")]
    Order(&'static str),
}

/// A recording file written by a [`RecordingWriter`] thread: settings gathered until the
/// header, then captures and samples queued without blocking (a full queue drops, counted).
pub struct FileSink {
    path: PathBuf,
    settings: Option<RecordingSettings>,
    queue_limit_bytes: usize,
    writer: Option<RecordingWriter>,
    /// Frames lost before they reached the writer, for the file's tags.
    lost_upstream: DropCounts,
    stats: Option<WriterStats>,
}

impl FileSink {
    /// A sink writing `settings` to `path`, with `queue_limit_bytes` of captures and samples
    /// allowed to wait for the writer thread. The file is created (and truncated) now, so a
    /// path that cannot be written fails here, as `k4a_record_create` does.
    pub fn create(
        path: impl AsRef<Path>,
        settings: RecordingSettings,
        queue_limit_bytes: usize,
    ) -> Result<FileSink, SinkError> {
        let path = path.as_ref().to_path_buf();
        File::create(&path).map_err(|source| SinkError::Create {
            path: path.clone(),
            source,
        })?;
        Ok(FileSink {
            path,
            settings: Some(settings),
            queue_limit_bytes,
            writer: None,
            lost_upstream: DropCounts::default(),
            stats: None,
        })
    }

    /// The output path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer's statistics once the file is closed.
    pub fn stats(&self) -> Option<WriterStats> {
        self.stats
    }

    fn writer(&self) -> Result<&RecordingWriter, SinkError> {
        let w = self
            .writer
            .as_ref()
            .ok_or(SinkError::Order("data before the header"))?;
        if w.has_stopped() {
            return Err(SinkError::Stopped);
        }
        Ok(w)
    }
}

impl RecordingSink for FileSink {
    type Error = SinkError;

    fn add_imu_track(&mut self) -> Result<(), SinkError> {
        let s = self
            .settings
            .as_mut()
            .ok_or(SinkError::Order("IMU track after the header"))?;
        s.imu = true;
        Ok(())
    }

    fn write_header(&mut self) -> Result<(), SinkError> {
        let settings = self
            .settings
            .take()
            .ok_or(SinkError::Order("header written twice"))?;
        let file = File::create(&self.path).map_err(|source| SinkError::Create {
            path: self.path.clone(),
            source,
        })?;
        let out = RecordingFile::new(file);
        self.writer =
            Some(RecordingWriter::spawn(out, settings, self.queue_limit_bytes).map_err(Box::new)?);
        Ok(())
    }

    fn write_capture(&mut self, capture: Capture) -> Result<(), SinkError> {
        // A full queue is a counted drop, not a failure: the recording goes on.
        self.writer()?.submit_capture(capture);
        Ok(())
    }

    fn write_imu_sample(&mut self, sample: &ImuSample) -> Result<(), SinkError> {
        self.writer()?.submit_imu(*sample);
        Ok(())
    }

    fn write_custom(
        &mut self,
        track: &str,
        device_timestamp_usec: u64,
        data: Vec<u8>,
    ) -> Result<(), SinkError> {
        self.writer()?
            .submit_custom(track, device_timestamp_usec, data);
        Ok(())
    }

    fn add_dropped(&mut self, dropped: DropCounts) {
        self.lost_upstream.add(dropped);
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        let Some(w) = self.writer.take() else {
            return Ok(());
        };
        w.add_dropped(std::mem::take(&mut self.lost_upstream));
        match w.finish() {
            Ok(stats) => {
                self.stats = Some(stats);
                Ok(())
            }
            Err(e) => {
                if let RecordError::Write { stats, .. } = &e {
                    self.stats = Some(**stats);
                }
                Err(SinkError::Writer(Box::new(e)))
            }
        }
    }

    fn bytes_written(&self) -> u64 {
        match (&self.writer, &self.stats) {
            (Some(w), _) => w.bytes_written(),
            // Closed: the finished file's size (Cues included).
            (None, Some(stats)) => stats.bytes_written,
            (None, None) => 0,
        }
    }

    fn dropped(&self) -> DropCounts {
        match (&self.writer, &self.stats) {
            (Some(w), _) => w.drops(),
            (None, Some(stats)) => stats.drops,
            (None, None) => DropCounts::default(),
        }
    }
}
