//! Compare-and-swap updates of buckets in a key-value store with versions (Proxy-Wasm
//! shared data), behind a trait so the retry loop runs natively in tests.

use crate::bucket::Bucket;

/// Why a write did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetError {
    /// Someone wrote since our read (`CAS_MISMATCH`).
    Conflict,
    /// Anything else.
    Unavailable,
}

/// Shared data as the Proxy-Wasm ABI offers it: a missing key has no version, and a write
/// without a version always succeeds.
pub trait Store {
    /// The value and version of `key`; Err when the host failed.
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), SetError>;
    /// Writes `value` if `cas` is None or still the current version.
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError>;
}

/// Attempts before giving up on a key whose version keeps changing.
pub const MAX_ATTEMPTS: usize = 16;

/// The version a write creating a key claims to replace. The host creates an absent key
/// whatever the version (as Envoy does: proxy-wasm-cpp-host's `SharedData::set` in
/// `src/shared_data.cc` checks the version only of a key it has), but refuses the write once the key
/// exists with another version: so a worker that found the key absent and lost the race to
/// create it gets a conflict and reads the winner's bucket, instead of overwriting it. Hosts
/// count versions from 1 and skip 0, so a live key has this one only after 2³² − 1 writes.
pub const ABSENT: u32 = u32::MAX;

/// Reads the bucket at `key` (None if absent or unreadable), lets `step` compute the new
/// state and a result, and writes it back with CAS, retrying on conflicts. `step` returns
/// no state when nothing needs writing. None when the store failed or stayed contended
/// for [`MAX_ATTEMPTS`]; the caller then lets the request through (fails open).
///
/// A key that does not exist yet is written with the version [`ABSENT`], which makes the
/// write a create-if-absent: workers racing on a brand-new key take their tokens one after
/// the other, as for any key.
pub fn update<S, R>(store: &S, key: &str, mut step: impl FnMut(Option<Bucket>) -> (Option<Bucket>, R)) -> Option<R>
where
    S: Store + ?Sized,
{
    for _ in 0..MAX_ATTEMPTS {
        let (value, cas) = store.get(key).ok()?;
        let (next, result) = step(value.as_deref().and_then(Bucket::decode));
        let Some(next) = next else { return Some(result) };
        match store.set(key, &next.encode(), Some(cas.unwrap_or(ABSENT))) {
            Ok(()) => return Some(result),
            Err(SetError::Conflict) => continue,
            Err(SetError::Unavailable) => return None,
        }
    }
    None
}

#[cfg(test)]
pub mod fake {
    //! An in-memory store with the host's CAS semantics, and hooks to interleave clients.

    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    use super::{SetError, Store};

    /// A hook run inside `get`.
    pub type Hook = Box<dyn FnMut(&FakeStore)>;

    /// Keys → (value, version); versions come from one counter and are never 0.
    #[derive(Default)]
    pub struct FakeStore {
        pub data: RefCell<HashMap<String, (Vec<u8>, u32)>>,
        next: Cell<u32>,
        /// Called after every `get`, before the caller writes: lets a test slip in another
        /// client's update at the worst moment.
        pub after_get: RefCell<Option<Hook>>,
        /// Counts writes refused for a stale version.
        pub conflicts: Cell<u32>,
    }

    impl Store for FakeStore {
        fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), SetError> {
            let found = self.data.borrow().get(key).cloned();
            // Taken out while it runs, so the hook's own reads are not interrupted.
            let hook = self.after_get.borrow_mut().take();
            if let Some(mut hook) = hook {
                hook(self);
                *self.after_get.borrow_mut() = Some(hook);
            }
            Ok(match found {
                Some((v, cas)) => (Some(v), Some(cas)),
                None => (None, None),
            })
        }

        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
            let mut data = self.data.borrow_mut();
            if let (Some(want), Some((_, current))) = (cas, data.get(key))
                && want != *current
            {
                self.conflicts.set(self.conflicts.get() + 1);
                return Err(SetError::Conflict);
            }
            self.next.set(self.next.get() + 1);
            data.insert(key.to_owned(), (value.to_vec(), self.next.get()));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::fake::FakeStore;
    use super::*;
    use crate::bucket::{Limit, MILLI};

