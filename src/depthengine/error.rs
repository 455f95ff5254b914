//! Depth-engine result codes and the binding's typed errors.

use std::fmt;
use std::path::PathBuf;

/// What to install when no depth engine can be loaded. Shared by every "not found" message.
pub const INSTALL_ADVICE: &str = "install the depth engine (libdepthengine.so.2.0) from \
Microsoft's Azure Kinect SDK 1.4 packages (e.g. the `libk4a1.4` Debian package), or take it from \
the `pyk4a-bundle` wheel on PyPI (folder `pyk4a_bundle.libs/`); then put it on the loader path, \
set FREEK4A_DEPTH_ENGINE=/path/to/libdepthengine.so.2.0, or pass --depth-engine PATH. Colour and \
IMU still record without it with `-d OFF`";

/// A result code of the depth engine (`k4a_depth_engine_result_code_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EngineResult {
    /// 1: the input buffer size is wrong.
    InvalidInputBufferSize,
    /// 2: the output buffer size is wrong.
    InvalidOutputBufferSize,
    /// 3: frames arrived out of sequence.
    InvalidCaptureSequence,
    /// 4: NULL input buffer.
    NullInputBuffer,
    /// 5: NULL output buffer.
    NullOutputBuffer,
    /// 101: NULL engine pointer.
    NullEnginePointer,
    /// 102: engine initialisation failed.
    InitializeEngineFailed,
    /// 103: the calibration block was rejected.
    UpdateCalibrationFailed,
    /// 104: passive-IR processing failed.
    ProcessPcmFailed,
    /// 105: binning the input failed.
    BinInputFailed,
    /// 106: waiting for processing to complete failed (GPU trouble; the SDK drops the frame).
    WaitProcessingCompleteFailed,
    /// 107: NULL camera calibration pointer.
    NullCameraCalibrationPointer,
    /// 108: the engine is not loaded.
    EngineNotLoaded,
    /// 201: the GPU ran out of memory.
    GpuOutOfMemory,
    /// 202: invalid parameter to the GPU.
    GpuInvalidParameter,
    /// 203: invalid calibration on the GPU.
    GpuInvalidCalibration,
    /// 204: error from the GPU API.
    GpuFromApi,
    /// 205: internal GPU error.
    GpuInternal,
    /// 206: shader compilation failed.
    GpuShaderCompilation,
    /// 207: OpenGL context creation failed.
    GpuOpenglContext,
    /// 208: the GPU timed out (the SDK drops the frame).
    GpuTimeout,
    /// 301: frame dropped (asynchronous callers only).
    FrameDroppedAsync,
    /// A code the SDK does not define.
    Unknown(i32),
}

impl EngineResult {
    /// The typed result for a non-zero code (0 is success and has no variant).
    pub fn from_code(code: i32) -> EngineResult {
        use EngineResult::*;
        match code {
            1 => InvalidInputBufferSize,
            2 => InvalidOutputBufferSize,
            3 => InvalidCaptureSequence,
            4 => NullInputBuffer,
            5 => NullOutputBuffer,
            101 => NullEnginePointer,
            102 => InitializeEngineFailed,
            103 => UpdateCalibrationFailed,
            104 => ProcessPcmFailed,
            105 => BinInputFailed,
            106 => WaitProcessingCompleteFailed,
            107 => NullCameraCalibrationPointer,
            108 => EngineNotLoaded,
            201 => GpuOutOfMemory,
            202 => GpuInvalidParameter,
            203 => GpuInvalidCalibration,
            204 => GpuFromApi,
            205 => GpuInternal,
            206 => GpuShaderCompilation,
            207 => GpuOpenglContext,
            208 => GpuTimeout,
            301 => FrameDroppedAsync,
            other => Unknown(other),
        }
    }

    /// The numeric code.
    pub fn code(self) -> i32 {
        use EngineResult::*;
        match self {
            InvalidInputBufferSize => 1,
            InvalidOutputBufferSize => 2,
            InvalidCaptureSequence => 3,
            NullInputBuffer => 4,
            NullOutputBuffer => 5,
            NullEnginePointer => 101,
            InitializeEngineFailed => 102,
            UpdateCalibrationFailed => 103,
            ProcessPcmFailed => 104,
            BinInputFailed => 105,
            WaitProcessingCompleteFailed => 106,
            NullCameraCalibrationPointer => 107,
            EngineNotLoaded => 108,
            GpuOutOfMemory => 201,
            GpuInvalidParameter => 202,
            GpuInvalidCalibration => 203,
            GpuFromApi => 204,
            GpuInternal => 205,
            GpuShaderCompilation => 206,
            GpuOpenglContext => 207,
            GpuTimeout => 208,
            FrameDroppedAsync => 301,
            Unknown(c) => c,
        }
    }

