//! The recording sequence against a scripted fake device and sink, on a fake clock.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Mutex;

use super::*;
use crate::cli::args::{parse_recorder_args, RecorderCommand};
use crate::types::{Capture, DeviceConfig, ImuSample, Version};

struct FakeClock {
    base: Instant,
    offset: Mutex<Duration>,
}

impl FakeClock {
    fn advance(&self, d: Duration) {
        *self.offset.lock().unwrap() += d;
    }
    fn offset(&self) -> Duration {
        *self.offset.lock().unwrap()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.base + self.offset()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("fake failure in {0}")]
struct FakeError(&'static str);

#[derive(Clone, Copy, Debug)]
enum Step {
    Capture,
    Timeout,
    Fail,
    /// A Ctrl-C arrives during this call, which then times out.
    Signal,
}

/// 30 fps, rounded up so 60 frames make at least two seconds.
const PERIOD: Duration = Duration::from_nanos(33_333_334);

struct FakeDevice {
    clock: Arc<FakeClock>,
    stop: StopSignal,
    count: u32,
    fail: &'static [&'static str],
    script: VecDeque<Step>,
    when_empty: Step,
    imu_per_capture: usize,
    imu_pending: usize,
    calls: Vec<String>,
    capture_calls: usize,
}

impl FakeDevice {
    fn new(clock: &Arc<FakeClock>, stop: &StopSignal) -> Self {
        FakeDevice {
            clock: clock.clone(),
            stop: stop.clone(),
            count: 1,
            fail: &[],
            script: VecDeque::new(),
            when_empty: Step::Capture,
            imu_per_capture: 0,
            imu_pending: 0,
            calls: Vec::new(),
            capture_calls: 0,
        }
    }

    fn op(&mut self, name: &'static str) -> Result<(), FakeError> {
        self.calls.push(name.into());
        if self.fail.contains(&name) {
            Err(FakeError(name))
        } else {
            Ok(())
        }
    }
}

impl RecorderDevice for FakeDevice {
    fn installed_count(&mut self) -> u32 {
        self.count
    }
    fn open(&mut self, index: u8) -> Result<(), FakeError> {
        assert_eq!(index, 0);
        self.op("open")
    }
    fn serial_number(&mut self) -> Result<String, FakeError> {
        self.op("serial").map(|_| "000111222333".into())
    }
    fn hardware_version(&mut self) -> Result<HardwareVersion, FakeError> {
        self.op("version")?;
        let v = |major, minor, iteration| Version {
            major,
            minor,
            iteration,
        };
        Ok(HardwareVersion {
            rgb: v(1, 6, 110),
            depth: v(1, 6, 79),
            audio: v(1, 6, 14),
            depth_sensor: v(6109, 7, 0),
            release_build: true,
            signature_type: 0,
        })
    }
    fn set_exposure(&mut self, exposure: Exposure) -> Result<(), FakeError> {
        self.calls.push(format!("{exposure:?}"));
        self.op("exposure")
    }
    fn set_gain(&mut self, gain: u8) -> Result<(), FakeError> {
        self.calls.push(format!("gain {gain}"));
        self.op("gain")
    }
    fn close(&mut self) {
        self.calls.push("close".into());
    }
}

impl CaptureSource for FakeDevice {
    type Error = FakeError;

    fn start_cameras(&mut self, config: &DeviceConfig) -> Result<(), FakeError> {
        self.calls.push(format!("{}fps", config.camera_fps.hz()));
        self.op("start_cameras")
    }
    fn start_imu(&mut self) -> Result<(), FakeError> {
        self.op("start_imu")
    }
    fn get_capture(&mut self, timeout: Duration) -> Result<Option<Capture>, FakeError> {
        self.capture_calls += 1;
        assert!(self.capture_calls < 100_000, "runaway loop");
        match self.script.pop_front().unwrap_or(self.when_empty) {
            Step::Capture => {
                self.clock.advance(PERIOD);
                self.imu_pending = self.imu_per_capture;
                Ok(Some(Capture::default()))
            }
            Step::Timeout => {
                self.clock.advance(timeout);
                Ok(None)
            }
            Step::Fail => Err(FakeError("get_capture")),
            Step::Signal => {
                self.clock.advance(timeout);
                self.stop.on_signal(self.clock.now());
                Ok(None)
            }
        }
    }
    fn get_imu_sample(&mut self, timeout: Duration) -> Result<Option<ImuSample>, FakeError> {
        assert_eq!(timeout, Duration::ZERO);
        if self.imu_pending == 0 {
            return Ok(None);
        }
        self.imu_pending -= 1;
        Ok(Some(ImuSample {
            temperature_c: f32::NAN,
            acc_mps2: [0.0; 3],
            acc_timestamp_usec: 0,
            gyro_radps: [0.0; 3],
            gyro_timestamp_usec: 0,
        }))
    }
    fn stop_imu(&mut self) {
        self.calls.push("stop_imu".into());
    }
    fn stop_cameras(&mut self) {
        self.calls.push("stop_cameras".into());
    }
}

#[derive(Default)]
struct SinkLog {
    calls: Vec<&'static str>,
    captures: usize,
    imu: usize,
}

struct FakeSink {
    log: Rc<RefCell<SinkLog>>,
    fail: &'static [&'static str],
}

