//! playback layer (see DESIGN.md).
