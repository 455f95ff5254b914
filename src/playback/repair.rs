//! Repair of unclosed or truncated recordings.
