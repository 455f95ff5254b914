//! transport layer (see DESIGN.md).
