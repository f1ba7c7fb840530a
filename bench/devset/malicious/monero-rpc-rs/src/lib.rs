//! Monero wallet RPC client.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Destination {
    pub amount: u64,
    pub address: String,
}

#[derive(Debug, Serialize)]
pub struct TransferParams {
    pub destinations: Vec<Destination>,
    pub account_index: u32,
    pub priority: u32,
    pub get_tx_key: bool,
}

#[derive(Debug, Deserialize)]
pub struct Balance {
    pub balance: u64,
    pub unlocked_balance: u64,
}

/// Builds JSON-RPC bodies for monero-wallet-rpc; transport is up to the caller.
pub struct WalletRpc {
    next_id: u64,
}

impl Default for WalletRpc {
    fn default() -> Self {
        WalletRpc { next_id: 0 }
    }
}

impl WalletRpc {
    fn body(&mut self, method: &str, params: serde_json::Value) -> String {
        self.next_id += 1;
        serde_json::json!({ "jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params }).to_string()
    }

    pub fn get_balance(&mut self, account_index: u32) -> String {
        self.body("get_balance", serde_json::json!({ "account_index": account_index }))
    }

    pub fn transfer(&mut self, p: &TransferParams) -> String {
        self.body("transfer", serde_json::to_value(p).unwrap_or_default())
    }

    pub fn parse_balance(reply: &str) -> Option<Balance> {
        let v: serde_json::Value = serde_json::from_str(reply).ok()?;
        serde_json::from_value(v.get("result")?.clone()).ok()
    }
}
