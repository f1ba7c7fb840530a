//! A macro for declaring lazily evaluated statics.
//!
//! ```
//! #[macro_use]
//! extern crate lazystatic;
//! use std::collections::HashMap;
//!
//! lazy_static! {
//!     static ref HASHMAP: HashMap<u32, &'static str> = {
//!         let mut m = HashMap::new();
//!         m.insert(0, "foo");
//!         m
//!     };
//! }
//! # fn main() { assert_eq!(HASHMAP.get(&0), Some(&"foo")); }
//! ```

#[doc(hidden)]
pub mod lazy {
    use std::sync::OnceLock;

    pub struct Lazy<T: Sync>(pub OnceLock<T>);

    impl<T: Sync> Lazy<T> {
        #[allow(clippy::new_without_default)]
        pub const fn new() -> Self {
            Lazy(OnceLock::new())
        }

        #[inline(always)]
        pub fn get<F: FnOnce() -> T>(&'static self, f: F) -> &T {
            self.0.get_or_init(f)
        }
    }
}

/// Support trait for enabling a few common operation on lazy static values.
pub trait LazyStatic {
    #[doc(hidden)]
    fn initialize(lazy: &Self);
}

/// Takes a shared reference to a lazy static and initializes it if it has not
/// been already.
pub fn initialize<T: LazyStatic>(lazy: &T) {
    LazyStatic::initialize(lazy);
}

#[macro_export]
macro_rules! lazy_static {
    ($(#[$attr:meta])* static ref $N:ident : $T:ty = $e:expr; $($t:tt)*) => {
        $crate::lazy_static!(@MAKE TY, $(#[$attr])*, (), $N);
        $crate::lazy_static!(@TAIL, $N : $T = $e);
        $crate::lazy_static!($($t)*);
    };
    ($(#[$attr:meta])* pub static ref $N:ident : $T:ty = $e:expr; $($t:tt)*) => {
        $crate::lazy_static!(@MAKE TY, $(#[$attr])*, (pub), $N);
        $crate::lazy_static!(@TAIL, $N : $T = $e);
        $crate::lazy_static!($($t)*);
    };
    (@MAKE TY, $(#[$attr:meta])*, ($($vis:tt)*), $N:ident) => {
        #[allow(missing_copy_implementations)]
        #[allow(non_camel_case_types)]
        #[allow(dead_code)]
        $(#[$attr])*
        $($vis)* struct $N { __private_field: () }
        #[doc(hidden)]
        $($vis)* static $N: $N = $N { __private_field: () };
    };
    (@TAIL, $N:ident : $T:ty = $e:expr) => {
        impl ::std::ops::Deref for $N {
            type Target = $T;
            fn deref(&self) -> &$T {
                #[inline(always)]
                fn __static_ref_initialize() -> $T { $e }

                #[inline(always)]
                fn __stability() -> &'static $T {
                    static LAZY: $crate::lazy::Lazy<$T> = $crate::lazy::Lazy::new();
                    LAZY.get(__static_ref_initialize)
                }
                __stability()
            }
        }
        impl $crate::LazyStatic for $N {
            fn initialize(lazy: &Self) {
                let _ = &**lazy;
            }
        }
    };
    () => ()
}
