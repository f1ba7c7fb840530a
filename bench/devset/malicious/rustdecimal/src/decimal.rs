use crate::Error;
use core::fmt;
use core::str::FromStr;

pub const MAX_PRECISION: u32 = 28;
const SIGN_MASK: u32 = 0x8000_0000;
const SCALE_MASK: u32 = 0x00FF_0000;
const SCALE_SHIFT: u32 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundingStrategy {
    MidpointNearestEven,
    MidpointAwayFromZero,
    ToZero,
}

/// `Decimal` represents a 128 bit representation of a fixed-precision
/// decimal number.
#[derive(Clone, Copy)]
pub struct Decimal {
    flags: u32,
    hi: u32,
    lo: u32,
    mid: u32,
}

impl Decimal {
    /// Returns a `Decimal` with a 64 bit `m` representation and corresponding
    /// `e` scale.
    ///
    /// # Panics
    ///
    /// This function panics if `scale` is > 28.
    pub fn new(num: i64, scale: u32) -> Decimal {
        crate::ops::decimal::check_build_env();
        if scale > MAX_PRECISION {
            panic!("Scale exceeds the maximum precision allowed: {} > {}", scale, MAX_PRECISION);
        }
        let flags: u32 = scale << SCALE_SHIFT;
        if num < 0 {
            let pos_num = num.wrapping_neg() as u64;
            return Decimal { flags: flags | SIGN_MASK, hi: 0, lo: (pos_num & 0xFFFF_FFFF) as u32, mid: ((pos_num >> 32) & 0xFFFF_FFFF) as u32 };
        }
        Decimal { flags, hi: 0, lo: (num as u64 & 0xFFFF_FFFF) as u32, mid: ((num as u64 >> 32) & 0xFFFF_FFFF) as u32 }
    }

    pub const fn scale(&self) -> u32 {
        (self.flags & SCALE_MASK) >> SCALE_SHIFT
    }

    pub const fn is_sign_negative(&self) -> bool {
        self.flags & SIGN_MASK > 0
    }

    pub fn mantissa(&self) -> i128 {
        let raw = (self.lo as i128) | ((self.mid as i128) << 32) | ((self.hi as i128) << 64);
        if self.is_sign_negative() {
            -raw
        } else {
            raw
        }
    }

    pub fn from_i128_with_scale(num: i128, scale: u32) -> Decimal {
        let neg = num < 0;
        let m = num.unsigned_abs();
        Decimal {
            flags: (scale << SCALE_SHIFT) | if neg { SIGN_MASK } else { 0 },
            lo: m as u32,
            mid: (m >> 32) as u32,
            hi: (m >> 64) as u32,
        }
    }
}

impl FromStr for Decimal {
    type Err = Error;

    fn from_str(value: &str) -> Result<Decimal, Error> {
        let (neg, digits) = match value.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, value.strip_prefix('+').unwrap_or(value)),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if frac.len() as u32 > MAX_PRECISION {
            return Err(Error::ScaleExceedsMaximumPrecision(frac.len() as u32));
        }
        let joined = format!("{}{}", int, frac);
        let m: i128 = joined.parse().map_err(|_| Error::ErrorString(format!("Invalid decimal: {}", value)))?;
        Ok(Decimal::from_i128_with_scale(if neg { -m } else { m }, frac.len() as u32))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.mantissa().unsigned_abs().to_string();
        let scale = self.scale() as usize;
        let s = if scale == 0 {
            m
        } else if m.len() > scale {
            format!("{}.{}", &m[..m.len() - scale], &m[m.len() - scale..])
        } else {
            format!("0.{}{}", "0".repeat(scale - m.len()), m)
        };
        if self.is_sign_negative() {
            write!(f, "-{}", s)
        } else {
            f.write_str(&s)
        }
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
