#!/usr/bin/env python3
"""Inputs for the transform-engine tests, made by Microsoft's libk4a 1.4.2, and its own result.

    transform.py RECORDING OUTDIR [--sdk-transform]

From the recording's calibration attachment and first depth image, writes into OUTDIR:
  calibration.bin  the transform engine's calibration without the tables (352 bytes: depth camera,
                   colour camera, depth->colour and colour->depth extrinsics, as
                   k4a_calibration_get_from_raw makes them for the recording's modes)
  xy_tables.bin    the depth camera's x table then y table (float32), computed like the SDK's
                   transformation_init_xy_tables: k4a_calibration_2d_to_3d of every pixel at depth 1,
                   x = NaN and y = 0 where the pixel is not valid
  depth.bin        the first depth image (DEPTH16)
  sdk_depth_to_color.bin  (with --sdk-transform) k4a_transformation_depth_image_to_color_camera of
                   that image: libk4a's own GPU path (it needs an OpenGL context: X, or the headless
                   library as LD_PRELOAD)
and prints a JSON summary on stdout.
"""
import ctypes as C
import json
import os
import sys

import sdk

CAL_SIZE = 1032  # k4a_calibration_t: 2 cameras of 128 bytes, 4x4 extrinsics of 48, two enums


class Float2(C.Structure):
    _fields_ = [("x", C.c_float), ("y", C.c_float)]


class Float3(C.Structure):
    _fields_ = [("x", C.c_float), ("y", C.c_float), ("z", C.c_float)]


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    recording, outdir = argv[1], argv[2]
    want_sdk = "--sdk-transform" in argv[3:]
    os.makedirs(outdir, exist_ok=True)
    capture_out = sdk.StdoutCapture()
    s = sdk.Sdk()
    k4a, rec = s.k4a, s.rec
    p = C.c_void_p
    k4a.k4a_calibration_get_from_raw.argtypes = [C.c_char_p, C.c_size_t, C.c_int, C.c_int, p]
    k4a.k4a_calibration_get_from_raw.restype = C.c_int
    k4a.k4a_calibration_2d_to_3d.argtypes = [p, C.POINTER(Float2), C.c_float, C.c_int, C.c_int,
                                             C.POINTER(Float3), C.POINTER(C.c_int)]
    k4a.k4a_calibration_2d_to_3d.restype = C.c_int
    k4a.k4a_transformation_create.argtypes = [p]
    k4a.k4a_transformation_create.restype = p
    k4a.k4a_transformation_destroy.argtypes = [p]
    k4a.k4a_transformation_destroy.restype = None
    k4a.k4a_transformation_depth_image_to_color_camera.argtypes = [p, p, p]
    k4a.k4a_transformation_depth_image_to_color_camera.restype = C.c_int

    pb = p()
    if rec.k4a_playback_open(recording.encode(), C.byref(pb)) != sdk.RESULT_OK:
        raise SystemExit(f"cannot open {recording}")
    size = C.c_size_t(0)
    rec.k4a_playback_get_raw_calibration(pb, None, C.byref(size))
    raw = C.create_string_buffer(size.value)
    if rec.k4a_playback_get_raw_calibration(pb, raw, C.byref(size)) != sdk.BUFFER_OK:
        raise SystemExit("no calibration in the recording")
    cfg = sdk.RecordConfiguration()
    rec.k4a_playback_get_record_configuration(pb, C.byref(cfg))
    cap = p()
    if rec.k4a_playback_get_next_capture(pb, C.byref(cap)) != sdk.STREAM_OK:
        raise SystemExit("no capture in the recording")
    depth_img = k4a.k4a_capture_get_depth_image(cap)
    if not depth_img:
        raise SystemExit("the first capture has no depth image")
    dw = k4a.k4a_image_get_width_pixels(depth_img)
    dh = k4a.k4a_image_get_height_pixels(depth_img)
    depth = C.string_at(k4a.k4a_image_get_buffer(depth_img), k4a.k4a_image_get_size(depth_img))

    cal = C.create_string_buffer(CAL_SIZE)
    if k4a.k4a_calibration_get_from_raw(raw, size.value, cfg.depth_mode, cfg.color_resolution,
                                        cal) != sdk.RESULT_OK:
        raise SystemExit("k4a_calibration_get_from_raw failed")
    b = cal.raw
    depth_cam, color_cam = b[0:128], b[128:256]
    extr = lambda src, dst: b[256 + (src * 4 + dst) * 48: 256 + (src * 4 + dst + 1) * 48]
    with open(os.path.join(outdir, "calibration.bin"), "wb") as f:
        f.write(depth_cam + color_cam + extr(0, 1) + extr(1, 0))
    cw = int.from_bytes(color_cam[116:120], "little")
    ch = int.from_bytes(color_cam[120:124], "little")

    xs = (C.c_float * (dw * dh))()
    ys = (C.c_float * (dw * dh))()
    pt, out, valid = Float2(), Float3(), C.c_int(0)
    nan = float("nan")
    invalid = 0
    f2d = k4a.k4a_calibration_2d_to_3d
    for v in range(dh):
        pt.y = v
        for u in range(dw):
            pt.x = u
            i = v * dw + u
            if f2d(cal, C.byref(pt), 1.0, 0, 0, C.byref(out), C.byref(valid)) != sdk.RESULT_OK:
                raise SystemExit("k4a_calibration_2d_to_3d failed")
            if valid.value:
                xs[i], ys[i] = out.x, out.y
            else:
                xs[i], ys[i] = nan, 0.0
                invalid += 1
    with open(os.path.join(outdir, "xy_tables.bin"), "wb") as f:
        f.write(bytes(xs) + bytes(ys))
    with open(os.path.join(outdir, "depth.bin"), "wb") as f:
        f.write(depth)

    summary = {"depth": [dw, dh], "color": [cw, ch], "invalid_table_pixels": invalid,
               "depth_mode": sdk.DEPTH_MODES[cfg.depth_mode],
               "color_resolution": sdk.COLOR_RESOLUTIONS[cfg.color_resolution]}
    if want_sdk:
        t = k4a.k4a_transformation_create(cal)
        if not t:
            summary["sdk_transform"] = "k4a_transformation_create failed"
        else:
            dst = p()
            k4a.k4a_image_create(4, cw, ch, cw * 2, C.byref(dst))  # DEPTH16
            r = k4a.k4a_transformation_depth_image_to_color_camera(t, depth_img, dst)
            if r == sdk.RESULT_OK:
                data = C.string_at(k4a.k4a_image_get_buffer(dst), k4a.k4a_image_get_size(dst))
                with open(os.path.join(outdir, "sdk_depth_to_color.bin"), "wb") as f:
                    f.write(data)
                summary["sdk_transform"] = "ok"
            else:
                summary["sdk_transform"] = f"k4a_transformation_depth_image_to_color_camera returned {r}"
            k4a.k4a_image_release(dst)
            k4a.k4a_transformation_destroy(t)
    k4a.k4a_image_release(depth_img)
    k4a.k4a_capture_release(cap)
    rec.k4a_playback_close(pb)
    summary["sdk_log"] = capture_out.finish()[-8:]
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
