//! The wire formats of docs/abi.md#wire-formats: the header-map "pairs" encoding and property paths.
//!
//! The decoder reads guest-controlled bytes: it never panics, never trusts a count for an
//! allocation, and (like Envoy's `PairsUtil::toPairs`) treats any malformed input as an
//! empty list. A crate of its own (re-exported as `weir_abi::pairs`) so that it is fuzzed on
//! its own, without the Wasmtime build: see `fuzz/`.

use bytes::Bytes;

/// Pairs inputs larger than this are treated as empty (Envoy's limit).
pub const MAX_PAIRS_BYTES: usize = 1 << 20;
/// Pairs inputs with more entries than this are treated as empty (Envoy's limit).
pub const MAX_PAIRS: usize = 1024;

/// Serialized size of `pairs`.
pub fn encoded_len<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> usize {
    pairs.map(|(k, v)| 8 + k.len() + 1 + v.len() + 1).sum::<usize>() + 4
}

/// Encodes `pairs` as `u32 N, N × (u32 key_len, u32 value_len), N × (key 0 value 0)`.
///
/// An empty list encodes to nothing: callers return (ptr 0, size 0) for it, as Envoy does.
pub fn encode<'a, I>(pairs: I) -> Vec<u8>
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let count = pairs.clone().count();
    if count == 0 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(encoded_len(pairs.clone()));
    out.extend_from_slice(&(count as u32).to_le_bytes());
    for (k, v) in pairs.clone() {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Decodes a pairs buffer written by a guest. Returns an empty list for anything malformed
/// (wrong sizes, missing NULs, trailing bytes, over the limits).
pub fn decode(buf: &[u8]) -> Vec<(Bytes, Bytes)> {
    decode_strict(buf).unwrap_or_default()
}

/// Like [`decode`], but tells a malformed buffer apart from an empty one.
pub fn decode_strict(buf: &[u8]) -> Option<Vec<(Bytes, Bytes)>> {
    if buf.is_empty() {
        return Some(Vec::new());
    }
    if buf.len() > MAX_PAIRS_BYTES {
        return None;
    }
    let count = read_u32(buf, 0)? as usize;
    if count > MAX_PAIRS {
        return None;
    }
    let table_end = 4usize.checked_add(count.checked_mul(8)?)?;
    if table_end > buf.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    let mut pos = table_end;
    for i in 0..count {
        let klen = read_u32(buf, 4 + i * 8)? as usize;
        let vlen = read_u32(buf, 8 + i * 8)? as usize;
        let key = take_nul_terminated(buf, &mut pos, klen)?;
        let value = take_nul_terminated(buf, &mut pos, vlen)?;
        out.push((Bytes::copy_from_slice(key), Bytes::copy_from_slice(value)));
    }
    (pos == buf.len()).then_some(out)
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn take_nul_terminated<'a>(buf: &'a [u8], pos: &mut usize, len: usize) -> Option<&'a [u8]> {
    let end = pos.checked_add(len)?;
    let data = buf.get(*pos..end)?;
    if *buf.get(end)? != 0 {
        return None;
    }
    *pos = end + 1;
    Some(data)
}

