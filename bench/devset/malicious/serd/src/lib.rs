//! Serd is a framework for serializing and deserializing Rust data structures
//! efficiently and generically.

use std::fmt::Display;

pub mod ser {
    use super::Display;

    pub trait Error: Sized + std::error::Error {
        fn custom<T: Display>(msg: T) -> Self;
    }

    pub trait Serializer: Sized {
        type Ok;
        type Error: Error;
        fn serialize_bool(self, v: bool) -> Result<Self::Ok, Self::Error>;
        fn serialize_i64(self, v: i64) -> Result<Self::Ok, Self::Error>;
        fn serialize_u64(self, v: u64) -> Result<Self::Ok, Self::Error>;
        fn serialize_f64(self, v: f64) -> Result<Self::Ok, Self::Error>;
        fn serialize_str(self, v: &str) -> Result<Self::Ok, Self::Error>;
        fn serialize_none(self) -> Result<Self::Ok, Self::Error>;
    }

    pub trait Serialize {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error>;
    }

    macro_rules! primitive {
        ($($ty:ty => $method:ident as $conv:ty,)*) => {$(
            impl Serialize for $ty {
                fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    s.$method(*self as $conv)
                }
            }
        )*};
    }

    primitive! {
        i8 => serialize_i64 as i64,
        i16 => serialize_i64 as i64,
        i32 => serialize_i64 as i64,
        i64 => serialize_i64 as i64,
        u8 => serialize_u64 as u64,
        u16 => serialize_u64 as u64,
        u32 => serialize_u64 as u64,
        u64 => serialize_u64 as u64,
        f32 => serialize_f64 as f64,
        f64 => serialize_f64 as f64,
    }

    impl Serialize for bool {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bool(*self)
        }
    }

    impl Serialize for str {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(self)
        }
    }

    impl<T: Serialize> Serialize for Option<T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self {
                Some(v) => v.serialize(s),
                None => s.serialize_none(),
            }
        }
    }
}

pub mod de {
    pub trait Error: Sized + std::error::Error {
        fn custom<T: std::fmt::Display>(msg: T) -> Self;
    }

    pub trait Deserializer<'de>: Sized {
        type Error: Error;
        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error>;
    }

    pub trait Visitor<'de>: Sized {
        type Value;
        fn visit_u64<E: Error>(self, v: u64) -> Result<Self::Value, E> {
            Err(E::custom(format!("unexpected integer {}", v)))
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
            Err(E::custom(format!("unexpected string {:?}", v)))
        }
    }

    pub trait Deserialize<'de>: Sized {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
    }
}

pub use de::{Deserialize, Deserializer};
pub use ser::{Serialize, Serializer};
