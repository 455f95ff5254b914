#!/usr/bin/env python3
"""Microsoft's calibration and transformation functions (libk4a 1.4.2) on inputs from files.

  geometry.py SPEC.json

SPEC: {"calibration": PATH, "cases": [{"depth_mode": "NFOV_UNBINNED", "color_resolution": "720P",
       "ops": [OP, ...]}, ...]}. Inputs and outputs are raw little-endian arrays:

  {"op": "calibration", "out": F}                        k4a_calibration_t (1032 bytes)
  {"op": "2d_to_3d", "source": S, "target": T, "in": F, "out": F}
        in: f32 (u, v, depth_mm) per point; out: f32 (x, y, z, valid)
  {"op": "3d_to_2d", ...}    in: f32 (x, y, z); out: f32 (u, v, valid)
  {"op": "2d_to_2d", ...}    in: f32 (u, v, depth_mm); out: f32 (u, v, valid)
  {"op": "color_2d_to_depth_2d", "in": F, "depth": F, "out": F}
        in: f32 (u, v); depth: u16 depth image; out: f32 (u, v, valid), valid -1 when the call failed
  {"op": "point_cloud", "camera": C, "depth": F, "out": F}       out: i16 (x, y, z) per pixel
  {"op": "depth_to_color", "depth": F, "out": F}                 out: u16 colour-sized depth
  {"op": "color_to_depth", "depth": F, "color": F, "out": F}     color: BGRA; out: BGRA depth-sized
  {"op": "custom", "depth": F, "custom": F, "bits": 8|16, "interpolation": 0|1, "invalid": N,
   "out_depth": F, "out_custom": F}
Any op may have "repeat": N (run N times, keep the last output); the report lists each run's
seconds. Sensors: 0 depth, 1 colour, 2 gyro, 3 accel. Prints one JSON report on stdout; SDK log
lines are kept off stdout.
"""
import ctypes as C
import json
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdk  # noqa: E402

p = C.c_void_p
pp = C.POINTER(C.c_void_p)
CALIBRATION_SIZE = 1032  # sizeof(k4a_calibration_t)
FMT_DEPTH16, FMT_BGRA32, FMT_CUSTOM8, FMT_CUSTOM16, FMT_CUSTOM = 4, 3, 6, 7, 8


class F2(C.Structure):
    _fields_ = [("v", C.c_float * 2)]


class F3(C.Structure):
    _fields_ = [("v", C.c_float * 3)]


def declare(k4a):
    cal = C.c_char * CALIBRATION_SIZE
    calp = C.POINTER(cal)
    ip = C.POINTER(C.c_int)
    table = [
        ("k4a_calibration_get_from_raw", [C.c_char_p, C.c_size_t, C.c_int, C.c_int, calp], C.c_int),
        ("k4a_calibration_2d_to_3d", [calp, C.POINTER(F2), C.c_float, C.c_int, C.c_int, C.POINTER(F3), ip], C.c_int),
        ("k4a_calibration_3d_to_2d", [calp, C.POINTER(F3), C.c_int, C.c_int, C.POINTER(F2), ip], C.c_int),
        ("k4a_calibration_2d_to_2d", [calp, C.POINTER(F2), C.c_float, C.c_int, C.c_int, C.POINTER(F2), ip], C.c_int),
        ("k4a_calibration_color_2d_to_depth_2d", [calp, C.POINTER(F2), p, C.POINTER(F2), ip], C.c_int),
        ("k4a_transformation_create", [calp], p),
        ("k4a_transformation_destroy", [p], None),
        ("k4a_transformation_depth_image_to_point_cloud", [p, p, C.c_int, p], C.c_int),
        ("k4a_transformation_depth_image_to_color_camera", [p, p, p], C.c_int),
        ("k4a_transformation_depth_image_to_color_camera_custom", [p, p, p, p, p, C.c_int, C.c_uint32], C.c_int),
        ("k4a_transformation_color_image_to_depth_camera", [p, p, p, p], C.c_int),
        ("k4a_image_create", [C.c_int, C.c_int, C.c_int, C.c_int, pp], C.c_int),
        ("k4a_image_create_from_buffer", [C.c_int, C.c_int, C.c_int, C.c_int, p, C.c_size_t, p, p, pp], C.c_int),
        ("k4a_image_get_buffer", [p], C.POINTER(C.c_uint8)),
        ("k4a_image_get_size", [p], C.c_size_t),
        ("k4a_image_release", [p], None),
    ]
    for name, args, res in table:
        fn = getattr(k4a, name)
        fn.argtypes = args
        fn.restype = res
    return cal


