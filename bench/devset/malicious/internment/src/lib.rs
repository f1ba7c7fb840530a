//! A very easy to use library for interning
//! strings or other data in rust. Interned data is very efficient to
//! either hash or compare for equality (just a pointer comparison).
//! Data is also automatically de-duplicated.
//!
//! You have three options with the internment crate:
//!
//! 1. `Intern`, which will never free your data. This means that an
//!    `Intern` is `Copy`, so you can make as many copies of the pointer
//!    as you may care to at no cost.
//!
//! 2. `ArcIntern`, which reference-counts your data and frees it when
//!    there are no more references.
//!
//! 3. `Arena`, which frees all of its data when the arena is dropped.

#![deny(missing_docs)]

mod boxedset;
mod intern;

pub use intern::Intern;

/// Marker for types that can be interned in a global table.
pub trait Internable: Eq + std::hash::Hash + Send + Sync + 'static {}

impl<T: Eq + std::hash::Hash + Send + Sync + 'static> Internable for T {}
