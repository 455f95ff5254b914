//! EBML primitives: variable-length integers, element headers, typed values, CRC-32 (write side).
//!
//! Every function appends to a `Vec<u8>`; the caller decides when the bytes reach the file. The
//! size-field rules follow libebml 1.3.6 (the library Microsoft's recorder links), so that our
//! bytes match what the SDK writes: minimal widths with strict thresholds, optional forced widths,
//! 8-byte signed dates, and its rule for the filler Void that follows an in-place rewrite.

use super::ids::{self, ElementId};

/// The EBML "unknown size" value for an 8-byte size field (`01 FF FF FF FF FF FF FF`).
pub const UNKNOWN_SIZE_8: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// Seconds between the Unix epoch and the EBML date epoch (2001-01-01T00:00:00Z).
pub const EBML_EPOCH_UNIX_SEC: i64 = 978_307_200;

/// Errors of the EBML write primitives.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum EbmlError {
    /// The value does not fit in a size field of the requested width.
    #[error("size {size} does not fit in a {width}-byte EBML size field")]
    SizeTooLarge {
        /// The size to code.
        size: u64,
        /// The field width in bytes.
        width: usize,
    },
    /// An in-place rewrite does not fit in the reserved region.
    #[error("element of {needed} bytes does not fit in a reserved region of {available} bytes")]
    NoRoom {
        /// Bytes the element needs.
        needed: u64,
        /// Bytes the region holds.
        available: u64,
    },
    /// Exactly one byte would remain after an in-place rewrite: too little for a filler Void
    /// (libebml refuses this case too).
    #[error("one byte would remain after an in-place rewrite; no Void fits there")]
    OneByteRemainder,
}

/// The minimal size-field width libebml picks for `size` (thresholds are strict: 126 is the
/// largest 1-byte size because 127 is reserved for "unknown").
pub fn size_len(size: u64) -> usize {
    // Each width n codes values up to 2^(7n) - 2.
    let mut n = 1;
    while n < 8 && size >= (1u64 << (7 * n)) - 1 {
        n += 1;
    }
    n
}

/// The size-field width for `size` with a minimum width (libebml's "size length" setting).
pub fn size_len_min(size: u64, min_width: usize) -> usize {
    size_len(size).max(min_width)
}

/// Appends `size` as an EBML size field of exactly `width` bytes (1..=8).
pub fn put_size_width(out: &mut Vec<u8>, size: u64, width: usize) -> Result<(), EbmlError> {
    if !(1..=8).contains(&width) || size >= (1u64 << (7 * width)) - 1 {
        return Err(EbmlError::SizeTooLarge { size, width });
    }
    let coded = size | (1u64 << (7 * width));
    out.extend_from_slice(&coded.to_be_bytes()[8 - width..]);
    Ok(())
}

/// Appends `size` as a minimal-width EBML size field.
pub fn put_size(out: &mut Vec<u8>, size: u64) {
    let width = size_len(size);
    // size_len always picks a width that holds the value (up to 2^56 - 2).
    let coded = size | (1u64 << (7 * width));
    out.extend_from_slice(&coded.to_be_bytes()[8 - width..]);
}

/// Bytes the id occupies on the wire (1..=4).
pub fn id_len(id: ElementId) -> usize {
    match id {
        0..=0xFF => 1,
        0x100..=0xFFFF => 2,
        0x1_0000..=0xFF_FFFF => 3,
        _ => 4,
    }
}

/// Appends an element id (marker bits are part of the id).
pub fn put_id(out: &mut Vec<u8>, id: ElementId) {
    out.extend_from_slice(&id.to_be_bytes()[4 - id_len(id)..]);
}

/// Appends an element header: id + minimal size field.
pub fn put_header(out: &mut Vec<u8>, id: ElementId, size: u64) {
    put_id(out, id);
    put_size(out, size);
}

/// Appends an element header with a size field of at least `min_width` bytes.
pub fn put_header_min(out: &mut Vec<u8>, id: ElementId, size: u64, min_width: usize) {
    put_id(out, id);
    let width = size_len_min(size, min_width);
    // The width is at least the minimal width, so the value fits.
    let coded = size | (1u64 << (7 * width));
    out.extend_from_slice(&coded.to_be_bytes()[8 - width..]);
}

/// Length of an element header with a minimal size field.
pub fn header_len(id: ElementId, size: u64) -> usize {
    id_len(id) + size_len(size)
}

