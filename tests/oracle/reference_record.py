#!/usr/bin/env python3
"""Writes a recording with Microsoft's libk4arecord 1.4.2 from a JSON description of the inputs, so that
freek4a's writer and Microsoft's can be fed identical inputs and their files compared.

usage: reference_record.py OUT SPEC.json [--die-before-close] [--flush-after N]
       (SPEC may be '-' for standard input, or inline JSON starting with '{')

SPEC (every key optional):
{
 "config": {"color_format": "MJPG", "color_resolution": "720P", "depth_mode": "NFOV_UNBINNED", "fps": 30,
            "depth_delay_usec": 0, "wired_sync_mode": "STANDALONE", "subordinate_delay_usec": 0},
 "imu": true,                      # add the IMU track (also implied by a non-empty imu_samples list)
 "device": {"serial": "000123456789", "color_firmware": "1.6.110", "depth_firmware": "1.6.79",
            "calibration_file": "cal.json"},
 "tags": {"NAME": "value"},        # extra global tags, after the device tags
 "attachments": [{"name": "x.bin", "file": "path"}],
 "captures": [{"color": SRC, "depth": SRC, "ir": SRC}, ...]   # a missing key = no image of that kind
 "capture_series": {"count": N, "start_usec": 1000000, "period_usec": 33333,
                    "color": SRC, "depth": SRC, "ir": SRC}     # alternative to "captures"
 "imu_samples": [{"acc_usec": T, "gyro_usec": T, "acc": [x, y, z], "gyro": [x, y, z]}, ...]
 "imu_series": {"count": N, "start_usec": T, "period_usec": 625}
}
Capture entries carry "timestamp_usec" (all three images) and optionally "color_usec"/"depth_usec"/"ir_usec".
SRC (image bytes): {"file": PATH} | {"pattern": "bytes", "seed": S, "size": N} | {"zeros": true}
  "bytes": byte i of the image of capture number n is (i * 31 + n * 7 + S) mod 256. "size" is needed only
  for MJPG; other formats take the size from the mode (NV12 w*h*3/2, YUY2 w*h*2, BGRA32 w*h*4, 16-bit w*h*2).
"imu_series" sample k: acc_usec = gyro_usec = start + k*period, acc = (0.1 + k*0.001, -0.2, 9.8), gyro =
  (0.01, 0.02 + k*0.0001, -0.03) (as float32).
Device info is written the way k4arecorder does as far as the public API allows: K4A_COLOR_FIRMWARE_VERSION,
K4A_DEPTH_FIRMWARE_VERSION, K4A_DEVICE_SERIAL_NUMBER as tags, then the calibration as attachment
"calibration.json" and the tag K4A_CALIBRATION_FILE. Deviation (reported in "deviations"): without a device
handle, libk4arecord can only write untargeted tags, so K4A_CALIBRATION_FILE has empty Targets where
k4arecorder's targets the attachment's FileUID.

Items are written in timestamp order (captures at their earliest image, IMU samples at acc time). The output is
JSON on stdout: what was written, the UIDs the library drew ("uids": {"tracks": {NAME: UID},
"attachments": {FILE: UID}}, for writers that can be told to reuse them), plus the SDK's log lines. The file is re-recorded (up to 20 times) until every
binary UID the library drew is 8 bytes long, so that layouts do not shift by one byte at random.
--die-before-close: after the last write, wait 3 s for the library's writer thread, then end the process
without flush or close, leaving the file as a killed recorder would.
--flush-after N: call k4a_record_flush after the N-th capture (as an application might mid-recording).
"""
import argparse
import ctypes as C
import json
import mmap
import os
import sys
import time

import sdk as S
import ebml

UID_IDS = {0x73C5, 0x46AE}


