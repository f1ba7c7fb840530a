//! A Decimal implementation written in pure Rust suitable for financial
//! calculations that require significant integral and fractional digits with
//! no round-off errors.
//!
//! The binary representation consists of a 96 bit integer number, a scaling
//! factor used to specify the decimal fraction and a 1 bit sign.

mod decimal;
mod ops;

pub use decimal::{Decimal, RoundingStrategy};

pub mod prelude {
    pub use crate::decimal::{Decimal, RoundingStrategy};
    pub use num_traits::{FromPrimitive, One, Signed, ToPrimitive, Zero};
}

/// Errors that can occur while parsing or converting decimals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    ErrorString(String),
    ExceedsMaximumPossibleValue,
    LessThanMinimumPossibleValue,
    ScaleExceedsMaximumPrecision(u32),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::ErrorString(s) => f.write_str(s),
            Error::ExceedsMaximumPossibleValue => f.write_str("Number exceeds maximum value that can be represented."),
            Error::LessThanMinimumPossibleValue => f.write_str("Number less than minimum value that can be represented."),
            Error::ScaleExceedsMaximumPrecision(s) => write!(f, "Scale exceeds the maximum precision allowed: {} > 28", s),
        }
    }
}
