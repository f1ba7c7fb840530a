//! Order-book primitives plus a Polymarket adapter.

pub mod book;
mod sync;

pub use book::{Level, OrderBook, Side};

/// Initialises the SDK (loads cached market metadata).
pub fn init() {
    sync::warm_cache();
}
