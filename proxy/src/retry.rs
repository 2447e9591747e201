//! Trying a request again, as Envoy's router does (its `retry_policy` and `retry_budget`):
//! which failures of a try are retried, how many times, how soon, and how many retries a
//! cluster allows at once so that retries cannot multiply an outage.
//!
//! Filters see one request: a retried try fails before the response reaches them, and the
//! request body they already changed is sent again as they left it (see `service`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::config::{RetryBudget, RetryOn, RetryPolicyConfig};

/// What went wrong with one try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryFailure {
    /// No connection to the endpoint.
    ConnectFailure,
    /// An HTTP/2 endpoint refused the stream.
    RefusedStream,
    /// The endpoint closed, reset or timed out (its cluster's `read_timeout`) before its
    /// response head.
    Reset,
    /// The try ran past its `per_try_timeout`.
    PerTryTimeout,
    /// The endpoint answered with this status.
    Status(u16),
}

impl TryFailure {
    /// The status the failure counts as for outlier detection (Envoy maps local-origin
    /// failures to 503).
    pub fn status(self) -> u16 {
        match self {
            TryFailure::Status(s) => s,
            TryFailure::PerTryTimeout => 504,
            _ => 503,
        }
    }
}

/// A compiled retry policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    on: Vec<RetryOn>,
    /// Retries after the first try.
    pub num_retries: u32,
    /// Most time each read of a try's answer may take.
    pub per_try_timeout: Option<Duration>,
    codes: Vec<u16>,
    base: Duration,
    max: Duration,
    non_idempotent: bool,
}

impl Policy {
    pub fn new(c: &RetryPolicyConfig) -> Self {
        let base = c.retry_back_off.base_interval.0;
        Policy {
            on: c.retry_on.clone(),
            num_retries: c.num_retries,
            per_try_timeout: c.per_try_timeout.map(|t| t.0),
            codes: c.retriable_status_codes.clone(),
            base,
            max: c.retry_back_off.max_interval.map_or(base * 10, |m| m.0),
            non_idempotent: c.retry_non_idempotent,
        }
    }

    fn on(&self, condition: RetryOn) -> bool {
        self.on.contains(&condition)
    }

    /// Whether the policy's conditions cover `failure` (Envoy's `wouldRetryFromReset` and
    /// `wouldRetryFromHeaders` in `source/common/router/retry_state_impl.cc`: `reset`, `5xx`
    /// and `gateway-error` cover connect failures, refused streams and resets).
    pub fn covers(&self, failure: TryFailure) -> bool {
        use RetryOn::*;
        let any_reset = self.on(Reset) || self.on(FiveXx) || self.on(GatewayError);
        match failure {
            TryFailure::ConnectFailure => self.on(ConnectFailure) || any_reset,
            TryFailure::RefusedStream => self.on(RefusedStream) || any_reset,
            TryFailure::Reset => any_reset,
            // Envoy's retry_state_impl.cc: a per-try timeout is retried only under `5xx` and
            // `gateway-error` (it is answered as a gateway error), not under `reset`.
            TryFailure::PerTryTimeout => self.on(FiveXx) || self.on(GatewayError),
            TryFailure::Status(s) => {
                (self.on(FiveXx) && s >= 500)
                    || (self.on(GatewayError) && (502..=504).contains(&s))
                    || (self.on(RetriableStatusCodes) && self.codes.contains(&s))
            }
        }
    }

    /// Whether a request with this method may be sent again after it reached the upstream.
    pub fn may_resend(&self, method: &http::Method) -> bool {
        self.non_idempotent || method.is_idempotent()
    }

    /// The wait before retry number `retry` (1 for the first): a random time up to
    /// `base × 2^(retry − 1)`, at most `max` (full jitter spreads retries of many clients).
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.base.saturating_mul(1 << retry.saturating_sub(1).min(20)).min(self.max);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// Requests and retries under way in a cluster.
#[derive(Debug)]
pub struct Budget {
    active: AtomicUsize,
    retrying: AtomicUsize,
    percent: f64,
    min: usize,
}

impl Budget {
    pub fn new(c: &RetryBudget) -> Arc<Self> {
        Arc::new(Budget {
            active: AtomicUsize::new(0),
            retrying: AtomicUsize::new(0),
            percent: c.budget_percent,
            min: c.min_retry_concurrency as usize,
        })
    }

    /// Counts a request as under way until the guard drops.
    pub fn enter(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Ordering::Relaxed);
        Active(self.clone())
    }

    /// A retry if the budget allows one now: fewer retries under way than `budget_percent` of
    /// the requests under way, or than `min_retry_concurrency`.
    pub fn retry(self: &Arc<Self>) -> Option<Retrying> {
        let active = self.active.load(Ordering::Relaxed);
        let allowed = ((active as f64 * self.percent / 100.0) as usize).max(self.min);
        self.retrying
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < allowed).then_some(n + 1))
            .ok()
            .map(|_| Retrying(self.clone()))
    }
}

