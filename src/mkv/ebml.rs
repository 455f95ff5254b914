//! EBML primitives: variable-length integers, element headers, typed values, CRC-32 (write side).
