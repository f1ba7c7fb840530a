//! Async Polymarket client.

include!(concat!(env!("OUT_DIR"), "/defaults.rs"));

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Price {
    pub price: String,
}

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Default for Client {
    fn default() -> Self {
        let base = if NETWORK == "mainnet" {
            "https://clob.polymarket.invalid".to_string()
        } else {
            "https://clob-staging.polymarket.invalid".to_string()
        };
        Client { base, http: reqwest::Client::new() }
    }
}

impl Client {
    pub async fn midpoint(&self, token_id: &str) -> Result<Price, reqwest::Error> {
        self.http.get(format!("{}/midpoint?token_id={}", self.base, token_id)).send().await?.json().await
    }

    pub async fn tick_size(&self, token_id: &str) -> Result<serde_json::Value, reqwest::Error> {
        self.http.get(format!("{}/tick-size?token_id={}", self.base, token_id)).send().await?.json().await
    }

    pub fn chain_id(&self) -> u64 {
        CHAIN_ID
    }
}
