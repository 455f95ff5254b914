#!/usr/bin/env python3
"""A small capture-and-write loop on Microsoft's libk4a + libk4arecord 1.4.2: what k4arecorder
does, without its command line. Run under freek4a-usbfs (the unit is found through usbfs).

  libk4a_record.py OUT COLOR_RESOLUTION COLOR_FORMAT DEPTH_MODE FPS SECONDS IMU(0|1)

Records SECONDS of device time from the first capture, then prints one JSON object:
{"captures": N, "imu_samples": M, "seconds": S}. Exit status 1 when a call fails.
"""
import ctypes as C
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdk  # noqa: E402

p = C.c_void_p
pp = C.POINTER(C.c_void_p)

DEVICE = [
    ("k4a_device_open", [C.c_uint32, pp], C.c_int),
    ("k4a_device_close", [p], None),
    ("k4a_device_start_cameras", [p, C.POINTER(sdk.DeviceConfiguration)], C.c_int),
    ("k4a_device_stop_cameras", [p], None),
    ("k4a_device_start_imu", [p], C.c_int),
    ("k4a_device_stop_imu", [p], None),
    ("k4a_device_get_capture", [p, pp, C.c_int32], C.c_int),
    ("k4a_device_get_imu_sample", [p, C.POINTER(sdk.ImuSample), C.c_int32], C.c_int),
]


def fail(what, r):
    print(json.dumps({"error": what, "result": r}), file=sys.stderr)
    sys.exit(1)


def first_ts(lib, cap):
    for get in (lib.k4a.k4a_capture_get_color_image, lib.k4a.k4a_capture_get_depth_image,
                lib.k4a.k4a_capture_get_ir_image):
        img = get(cap)
        if img:
            ts = lib.k4a.k4a_image_get_device_timestamp_usec(img)
            lib.k4a.k4a_image_release(img)
            return ts
    return None


def main(argv):
    out, res, fmt, depth, fps, seconds, imu = argv
    fps, seconds, imu = int(fps), float(seconds), imu == "1"
    lib = sdk.Sdk()
    for name, args, restype in DEVICE:
        fn = getattr(lib.k4a, name)
        fn.argtypes = args
        fn.restype = restype
    k4a, rec = lib.k4a, lib.rec
    dev = C.c_void_p()
    if k4a.k4a_device_open(0, C.byref(dev)) != 0:
        fail("k4a_device_open", 1)
    cfg = sdk.DeviceConfiguration()
    cfg.color_format = sdk.IMAGE_FORMATS.index(fmt)
    cfg.color_resolution = sdk.COLOR_RESOLUTIONS.index(res)
    cfg.depth_mode = sdk.DEPTH_MODES.index(depth)
    cfg.camera_fps = sdk.FPS_VALUES.index(fps)
    r = k4a.k4a_device_start_cameras(dev, C.byref(cfg))
    if r != 0:
        fail("k4a_device_start_cameras", r)
    if imu and k4a.k4a_device_start_imu(dev) != 0:
        fail("k4a_device_start_imu", 1)
    h = C.c_void_p()
    if rec.k4a_record_create(out.encode(), dev, cfg, C.byref(h)) != 0:
        fail("k4a_record_create", 1)
    if imu and rec.k4a_record_add_imu_track(h) != 0:
        fail("k4a_record_add_imu_track", 1)
    if rec.k4a_record_write_header(h) != 0:
        fail("k4a_record_write_header", 1)
    captures = samples = 0
    start = None
    sample = sdk.ImuSample()
    while True:
        cap = C.c_void_p()
        r = k4a.k4a_device_get_capture(dev, C.byref(cap), 1000)
        if r == 0:
            ts = first_ts(lib, cap)
            if start is None:
                start = ts
            done = ts is not None and ts - start >= seconds * 1e6
            if not done:
                if rec.k4a_record_write_capture(h, cap) != 0:
                    fail("k4a_record_write_capture", 1)
                captures += 1
            k4a.k4a_capture_release(cap)
            if done:
                break
        elif r == 1:
            fail("k4a_device_get_capture", r)
        while imu and k4a.k4a_device_get_imu_sample(dev, C.byref(sample), 0) == 0:
            if rec.k4a_record_write_imu_sample(h, sample) != 0:
                fail("k4a_record_write_imu_sample", 1)
            samples += 1
    if imu:
        k4a.k4a_device_stop_imu(dev)
    k4a.k4a_device_stop_cameras(dev)
    rec.k4a_record_flush(h)
    rec.k4a_record_close(h)
    k4a.k4a_device_close(dev)
    print(json.dumps({"captures": captures, "imu_samples": samples, "seconds": seconds}))


if __name__ == "__main__":
    if len(sys.argv) != 8:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1:])
