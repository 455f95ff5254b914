#!/usr/bin/env python3
"""Microsoft's libk4a 1.4.2 as a client of emulated units, through ctypes.

Run under freek4a-usbfs (tools/usbfs), which shows emulated units as USB devices through
Linux's usbfs interface; libk4a then finds the emulated units through its own (static)
libusb. Prints one JSON object on stdout; libk4a's own log lines are kept off stdout.

  libk4a_client.py info
  libk4a_client.py imu COUNT
  libk4a_client.py color RESOLUTION FORMAT FPS COUNT OUTDIR   (frames written as OUTDIR/N.bin)
  libk4a_client.py controls [NAME=MODE:VALUE ...]   (then reads every colour control again)
  libk4a_client.py depth MODE FPS
"""
import ctypes as C
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdk  # noqa: E402

p = C.c_void_p
pp = C.POINTER(C.c_void_p)
size_p = C.POINTER(C.c_size_t)


class Version(C.Structure):
    """k4a_version_t"""
    _fields_ = [("major", C.c_uint32), ("minor", C.c_uint32), ("iteration", C.c_uint32)]


class HardwareVersion(C.Structure):
    """k4a_hardware_version_t"""
    _fields_ = [("rgb", Version), ("depth", Version), ("audio", Version), ("depth_sensor", Version),
                ("firmware_build", C.c_int), ("firmware_signature", C.c_int)]


DEVICE_FUNCTIONS = [
    ("k4a_device_get_installed_count", [], C.c_uint32),
    ("k4a_device_open", [C.c_uint32, pp], C.c_int),
    ("k4a_device_close", [p], None),
    ("k4a_device_get_serialnum", [p, C.c_char_p, size_p], C.c_int),
    ("k4a_device_get_version", [p, C.POINTER(HardwareVersion)], C.c_int),
    ("k4a_device_get_raw_calibration", [p, C.c_char_p, size_p], C.c_int),
    ("k4a_device_start_cameras", [p, C.POINTER(sdk.DeviceConfiguration)], C.c_int),
    ("k4a_device_stop_cameras", [p], None),
    ("k4a_device_start_imu", [p], C.c_int),
    ("k4a_device_stop_imu", [p], None),
    ("k4a_device_get_capture", [p, pp, C.c_int32], C.c_int),
    ("k4a_device_get_imu_sample", [p, C.POINTER(sdk.ImuSample), C.c_int32], C.c_int),
    ("k4a_capture_release", [p], None),
    ("k4a_capture_get_color_image", [p], p),
    ("k4a_image_get_buffer", [p], C.POINTER(C.c_uint8)),
    ("k4a_image_get_size", [p], C.c_size_t),
    ("k4a_image_get_format", [p], C.c_int),
    ("k4a_image_get_width_pixels", [p], C.c_int),
    ("k4a_image_get_height_pixels", [p], C.c_int),
    ("k4a_image_get_stride_bytes", [p], C.c_int),
    ("k4a_image_get_device_timestamp_usec", [p], C.c_uint64),
    ("k4a_image_release", [p], None),
    ("k4a_image_get_exposure_usec", [p], C.c_uint64),
    ("k4a_image_get_white_balance", [p], C.c_uint32),
    ("k4a_image_get_iso_speed", [p], C.c_uint32),
    ("k4a_image_get_system_timestamp_nsec", [p], C.c_uint64),
    ("k4a_device_get_color_control_capabilities",
     [p, C.c_int, C.POINTER(C.c_bool), C.POINTER(C.c_int32), C.POINTER(C.c_int32), C.POINTER(C.c_int32),
      C.POINTER(C.c_int32), C.POINTER(C.c_int)], C.c_int),
    ("k4a_device_get_color_control", [p, C.c_int, C.POINTER(C.c_int), C.POINTER(C.c_int32)], C.c_int),
    ("k4a_device_set_color_control", [p, C.c_int, C.c_int, C.c_int32], C.c_int),
    ("k4a_device_get_sync_jack", [p, C.POINTER(C.c_bool), C.POINTER(C.c_bool)], C.c_int),
]

# k4a_color_control_command_t, in enum order.
CONTROLS = ["EXPOSURE_TIME_ABSOLUTE", "AUTO_EXPOSURE_PRIORITY", "BRIGHTNESS", "CONTRAST", "SATURATION",
            "SHARPNESS", "WHITEBALANCE", "BACKLIGHT_COMPENSATION", "GAIN", "POWERLINE_FREQUENCY"]