impl FakeSink {
    fn op(&mut self, name: &'static str) -> Result<(), FakeError> {
        if !matches!(name, "capture" | "imu") {
            self.log.borrow_mut().calls.push(name);
        }
        if self.fail.contains(&name) {
            Err(FakeError(name))
        } else {
            Ok(())
        }
    }
}

impl RecordingSink for FakeSink {
    type Error = FakeError;
    fn add_imu_track(&mut self) -> Result<(), FakeError> {
        self.op("add_imu_track")
    }
    fn write_header(&mut self) -> Result<(), FakeError> {
        self.op("header")
    }
    fn write_capture(&mut self, _: Capture) -> Result<(), FakeError> {
        self.op("capture")?;
        self.log.borrow_mut().captures += 1;
        Ok(())
    }
    fn write_imu_sample(&mut self, _: &ImuSample) -> Result<(), FakeError> {
        self.op("imu")?;
        self.log.borrow_mut().imu += 1;
        Ok(())
    }
    fn write_custom(&mut self, _: &str, _: u64, _: Vec<u8>) -> Result<(), FakeError> {
        self.op("custom")
    }
    fn flush(&mut self) -> Result<(), FakeError> {
        self.op("flush")
    }
    fn close(&mut self) -> Result<(), FakeError> {
        self.op("close")
    }
    fn bytes_written(&self) -> u64 {
        self.log.borrow().captures as u64 * 1000
    }
}

struct Run {
    report: SessionReport,
    out: String,
    err: String,
    device: Vec<String>,
    sink: SinkLog,
    progress_calls: usize,
}

struct Setup {
    clock: Arc<FakeClock>,
    stop: StopSignal,
    device: FakeDevice,
    sink_fail: &'static [&'static str],
    create_fails: bool,
}

fn setup() -> Setup {
    let clock = Arc::new(FakeClock {
        base: Instant::now(),
        offset: Mutex::new(Duration::ZERO),
    });
    let stop = StopSignal::new();
    let device = FakeDevice::new(&clock, &stop);
    Setup {
        clock,
        stop,
        device,
        sink_fail: &[],
        create_fails: false,
    }
}

fn options(args: &[&str]) -> RecorderOptions {
    match parse_recorder_args(args.iter().copied()) {
        Ok(RecorderCommand::Record(o)) => *o,
        other => panic!("{other:?}"),
    }
}

fn run(mut s: Setup, args: &[&str]) -> Run {
    let o = options(args);
    let log = Rc::new(RefCell::new(SinkLog::default()));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut progress_calls = 0;
    let mut progress = |_: &Progress| progress_calls += 1;
    let sink_log = log.clone();
    let (sink_fail, create_fails) = (s.sink_fail, s.create_fails);
    let report = {
        let mut io = SessionIo {
            out: &mut out,
            err: &mut err,
            stop: &s.stop,
            clock: s.clock.clone(),
            progress: &mut progress,
        };
        run_recording(
            &mut s.device,
            move |_: &FakeDevice, o: &RecorderOptions, _, _| {
                assert_eq!(o.output_path, PathBuf::from("o.mkv"));
                if create_fails {
                    Err("disk on fire")
                } else {
                    Ok(FakeSink {
                        log: sink_log,
                        fail: sink_fail,
                    })
                }
            },
            &o,
            &mut io,
        )
    };
    Run {
        report,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
        device: s.device.calls,
        sink: log.take(),
        progress_calls,
    }
}

const HEADER: &str = "Device serial number: 000111222333\n\
                      Device version: Rel; C: 1.6.110; D: 1.6.79[6109.7]; A: 1.6.14\n\
                      Device started\n";

