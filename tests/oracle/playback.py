#!/usr/bin/env python3
"""Reads a recording with Microsoft's playback library (libk4arecord 1.4.2) and prints what it saw as JSON.

usage: playback.py FILE [--pixel X,Y]... [--list-limit N]

Exit status 0 when the SDK opened FILE, 1 when it refused it ("opened": false, "open_log" says why),
2 on a usage error. Keys (all timestamps are the SDK's device timestamps in microseconds):
  opened, open_log (the SDK's warning/error lines while opening), sdk_log (all its lines, including those
  caused by later queries such as the calibration of a file without one), config (k4a_record_configuration_t, enums as names),
  length_usec, tags (every K4A_* tag named in the file or known to the SDK, value or null),
  other_tags (other tag names found in the file, as the SDK returns them),
  calibration {present, sdk_size (includes the SDK's terminating NUL), size, sha256 (without the NUL)},
  captures, capture_end_result (2 = EOF, 1 = failure),
  images.<color|depth|ir> {count, first_usec, last_usec, monotonic, timestamps_usec (only when count <= list
  limit), sha256s (each image's SHA-256, in the same order and under the same limit), width, height, stride,
  format, size, sizes_constant, first_sha256, all_sha256},
  first_pixels.<depth|ir> {count, nonzero, min, max, at: {"X,Y": value}} (16-bit values as the SDK returns them),
  imu {count, monotonic, first, last, samples (when count <= list limit), sha256 over the samples packed as the
  file's 40-byte records: u64 acc ns, 3 f32 acc, u64 gyro ns, 3 f32 gyro, little-endian}.
"""
import argparse
import ctypes as C
import hashlib
import json
import mmap
import struct
import sys

import sdk as S
import ebml

KNOWN_TAGS = ["K4A_COLOR_TRACK", "K4A_COLOR_MODE", "K4A_DEPTH_TRACK", "K4A_DEPTH_MODE", "K4A_IR_TRACK",
              "K4A_IR_MODE", "K4A_IMU_TRACK", "K4A_IMU_MODE", "K4A_CALIBRATION_FILE", "K4A_DEPTH_DELAY_NS",
              "K4A_WIRED_SYNC_MODE", "K4A_SUBORDINATE_DELAY_NS", "K4A_COLOR_FIRMWARE_VERSION",
              "K4A_DEPTH_FIRMWARE_VERSION", "K4A_DEVICE_SERIAL_NUMBER", "K4A_START_OFFSET_NS"]


def enum_name(table, value):
    return table[value] if 0 <= value < len(table) else f"UNKNOWN({value})"


def get_tag(lib, h, name):
    size = C.c_size_t(0)
    if lib.rec.k4a_playback_get_tag(h, name.encode(), None, C.byref(size)) != S.BUFFER_TOO_SMALL:
        return None
    buf = C.create_string_buffer(size.value)
    if lib.rec.k4a_playback_get_tag(h, name.encode(), buf, C.byref(size)) != S.BUFFER_OK:
        return None
    return buf.value.decode("utf-8", "replace")


def config_json(cfg):
    return {
        "color_format": enum_name(S.IMAGE_FORMATS, cfg.color_format),
        "color_resolution": enum_name(S.COLOR_RESOLUTIONS, cfg.color_resolution),
        "depth_mode": enum_name(S.DEPTH_MODES, cfg.depth_mode),
        "camera_fps": S.FPS_VALUES[cfg.camera_fps] if 0 <= cfg.camera_fps < 3 else f"UNKNOWN({cfg.camera_fps})",
        "color_track_enabled": bool(cfg.color_track_enabled),
        "depth_track_enabled": bool(cfg.depth_track_enabled),
        "ir_track_enabled": bool(cfg.ir_track_enabled),
        "imu_track_enabled": bool(cfg.imu_track_enabled),
        "depth_delay_off_color_usec": cfg.depth_delay_off_color_usec,
        "wired_sync_mode": enum_name(S.SYNC_MODES, cfg.wired_sync_mode),
        "subordinate_delay_off_master_usec": cfg.subordinate_delay_off_master_usec,
        "start_timestamp_offset_usec": cfg.start_timestamp_offset_usec,
    }