MODES = ["AUTO", "MANUAL"]


def load():
    path = sdk.library_paths()["libk4a"]
    lib = C.CDLL(path, mode=C.RTLD_GLOBAL)
    for name, args, res in DEVICE_FUNCTIONS:
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = res
    return lib


def version(v):
    return [v.major, v.minor, v.iteration]


def open_device(k4a):
    dev = C.c_void_p()
    r = k4a.k4a_device_open(0, C.byref(dev))
    if r != 0:
        raise SystemExit(json.dumps({"error": "k4a_device_open failed", "result": r}))
    return dev


def cmd_info(k4a):
    out = {"installed_count": k4a.k4a_device_get_installed_count()}
    if out["installed_count"] == 0:
        return out
    dev = open_device(k4a)
    size = C.c_size_t(0)
    k4a.k4a_device_get_serialnum(dev, None, C.byref(size))
    buf = C.create_string_buffer(size.value)
    out["serial_result"] = k4a.k4a_device_get_serialnum(dev, buf, C.byref(size))
    out["serial"] = buf.value.decode("ascii", "replace")
    hw = HardwareVersion()
    out["version_result"] = k4a.k4a_device_get_version(dev, C.byref(hw))
    out["rgb"], out["depth"], out["audio"] = version(hw.rgb), version(hw.depth), version(hw.audio)
    out["depth_sensor"] = version(hw.depth_sensor)
    out["firmware_build"], out["firmware_signature"] = hw.firmware_build, hw.firmware_signature
    size = C.c_size_t(0)
    k4a.k4a_device_get_raw_calibration(dev, None, C.byref(size))
    cal = C.create_string_buffer(size.value)
    out["calibration_result"] = k4a.k4a_device_get_raw_calibration(dev, cal, C.byref(size))
    out["calibration"] = cal.raw[:size.value].decode("utf-8", "replace")
    k4a.k4a_device_close(dev)
    return out


def config(color_res="OFF", color_fmt="MJPG", depth="OFF", fps=30):
    c = sdk.DeviceConfiguration()
    c.color_format = sdk.IMAGE_FORMATS.index(color_fmt)
    c.color_resolution = sdk.COLOR_RESOLUTIONS.index(color_res)
    c.depth_mode = sdk.DEPTH_MODES.index(depth)
    c.camera_fps = sdk.FPS_VALUES.index(fps)
    c.synchronized_images_only = False
    c.wired_sync_mode = 0
    return c


def cmd_imu(k4a, count):
    dev = open_device(k4a)
    c = config("720P", "MJPG")
    out = {"start_cameras": k4a.k4a_device_start_cameras(dev, C.byref(c))}
    out["start_imu"] = k4a.k4a_device_start_imu(dev)
    samples = []
    s = sdk.ImuSample()
    while len(samples) < count:
        r = k4a.k4a_device_get_imu_sample(dev, C.byref(s), 2000)
        if r != 0:
            out["get_imu_result"] = r
            break
        samples.append({"temperature": s.temperature, "acc": list(s.acc_sample.xyz),
                        "acc_ts": s.acc_timestamp_usec, "gyro": list(s.gyro_sample.xyz),
                        "gyro_ts": s.gyro_timestamp_usec})
    k4a.k4a_device_stop_imu(dev)
    k4a.k4a_device_stop_cameras(dev)
    k4a.k4a_device_close(dev)
    out["samples"] = samples
    return out


def cmd_color(k4a, res, fmt, fps, count, outdir):
    dev = open_device(k4a)
    c = config(res, fmt, "OFF", fps)
    out = {"start_cameras": k4a.k4a_device_start_cameras(dev, C.byref(c))}
    frames = []
    cap = C.c_void_p()
    while out["start_cameras"] == 0 and len(frames) < count:
        r = k4a.k4a_device_get_capture(dev, C.byref(cap), 5000)
        if r != 0:
            out["get_capture_result"] = r
            break
        img = k4a.k4a_capture_get_color_image(cap)
        if img:
            n = k4a.k4a_image_get_size(img)
            data = C.string_at(k4a.k4a_image_get_buffer(img), n)
            path = os.path.join(outdir, f"{len(frames)}.bin")
            with open(path, "wb") as f:
                f.write(data)
            frames.append({"size": n, "ts": k4a.k4a_image_get_device_timestamp_usec(img),
                           "width": k4a.k4a_image_get_width_pixels(img),
                           "height": k4a.k4a_image_get_height_pixels(img),
                           "stride": k4a.k4a_image_get_stride_bytes(img),
                           "format": sdk.IMAGE_FORMATS[k4a.k4a_image_get_format(img)], "path": path,
                           "exposure_usec": k4a.k4a_image_get_exposure_usec(img),
                           "white_balance": k4a.k4a_image_get_white_balance(img),
                           "iso_speed": k4a.k4a_image_get_iso_speed(img),
                           "system_ns": k4a.k4a_image_get_system_timestamp_nsec(img)})
            k4a.k4a_image_release(img)
        k4a.k4a_capture_release(cap)
    k4a.k4a_device_stop_cameras(dev)
    k4a.k4a_device_close(dev)
    out["frames"] = frames
    return out


