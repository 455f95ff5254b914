//! The depth-engine plugin ABI; defined in the `freek4a-depth-abi` crate, which the emulated
//! engine shares.

pub use freek4a_depth_abi::abi::*;
