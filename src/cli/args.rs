//! k4arecorder's command line, reproduced exactly.
//!
//! Microsoft's parser works like this, and so does this one:
//!
//! * Tokens are read left to right. A token that is exactly (case-sensitively) an option name
//!   runs that option's handler at once with the following N tokens. `-h`/`--help` and `--list`
//!   end parsing on the spot.
//! * The first token that is not an option name ends parsing. Exactly one token must be left:
//!   the output file. Zero or several leftovers, no arguments at all, or an option whose value is
//!   missing print the usage text and exit with 0.
//! * A handler that refuses its value prints `<option as typed>: <message>` on stderr and exits
//!   with 1. Integers are read like C++ `std::stoi` (leading white space, a sign, digits, and
//!   anything after the digits ignored; the message is `stoi` when there are no digits or the
//!   number does not fit in 32 bits).
//! * Values (modes, on/off, sync roles) are matched without regard to ASCII case.
//! * After parsing: the 30 fps rule for WFOV_UNBINNED and 3072p (silently 15 fps unless `-r`
//!   was given, an error otherwise), then `--sync-delay` without a subordinate role.
//!
//! Our additions (`--emulate[=SPEC]`, `--depth-engine PATH`, `--no-progress`) follow the same
//! rules; `FREEK4A_EMULATE` and `FREEK4A_DEPTH_ENGINE` are applied by
//! [`RecorderOptions::apply_environment`].

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use crate::cli::emulate::{EmulateSpec, EmulateSpecError, EMULATE_ENV};
use crate::types::{ColorResolution, DepthMode, DeviceConfig, Fps, ImageFormat, WiredSyncMode};

/// Environment variable naming the depth engine library when `--depth-engine` is not given.
pub const DEPTH_ENGINE_ENV: &str = "FREEK4A_DEPTH_ENGINE";

/// Colour exposure requested on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Exposure {
    /// Automatic exposure (Microsoft's sentinel −12; the default).
    #[default]
    Auto,
    /// Manual exposure time in microseconds.
    ManualUsec(u32),
}

impl Exposure {
    /// Converts a `-e` value: −11…1 means 2^v seconds (computed in `f32` as the original does and
    /// truncated to whole microseconds), 2…200 000 is taken as microseconds; anything else is
    /// `None`.
    pub fn from_option_value(value: i32) -> Option<Exposure> {
        match value {
            -11..=1 => {
                // Exact: every 2^v × 10^6 for v in −11…1 is representable in f32.
                let usec = (f32::exp2(value as f32) * 1_000_000.0f32) as u32;
                Some(Exposure::ManualUsec(usec))
            }
            2..=200_000 => Some(Exposure::ManualUsec(value as u32)),
            _ => None,
        }
    }
}

/// Everything the recorder was asked to do.
#[derive(Clone, Debug, PartialEq)]
pub struct RecorderOptions {
    /// Camera configuration (`K4A_DEVICE_CONFIG_INIT_DISABLE_ALL` plus the options).
    pub device_config: DeviceConfig,
    /// Which device to open (`--device`, 0…255).
    pub device_index: u8,
    /// `-l`: stop after this many seconds from the first capture; `None` records until Ctrl-C.
    pub record_length_sec: Option<u32>,
    /// `--imu`: record the IMU track.
    pub imu_enabled: bool,
    /// `-e`: colour exposure.
    pub exposure: Exposure,
    /// `-g`: manual colour gain (0…255); `None` leaves it automatic.
    pub gain: Option<u8>,
    /// Whether `-r` was given (it decides between the silent 15 fps downgrade and an error).
    pub rate_explicit: bool,
    /// The output file (the one leftover argument).
    pub output_path: PathBuf,
    /// `--emulate[=SPEC]` (or `FREEK4A_EMULATE`): record from an emulated device.
    pub emulate: Option<EmulateSpec>,
    /// `--depth-engine PATH` (or `FREEK4A_DEPTH_ENGINE`).
    pub depth_engine_path: Option<PathBuf>,
    /// `--no-progress` turns the live progress line off.
    pub progress: bool,
    /// `--headless-gl`: run the depth engine on EGL without a display even when X works.
    pub headless_gl: bool,
    /// `--preview[=ADDR:PORT]`: serve the live viewer while recording ("" picks loopback and a
    /// free port).
    pub preview: Option<String>,
    /// `--raw-depth`: record the unit's raw depth frames, no depth engine
    /// (`freek4a convert-depth` makes depth and IR later).
    pub raw_depth: bool,
}

