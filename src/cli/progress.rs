//! The live progress line and the final summary.
//!
//! Formatting is pure ([`format_progress`], [`format_summary`]); [`ProgressRenderer`] redraws
//! the line with `\r` at most a few times a second and only when its output is a terminal, so
//! logs and pipes see nothing but Microsoft's own lines.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::record::Progress;
use crate::types::TrackKind;

/// `H:MM:SS` of a duration (whole seconds).
pub fn format_elapsed(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Bytes in binary units with one decimal (`512 B`, `1.5 KiB`, `3.2 GiB`).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The one-line progress display, without `\r`:
/// `0:01:05  1950 captures  dropped colour 0 depth 2 ir 2 imu 0  1.2 GiB  19.4 MiB/s`.
pub fn format_progress(s: &Progress) -> String {
    format!(
        "{}  {} captures  dropped colour {} depth {} ir {} imu {}  {}  {}/s",
        format_elapsed(s.elapsed),
        s.captures,
        s.drops[TrackKind::Color],
        s.drops[TrackKind::Depth],
        s.drops[TrackKind::Ir],
        s.drops[TrackKind::Imu],
        format_bytes(s.bytes_written),
        format_bytes(s.bytes_per_sec() as u64),
    )
}

/// The final summary line:
/// `Recorded 0:01:05: 1950 captures, 13000 IMU samples, dropped colour 0 depth 2 ir 2 imu 0, 1.2 GiB (19.4 MiB/s)`.
pub fn format_summary(s: &Progress) -> String {
    format!(
        "Recorded {}: {} captures, {} IMU samples, dropped colour {} depth {} ir {} imu {}, {} ({}/s)",
        format_elapsed(s.elapsed),
        s.captures,
        s.imu_samples,
        s.drops[TrackKind::Color],
        s.drops[TrackKind::Depth],
        s.drops[TrackKind::Ir],
        s.drops[TrackKind::Imu],
        format_bytes(s.bytes_written),
        format_bytes(s.bytes_per_sec() as u64),
    )
}

/// Redraws the progress line in place on a terminal.
#[derive(Debug)]
pub struct ProgressRenderer<W: Write> {
    out: W,
    enabled: bool,
    min_interval: Duration,
    last_draw: Option<Instant>,
    last_len: usize,
}

impl ProgressRenderer<std::io::Stderr> {
    /// A renderer on stderr, active only when `wanted` and stderr is a terminal.
    pub fn stderr(wanted: bool) -> Self {
        let err = std::io::stderr();
        let enabled = wanted && err.is_terminal();
        ProgressRenderer::new(err, enabled)
    }
}

impl<W: Write> ProgressRenderer<W> {
    /// A renderer writing to `out`; draws nothing unless `enabled`. Redraws at most every
    /// 250 ms.
    pub fn new(out: W, enabled: bool) -> Self {
        ProgressRenderer {
            out,
            enabled,
            min_interval: Duration::from_millis(250),
            last_draw: None,
            last_len: 0,
        }
    }

    /// Whether anything will be drawn.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Redraws the line if enough time has passed since the last redraw (`now` is supplied so
    /// tests need no sleeping). Output errors are ignored: progress is decoration.
    pub fn update(&mut self, stats: &Progress, now: Instant) {
        if !self.enabled {
            return;
        }
        if let Some(t) = self.last_draw {
            if now.saturating_duration_since(t) < self.min_interval {
                return;
            }
        }
        self.last_draw = Some(now);
        let line = format_progress(stats);
        // Pad with spaces to wipe the tail of a longer previous line.
        let pad = self.last_len.saturating_sub(line.len());
        let _ = write!(self.out, "\r{line}{:pad$}", "");
        let _ = self.out.flush();
        self.last_len = line.len();
    }

    /// Erases the line so that following output starts on a clean line.
    pub fn clear(&mut self) {
        if self.enabled && self.last_len > 0 {
            let _ = write!(self.out, "\r{:w$}\r", "", w = self.last_len);
            let _ = self.out.flush();
            self.last_len = 0;
        }
    }

    /// The writer back (for tests).
    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::DropCounts;

    fn stats() -> Progress {
        Progress {
            elapsed: Duration::from_secs(65),
            captures: 1950,
            imu_samples: 13_000,
            drops: DropCounts::from_fn(|k| match k {
                TrackKind::Depth => 2,
                TrackKind::Ir => 1,
                _ => 0,
            }),
            bytes_written: 1_288_490_189, // 1.2 GiB
        }
    }

    #[test]
    fn formats() {
        assert_eq!(format_elapsed(Duration::from_secs(3723)), "1:02:03");
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(
            format_progress(&stats()),
            "0:01:05  1950 captures  dropped colour 0 depth 2 ir 1 imu 0  1.2 GiB  18.9 MiB/s"
        );
        assert_eq!(
            format_summary(&stats()),
            "Recorded 0:01:05: 1950 captures, 13000 IMU samples, dropped colour 0 depth 2 ir 1 imu 0, 1.2 GiB (18.9 MiB/s)"
        );
        assert_eq!(Progress::default().bytes_per_sec(), 0.0);
    }

    #[test]
    fn renderer_throttles_pads_and_clears() {
        let t0 = Instant::now();
        let mut r = ProgressRenderer::new(Vec::new(), true);
        let mut s = stats();
        r.update(&s, t0);
        s.captures = 1;
        r.update(&s, t0 + Duration::from_millis(100)); // too soon
        r.update(&s, t0 + Duration::from_millis(300));
        r.clear();
        let out = String::from_utf8(r.into_inner()).unwrap();
        let first = format_progress(&stats());
        let second = format_progress(&s);
        let pad = first.len() - second.len();
        assert_eq!(
            out,
            format!(
                "\r{first}\r{second}{}\r{}\r",
                " ".repeat(pad),
                " ".repeat(second.len())
            )
        );
    }

    #[test]
    fn disabled_renderer_writes_nothing() {
        let mut r = ProgressRenderer::new(Vec::new(), false);
        r.update(&stats(), Instant::now());
        r.clear();
        assert!(r.into_inner().is_empty());
    }
}
