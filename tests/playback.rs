//! Integration tests: playback.