impl RecorderOptions {
    fn defaults() -> RecorderOptions {
        RecorderOptions {
            device_config: DeviceConfig::default(),
            device_index: 0,
            record_length_sec: None,
            imu_enabled: true,
            exposure: Exposure::Auto,
            gain: None,
            rate_explicit: false,
            output_path: PathBuf::new(),
            emulate: None,
            depth_engine_path: None,
            progress: true,
            headless_gl: false,
            preview: None,
            raw_depth: false,
        }
    }

    /// Fills `emulate` and `depth_engine_path` from `FREEK4A_EMULATE` and `FREEK4A_DEPTH_ENGINE`
    /// when the command line did not set them. `lookup` reads one variable (normally
    /// `std::env::var_os`). An empty `FREEK4A_DEPTH_ENGINE` is ignored; an empty
    /// `FREEK4A_EMULATE` means the default emulation.
    pub fn apply_environment(
        &mut self,
        lookup: impl Fn(&str) -> Option<OsString>,
    ) -> Result<(), RecorderArgError> {
        if self.emulate.is_none() {
            if let Some(value) = lookup(EMULATE_ENV) {
                let text = value.to_string_lossy();
                let spec = text
                    .parse()
                    .map_err(|source| RecorderArgError::Environment {
                        variable: EMULATE_ENV,
                        source,
                    })?;
                self.emulate = Some(spec);
            }
        }
        if self.depth_engine_path.is_none() {
            if let Some(value) = lookup(DEPTH_ENGINE_ENV).filter(|v| !v.is_empty()) {
                self.depth_engine_path = Some(PathBuf::from(value));
            }
        }
        Ok(())
    }
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum RecorderCommand {
    /// `-h`/`--help`: print the help text, exit 0.
    Help,
    /// Wrong number of leftover arguments, no arguments, or a missing option value: print the
    /// help text, exit 0 (k4arecorder's behaviour).
    Usage,
    /// `--version`: print the version, exit 0.
    Version,
    /// `--list`: list devices, exit 0. Carries the options parsed before it (`--emulate`).
    List(Box<RecorderOptions>),
    /// Record with these options (post-parse checks already passed).
    Record(Box<RecorderOptions>),
}

/// Why an option handler refused its value. The `Display` text is Microsoft's message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptionValueError {
    /// `std::stoi` failed: no digits, or the number does not fit in 32 bits.
    #[error("stoi")]
    Stoi,
    /// `--device` outside 0…255.
    #[error("Device index must 0-255")]
    DeviceIndex,
    /// `-l` negative.
    #[error("Recording length must be positive")]
    RecordLength,
    /// `-c` value not known.
    #[error("Unknown color mode specified: {0}")]
    ColorMode(String),
    /// `-d` value not known.
    #[error("Unknown depth mode specified: {0}")]
    DepthMode(String),
    /// `-r` value not known.
    #[error("Unknown frame rate specified: {0}")]
    FrameRate(String),
    /// `--imu` value not known.
    #[error("Unknown imu mode specified: {0}")]
    ImuMode(String),
    /// `--external-sync` value not known.
    #[error("Unknown external sync mode specified: {0}")]
    SyncMode(String),
    /// `--sync-delay` negative.
    #[error("External sync delay must be positive.")]
    SyncDelay,
    /// `-e` outside −11…1 and 2…200 000 (the text is Microsoft's, limits and all).
    #[error("Exposure value range is 2 to 5s, or -11 to 1.")]
    Exposure,
    /// `-g` outside 0…255.
    #[error("Gain value must be between 0 and 255.")]
    Gain,
    /// `--emulate=SPEC` refused.
    #[error(transparent)]
    Emulate(#[from] EmulateSpecError),
}

/// A refused command line. `Display` is exactly what goes to stderr; every case exits with 1.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecorderArgError {
    /// An option handler refused its value: `<option as typed>: <message>`.
    #[error("{option}: {error}")]
    Option {
        /// The option token as the user typed it (`-l` or `--record-length`).
        option: String,
        /// What was wrong.
        error: OptionValueError,
    },
    /// `-r 30` given with WFOV_UNBINNED or 3072p.
    #[error("Error: 30 Frames per second is not supported by this camera mode.")]
    UnsupportedRate,
    /// `--sync-delay` without `--external-sync subordinate`.
    #[error("--sync-delay is only valid if --external-sync is set to Subordinate.")]
    SyncDelayWithoutSubordinate,
    /// An environment variable holds a value we refuse: `<VARIABLE>: <message>`.
    #[error("{variable}: {source}")]
    Environment {
        /// The variable's name.
        variable: &'static str,
        /// What was wrong.
        source: EmulateSpecError,
    },
}

