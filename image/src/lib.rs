//! Host-side image builder (being written).
