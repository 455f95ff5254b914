#!/usr/bin/env python3
"""ctypes access to Microsoft's Azure Kinect SDK 1.4.2 (libk4a, libk4arecord) for freek4a's judges.

The libraries come from the pyk4a-bundle 1.5.0 wheel installed by install.sh; they live in
site-packages/pyk4a_bundle.libs/ of the oracle venv. FREEK4A_ORACLE_LIBDIR overrides the folder.
Only public SDK entry points are declared; enum values and struct layouts follow the SDK headers.

`sdk.py --locate` prints `name=path` lines for the libraries (used by install.sh and tests/util.rs).
"""
import ctypes as C
import glob
import os
import sys

# Numeric values of the SDK's enums (k4atypes.h).
IMAGE_FORMATS = ["MJPG", "NV12", "YUY2", "BGRA32", "DEPTH16", "IR16", "CUSTOM8", "CUSTOM16", "CUSTOM"]
COLOR_RESOLUTIONS = ["OFF", "720P", "1080P", "1440P", "1536P", "2160P", "3072P"]
DEPTH_MODES = ["OFF", "NFOV_2X2BINNED", "NFOV_UNBINNED", "WFOV_2X2BINNED", "WFOV_UNBINNED", "PASSIVE_IR"]
FPS_VALUES = [5, 15, 30]  # index = k4a_fps_t
SYNC_MODES = ["STANDALONE", "MASTER", "SUBORDINATE"]

COLOR_SIZE = {"720P": (1280, 720), "1080P": (1920, 1080), "1440P": (2560, 1440), "1536P": (2048, 1536),
              "2160P": (3840, 2160), "3072P": (4096, 3072)}
DEPTH_SIZE = {"NFOV_2X2BINNED": (320, 288), "NFOV_UNBINNED": (640, 576), "WFOV_2X2BINNED": (512, 512),
              "WFOV_UNBINNED": (1024, 1024), "PASSIVE_IR": (1024, 1024)}

RESULT_OK, RESULT_FAILED = 0, 1
STREAM_OK, STREAM_FAILED, STREAM_EOF = 0, 1, 2
BUFFER_OK, BUFFER_FAILED, BUFFER_TOO_SMALL = 0, 1, 2

handle = C.c_void_p


class DeviceConfiguration(C.Structure):
    """k4a_device_configuration_t"""
    _fields_ = [
        ("color_format", C.c_int),
        ("color_resolution", C.c_int),
        ("depth_mode", C.c_int),
        ("camera_fps", C.c_int),
        ("synchronized_images_only", C.c_bool),
        ("depth_delay_off_color_usec", C.c_int32),
        ("wired_sync_mode", C.c_int),
        ("subordinate_delay_off_master_usec", C.c_uint32),
        ("disable_streaming_indicator", C.c_bool),
    ]


class RecordConfiguration(C.Structure):
    """k4a_record_configuration_t"""
    _fields_ = [
        ("color_format", C.c_int),
        ("color_resolution", C.c_int),
        ("depth_mode", C.c_int),
        ("camera_fps", C.c_int),
        ("color_track_enabled", C.c_bool),
        ("depth_track_enabled", C.c_bool),
        ("ir_track_enabled", C.c_bool),
        ("imu_track_enabled", C.c_bool),
        ("depth_delay_off_color_usec", C.c_int32),
        ("wired_sync_mode", C.c_int),
        ("subordinate_delay_off_master_usec", C.c_uint32),
        ("start_timestamp_offset_usec", C.c_uint32),
    ]


class Vec3(C.Structure):
    """k4a_float3_t"""
    _fields_ = [("xyz", C.c_float * 3)]


class ImuSample(C.Structure):
    """k4a_imu_sample_t"""
    _fields_ = [
        ("temperature", C.c_float),
        ("acc_sample", Vec3),
        ("acc_timestamp_usec", C.c_uint64),
        ("gyro_sample", Vec3),
        ("gyro_timestamp_usec", C.c_uint64),
    ]


def library_dir():
    """The folder holding the wheel's libraries, or raise with what was searched."""
    override = os.environ.get("FREEK4A_ORACLE_LIBDIR")
    if override:
        return override
    tried = []
    for entry in sys.path:
        cand = os.path.join(entry, "pyk4a_bundle.libs")
        tried.append(cand)
        if os.path.isdir(cand):
            return cand
    raise RuntimeError("pyk4a_bundle.libs not found (run tests/oracle/install.sh); searched: " + ", ".join(tried))


def library_paths():
    """name -> absolute path of libk4a, libk4arecord and libdepthengine in the wheel."""
    d = library_dir()
    found = {}
    for key, pattern in (("libk4a", "libk4a-*.so*"), ("libk4arecord", "libk4arecord-*.so*"),
                         ("libdepthengine", "libdepthengine.so.2.0")):
        hits = sorted(glob.glob(os.path.join(d, pattern)))
        if not hits:
            raise RuntimeError(f"{pattern} missing in {d}")
        found[key] = os.path.abspath(hits[0])
    return found