impl RecorderArgError {
    /// k4arecorder's exit code for this error (always 1).
    #[allow(dead_code)] // k4arecorder's; `freek4a record` exits with 2 on usage errors.
    pub fn exit_code(&self) -> i32 {
        1
    }
}

/// Reads an integer the way C++ `std::stoi` does (base 10): skip leading white space, take an
/// optional sign and the longest run of digits, ignore the rest. No digits, or a value outside
/// `i32`, is an error.
pub fn stoi(text: &str) -> Result<i32, OptionValueError> {
    // C's isspace: space, \t, \n, \v, \f, \r.
    let rest = text.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, rest) = match rest.as_bytes().first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(OptionValueError::Stoi);
    }
    let mut value: i64 = 0;
    for b in rest[..digits].bytes() {
        value = value * 10 + i64::from(b - b'0');
        if value > i64::from(i32::MAX) + 1 {
            return Err(OptionValueError::Stoi);
        }
    }
    let value = if negative { -value } else { value };
    i32::try_from(value).map_err(|_| OptionValueError::Stoi)
}

/// The options the parser knows, with their value counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opt {
    Help,
    List,
    Device,
    RecordLength,
    ColorMode,
    DepthMode,
    DepthDelay,
    Rate,
    Imu,
    ExternalSync,
    SyncDelay,
    Exposure,
    Gain,
    Emulate,
    DepthEngine,
    NoProgress,
    HeadlessGl,
    Version,
    Preview,
    RawDepth,
}

impl Opt {
    fn lookup(token: &OsStr) -> Option<Opt> {
        let token = token.to_str()?;
        Some(match token {
            "-h" | "--help" => Opt::Help,
            "--list" => Opt::List,
            "--device" => Opt::Device,
            "-l" | "--record-length" => Opt::RecordLength,
            "-c" | "--color-mode" => Opt::ColorMode,
            "-d" | "--depth-mode" => Opt::DepthMode,
            "--depth-delay" => Opt::DepthDelay,
            "-r" | "--rate" => Opt::Rate,
            "--imu" => Opt::Imu,
            "--external-sync" => Opt::ExternalSync,
            "--sync-delay" => Opt::SyncDelay,
            "-e" | "--exposure-control" => Opt::Exposure,
            "-g" | "--gain" => Opt::Gain,
            "--emulate" => Opt::Emulate,
            "--depth-engine" => Opt::DepthEngine,
            "--no-progress" => Opt::NoProgress,
            "--headless-gl" => Opt::HeadlessGl,
            "--raw-depth" => Opt::RawDepth,
            "--version" => Opt::Version,
            t if t.starts_with("--emulate=") => Opt::Emulate,
            "--preview" => Opt::Preview,
            t if t.starts_with("--preview=") => Opt::Preview,
            _ => return None,
        })
    }

