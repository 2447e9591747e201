//! Token-bucket arithmetic in integers: tokens as milli-tokens, time as nanoseconds, so
//! every worker computes the same state from the same inputs.

/// Milli-tokens per token.
pub const MILLI: u64 = 1000;
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A rule's bucket size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Tokens when full.
    pub capacity: u64,
    /// Milli-tokens added per second (at least 1).
    pub refill_milli_per_sec: u64,
}

impl Limit {
    fn cap_milli(self) -> u64 {
        self.capacity.saturating_mul(MILLI)
    }

    /// Nanoseconds for `milli` milli-tokens to be refilled, rounded up.
    fn nanos_for(self, milli: u64) -> u64 {
        let rate = u128::from(self.refill_milli_per_sec.max(1));
        u64::try_from((u128::from(milli) * NANOS_PER_SEC).div_ceil(rate)).unwrap_or(u64::MAX)
    }
}

/// A bucket's stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Milli-tokens available.
    pub milli: u64,
    /// Time (ns since the epoch) up to which refills are counted.
    pub last_ns: u64,
}

/// Length of [`Bucket::encode`]: a version byte and two little-endian u64.
pub const ENCODED_LEN: usize = 17;
const VERSION: u8 = 1;

impl Bucket {
    /// A full bucket at `now`.
    pub fn full(limit: Limit, now: u64) -> Self {
        Self { milli: limit.cap_milli(), last_ns: now }
    }

    /// The state at `now`: clamped to the (possibly reduced) capacity, plus what accrued
    /// since `last_ns`. Only the time that produced whole milli-tokens is consumed, so
    /// frequent requests never lose fractions. A clock that went back restarts counting.
    pub fn refill(self, limit: Limit, now: u64) -> Self {
        let cap = limit.cap_milli();
        let milli = self.milli.min(cap);
        if now <= self.last_ns {
            return Self { milli, last_ns: now };
        }
        let elapsed = now - self.last_ns;
        let added = u64::try_from(u128::from(elapsed) * u128::from(limit.refill_milli_per_sec) / NANOS_PER_SEC)
            .unwrap_or(u64::MAX);
        if milli.saturating_add(added) >= cap {
            return Self { milli: cap, last_ns: now };
        }
        // `nanos_for(added)` ≤ `elapsed`, as `added` was rounded down.
        Self { milli: milli + added, last_ns: self.last_ns + limit.nanos_for(added) }
    }

    /// Takes one token at `now`: the new state, or None when less than a token is left
    /// (the state is then unchanged on purpose; refills are recomputed on the next call).
    pub fn take(self, limit: Limit, now: u64) -> Option<Self> {
        let b = self.refill(limit, now);
        b.milli.checked_sub(MILLI).map(|milli| Self { milli, ..b })
    }

    /// Returns one token (a request that took it was refused by another rule).
    pub fn give_back(self, limit: Limit, now: u64) -> Self {
        let b = self.refill(limit, now);
        Self { milli: (b.milli + MILLI).min(limit.cap_milli()), ..b }
    }

    /// Whole tokens left.
    pub fn remaining(self) -> u64 {
        self.milli / MILLI
    }

    /// Seconds until one token is available, rounded up, at least 1 (for `retry-after`).
    /// Call on a refilled state.
    pub fn retry_after_secs(self, limit: Limit, now: u64) -> u64 {
        self.secs_until(MILLI, limit, now).max(1)
    }

    /// Seconds until the bucket is full again, rounded up (for `x-ratelimit-reset`).
    /// Call on a refilled state.
    pub fn reset_secs(self, limit: Limit, now: u64) -> u64 {
        self.secs_until(limit.cap_milli(), limit, now)
    }

    fn secs_until(self, target_milli: u64, limit: Limit, now: u64) -> u64 {
        let missing = target_milli.saturating_sub(self.milli);
        if missing == 0 {
            return 0;
        }
        // Time since `last_ns` already counts towards the next milli-token.
        let accrued = now.saturating_sub(self.last_ns);
        limit.nanos_for(missing).saturating_sub(accrued).div_ceil(1_000_000_000)
    }

    /// The stored form.
    pub fn encode(self) -> [u8; ENCODED_LEN] {
        let mut out = [0u8; ENCODED_LEN];
        out[0] = VERSION;
        out[1..9].copy_from_slice(&self.milli.to_le_bytes());
        out[9..].copy_from_slice(&self.last_ns.to_le_bytes());
        out
    }

    /// Reads a stored value; None for anything else (treated as a new bucket).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; ENCODED_LEN] = bytes.try_into().ok()?;
        if bytes[0] != VERSION {
            return None;
        }
        let milli = u64::from_le_bytes(bytes[1..9].try_into().ok()?);
        let last_ns = u64::from_le_bytes(bytes[9..].try_into().ok()?);
        Some(Self { milli, last_ns })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;
    const T0: u64 = 1_700_000_000 * SEC;

