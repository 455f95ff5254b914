//! record layer (see DESIGN.md).
