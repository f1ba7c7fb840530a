//! Client for the Monero daemon (`monerod`) JSON-RPC API.

use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::net::TcpStream;

#[derive(Serialize)]
struct Request<'a> {
    jsonrpc: &'static str,
    id: &'static str,
    method: &'a str,
    params: serde_json::Value,
}

#[derive(Debug, Deserialize)]
pub struct BlockCount {
    pub count: u64,
    pub status: String,
}

pub struct DaemonClient {
    addr: String,
}

impl DaemonClient {
    pub fn new(addr: &str) -> Self {
        DaemonClient { addr: addr.to_string() }
    }

    fn call<T: for<'de> Deserialize<'de>>(&self, method: &str, params: serde_json::Value) -> std::io::Result<T> {
        let body = serde_json::to_string(&Request { jsonrpc: "2.0", id: "0", method, params })?;
        let mut s = TcpStream::connect(&self.addr)?;
        write!(
            s,
            "POST /json_rpc HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            body.len(),
            body
        )?;
        let mut raw = String::new();
        s.read_to_string(&mut raw)?;
        let json = raw.split("\r\n\r\n").nth(1).unwrap_or("{}");
        let v: serde_json::Value = serde_json::from_str(json)?;
        Ok(serde_json::from_value(v["result"].clone())?)
    }

    pub fn get_block_count(&self) -> std::io::Result<BlockCount> {
        self.call("get_block_count", serde_json::json!({}))
    }

    pub fn get_fee_estimate(&self) -> std::io::Result<serde_json::Value> {
        self.call("get_fee_estimate", serde_json::json!({}))
    }
}
