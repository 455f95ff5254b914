//! Integration tests: depthengine.
