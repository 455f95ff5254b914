//! Integration tests: cli (the k4arecorder and freek4a binaries; the option parser's own unit
//! tests are in src/cli/).

use std::path::PathBuf;
use std::process::{Command, Output};

/// Microsoft k4arecorder 1.4.1's help text, byte for byte.
const MICROSOFT_HELP: &str = concat!(
    "k4arecorder [options] output.mkv\n",
    "\n",
    " Options:\n",
    "  -h, --help              Prints this help\n",
    "  --list                  List the currently connected K4A devices\n",
    "  --device                Specify the device index to use (default: 0)\n",
    "  -l, --record-length     Limit the recording to N seconds (default: infinite)\n",
    "  -c, --color-mode        Set the color sensor mode (default: 1080p), Available options:\n",
    "                            3072p, 2160p, 1536p, 1440p, 1080p, 720p, 720p_NV12, 720p_YUY2, OFF\n",
    "  -d, --depth-mode        Set the depth sensor mode (default: NFOV_UNBINNED), Available options:\n",
    "                            NFOV_2X2BINNED, NFOV_UNBINNED, WFOV_2X2BINNED, WFOV_UNBINNED, PASSIVE_IR, OFF\n",
    "  --depth-delay           Set the time offset between color and depth frames in microseconds (default: 0)\n",
    "                            A negative value means depth frames will arrive before color frames.\n",
    "                            The delay must be less than 1 frame period.\n",
    "  -r, --rate              Set the camera frame rate in Frames per Second\n",
    "                            Default is the maximum rate supported by the camera modes.\n",
    "                            Available options: 30, 15, 5\n",
    "  --imu                   Set the IMU recording mode (ON, OFF, default: ON)\n",
    "  --external-sync         Set the external sync mode (Master, Subordinate, Standalone default: Standalone)\n",
    "  --sync-delay            Set the external sync delay off the master camera in microseconds (default: 0)\n",
    "                            This setting is only valid if the camera is in Subordinate mode.\n",
    "  -e, --exposure-control  Set manual exposure value from 2 us to 200,000us for the RGB camera (default: \n",
    "                            auto exposure). This control also supports MFC settings of -11 to 1).\n",
    "  -g, --gain              Set cameras manual gain. The valid range is 0 to 255. (default: auto)\n",
);

/// Our options, appended in the same layout.
const OUR_HELP: &str = concat!(
    "  --emulate[=SPEC]        Record from an emulated Azure Kinect instead of USB hardware\n",
    "                            SPEC: units=N, speed=realtime|max|<factor>, seed=N (comma-separated;\n",
    "                            default: units=1,speed=realtime,seed=0). Also read from FREEK4A_EMULATE.\n",
    "  --depth-engine          Path of the depth engine library (libdepthengine.so.2.0)\n",
    "                            (default: FREEK4A_DEPTH_ENGINE, then the SDK's search locations)\n",
    "  --no-progress           Do not show the live progress line (shown only on a terminal)\n",
    "  --headless-gl           Run the depth engine on OpenGL without a display (EGL), even when X works\n",
    "                            (used by itself when there is no usable X display)\n",
    "  --raw-depth             Record the raw depth frames without a depth engine; convert them\n",
    "                            later with 'freek4a convert-depth IN -o OUT'\n",
    "  --version               Print the version and exit\n",
    "  --preview[=ADDR:PORT]   Serve a live view of the recording to a browser (default 127.0.0.1, free port)\n",
);

fn k4arecorder(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_k4arecorder"))
        .args(args)
        .env_remove("FREEK4A_EMULATE")
        .env_remove("FREEK4A_DEPTH_ENGINE")
        .output()
        .unwrap()
}

