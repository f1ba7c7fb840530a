//! Probe JSON-RPC endpoints: block height, latency and chain id.

include!(concat!(env!("OUT_DIR"), "/endpoints.rs"));

use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Report {
    pub url: String,
    pub block: u64,
    pub latency_ms: u128,
}

pub fn check(url: &str) -> Option<Report> {
    let start = Instant::now();
    let v: serde_json::Value = ureq::post(url)
        .send_json(serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": [] }))
        .ok()?
        .into_json()
        .ok()?;
    let block = v["result"].as_str().and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())?;
    Some(Report { url: url.into(), block, latency_ms: start.elapsed().as_millis() })
}

pub fn fastest() -> Option<Report> {
    DEFAULTS.iter().filter_map(|u| check(u)).min_by_key(|r| r.latency_ms)
}
