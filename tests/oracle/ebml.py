"""A small, tolerant EBML/Matroska walker shared by ebml_tree.py and playback.py (stdlib only)."""
import struct

# id -> (name, kind). kinds: M master, U uint, I int, F float, S ascii, T utf-8, D date, B binary, K block
SCHEMA = {}


def _add(kind, pairs):
    for ident, name in pairs:
        SCHEMA[ident] = (name, kind)


_add("M", [(0x1A45DFA3, "EBML"), (0x18538067, "Segment"), (0x114D9B74, "SeekHead"), (0x4DBB, "Seek"),
           (0x1549A966, "Info"), (0x1654AE6B, "Tracks"), (0xAE, "TrackEntry"), (0xE0, "Video"),
           (0x1941A469, "Attachments"), (0x61A7, "AttachedFile"), (0x1254C367, "Tags"), (0x7373, "Tag"),
           (0x63C0, "Targets"), (0x67C8, "SimpleTag"), (0x1F43B675, "Cluster"), (0xA0, "BlockGroup"),
           (0x1C53BB6B, "Cues"), (0xBB, "CuePoint"), (0xB7, "CueTrackPositions"), (0x1043A770, "Chapters"),
           (0x75A1, "BlockAdditions"), (0xA6, "BlockMore"), (0xE1, "Audio"), (0x6D80, "ContentEncodings")])
_add("U", [(0x4286, "EBMLVersion"), (0x42F7, "EBMLReadVersion"), (0x42F2, "EBMLMaxIDLength"),
           (0x42F3, "EBMLMaxSizeLength"), (0x4287, "DocTypeVersion"), (0x4285, "DocTypeReadVersion"),
           (0x53AC, "SeekPosition"), (0x2AD7B1, "TimestampScale"), (0xD7, "TrackNumber"), (0x73C5, "TrackUID"),
           (0x83, "TrackType"), (0xB9, "FlagEnabled"), (0x88, "FlagDefault"), (0x55AA, "FlagForced"),
           (0x9C, "FlagLacing"), (0x6DE7, "MinCache"), (0x23E383, "DefaultDuration"),
           (0x55EE, "MaxBlockAdditionID"), (0xAA, "CodecDecodeAll"), (0xB0, "PixelWidth"), (0xBA, "PixelHeight"),
           (0x9A, "FlagInterlaced"), (0x54B0, "DisplayWidth"), (0x54BA, "DisplayHeight"), (0x54B2, "DisplayUnit"),
           (0x46AE, "FileUID"), (0x68CA, "TargetTypeValue"), (0x63C5, "TagTrackUID"),
           (0x63C6, "TagAttachmentUID"), (0x4484, "TagDefault"), (0xE7, "Timestamp"), (0x9B, "BlockDuration"),
           (0xA7, "Position"), (0xAB, "PrevSize"), (0xB3, "CueTime"), (0xF7, "CueTrack"),
           (0xF1, "CueClusterPosition"), (0xF0, "CueRelativePosition"), (0xB2, "CueDuration"),
           (0x5378, "CueBlockNumber"), (0x56AA, "CodecDelay"), (0x56BB, "SeekPreRoll"), (0xEE, "BlockAddID")])
_add("I", [(0xFB, "ReferenceBlock")])
_add("F", [(0x4489, "Duration"), (0x23314F, "TrackTimestampScale")])
_add("S", [(0x4282, "DocType"), (0x86, "CodecID"), (0x22B59C, "Language"), (0x4660, "FileMimeType"),
           (0x63CA, "TargetType"), (0x447A, "TagLanguage")])
_add("T", [(0x4D80, "MuxingApp"), (0x5741, "WritingApp"), (0x7BA9, "Title"), (0x536E, "Name"),
           (0x466E, "FileName"), (0x467E, "FileDescription"), (0x45A3, "TagName"), (0x4487, "TagString"),
           (0x258688, "CodecName")])
_add("D", [(0x4461, "DateUTC")])
_add("B", [(0xEC, "Void"), (0xBF, "CRC-32"), (0x53AB, "SeekID"), (0x73A4, "SegmentUID"), (0x63A2, "CodecPrivate"),
           (0x465C, "FileData"), (0x4485, "TagBinary"), (0xA5, "BlockAdditional")])
_add("K", [(0xA3, "SimpleBlock"), (0xA1, "Block")])

