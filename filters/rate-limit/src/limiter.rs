//! One request against every applicable rule: take a token from each bucket, give them back
//! if any bucket is empty, and report the quota to show in headers.

use crate::bucket::{Bucket, Limit};
use crate::config::Config;
use crate::descriptor::{self, Request};
use crate::store::{self, Store};

/// A rule's state as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// The rule's capacity.
    pub limit: u64,
    /// Whole tokens left after this request.
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds until the next token (meaningful when limited).
    pub retry_after_secs: u64,
}

impl Quota {
    fn of(bucket: Bucket, limit: Limit, now: u64) -> Self {
        Self {
            limit: limit.capacity,
            remaining: bucket.remaining(),
            reset_secs: bucket.reset_secs(limit, now),
            retry_after_secs: bucket.retry_after_secs(limit, now),
        }
    }

    /// `x-ratelimit-limit`, `-remaining`, `-reset`, with their numbers.
    pub fn headers(&self) -> [(&'static str, u64); 3] {
        [
            ("x-ratelimit-limit", self.limit),
            ("x-ratelimit-remaining", self.remaining),
            ("x-ratelimit-reset", self.reset_secs),
        ]
    }
}

/// The outcome for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The quota of the rule that refused the request (None: allowed).
    pub limited: Option<Quota>,
    /// When allowed: the most restrictive applicable rule (fewest tokens left).
    pub quota: Option<Quota>,
    /// Rules skipped because the store failed or stayed contended; the request was let
    /// through by them.
    pub failed_open: Vec<String>,
}

enum Take {
    Taken(Quota),
    Empty(Quota),
}

