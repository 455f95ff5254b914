//! Emulated depth engine (see crate docs).
