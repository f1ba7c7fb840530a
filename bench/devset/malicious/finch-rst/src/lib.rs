//! Finch: MinHash sketches of genomic sequences for fast distance estimates.

pub mod distance;
pub mod sketch;

pub use distance::{distance, Distance};
pub use sketch::{Sketch, SketchParams};

/// Sketches a sequence with default parameters (k = 21, 1000 hashes).
pub fn sketch_sequence(name: &str, seq: &[u8]) -> Sketch {
    SketchParams::default().sketch(name, seq)
}