def image_bytes(src, n, size):
    if src is None:
        return None
    if "file" in src:
        with open(src["file"], "rb") as f:
            return f.read()
    if src.get("zeros"):
        return bytes(size)
    if src.get("pattern", "bytes") == "bytes":
        size = src.get("size", size)
        seed = int(src.get("seed", 0))
        base = (n * 7 + seed) & 0xFF
        period = bytes(((i * 31 + base) & 0xFF) for i in range(256))
        return (period * (size // 256 + 1))[:size]
    raise ValueError(f"unknown image source {src!r}")


def default_size(fmt, w, h):
    return {"NV12": w * h * 3 // 2, "YUY2": w * h * 2, "BGRA32": w * h * 4, "DEPTH16": w * h * 2,
            "IR16": w * h * 2}.get(fmt, 200_000)


def expand(spec):
    """(captures, imu_samples) as lists of plain dicts with explicit timestamps and sources."""
    caps = []
    if "capture_series" in spec:
        cs = spec["capture_series"]
        for k in range(int(cs["count"])):
            ts = int(cs.get("start_usec", 1_000_000)) + k * int(cs.get("period_usec", 33_333))
            cap = {"timestamp_usec": ts}
            for kind in ("color", "depth", "ir"):
                if kind in cs:
                    cap[kind] = cs[kind]
            caps.append(cap)
    caps += spec.get("captures", [])
    imu = list(spec.get("imu_samples", []))
    if "imu_series" in spec:
        s = spec["imu_series"]
        for k in range(int(s["count"])):
            t = int(s.get("start_usec", 1_000_000)) + k * int(s.get("period_usec", 625))
            imu.append({"acc_usec": t, "gyro_usec": t, "acc": [0.1 + k * 0.001, -0.2, 9.8],
                        "gyro": [0.01, 0.02 + k * 0.0001, -0.03]})
    return caps, imu


def capture_times(cap):
    base = cap.get("timestamp_usec")
    out = {}
    for kind in ("color", "depth", "ir"):
        if kind in cap:
            t = cap.get(f"{kind}_usec", base)
            if t is None:
                raise ValueError(f"capture without a timestamp for {kind}: {cap!r}")
            out[kind] = int(t)
    return out


def uids_full_width(path):
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        for _, el in ebml.walk(buf, 0, len(buf)):
            if el.ident in UID_IDS and el.size != 8:
                return False
            if el.ident == 0x1F43B675:
                break
    return True


def file_uids(path):
    """{"tracks": {Name: TrackUID}, "attachments": {FileName: FileUID}} as the library drew them."""
    out = {"tracks": {}, "attachments": {}}
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        for _, el in ebml.walk(buf, 0, len(buf)):
            if el.ident in (0xAE, 0x61A7):  # TrackEntry, AttachedFile
                fields = {sub.ident: ebml.value_of(sub, buf, len(buf))
                          for sub in ebml.children(buf, el.data_start, el.end(len(buf)), el.ident)}
                if el.ident == 0xAE:
                    out["tracks"][fields.get(0x536E, "?")] = fields.get(0x73C5)
                else:
                    out["attachments"][fields.get(0x466E, "?")] = fields.get(0x46AE)
            if el.ident == 0x1F43B675:
                break
    return out


def record(lib, out_path, spec, die, flush_after):
    cfg_in = spec.get("config", {})
    fmt = cfg_in.get("color_format", "MJPG")
    res = cfg_in.get("color_resolution", "OFF")
    depth = cfg_in.get("depth_mode", "OFF")
    cfg = S.DeviceConfiguration(
        S.IMAGE_FORMATS.index(fmt), S.COLOR_RESOLUTIONS.index(res), S.DEPTH_MODES.index(depth),
        S.FPS_VALUES.index(int(cfg_in.get("fps", 30))), False, int(cfg_in.get("depth_delay_usec", 0)),
        S.SYNC_MODES.index(cfg_in.get("wired_sync_mode", "STANDALONE")),
        int(cfg_in.get("subordinate_delay_usec", 0)), False)
    caps, imu = expand(spec)
    report = {"out": out_path, "deviations": []}
    h = S.handle()
    if lib.rec.k4a_record_create(out_path.encode(), None, cfg, C.byref(h)) != S.RESULT_OK:
        raise RuntimeError("k4a_record_create failed")

    def check(what, r):
        if r != S.RESULT_OK:
            raise RuntimeError(f"{what} failed ({r})")

    dev = spec.get("device")
    if dev:
        for tag, key in (("K4A_COLOR_FIRMWARE_VERSION", "color_firmware"),
                         ("K4A_DEPTH_FIRMWARE_VERSION", "depth_firmware"),
                         ("K4A_DEVICE_SERIAL_NUMBER", "serial")):
            if key in dev:
                check(f"add_tag {tag}", lib.rec.k4a_record_add_tag(h, tag.encode(), str(dev[key]).encode()))
        if "calibration_file" in dev:
            with open(dev["calibration_file"], "rb") as f:
                blob = f.read()
            check("add_attachment calibration.json",
                  lib.rec.k4a_record_add_attachment(h, b"calibration.json", blob, len(blob)))
            check("add_tag K4A_CALIBRATION_FILE",
                  lib.rec.k4a_record_add_tag(h, b"K4A_CALIBRATION_FILE", b"calibration.json"))
            report["deviations"].append("K4A_CALIBRATION_FILE is a global tag (k4arecorder targets the attachment)")
    for name, value in spec.get("tags", {}).items():
        check(f"add_tag {name}", lib.rec.k4a_record_add_tag(h, name.encode(), str(value).encode()))
    for att in spec.get("attachments", []):
        with open(att["file"], "rb") as f:
            blob = f.read()
        check(f"add_attachment {att['name']}", lib.rec.k4a_record_add_attachment(h, att["name"].encode(), blob,
                                                                                    len(blob)))
    if spec.get("imu") or imu:
        check("add_imu_track", lib.rec.k4a_record_add_imu_track(h))
    check("write_header", lib.rec.k4a_record_write_header(h))

    events = []
    for n, cap in enumerate(caps):
        times = capture_times(cap)
        if times:
            events.append((min(times.values()), 0, n))
    for n, s in enumerate(imu):
        events.append((int(s["acc_usec"]), 1, n))
    events.sort()

    sizes = {"color": None, "depth": None, "ir": None}
    if res != "OFF":
        w, hh = S.COLOR_SIZE[res]
        sizes["color"] = (S.IMAGE_FORMATS.index(fmt), w, hh, {"NV12": w, "YUY2": w * 2, "BGRA32": w * 4}.get(fmt, 0),
                          default_size(fmt, w, hh))
    if depth != "OFF":
        w, hh = S.DEPTH_SIZE[depth]
        sizes["depth"] = (S.IMAGE_FORMATS.index("DEPTH16"), w, hh, w * 2, w * hh * 2)
        sizes["ir"] = (S.IMAGE_FORMATS.index("IR16"), w, hh, w * 2, w * hh * 2)

    written_caps = written_imu = 0
    keep_alive = []
    for _, kind_of_event, n in events:
        if kind_of_event == 1:
            s = imu[n]
            sample = S.ImuSample(float("nan"), S.Vec3((C.c_float * 3)(*s["acc"])), int(s["acc_usec"]),
                                 S.Vec3((C.c_float * 3)(*s["gyro"])), int(s.get("gyro_usec", s["acc_usec"])))
            check(f"write_imu_sample {n}", lib.rec.k4a_record_write_imu_sample(h, sample))
            written_imu += 1
            continue
        cap_spec = caps[n]
        times = capture_times(cap_spec)
        cap = S.handle()
        check("capture_create", lib.k4a.k4a_capture_create(C.byref(cap)))
        for kind, ts in times.items():
            if sizes[kind] is None:
                raise ValueError(f"capture {n} has a {kind} image but the configuration has no {kind} stream")
            fmt_i, w, hh, stride, size = sizes[kind]
            data = image_bytes(cap_spec[kind], n, size)
            buf = C.create_string_buffer(data, len(data))
            keep_alive.append(buf)
            img = S.handle()
            check(f"image_create_from_buffer {kind} {n}", lib.k4a.k4a_image_create_from_buffer(
                fmt_i, w, hh, stride, C.cast(buf, C.c_void_p), len(data), None, None, C.byref(img)))
            lib.k4a.k4a_image_set_device_timestamp_usec(img, ts)
            getattr(lib.k4a, f"k4a_capture_set_{kind}_image")(cap, img)
            lib.k4a.k4a_image_release(img)
        check(f"write_capture {n}", lib.rec.k4a_record_write_capture(h, cap))
        lib.k4a.k4a_capture_release(cap)
        keep_alive.clear()  # the library copies the buffers it queues
        written_caps += 1
        if flush_after is not None and written_caps == flush_after:
            check("flush", lib.rec.k4a_record_flush(h))
    report.update(captures_written=written_caps, imu_samples_written=written_imu)
    if die:
        time.sleep(3)
        return report, h
    check("flush", lib.rec.k4a_record_flush(h))
    lib.rec.k4a_record_close(h)
    return report, None


def main():
    ap = argparse.ArgumentParser(description="Write a reference recording with Microsoft's libk4arecord.")
    ap.add_argument("out")
    ap.add_argument("spec", help="JSON file, '-' for standard input, or inline JSON")
    ap.add_argument("--die-before-close", action="store_true")
    ap.add_argument("--flush-after", type=int)
    ap.add_argument("--any-uid-width", action="store_true", help="do not re-record for short UIDs")
    a = ap.parse_args()
    if a.spec == "-":
        spec = json.load(sys.stdin)
    elif a.spec.lstrip().startswith("{"):
        spec = json.loads(a.spec)
    else:
        with open(a.spec) as f:
            spec = json.load(f)
    S.quiet_logging_setup()
    cap_out = S.StdoutCapture()
    report = {"out": a.out, "ok": False}
    code = 1
    try:
        lib = S.Sdk()
        for attempt in range(1, 21):
            if os.path.exists(a.out):
                os.unlink(a.out)
            report, dangling = record(lib, a.out, spec, a.die_before_close, a.flush_after)
            report["attempts"] = attempt
            if dangling is not None or a.any_uid_width or uids_full_width(a.out):
                break
        if dangling is None:
            report["uids"] = file_uids(a.out)
        report["ok"] = True
        code = 0
    except Exception as e:  # the report says what failed
        report["error"] = f"{type(e).__name__}: {e}"
        dangling = None
    finally:
        report["sdk_log"] = cap_out.finish()
    print(json.dumps(report, indent=1), flush=True)
    if a.die_before_close and dangling is not None:
        os._exit(0)
    return code


if __name__ == "__main__":
    sys.exit(main())