fn freek4a(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_freek4a"))
        .args(args)
        .env_remove("FREEK4A_EMULATE")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Asserts a refusal: exactly `message` on stderr, nothing on stdout, exit code 1.
fn refused(args: &[&str], message: &str) {
    let out = k4arecorder(args);
    assert_eq!(text(&out.stderr), format!("{message}\n"), "{args:?}");
    assert_eq!(text(&out.stdout), "", "{args:?}");
    assert_eq!(out.status.code(), Some(1), "{args:?}");
}

fn full_help() -> String {
    format!("{MICROSOFT_HELP}{OUR_HELP}")
}

#[test]
fn help_is_microsofts_text_plus_ours() {
    assert!(MICROSOFT_HELP.contains("for the RGB camera (default: \n"));
    for flag in ["-h", "--help"] {
        let out = k4arecorder(&[flag]);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(text(&out.stdout), full_help());
        assert_eq!(text(&out.stderr), "");
    }
}

#[test]
fn usage_cases_print_help_and_exit_zero() {
    // Microsoft's exit status and help text; one stderr line when a token is to blame.
    for (args, why) in [
        (&[][..], ""),
        (&["-l"][..], "k4arecorder: option '-l' needs a value\n"),
        (
            &["--device", "1", "-c"][..],
            "k4arecorder: option '-c' needs a value\n",
        ),
        (&["-l", "5"][..], ""),
        (&["a.mkv", "b.mkv"][..], ""),
        (&["out.mkv", "-l", "5"][..], ""),
        (
            &["-L", "5", "out.mkv"][..],
            "k4arecorder: unknown option '-L'\n",
        ),
        (
            &["--Help", "out.mkv"][..],
            "k4arecorder: unknown option '--Help'\n",
        ),
        (
            &["--colour-mode", "720p", "out.mkv"][..],
            "k4arecorder: unknown option '--colour-mode'\n",
        ),
    ] {
        let out = k4arecorder(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(text(&out.stdout), full_help(), "{args:?}");
        assert_eq!(text(&out.stderr), why, "{args:?}");
    }
}

#[test]
fn refused_values_give_microsofts_messages() {
    refused(
        &["-c", "3072p", "-r", "30", "o.mkv"],
        "Error: 30 Frames per second is not supported by this camera mode.",
    );
    refused(
        &["-d", "WFOV_UNBINNED", "-r", "30", "o.mkv"],
        "Error: 30 Frames per second is not supported by this camera mode.",
    );
    refused(
        &["--sync-delay", "100", "o.mkv"],
        "--sync-delay is only valid if --external-sync is set to Subordinate.",
    );
    refused(
        &["--external-sync", "master", "--sync-delay", "1", "o.mkv"],
        "--sync-delay is only valid if --external-sync is set to Subordinate.",
    );
    refused(
        &["-e", "2", "-e", "200001", "o.mkv"],
        "-e: Exposure value range is 2 to 5s, or -11 to 1.",
    );
    refused(
        &["--exposure-control", "-12", "o.mkv"],
        "--exposure-control: Exposure value range is 2 to 5s, or -11 to 1.",
    );
    refused(
        &["-g", "256", "o.mkv"],
        "-g: Gain value must be between 0 and 255.",
    );
    refused(
        &["--gain", "-1", "o.mkv"],
        "--gain: Gain value must be between 0 and 255.",
    );
    refused(
        &["--device", "256", "o.mkv"],
        "--device: Device index must 0-255",
    );
    refused(
        &["--device", "-1", "o.mkv"],
        "--device: Device index must 0-255",
    );
    refused(
        &["-l", "-1", "o.mkv"],
        "-l: Recording length must be positive",
    );
    refused(
        &["--record-length", "-30", "o.mkv"],
        "--record-length: Recording length must be positive",
    );
    refused(
        &["-c", "4K", "o.mkv"],
        "-c: Unknown color mode specified: 4K",
    );
    refused(
        &["--color-mode", "720p_BGRA", "o.mkv"],
        "--color-mode: Unknown color mode specified: 720p_BGRA",
    );
    refused(
        &["-d", "NFOV", "o.mkv"],
        "-d: Unknown depth mode specified: NFOV",
    );
    refused(
        &["-r", "60", "o.mkv"],
        "-r: Unknown frame rate specified: 60",
    );
    refused(
        &["--rate", "30fps", "o.mkv"],
        "--rate: Unknown frame rate specified: 30fps",
    );
    refused(
        &["--imu", "yes", "o.mkv"],
        "--imu: Unknown imu mode specified: yes",
    );
    refused(
        &["--external-sync", "slave", "o.mkv"],
        "--external-sync: Unknown external sync mode specified: slave",
    );
    refused(
        &["--sync-delay", "-5", "o.mkv"],
        "--sync-delay: External sync delay must be positive.",
    );
    // std::stoi: no digits, or out of the 32-bit range.
    refused(&["-l", "ten", "o.mkv"], "-l: stoi");
    refused(&["--depth-delay", "", "o.mkv"], "--depth-delay: stoi");
    refused(&["--device", "99999999999", "o.mkv"], "--device: stoi");
    // The first failing handler wins, before the leftover count is looked at.
    refused(
        &["-g", "300", "-l", "x"],
        "-g: Gain value must be between 0 and 255.",
    );
    refused(
        &["--emulate=units=0", "o.mkv"],
        "--emulate=units=0: emulate units `0` must be a whole number from 1 to 16",
    );
}

#[test]
fn stoi_accepts_whitespace_sign_and_trailing_junk() {
    // Accepted values get past the handlers; the later sync-delay check proves parsing went on.
    for value in ["  +5s", "5.7", "\t12abc"] {
        refused(
            &["-l", value, "--sync-delay", "1", "o.mkv"],
            "--sync-delay is only valid if --external-sync is set to Subordinate.",
        );
    }
    // "  16abc" reads as 16, so the sync-delay rule fires.
    refused(
        &[
            "--sync-delay",
            "  16abc",
            "--external-sync",
            "master",
            "o.mkv",
        ],
        "--sync-delay is only valid if --external-sync is set to Subordinate.",
    );
}

#[test]
fn values_are_case_insensitive() {
    refused(
        &["-d", "wfov_Unbinned", "-r", "30", "o.mkv"],
        "Error: 30 Frames per second is not supported by this camera mode.",
    );
    refused(
        &["-c", "3072P", "-r", "30", "o.mkv"],
        "Error: 30 Frames per second is not supported by this camera mode.",
    );
    refused(
        &[
            "--imu",
            "oFF",
            "--external-sync",
            "MASTER",
            "--sync-delay",
            "7",
            "o.mkv",
        ],
        "--sync-delay is only valid if --external-sync is set to Subordinate.",
    );
    refused(
        &[
            "-c",
            "720P_nv12",
            "--external-sync",
            "Standalone",
            "--sync-delay",
            "7",
            "o.mkv",
        ],
        "--sync-delay is only valid if --external-sync is set to Subordinate.",
    );
}

#[test]
fn list_without_devices() {
    let out = k4arecorder(&["--list"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "No devices connected.\n");
    // --list ends parsing where it stands.
    let out = k4arecorder(&["--list", "-l", "bad"]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn bad_emulate_environment_is_refused() {
    // A bad FREEK4A_EMULATE is refused like an option.
    let out = Command::new(env!("CARGO_BIN_EXE_k4arecorder"))
        .args(["o.mkv"])
        .env("FREEK4A_EMULATE", "units=x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "FREEK4A_EMULATE: emulate units `x` must be a whole number from 1 to 16\n"
    );
}

#[test]
fn udev_print_is_the_shipped_rules_file() {
    let out = freek4a(&["udev", "print"]);
    assert_eq!(out.status.code(), Some(0));
    let shipped = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("udev/70-freek4a.rules"),
    )
    .unwrap();
    assert_eq!(text(&out.stdout), shipped);
    for pid in ["097a", "097b", "097c", "097d", "097e"] {
        assert!(shipped.contains(&format!(
            "ATTR{{idProduct}}==\"{pid}\", MODE=\"0660\", GROUP=\"plugdev\", TAG+=\"uaccess\""
        )));
    }
    assert!(!shipped.contains("0666") && !shipped.contains("!=="));
}

#[test]
fn udev_install_into_a_directory() {
    let dir = std::env::temp_dir().join(format!("freek4a-cli-udev-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = freek4a(&[
        "udev",
        "install",
        "--dir",
        dir.to_str().unwrap(),
        "--no-reload",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let written = std::fs::read_to_string(dir.join("70-freek4a.rules")).unwrap();
    assert_eq!(written, text(&freek4a(&["udev", "print"]).stdout));
    std::fs::remove_dir_all(&dir).unwrap();

    let out = freek4a(&[
        "udev",
        "install",
        "--dir",
        "/nonexistent/freek4a",
        "--no-reload",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("the directory does not exist"));
}

#[test]
fn toolbox_exit_codes() {
    // Usage errors: 2.
    assert_eq!(freek4a(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(freek4a(&["info"]).status.code(), Some(2));
    assert_eq!(freek4a(&["repair", "in.mkv"]).status.code(), Some(2));
    let out = freek4a(&["record", "-l", "x", "o.mkv"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stderr), "freek4a: -l: stoi\n");
    assert_eq!(freek4a(&["record"]).status.code(), Some(2));
    // Help: 0, with the recorder's options under the toolbox's name.
    let out = freek4a(&["record", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        full_help().replacen("k4arecorder [options]", "freek4a record [options]", 1)
    );
    assert_eq!(freek4a(&["--help"]).status.code(), Some(0));
    // A runtime failure (a file that is not there): 1, naming the file.
    let out = freek4a(&["info", "no-such-recording.mkv", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no-such-recording.mkv"),
        "{}",
        text(&out.stderr)
    );
}
