//! Integration tests: util.
#![allow(dead_code)]
