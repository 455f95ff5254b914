//! emulator layer (see DESIGN.md).