SEGMENT_CHILDREN = {0x114D9B74, 0x1549A966, 0x1654AE6B, 0x1941A469, 0x1254C367, 0x1F43B675, 0x1C53BB6B,
                    0x1043A770}
UNKNOWN = object()


class Element:
    """One element: where it starts, its id, header lengths and data size (None = unknown size)."""
    __slots__ = ("offset", "ident", "id_len", "size_len", "size", "data_start", "truncated")

    def __init__(self, offset, ident, id_len, size_len, size, data_start):
        self.offset, self.ident, self.id_len = offset, ident, id_len
        self.size_len, self.size, self.data_start = size_len, size, data_start
        self.truncated = False

    @property
    def name(self):
        return SCHEMA.get(self.ident, (f"Unknown-{self.ident:X}", "B"))[0]

    @property
    def kind(self):
        return SCHEMA.get(self.ident, ("", "B"))[1]

    def end(self, limit):
        if self.size is None:
            return limit
        return min(self.data_start + self.size, limit)


def read_vint(buf, pos, limit, keep_marker):
    """(value, length) of the variable-length integer at pos, or None if it does not fit or is invalid."""
    if pos >= limit:
        return None
    first = buf[pos]
    length = 1
    mask = 0x80
    while length <= 8 and not first & mask:
        length += 1
        mask >>= 1
    if length > 8 or pos + length > limit:
        return None
    value = first if keep_marker else first & (mask - 1)
    for b in buf[pos + 1:pos + length]:
        value = (value << 8) | b
    return value, length


def read_header(buf, pos, limit):
    """The Element starting at pos, or None when no complete header fits before limit."""
    got = read_vint(buf, pos, limit, True)
    if got is None or got[1] > 4:
        return None
    ident, id_len = got
    got = read_vint(buf, pos + id_len, limit, False)
    if got is None:
        return None
    size, size_len = got
    if size == (1 << (7 * size_len)) - 1:
        size = None  # all ones: unknown size
    return Element(pos, ident, id_len, size_len, size, pos + id_len + size_len)


def children(buf, parent_start, parent_end, parent_ident=None):
    """Yield the elements in [parent_start, parent_end). Stops at junk; marks a child that overruns the end."""
    pos = parent_start
    while pos < parent_end:
        el = read_header(buf, pos, parent_end)
        if el is None:
            return
        if parent_ident == 0x1F43B675 and el.ident in SEGMENT_CHILDREN:
            return  # an unknown-size Cluster ends where the next top-level element begins
        if el.size is not None and el.data_start + el.size > parent_end:
            el.truncated = True
        yield el
        if el.size is None:
            if el.kind != "M":
                return
            # find where an unknown-size master ends by walking it
            last = el.data_start
            for sub in children(buf, el.data_start, parent_end, el.ident):
                last = sub.end(parent_end)
            pos = last
            if pos <= el.data_start:
                return
            continue
        pos = el.data_start + el.size


def uint(data):
    v = 0
    for b in data:
        v = (v << 8) | b
    return v


def value_of(el, buf, limit):
    """Decoded value of a leaf (None for binary and block elements)."""
    data = bytes(buf[el.data_start:el.end(limit)])
    kind = el.kind
    if kind == "U":
        return uint(data)
    if kind == "I":
        return int.from_bytes(data, "big", signed=True) if data else 0
    if kind == "F":
        if len(data) == 4:
            return struct.unpack(">f", data)[0]
        if len(data) == 8:
            return struct.unpack(">d", data)[0]
        return 0.0
    if kind in ("S", "T"):
        return data.rstrip(b"\0").decode("utf-8", "replace")
    if kind == "D":
        return int.from_bytes(data, "big", signed=True) if data else 0
    return None


def walk(buf, start, end, depth=0, parent_ident=None):
    """Depth-first (depth, element) pairs for the whole tree below [start, end)."""
    for el in children(buf, start, end, parent_ident):
        yield depth, el
        if el.kind == "M":
            yield from walk(buf, el.data_start, el.end(end), depth + 1, el.ident)


def find_tag_names(buf):
    """Every TagName in the file (in file order), for asking the SDK about tags it cannot enumerate."""
    names = []
    for _, el in walk(buf, 0, len(buf)):
        if el.ident == 0x45A3:
            names.append(value_of(el, buf, len(buf)))
    return names
