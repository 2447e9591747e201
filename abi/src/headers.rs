//! An ordered, duplicate-keeping header map with Envoy's rules (ABI.md §3.6): names are stored
//! lower-case, lookups ignore case, `get` returns the first value, pseudo-headers come first.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

/// Header (or trailer, or metadata) map as a filter sees it.
#[derive(Debug, Clone, Default)]
pub struct HeaderMap {
    entries: Vec<(Bytes, Bytes)>,
    /// Stamp of the last change (see [`HeaderMap::version`]).
    version: u64,
}

impl PartialEq for HeaderMap {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for HeaderMap {}

/// Stamps for [`HeaderMap::version`]: unique per change in the process, so a version taken
/// from one map never matches a different map or a later state of the same one.
static STAMPS: AtomicU64 = AtomicU64::new(1);

fn next_stamp() -> u64 {
    STAMPS.fetch_add(1, Ordering::Relaxed)
}

impl HeaderMap {
    /// Changes whenever the map does. A host that converted the map from another
    /// representation compares versions to learn whether a filter changed anything, and can
    /// skip converting it back. Equal versions mean no change (a clone shares its source's
    /// version until either changes).
    pub fn version(&self) -> u64 {
        self.version
    }

    fn touch(&mut self) {
        self.version = next_stamp();
    }

    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a map from pairs, lower-casing the names and keeping the order.
    pub fn from_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut map = Self::new();
        for (k, v) in pairs {
            map.add(k.as_ref(), Bytes::copy_from_slice(v.as_ref()));
        }
        map
    }

    /// Number of entries, duplicates included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// The first value of `name` (any case).
    pub fn get(&self, name: &[u8]) -> Option<&Bytes> {
        self.entries.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// The first value of `name` as UTF-8, if it is.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name.as_bytes()).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.entries.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// Appends an entry; pseudo-headers are kept ahead of regular headers.
    pub fn add(&mut self, name: &[u8], value: impl Into<Bytes>) {
        let name = lower(name);
        let at = if name.first() == Some(&b':') {
            self.entries.iter().take_while(|(k, _)| k.first() == Some(&b':')).count()
        } else {
            self.entries.len()
        };
        self.entries.insert(at, (name, value.into()));
        self.touch();
    }

    /// Sets `name` to exactly one value: replaces the first entry in place and removes the
    /// others, or appends when absent.
    pub fn replace(&mut self, name: &[u8], value: impl Into<Bytes>) {
        let value = value.into();
        match self.entries.iter().position(|(k, _)| k.eq_ignore_ascii_case(name)) {
            Some(first) => {
                self.entries[first].1 = value;
                let mut i = 0;
                self.entries.retain(|(k, _)| {
                    let keep = i <= first || !k.eq_ignore_ascii_case(name);
                    i += 1;
                    keep
                });
            }
            None => self.add(name, value),
        }
        self.touch();
    }

    /// Removes every entry of `name`.
    pub fn remove(&mut self, name: &[u8]) {
        self.entries.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.touch();
    }

    /// Replaces the whole map with `pairs`, in their order (names lower-cased).
    pub fn set_all(&mut self, pairs: Vec<(Bytes, Bytes)>) {
        self.entries.clear();
        self.entries.extend(pairs.into_iter().map(|(k, v)| (lower(&k), v)));
        self.touch();
    }

    /// Envoy's `HeaderMap::byteSize()`: the sum of name and value lengths.
    pub fn byte_size(&self) -> usize {
        self.entries.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// The map in the pairs wire format (empty map: no bytes).
    pub fn encode(&self) -> Vec<u8> {
        crate::pairs::encode(self.iter())
    }

    /// The regular (non-pseudo) headers.
    pub fn regular(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.iter().filter(|(k, _)| k.first() != Some(&b':'))
    }

    /// The values of `name` joined with `,`, as the `request.headers.<name>` property shows them.
    pub fn joined(&self, name: &[u8]) -> Option<Bytes> {
        let mut values = self.get_all(name);
        let first = values.next()?.clone();
        let rest: Vec<&Bytes> = values.collect();
        if rest.is_empty() {
            return Some(first);
        }
        let mut out = first.to_vec();
        for v in rest {
            out.push(b',');
            out.extend_from_slice(v);
        }
        Some(out.into())
    }
}

fn lower(name: &[u8]) -> Bytes {
    if name.iter().any(u8::is_ascii_uppercase) {
        Bytes::from(name.to_ascii_lowercase())
    } else {
        Bytes::copy_from_slice(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_map_rules() {
        let mut m = HeaderMap::from_pairs([("X-Foo", "1"), ("x-foo", "2"), (":path", "/")]);
        assert_eq!(m.iter().next().unwrap().0, b":path", "pseudo-headers first");
        assert_eq!(m.get(b"X-FOO").unwrap().as_ref(), b"1", "first value, any case");
        assert_eq!(m.joined(b"x-foo").unwrap().as_ref(), b"1,2");
        m.add(b"X-Bar", "a");
        assert!(m.iter().any(|(k, _)| k == b"x-bar"), "stored lower-case");
        m.replace(b"x-foo", "3");
        assert_eq!(m.get_all(b"x-foo").count(), 1);
        assert_eq!(m.get(b"x-foo").unwrap().as_ref(), b"3");
        m.remove(b"x-foo");
        assert!(m.get(b"x-foo").is_none());
        m.replace(b"new", "v");
        assert_eq!(m.get(b"new").unwrap().as_ref(), b"v");
        assert_eq!(m.byte_size(), ":path".len() + 1 + "x-bar".len() + 1 + 3 + 1);
    }

    #[test]
    fn every_change_moves_the_version_and_reads_do_not() {
        let mut m = HeaderMap::from_pairs([("a", "1")]);
        let mut seen = vec![m.version()];
        let _ = (m.get(b"a"), m.len(), m.encode());
        assert_eq!(m.version(), seen[0], "reads keep the version");
        let copy = m.clone();
        assert_eq!(copy.version(), m.version());
        m.add(b"b", "2");
        seen.push(m.version());
        m.replace(b"b", "3");
        seen.push(m.version());
        m.remove(b"absent");
        seen.push(m.version());
        m.set_all(vec![]);
        seen.push(m.version());
        let mut sorted = seen.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len(), "each change has its own version: {seen:?}");
        assert_ne!(HeaderMap::from_pairs([("a", "1")]).version(), copy.version(), "another map, another version");
    }
}
