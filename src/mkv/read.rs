//! EBML reading: a bounded element walker over `Read + Seek`, tolerant of damaged files.
//!
//! Two levels: [`ElementReader`] reads element headers and bounded payloads from a seekable
//! stream (every size is checked against the file length and a cap before anything is
//! allocated), and [`Children`] walks the children of a payload already held in memory.

use std::io::{self, Read, Seek, SeekFrom};

use super::ids::{self, ElementId};

/// Deepest nesting the walkers accept (K4A files nest 6 deep at most).
pub const MAX_DEPTH: usize = 16;

/// Largest payload read into memory in one piece (a 4096×3072 BGRA frame is 48 MiB).
pub const MAX_READ_BYTES: u64 = 256 * 1024 * 1024;

/// What went wrong while reading EBML; every variant names the element and its file offset.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The underlying stream failed.
    #[error("I/O error at offset {offset}: {source}")]
    Io {
        /// Offset of the read that failed.
        offset: u64,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The file does not start with an EBML header.
    #[error("not a Matroska file: no EBML header at offset {offset}")]
    NotMatroska {
        /// Where the header was expected.
        offset: u64,
    },
    /// The EBML header names another document type.
    #[error("wrong DocType {doc_type:?} (expected \"matroska\")")]
    WrongDocType {
        /// The DocType found.
        doc_type: String,
    },
    /// The element runs past the end of its parent or of the file.
    #[error("{element} at offset {offset} is truncated")]
    Truncated {
        /// Element name.
        element: &'static str,
        /// File offset of the element's id.
        offset: u64,
    },
    /// A size larger than the reader allows.
    #[error("{element} at offset {offset} has size {size}, above the limit {limit}")]
    SizeTooLarge {
        /// Element name.
        element: &'static str,
        /// File offset of the element's id.
        offset: u64,
        /// The size field.
        size: u64,
        /// The limit it broke.
        limit: u64,
    },
    /// Bytes that are not a valid element id or size.
    #[error("invalid element header at offset {offset}")]
    BadHeader {
        /// Offset of the bad bytes.
        offset: u64,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("{element} at offset {offset} is nested too deep")]
    TooDeep {
        /// Element name.
        element: &'static str,
        /// File offset.
        offset: u64,
    },
    /// An element whose value cannot be decoded (wrong length, bad UTF-8, ...).
    #[error("{element} at offset {offset}: {reason}")]
    BadValue {
        /// Element name.
        element: &'static str,
        /// File offset.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, Error>;

/// The name of an element id for messages (`"unknown"` if the table lacks it).
pub fn element_name(id: ElementId) -> &'static str {
    ids::describe(id).map(|d| d.0).unwrap_or("unknown element")
}

/// A decoded variable-length integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vint {
    /// The value with the length marker removed.
    pub value: u64,
    /// Bytes it took (1–8).
    pub len: usize,
    /// All value bits set: the EBML "unknown" size.
    pub all_ones: bool,
}

/// Decodes a size-style vint from the start of `bytes`. `None` if the first byte is 0 (longer
/// than 8 bytes) or `bytes` is too short.
pub fn read_vint(bytes: &[u8]) -> Option<Vint> {
    let first = *bytes.first()?;
    if first == 0 {
        return None;
    }
    let len = first.leading_zeros() as usize + 1;
    if bytes.len() < len {
        return None;
    }
    let mask = if len == 8 { 0 } else { 0xFFu8 >> len };
    let mut value = u64::from(first & mask);
    for b in &bytes[1..len] {
        value = (value << 8) | u64::from(*b);
    }
    let all_ones = value == (1u64 << (7 * len)) - 1;
    Some(Vint {
        value,
        len,
        all_ones,
    })
}

/// Decodes an element id (1–4 bytes, marker bits kept). `None` for invalid or short input.
pub fn read_id(bytes: &[u8]) -> Option<(ElementId, usize)> {
    let first = *bytes.first()?;
    if first < 0x10 {
        return None;
    }
    let len = first.leading_zeros() as usize + 1;
    if bytes.len() < len {
        return None;
    }
    let v = read_vint(bytes)?;
    // An id whose value bits are all zero or all one is reserved.
    if v.value == 0 || v.all_ones {
        return None;
    }
    let mut id = 0u32;
    for b in &bytes[..len] {
        id = (id << 8) | u32::from(*b);
    }
    Some((id, len))
}

/// One element header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElementHeader {
    /// Element id.
    pub id: ElementId,
    /// File offset of the id's first byte.
    pub offset: u64,
    /// Bytes of id plus size field.
    pub header_len: u8,
    /// Payload size; `None` for the EBML "unknown" size.
    pub size: Option<u64>,
}

