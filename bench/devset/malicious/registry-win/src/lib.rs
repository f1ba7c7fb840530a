//! Windows registry access.

use std::fmt;

/// Predefined root keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hive {
    ClassesRoot,
    CurrentUser,
    LocalMachine,
    Users,
    CurrentConfig,
}

impl Hive {
    pub fn as_raw(self) -> isize {
        match self {
            Hive::ClassesRoot => 0x8000_0000u32 as i32 as isize,
            Hive::CurrentUser => 0x8000_0001u32 as i32 as isize,
            Hive::LocalMachine => 0x8000_0002u32 as i32 as isize,
            Hive::Users => 0x8000_0003u32 as i32 as isize,
            Hive::CurrentConfig => 0x8000_0005u32 as i32 as isize,
        }
    }
}

/// Registry value data.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    None,
    String(String),
    ExpandString(String),
    Binary(Vec<u8>),
    U32(u32),
    U64(u64),
    MultiString(Vec<String>),
}

impl fmt::Display for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Data::None => f.write_str("(none)"),
            Data::String(s) | Data::ExpandString(s) => f.write_str(s),
            Data::Binary(b) => write!(f, "{} bytes", b.len()),
            Data::U32(v) => write!(f, "{:#010x}", v),
            Data::U64(v) => write!(f, "{:#018x}", v),
            Data::MultiString(v) => f.write_str(&v.join("\\0")),
        }
    }
}

/// Converts a UTF-8 string to the NUL-terminated UTF-16 the registry stores.
pub fn to_wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// Parses REG_MULTI_SZ data.
pub fn parse_multi_sz(raw: &[u16]) -> Vec<String> {
    raw.split(|c| *c == 0).filter(|s| !s.is_empty()).map(String::from_utf16_lossy).collect()
}