    fn value_count(self) -> usize {
        match self {
            Opt::Help
            | Opt::List
            | Opt::Emulate
            | Opt::NoProgress
            | Opt::HeadlessGl
            | Opt::RawDepth
            | Opt::Version
            | Opt::Preview => 0,
            _ => 1,
        }
    }
}

/// Parses k4arecorder's arguments (without the program name) and runs the post-parse checks.
///
/// Environment variables are not read here; call [`RecorderOptions::apply_environment`] on the
/// result.
pub fn parse_recorder_args<I, S>(args: I) -> Result<RecorderCommand, RecorderArgError>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut o = RecorderOptions::defaults();
    let mut i = 0;
    let leftover = loop {
        let Some(token) = args.get(i) else { break 0 };
        let Some(opt) = Opt::lookup(token) else {
            break args.len() - i;
        };
        let n = opt.value_count();
        if i + n >= args.len() {
            // The value is missing: Microsoft's parser reports no leftovers, hence usage.
            break 0;
        }
        let value = if n == 1 { Some(&args[i + 1]) } else { None };
        let option = token.to_string_lossy().into_owned();
        match apply(&mut o, opt, &option, value) {
            Ok(Some(done)) => return Ok(done),
            Ok(None) => {}
            Err(error) => return Err(RecorderArgError::Option { option, error }),
        }
        i += 1 + n;
    };
    if leftover != 1 {
        return Ok(RecorderCommand::Usage);
    }
    o.output_path = PathBuf::from(&args[args.len() - 1]);
    post_parse_checks(&mut o)?;
    Ok(RecorderCommand::Record(Box::new(o)))
}

/// Why a command line that parses to [`RecorderCommand::Usage`] was not understood, when one
/// token is to blame: `unknown option '--colour-mode'` or `option '-l' needs a value`. Microsoft's
/// tool prints only the help text; this line goes to stderr beside it.
pub fn usage_reason<I, S>(args: I) -> Option<String>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut i = 0;
    while let Some(token) = args.get(i) {
        let Some(opt) = Opt::lookup(token) else {
            let t = token.to_string_lossy();
            return (t.starts_with('-') && t.len() > 1).then(|| format!("unknown option '{t}'"));
        };
        if matches!(opt, Opt::Help | Opt::List | Opt::Version) {
            return None;
        }
        let n = opt.value_count();
        if i + n >= args.len() {
            return Some(format!(
                "option '{}' needs a value",
                token.to_string_lossy()
            ));
        }
        i += 1 + n;
    }
    None
}

fn post_parse_checks(o: &mut RecorderOptions) -> Result<(), RecorderArgError> {
    let c = &mut o.device_config;
    if c.camera_fps == Fps::Fps30
        && (c.depth_mode == DepthMode::WfovUnbinned
            || c.color_resolution == ColorResolution::R3072p)
    {
        if o.rate_explicit {
            return Err(RecorderArgError::UnsupportedRate);
        }
        c.camera_fps = Fps::Fps15;
    }
    if c.subordinate_delay_off_master_usec > 0 && c.wired_sync_mode != WiredSyncMode::Subordinate {
        return Err(RecorderArgError::SyncDelayWithoutSubordinate);
    }
    Ok(())
}