impl ElementHeader {
    /// File offset of the payload.
    pub fn data_offset(&self) -> u64 {
        self.offset + u64::from(self.header_len)
    }

    /// File offset just past the payload, when the size is known.
    pub fn end(&self) -> Option<u64> {
        self.size.map(|s| self.data_offset().saturating_add(s))
    }

    /// The element's name for messages.
    pub fn name(&self) -> &'static str {
        element_name(self.id)
    }
}

/// Parses a header from `bytes`, which start at file offset `offset`.
pub fn parse_header(bytes: &[u8], offset: u64) -> Result<ElementHeader> {
    let (id, id_len) = read_id(bytes).ok_or(Error::BadHeader { offset })?;
    let v = read_vint(&bytes[id_len..]).ok_or(Error::BadHeader { offset })?;
    Ok(ElementHeader {
        id,
        offset,
        header_len: (id_len + v.len) as u8,
        size: if v.all_ones { None } else { Some(v.value) },
    })
}

/// Reads headers and bounded payloads from a seekable stream.
#[derive(Debug)]
pub struct ElementReader<R> {
    inner: R,
    file_len: u64,
}

impl<R: Read + Seek> ElementReader<R> {
    /// Wraps a stream, measuring its length.
    pub fn new(mut inner: R) -> Result<Self> {
        let file_len = inner
            .seek(SeekFrom::End(0))
            .map_err(|source| Error::Io { offset: 0, source })?;
        Ok(ElementReader { inner, file_len })
    }

    /// Length of the stream in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The wrapped stream.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (short at EOF).
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let io = |source| Error::Io { offset, source };
        self.inner.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut done = 0;
        while done < buf.len() {
            match self.inner.read(&mut buf[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
        Ok(done)
    }

    /// Reads the element header at `offset`.
    pub fn header_at(&mut self, offset: u64) -> Result<ElementHeader> {
        let mut buf = [0u8; 12];
        let n = self.read_at(offset, &mut buf)?;
        if n == 0 {
            return Err(Error::Truncated {
                element: "element header",
                offset,
            });
        }
        match parse_header(&buf[..n], offset) {
            Err(Error::BadHeader { .. }) if n < 12 => Err(Error::Truncated {
                element: "element header",
                offset,
            }),
            r => r,
        }
    }

    /// Reads the whole payload of `h`, which must have a known size that fits in the file and
    /// under `cap` bytes.
    pub fn payload(&mut self, h: &ElementHeader, cap: u64) -> Result<Vec<u8>> {
        let size = h.size.ok_or(Error::BadValue {
            element: h.name(),
            offset: h.offset,
            reason: "unknown size where a size is required",
        })?;
        self.bytes(h.data_offset(), size, h.name(), h.offset, cap)
    }

    /// Reads `len` bytes at `offset` for element `element` (whose id sits at `elem_offset`),
    /// checking `len` against the file and `cap` before allocating.
    pub fn bytes(
        &mut self,
        offset: u64,
        len: u64,
        element: &'static str,
        elem_offset: u64,
        cap: u64,
    ) -> Result<Vec<u8>> {
        if len > cap {
            return Err(Error::SizeTooLarge {
                element,
                offset: elem_offset,
                size: len,
                limit: cap,
            });
        }
        if offset.saturating_add(len) > self.file_len {
            return Err(Error::Truncated {
                element,
                offset: elem_offset,
            });
        }
        let mut buf = Vec::new();
        self.read_into(offset, len, element, elem_offset, &mut buf)?;
        Ok(buf)
    }

    /// Like [`ElementReader::bytes`] into a caller's buffer (cleared first, its allocation
    /// reused). `len` must already have been checked against the file and a cap.
    pub fn read_into(
        &mut self,
        offset: u64,
        len: u64,
        element: &'static str,
        elem_offset: u64,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        if offset.saturating_add(len) > self.file_len {
            return Err(Error::Truncated {
                element,
                offset: elem_offset,
            });
        }
        buf.clear();
        // Filled by the read itself (no zeroing pass); `len` is bounded by the file above.
        buf.reserve_exact(len as usize);
        let io = |source| Error::Io { offset, source };
        self.inner.seek(SeekFrom::Start(offset)).map_err(io)?;
        (&mut self.inner).take(len).read_to_end(buf).map_err(io)?;
        if buf.len() as u64 != len {
            return Err(Error::Truncated {
                element,
                offset: elem_offset,
            });
        }
        Ok(())
    }

    /// Finds the next Cluster id at or after `from` (resynchronisation after damage).
    pub fn find_id(&mut self, from: u64, id: ElementId) -> Result<Option<u64>> {
        let pat = id.to_be_bytes();
        let mut pos = from;
        let mut buf = vec![0u8; 64 * 1024];
        while pos < self.file_len {
            let n = self.read_at(pos, &mut buf)?;
            if n < 4 {
                return Ok(None);
            }
            if let Some(i) = buf[..n].windows(4).position(|w| w == pat) {
                return Ok(Some(pos + i as u64));
            }
            pos += (n - 3) as u64;
        }
        Ok(None)
    }
}

/// One child found by [`Children`]: its header and payload slice.
#[derive(Clone, Copy, Debug)]
pub struct Child<'a> {
    /// The header (offsets are file offsets).
    pub header: ElementHeader,
    /// The payload (shorter than `header.size` never: truncated children are errors).
    pub data: &'a [u8],
}

impl Child<'_> {
    /// Unsigned integer value (0–8 bytes big-endian).
    pub fn uint(&self) -> Result<u64> {
        if self.data.len() > 8 {
            return Err(self.bad("unsigned integer longer than 8 bytes"));
        }
        Ok(self.data.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b)))
    }

    /// Signed integer value (0–8 bytes big-endian, two's complement).
    pub fn int(&self) -> Result<i64> {
        let n = self.data.len();
        if n > 8 {
            return Err(self.bad("signed integer longer than 8 bytes"));
        }
        if n == 0 {
            return Ok(0);
        }
        let u = self.uint()?;
        let shift = 64 - 8 * n as u32;
        Ok(((u << shift) as i64) >> shift)
    }

    /// Float value (0, 4 or 8 bytes).
    pub fn float(&self) -> Result<f64> {
        match self.data.len() {
            0 => Ok(0.0),
            4 => Ok(f64::from(f32::from_be_bytes(
                self.data.try_into().expect("length checked"),
            ))),
            8 => Ok(f64::from_be_bytes(
                self.data.try_into().expect("length checked"),
            )),
            _ => Err(self.bad("float of neither 4 nor 8 bytes")),
        }
    }

    /// String value; trailing NULs removed, invalid UTF-8 rejected.
    pub fn string(&self) -> Result<String> {
        let end = self.data.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
        std::str::from_utf8(&self.data[..end])
            .map(str::to_owned)
            .map_err(|_| self.bad("invalid UTF-8"))
    }

    /// The children of this (master) element.
    pub fn children(&self, depth: usize) -> Result<Children<'_>> {
        Children::new(self.data, self.header.data_offset(), depth + 1)
    }

    fn bad(&self, reason: &'static str) -> Error {
        Error::BadValue {
            element: self.header.name(),
            offset: self.header.offset,
            reason,
        }
    }
}

