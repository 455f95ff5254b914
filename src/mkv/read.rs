//! EBML reading: a bounded element walker over `Read + Seek`, tolerant of damaged files.
