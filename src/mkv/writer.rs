//! The K4A recording layout writer (crash-safe), over `Write + Seek`.
