//! Clocks, read from the host (one hypercall each, a few microseconds).

use core::time::Duration;

use crate::abi::clock;
use crate::hypercall;

/// A monotonic instant, like `std::time::Instant`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    pub fn now() -> Instant {
        Instant(hypercall::clock(clock::MONOTONIC))
    }

    pub fn elapsed(&self) -> Duration {
        Instant::now().duration_since(*self)
    }

    pub fn duration_since(&self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// Wall-clock time since the Unix epoch, like
/// `SystemTime::now().duration_since(UNIX_EPOCH)`.
pub fn since_unix_epoch() -> Duration {
    Duration::from_nanos(hypercall::clock(clock::REALTIME))
}
