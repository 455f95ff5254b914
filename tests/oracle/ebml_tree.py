#!/usr/bin/env python3
"""Prints the EBML element tree of a Matroska file as normalised text, one element per line.

usage: ebml_tree.py FILE [--mask] [--drop-tag-prefix PREFIX]... [--absolute]

Line format:  <offset> <indent><Name> [<id hex>] sf=<size-field bytes> size=<data bytes>[ = <value>]
  offset   relative to the start of the parent's data (Segment children: the Matroska "segment position");
           with --absolute, from the start of the file.
  value    numbers and strings for leaves; blocks as track/timecode/flags/frames/payload length/sha256 prefix;
           binaries as length + sha256 prefix (CodecPrivate, SeekID and CRC-32 in hex; Void: no value).
--mask replaces values that legitimately differ between two writers of the same input with '*':
  UIDs (TrackUID, FileUID, TagTrackUID, TagAttachmentUID, SegmentUID, values of K4A_*_TRACK tags), DateUTC,
  MuxingApp, WritingApp, and CRC-32 values. Where a masked value's length may vary (app names, UIDs written as
  decimal tag values; binary UIDs keep their printed size, both writers should use 8 bytes), the sizes of its element and of every enclosing master, and the offsets of later siblings, print as '*';
  a Void following a '*' offset is assumed to absorb the difference, so the sibling after it prints normally.
--drop-tag-prefix P omits Tag elements whose TagName starts with P (treated like a length change).
"""
import argparse
import hashlib
import mmap
import sys

import ebml

UID_IDS = {0x73C5, 0x46AE, 0x63C5, 0x63C6, 0x73A4}
APP_IDS = {0x4D80, 0x5741}
VOID, TAG, TAGNAME, TAGSTRING, SIMPLETAG = 0xEC, 0x7373, 0x45A3, 0x4487, 0x67C8


def short_hash(data):
    return hashlib.sha256(data).hexdigest()[:16]


def block_text(buf, el, limit):
    data = bytes(buf[el.data_start:el.end(limit)])
    got = ebml.read_vint(data, 0, len(data), False)
    if got is None or len(data) < got[1] + 3:
        return f"len={len(data)} (bad block header)"
    track, n = got
    timecode = int.from_bytes(data[n:n + 2], "big", signed=True)
    flags = data[n + 2]
    frames = 1
    head = n + 3
    if flags & 0x06:
        frames = data[head] + 1 if head < len(data) else 0
        head += 1
    payload = data[head:]
    return (f"track={track} tc={timecode} flags=0x{flags:02x} frames={frames} payload={len(payload)} "
            f"sha={short_hash(payload)}")


def tag_name_of(buf, tag_el, limit):
    """The first TagName inside a Tag element."""
    for _, el in ebml.walk(buf, tag_el.data_start, tag_el.end(limit), 0, TAG):
        if el.ident == TAGNAME:
            return ebml.value_of(el, buf, limit)
    return None


class Dumper:
    def __init__(self, buf, mask, drop_prefixes, absolute):
        self.buf, self.mask, self.drop, self.absolute = buf, mask, drop_prefixes, absolute
        self.limit = len(buf)
        self.lines = []

    def leaf_value(self, el, masked_tag_value):
        """(text, masked, length_may_vary)"""
        kind, ident = el.kind, el.ident
        buf, limit = self.buf, self.limit
        if self.mask:
            if ident in UID_IDS:
                return "*", True, False
            if ident in APP_IDS:
                return "*", True, True
            if ident == 0x4461:
                return "*", True, False
            if ident == 0xBF:
                return "*", True, False
            if ident == TAGSTRING and masked_tag_value:
                return "*", True, True
        if kind == "K":
            return block_text(buf, el, limit), False, False
        if ident == VOID:
            return None, False, False
        if ident in (0xBF, 0x53AB, 0x63A2):
            return bytes(buf[el.data_start:el.end(limit)]).hex(), False, False
        if kind == "B":
            data = bytes(buf[el.data_start:el.end(limit)])
            return f"<{len(data)} bytes sha={short_hash(data)}>", False, False
        v = ebml.value_of(el, buf, limit)
        if kind in ("S", "T"):
            return repr(v), False, False
        if kind == "F":
            return repr(v), False, False
        return str(v), False, False

    def dump(self, start, end, depth, parent_ident, parent_data_start, masked_tag_value=False):
        """Append lines for the children of one master. Returns True when its content length may vary."""
        offset_tainted = False  # offsets of following siblings may differ
        prev_void_heals = False
        for el in ebml.children(self.buf, start, end, parent_ident):
            if el.ident == TAG and self.drop:
                name = tag_name_of(self.buf, el, self.limit) or ""
                if any(name.startswith(p) for p in self.drop):
                    offset_tainted = True
                    continue
            if prev_void_heals:
                offset_tainted = False
                prev_void_heals = False
            off = el.offset if self.absolute else el.offset - parent_data_start
            off_text = "*" if (self.mask or self.drop) and offset_tainted else str(off)
            index = len(self.lines)
            self.lines.append(None)
            size_tainted = False
            value = None
            if el.kind == "M":
                inner_masked = masked_tag_value
                if el.ident == SIMPLETAG and self.mask:
                    for sub in ebml.children(self.buf, el.data_start, el.end(end), el.ident):
                        if sub.ident == TAGNAME:
                            name = ebml.value_of(sub, self.buf, self.limit)
                            inner_masked = name.startswith("K4A_") and name.endswith("_TRACK")
                size_tainted = self.dump(el.data_start, el.end(end), depth + 1, el.ident, el.data_start,
                                         inner_masked)
            else:
                value, _, varies = self.leaf_value(el, masked_tag_value)
                size_tainted = varies
            if el.ident == VOID and offset_tainted:
                size_tainted = True
                prev_void_heals = True
            size_text = "unknown" if el.size is None else str(el.size)
            if size_tainted:
                size_text = "*"
                if el.ident != VOID:
                    offset_tainted = True
            note = " TRUNCATED" if el.truncated else ""
            line = f"{off_text} {'  ' * depth}{el.name} [{el.ident:X}] sf={el.size_len} size={size_text}{note}"
            if value is not None:
                line += f" = {value}"
            self.lines[index] = line
        # the master's own length may differ only if no Void after the last difference absorbed it
        return offset_tainted and not prev_void_heals


def tree(path, mask=False, drop_prefixes=(), absolute=False):
    with open(path, "rb") as f:
        try:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty file
            buf = b""
        d = Dumper(buf, mask, list(drop_prefixes), absolute)
        d.dump(0, len(buf), 0, None, 0)
        # report trailing bytes the walk could not parse
        consumed = 0
        for el in ebml.children(buf, 0, len(buf)):
            consumed = el.end(len(buf))
        if consumed < len(buf):
            d.lines.append(f"{consumed} <{len(buf) - consumed} unparsed trailing bytes>")
        return d.lines


def main():
    ap = argparse.ArgumentParser(description="Normalised EBML element tree of a Matroska file.")
    ap.add_argument("file")
    ap.add_argument("--mask", action="store_true", help="mask UIDs, dates, app names and CRC-32 values")
    ap.add_argument("--drop-tag-prefix", action="append", default=[], metavar="PREFIX",
                    help="omit Tag elements whose TagName starts with PREFIX (repeatable)")
    ap.add_argument("--absolute", action="store_true", help="print absolute file offsets")
    a = ap.parse_args()
    for line in tree(a.file, a.mask, a.drop_tag_prefix, a.absolute):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