/// Bytes of an unsigned integer value (minimal, at least 1).
pub fn uint_len(v: u64) -> usize {
    (8 - (v.leading_zeros() as usize) / 8).max(1)
}

/// Appends an unsigned-integer element (minimal big-endian width; 0 is one `00` byte).
pub fn put_uint(out: &mut Vec<u8>, id: ElementId, v: u64) {
    let n = uint_len(v);
    put_header(out, id, n as u64);
    out.extend_from_slice(&v.to_be_bytes()[8 - n..]);
}

/// Bytes of a signed integer value (minimal two's complement, at least 1).
pub fn sint_len(v: i64) -> usize {
    let mut n = 8;
    while n > 1 {
        let shift = 64 - 8 * (n - 1);
        // Fits in n-1 bytes if sign-extending the low n-1 bytes gives v back.
        if (v << shift) >> shift == v {
            n -= 1;
        } else {
            break;
        }
    }
    n
}

/// Appends a signed-integer element (minimal two's-complement width).
pub fn put_sint(out: &mut Vec<u8>, id: ElementId, v: i64) {
    let n = sint_len(v);
    put_header(out, id, n as u64);
    out.extend_from_slice(&v.to_be_bytes()[8 - n..]);
}

/// Appends a 4-byte float element.
pub fn put_f32(out: &mut Vec<u8>, id: ElementId, v: f32) {
    put_header(out, id, 4);
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends an 8-byte float element.
pub fn put_f64(out: &mut Vec<u8>, id: ElementId, v: f64) {
    put_header(out, id, 8);
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a string element (raw bytes, no terminator).
pub fn put_str(out: &mut Vec<u8>, id: ElementId, s: &str) {
    put_binary(out, id, s.as_bytes());
}

/// Appends a binary element.
pub fn put_binary(out: &mut Vec<u8>, id: ElementId, data: &[u8]) {
    put_header(out, id, data.len() as u64);
    out.extend_from_slice(data);
}

/// Appends a date element: nanoseconds since 2001-01-01, always 8 bytes (libebml's date).
pub fn put_date(out: &mut Vec<u8>, id: ElementId, ns_since_2001: i64) {
    put_header(out, id, 8);
    out.extend_from_slice(&ns_since_2001.to_be_bytes());
}

/// Appends a master element built from already-rendered children.
pub fn put_master(out: &mut Vec<u8>, id: ElementId, children: &[u8]) {
    put_header(out, id, children.len() as u64);
    out.extend_from_slice(children);
}

/// Appends a master element whose size field is at least `min_width` bytes (Attachments and
/// AttachedFile use 2 in libmatroska).
pub fn put_master_min(out: &mut Vec<u8>, id: ElementId, children: &[u8], min_width: usize) {
    put_header_min(out, id, children.len() as u64, min_width);
    out.extend_from_slice(children);
}

/// The 6-byte CRC-32 element over `data`: `BF 84` + IEEE CRC-32 stored little-endian.
pub fn crc32_element(data: &[u8]) -> [u8; 6] {
    crc32_element_from(crc32fast::hash(data))
}

/// The 6-byte CRC-32 element for an already computed CRC value.
pub fn crc32_element_from(crc: u32) -> [u8; 6] {
    let c = crc.to_le_bytes();
    [ids::CRC32 as u8, 0x84, c[0], c[1], c[2], c[3]]
}

/// Appends a master whose first child is a CRC-32 over the other children.
pub fn put_master_crc(out: &mut Vec<u8>, id: ElementId, children: &[u8]) {
    put_header(out, id, children.len() as u64 + 6);
    out.extend_from_slice(&crc32_element(children));
    out.extend_from_slice(children);
}

/// Appends a whole Void element of `total_len` bytes (header + zero data). The header uses the
/// minimal width for the data size, so some totals need a forced width: the function picks the
/// width that makes the element exactly `total_len` long. `total_len` must be at least 2.
pub fn put_void(out: &mut Vec<u8>, total_len: u64) -> Result<(), EbmlError> {
    let (width, data) = void_layout(total_len)?;
    put_id(out, ids::VOID);
    put_size_width(out, data, width)?;
    out.resize(out.len() + data as usize, 0);
    Ok(())
}

/// Appends only the header of a filler Void covering `remaining` bytes after an in-place
/// rewrite, following libebml's `EbmlVoid::ReplaceWith`: the size field gets the width of
/// `remaining - 1` coded minimally, the data size is what is left, and the width is kept even
/// when the smaller data size would code shorter. The data bytes are not written (they keep
/// whatever the region held). `remaining == 0` appends nothing; `remaining == 1` is refused.
pub fn put_void_filler_header(out: &mut Vec<u8>, remaining: u64) -> Result<(), EbmlError> {
    match remaining {
        0 => Ok(()),
        1 => Err(EbmlError::OneByteRemainder),
        _ => {
            let (width, data) = void_layout(remaining)?;
            put_id(out, ids::VOID);
            put_size_width(out, data, width)
        }
    }
}

/// Size-field width and data size of a Void that is `total` bytes long (libebml's rule).
fn void_layout(total: u64) -> Result<(usize, u64), EbmlError> {
    if total < 2 {
        return Err(EbmlError::OneByteRemainder);
    }
    let width = size_len(total - 1).min(8);
    let data = total - 1 - width as u64;
    Ok((width, data))
}

/// Renders `element` into a reserved region of `region_len` bytes: the element followed by a
/// filler Void header (see [`put_void_filler_header`]). Returns the bytes to write at the start
/// of the region (the rest of the region keeps its old content, which the Void covers).
pub fn replace_in_region(element: &[u8], region_len: u64) -> Result<Vec<u8>, EbmlError> {
    let needed = element.len() as u64;
    if needed > region_len {
        return Err(EbmlError::NoRoom {
            needed,
            available: region_len,
        });
    }
    let mut out = Vec::with_capacity(element.len() + 9);
    out.extend_from_slice(element);
    put_void_filler_header(&mut out, region_len - needed)?;
    Ok(out)
}

/// Nanoseconds since the EBML epoch for a Unix time in whole seconds (DateUTC as the SDK writes
/// it: whole seconds only).
pub fn ebml_date_from_unix_sec(unix_sec: i64) -> i64 {
    (unix_sec - EBML_EPOCH_UNIX_SEC).saturating_mul(1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn size_thresholds_are_strict() {
        assert_eq!(size_len(0), 1);
        assert_eq!(size_len(126), 1);
        assert_eq!(size_len(127), 2);
        assert_eq!(size_len(16382), 2);
        assert_eq!(size_len(16383), 3);
        assert_eq!(size_len(2_097_150), 3);
        assert_eq!(size_len(2_097_151), 4);
        assert_eq!(size_len(268_435_454), 4);
        assert_eq!(size_len(268_435_455), 5);
        let mut v = Vec::new();
        put_size(&mut v, 126);
        put_size(&mut v, 127);
        assert_eq!(v, hex("FE 40 7F"));
    }

    #[test]
    fn forced_widths() {
        let mut v = Vec::new();
        put_size_width(&mut v, 0, 8).unwrap();
        assert_eq!(v, hex("01 00 00 00 00 00 00 00"));
        v.clear();
        put_header_min(&mut v, ids::ATTACHED_FILE, 56, 2);
        assert_eq!(v, hex("61 A7 40 38"));
        assert_eq!(
            put_size_width(&mut v, 127, 1),
            Err(EbmlError::SizeTooLarge {
                size: 127,
                width: 1
            })
        );
    }

    #[test]
    fn uints_and_sints() {
        let mut v = Vec::new();
        put_uint(&mut v, ids::TIMESTAMP, 0);
        put_uint(&mut v, ids::BLOCK_DURATION, 4376);
        put_uint(&mut v, ids::TIMESTAMP_SCALE, 1000);
        assert_eq!(v, hex("E7 81 00 9B 82 11 18 2A D7 B1 82 03 E8"));
        assert_eq!(sint_len(0), 1);
        assert_eq!(sint_len(-1), 1);
        assert_eq!(sint_len(127), 1);
        assert_eq!(sint_len(128), 2);
        assert_eq!(sint_len(-128), 1);
        assert_eq!(sint_len(-129), 2);
        v.clear();
        put_sint(&mut v, ids::REFERENCE_BLOCK, -129);
        assert_eq!(v, hex("FB 82 FF 7F"));
    }

    #[test]
    fn floats_strings_dates() {
        let mut v = Vec::new();
        put_f32(&mut v, ids::DURATION, 1.0);
        assert_eq!(v, hex("44 89 84 3F 80 00 00"));
        v.clear();
        put_f64(&mut v, ids::DURATION, 1.0);
        assert_eq!(v, hex("44 89 88 3F F0 00 00 00 00 00 00"));
        v.clear();
        put_str(&mut v, ids::TAG_NAME, "MY_TAG");
        let mut want = hex("45 A3 86");
        want.extend_from_slice(b"MY_TAG");
        assert_eq!(v, want);
        v.clear();
        // 2001-01-01T00:00:01Z
        put_date(&mut v, ids::DATE_UTC, ebml_date_from_unix_sec(978_307_201));
        assert_eq!(v, hex("44 61 88 00 00 00 00 3B 9A CA 00"));
    }

    #[test]
    fn global_tag_bytes_from_reference() {
        // libk4arecord's bytes for a global tag MY_TAG = "hello world".
        let mut st = Vec::new();
        put_str(&mut st, ids::TAG_NAME, "MY_TAG");
        put_str(&mut st, ids::TAG_STRING, "hello world");
        let mut tag = Vec::new();
        put_master(&mut tag, ids::TARGETS, &[]);
        put_master(&mut tag, ids::SIMPLE_TAG, &st);
        let mut v = Vec::new();
        put_master(&mut v, ids::TAG, &tag);
        let mut want = hex("73 73 9D 63 C0 80 67 C8 97 45 A3 86");
        want.extend_from_slice(b"MY_TAG");
        want.extend(hex("44 87 8B"));
        want.extend_from_slice(b"hello world");
        assert_eq!(v, want);
    }

    #[test]
    fn crc_element_is_little_endian_ieee() {
        // crc32("123456789") = 0xCBF43926.
        assert_eq!(
            crc32_element(b"123456789"),
            [0xBF, 0x84, 0x26, 0x39, 0xF4, 0xCB]
        );
        let mut v = Vec::new();
        put_master_crc(&mut v, ids::TAGS, b"123456789");
        assert_eq!(&v[..4], &hex("12 54 C3 67")[..]);
        assert_eq!(v[4], 0x80 | 15);
        assert_eq!(&v[5..11], &[0xBF, 0x84, 0x26, 0x39, 0xF4, 0xCB]);
    }

    #[test]
    fn void_filler_follows_libebml() {
        // libebml fills a gap with a Void whose size field widens once the data passes 126
        // bytes: 945 remaining bytes → EC 43 AE (data 942); 177 → EC 40 AE (data 174).
        let mut v = Vec::new();
        put_void_filler_header(&mut v, 945).unwrap();
        assert_eq!(v, hex("EC 43 AE"));
        v.clear();
        put_void_filler_header(&mut v, 177).unwrap();
        assert_eq!(v, hex("EC 40 AE"));
        // 129 remaining: width of 128 is 2, data 126 still uses the forced 2-byte width.
        v.clear();
        put_void_filler_header(&mut v, 129).unwrap();
        assert_eq!(v, hex("EC 40 7E"));
        v.clear();
        put_void_filler_header(&mut v, 2).unwrap();
        assert_eq!(v, hex("EC 80"));
        v.clear();
        put_void_filler_header(&mut v, 0).unwrap();
        assert!(v.is_empty());
        assert_eq!(
            put_void_filler_header(&mut v, 1),
            Err(EbmlError::OneByteRemainder)
        );
    }

    #[test]
    fn whole_voids() {
        // The SDK's reserved regions: 1027 bytes (data 1024) and 259 bytes (data 256).
        let mut v = Vec::new();
        put_void(&mut v, 1027).unwrap();
        assert_eq!(&v[..3], &hex("EC 44 00")[..]);
        assert_eq!(v.len(), 1027);
        v.clear();
        put_void(&mut v, 259).unwrap();
        assert_eq!(&v[..3], &hex("EC 41 00")[..]);
        assert_eq!(v.len(), 259);
    }

    #[test]
    fn replace_in_region_rules() {
        let elem = vec![0xAB; 82];
        let out = replace_in_region(&elem, 1027).unwrap();
        assert_eq!(out.len(), 85);
        assert_eq!(&out[82..], &hex("EC 43 AE")[..]);
        assert!(matches!(
            replace_in_region(&elem, 81),
            Err(EbmlError::NoRoom { .. })
        ));
        assert_eq!(
            replace_in_region(&elem, 83),
            Err(EbmlError::OneByteRemainder)
        );
        assert_eq!(replace_in_region(&elem, 82).unwrap(), elem);
    }
}
