//! depthengine layer (see DESIGN.md).
