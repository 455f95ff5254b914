//! Integration tests: Microsoft's libk4a as a client of emulated units.
