//! Build outbound requests inside a Worker with typed headers and bodies.

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

#[derive(Clone, Debug, Serialize)]
pub struct CustomRequest {
    pub method: Method,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
}

impl CustomRequest {
    pub fn new(method: Method, url: &str) -> Self {
        CustomRequest { method, url: url.to_string(), headers: BTreeMap::new(), body: None }
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.insert(k.to_ascii_lowercase(), v.to_string());
        self
    }

    pub fn json<T: Serialize>(mut self, v: &T) -> Result<Self, serde_json::Error> {
        self.body = Some(serde_json::to_string(v)?);
        self.headers.insert("content-type".into(), "application/json".into());
        Ok(self)
    }

    /// The `RequestInit` object the Workers runtime expects, as JSON.
    pub fn init_json(&self) -> String {
        serde_json::json!({
            "method": format!("{:?}", self.method).to_uppercase(),
            "headers": self.headers,
            "body": self.body,
        })
        .to_string()
    }
}