/// Checks `req` at `now` (ns since the epoch). Tokens taken from earlier rules are given
/// back when a later rule refuses, so refused requests cost nothing.
pub fn check<S: Store + ?Sized>(config: &Config, store: &S, req: &Request, now: u64) -> Verdict {
    let mut verdict = Verdict::default();
    let mut taken: Vec<(String, Limit)> = Vec::new();
    for (i, rule) in config.rules.iter().enumerate() {
        let Some(key) = descriptor::key(&rule.name, &rule.descriptors, req) else { continue };
        let limit = rule.limit;
        let outcome = store::update(store, &key, |stored| {
            let bucket = stored.unwrap_or(Bucket::full(limit, now)).refill(limit, now);
            match bucket.take(limit, now) {
                Some(next) => (Some(next), Take::Taken(Quota::of(next, limit, now))),
                None => (None, Take::Empty(Quota::of(bucket, limit, now))),
            }
        });
        match outcome {
            None => verdict.failed_open.push(rule.name.clone()),
            Some(Take::Taken(q)) => {
                // Only a later rule's refusal gives a token back.
                if i + 1 < config.rules.len() {
                    taken.push((key, limit));
                }
                let tighter = verdict.quota.is_none_or(|best| (q.remaining, q.limit) < (best.remaining, best.limit));
                if tighter {
                    verdict.quota = Some(q);
                }
            }
            Some(Take::Empty(q)) => {
                verdict.limited = Some(q);
                verdict.quota = None;
                for (key, limit) in &taken {
                    // Best effort: a refund lost to contention only makes the limit stricter.
                    let _ = store::update(store, key, |b| {
                        (Some(b.unwrap_or(Bucket::full(*limit, now)).give_back(*limit, now)), ())
                    });
                }
                break;
            }
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fake::FakeStore;

    const SEC: u64 = 1_000_000_000;
    const T0: u64 = 1_700_000_000 * SEC;

    fn config(json: &str) -> Config {
        match Config::from_json(json.as_bytes()) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    fn req(addr: &str, key: Option<&str>, path: &str) -> Request {
        Request {
            client_address: Some(addr.to_owned()),
            path: path.to_owned(),
            headers: key.map(|k| ("x-api-key".to_owned(), k.to_owned())).into_iter().collect(),
        }
    }

    const TWO_RULES: &str = r#"{"rules": [
        {"name": "per-client", "descriptors": ["client_address"], "capacity": 5, "refill_per_second": 1},
        {"name": "per-key-path", "descriptors": [{"header": "x-api-key"}, {"path_prefix": "/api/"}], "capacity": 2, "refill_per_second": 1}
    ]}"#;

    fn tokens(store: &FakeStore, key: &str) -> Option<u64> {
        store.data.borrow().get(key).and_then(|(v, _)| Bucket::decode(v)).map(|b| b.remaining())
    }

    #[test]
    fn per_client_buckets_are_separate() {
        let c = config(TWO_RULES);
        let store = FakeStore::default();
        for _ in 0..5 {
            assert_eq!(check(&c, &store, &req("1.1.1.1", None, "/"), T0).limited, None);
        }
        let v = check(&c, &store, &req("1.1.1.1", None, "/"), T0);
        assert_eq!(v.limited, Some(Quota { limit: 5, remaining: 0, reset_secs: 5, retry_after_secs: 1 }));
        assert_eq!(check(&c, &store, &req("2.2.2.2", None, "/"), T0).limited, None);
        assert_eq!(check(&c, &store, &req("1.1.1.1", None, "/"), T0 + SEC).limited, None, "refilled");
    }

    #[test]
    fn most_restrictive_rule_is_reported() {
        let c = config(TWO_RULES);
        let store = FakeStore::default();
        let v = check(&c, &store, &req("1.1.1.1", Some("k"), "/api/x"), T0);
        assert_eq!(v.quota, Some(Quota { limit: 2, remaining: 1, reset_secs: 1, retry_after_secs: 1 }));
        let v = check(&c, &store, &req("1.1.1.1", Some("k"), "/other"), T0);
        assert_eq!(v.quota.map(|q| (q.limit, q.remaining)), Some((5, 3)));
    }

    #[test]
    fn refused_requests_get_their_tokens_back() {
        let c = config(TWO_RULES);
        let store = FakeStore::default();
        let r = req("1.1.1.1", Some("k"), "/api/x");
        assert!(check(&c, &store, &r, T0).limited.is_none());
        assert!(check(&c, &store, &r, T0).limited.is_none());
        let v = check(&c, &store, &r, T0);
        assert_eq!(v.limited.map(|q| q.limit), Some(2));
        assert_eq!(tokens(&store, "rl:per-client:1.1.1.1"), Some(3), "5 - 2 admitted; the refused one refunded");
        assert_eq!(tokens(&store, "rl:per-key-path:k:/api/"), Some(0));
    }

    #[test]
    fn capacity_change_clamps_stored_buckets() {
        let store = FakeStore::default();
        let big = config(r#"{"rules":[{"name":"r","capacity":100,"refill_per_second":1}]}"#);
        assert!(check(&big, &store, &req("a", None, "/"), T0).limited.is_none());
        let small = config(r#"{"rules":[{"name":"r","capacity":3,"refill_per_second":1}]}"#);
        let v = check(&small, &store, &req("a", None, "/"), T0);
        assert_eq!(v.quota.map(|q| (q.limit, q.remaining)), Some((3, 2)));
    }

    #[test]
    fn interleaved_workers_never_over_admit() {
        let c = config(
            r#"{"rules":[{"name":"r","descriptors":["client_address"],"capacity":10,"refill_per_second":0.001}]}"#,
        );
        let store = std::rc::Rc::new(FakeStore::default());
        assert!(check(&c, &*store, &req("a", None, "/"), T0).limited.is_none());
        let other = std::rc::Rc::new(std::cell::Cell::new(0));
        let count = std::rc::Rc::clone(&other);
        let c2 = c.clone();
        *store.after_get.borrow_mut() = Some(Box::new(move |s: &FakeStore| {
            if check(&c2, s, &req("a", None, "/"), T0).limited.is_none() {
                count.set(count.get() + 1);
            }
        }));
        let mut mine = 1;
        for _ in 0..20 {
            if check(&c, &*store, &req("a", None, "/"), T0).limited.is_none() {
                mine += 1;
            }
        }
        *store.after_get.borrow_mut() = None;
        assert_eq!(mine + other.get(), 10);
    }

    #[test]
    fn contention_fails_open_and_is_reported() {
        let c = config(r#"{"rules":[{"name":"r","capacity":1,"refill_per_second":1}]}"#);
        let store = FakeStore::default();
        assert!(check(&c, &store, &req("a", None, "/"), T0).limited.is_none());
        *store.after_get.borrow_mut() = Some(Box::new(|s: &FakeStore| {
            let current = s.data.borrow().get("rl:r:").cloned();
            if let Some((v, cas)) = current {
                let _ = crate::store::Store::set(s, "rl:r:", &v, Some(cas));
            }
        }));
        // The bucket is empty, so no write is attempted: the refusal stands.
        assert!(check(&c, &store, &req("a", None, "/"), T0).limited.is_some());
        let v = check(&c, &store, &req("a", None, "/"), T0 + SEC);
        assert_eq!((v.limited, v.failed_open), (None, vec!["r".to_owned()]));
    }

    #[test]
    fn requests_no_rule_applies_to_pass_untouched() {
        let c = config(TWO_RULES);
        let store = FakeStore::default();
        let r = Request { client_address: None, path: "/api/x".into(), headers: vec![] };
        assert_eq!(check(&c, &store, &r, T0), Verdict::default());
        assert!(store.data.borrow().is_empty());
    }
}
