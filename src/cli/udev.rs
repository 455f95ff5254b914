//! udev