def image(k4a, fmt, w, h, bpp, data=None):
    img = p()
    if k4a.k4a_image_create(fmt, w, h, w * bpp, C.byref(img)) != 0:
        raise RuntimeError(f"k4a_image_create({fmt}, {w}, {h}) failed")
    if data is not None:
        size = k4a.k4a_image_get_size(img)
        if len(data) != size:
            raise RuntimeError(f"input has {len(data)} bytes, image needs {size}")
        C.memmove(k4a.k4a_image_get_buffer(img), data, size)
    return img


def image_bytes(k4a, img):
    return C.string_at(k4a.k4a_image_get_buffer(img), k4a.k4a_image_get_size(img))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def run_case(k4a, cal_t, raw, case, report):
    dm = sdk.DEPTH_MODES.index(case["depth_mode"])
    cr = sdk.COLOR_RESOLUTIONS.index(case["color_resolution"])
    cal = cal_t()
    if k4a.k4a_calibration_get_from_raw(raw, len(raw), dm, cr, C.byref(cal)) != 0:
        raise RuntimeError(f"k4a_calibration_get_from_raw failed for {case['depth_mode']} {case['color_resolution']}")
    dw, dh = sdk.DEPTH_SIZE.get(case["depth_mode"], (0, 0))
    cw, ch = sdk.COLOR_SIZE.get(case["color_resolution"], (0, 0))
    transformation = None
    out_case = []
    for op in case["ops"]:
        kind = op["op"]
        times = []
        result = {"op": kind}
        for _ in range(int(op.get("repeat", 1))):
            t0 = time.perf_counter()
            if kind == "calibration":
                out = bytes(cal)
            elif kind in ("2d_to_3d", "3d_to_2d", "2d_to_2d"):
                out = points(k4a, cal, kind, op, read(op["in"]))
            elif kind == "color_2d_to_depth_2d":
                # libk4a reads the pixel nearest to a point in the image's last half pixel row
                # from just past the image; two copies of the last row there make that read
                # defined (the nearest row in the image).
                data = read(op["depth"])
                last = data[-2 * dw:]
                padded = C.create_string_buffer(data + last + last, len(data) + 4 * dw)
                depth = p()
                if k4a.k4a_image_create_from_buffer(FMT_DEPTH16, dw, dh, 2 * dw, padded, len(data) + 4 * dw,
                                                    None, None, C.byref(depth)) != 0:
                    raise RuntimeError("k4a_image_create_from_buffer failed")
                out = bytearray()
                q2, r2, valid = F2(), F2(), C.c_int(0)
                for u, v in struct.iter_unpack("<2f", read(op["in"])):
                    q2.v[0], q2.v[1] = u, v
                    r2.v[0] = r2.v[1] = 0.0
                    valid.value = 0
                    rc = k4a.k4a_calibration_color_2d_to_depth_2d(C.byref(cal), C.byref(q2), depth, C.byref(r2),
                                                                   C.byref(valid))
                    out += struct.pack("<3f", r2.v[0], r2.v[1], -1.0 if rc != 0 else float(valid.value))
                k4a.k4a_image_release(depth)
            else:
                if transformation is None:
                    t_create = time.perf_counter()
                    transformation = k4a.k4a_transformation_create(C.byref(cal))
                    if not transformation:
                        raise RuntimeError("k4a_transformation_create failed")
                    result["create_seconds"] = time.perf_counter() - t_create
                    t0 = time.perf_counter()
                out = transform(k4a, transformation, kind, op, (dw, dh), (cw, ch), times)
            if not times or kind not in ("depth_to_color", "point_cloud", "color_to_depth", "custom"):
                times.append(time.perf_counter() - t0)
        if isinstance(out, dict):
            for key, data in out.items():
                with open(op[key], "wb") as f:
                    f.write(data)
        else:
            with open(op["out"], "wb") as f:
                f.write(out)
        result["seconds"] = times
        out_case.append(result)
    if transformation is not None:
        k4a.k4a_transformation_destroy(transformation)
    report.append({"depth_mode": case["depth_mode"], "color_resolution": case["color_resolution"], "ops": out_case})


