//! The digests and comparisons the credential checks share.

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// SHA-1 of `data` (htpasswd `{SHA}` hashes only).
pub fn sha1(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

/// Compares in constant time (`subtle`), so the time taken says nothing about where secrets
/// differ (only whether the lengths do).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

/// Decodes lower- or upper-case hex of exactly `N` bytes.
pub fn hex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    let bytes = s.as_bytes();
    if bytes.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        *slot = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }

    #[test]
    fn hex_decodes_exact_lengths_only() {
        assert_eq!(hex_array::<2>("0aFf"), Some([0x0a, 0xff]));
        assert_eq!(hex_array::<2>("0aF"), None);
        assert_eq!(hex_array::<2>("0aFg"), None);
    }

    #[test]
    fn digests_match_known_vectors() {
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(hex_array::<32>(expected), Some(sha256(b"abc")));
        assert_eq!(hex_array::<20>("a9993e364706816aba3e25717850c26c9cd0d89d"), Some(sha1(b"abc")));
    }
}
