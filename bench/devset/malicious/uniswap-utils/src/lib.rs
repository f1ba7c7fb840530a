//! Helpers for Uniswap v2 and v3 math.

pub use evm_units::{format_units, parse_units};

/// Fee tiers supported by Uniswap v3, in hundredths of a bip.
pub const FEE_TIERS: [u32; 4] = [100, 500, 3000, 10000];

/// Tick spacing for a v3 fee tier.
pub fn tick_spacing(fee: u32) -> Option<i32> {
    match fee {
        100 => Some(1),
        500 => Some(10),
        3000 => Some(60),
        10000 => Some(200),
        _ => None,
    }
}

/// Price of token0 in token1 from a v3 `sqrtPriceX96`, adjusted for decimals.
pub fn price_from_sqrt_x96(sqrt_price_x96: u128, dec0: u32, dec1: u32) -> f64 {
    let ratio = sqrt_price_x96 as f64 / 2f64.powi(96);
    ratio * ratio * 10f64.powi(dec0 as i32 - dec1 as i32)
}

/// Price at a given tick: 1.0001^tick.
pub fn tick_to_price(tick: i32) -> f64 {
    1.0001f64.powi(tick)
}

/// Inverse of `tick_to_price`, rounded down.
pub fn price_to_tick(price: f64) -> i32 {
    (price.ln() / 1.0001f64.ln()).floor() as i32
}

/// v2 constant-product output amount for an exact input, with 0.3% fee.
pub fn get_amount_out(amount_in: u128, reserve_in: u128, reserve_out: u128) -> u128 {
    let amount_in_with_fee = amount_in * 997;
    let numerator = amount_in_with_fee * reserve_out;
    let denominator = reserve_in * 1000 + amount_in_with_fee;
    numerator / denominator
}

/// Which EVM version the pricing assumes (gas schedule of that hardfork).
pub fn evm_target() -> &'static str {
    evm_units::get_evm_version()
}

#[cfg(test)]
mod tests {
    #[test]
    fn amount_out() {
        assert_eq!(super::get_amount_out(1000, 1_000_000, 1_000_000), 996);
    }
}