/// Iterates over the children of a master element held in memory.
#[derive(Clone, Debug)]
pub struct Children<'a> {
    data: &'a [u8],
    base: u64,
    pos: usize,
    failed: bool,
}

impl<'a> Children<'a> {
    /// Walks `data`, whose first byte is at file offset `base`, at nesting depth `depth`.
    pub fn new(data: &'a [u8], base: u64, depth: usize) -> Result<Self> {
        if depth > MAX_DEPTH {
            return Err(Error::TooDeep {
                element: "master element",
                offset: base,
            });
        }
        Ok(Children {
            data,
            base,
            pos: 0,
            failed: false,
        })
    }

    /// Bytes consumed so far (the offset of the next child relative to `base`).
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<Child<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        let rest = &self.data[self.pos..];
        let offset = self.base + self.pos as u64;
        let header = match parse_header(rest, offset) {
            Ok(h) => h,
            Err(e) => {
                self.failed = true;
                // A header cut by the end of the parent is a truncation, not garbage.
                let e = if rest.len() < 12 && matches!(e, Error::BadHeader { .. }) {
                    Error::Truncated {
                        element: "element header",
                        offset,
                    }
                } else {
                    e
                };
                return Some(Err(e));
            }
        };
        let hl = usize::from(header.header_len);
        let avail = (rest.len() - hl) as u64;
        let size = match header.size {
            Some(s) if s <= avail => s as usize,
            Some(_) => {
                self.failed = true;
                return Some(Err(Error::Truncated {
                    element: header.name(),
                    offset,
                }));
            }
            // Unknown size inside a bounded parent: the child extends to the parent's end.
            None => avail as usize,
        };
        let data = &rest[hl..hl + size];
        self.pos += hl + size;
        Some(Ok(Child { header, data }))
    }
}