    fn limit(capacity: u64, per_sec_milli: u64) -> Limit {
        Limit { capacity, refill_milli_per_sec: per_sec_milli }
    }

    fn drain(mut b: Bucket, l: Limit, now: u64) -> (Bucket, u64) {
        let mut n = 0;
        while let Some(next) = b.take(l, now) {
            b = next;
            n += 1;
        }
        (b, n)
    }

    #[test]
    fn full_bucket_admits_capacity_then_refills() {
        let l = limit(5, 2 * MILLI);
        let (b, n) = drain(Bucket::full(l, T0), l, T0);
        assert_eq!(n, 5);
        assert_eq!(b.take(l, T0), None);
        // 2 tokens per second: one token after 0.5 s.
        assert_eq!(b.take(l, T0 + SEC / 2 - 1), None);
        assert!(b.take(l, T0 + SEC / 2).is_some());
        let (_, n) = drain(b, l, T0 + 10 * SEC);
        assert_eq!(n, 5, "refill stops at capacity");
    }

    #[test]
    fn frequent_requests_do_not_lose_fractions() {
        // 1 token/s, polled every 0.3 ms: sub-milli-token steps must accumulate. (Capacity
        // above 1, as a full bucket rightly stops accruing.)
        let l = limit(5, MILLI);
        let mut b = Bucket { milli: 0, last_ns: T0 };
        let mut now = T0;
        let mut admitted = 0;
        while now < T0 + 10 * SEC {
            now += 300_000;
            if let Some(next) = b.take(l, now) {
                admitted += 1;
                b = next;
            } else {
                b = b.refill(l, now);
            }
        }
        assert_eq!(admitted, 10);
    }

    #[test]
    fn fractional_rates() {
        let l = limit(1, 500); // one token every 2 s
        let b = Bucket { milli: 0, last_ns: T0 };
        assert_eq!(b.take(l, T0 + 2 * SEC - 1), None);
        assert!(b.take(l, T0 + 2 * SEC).is_some());
    }

    #[test]
    fn capacity_reduction_clamps() {
        let stored = Bucket { milli: 100 * MILLI, last_ns: T0 };
        let l = limit(10, MILLI);
        assert_eq!(stored.refill(l, T0).milli, 10 * MILLI);
        let (_, n) = drain(stored, l, T0);
        assert_eq!(n, 10);
    }

    #[test]
    fn clock_going_back_restarts_counting() {
        let l = limit(10, MILLI);
        let b = Bucket { milli: 0, last_ns: T0 + 100 * SEC };
        let rebased = b.refill(l, T0);
        assert_eq!(rebased, Bucket { milli: 0, last_ns: T0 });
        assert!(rebased.take(l, T0 + SEC).is_some());
    }

    #[test]
    fn retry_after_and_reset() {
        let l = limit(10, 2 * MILLI); // full in 5 s
        let empty = Bucket { milli: 0, last_ns: T0 };
        assert_eq!(empty.retry_after_secs(l, T0), 1, "0.5 s rounds up to 1");
        assert_eq!(empty.reset_secs(l, T0), 5);
        let slow = limit(10, 100); // a token every 10 s
        assert_eq!(empty.retry_after_secs(slow, T0), 10);
        let part = empty.refill(slow, T0 + 4 * SEC);
        assert_eq!(part.retry_after_secs(slow, T0 + 4 * SEC), 6);
        assert_eq!(part.reset_secs(slow, T0 + 4 * SEC), 96);
        let full = Bucket::full(l, T0);
        assert_eq!(full.reset_secs(l, T0), 0);
        assert_eq!(full.retry_after_secs(l, T0), 1, "never below 1");
    }

    #[test]
    fn give_back_never_exceeds_capacity() {
        let l = limit(2, MILLI);
        let full = Bucket::full(l, T0);
        assert_eq!(full.give_back(l, T0).milli, 2 * MILLI);
        let taken = full.take(l, T0).unwrap_or(full);
        assert_eq!(taken.give_back(l, T0), full);
    }

    #[test]
    fn huge_values_saturate() {
        let l = limit(1_000_000_000, 1_000_000 * MILLI);
        let b = Bucket { milli: 0, last_ns: 0 };
        assert_eq!(b.refill(l, u64::MAX).milli, l.capacity * MILLI);
        assert!(Bucket::full(l, u64::MAX).take(l, u64::MAX).is_some());
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let b = Bucket { milli: 12_345, last_ns: T0 };
        assert_eq!(Bucket::decode(&b.encode()), Some(b));
        assert_eq!(Bucket::decode(b"nonsense"), None);
        let mut other = b.encode();
        other[0] = 9;
        assert_eq!(Bucket::decode(&other), None);
    }
}