class TrackStats:
    def __init__(self):
        self.count = 0
        self.timestamps = []
        self.shas = []
        self.first = self.last = None
        self.monotonic = True
        self.shape = None
        self.sizes = set()
        self.first_sha = None
        self.all_sha = hashlib.sha256()

    def add(self, lib, img, keep_list):
        ts = lib.k4a.k4a_image_get_device_timestamp_usec(img)
        if self.last is not None and ts <= self.last:
            self.monotonic = False
        if self.first is None:
            self.first = ts
        self.last = ts
        if keep_list:
            self.timestamps.append(ts)
        size = lib.k4a.k4a_image_get_size(img)
        self.sizes.add(size)
        data = C.string_at(lib.k4a.k4a_image_get_buffer(img), size) if size else b""
        self.all_sha.update(data)
        if keep_list:
            self.shas.append(hashlib.sha256(data).hexdigest())
        if self.count == 0:
            self.shape = {
                "width": lib.k4a.k4a_image_get_width_pixels(img),
                "height": lib.k4a.k4a_image_get_height_pixels(img),
                "stride": lib.k4a.k4a_image_get_stride_bytes(img),
                "format": enum_name(S.IMAGE_FORMATS, lib.k4a.k4a_image_get_format(img)),
                "size": size,
            }
            self.first_sha = hashlib.sha256(data).hexdigest()
        self.count += 1
        return data

    def json(self, keep_list):
        out = {"count": self.count, "first_usec": self.first, "last_usec": self.last, "monotonic": self.monotonic}
        if keep_list:
            out["timestamps_usec"] = self.timestamps
            out["sha256s"] = self.shas
        if self.shape:
            out.update(self.shape)
            out["sizes_constant"] = len(self.sizes) == 1
            out["min_size"] = min(self.sizes)
            out["max_size"] = max(self.sizes)
            out["first_sha256"] = self.first_sha
            out["all_sha256"] = self.all_sha.hexdigest()
        return out


def pixel_stats(data, width, pixels):
    n = len(data) // 2
    vals = struct.unpack(f"<{n}H", data[:n * 2])
    nz = [v for v in vals if v]
    out = {"count": n, "nonzero": len(nz), "min": min(nz) if nz else None, "max": max(nz) if nz else None}
    at = {}
    for x, y in pixels:
        i = y * width + x
        at[f"{x},{y}"] = vals[i] if 0 <= i < n else None
    out["at"] = at
    return out


def imu_json(s):
    return {"acc_timestamp_usec": s.acc_timestamp_usec, "acc": [float(v) for v in s.acc_sample.xyz],
            "gyro_timestamp_usec": s.gyro_timestamp_usec, "gyro": [float(v) for v in s.gyro_sample.xyz]}


def run(path, pixels, limit):
    out = {"file": path}
    S.quiet_logging_setup()
    cap_out = S.StdoutCapture()
    code = 1
    try:
        lib = S.Sdk()
        h = S.handle()
        opened = lib.rec.k4a_playback_open(path.encode(), C.byref(h)) == S.RESULT_OK
        out["open_log"] = cap_out.peek()
        if not opened:
            out["opened"] = False
        else:
            out["opened"] = True
            code = 0
            read_open_file(lib, h, path, pixels, limit, out)
            lib.rec.k4a_playback_close(h)
    finally:
        out["sdk_log"] = cap_out.finish()
    print(json.dumps(out, indent=1, allow_nan=False, default=str))
    return code


