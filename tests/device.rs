//! Integration tests: device.