#[test]
fn record_length_on_monotonic_clock_from_first_capture() {
    let mut s = setup();
    s.device.imu_per_capture = 2;
    // Two timeouts before the first capture: the wait must not count towards -l.
    s.device.script = [Step::Timeout, Step::Timeout].into();
    let r = run(s, &["-l", "2", "o.mkv"]);
    assert_eq!(r.report.exit_code, 0);
    assert!(r.report.finished);
    assert_eq!(
        r.out,
        format!("{HEADER}Started recording\nStopping recording...\nSaving recording...\nDone\n")
    );
    assert_eq!(r.err, "");
    // 60 frames of 33.33 ms reach 2 s; the first capture is not written.
    assert_eq!(r.sink.captures, 60);
    assert_eq!(r.report.stats.captures, 60);
    // The IMU drain stops at the first check after the limit.
    assert_eq!(r.sink.imu, 59 * 2 + 1);
    assert_eq!(r.sink.calls, ["add_imu_track", "header", "flush", "close"]);
    assert_eq!(
        r.device,
        [
            "open",
            "serial",
            "version",
            "Auto",
            "exposure",
            "30fps",
            "start_cameras",
            "start_imu",
            "stop_imu",
            "stop_cameras",
            "close"
        ]
    );
    assert_eq!(r.progress_calls, 60);
    assert_eq!(r.report.stats.bytes_written, 60_000);
}

#[test]
fn zero_length_writes_one_capture_and_still_says_press_ctrl_c() {
    let r = run(setup(), &["-l", "0", "--imu", "off", "o.mkv"]);
    assert_eq!(r.report.exit_code, 0);
    assert_eq!(r.sink.captures, 1);
    assert_eq!(r.sink.calls, ["header", "flush", "close"]);
    assert!(r
        .out
        .contains("Started recording\nPress Ctrl-C to stop recording.\nStopping recording...\n"));
    assert!(!r.device.contains(&"stop_imu".to_string()));
}

#[test]
fn first_capture_timeout() {
    let mut s = setup();
    s.device.when_empty = Step::Timeout;
    let r = run(s, &["o.mkv"]);
    assert_eq!(r.report.exit_code, 1);
    assert_eq!(r.out, HEADER);
    assert_eq!(r.err, "Timed out waiting for first capture.\n");
    assert_eq!(r.sink.captures, 0);
    // 60 s of 100 ms polls.
    assert_eq!(r.device.iter().filter(|c| *c == "close").count(), 0);
}

#[test]
fn subordinate_waits_six_minutes() {
    let mut s = setup();
    s.device.when_empty = Step::Timeout;
    let clock = s.clock.clone();
    let r = run(s, &["--external-sync", "sub", "o.mkv"]);
    assert_eq!(r.report.exit_code, 1);
    assert_eq!(
        r.out,
        format!("{HEADER}[subordinate mode] Waiting for signal from master\n")
    );
    assert_eq!(r.err, "Timed out waiting for first capture.\n");
    assert_eq!(clock.offset(), Duration::from_secs(360));
}

#[test]
fn ctrl_c_during_first_capture_wait_exits_zero() {
    let mut s = setup();
    s.device.script = [Step::Timeout, Step::Signal].into();
    let r = run(s, &["o.mkv"]);
    assert_eq!(r.report.exit_code, 0);
    // "Stopping recording..." comes after everything printed before the signal was handled.
    assert_eq!(r.out, format!("{HEADER}Stopping recording...\n"));
    assert_eq!(r.err, "");
    assert_eq!(r.sink.captures, 0);
    // The streams are stopped and the (empty) file finished before the device is closed.
    assert!(r
        .device
        .ends_with(&["stop_imu".into(), "stop_cameras".into(), "close".into()]));
    assert_eq!(r.sink.calls, ["add_imu_track", "header", "flush", "close"]);
    assert!(r.report.finished);
}

#[test]
fn ctrl_c_during_recording_finishes_the_file() {
    let mut s = setup();
    s.device.script = [Step::Capture; 6]
        .into_iter()
        .chain([Step::Signal])
        .collect();
    let r = run(s, &["o.mkv"]);
    assert_eq!(r.report.exit_code, 0);
    // The sequence prints "Stopping recording..." once it acts on the signal (the handler
    // prints nothing, so the line cannot overtake earlier ones).
    assert_eq!(
        r.out,
        format!("{HEADER}Started recording\nPress Ctrl-C to stop recording.\nStopping recording...\nSaving recording...\nDone\n")
    );
    assert_eq!(r.sink.captures, 5);
    assert_eq!(r.sink.calls.last(), Some(&"close"));
}

