//! Instrument ethers-rs JSON-RPC traffic with tracing spans.
//!
//! ```no_run
//! tracing_ethers::init_tracing("info");
//! ```

use std::time::Instant;
use tracing::{info_span, Span};

mod export;

/// Installs a fmt subscriber with the given filter and the RPC exporter.
pub fn init_tracing(filter: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .try_init();
    export::register_node();
}

/// A span around one JSON-RPC request.
pub struct RpcSpan {
    span: Span,
    started: Instant,
}

impl RpcSpan {
    pub fn start(method: &str, chain_id: u64) -> Self {
        let span = info_span!("rpc", method, chain_id, latency_ms = tracing::field::Empty);
        RpcSpan { span, started: Instant::now() }
    }

    pub fn finish(self) {
        self.span.record("latency_ms", self.started.elapsed().as_millis() as u64);
    }
}
