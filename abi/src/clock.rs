//! The monotonic clock as plain nanoseconds, for timing filter callbacks. `std::time::Instant`
//! reads the same clock, but its subtraction normalizes two `timespec`s (about 60 instructions,
//! twice a callback); a subtraction of two integers is one.

use std::time::{Duration, Instant};

/// A reading of `CLOCK_MONOTONIC`, the clock behind [`Instant`] on Linux.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Nanos(u64);

impl Nanos {
    /// The clock now.
    #[inline]
    pub(crate) fn now() -> Self {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        Self(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
    }

    /// Time from `earlier` to this reading (zero if `earlier` is later).
    #[inline]
    pub(crate) fn since(self, earlier: Self) -> Duration {
        Duration::from_nanos(self.nanos_since(earlier))
    }

    /// [`Self::since`] in nanoseconds.
    #[inline]
    pub(crate) fn nanos_since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// This reading as an [`Instant`] (for traces, which place spans on the wall clock).
    pub(crate) fn to_instant(self) -> Instant {
        let (instant, now) = (Instant::now(), Self::now());
        instant.checked_sub(now.since(self)).unwrap_or(instant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_advance_with_the_instant_clock() {
        let (i0, n0) = (Instant::now(), Nanos::now());
        std::thread::sleep(Duration::from_millis(5));
        let (n1, i1) = (Nanos::now(), Instant::now());
        assert!(n1.since(n0) >= Duration::from_millis(5));
        assert!(n1.since(n0) <= i1 - i0 + Duration::from_millis(1), "the same clock as Instant");
        assert_eq!(n0.since(n1), Duration::ZERO);
        let back = n0.to_instant();
        assert!(back >= i0 - Duration::from_millis(1) && back <= i0 + Duration::from_millis(1));
    }
}