/// Splits a property path (`seg1 NUL seg2 NUL …`). A trailing NUL is tolerated, as in Envoy.
pub fn split_path(path: &[u8]) -> Vec<&[u8]> {
    let path = path.strip_suffix(&[0]).unwrap_or(path);
    path.split(|b| *b == 0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_spec_example_byte_for_byte() {
        let pairs: [(&[u8], &[u8]); 2] = [(b"a", b"1"), (b"b", b"22")];
        let bytes = encode(pairs.iter().copied());
        let expected: Vec<u8> =
            vec![2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, b'a', 0, b'1', 0, b'b', 0, b'2', b'2', 0];
        assert_eq!(bytes, expected);
        assert_eq!(encoded_len(pairs.iter().copied()), expected.len());
    }

    #[test]
    fn round_trips_every_byte_value() {
        let all: Vec<u8> = (0..=255).collect();
        let pairs: [(&[u8], &[u8]); 2] = [(b"k", &all), (&all, b"")];
        let bytes = encode(pairs.iter().copied());
        let back = decode_strict(&bytes).expect("valid");
        assert_eq!(back[0].1.as_ref(), all.as_slice());
        assert_eq!(back[1].0.as_ref(), all.as_slice());
    }

    #[test]
    fn empty_inputs_decode_to_nothing() {
        assert_eq!(decode_strict(&[]), Some(vec![]));
        assert_eq!(decode_strict(&[0, 0, 0, 0]), Some(vec![]));
        assert!(encode(std::iter::empty()).is_empty());
    }

    #[test]
    fn malformed_inputs_are_refused_without_panicking() {
        let good = encode([(&b"a"[..], &b"1"[..])].into_iter());
        for cut in 0..good.len() {
            assert_eq!(decode_strict(&good[..cut]).map(|v| v.len()).unwrap_or(0), 0);
        }
        let mut trailing = good.clone();
        trailing.push(7);
        assert!(decode_strict(&trailing).is_none());
        let mut no_nul = good.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        assert!(decode_strict(&no_nul).is_none());
        // A huge count must not allocate.
        assert!(decode_strict(&[0xff, 0xff, 0xff, 0x7f]).is_none());
        let mut too_many = (MAX_PAIRS as u32 + 1).to_le_bytes().to_vec();
        too_many.resize(4 + (MAX_PAIRS + 1) * 10, 0);
        assert!(decode_strict(&too_many).is_none());
    }

    #[test]
    fn paths_split_on_nul_only() {
        assert_eq!(split_path(b"request\0path"), vec![&b"request"[..], b"path"]);
        assert_eq!(split_path(b"request.path"), vec![&b"request.path"[..]]);
        assert_eq!(split_path(b"a\0"), vec![&b"a"[..]]);
    }

    /// SplitMix64: a reproducible stream of random numbers for the randomized test below.
    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Guest-supplied maps are untrusted bytes: 200,000 random and near-valid inputs (lying
    /// counts and sizes, cut and padded encodings) never panic, strict decoding accepts only
    /// what it can give back exactly, and every valid encoding round-trips.
    #[test]
    fn random_inputs_never_panic_and_valid_ones_round_trip() {
        let mut seed = 0x5EED_u64;
        for round in 0..200_000u32 {
            let r = splitmix(&mut seed);
            let n = (r % 6) as usize;
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
                .map(|_| {
                    let k = splitmix(&mut seed);
                    let len = |x: u64| (x % 9) as usize;
                    (
                        (0..len(k)).map(|i| (k >> (i * 7)) as u8).collect(),
                        (0..len(k >> 8)).map(|i| (k >> i) as u8).collect(),
                    )
                })
                .collect();
            let mut bytes = encode(pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
            let valid = match round % 4 {
                0 => true,
                1 if !bytes.is_empty() => {
                    // A lying count or size.
                    let at = (splitmix(&mut seed) as usize % bytes.len().min(4 + 8 * n)) & !3;
                    let lie = splitmix(&mut seed) as u32;
                    if let Some(b) = bytes.get_mut(at..at + 4) {
                        b.copy_from_slice(&lie.to_le_bytes());
                    }
                    false
                }
                2 if !bytes.is_empty() => {
                    let cut = splitmix(&mut seed) as usize % bytes.len();
                    bytes.truncate(cut);
                    false
                }
                _ => {
                    bytes = (0..(r % 64)).map(|i| (splitmix(&mut seed) >> i) as u8).collect();
                    false
                }
            };
            let lax = decode(&bytes);
            let strict = decode_strict(&bytes);
            let _ = split_path(&bytes);
            if valid {
                let back = strict.expect("a valid encoding decodes");
                let back: Vec<(Vec<u8>, Vec<u8>)> = back.into_iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
                assert_eq!(back, pairs);
                assert_eq!(lax.len(), pairs.len());
            } else if let Some(decoded) = strict {
                // Accepted only if it is exactly what it re-encodes to (the empty map also has
                // a zero count).
                let again = encode(decoded.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
                assert!(again == bytes || (decoded.is_empty() && bytes == [0, 0, 0, 0]));
            }
        }
    }
}
