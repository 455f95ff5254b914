//! The recorder's OpenGL choice for the depth engine: X when a usable display exists, else
//! (or with `--headless-gl`) EGL through `libfreek4a_headless_gl.so`. Named on stderr at start
//! so users see which GPU runs the engine.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::cli::args::RecorderOptions;
use crate::depthengine::headless::{self, GlChoice, GlPath};
use crate::types::DepthMode;

/// Whether this recording loads a depth engine that needs OpenGL: depth on, and not freek4a's
/// emulated engine (which `--emulate` uses unless `--depth-engine` names another).
pub fn needs_gl(options: &RecorderOptions) -> bool {
    options.device_config.depth_mode != DepthMode::Off
        && !options.raw_depth
        && (options.emulate.is_none() || options.depth_engine_path.is_some())
}

/// Sets up the engine's OpenGL path before the engine loads and returns the line to show
/// (`None` when X is used as it is, or when no engine will be loaded).
pub fn prepare_for_recording(options: &RecorderOptions) -> Option<String> {
    if !options.headless_gl && !needs_gl(options) {
        return None;
    }
    prepare_for_engine(options.headless_gl)
}

/// Whether the OpenGL line was shown already: a rig opens one engine per unit, all on the same
/// path, and says so once.
static LINE_SHOWN: AtomicBool = AtomicBool::new(false);

/// Sets up OpenGL for a depth engine about to load (EGL without a display when `headless` or
/// when X is not usable) and returns the line to show, as for a recording (once per process).
pub fn prepare_for_engine(headless: bool) -> Option<String> {
    let line = prepare_line(headless)?;
    (!LINE_SHOWN.swap(true, Ordering::Relaxed)).then_some(line)
}

fn prepare_line(headless: bool) -> Option<String> {
    let choice = if headless {
        GlChoice::Headless
    } else {
        GlChoice::Auto
    };
    Some(match headless::prepare(choice, None) {
        Ok(GlPath::X { .. }) => return None,
        Ok(path @ GlPath::Headless(_)) => format!("Depth engine OpenGL: {path}"),
        Err(e) => format!(
            "Depth engine OpenGL: {} and {e}; the depth engine will fail (error 204) unless \
             it finds a display",
            if std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty()) && !headless {
                "the X display is not usable"
            } else {
                "no X display"
            }
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{parse_recorder_args, RecorderCommand};

    fn options(args: &[&str]) -> RecorderOptions {
        match parse_recorder_args(args.iter().copied()) {
            Ok(RecorderCommand::Record(o)) => *o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gl_only_for_a_real_engine_with_depth_on() {
        assert!(needs_gl(&options(&["o.mkv"])));
        assert!(!needs_gl(&options(&["-d", "OFF", "o.mkv"])));
        assert!(!needs_gl(&options(&["--emulate", "o.mkv"])));
        assert!(!needs_gl(&options(&["--raw-depth", "o.mkv"])));
        assert!(needs_gl(&options(&[
            "--emulate",
            "--depth-engine",
            "/x.so",
            "o.mkv"
        ])));
    }
}
