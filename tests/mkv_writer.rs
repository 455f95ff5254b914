//! Integration tests: mkv_writer.