    const NOW: u64 = 1_700_000_000_000_000_000;
    const LIMIT: Limit = Limit { capacity: 3, refill_milli_per_sec: 1 };

    /// One admission attempt, as the limiter makes it.
    fn admit<S: Store + ?Sized>(store: &S, key: &str) -> Option<bool> {
        update(store, key, |b| match b.unwrap_or(Bucket::full(LIMIT, NOW)).take(LIMIT, NOW) {
            Some(next) => (Some(next), true),
            None => (None, false),
        })
    }

    #[test]
    fn creates_then_updates() {
        let store = FakeStore::default();
        assert_eq!(admit(&store, "k"), Some(true));
        let stored = store.data.borrow().get("k").and_then(|(v, _)| Bucket::decode(v));
        assert_eq!(stored.map(|b| b.milli), Some(2 * MILLI));
    }

    #[test]
    fn interleaved_clients_never_over_admit() {
        let store = Rc::new(FakeStore::default());
        assert_eq!(admit(&*store, "k"), Some(true)); // the bucket exists: 2 tokens left
        // Between every read and write of client A, client B admits one request.
        let b_admitted = Rc::new(Cell::new(0));
        let counter = Rc::clone(&b_admitted);
        *store.after_get.borrow_mut() = Some(Box::new(move |s: &FakeStore| {
            if admit(s, "k") == Some(true) {
                counter.set(counter.get() + 1);
            }
        }));
        let mut a_admitted = 0;
        for _ in 0..5 {
            if admit(&*store, "k") == Some(true) {
                a_admitted += 1;
            }
        }
        *store.after_get.borrow_mut() = None;
        assert_eq!(a_admitted + b_admitted.get(), 2, "A {a_admitted}, B {}", b_admitted.get());
        assert!(store.conflicts.get() > 0, "the interleaving must have produced conflicts");
    }

    #[test]
    fn racing_creators_never_over_admit() {
        // Client B finds the key absent; before it writes, client A creates it and takes two
        // tokens. B's write must not reset A's bucket: B conflicts, reads it, takes the last.
        let store = Rc::new(FakeStore::default());
        let a_admitted = Rc::new(Cell::new(0));
        let counter = Rc::clone(&a_admitted);
        *store.after_get.borrow_mut() = Some(Box::new(move |s: &FakeStore| {
            if counter.get() == 0 {
                for _ in 0..2 {
                    if admit(s, "k") == Some(true) {
                        counter.set(counter.get() + 1);
                    }
                }
            }
        }));
        let b = admit(&*store, "k");
        *store.after_get.borrow_mut() = None;
        assert_eq!((a_admitted.get(), b), (2, Some(true)));
        assert_eq!(admit(&*store, "k"), Some(false), "three tokens, three admissions");
        assert!(store.conflicts.get() > 0, "B's creating write conflicted");
    }

    #[test]
    fn endless_contention_gives_up() {
        let store = FakeStore::default();
        assert_eq!(admit(&store, "k"), Some(true));
        *store.after_get.borrow_mut() = Some(Box::new(|s: &FakeStore| {
            // Bump the version without changing the value.
            let current = s.data.borrow().get("k").cloned();
            if let Some((v, cas)) = current {
                let _ = s.set("k", &v, Some(cas));
            }
        }));
        assert_eq!(admit(&store, "k"), None);
        assert_eq!(store.conflicts.get(), MAX_ATTEMPTS as u32);
    }

    #[test]
    fn garbage_is_replaced_by_a_new_bucket() {
        let store = FakeStore::default();
        store.data.borrow_mut().insert("k".into(), (b"junk".to_vec(), 7));
        assert_eq!(admit(&store, "k"), Some(true));
        let stored = store.data.borrow().get("k").and_then(|(v, _)| Bucket::decode(v));
        assert_eq!(stored.map(|b| b.milli), Some(2 * MILLI));
    }

    struct Broken;
    impl Store for Broken {
        fn get(&self, _: &str) -> Result<(Option<Vec<u8>>, Option<u32>), SetError> {
            Err(SetError::Unavailable)
        }
        fn set(&self, _: &str, _: &[u8], _: Option<u32>) -> Result<(), SetError> {
            Err(SetError::Unavailable)
        }
    }

    #[test]
    fn a_failing_store_yields_none() {
        assert_eq!(admit(&Broken, "k"), None);
    }
}