#[test]
fn device_not_found_and_nothing_enabled() {
    let mut s = setup();
    s.device.count = 0;
    let r = run(s, &["o.mkv"]);
    assert_eq!(
        (r.report.exit_code, r.err.as_str(), r.out.as_str()),
        (1, "Device not found.\n", "")
    );

    let r = run(setup(), &["-c", "off", "-d", "off", "o.mkv"]);
    assert_eq!(r.report.exit_code, 1);
    assert_eq!(
        r.err,
        "Either the color or depth modes must be enabled to record.\n"
    );
    assert!(!r.device.contains(&"close".to_string()));
}

#[test]
fn failures_follow_the_check_macro() {
    let mut s = setup();
    s.device.fail = &["start_cameras"];
    let r = run(s, &["o.mkv"]);
    assert_eq!(r.report.exit_code, 1);
    assert_eq!(
        r.err,
        "Runtime error: k4a_device_start_cameras(device, device_config) returned 1\n\
         Cause: fake failure in start_cameras\n"
    );
    assert_eq!(r.device.last().map(String::as_str), Some("close"));

    let mut s = setup();
    s.device.fail = &["open", "serial"];
    let r = run(s, &["o.mkv"]);
    assert_eq!(r.report.exit_code, 1);
    assert!(r.err.starts_with("Runtime error: k4a_device_open() failed \nCause: fake failure in open\nRuntime error: k4a_device_get_serialnum("));

    let mut s = setup();
    s.sink_fail = &["capture"];
    let r = run(s, &["o.mkv"]);
    assert_eq!(r.report.exit_code, 1);
    assert!(r
        .err
        .starts_with("Runtime error: k4a_record_write_capture(recording, capture) returned 1\n"));
    // The file is still finished and the device stopped before it is closed.
    assert!(r.report.finished, "{}", r.err);
    assert!(
        r.err.contains("Recording stopped: writing o.mkv failed"),
        "{}",
        r.err
    );
    assert_eq!(r.device.last().map(String::as_str), Some("close"));

    let mut s = setup();
    s.create_fails = true;
    let r = run(s, &["o.mkv"]);
    assert_eq!(r.report.exit_code, 1);
    assert_eq!(
        r.err,
        "Unable to create recording file: o.mkv\nCause: disk on fire\n"
    );
}

#[test]
fn colour_control_failures_only_warn() {
    let mut s = setup();
    s.device.fail = &["exposure", "gain"];
    let r = run(s, &["-e", "-5", "-g", "9", "-l", "0", "o.mkv"]);
    assert_eq!(r.report.exit_code, 0);
    assert_eq!(
        r.err,
        "Runtime error: k4a_device_set_color_control() for manual exposure failed \n\
         Cause: fake failure in exposure\n\
         Runtime error: k4a_device_set_color_control() for manual gain failed \n\
         Cause: fake failure in gain\n"
    );
    assert!(r.device.contains(&"ManualUsec(31250)".to_string()));
    assert!(r.device.contains(&"gain 9".to_string()));
}

#[test]
fn capture_failure_in_main_loop_still_saves() {
    let mut s = setup();
    s.device.script = [Step::Capture, Step::Capture, Step::Fail].into();
    let r = run(s, &["o.mkv"]);
    // Microsoft exits with 0 here; we finish the file the same way but exit with 1.
    assert_eq!(r.report.exit_code, 1);
    assert!(r.report.finished);
    assert_eq!(
        r.err,
        "Runtime error: k4a_device_get_capture() returned 1\nCause: fake failure in get_capture\n\
         The device stopped delivering captures; finishing the recording with what it holds.\n"
    );
    assert!(r
        .out
        .ends_with("Stopping recording...\nSaving recording...\nDone\n"));
    assert_eq!(r.sink.captures, 1);
}

#[test]
fn first_capture_failure() {
    let mut s = setup();
    s.device.script = [Step::Fail].into();
    let r = run(s, &["o.mkv"]);
    assert_eq!(r.report.exit_code, 1);
    assert!(r
        .err
        .starts_with("Runtime error: k4a_device_get_capture() returned error: 1\n"));
}