    /// The SDK's name for the code (`K4A_DEPTH_ENGINE_RESULT_…`).
    pub fn sdk_name(self) -> &'static str {
        use EngineResult::*;
        match self {
            InvalidInputBufferSize => {
                "K4A_DEPTH_ENGINE_RESULT_DATA_ERROR_INVALID_INPUT_BUFFER_SIZE"
            }
            InvalidOutputBufferSize => {
                "K4A_DEPTH_ENGINE_RESULT_DATA_ERROR_INVALID_OUTPUT_BUFFER_SIZE"
            }
            InvalidCaptureSequence => "K4A_DEPTH_ENGINE_RESULT_DATA_ERROR_INVALID_CAPTURE_SEQUENCE",
            NullInputBuffer => "K4A_DEPTH_ENGINE_RESULT_DATA_ERROR_NULL_INPUT_BUFFER",
            NullOutputBuffer => "K4A_DEPTH_ENGINE_RESULT_DATA_ERROR_NULL_OUTPUT_BUFFER",
            NullEnginePointer => "K4A_DEPTH_ENGINE_RESULT_FATAL_ERROR_NULL_ENGINE_POINTER",
            InitializeEngineFailed => {
                "K4A_DEPTH_ENGINE_RESULT_FATAL_ERROR_INITIALIZE_ENGINE_FAILED"
            }
            UpdateCalibrationFailed => {
                "K4A_DEPTH_ENGINE_RESULT_FATAL_ERROR_UPDATE_CALIBRATION_FAILED"
            }
            ProcessPcmFailed => "K4A_DEPTH_ENGINE_RESULT_FATAL_ERROR_PROCESS_PCM_FAILED",
            BinInputFailed => "K4A_DEPTH_ENGINE_RESULT_FATAL_ERROR_BIN_INPUT_FAILED",
            WaitProcessingCompleteFailed => {
                "K4A_DEPTH_ENGINE_RESULT_FATAL_ERROR_WAIT_PROCESSING_COMPLETE_FAILED"
            }
            NullCameraCalibrationPointer => {
                "K4A_DEPTH_ENGINE_RESULT_FATAL_ERROR_NULL_CAMERA_CALIBRATION_POINTER"
            }
            EngineNotLoaded => "K4A_DEPTH_ENGINE_RESULT_FATAL_ERROR_ENGINE_NOT_LOADED",
            GpuOutOfMemory => "K4A_DEPTH_ENGINE_RESULT_FATAL_ERROR_GPU_OUT_OF_MEMORY",
            GpuInvalidParameter => "K4A_DEPTH_ENGINE_RESULT_FATAL_ERROR_GPU_INVALID_PARAMETER",
            GpuInvalidCalibration => "K4A_DEPTH_ENGINE_RESULT_FATAL_ERROR_GPU_INVALID_CALIBRATION",
            GpuFromApi => "K4A_DEPTH_ENGINE_RESULT_FATAL_ERROR_GPU_FROM_API",
            GpuInternal => "K4A_DEPTH_ENGINE_RESULT_FATAL_ERROR_GPU_INTERNAL",
            GpuShaderCompilation => "K4A_DEPTH_ENGINE_RESULT_FATAL_ERROR_GPU_SHADER_COMPILATION",
            GpuOpenglContext => "K4A_DEPTH_ENGINE_RESULT_FATAL_ERROR_GPU_OPENGL_CONTEXT",
            GpuTimeout => "K4A_DEPTH_ENGINE_RESULT_FATAL_ERROR_GPU_TIMEOUT",
            FrameDroppedAsync => "K4A_DEPTH_ENGINE_RESULT_FRAME_DROPPED_ASYNC",
            Unknown(_) => "unknown depth engine result",
        }
    }

    /// A data error (codes 1–5): the frame was bad; the SDK's advice is to retry with the
    /// expected frame data.
    pub fn is_data_error(self) -> bool {
        matches!(self.code(), 1..=5)
    }

    /// A fatal error (codes 101–208): the SDK's advice is to restart the depth engine.
    pub fn is_fatal(self) -> bool {
        matches!(self.code(), 101..=208)
    }

    /// Whether a streaming pipeline drops the frame and carries on (106 and 208, as the SDK).
    pub fn drops_frame(self) -> bool {
        matches!(
            self,
            EngineResult::WaitProcessingCompleteFailed | EngineResult::GpuTimeout
        )
    }

    /// One sentence on what the code means and what to do.
    pub fn meaning(self) -> &'static str {
        use EngineResult::*;
        match self {
            GpuOpenglContext => {
                "OpenGL 4.4 context creation failed; try updating the graphics drivers (fatal: restart the depth engine)"
            }
            UpdateCalibrationFailed => {
                "the engine rejected the calibration block (fatal: restart the depth engine)"
            }
            WaitProcessingCompleteFailed | GpuTimeout => {
                "the GPU has encountered an unrecoverable error; the SDK drops the frame and should be restarted"
            }
            FrameDroppedAsync => "frame dropped (sent only to asynchronous callers)",
            Unknown(_) => "a code the plugin interface does not define",
            r if r.is_data_error() => "data error: retry with the expected frame data",
            _ => "fatal error: restart the depth engine",
        }
    }
}

