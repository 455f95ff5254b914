//! Help text: Microsoft's k4arecorder usage, byte for byte, followed by our own options.

/// The option table of Microsoft's k4arecorder 1.4.1 as its parser prints it (everything after
/// the usage line and the blank line). Two spaces before each option, names padded to the
/// longest (`-e, --exposure-control`, 22 characters) plus two, so descriptions start at column 26;
/// continuation lines are indented by 28. The `-e` line really ends with a space after "(default:".
pub const MICROSOFT_OPTIONS_TEXT: &str = concat!(
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

/// Our additions, in the same column layout, printed after Microsoft's table.
pub const ADDED_OPTIONS_TEXT: &str = concat!(
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

/// The complete help text for the recorder, as printed by `-h`, `--help` and every usage case.
///
/// `program` is the usage line's command: `k4arecorder` gives Microsoft's text exactly (plus our
/// options); `freek4a record` gives the toolbox's variant.
pub fn recorder_help(program: &str) -> String {
    format!("{program} [options] output.mkv\n\n{MICROSOFT_OPTIONS_TEXT}{ADDED_OPTIONS_TEXT}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_layout_matches_microsoft() {
        for line in MICROSOFT_OPTIONS_TEXT
            .lines()
            .skip(1)
            .chain(ADDED_OPTIONS_TEXT.lines())
        {
            assert!(line.starts_with("  "), "{line:?}");
            if line.starts_with("   ") {
                assert!(line.starts_with(&" ".repeat(28)), "{line:?}");
            } else {
                // Option name, padding, then the description at column 26.
                let name_end = 2 + line[2..].find("  ").unwrap();
                assert!(name_end <= 24, "{line:?}");
                assert_eq!(&line[name_end..26], &" ".repeat(26 - name_end), "{line:?}");
                assert_ne!(line.as_bytes()[26], b' ', "{line:?}");
            }
        }
        assert!(MICROSOFT_OPTIONS_TEXT.contains("(default: \n"));
        assert_eq!(MICROSOFT_OPTIONS_TEXT.lines().count(), 22);
    }

    #[test]
    fn usage_line() {
        assert!(recorder_help("k4arecorder")
            .starts_with("k4arecorder [options] output.mkv\n\n Options:\n"));
    }
}
