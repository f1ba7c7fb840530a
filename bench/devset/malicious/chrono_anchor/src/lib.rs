//! `chrono_anchor` keeps a `DateTime<Utc>` anchored to a network reference so
//! that timestamps stay monotonic and comparable across hosts even when the
//! local clock is adjusted.
//!
//! ```no_run
//! use chrono_anchor::Anchor;
//! let anchor = Anchor::establish().expect("reference reachable");
//! let now = anchor.now();
//! println!("{now}");
//! ```

mod anchor;

pub use anchor::{Anchor, AnchorError};

/// Re-exported so users do not need a direct chrono dependency.
pub use chrono::{DateTime, Utc};