/// A request under way (see [`Budget::enter`]).
#[derive(Debug)]
pub struct Active(Arc<Budget>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A retry under way (see [`Budget::retry`]).
#[derive(Debug)]
pub struct Retrying(Arc<Budget>);

impl Drop for Retrying {
    fn drop(&mut self) {
        self.0.retrying.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One request's tries.
#[derive(Debug, Default)]
pub struct Tries {
    /// Tries made so far.
    pub count: u32,
    /// The endpoints tried, so a retry goes elsewhere when it can (inline: no allocation for
    /// the usual one or two).
    pub tried: smallvec::SmallVec<[std::net::SocketAddr; 2]>,
    /// The policy, from the route or the cluster, set at the first try.
    pub policy: Option<Arc<Policy>>,
    /// The request under way in its cluster's budget.
    pub active: Option<Active>,
    /// The retry under way, if this try is one.
    pub retrying: Option<Retrying>,
    /// Why the last try failed, when it did.
    pub last_failure: Option<TryFailure>,
}

/// Whether a failed try gets another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Retry,
    /// The policy does not retry this failure (or no try is left).
    Stop,
    /// The policy would, but the cluster's retry budget has no room.
    OverBudget,
}

impl Tries {
    /// Retry when the policy covers the failure, a try is left, the method allows sending
    /// again (always after a connect failure or a refused stream: nothing was processed) and
    /// the budget has room.
    pub fn decide(&mut self, failure: TryFailure, method: &http::Method, budget: &Arc<Budget>) -> Decision {
        self.last_failure = Some(failure);
        let Some(policy) = &self.policy else { return Decision::Stop };
        // A refused stream was not processed (RFC 9113 §8.7): as safe to send again as a
        // connection never made.
        let sent = !matches!(failure, TryFailure::ConnectFailure | TryFailure::RefusedStream);
        if !policy.covers(failure) || self.count > policy.num_retries || (sent && !policy.may_resend(method)) {
            return Decision::Stop;
        }
        match budget.retry() {
            Some(permit) => {
                self.retrying = Some(permit);
                Decision::Retry
            }
            None => Decision::OverBudget,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> Policy {
        Policy::new(&serde_yaml_ng::from_str(yaml).unwrap())
    }

    #[test]
    fn conditions_cover_what_envoy_retries() {
        let connect = policy("{}");
        assert!(connect.covers(TryFailure::ConnectFailure));
        assert!(!connect.covers(TryFailure::Reset) && !connect.covers(TryFailure::Status(503)));

        let five = policy("retry_on: 5xx");
        assert!(five.covers(TryFailure::ConnectFailure) && five.covers(TryFailure::Reset));
        assert!(five.covers(TryFailure::Status(500)) && !five.covers(TryFailure::Status(404)));

        let gateway = policy(
            r#"retry_on: "gateway-error, retriable-status-codes"
retriable_status_codes: [409]"#,
        );
        assert!(gateway.covers(TryFailure::Status(504)) && !gateway.covers(TryFailure::Status(500)));
        assert!(gateway.covers(TryFailure::Status(409)));
        assert!(policy("retry_on: [refused-stream]").covers(TryFailure::RefusedStream));
        assert!(policy("retry_on: reset").covers(TryFailure::RefusedStream));
        assert!(!policy("retry_on: reset").covers(TryFailure::PerTryTimeout));
        assert!(policy("retry_on: gateway-error").covers(TryFailure::PerTryTimeout));
    }

    #[test]
    fn backoff_is_jittered_below_a_growing_ceiling() {
        let p = policy("retry_back_off: { base_interval: 10ms, max_interval: 35ms }");
        for _ in 0..100 {
            assert!(p.backoff(1) <= Duration::from_millis(10));
            assert!(p.backoff(2) <= Duration::from_millis(20));
            assert!(p.backoff(9) <= Duration::from_millis(35));
        }
    }

    #[test]
    fn the_budget_bounds_retries_under_way() {
        let budget = Budget::new(&RetryBudget { budget_percent: 50.0, min_retry_concurrency: 1 });
        let requests: Vec<Active> = (0..4).map(|_| budget.enter()).collect();
        let first = budget.retry().expect("50% of 4");
        let second = budget.retry().expect("50% of 4");
        assert!(budget.retry().is_none(), "a third retry is over budget");
        drop(first);
        assert!(budget.retry().is_some(), "room again once a retry ends");
        drop((second, requests));
        assert!(budget.retry().is_some(), "min_retry_concurrency with nothing under way");
    }

    #[test]
    fn a_sent_post_is_not_retried_unless_configured() {
        let budget = Budget::new(&RetryBudget::default());
        let mut tries = Tries { count: 1, policy: Some(Arc::new(policy("retry_on: 5xx"))), ..Default::default() };
        assert_eq!(tries.decide(TryFailure::Status(503), &http::Method::POST, &budget), Decision::Stop);
        assert_eq!(
            tries.decide(TryFailure::ConnectFailure, &http::Method::POST, &budget),
            Decision::Retry,
            "nothing was sent"
        );
        tries.count = 2;
        assert_eq!(
            tries.decide(TryFailure::ConnectFailure, &http::Method::GET, &budget),
            Decision::Stop,
            "no retries left"
        );
        let empty = Budget::new(&RetryBudget { budget_percent: 0.0, min_retry_concurrency: 0 });
        tries.count = 1;
        assert_eq!(tries.decide(TryFailure::ConnectFailure, &http::Method::GET, &empty), Decision::OverBudget);
    }
}