/// Runs one option handler. `Ok(Some(_))` ends parsing (help, list).
fn apply(
    o: &mut RecorderOptions,
    opt: Opt,
    token: &str,
    value: Option<&OsString>,
) -> Result<Option<RecorderCommand>, OptionValueError> {
    let text = value
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_default();
    let is = |word: &str| text.eq_ignore_ascii_case(word);
    let c = &mut o.device_config;
    match opt {
        Opt::Help => return Ok(Some(RecorderCommand::Help)),
        Opt::Version => return Ok(Some(RecorderCommand::Version)),
        Opt::List => return Ok(Some(RecorderCommand::List(Box::new(o.clone())))),
        Opt::Device => {
            let v = stoi(&text)?;
            o.device_index = u8::try_from(v).map_err(|_| OptionValueError::DeviceIndex)?;
        }
        Opt::RecordLength => {
            let v = stoi(&text)?;
            o.record_length_sec =
                Some(u32::try_from(v).map_err(|_| OptionValueError::RecordLength)?);
        }
        Opt::ColorMode => {
            // Plain resolutions keep the previous format (Microsoft's behaviour).
            let resolution = match () {
                _ if is("3072p") => ColorResolution::R3072p,
                _ if is("2160p") => ColorResolution::R2160p,
                _ if is("1536p") => ColorResolution::R1536p,
                _ if is("1440p") => ColorResolution::R1440p,
                _ if is("1080p") => ColorResolution::R1080p,
                _ if is("720p") => ColorResolution::R720p,
                _ if is("720p_NV12") => {
                    c.color_format = ImageFormat::Nv12;
                    ColorResolution::R720p
                }
                _ if is("720p_YUY2") => {
                    c.color_format = ImageFormat::Yuy2;
                    ColorResolution::R720p
                }
                _ if is("off") => ColorResolution::Off,
                _ => return Err(OptionValueError::ColorMode(text)),
            };
            c.color_resolution = resolution;
        }
        Opt::DepthMode => {
            c.depth_mode = DepthMode::ON
                .into_iter()
                .chain([DepthMode::Off])
                .find(|m| is(m.name()))
                .ok_or(OptionValueError::DepthMode(text))?;
        }
        Opt::DepthDelay => c.depth_delay_off_color_usec = stoi(&text)?,
        Opt::Rate => {
            o.rate_explicit = true;
            c.camera_fps = match () {
                _ if is("30") => Fps::Fps30,
                _ if is("15") => Fps::Fps15,
                _ if is("5") => Fps::Fps5,
                _ => return Err(OptionValueError::FrameRate(text)),
            };
        }
        Opt::Imu => {
            o.imu_enabled = match () {
                _ if is("on") => true,
                _ if is("off") => false,
                _ => return Err(OptionValueError::ImuMode(text)),
            };
        }
        Opt::ExternalSync => {
            c.wired_sync_mode = match () {
                _ if is("master") => WiredSyncMode::Master,
                _ if is("subordinate") || is("sub") => WiredSyncMode::Subordinate,
                _ if is("standalone") => WiredSyncMode::Standalone,
                _ => return Err(OptionValueError::SyncMode(text)),
            };
        }
        Opt::SyncDelay => {
            let v = stoi(&text)?;
            c.subordinate_delay_off_master_usec =
                u32::try_from(v).map_err(|_| OptionValueError::SyncDelay)?;
        }
        Opt::Exposure => {
            o.exposure =
                Exposure::from_option_value(stoi(&text)?).ok_or(OptionValueError::Exposure)?;
        }
        Opt::Gain => {
            let v = stoi(&text)?;
            o.gain = Some(u8::try_from(v).map_err(|_| OptionValueError::Gain)?);
        }
        Opt::Emulate => {
            let spec = token.strip_prefix("--emulate=").unwrap_or("");
            o.emulate = Some(spec.parse()?);
        }
        Opt::DepthEngine => {
            o.depth_engine_path = value.map(PathBuf::from);
        }
        Opt::NoProgress => o.progress = false,
        Opt::HeadlessGl => o.headless_gl = true,
        Opt::RawDepth => o.raw_depth = true,
        Opt::Preview => o.preview = Some(token.strip_prefix("--preview=").unwrap_or("").into()),
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(args: &[&str]) -> RecorderOptions {
        match parse_recorder_args(args.iter().copied()) {
            Ok(RecorderCommand::Record(o)) => *o,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    fn refusal(args: &[&str]) -> String {
        parse_recorder_args(args.iter().copied())
            .unwrap_err()
            .to_string()
    }

    fn command(args: &[&str]) -> RecorderCommand {
        parse_recorder_args(args.iter().copied()).unwrap()
    }

    #[test]
    fn stoi_semantics() {
        assert_eq!(stoi("42"), Ok(42));
        assert_eq!(stoi("  \t-7"), Ok(-7));
        assert_eq!(stoi("+5s"), Ok(5));
        assert_eq!(stoi("5.9"), Ok(5));
        assert_eq!(stoi("0x10"), Ok(0));
        assert_eq!(stoi("-2147483648"), Ok(i32::MIN));
        assert_eq!(stoi("2147483647"), Ok(i32::MAX));
        assert_eq!(stoi("2147483648"), Err(OptionValueError::Stoi));
        assert_eq!(stoi("-2147483649"), Err(OptionValueError::Stoi));
        assert_eq!(stoi("99999999999999999999999"), Err(OptionValueError::Stoi));
        for bad in ["", "abc", "-", "+-1", " - 1", "s5"] {
            assert_eq!(stoi(bad), Err(OptionValueError::Stoi), "{bad:?}");
        }
    }

    #[test]
    fn defaults() {
        let o = record(&["out.mkv"]);
        assert_eq!(o.device_config, DeviceConfig::default());
        assert_eq!(o.device_index, 0);
        assert_eq!(o.record_length_sec, None);
        assert!(o.imu_enabled);
        assert_eq!(o.exposure, Exposure::Auto);
        assert_eq!(o.gain, None);
        assert_eq!(o.output_path, PathBuf::from("out.mkv"));
        assert!(!o.device_config.synchronized_images_only);
        assert!(o.progress);
        assert_eq!(o.emulate, None);
    }

    #[test]
    fn all_options() {
        let o = record(&[
            "--device",
            "3",
            "-l",
            "10",
            "-c",
            "720p_yuy2",
            "-d",
            "wfov_2x2binned",
            "--depth-delay",
            "-100",
            "-r",
            "5",
            "--imu",
            "Off",
            "--external-sync",
            "SUB",
            "--sync-delay",
            "160",
            "-e",
            "-11",
            "-g",
            "128",
            "--no-progress",
            "--depth-engine",
            "/x/libde.so",
            "--emulate=units=2",
            "o.mkv",
        ]);
        let c = &o.device_config;
        assert_eq!(o.device_index, 3);
        assert_eq!(o.record_length_sec, Some(10));
        assert_eq!(
            (c.color_format, c.color_resolution),
            (ImageFormat::Yuy2, ColorResolution::R720p)
        );
        assert_eq!(c.depth_mode, DepthMode::Wfov2x2Binned);
        assert_eq!(c.depth_delay_off_color_usec, -100);
        assert_eq!(c.camera_fps, Fps::Fps5);
        assert!(o.rate_explicit);
        assert!(!o.imu_enabled);
        assert_eq!(c.wired_sync_mode, WiredSyncMode::Subordinate);
        assert_eq!(c.subordinate_delay_off_master_usec, 160);
        assert_eq!(o.exposure, Exposure::ManualUsec(488));
        assert_eq!(o.gain, Some(128));
        assert!(!o.progress);
        assert_eq!(o.depth_engine_path, Some(PathBuf::from("/x/libde.so")));
        assert_eq!(o.emulate.as_ref().map(|e| e.units), Some(2));
    }

    #[test]
    fn exposure_conversion() {
        assert_eq!(
            Exposure::from_option_value(-11),
            Some(Exposure::ManualUsec(488))
        );
        assert_eq!(
            Exposure::from_option_value(-5),
            Some(Exposure::ManualUsec(31_250))
        );
        assert_eq!(
            Exposure::from_option_value(0),
            Some(Exposure::ManualUsec(1_000_000))
        );
        assert_eq!(
            Exposure::from_option_value(1),
            Some(Exposure::ManualUsec(2_000_000))
        );
        assert_eq!(
            Exposure::from_option_value(2),
            Some(Exposure::ManualUsec(2))
        );
        assert_eq!(
            Exposure::from_option_value(200_000),
            Some(Exposure::ManualUsec(200_000))
        );
        assert_eq!(Exposure::from_option_value(200_001), None);
        assert_eq!(Exposure::from_option_value(-12), None);
    }

    #[test]
    fn color_mode_keeps_format_for_plain_resolutions() {
        let o = record(&["-c", "720p_NV12", "-c", "1080p", "o.mkv"]);
        assert_eq!(o.device_config.color_format, ImageFormat::Nv12);
        assert_eq!(o.device_config.color_resolution, ColorResolution::R1080p);
        let o = record(&["-c", "720p_NV12", "-c", "OFF", "o.mkv"]);
        assert_eq!(o.device_config.color_format, ImageFormat::Nv12);
        assert_eq!(o.device_config.color_resolution, ColorResolution::Off);
    }

    #[test]
    fn rate_rule() {
        let o = record(&["-d", "WFOV_UNBINNED", "o.mkv"]);
        assert_eq!(o.device_config.camera_fps, Fps::Fps15);
        let o = record(&["-c", "3072p", "o.mkv"]);
        assert_eq!(o.device_config.camera_fps, Fps::Fps15);
        let o = record(&["-c", "3072p", "-r", "5", "o.mkv"]);
        assert_eq!(o.device_config.camera_fps, Fps::Fps5);
        assert_eq!(
            refusal(&["-r", "30", "-c", "3072p", "o.mkv"]),
            "Error: 30 Frames per second is not supported by this camera mode."
        );
        assert_eq!(
            refusal(&["--sync-delay", "5", "--external-sync", "master", "o.mkv"]),
            "--sync-delay is only valid if --external-sync is set to Subordinate."
        );
        // The rate rule is checked first.
        assert_eq!(
            parse_recorder_args(["-r", "30", "-d", "wfov_unbinned", "--sync-delay", "1", "o"]),
            Err(RecorderArgError::UnsupportedRate)
        );
    }

    #[test]
    fn handler_messages_name_the_option_as_typed() {
        assert_eq!(
            refusal(&["--record-length", "-1", "o"]),
            "--record-length: Recording length must be positive"
        );
        assert_eq!(refusal(&["-l", "x", "o"]), "-l: stoi");
        assert_eq!(
            refusal(&["--device", "256", "o"]),
            "--device: Device index must 0-255"
        );
        assert_eq!(
            refusal(&["-c", "4k", "o"]),
            "-c: Unknown color mode specified: 4k"
        );
        assert_eq!(
            refusal(&["-d", "wide", "o"]),
            "-d: Unknown depth mode specified: wide"
        );
        assert_eq!(
            refusal(&["-r", "60", "o"]),
            "-r: Unknown frame rate specified: 60"
        );
        assert_eq!(
            refusal(&["--imu", "yes", "o"]),
            "--imu: Unknown imu mode specified: yes"
        );
        assert_eq!(
            refusal(&["--external-sync", "slave", "o"]),
            "--external-sync: Unknown external sync mode specified: slave"
        );
        assert_eq!(
            refusal(&["--sync-delay", "-1", "o"]),
            "--sync-delay: External sync delay must be positive."
        );
        assert_eq!(
            refusal(&["-e", "0", "-e", "300000", "o"]),
            "-e: Exposure value range is 2 to 5s, or -11 to 1."
        );
        assert_eq!(
            refusal(&["-g", "256", "o"]),
            "-g: Gain value must be between 0 and 255."
        );
        assert_eq!(
            refusal(&["--emulate=units=0", "o"]),
            "--emulate=units=0: emulate units `0` must be a whole number from 1 to 16"
        );
        // Errors come before the leftover count is looked at.
        assert_eq!(
            refusal(&["-l", "-5"]),
            "-l: Recording length must be positive"
        );
    }

    #[test]
    fn usage_cases() {
        assert_eq!(command(&[]), RecorderCommand::Usage);
        assert_eq!(command(&["-l"]), RecorderCommand::Usage);
        assert_eq!(command(&["-l", "5"]), RecorderCommand::Usage);
        assert_eq!(command(&["a.mkv", "b.mkv"]), RecorderCommand::Usage);
        assert_eq!(command(&["o.mkv", "-l", "5"]), RecorderCommand::Usage);
        // Option names are case-sensitive: an unknown token ends parsing.
        assert_eq!(command(&["-L", "5", "o.mkv"]), RecorderCommand::Usage);
        assert_eq!(command(&["--help", "-l", "x"]), RecorderCommand::Help);
        assert!(matches!(
            command(&["-l", "2", "--list", "-l", "x"]),
            RecorderCommand::List(_)
        ));
        // A bad value before --list is reported.
        assert!(parse_recorder_args(["-l", "x", "--list"]).is_err());
        // --emulate alone takes no value.
        assert_eq!(
            record(&["--emulate", "o.mkv"]).emulate,
            Some(EmulateSpec::default())
        );
        assert_eq!(command(&["--emulate"]), RecorderCommand::Usage);
        // The file may look like an option we do not know.
        assert_eq!(record(&["-x"]).output_path, PathBuf::from("-x"));
    }

    #[test]
    fn environment() {
        let mut o = record(&["o.mkv"]);
        o.apply_environment(|k| match k {
            "FREEK4A_EMULATE" => Some("".into()),
            "FREEK4A_DEPTH_ENGINE" => Some("/opt/de.so".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(o.emulate, Some(EmulateSpec::default()));
        assert_eq!(o.depth_engine_path, Some(PathBuf::from("/opt/de.so")));

        let mut o = record(&["--emulate=seed=5", "o.mkv"]);
        o.apply_environment(|_| Some("units=3".into())).unwrap();
        assert_eq!(o.emulate.as_ref().map(|e| (e.units, e.seed)), Some((1, 5)));

        let mut o = record(&["o.mkv"]);
        let e = o.apply_environment(|k| (k == EMULATE_ENV).then(|| "speed=warp".into()));
        assert_eq!(
            e.unwrap_err().to_string(),
            "FREEK4A_EMULATE: emulate speed `warp` must be realtime, max or a positive number"
        );
    }

    #[test]
    fn headless_gl_takes_no_value() {
        assert!(record(&["--raw-depth", "o.mkv"]).raw_depth);
        assert!(!record(&["o.mkv"]).raw_depth);
        let o = record(&["--headless-gl", "-l", "2", "o.mkv"]);
        assert!(o.headless_gl);
        assert_eq!(o.record_length_sec, Some(2));
        assert!(!record(&["o.mkv"]).headless_gl);
    }

    #[test]
    fn values_are_case_insensitive_and_the_colour_mode_quirk_keeps_the_format() {
        let record = |args: &[&str]| match parse_recorder_args(args.iter().copied()) {
            Ok(RecorderCommand::Record(o)) => o,
            other => panic!("{other:?}"),
        };
        let o = record(&["-c", "720P_YuY2", "--external-sync", "SUB", "o.mkv"]);
        assert_eq!(o.device_config.color_format, ImageFormat::Yuy2);
        // A later -c without a format keeps the earlier one, as Microsoft's parser does.
        let o = record(&["-c", "720p_NV12", "-c", "1080p", "o.mkv"]);
        assert_eq!(o.device_config.color_format, ImageFormat::Nv12);
        assert_eq!(o.device_config.color_resolution, ColorResolution::R1080p);
        assert_eq!(o.output_path, std::path::PathBuf::from("o.mkv"));
    }
}
