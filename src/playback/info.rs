//! Recording summary for `freek4a info`.