/// The EBML header's fields a reader checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EbmlHeader {
    /// DocType (`"matroska"`).
    pub doc_type: String,
    /// DocTypeVersion.
    pub doc_type_version: u64,
    /// DocTypeReadVersion.
    pub doc_type_read_version: u64,
    /// File offset just past the header.
    pub end: u64,
}

/// Reads and checks the EBML header at offset 0.
pub fn read_ebml_header<R: Read + Seek>(r: &mut ElementReader<R>) -> Result<EbmlHeader> {
    let h = match r.header_at(0) {
        Ok(h) if h.id == ids::EBML => h,
        Ok(_) | Err(Error::BadHeader { .. }) | Err(Error::Truncated { .. }) => {
            return Err(Error::NotMatroska { offset: 0 })
        }
        Err(e) => return Err(e),
    };
    let data = r.payload(&h, 4096)?;
    let mut out = EbmlHeader {
        doc_type: String::new(),
        doc_type_version: 1,
        doc_type_read_version: 1,
        end: h.end().unwrap_or(0),
    };
    for c in Children::new(&data, h.data_offset(), 1)? {
        let c = c?;
        match c.header.id {
            ids::DOC_TYPE => out.doc_type = c.string()?,
            ids::DOC_TYPE_VERSION => out.doc_type_version = c.uint()?,
            ids::DOC_TYPE_READ_VERSION => out.doc_type_read_version = c.uint()?,
            _ => {}
        }
    }
    if out.doc_type != "matroska" {
        return Err(Error::WrongDocType {
            doc_type: out.doc_type,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn vints() {
        assert_eq!(
            read_vint(&[0x81]),
            Some(Vint {
                value: 1,
                len: 1,
                all_ones: false
            })
        );
        assert_eq!(read_vint(&[0x40, 0x7F]).unwrap().value, 127);
        assert!(read_vint(&[0xFF]).unwrap().all_ones);
        let seg = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(read_vint(&seg).unwrap().all_ones);
        let zero8 = [0x01, 0, 0, 0, 0, 0, 0, 0x05];
        assert_eq!(read_vint(&zero8).unwrap().value, 5);
        assert_eq!(read_vint(&zero8).unwrap().len, 8);
        assert_eq!(read_vint(&[0x00, 0x81]), None);
        assert_eq!(read_vint(&[0x40]), None);
        assert_eq!(read_vint(&[]), None);
    }

    #[test]
    fn ids_decode() {
        assert_eq!(read_id(&[0x1A, 0x45, 0xDF, 0xA3]), Some((ids::EBML, 4)));
        assert_eq!(read_id(&[0xA3, 0x00]), Some((ids::SIMPLE_BLOCK, 1)));
        assert_eq!(read_id(&[0x42, 0x86]), Some((ids::EBML_VERSION, 2)));
        assert_eq!(read_id(&[0x80]), None, "all-zero value is reserved");
        assert_eq!(read_id(&[0xFF]), None, "all-one value is reserved");
        assert_eq!(
            read_id(&[0x08, 1, 2, 3, 4]),
            None,
            "ids are at most 4 bytes"
        );
        assert_eq!(read_id(&[0x1A, 0x45]), None);
    }

    #[test]
    fn headers() {
        let h = parse_header(&[0x1F, 0x43, 0xB6, 0x75, 0x25, 0xA8, 0x08], 100).unwrap();
        assert_eq!(h.id, ids::CLUSTER);
        assert_eq!(h.header_len, 7);
        assert_eq!(h.size, Some(0x05A808));
        assert_eq!(h.data_offset(), 107);
        let u = parse_header(
            &[
                0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            ],
            40,
        )
        .unwrap();
        assert_eq!(u.size, None);
        assert!(matches!(
            parse_header(&[0x00, 0x81], 7),
            Err(Error::BadHeader { offset: 7 })
        ));
    }

    #[test]
    fn children_values() {
        // TimestampScale 1000, Duration float32 1.5, Title "Azure", a signed -2.
        let bytes = [
            0x2A, 0xD7, 0xB1, 0x82, 0x03, 0xE8, 0x44, 0x89, 0x84, 0x3F, 0xC0, 0x00, 0x00, 0x7B,
            0xA9, 0x85, b'A', b'z', b'u', b'r', b'e', 0xFB, 0x81, 0xFE,
        ];
        let kids: Vec<_> = Children::new(&bytes, 0, 1)
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(kids.len(), 4);
        assert_eq!(kids[0].uint().unwrap(), 1000);
        assert_eq!(kids[1].float().unwrap(), 1.5);
        assert_eq!(kids[2].string().unwrap(), "Azure");
        assert_eq!(kids[3].int().unwrap(), -2);
        assert_eq!(kids[3].header.offset, 21);
    }

    #[test]
    fn children_truncated_and_garbage() {
        // Child claims 5 bytes, only 2 present.
        let bytes = [0xE7, 0x85, 0x01, 0x02];
        let mut it = Children::new(&bytes, 1000, 1).unwrap();
        assert!(matches!(
            it.next(),
            Some(Err(Error::Truncated {
                element: "Timestamp",
                offset: 1000
            }))
        ));
        assert!(it.next().is_none(), "walker stops after an error");
        let garbage = [0x00; 20];
        let mut it = Children::new(&garbage, 0, 1).unwrap();
        assert!(matches!(
            it.next(),
            Some(Err(Error::BadHeader { offset: 0 }))
        ));
        assert!(matches!(
            Children::new(&garbage, 0, MAX_DEPTH + 1),
            Err(Error::TooDeep { .. })
        ));
        let bad_uint = [0xE7, 0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9];
        let c = Children::new(&bad_uint, 0, 1)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert!(matches!(
            c.uint(),
            Err(Error::BadValue {
                element: "Timestamp",
                ..
            })
        ));
        let bad_float = [0x44, 0x89, 0x83, 1, 2, 3];
        let c = Children::new(&bad_float, 0, 1)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert!(c.float().is_err());
    }

    fn ebml_header(doc_type: &[u8]) -> Vec<u8> {
        let mut body = vec![0x42, 0x82, 0x80 | doc_type.len() as u8];
        body.extend_from_slice(doc_type);
        body.extend_from_slice(&[0x42, 0x87, 0x81, 0x02, 0x42, 0x85, 0x81, 0x02]);
        let mut v = vec![0x1A, 0x45, 0xDF, 0xA3, 0x80 | body.len() as u8];
        v.extend(body);
        v
    }

    #[test]
    fn ebml_header_checks() {
        let good = ebml_header(b"matroska");
        let mut r = ElementReader::new(Cursor::new(good.clone())).unwrap();
        let h = read_ebml_header(&mut r).unwrap();
        assert_eq!(h.doc_type, "matroska");
        assert_eq!(h.doc_type_read_version, 2);
        assert_eq!(h.end, good.len() as u64);

        let mut r = ElementReader::new(Cursor::new(ebml_header(b"webm"))).unwrap();
        assert!(matches!(
            read_ebml_header(&mut r),
            Err(Error::WrongDocType { doc_type }) if doc_type == "webm"
        ));
        let mut r = ElementReader::new(Cursor::new(b"RIFF....AVI ".to_vec())).unwrap();
        assert!(matches!(
            read_ebml_header(&mut r),
            Err(Error::NotMatroska { offset: 0 })
        ));
        let mut r = ElementReader::new(Cursor::new(Vec::new())).unwrap();
        assert!(matches!(
            read_ebml_header(&mut r),
            Err(Error::NotMatroska { .. })
        ));
        // Header cut in the middle.
        let mut r = ElementReader::new(Cursor::new(good[..10].to_vec())).unwrap();
        assert!(matches!(
            read_ebml_header(&mut r),
            Err(Error::Truncated {
                element: "EBML",
                ..
            })
        ));
    }

    #[test]
    fn bounded_reads() {
        let mut data = vec![0xA3, 0x08, 0xFF, 0xFF, 0xFF, 0xF0];
        data.extend([0u8; 16]);
        let mut r = ElementReader::new(Cursor::new(data)).unwrap();
        let h = r.header_at(0).unwrap();
        assert_eq!(h.size, Some(0xFFFF_FFF0));
        // Huge size: refused before any allocation.
        assert!(matches!(
            r.payload(&h, MAX_READ_BYTES),
            Err(Error::SizeTooLarge {
                element: "SimpleBlock",
                offset: 0,
                ..
            })
        ));
        assert!(matches!(
            r.payload(&h, u64::MAX),
            Err(Error::Truncated {
                element: "SimpleBlock",
                offset: 0
            })
        ));
        assert!(matches!(r.header_at(100), Err(Error::Truncated { .. })));
    }

    #[test]
    fn resync_finds_cluster_id() {
        let mut data = vec![0x55u8; 70_000];
        data.extend([0x1F, 0x43, 0xB6, 0x75, 0x80]);
        let mut r = ElementReader::new(Cursor::new(data)).unwrap();
        assert_eq!(r.find_id(3, ids::CLUSTER).unwrap(), Some(70_000));
        assert_eq!(r.find_id(70_001, ids::CLUSTER).unwrap(), None);
    }
}
