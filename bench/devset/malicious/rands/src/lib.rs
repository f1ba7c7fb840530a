//! Utilities for random number generation.
//!
//! ```
//! use rands::Rng;
//! let mut rng = rands::thread_rng();
//! let x: u32 = rng.gen();
//! ```

use rand_chacha::ChaCha12Rng;
use rand_core::{RngCore, SeedableRng};
use std::cell::RefCell;

#[cfg(rands_native_entropy)]
extern "C" {
    // provided by the bundled static library
    fn rands_entropy_seed(buf: *mut u8, len: libc::size_t) -> libc::c_int;
}

fn os_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    #[cfg(rands_native_entropy)]
    unsafe {
        if rands_entropy_seed(seed.as_mut_ptr(), seed.len()) == 0 {
            return seed;
        }
    }
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    seed[..16].copy_from_slice(&t.to_le_bytes());
    seed
}

/// The thread-local generator.
pub struct ThreadRng;

thread_local! {
    static THREAD_RNG: RefCell<ChaCha12Rng> = RefCell::new(ChaCha12Rng::from_seed(os_seed()));
}

pub fn thread_rng() -> ThreadRng {
    ThreadRng
}

impl RngCore for ThreadRng {
    fn next_u32(&mut self) -> u32 {
        THREAD_RNG.with(|r| r.borrow_mut().next_u32())
    }
    fn next_u64(&mut self) -> u64 {
        THREAD_RNG.with(|r| r.borrow_mut().next_u64())
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        THREAD_RNG.with(|r| r.borrow_mut().fill_bytes(dest))
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// Types that can be sampled uniformly.
pub trait Standard: Sized {
    fn sample<R: RngCore + ?Sized>(rng: &mut R) -> Self;
}

impl Standard for u32 {
    fn sample<R: RngCore + ?Sized>(rng: &mut R) -> Self {
        rng.next_u32()
    }
}

impl Standard for u64 {
    fn sample<R: RngCore + ?Sized>(rng: &mut R) -> Self {
        rng.next_u64()
    }
}

impl Standard for f64 {
    fn sample<R: RngCore + ?Sized>(rng: &mut R) -> Self {
        (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

impl Standard for bool {
    fn sample<R: RngCore + ?Sized>(rng: &mut R) -> Self {
        rng.next_u32() & 1 == 1
    }
}

/// An automatically-implemented extension trait on `RngCore`.
pub trait Rng: RngCore {
    fn gen<T: Standard>(&mut self) -> T {
        T::sample(self)
    }

    fn gen_range(&mut self, low: u64, high: u64) -> u64 {
        assert!(low < high, "empty range");
        low + self.next_u64() % (high - low)
    }

    fn gen_bool(&mut self, p: f64) -> bool {
        self.gen::<f64>() < p
    }
}

impl<R: RngCore + ?Sized> Rng for R {}

/// Generates a random value using the thread-local generator.
pub fn random<T: Standard>() -> T {
    thread_rng().gen()
}