def read_open_file(lib, h, path, pixels, limit, out):
    cfg = S.RecordConfiguration()
    out["config_result"] = lib.rec.k4a_playback_get_record_configuration(h, C.byref(cfg))
    out["config"] = config_json(cfg)
    out["length_usec"] = lib.rec.k4a_playback_get_recording_length_usec(h)

    with open(path, "rb") as f:
        try:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            names = ebml.find_tag_names(buf)
        except ValueError:
            names = []
    k4a_names = list(KNOWN_TAGS) + [n for n in names if n.startswith("K4A_") and n not in KNOWN_TAGS]
    out["tags"] = {n: get_tag(lib, h, n) for n in k4a_names}
    out["other_tags"] = {n: get_tag(lib, h, n) for n in names if not n.startswith("K4A_")}

    size = C.c_size_t(0)
    cal = {"present": False}
    # without an attachment the SDK logs an error for this call; "open_log" stays clean of it
    if lib.rec.k4a_playback_get_raw_calibration(h, None, C.byref(size)) == S.BUFFER_TOO_SMALL:
        buf = C.create_string_buffer(size.value)
        if lib.rec.k4a_playback_get_raw_calibration(h, buf, C.byref(size)) == S.BUFFER_OK:
            raw = buf.raw[:size.value]
            body = raw[:-1] if raw.endswith(b"\0") else raw
            cal = {"present": True, "sdk_size": size.value, "size": len(body),
                   "sha256": hashlib.sha256(body).hexdigest()}
    out["calibration"] = cal

    tracks = {n: TrackStats() for n in ("color", "depth", "ir")}
    getters = {n: getattr(lib.k4a, f"k4a_capture_get_{n}_image") for n in tracks}
    first_pixels = {}
    captures = 0
    keep = []
    while True:
        cap = S.handle()
        r = lib.rec.k4a_playback_get_next_capture(h, C.byref(cap))
        if r != S.STREAM_OK:
            out["capture_end_result"] = r
            break
        captures += 1
        keep_list = captures <= limit
        for n, get in getters.items():
            img = get(cap)
            if img:
                data = tracks[n].add(lib, img, keep_list)
                if n in ("depth", "ir") and n not in first_pixels:
                    first_pixels[n] = pixel_stats(data, lib.k4a.k4a_image_get_width_pixels(img), pixels)
                lib.k4a.k4a_image_release(img)
        lib.k4a.k4a_capture_release(cap)
    out["captures"] = captures
    out["images"] = {n: t.json(captures <= limit) for n, t in tracks.items()}
    out["first_pixels"] = first_pixels

    if not cfg.imu_track_enabled:
        out["imu"] = {"count": 0}
        return
    # IMU: rewind, then read every sample
    out["imu_seek_result"] = lib.rec.k4a_playback_seek_timestamp(h, 0, 0)
    s = S.ImuSample()
    count, prev, mono = 0, None, True
    digest = hashlib.sha256()
    first = last = None
    samples = []
    while lib.rec.k4a_playback_get_next_imu_sample(h, C.byref(s)) == S.STREAM_OK:
        rec = imu_json(s)
        digest.update(struct.pack("<Q3fQ3f", s.acc_timestamp_usec * 1000, *s.acc_sample.xyz,
                                  s.gyro_timestamp_usec * 1000, *s.gyro_sample.xyz))
        if prev is not None and s.acc_timestamp_usec < prev:
            mono = False
        prev = s.acc_timestamp_usec
        if first is None:
            first = rec
        last = rec
        count += 1
        if count <= limit:
            samples.append(rec)
    imu = {"count": count, "monotonic": mono, "first": first, "last": last, "sha256": digest.hexdigest()}
    if count <= limit:
        imu["samples"] = samples
    out["imu"] = imu


def main():
    ap = argparse.ArgumentParser(description="Play a recording back with Microsoft's SDK; print JSON.")
    ap.add_argument("file")
    ap.add_argument("--pixel", action="append", default=[], metavar="X,Y",
                    help="also report the first depth/IR image's value at this pixel (repeatable)")
    ap.add_argument("--list-limit", type=int, default=300,
                    help="list every timestamp / IMU sample when there are at most this many (default 300)")
    a = ap.parse_args()
    pixels = []
    for p in a.pixel:
        x, y = p.split(",")
        pixels.append((int(x), int(y)))
    return run(a.file, pixels, a.list_limit)


if __name__ == "__main__":
    sys.exit(main())
