#!/usr/bin/env python3
"""libk4arecord side of benches/writer.rs: writes the same synthetic recording as the Rust side
(2160p MJPG + NFOV_UNBINNED depth/IR at 30 fps + 1600 Hz IMU) with Microsoft's library.

usage: sdk_write.py OUT FRAMES MJPG_BYTES
Prints one JSON line: seconds (create .. close, payload buffers prepared beforehand), bytes,
peak_rss_kib (ru_maxrss of this process) and baseline_rss_kib (before the recording started).
"""
import ctypes as C
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "oracle"))
import sdk as S  # noqa: E402


def pattern(n, seed):
    period = bytes(((i * 31 + seed) & 0xFF) for i in range(256))
    return (period * (n // 256 + 1))[:n]


def main():
    out, frames, mjpg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    lib = S.Sdk()
    color = C.create_string_buffer(pattern(mjpg, 1), mjpg)
    depth_n = 640 * 576 * 2
    depth = C.create_string_buffer(pattern(depth_n, 2), depth_n)
    ir = C.create_string_buffer(pattern(depth_n, 3), depth_n)
    cfg = S.DeviceConfiguration(S.IMAGE_FORMATS.index("MJPG"), S.COLOR_RESOLUTIONS.index("2160P"),
                                S.DEPTH_MODES.index("NFOV_UNBINNED"), S.FPS_VALUES.index(30), False, 0, 0, 0, False)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    h = S.handle()
    assert lib.rec.k4a_record_create(out.encode(), None, cfg, C.byref(h)) == 0
    assert lib.rec.k4a_record_add_imu_track(h) == 0
    assert lib.rec.k4a_record_write_header(h) == 0
    acc = S.Vec3((C.c_float * 3)(0.1, -0.2, 9.8))
    gyro = S.Vec3((C.c_float * 3)(0.01, 0.02, -0.03))
    for n in range(frames):
        ts = 1_000_000 + n * 33_333
        cap = S.handle()
        lib.k4a.k4a_capture_create(C.byref(cap))
        for kind, fmt, buf, size, w, hh, stride in (
                ("color", "MJPG", color, mjpg, 3840, 2160, 0),
                ("depth", "DEPTH16", depth, depth_n, 640, 576, 1280),
                ("ir", "IR16", ir, depth_n, 640, 576, 1280)):
            img = S.handle()
            lib.k4a.k4a_image_create_from_buffer(S.IMAGE_FORMATS.index(fmt), w, hh, stride, C.cast(buf, C.c_void_p),
                                                 size, None, None, C.byref(img))
            lib.k4a.k4a_image_set_device_timestamp_usec(img, ts)
            getattr(lib.k4a, f"k4a_capture_set_{kind}_image")(cap, img)
            lib.k4a.k4a_image_release(img)
        assert lib.rec.k4a_record_write_capture(h, cap) == 0
        lib.k4a.k4a_capture_release(cap)
        for j in range(53):
            t = ts + 100 + j * 625
            lib.rec.k4a_record_write_imu_sample(h, S.ImuSample(float("nan"), acc, t, gyro, t))
    assert lib.rec.k4a_record_flush(h) == 0
    lib.rec.k4a_record_close(h)
    secs = time.perf_counter() - t0
    print(json.dumps({"seconds": secs, "bytes": os.path.getsize(out),
                      "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "baseline_rss_kib": baseline}))


if __name__ == "__main__":
    main()
