//! Write OpenVPN plugins in Rust.

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::raw::c_char;

/// Plugin event types (`OPENVPN_PLUGIN_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum EventType {
    Up = 0,
    Down = 1,
    RouteUp = 2,
    IpChange = 3,
    TlsVerify = 4,
    AuthUserPassVerify = 5,
    ClientConnect = 6,
    ClientDisconnect = 7,
    LearnAddress = 8,
}

/// Result a plugin returns to OpenVPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum EventResult {
    Success = 0,
    Failure = 1,
    Deferred = 2,
}

/// Bitmask of events a plugin wants.
pub fn events_mask(events: &[EventType]) -> i32 {
    events.iter().fold(0, |m, e| m | 1 << (*e as i32))
}

/// Converts a NULL-terminated `char**` (like `envp`) into a map.
///
/// # Safety
/// `ptr` must be null or point to a NULL-terminated array of valid C strings.
pub unsafe fn env_to_map(mut ptr: *const *const c_char) -> HashMap<String, String> {
    let mut map = HashMap::new();
    if ptr.is_null() {
        return map;
    }
    while !(*ptr).is_null() {
        let s = CStr::from_ptr(*ptr).to_string_lossy();
        if let Some((k, v)) = s.split_once('=') {
            map.insert(k.to_string(), v.to_string());
        }
        ptr = ptr.add(1);
    }
    map
}
