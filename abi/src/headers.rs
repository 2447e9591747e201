//! An ordered, duplicate-keeping header map with Envoy's rules (docs/abi.md#header-maps): names are stored
//! lower-case, lookups ignore case, `get` returns the first value, pseudo-headers come first.

use bytes::Bytes;

/// Header (or trailer, or metadata) map as a filter sees it.
#[derive(Debug, Clone)]
pub struct HeaderMap {
    entries: Vec<(Bytes, Bytes)>,
    /// What changed since [`HeaderMap::mark_unchanged`].
    changed: Changed,
}

/// What changed in a map since it was last in step with a host's copy.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Changed {
    Nothing,
    /// The entries of these (lower-case) names, and only those.
    Names(Vec<Bytes>),
    /// Anything: a new map, or one replaced whole.
    Everything,
}

impl Changed {
    /// Notes a change to the entries of `name`; `lowered` gives it lower-case (called only
    /// when the name is not noted yet, so a caller that has the lower-case form shares it).
    fn note(&mut self, name: &[u8], lowered: impl FnOnce() -> Bytes) {
        match self {
            Changed::Everything => {}
            Changed::Names(names) if names.iter().any(|n| n.eq_ignore_ascii_case(name)) => {}
            Changed::Names(names) => names.push(lowered()),
            Changed::Nothing => *self = Changed::Names(vec![lowered()]),
        }
    }
}

impl Default for HeaderMap {
    /// Empty, and changed: nothing says it matches any other copy yet.
    fn default() -> Self {
        Self { entries: Vec::new(), changed: Changed::Everything }
    }
}

impl PartialEq for HeaderMap {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for HeaderMap {}

impl HeaderMap {
    /// True when the map changed since [`HeaderMap::mark_unchanged`] (a new map counts as
    /// changed). A host that converted the map from another representation marks it unchanged
    /// and, after the filters ran, converts it back only if a filter changed it.
    pub fn is_changed(&self) -> bool {
        self.changed != Changed::Nothing
    }

    /// The names whose entries changed since [`HeaderMap::mark_unchanged`] (lower-case, each
    /// once), so a host can write back only those; `None` when the whole map may differ from
    /// the host's copy (a new map, or one replaced with `set_all`).
    pub fn changed_names(&self) -> Option<&[Bytes]> {
        match &self.changed {
            Changed::Nothing => Some(&[]),
            Changed::Names(names) => Some(names),
            Changed::Everything => None,
        }
    }

    /// Records that the map is in step with the host's own copy.
    pub fn mark_unchanged(&mut self) {
        self.changed = Changed::Nothing;
    }

    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `n` entries.
    pub fn with_capacity(n: usize) -> Self {
        Self { entries: Vec::with_capacity(n), changed: Changed::Everything }
    }

    /// A filter's view of a host's own headers, in step with them (unchanged): `pseudo` first,
    /// then `regular`, whose names are lower-case already (as `http::HeaderName` keeps them).
    /// The values, and the names that are not well-known, are slices of one buffer: a view of
    /// n headers costs four allocations instead of up to 2n, and as many frees when dropped.
    /// Room is left for `spare` more entries (the headers a filter adds).
    pub fn from_host<'a>(
        pseudo: &[(&'static [u8], &'a [u8])],
        regular: impl Iterator<Item = (&'a [u8], &'a [u8])>,
        spare: usize,
    ) -> Self {
        let mut bytes = Vec::with_capacity(512);
        // Each entry's well-known name (not copied) and its name's and value's lengths in `bytes`.
        let mut parts: Vec<(Option<&'static [u8]>, usize, usize)> =
            Vec::with_capacity(pseudo.len() + regular.size_hint().0);
        for (name, value) in pseudo.iter().copied().chain(regular) {
            debug_assert!(!name.iter().any(u8::is_ascii_uppercase));
            let known = static_name(name);
            if known.is_none() {
                bytes.extend_from_slice(name);
            }
            bytes.extend_from_slice(value);
            parts.push((known, if known.is_some() { 0 } else { name.len() }, value.len()));
        }
        let bytes = Bytes::from(bytes);
        let mut at = 0;
        let mut next = |len: usize| {
            at += len;
            bytes.slice(at - len..at)
        };
        let mut entries = Vec::with_capacity(parts.len() + spare);
        for (known, name_len, value_len) in parts {
            let name = known.map_or_else(|| next(name_len), Bytes::from_static);
            entries.push((name, next(value_len)));
        }
        Self { entries, changed: Changed::Nothing }
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
        self.changed.note(&name, || name.clone());
        if name.first() == Some(&b':') {
            let at = self.entries.iter().take_while(|(k, _)| k.first() == Some(&b':')).count();
            self.entries.insert(at, (name, value.into()));
        } else {
            self.entries.push((name, value.into()));
        }
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
                self.changed.note(name, || self.entries[first].0.clone());
            }
            None => self.add(name, value),
        }
    }

    /// Removes every entry of `name`.
    pub fn remove(&mut self, name: &[u8]) {
        let before = self.entries.len();
        self.entries.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        // Removing an absent name changes nothing a host would have to write back (filters
        // that strip headers clients may forge do it on every request).
        if self.entries.len() != before {
            self.changed.note(name, || lower(name));
        }
    }

    /// Replaces the whole map with `pairs`, in their order (names lower-cased).
    pub fn set_all(&mut self, pairs: Vec<(Bytes, Bytes)>) {
        self.entries.clear();
        self.entries.extend(pairs.into_iter().map(|(k, v)| (lower(&k), v)));
        self.changed = Changed::Everything;
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

/// `name` without a copy when it is a pseudo-header or one of the headers most requests and
/// responses carry.
fn known_name(name: &[u8]) -> Bytes {
    static_name(name).map_or_else(|| Bytes::copy_from_slice(name), Bytes::from_static)
}

/// The static copy of a well-known (lower-case) name.
fn static_name(name: &[u8]) -> Option<&'static [u8]> {
    let known: &'static [u8] = match name {
        b"accept" => b"accept",
        b"accept-encoding" => b"accept-encoding",
        b"accept-language" => b"accept-language",
        b"authorization" => b"authorization",
        b"cache-control" => b"cache-control",
        b"content-length" => b"content-length",
        b"content-type" => b"content-type",
        b"cookie" => b"cookie",
        b"date" => b"date",
        b"etag" => b"etag",
        b"last-modified" => b"last-modified",
        b"location" => b"location",
        b"referer" => b"referer",
        b"server" => b"server",
        b"set-cookie" => b"set-cookie",
        b"user-agent" => b"user-agent",
        b"vary" => b"vary",
        b"x-forwarded-for" => b"x-forwarded-for",
        b"x-forwarded-proto" => b"x-forwarded-proto",
        b"x-request-id" => b"x-request-id",
        b":authority" => b":authority",
        b":method" => b":method",
        b":path" => b":path",
        b":scheme" => b":scheme",
        b":status" => b":status",
        _ => return None,
    };
    Some(known)
}

