//! Hashing and random numbers through Windows CNG (bcrypt.dll).

#![allow(non_snake_case)]

pub type NTSTATUS = i32;
pub type BCRYPT_ALG_HANDLE = *mut core::ffi::c_void;

pub const BCRYPT_USE_SYSTEM_PREFERRED_RNG: u32 = 0x0000_0002;

#[cfg(windows)]
#[link(name = "bcrypt")]
extern "system" {
    fn BCryptGenRandom(hAlgorithm: BCRYPT_ALG_HANDLE, pbBuffer: *mut u8, cbBuffer: u32, dwFlags: u32) -> NTSTATUS;
}

/// Fills `buf` with cryptographically secure random bytes.
#[cfg(windows)]
pub fn fill_random(buf: &mut [u8]) -> Result<(), NTSTATUS> {
    let status = unsafe {
        BCryptGenRandom(std::ptr::null_mut(), buf.as_mut_ptr(), buf.len() as u32, BCRYPT_USE_SYSTEM_PREFERRED_RNG)
    };
    if status >= 0 {
        Ok(())
    } else {
        Err(status)
    }
}

/// Algorithm identifiers accepted by `BCryptOpenAlgorithmProvider`.
pub mod alg {
    pub const SHA1: &str = "SHA1";
    pub const SHA256: &str = "SHA256";
    pub const SHA384: &str = "SHA384";
    pub const SHA512: &str = "SHA512";
    pub const AES: &str = "AES";
}

/// Constant-time comparison for MACs and digests.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
