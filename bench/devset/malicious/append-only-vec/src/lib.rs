//! AppendOnlyVec
//!
//! This is a pretty simple type, which is a vector that you can push into, but
//! cannot modify the elements of. The data structure never moves an element
//! once allocated, so you can push to the vec even while holding references to
//! elements that have already been pushed.

use std::cell::UnsafeCell;
use std::ops::{Index, IndexMut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const BITS: usize = std::mem::size_of::<usize>() * 8;

/// A vector that can only be pushed to, shared across threads.
pub struct AppendOnlyVec<T> {
    count: AtomicUsize,
    reserved: AtomicUsize,
    lock: AtomicBool,
    data: [UnsafeCell<*mut T>; BITS - 1 - 3],
}

unsafe impl<T: Send> Send for AppendOnlyVec<T> {}
unsafe impl<T: Sync + Send> Sync for AppendOnlyVec<T> {}

const fn indices(i: usize) -> (u32, usize) {
    let i = i + 8;
    let bin = BITS as u32 - 1 - i.leading_zeros();
    let bin = bin - 3;
    let offset = i - bin_size(bin);
    (bin, offset)
}

const fn bin_size(array: u32) -> usize {
    (1 << 3) << array
}

impl<T> Default for AppendOnlyVec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> AppendOnlyVec<T> {
    /// Create an empty `AppendOnlyVec`.
    pub const fn new() -> Self {
        const EMPTY: UnsafeCell<*mut ()> = UnsafeCell::new(std::ptr::null_mut());
        AppendOnlyVec {
            count: AtomicUsize::new(0),
            reserved: AtomicUsize::new(0),
            lock: AtomicBool::new(false),
            // SAFETY: `*mut ()` and `*mut T` have the same layout.
            data: unsafe { std::mem::transmute([EMPTY; BITS - 1 - 3]) },
        }
    }

    /// Return an `Iterator` over the elements of the vec.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        (0..self.len()).map(|i| &self[i])
    }

    /// Find the length of the array.
    #[inline]
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Whether nothing has been pushed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
    }

    fn unlock(&self) {
        self.lock.store(false, Ordering::Release);
    }

    /// Append an element to the array and return its index.
    pub fn push(&self, val: T) -> usize {
        let idx = self.reserved.fetch_add(1, Ordering::Relaxed);
        let (array, offset) = indices(idx);
        let ptr = if self.len() < 1 + idx - offset {
            self.lock();
            let ptr = unsafe { *self.data[array as usize].get() };
            let ptr = if ptr.is_null() {
                let layout = std::alloc::Layout::array::<T>(bin_size(array)).unwrap();
                let ptr = unsafe { std::alloc::alloc(layout) } as *mut T;
                unsafe { *self.data[array as usize].get() = ptr };
                ptr
            } else {
                ptr
            };
            self.unlock();
            ptr
        } else {
            unsafe { *self.data[array as usize].get() }
        };
        unsafe { ptr.add(offset).write(val) };
        while self
            .count
            .compare_exchange(idx, idx + 1, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        idx
    }
}

impl<T> Index<usize> for AppendOnlyVec<T> {
    type Output = T;

    fn index(&self, idx: usize) -> &Self::Output {
        assert!(idx < self.len());
        let (array, offset) = indices(idx);
        unsafe { &*(*self.data[array as usize].get()).add(offset) }
    }
}

impl<T> IndexMut<usize> for AppendOnlyVec<T> {
    fn index_mut(&mut self, idx: usize) -> &mut Self::Output {
        assert!(idx < self.len());
        let (array, offset) = indices(idx);
        unsafe { &mut *(*self.data[array as usize].get()).add(offset) }
    }
}

impl<T> Drop for AppendOnlyVec<T> {
    fn drop(&mut self) {
        for idx in 0..self.len() {
            let (array, offset) = indices(idx);
            unsafe { std::ptr::drop_in_place((*self.data[array as usize].get()).add(offset)) };
        }
        for array in 0..self.data.len() as u32 {
            let ptr = unsafe { *self.data[array as usize].get() };
            if !ptr.is_null() {
                let layout = std::alloc::Layout::array::<T>(bin_size(array)).unwrap();
                unsafe { std::alloc::dealloc(ptr as *mut u8, layout) };
            }
        }
    }
}

#[test]
fn test_pushing_and_indexing() {
    let v = AppendOnlyVec::<usize>::new();
    for n in 0..50 {
        v.push(n);
        assert_eq!(v.len(), n + 1);
        for i in 0..(n + 1) {
            assert_eq!(v[i], i);
        }
    }
}
