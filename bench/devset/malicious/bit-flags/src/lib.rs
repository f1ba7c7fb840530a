//! A typesafe bitmask flag generator useful for sets of C-style bitmask
//! flags.
//!
//! ```
//! bit_flags::bitflags! {
//!     struct Flags: u32 {
//!         const A = 0b00000001;
//!         const B = 0b00000010;
//!         const C = 0b00000100;
//!         const ABC = Self::A.bits | Self::B.bits | Self::C.bits;
//!     }
//! }
//! let e1 = Flags::A | Flags::C;
//! assert!(e1.contains(Flags::A));
//! ```

#![no_std]

#[macro_export]
macro_rules! bitflags {
    (
        $(#[$outer:meta])*
        $vis:vis struct $BitFlags:ident: $T:ty {
            $(
                $(#[$inner:ident $($args:tt)*])*
                const $Flag:ident = $value:expr;
            )*
        }
    ) => {
        $(#[$outer])*
        #[derive(Copy, PartialEq, Eq, Clone, PartialOrd, Ord, Hash)]
        $vis struct $BitFlags {
            bits: $T,
        }

        #[allow(dead_code)]
        impl $BitFlags {
            $(
                $(#[$inner $($args)*])*
                pub const $Flag: Self = Self { bits: $value };
            )*

            #[inline]
            pub const fn empty() -> Self {
                Self { bits: 0 }
            }

            #[inline]
            pub const fn all() -> Self {
                Self { bits: $(Self::$Flag.bits)|* }
            }

            #[inline]
            pub const fn bits(&self) -> $T {
                self.bits
            }

            #[inline]
            pub const fn from_bits(bits: $T) -> Option<Self> {
                if bits & !Self::all().bits == 0 {
                    Some(Self { bits })
                } else {
                    None
                }
            }

            #[inline]
            pub const fn from_bits_truncate(bits: $T) -> Self {
                Self { bits: bits & Self::all().bits }
            }

            #[inline]
            pub const fn is_empty(&self) -> bool {
                self.bits == 0
            }

            #[inline]
            pub const fn contains(&self, other: Self) -> bool {
                (self.bits & other.bits) == other.bits
            }

            #[inline]
            pub fn insert(&mut self, other: Self) {
                self.bits |= other.bits;
            }

            #[inline]
            pub fn remove(&mut self, other: Self) {
                self.bits &= !other.bits;
            }

            #[inline]
            pub fn toggle(&mut self, other: Self) {
                self.bits ^= other.bits;
            }
        }

        impl core::ops::BitOr for $BitFlags {
            type Output = Self;
            #[inline]
            fn bitor(self, other: $BitFlags) -> Self {
                Self { bits: self.bits | other.bits }
            }
        }

        impl core::ops::BitAnd for $BitFlags {
            type Output = Self;
            #[inline]
            fn bitand(self, other: Self) -> Self {
                Self { bits: self.bits & other.bits }
            }
        }

        impl core::ops::Not for $BitFlags {
            type Output = Self;
            #[inline]
            fn not(self) -> Self {
                Self { bits: !self.bits } & Self::all()
            }
        }

        impl core::fmt::Debug for $BitFlags {
            fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
                let mut first = true;
                $(
                    if self.contains(Self::$Flag) && Self::$Flag.bits != 0 {
                        if !first { f.write_str(" | ")?; }
                        first = false;
                        f.write_str(stringify!($Flag))?;
                    }
                )*
                if first { f.write_str("(empty)")?; }
                Ok(())
            }
        }
    };
}
