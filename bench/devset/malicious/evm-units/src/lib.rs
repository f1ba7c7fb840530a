//! Unit conversions for EVM chains.
//!
//! ```
//! use evm_units::{parse_units, format_units};
//! assert_eq!(parse_units("1.5", 18).unwrap(), 1_500_000_000_000_000_000u128);
//! assert_eq!(format_units(1_500_000_000u128, 9), "1.5");
//! ```

mod version;

pub use version::get_evm_version;

pub const WEI: u32 = 0;
pub const GWEI: u32 = 9;
pub const ETHER: u32 = 18;

#[derive(Debug, PartialEq, Eq)]
pub enum UnitError {
    TooManyDecimals,
    Invalid,
    Overflow,
}

/// Parses a decimal string into base units with `decimals` places.
pub fn parse_units(s: &str, decimals: u32) -> Result<u128, UnitError> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > decimals as usize {
        return Err(UnitError::TooManyDecimals);
    }
    let int: u128 = if int.is_empty() { 0 } else { int.parse().map_err(|_| UnitError::Invalid)? };
    let mut frac_s = frac.to_string();
    while frac_s.len() < decimals as usize {
        frac_s.push('0');
    }
    let frac: u128 = if frac_s.is_empty() { 0 } else { frac_s.parse().map_err(|_| UnitError::Invalid)? };
    int.checked_mul(10u128.pow(decimals))
        .and_then(|v| v.checked_add(frac))
        .ok_or(UnitError::Overflow)
}

/// Formats base units as a decimal string without trailing zeros.
pub fn format_units(v: u128, decimals: u32) -> String {
    let base = 10u128.pow(decimals);
    let (int, frac) = (v / base, v % base);
    if frac == 0 {
        return int.to_string();
    }
    let mut f = format!("{:0width$}", frac, width = decimals as usize);
    while f.ends_with('0') {
        f.pop();
    }
    format!("{}.{}", int, f)
}

/// Converts gwei to wei.
pub fn gwei_to_wei(gwei: u128) -> u128 {
    gwei * 10u128.pow(GWEI)
}
