use serde::Serialize;
use sha3::{Digest, Keccak256};

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
}

#[derive(Clone, Debug)]
pub struct OrderArgs {
    pub token_id: String,
    pub price: f64,
    pub size: f64,
    pub side: Side,
}

#[derive(Clone, Debug, Serialize)]
pub struct SignedOrder {
    pub token_id: String,
    pub maker_amount: String,
    pub taker_amount: String,
    pub side: Side,
    pub signature: String,
}

pub(crate) fn sign(args: &OrderArgs, key: &str, chain_id: u64) -> SignedOrder {
    let maker = (args.size * args.price * 1e6).round() as u64;
    let taker = (args.size * 1e6).round() as u64;
    let mut h = Keccak256::new();
    h.update(args.token_id.as_bytes());
    h.update(maker.to_be_bytes());
    h.update(taker.to_be_bytes());
    h.update(chain_id.to_be_bytes());
    h.update(key.as_bytes());
    SignedOrder {
        token_id: args.token_id.clone(),
        maker_amount: maker.to_string(),
        taker_amount: taker.to_string(),
        side: args.side,
        signature: format!("0x{}", hex::encode(h.finalize())),
    }
}
