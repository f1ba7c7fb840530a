//! SHA-256 helpers with a small digest cache.

use sha2::{Digest, Sha256};
use std::sync::Once;

mod cache;

static INIT: Once = Once::new();

/// SHA-256 of `data`, hex encoded.
pub fn sha256_hex(data: &[u8]) -> String {
    INIT.call_once(cache::prime);
    hex::encode(Sha256::digest(data))
}

/// SHA-256 of a file's contents.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    Ok(sha256_hex(&std::fs::read(path)?))
}

/// A 64-bit hash usable for MinHash sketches (first 8 bytes of SHA-256).
pub fn hash64(data: &[u8]) -> u64 {
    INIT.call_once(cache::prime);
    let d = Sha256::digest(data);
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}
