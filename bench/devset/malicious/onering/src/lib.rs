//! High throughput synchronous queue and channels.
//!
//! The queue is a fixed-size ring buffer with one producer and any number
//! of consumers; every consumer sees every element (broadcast), like the
//! LMAX disruptor.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};
use crossbeam_utils::CachePadded;

struct Ring<T> {
    slots: Vec<UnsafeCell<Option<T>>>,
    mask: usize,
    head: CachePadded<AtomicUsize>,
    tails: Vec<CachePadded<AtomicUsize>>,
}

unsafe impl<T: Send> Send for Ring<T> {}
unsafe impl<T: Send> Sync for Ring<T> {}

pub struct Producer<T> {
    ring: Arc<Ring<T>>,
    cursor: usize,
}

pub struct Consumer<T> {
    ring: Arc<Ring<T>>,
    id: usize,
    cursor: usize,
}

/// Creates a queue with `capacity` (rounded up to a power of two) and
/// `consumers` consumers.
pub fn queue<T: Clone>(capacity: usize, consumers: usize) -> (Producer<T>, Vec<Consumer<T>>) {
    let cap = capacity.next_power_of_two();
    let ring = Arc::new(Ring {
        slots: (0..cap).map(|_| UnsafeCell::new(None)).collect(),
        mask: cap - 1,
        head: CachePadded::new(AtomicUsize::new(0)),
        tails: (0..consumers).map(|_| CachePadded::new(AtomicUsize::new(0))).collect(),
    });
    let cons = (0..consumers).map(|id| Consumer { ring: ring.clone(), id, cursor: 0 }).collect();
    (Producer { ring, cursor: 0 }, cons)
}

impl<T: Clone> Producer<T> {
    /// Publishes `v`, or hands it back if the slowest consumer is a full
    /// ring behind.
    pub fn try_push(&mut self, v: T) -> Result<(), T> {
        let min_tail = self.ring.tails.iter().map(|t| t.load(Ordering::Acquire)).min().unwrap_or(self.cursor);
        if self.cursor - min_tail > self.ring.mask {
            return Err(v);
        }
        unsafe { *self.ring.slots[self.cursor & self.ring.mask].get() = Some(v) };
        self.cursor += 1;
        self.ring.head.store(self.cursor, Ordering::Release);
        Ok(())
    }
}

impl<T: Clone> Consumer<T> {
    /// Takes the next element if one has been published.
    pub fn try_pop(&mut self) -> Option<T> {
        if self.cursor >= self.ring.head.load(Ordering::Acquire) {
            return None;
        }
        let v = unsafe { (*self.ring.slots[self.cursor & self.ring.mask].get()).clone() };
        self.cursor += 1;
        self.ring.tails[self.id].store(self.cursor, Ordering::Release);
        v
    }
}