fn lower(name: &[u8]) -> Bytes {
    if name.iter().any(u8::is_ascii_uppercase) { Bytes::from(name.to_ascii_lowercase()) } else { known_name(name) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_view_matches_adding_its_headers() {
        let pseudo: [(&'static [u8], &[u8]); 2] = [(b":method", b"GET"), (b":path", b"/a?b")];
        let regular = [("content-type", "a"), ("x-custom", "b"), ("date", ""), ("x-custom", "c")];
        let view = HeaderMap::from_host(&pseudo, regular.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())), 2);
        let mut added = HeaderMap::new();
        for (k, v) in
            pseudo.iter().map(|(k, v)| (*k, *v)).chain(regular.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
        {
            added.add(k, Bytes::copy_from_slice(v));
        }
        assert_eq!(view, added);
        assert!(!view.is_changed(), "a host's view starts in step with the host");
        assert_eq!(view.get(b"Content-Type").map(|v| &v[..]), Some(&b"a"[..]));
        assert_eq!(view.get_all(b"x-custom").map(|v| &v[..]).collect::<Vec<_>>(), [&b"b"[..], b"c"]);
        assert_eq!(view.get(b"date").map(|v| &v[..]), Some(&b""[..]));
        let empty = HeaderMap::from_host(&[], std::iter::empty(), 0);
        assert!(empty.is_empty() && !empty.is_changed());
    }

    #[test]
    fn removing_an_absent_name_changes_nothing() {
        let mut m = HeaderMap::from_pairs([("a", "1")]);
        m.mark_unchanged();
        m.remove(b"x-forged");
        assert!(!m.is_changed());
        m.remove(b"A");
        assert_eq!(m.changed_names(), Some(&[Bytes::from_static(b"a")][..]));
        assert!(m.is_empty());
    }

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
    fn every_change_is_noticed_and_reads_are_not() {
        let mut m = HeaderMap::from_pairs([("a", "1")]);
        assert!(m.is_changed() && HeaderMap::new().is_changed(), "a new map counts as changed");
        type Change = fn(&mut HeaderMap);
        let changes: [Change; 4] =
            [|m| m.add(b"b", "2"), |m| m.replace(b"b", "3"), |m| m.remove(b"A"), |m| m.set_all(vec![])];
        for change in changes {
            m.mark_unchanged();
            let _ = (m.get(b"a"), m.len(), m.encode(), m.clone());
            assert!(!m.is_changed(), "reads change nothing");
            change(&mut m);
            assert!(m.is_changed());
        }
    }

    #[test]
    fn changed_names_are_each_name_once_until_the_map_is_replaced() {
        let mut m = HeaderMap::from_pairs([("a", "1"), ("B", "2")]);
        assert_eq!(m.changed_names(), None, "a new map may differ anywhere");
        m.mark_unchanged();
        assert_eq!(m.changed_names(), Some(&[][..]));
        m.add(b"X-New", "1");
        m.replace(b"b", "3");
        m.add(b"x-new", "2");
        m.remove(b"absent");
        m.remove(b"A");
        let names: Vec<&[u8]> = m.changed_names().unwrap().iter().map(|n| &n[..]).collect();
        assert_eq!(names, [&b"x-new"[..], b"b", b"a"], "a name that was absent did not change");
        m.set_all(vec![]);
        assert_eq!(m.changed_names(), None);
    }
}
