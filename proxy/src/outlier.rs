//! Passive health (Envoy's outlier detection): an endpoint whose answers fail some number of
//! times in a row is ejected, skipped by endpoint selection for `base_ejection_time` times the
//! number of its ejections (at most `max_ejection_time`), while at most
//! the share already out is below `max_ejection_percent`.
//!
//! Connect failures and resets count as a 503, as in Envoy without
//! `split_external_local_origin_errors`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::OutlierDetection;

/// One endpoint's record.
#[derive(Debug, Default)]
struct Record {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    ejections: AtomicU32,
    /// Until when it is ejected, in milliseconds since [`Outliers::since`]; 0 when it never was.
    ejected_until: AtomicU64,
}

/// The outlier state of a cluster's endpoints.
#[derive(Debug)]
pub struct Outliers {
    config: OutlierDetection,
    since: Instant,
    records: crate::FastMap<SocketAddr, Record>,
}

/// An endpoint's outlier state, for `/clusters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub ejected: bool,
    pub ejections: u32,
}

impl Outliers {
    pub fn new(config: &OutlierDetection, endpoints: impl IntoIterator<Item = SocketAddr>) -> Self {
        Outliers {
            config: config.clone(),
            since: Instant::now(),
            records: endpoints.into_iter().map(|a| (a, Record::default())).collect(),
        }
    }

    fn now(&self) -> u64 {
        self.since.elapsed().as_millis() as u64
    }

    /// Whether `endpoint` is ejected now.
    pub fn ejected(&self, endpoint: &SocketAddr) -> bool {
        self.records.get(endpoint).is_some_and(|r| r.ejected_until.load(Ordering::Relaxed) > self.now())
    }

    /// Records one answer (or failure, as its status) from `endpoint`; `Some(how long)` when
    /// it ejects the endpoint.
    pub fn record(&self, endpoint: &SocketAddr, status: u16) -> Option<Duration> {
        let r = self.records.get(endpoint)?;
        let count = |counter: &AtomicU32, failed: bool| {
            if failed {
                counter.fetch_add(1, Ordering::Relaxed) + 1
            } else {
                counter.store(0, Ordering::Relaxed);
                0
            }
        };
        let fives = count(&r.consecutive_5xx, status >= 500);
        let gateway = count(&r.consecutive_gateway, (502..=504).contains(&status));
        let c = &self.config;
        let tripped = (c.consecutive_5xx > 0 && fives >= c.consecutive_5xx)
            || (c.consecutive_gateway_failure > 0 && gateway >= c.consecutive_gateway_failure);
        if !tripped || self.ejected(endpoint) || !self.room_to_eject() {
            return None;
        }
        r.consecutive_5xx.store(0, Ordering::Relaxed);
        r.consecutive_gateway.store(0, Ordering::Relaxed);
        let n = r.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let length = c.base_ejection_time.0.saturating_mul(n).min(c.max_ejection_time.0);
        r.ejected_until.store(self.now() + length.as_millis() as u64, Ordering::Relaxed);
        Some(length)
    }

    fn room_to_eject(&self) -> bool {
        let now = self.now();
        let out = self.records.values().filter(|r| r.ejected_until.load(Ordering::Relaxed) > now).count();
        // As Envoy: while the share already out is below the limit (so with a limit above 0
        // one endpoint may always be ejected, however few the endpoints).
        out * 100 < self.records.len() * self.config.max_ejection_percent as usize
    }

    /// Each endpoint's state.
    pub fn state(&self, endpoint: &SocketAddr) -> Option<State> {
        let r = self.records.get(endpoint)?;
        Some(State { ejected: self.ejected(endpoint), ejections: r.ejections.load(Ordering::Relaxed) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outliers(yaml: &str, n: u16) -> (Outliers, Vec<SocketAddr>) {
        let addrs: Vec<SocketAddr> = (1..=n).map(|p| SocketAddr::from(([127, 0, 0, 1], p))).collect();
        (Outliers::new(&serde_yaml_ng::from_str(yaml).unwrap(), addrs.clone()), addrs)
    }

    #[test]
    fn failures_in_a_row_eject_for_a_growing_time() {
        let (o, a) = outliers("{ consecutive_5xx: 3, base_ejection_time: 10s, max_ejection_time: 25s }", 2);
        assert_eq!(o.record(&a[0], 503), None);
        assert_eq!(o.record(&a[0], 200), None, "a success starts the count again");
        assert_eq!(o.record(&a[0], 500), None);
        assert_eq!(o.record(&a[0], 502), None);
        assert_eq!(o.record(&a[0], 503), Some(Duration::from_secs(10)));
        assert!(o.ejected(&a[0]) && !o.ejected(&a[1]));
        assert_eq!(o.state(&a[0]), Some(State { ejected: true, ejections: 1 }));
        // Ejected again once back: twice as long, then capped.
        o.records[&a[0]].ejected_until.store(0, Ordering::Relaxed);
        for _ in 0..3 {
            let _ = o.record(&a[0], 503);
        }
        assert_eq!(o.state(&a[0]).unwrap().ejections, 2);
        o.records[&a[0]].ejected_until.store(0, Ordering::Relaxed);
        let _ = o.record(&a[0], 503);
        let _ = o.record(&a[0], 503);
        assert_eq!(o.record(&a[0], 503), Some(Duration::from_secs(25)), "3 × 10s, capped at 25s");
    }

    #[test]
    fn at_most_the_allowed_share_is_out_and_at_least_one() {
        let (o, a) = outliers("{ consecutive_5xx: 1, max_ejection_percent: 10 }", 3);
        assert!(o.record(&a[0], 503).is_some(), "none out yet (0% < 10%): one may be ejected");
        assert!(o.record(&a[1], 503).is_none(), "with one of three out (33%), no second");
        let (o, a) = outliers("{ consecutive_5xx: 1, max_ejection_percent: 0 }", 3);
        assert!(o.record(&a[0], 503).is_none(), "0% ejects none");
        let (o, a) = outliers("{ consecutive_5xx: 0, consecutive_gateway_failure: 2 }", 1);
        assert!(o.record(&a[0], 500).is_none() && o.record(&a[0], 504).is_none());
        assert!(o.record(&a[0], 504).is_some(), "two gateway errors in a row");
    }
}
