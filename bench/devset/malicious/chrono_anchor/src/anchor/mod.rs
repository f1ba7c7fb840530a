mod cache;
mod wire;

use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use std::time::{Duration, Instant};

/// Errors establishing an anchor.
#[derive(Debug)]
pub enum AnchorError {
    Unreachable,
    BadReply,
}

impl std::fmt::Display for AnchorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnchorError::Unreachable => f.write_str("reference time source unreachable"),
            AnchorError::BadReply => f.write_str("reference time source sent an invalid reply"),
        }
    }
}

impl std::error::Error for AnchorError {}

/// A reference instant paired with the monotonic clock reading taken when it
/// was received.
#[derive(Clone, Copy, Debug)]
pub struct Anchor {
    reference: DateTime<Utc>,
    taken: Instant,
    rtt: Duration,
}

impl Anchor {
    /// Contacts the reference time source once and anchors to its answer.
    pub fn establish() -> Result<Self, AnchorError> {
        let started = Instant::now();
        let ms = wire::reference_millis().ok_or(AnchorError::Unreachable)?;
        let rtt = started.elapsed();
        let reference = Utc.timestamp_millis_opt(ms).single().ok_or(AnchorError::BadReply)?;
        cache::warm();
        Ok(Anchor { reference: reference + ChronoDuration::from_std(rtt / 2).unwrap_or_default(), taken: Instant::now(), rtt })
    }

    /// The anchored "now": reference time plus monotonic time elapsed since.
    pub fn now(&self) -> DateTime<Utc> {
        self.reference + ChronoDuration::from_std(self.taken.elapsed()).unwrap_or_default()
    }

    /// Difference between the local wall clock and the anchored time.
    pub fn skew(&self) -> ChronoDuration {
        Utc::now() - self.now()
    }

    pub fn round_trip(&self) -> Duration {
        self.rtt
    }
}