def points(k4a, cal, kind, op, data):
    src, dst = int(op["source"]), int(op["target"])
    out = bytearray()
    a2, b2, a3, b3, valid = F2(), F2(), F3(), F3(), C.c_int(0)
    if kind == "2d_to_3d":
        for u, v, d in struct.iter_unpack("<3f", data):
            a2.v[0], a2.v[1] = u, v
            b3.v[0] = b3.v[1] = b3.v[2] = 0.0
            rc = k4a.k4a_calibration_2d_to_3d(C.byref(cal), C.byref(a2), d, src, dst, C.byref(b3), C.byref(valid))
            out += struct.pack("<4f", b3.v[0], b3.v[1], b3.v[2], -1.0 if rc != 0 else float(valid.value))
    elif kind == "3d_to_2d":
        for x, y, z in struct.iter_unpack("<3f", data):
            a3.v[0], a3.v[1], a3.v[2] = x, y, z
            b2.v[0] = b2.v[1] = 0.0
            rc = k4a.k4a_calibration_3d_to_2d(C.byref(cal), C.byref(a3), src, dst, C.byref(b2), C.byref(valid))
            out += struct.pack("<3f", b2.v[0], b2.v[1], -1.0 if rc != 0 else float(valid.value))
    else:
        for u, v, d in struct.iter_unpack("<3f", data):
            a2.v[0], a2.v[1] = u, v
            b2.v[0] = b2.v[1] = 0.0
            rc = k4a.k4a_calibration_2d_to_2d(C.byref(cal), C.byref(a2), d, src, dst, C.byref(b2), C.byref(valid))
            out += struct.pack("<3f", b2.v[0], b2.v[1], -1.0 if rc != 0 else float(valid.value))
    return bytes(out)


def transform(k4a, t, kind, op, dsize, csize, times):
    dw, dh = dsize
    cw, ch = csize
    created = []

    def img(*args):
        created.append(image(k4a, *args))
        return created[-1]

    def timed(fn, *args):
        t0 = time.perf_counter()
        rc = fn(*args)
        times.append(time.perf_counter() - t0)
        if rc != 0:
            raise RuntimeError(f"{fn.__name__} failed ({rc})")

    try:
        if kind == "point_cloud":
            cam = int(op["camera"])
            w, h = (dw, dh) if cam == 0 else (cw, ch)
            depth = img(FMT_DEPTH16, w, h, 2, read(op["depth"]))
            xyz = img(FMT_CUSTOM, w, h, 6)
            timed(k4a.k4a_transformation_depth_image_to_point_cloud, t, depth, cam, xyz)
            return image_bytes(k4a, xyz)
        if kind == "depth_to_color":
            depth = img(FMT_DEPTH16, dw, dh, 2, read(op["depth"]))
            out = img(FMT_DEPTH16, cw, ch, 2)
            timed(k4a.k4a_transformation_depth_image_to_color_camera, t, depth, out)
            return image_bytes(k4a, out)
        if kind == "color_to_depth":
            depth = img(FMT_DEPTH16, dw, dh, 2, read(op["depth"]))
            color = img(FMT_BGRA32, cw, ch, 4, read(op["color"]))
            out = img(FMT_BGRA32, dw, dh, 4)
            timed(k4a.k4a_transformation_color_image_to_depth_camera, t, depth, color, out)
            return image_bytes(k4a, out)
        if kind == "custom":
            bpp = int(op["bits"]) // 8
            fmt = FMT_CUSTOM8 if bpp == 1 else FMT_CUSTOM16
            depth = img(FMT_DEPTH16, dw, dh, 2, read(op["depth"]))
            custom = img(fmt, dw, dh, bpp, read(op["custom"]))
            out_d = img(FMT_DEPTH16, cw, ch, 2)
            out_c = img(fmt, cw, ch, bpp)
            timed(k4a.k4a_transformation_depth_image_to_color_camera_custom, t, depth, custom, out_d, out_c,
                  int(op["interpolation"]), int(op["invalid"]))
            return {"out_depth": image_bytes(k4a, out_d), "out_custom": image_bytes(k4a, out_c)}
        raise RuntimeError(f"unknown op {kind}")
    finally:
        for i in created:
            k4a.k4a_image_release(i)


def main():
    spec = json.loads(read(sys.argv[1]))
    sdk.quiet_logging_setup("e")
    capture = sdk.StdoutCapture()
    report = []
    error = None
    try:
        k4a = C.CDLL(sdk.library_paths()["libk4a"])
        cal_t = declare(k4a)
        raw = read(spec["calibration"])
        if not raw.endswith(b"\0"):
            raw += b"\0"
        for case in spec["cases"]:
            run_case(k4a, cal_t, raw, case, report)
    except Exception as e:  # reported, not raised: the caller prints it with the SDK's log
        error = f"{type(e).__name__}: {e}"
    log = capture.finish()
    print(json.dumps({"ok": error is None, "error": error, "cases": report, "sdk_log": log}))
    sys.exit(0 if error is None else 1)


if __name__ == "__main__":
    main()
