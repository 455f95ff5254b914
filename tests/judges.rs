//! Integration tests: judges.
