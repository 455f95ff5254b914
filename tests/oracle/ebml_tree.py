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
  MuxingApp, WritingApp, and CRC-32 values. Masked values whose length may vary (app names, UIDs written as
  decimal tag values) print size '*', and offsets and master sizes are normalised: they exclude the bytes of
  such values (as if they were empty), so a 19- vs 20-digit UID shifts nothing. The Void that pads the
  SeekHead and Info reserved regions absorbs those bytes (its size prints as '*'); binary UIDs keep their
  printed size (both writers should use 8 bytes). SeekPosition and CueClusterPosition values print as the
  normalised offset of the element they point to.
--drop-tag-prefix P omits Tag elements whose TagName starts with P; their bytes are excluded the same way,
  except that a Void right after the Tags takes them back (it is printed as large as it would be without
  those tags): a writer that puts extra tags into the room the SDK leaves after its Tags keeps the SDK's
  cluster offsets, and the comparison shows that.
With --absolute, offsets are absolute file offsets and nothing is normalised.
"""
import argparse
import hashlib
import mmap
import sys

import ebml

UID_IDS = {0x73C5, 0x46AE, 0x63C5, 0x63C6, 0x73A4}
APP_IDS = {0x4D80, 0x5741}
VOID, TAG, TAGNAME, TAGSTRING, SIMPLETAG = 0xEC, 0x7373, 0x45A3, 0x4487, 0x67C8
# SeekHead and Info sit in fixed-size regions padded by a Void (seg+0..1027, seg+1027..1286)
RESERVED_REGIONS = {0x114D9B74, 0x1549A966}
TAGS = 0x1254C367
SEGMENT = 0x18538067
POSITION_IDS = {0x53AC, 0xF1}  # SeekPosition, CueClusterPosition


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
        self.normalise = (mask or bool(drop_prefixes)) and not absolute
        self.limit = len(buf)
        self.lines = []
        self.position_refs = []  # (line index, segment position) of SeekPosition / CueClusterPosition
        self.segment_children = {}  # actual segment position -> printed (normalised) offset
        self.dropped_tag_bytes = 0  # bytes of dropped tags not yet given back to the Void after Tags

    def leaf_value(self, el, masked_tag_value):
        """(text, length_may_vary)"""
        kind, ident = el.kind, el.ident
        buf, limit = self.buf, self.limit
        if self.mask:
            if ident in UID_IDS or ident == 0x4461 or ident == 0xBF:
                return "*", False
            if ident in APP_IDS or (ident == TAGSTRING and masked_tag_value):
                return "*", True
        if kind == "K":
            return block_text(buf, el, limit), False
        if ident == VOID:
            return None, False
        if ident in (0xBF, 0x53AB, 0x63A2):
            return bytes(buf[el.data_start:el.end(limit)]).hex(), False
        if kind == "B":
            data = bytes(buf[el.data_start:el.end(limit)])
            return f"<{len(data)} bytes sha={short_hash(data)}>", False
        v = ebml.value_of(el, buf, limit)
        if kind in ("S", "T", "F"):
            return repr(v), False
        return str(v), False

    def dump(self, start, end, depth, parent_ident, masked_tag_value=False):
        """Append lines for the children of one master; return how many bytes of masked
        variable-length content (and dropped tags) it holds that no reserved-region Void absorbed."""
        delta = 0
        prev_ident = None
        for el in ebml.children(self.buf, start, end, parent_ident):
            if el.ident == TAG and self.drop:
                name = tag_name_of(self.buf, el, self.limit) or ""
                if any(name.startswith(p) for p in self.drop):
                    delta += el.end(end) - el.offset
                    self.dropped_tag_bytes += el.end(end) - el.offset
                    continue
            off = el.offset if self.absolute else el.offset - start - (delta if self.normalise else 0)
            index = len(self.lines)
            self.lines.append(None)
            value = None
            size_text = "unknown" if el.size is None else str(el.size)
            if el.kind == "M":
                inner_masked = masked_tag_value
                if el.ident == SIMPLETAG and self.mask:
                    for sub in ebml.children(self.buf, el.data_start, el.end(end), el.ident):
                        if sub.ident == TAGNAME:
                            name = ebml.value_of(sub, self.buf, self.limit)
                            inner_masked = name.startswith("K4A_") and name.endswith("_TRACK")
                inner = self.dump(el.data_start, el.end(end), depth + 1, el.ident, inner_masked)
                if self.normalise and el.size is not None:
                    size_text = str(el.size - inner)
                delta += inner
            else:
                value, varies = self.leaf_value(el, masked_tag_value)
                if self.normalise and el.ident in POSITION_IDS:
                    self.position_refs.append((index, int(value)))
                    # the width of a position follows the raw offset, which masked bytes shift
                    varies = True
                if varies:
                    size_text = "*"
                    delta += el.end(end) - el.data_start
            if el.ident == VOID and prev_ident == TAGS and self.dropped_tag_bytes and el.size is not None:
                size_text = str(el.size + self.dropped_tag_bytes)
                delta -= self.dropped_tag_bytes
                self.dropped_tag_bytes = 0
            if self.normalise and el.ident == VOID and prev_ident in RESERVED_REGIONS:
                # the SDK's fixed reserved regions: this Void absorbs any length difference before it
                size_text = "*"
                delta = 0
            note = " TRUNCATED" if el.truncated else ""
            line = f"{off} {'  ' * depth}{el.name} [{el.ident:X}] sf={el.size_len} size={size_text}{note}"
            if value is not None:
                line += f" = {value}"
            self.lines[index] = line
            prev_ident = el.ident
            if parent_ident == SEGMENT:
                self.segment_children[el.offset - start] = off
        return delta

    def fix_positions(self):
        """Print segment positions held in values as the normalised offsets of their targets."""
        for index, pos in self.position_refs:
            target = self.segment_children.get(pos)
            shown = str(target) if target is not None else f"{pos} (no element there)"
            head, _, _ = self.lines[index].rpartition(" = ")
            self.lines[index] = f"{head} = {shown}"


def tree(path, mask=False, drop_prefixes=(), absolute=False):
    with open(path, "rb") as f:
        try:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty file
            buf = b""
        d = Dumper(buf, mask, list(drop_prefixes), absolute)
        d.dump(0, len(buf), 0, None)
        d.fix_positions()
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