class Sdk:
    """The two libraries with their prototypes declared."""

    def __init__(self):
        paths = library_paths()
        # libk4arecord names libk4a by its hashed soname without an rpath: load libk4a first, globally.
        self.k4a = C.CDLL(paths["libk4a"], mode=C.RTLD_GLOBAL)
        self.rec = C.CDLL(paths["libk4arecord"], mode=C.RTLD_GLOBAL)
        self.paths = paths
        p = handle
        pp = C.POINTER(handle)
        size_p = C.POINTER(C.c_size_t)
        k = [
            ("k4a_capture_create", [pp], C.c_int),
            ("k4a_capture_release", [p], None),
            ("k4a_capture_get_color_image", [p], p),
            ("k4a_capture_get_depth_image", [p], p),
            ("k4a_capture_get_ir_image", [p], p),
            ("k4a_capture_set_color_image", [p, p], None),
            ("k4a_capture_set_depth_image", [p, p], None),
            ("k4a_capture_set_ir_image", [p, p], None),
            ("k4a_image_create", [C.c_int, C.c_int, C.c_int, C.c_int, pp], C.c_int),
            ("k4a_image_create_from_buffer",
             [C.c_int, C.c_int, C.c_int, C.c_int, p, C.c_size_t, p, p, pp], C.c_int),
            ("k4a_image_get_buffer", [p], C.POINTER(C.c_uint8)),
            ("k4a_image_get_size", [p], C.c_size_t),
            ("k4a_image_get_format", [p], C.c_int),
            ("k4a_image_get_width_pixels", [p], C.c_int),
            ("k4a_image_get_height_pixels", [p], C.c_int),
            ("k4a_image_get_stride_bytes", [p], C.c_int),
            ("k4a_image_get_device_timestamp_usec", [p], C.c_uint64),
            ("k4a_image_set_device_timestamp_usec", [p, C.c_uint64], None),
            ("k4a_image_release", [p], None),
        ]
        r = [
            ("k4a_record_create", [C.c_char_p, p, DeviceConfiguration, pp], C.c_int),
            ("k4a_record_add_tag", [p, C.c_char_p, C.c_char_p], C.c_int),
            ("k4a_record_add_imu_track", [p], C.c_int),
            ("k4a_record_add_attachment", [p, C.c_char_p, C.c_char_p, C.c_size_t], C.c_int),
            ("k4a_record_write_header", [p], C.c_int),
            ("k4a_record_write_capture", [p, p], C.c_int),
            ("k4a_record_write_imu_sample", [p, ImuSample], C.c_int),
            ("k4a_record_flush", [p], C.c_int),
            ("k4a_record_close", [p], None),
            ("k4a_playback_open", [C.c_char_p, pp], C.c_int),
            ("k4a_playback_close", [p], None),
            ("k4a_playback_get_raw_calibration", [p, C.c_char_p, size_p], C.c_int),
            ("k4a_playback_get_record_configuration", [p, C.POINTER(RecordConfiguration)], C.c_int),
            ("k4a_playback_get_tag", [p, C.c_char_p, C.c_char_p, size_p], C.c_int),
            ("k4a_playback_get_next_capture", [p, pp], C.c_int),
            ("k4a_playback_get_next_imu_sample", [p, C.POINTER(ImuSample)], C.c_int),
            ("k4a_playback_seek_timestamp", [p, C.c_int64, C.c_int], C.c_int),
            ("k4a_playback_get_recording_length_usec", [p], C.c_uint64),
        ]
        for lib, table in ((self.k4a, k), (self.rec, r)):
            for name, args, res in table:
                fn = getattr(lib, name)
                fn.argtypes = args
                fn.restype = res


class StdoutCapture:
    """Collects what the SDK's logger prints to fd 1 so stdout stays pure JSON."""

    def __init__(self):
        import tempfile
        self._tmp = tempfile.TemporaryFile()
        sys.stdout.flush()
        self._saved = os.dup(1)
        os.dup2(self._tmp.fileno(), 1)

    def peek(self):
        """The lines captured so far (fd 1 stays redirected)."""
        sys.stdout.flush()
        self._tmp.seek(0)
        text = self._tmp.read().decode("utf-8", "replace")
        self._tmp.seek(0, 2)
        return [line for line in text.splitlines() if line.strip()]

    def finish(self):
        """Restore fd 1 and return the captured lines."""
        sys.stdout.flush()
        os.dup2(self._saved, 1)
        os.close(self._saved)
        self._tmp.seek(0)
        text = self._tmp.read().decode("utf-8", "replace")
        self._tmp.close()
        return [line for line in text.splitlines() if line.strip()]


def quiet_logging_setup(level="w"):
    """Ask the SDK to log warnings and errors to stdout (which StdoutCapture redirects)."""
    os.environ["K4A_ENABLE_LOG_TO_STDOUT"] = "1"
    os.environ.setdefault("K4A_LOG_LEVEL", level)


if __name__ == "__main__":
    if sys.argv[1:] == ["--locate"]:
        paths = library_paths()
        print(f"python={sys.executable}")
        print(f"libdir={library_dir()}")
        for key in ("libk4a", "libk4arecord", "libdepthengine"):
            print(f"{key}={paths[key]}")
        sys.exit(0)
    print(__doc__)
    sys.exit(2)
