//! Windows API helpers: file and handle utilities.

#![allow(non_camel_case_types)]

use std::io;

pub type HANDLE = *mut core::ffi::c_void;

macro_rules! bitflags_lite {
    ($name:ident : $t:ty { $($flag:ident = $v:expr,)* }) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
        pub struct $name($t);
        impl $name {
            $(pub const $flag: $name = $name($v);)*
            pub fn bits(self) -> $t { self.0 }
            pub fn contains(self, o: $name) -> bool { self.0 & o.0 == o.0 }
        }
        impl std::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, o: $name) -> $name { $name(self.0 | o.0) }
        }
    };
}
bitflags_lite! {
    AccessMode: u32 {
        FILE_READ_DATA = 0x0001,
        FILE_WRITE_DATA = 0x0002,
        FILE_APPEND_DATA = 0x0004,
        FILE_READ_ATTRIBUTES = 0x0080,
        FILE_WRITE_ATTRIBUTES = 0x0100,
        SYNCHRONIZE = 0x0010_0000,
    }
}


/// Maps a Win32 error code to `io::Error`.
pub fn win_error(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// Converts a path to a NUL-terminated wide string with the `\\?\` prefix
/// for long paths.
pub fn long_path(p: &std::path::Path) -> Vec<u16> {
    let s = p.display().to_string();
    let s = if s.len() > 240 && !s.starts_with(r"\\?\") { format!(r"\\?\{}", s) } else { s };
    s.encode_utf16().chain(Some(0)).collect()
}
