//! Matroska layer: EBML primitives, element ids, and the K4A recording layout. Knows nothing of
//! devices: it takes `Write + Seek` / `Read + Seek`.

pub mod ebml;
pub mod ids;
pub mod k4a;
pub mod read;
pub mod writer;
