//! Little-endian field helpers shared by the wire structures.
//!
//! Readers take a slice whose length the caller has already checked; every decoder in this
//! module tree checks the length first, so these helpers never see a short slice.

/// Reads a `u16` at `off`. The caller guarantees `off + 2 <= b.len()`.
pub(crate) fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

/// Reads an `i16` at `off`. The caller guarantees `off + 2 <= b.len()`.
pub(crate) fn i16_at(b: &[u8], off: usize) -> i16 {
    i16::from_le_bytes([b[off], b[off + 1]])
}

/// Reads a `u32` at `off`. The caller guarantees `off + 4 <= b.len()`.
pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Reads an `i32` at `off`. The caller guarantees `off + 4 <= b.len()`.
pub(crate) fn i32_at(b: &[u8], off: usize) -> i32 {
    u32_at(b, off) as i32
}

/// Reads a `u64` at `off`. The caller guarantees `off + 8 <= b.len()`.
pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from(u32_at(b, off)) | (u64::from(u32_at(b, off + 4)) << 32)
}

/// Reads an `f32` at `off`. The caller guarantees `off + 4 <= b.len()`.
pub(crate) fn f32_at(b: &[u8], off: usize) -> f32 {
    f32::from_bits(u32_at(b, off))
}

/// Appends little-endian values to a byte vector.
pub(crate) trait PutLe {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_i16(&mut self, v: i16);
    fn put_u32(&mut self, v: u32);
    fn put_i32(&mut self, v: i32);
    fn put_u64(&mut self, v: u64);
    fn put_f32(&mut self, v: f32);
}

impl PutLe for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_i16(&mut self, v: i16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_i32(&mut self, v: i32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_f32(&mut self, v: f32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
}

/// 90 kHz device ticks to microseconds, truncating, as the SDK does (`ticks × 100 / 9`).
///
/// The multiplication wraps like the SDK's u64 arithmetic for absurdly large tick counts.
pub fn ticks_to_usec(ticks: u64) -> u64 {
    ticks.wrapping_mul(100) / 9
}

/// Microseconds to 90 kHz device ticks, truncating, as the SDK does (`usec × 9 / 100`).
pub fn usec_to_ticks(usec: u64) -> u64 {
    usec.wrapping_mul(9) / 100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_like_the_sdk() {
        assert_eq!(ticks_to_usec(0), 0);
        assert_eq!(ticks_to_usec(9), 100);
        assert_eq!(ticks_to_usec(10), 111);
        assert_eq!(ticks_to_usec(90_000), 1_000_000);
        assert_eq!(ticks_to_usec(1_000_000), 11_111_111);
        assert_eq!(usec_to_ticks(1_000_000), 90_000);
        assert_eq!(usec_to_ticks(11), 0);
        assert_eq!(usec_to_ticks(12), 1);
    }
}
