//! Sans-IO protocol: bytes in, typed values out, and back. Nothing here touches USB, clocks
//! or threads.

pub mod depth_raw;
