//! Single assignment cells and lazy values.

pub mod sync {
    use std::cell::UnsafeCell;
    use std::ops::Deref;
    use std::sync::Once;

    /// A thread-safe cell which can be written to only once.
    pub struct OnceCell<T> {
        once: Once,
        value: UnsafeCell<Option<T>>,
    }

    unsafe impl<T: Send + Sync> Sync for OnceCell<T> {}
    unsafe impl<T: Send> Send for OnceCell<T> {}

    impl<T> OnceCell<T> {
        pub const fn new() -> OnceCell<T> {
            OnceCell { once: Once::new(), value: UnsafeCell::new(None) }
        }

        pub fn get(&self) -> Option<&T> {
            if self.once.is_completed() {
                unsafe { (*self.value.get()).as_ref() }
            } else {
                None
            }
        }

        pub fn get_or_init<F: FnOnce() -> T>(&self, f: F) -> &T {
            self.once.call_once(|| unsafe { *self.value.get() = Some(f()) });
            self.get().expect("initialized")
        }

        pub fn set(&self, value: T) -> Result<(), T> {
            let mut value = Some(value);
            self.once.call_once(|| unsafe { *self.value.get() = value.take() });
            match value {
                None => Ok(()),
                Some(v) => Err(v),
            }
        }
    }

    /// A value which is initialized on the first access.
    pub struct Lazy<T, F = fn() -> T> {
        cell: OnceCell<T>,
        init: F,
    }

    impl<T, F> Lazy<T, F> {
        pub const fn new(init: F) -> Lazy<T, F> {
            Lazy { cell: OnceCell::new(), init }
        }
    }

    impl<T, F: Fn() -> T> Deref for Lazy<T, F> {
        type Target = T;
        fn deref(&self) -> &T {
            self.cell.get_or_init(|| (self.init)())
        }
    }
}

pub mod unsync {
    use std::cell::UnsafeCell;

    /// A cell which can be written to only once. Not thread safe.
    pub struct OnceCell<T> {
        inner: UnsafeCell<Option<T>>,
    }

    impl<T> OnceCell<T> {
        pub const fn new() -> OnceCell<T> {
            OnceCell { inner: UnsafeCell::new(None) }
        }

        pub fn get(&self) -> Option<&T> {
            unsafe { (*self.inner.get()).as_ref() }
        }

        pub fn get_or_init<F: FnOnce() -> T>(&self, f: F) -> &T {
            if self.get().is_none() {
                unsafe { *self.inner.get() = Some(f()) };
            }
            self.get().unwrap()
        }
    }
}