impl fmt::Display for EngineResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code(),
            self.sdk_name(),
            self.meaning()
        )
    }
}

/// Errors of the depth-engine binding and pipeline.
#[derive(Debug, thiserror::Error)]
pub enum DepthEngineError {
    /// No library could be loaded from any place searched.
    #[error("no depth engine found (tried: {}); {INSTALL_ADVICE}", tried.join("; "))]
    NotFound {
        /// Each place tried, with why it failed.
        tried: Vec<String>,
    },
    /// The library loaded but lacks `k4a_register_plugin`.
    #[error("{path}: not a depth engine (no k4a_register_plugin symbol): {reason}")]
    NoRegisterSymbol {
        /// Library path.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// `k4a_register_plugin` returned false.
    #[error("{path}: k4a_register_plugin refused to register")]
    RegisterRefused {
        /// Library path.
        path: PathBuf,
    },
    /// The plugin table has a NULL function pointer.
    #[error("{path}: plugin function {function} is NULL")]
    MissingFunction {
        /// Library path.
        path: PathBuf,
        /// Field name in `k4a_plugin_t`.
        function: &'static str,
    },
    /// The engine's major version is not the plugin interface's.
    #[error("{path}: depth engine version {version} is not supported (major version must be 2)")]
    UnsupportedVersion {
        /// Library path.
        path: PathBuf,
        /// Version the plugin reported.
        version: crate::types::Version,
    },
    /// An engine call returned a non-zero code.
    #[error("depth engine {call} failed with {result}")]
    Engine {
        /// The plugin function that failed.
        call: &'static str,
        /// Its result.
        result: EngineResult,
    },
    /// `get_output_frame_size` returned 0 (the SDK refuses to start then).
    #[error("depth engine reported an output frame size of 0 for {mode}")]
    ZeroOutputSize {
        /// SDK name of the depth mode.
        mode: &'static str,
    },
    /// The depth mode produces no images.
    #[error("depth engine cannot run in {0}")]
    ModeOff(&'static str),
    /// The engine reported an output image that does not fit the buffer or mode.
    #[error("depth engine output {width}x{height} does not match {mode}")]
    OutputMismatch {
        /// Width the engine reported.
        width: u16,
        /// Height the engine reported.
        height: u16,
        /// SDK name of the depth mode.
        mode: &'static str,
    },
    /// The worker thread could not be started.
    #[error("depth engine thread failed to start: {0}")]
    Thread(String),
    /// A transform-engine input that does not fit the calibration.
    #[error("transform engine: {0}")]
    TransformInput(String),
    /// The headless OpenGL path could not be set up.
    #[error("headless OpenGL: {0}")]
    HeadlessGl(String),
    /// The worker has stopped (after an error or `stop`).
    #[error("depth engine pipeline has stopped")]
    Stopped,
}

impl DepthEngineError {
    /// The engine result code, when the error came from the engine.
    pub fn engine_result(&self) -> Option<EngineResult> {
        match self {
            DepthEngineError::Engine { result, .. } => Some(*result),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_classify() {
        let codes = [
            1, 2, 3, 4, 5, 101, 102, 103, 104, 105, 106, 107, 108, 201, 202, 203, 204, 205, 206,
            207, 208, 301,
        ];
        for c in codes {
            let r = EngineResult::from_code(c);
            assert_eq!(r.code(), c);
            assert!(!matches!(r, EngineResult::Unknown(_)), "{c}");
            assert_eq!(r.is_data_error(), c <= 5, "{c}");
            assert_eq!(r.is_fatal(), (101..=208).contains(&c), "{c}");
            assert_eq!(r.drops_frame(), c == 106 || c == 208, "{c}");
        }
        assert_eq!(EngineResult::from_code(42), EngineResult::Unknown(42));
    }

    #[test]
    fn display_names_code_and_meaning() {
        let e = DepthEngineError::Engine {
            call: "depth_engine_create_and_initialize",
            result: EngineResult::from_code(103),
        };
        let s = e.to_string();
        assert!(s.contains("103"), "{s}");
        assert!(
            s.contains("K4A_DEPTH_ENGINE_RESULT_FATAL_ERROR_UPDATE_CALIBRATION_FAILED"),
            "{s}"
        );
        assert!(s.contains("calibration block"), "{s}");
        assert_eq!(
            EngineResult::from_code(2).to_string(),
            "2 (K4A_DEPTH_ENGINE_RESULT_DATA_ERROR_INVALID_OUTPUT_BUFFER_SIZE): data error: retry with the expected frame data"
        );
    }
}