def read_controls(k4a, dev):
    out = {}
    for i, name in enumerate(CONTROLS):
        mode, value = C.c_int(), C.c_int32()
        r = k4a.k4a_device_get_color_control(dev, i, C.byref(mode), C.byref(value))
        out[name] = {"result": r, "mode": MODES[mode.value] if r == 0 else None, "value": value.value}
    return out


def cmd_controls(k4a, sets):
    """Reads every control and its capabilities, applies `sets` (NAME=MODE:VALUE) in order, reads again."""
    dev = open_device(k4a)
    caps = {}
    for i, name in enumerate(CONTROLS):
        auto, lo, hi, step, default, mode = (C.c_bool(), C.c_int32(), C.c_int32(), C.c_int32(), C.c_int32(),
                                             C.c_int())
        r = k4a.k4a_device_get_color_control_capabilities(dev, i, C.byref(auto), C.byref(lo), C.byref(hi),
                                                          C.byref(step), C.byref(default), C.byref(mode))
        caps[name] = {"result": r, "supports_auto": auto.value, "min": lo.value, "max": hi.value,
                      "step": step.value, "default": default.value,
                      "default_mode": MODES[mode.value] if r == 0 else None}
    out = {"capabilities": caps, "before": read_controls(k4a, dev), "sets": []}
    for item in sets:
        name, rest = item.split("=")
        mode, value = rest.split(":")
        r = k4a.k4a_device_set_color_control(dev, CONTROLS.index(name), MODES.index(mode), int(value))
        out["sets"].append({"control": name, "result": r})
    out["after"] = read_controls(k4a, dev)
    sync_in, sync_out = C.c_bool(), C.c_bool()
    out["sync_jack_result"] = k4a.k4a_device_get_sync_jack(dev, C.byref(sync_in), C.byref(sync_out))
    out["sync_in"], out["sync_out"] = sync_in.value, sync_out.value
    k4a.k4a_device_close(dev)
    return out


def cmd_depth(k4a, mode, fps):
    dev = open_device(k4a)
    c = config("OFF", "MJPG", mode, fps)
    out = {"start_cameras": k4a.k4a_device_start_cameras(dev, C.byref(c))}
    if out["start_cameras"] == 0:
        cap = C.c_void_p()
        out["get_capture_result"] = k4a.k4a_device_get_capture(dev, C.byref(cap), 5000)
        if out["get_capture_result"] == 0:
            k4a.k4a_capture_release(cap)
        k4a.k4a_device_stop_cameras(dev)
    k4a.k4a_device_close(dev)
    return out


def main(argv):
    # libk4a logs to stdout when asked to; keep the JSON on a descriptor of its own.
    saved = os.dup(1)
    os.dup2(2, 1)
    k4a = load()
    cmd = argv[1] if len(argv) > 1 else "info"
    if cmd == "info":
        out = cmd_info(k4a)
    elif cmd == "imu":
        out = cmd_imu(k4a, int(argv[2]))
    elif cmd == "color":
        out = cmd_color(k4a, argv[2], argv[3], int(argv[4]), int(argv[5]), argv[6])
    elif cmd == "controls":
        out = cmd_controls(k4a, argv[2:])
    elif cmd == "depth":
        out = cmd_depth(k4a, argv[2], int(argv[3]))
    else:
        raise SystemExit(f"unknown command {cmd}")
    sys.stdout.flush()
    # fd 1 stays on stderr: libk4a keeps logging while it is torn down at exit.
    with os.fdopen(saved, "w") as f:
        f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main(sys.argv)
