//! The numbers behind the choice: a stable hash for sticky keys, a seeded generator for the
//! rest, and the scaling of either into `[0, total_weight)`.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a: stable across builds, hosts and restarts, so a user keeps their variant.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME))
}

/// MurmurHash3's finaliser: FNV-1a alone leaves keys differing in their last byte (`user-1`,
/// `user-2`) close together, which would put them in the same variant.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The stable hash of a sticky key.
pub fn stable(bytes: &[u8]) -> u64 {
    fmix64(fnv1a(bytes))
}

/// Maps a uniform `x` onto `[0, n)` by multiply-shift (no modulo, so no visible bias).
pub fn scale(x: u64, n: u64) -> u64 {
    let scaled = (u128::from(x) * u128::from(n)) >> 64;
    // Always below `n`, so it fits.
    u64::try_from(scaled).unwrap_or(0)
}

/// SplitMix64: a small generator, good enough to split traffic, seeded from the host.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn stable_hash_never_changes() {
        // Pinned: changing the hash would move every sticky user to another variant.
        assert_eq!(stable(b"alice"), 0x3507_d047_a67c_08f4);
        assert_eq!(stable(b"user-1"), 0x41a2_fca5_c684_01c5);
    }

    #[test]
    fn scale_stays_in_range() {
        assert_eq!(scale(0, 100), 0);
        assert_eq!(scale(u64::MAX, 100), 99);
        assert_eq!(scale(u64::MAX / 2, 100), 49);
        assert_eq!(scale(u64::MAX, 1), 0);
    }

    #[test]
    fn splitmix_matches_the_reference() {
        // First outputs for seed 0 (Vigna's reference implementation).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }
}
