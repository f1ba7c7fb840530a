//! Generated protobuf types for the statsrelay wire format.

pub mod statsrelay {
    include!(concat!(env!("OUT_DIR"), "/statsrelay.rs"));
}

pub use statsrelay::{Batch, Sample};
