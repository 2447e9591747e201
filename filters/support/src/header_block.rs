//! A header map read with one hostcall into one buffer, looked up in place.
//!
//! The Rust SDK's `get_http_request_headers` decodes the host's map into a `String` and a
//! `Vec<u8>` per header: two allocations per header, for a filter that looks at two or three
//! of them. Filters that need more than one header read the map here instead: the host's
//! serialized buffer is kept whole and lookups borrow from it, so a request costs one
//! allocation however many headers it carries (bench/PROFILE.md: allocation was half of the
//! built-ins' own instructions).

use proxy_wasm::types::MapType;

/// A header map as the host serialized it (the Proxy-Wasm map format: a pair count, the
/// lengths of each name and value, then each name and value followed by a NUL). Lookups
/// ignore the case of names, as a host's own do.
#[derive(Debug, Clone, Default)]
pub struct HeaderBlock {
    buf: Vec<u8>,
    /// How many whole pairs the buffer holds (checked once, walked on each lookup: a filter
    /// looks up a few names, and an index would be one more allocation per request).
    pairs: usize,
    /// Positions of the pairs [`HeaderBlock::retain`] dropped (allocated only when one is).
    dropped: Vec<usize>,
}

impl HeaderBlock {
    /// Reads `map` from the host; empty when the host has no such map now.
    pub fn read(map: MapType) -> Self {
        Self::parse(read_serialized(map))
    }

    /// Builds a block from pairs, as the host would give them.
    pub fn from_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let pairs: Vec<(K, V)> = pairs.into_iter().collect();
        Self::parse(weir_abi_codec::encode(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))))
    }

    /// Takes a serialized map. A buffer that does not hold what its lengths say (never from
    /// a conforming host) gives the pairs before the fault.
    pub fn parse(buf: Vec<u8>) -> Self {
        let pairs = Pairs::new(&buf, usize::MAX).count();
        Self { buf, pairs, dropped: Vec::new() }
    }

    /// The first value of `name` (any case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter().find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }

    /// Every value of `name` (any case), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }

    /// The pairs in order, names as the host gave them (lower-case from Envoy and weir).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        Pairs::new(&self.buf, self.pairs).enumerate().filter(|(i, _)| !self.dropped.contains(i)).map(|(_, pair)| pair)
    }

    /// Keeps only the pairs whose name `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        let gone: Vec<usize> = Pairs::new(&self.buf, self.pairs)
            .enumerate()
            .filter(|(i, (k, _))| !self.dropped.contains(i) && !keep(k))
            .map(|(i, _)| i)
            .collect();
        self.dropped.extend(gone);
    }
}

/// Walks the pairs of a serialized map, stopping at `limit` or at the first that does not fit.
struct Pairs<'a> {
    buf: &'a [u8],
    /// The next pair's lengths.
    lengths: usize,
    /// The next pair's name.
    data: usize,
    left: usize,
}

impl<'a> Pairs<'a> {
    fn new(buf: &'a [u8], limit: usize) -> Self {
        let count = buf.get(..4).map_or(0, word);
        match count.checked_mul(8).and_then(|n| n.checked_add(4)).filter(|&d| d <= buf.len()) {
            Some(data) => Self { buf, lengths: 4, data, left: count.min(limit) },
            None => Self { buf, lengths: 4, data: 0, left: 0 },
        }
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let entry = &self.buf[self.lengths..self.lengths + 8];
        let name_end = self.data.checked_add(word(&entry[..4]))?;
        let value_end = (name_end + 1).checked_add(word(&entry[4..]))?;
        // Each name and value is followed by a NUL.
        if value_end >= self.buf.len() {
            self.left = 0;
            return None;
        }
        let pair = (&self.buf[self.data..name_end], &self.buf[name_end + 1..value_end]);
        self.lengths += 8;
        self.data = value_end + 1;
        self.left -= 1;
        Some(pair)
    }
}

fn word(b: &[u8]) -> usize {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
}

#[cfg(target_arch = "wasm32")]
fn read_serialized(map: MapType) -> Vec<u8> {
    #[link(wasm_import_module = "env")]
    unsafe extern "C" {
        fn proxy_get_header_map_pairs(map_type: MapType, return_data: *mut *mut u8, return_size: *mut usize) -> u32;
    }
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size = 0usize;
    // SAFETY: the host writes a pointer to `size` bytes it allocated with this module's
    // allocator (`malloc`, which Rust's global allocator also uses on wasm32-wasip1), as the
    // SDK's own `get_map_bytes` takes it back; status 0 is OK.
    unsafe {
        if proxy_get_header_map_pairs(map, &mut data, &mut size) != 0 || data.is_null() {
            return Vec::new();
        }
        Vec::from_raw_parts(data, size, size)
    }
}

/// Outside a Proxy-Wasm host (the filters' unit tests) there is no map to read.
#[cfg(not(target_arch = "wasm32"))]
fn read_serialized(_map: MapType) -> Vec<u8> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_borrow_from_one_buffer_with_lower_case_names() {
        let h = HeaderBlock::from_pairs([(":path", "/a"), ("X-Key", "one"), ("cookie", "a=1"), ("cookie", "b=2")]);
        assert_eq!(h.get(":path"), Some(&b"/a"[..]));
        assert_eq!(h.get("x-key"), Some(&b"one"[..]), "any case");
        assert_eq!(h.get_all("cookie").collect::<Vec<_>>(), [&b"a=1"[..], &b"b=2"[..]]);
        assert_eq!(h.get("missing"), None);
        assert_eq!(h.iter().count(), 4);
    }

    #[test]
    fn empty_names_and_values_and_retain() {
        let mut h = HeaderBlock::from_pairs([("a", ""), ("b", "2"), ("a", "3")]);
        assert_eq!(h.get("a"), Some(&b""[..]));
        h.retain(|k| k != b"a");
        assert_eq!(h.iter().collect::<Vec<_>>(), [(&b"b"[..], &b"2"[..])]);
    }

    #[test]
    fn a_truncated_buffer_keeps_the_whole_pairs_before_the_fault() {
        let whole = HeaderBlock::from_pairs([("a", "1"), ("bb", "22")]);
        assert_eq!(whole.iter().count(), 2);
        let mut cut = whole.buf.clone();
        cut.truncate(cut.len() - 2);
        assert_eq!(HeaderBlock::parse(cut).iter().collect::<Vec<_>>(), [(&b"a"[..], &b"1"[..])]);
        assert_eq!(HeaderBlock::parse(vec![9, 0, 0, 0]).iter().count(), 0, "a count with nothing after it");
        assert_eq!(HeaderBlock::parse(Vec::new()).iter().count(), 0);
        let mut huge = 1u32.to_le_bytes().to_vec();
        huge.extend_from_slice(&[0xff; 8]);
        huge.extend_from_slice(b"a\0b\0");
        assert_eq!(HeaderBlock::parse(huge).iter().count(), 0, "lengths past the end");
    }
}
