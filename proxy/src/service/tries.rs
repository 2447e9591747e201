//! The tries of one request at its upstream (`retry_policy`, `crate::retry`): choosing the
//! endpoint of each try, deciding whether a failed try gets another, and sending the request
//! body of a retry as the filters left it.

use std::sync::Arc;

use bytes::Bytes;
use pingora::prelude::*;
use pingora::proxy::Session;

use super::ctx::RequestCtx;
use crate::clusters::Cluster;
use crate::retry::{Decision, TryFailure};
use crate::state::State;

/// Most request body kept for a retry; Pingora keeps as much of the client's body (its retry
/// buffer), and a longer body is not retried.
const REPLAY_LIMIT: usize = 64 * 1024;

/// Before each try: the policy and the budget entry at the first.
pub(super) fn start_try(state: &State, ctx: &mut RequestCtx, cluster: &Arc<Cluster>) {
    let tries = &mut ctx.tries;
    if tries.count == 0 {
        let route_policy = ctx.route.and_then(|r| ctx.generation.routes[r].retry_policy.clone());
        tries.policy = Some(route_policy.unwrap_or_else(|| cluster.retry_policy.clone()));
        tries.active = Some(cluster.budget.enter());
    } else {
        cluster.metrics(&state.metrics).retry();
    }
    tries.count += 1;
}

/// The back-off wait before a retry at `endpoint` when it was tried already (no other
/// endpoint was left); a retry at an endpoint not tried yet goes at once, as nginx's next
/// upstream does.
pub(super) async fn back_off(ctx: &RequestCtx, endpoint: Option<std::net::SocketAddr>) {
    let tries = &ctx.tries;
    let again = endpoint.is_some_and(|e| tries.tried.contains(&e));
    if tries.count > 1
        && again
        && let Some(wait) = tries.policy.as_ref().map(|p| p.backoff(tries.count - 1))
    {
        tokio::time::sleep(wait).await;
    }
}

/// What bounds a try's reads from the upstream: the limit that fired names the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadLimit {
    /// The cluster's `read_timeout`.
    #[default]
    Cluster,
    /// The retry policy's `per_try_timeout`.
    PerTry,
    /// The route's `idle_timeout`.
    Idle,
    /// What is left of the route's `timeout`.
    Route,
}

/// Sets the try's read timeout to the tightest of the cluster's, the try's, the route's idle
/// timeout and what is left of the route's timeout (which starts at the first try).
pub(super) fn bound_reads(ctx: &mut RequestCtx, peer: &mut pingora::upstreams::peer::HttpPeer) {
    let now = std::time::Instant::now();
    let deadline = deadline(ctx);
    let mut limit = (peer.options.read_timeout.unwrap_or(std::time::Duration::MAX), ReadLimit::Cluster);
    let mut consider = |d: std::time::Duration, kind| {
        if d < limit.0 {
            limit = (d, kind);
        }
    };
    if let Some(t) = ctx.tries.policy.as_ref().and_then(|p| p.per_try_timeout) {
        consider(t, ReadLimit::PerTry);
    }
    consider(ctx.idle_timeout(), ReadLimit::Idle);
    if let Some(d) = deadline {
        consider(d.saturating_duration_since(now).max(std::time::Duration::from_millis(1)), ReadLimit::Route);
    }
    peer.options.read_timeout = Some(limit.0);
    ctx.read_limit = limit.1;
}

/// When the route's `timeout` ends: that long after the first try started.
fn deadline(ctx: &RequestCtx) -> Option<std::time::Instant> {
    let timeout = ctx.route.and_then(|r| ctx.generation.routes[r].timeout)?;
    Some(ctx.upstream_sent? + timeout)
}

/// Whether the route's `timeout` has passed.
pub(super) fn past_deadline(ctx: &RequestCtx) -> bool {
    deadline(ctx).is_some_and(|d| std::time::Instant::now() >= d)
}

/// Whether the failed try gets another; counts a retry the budget refused.
pub(super) fn retry(state: &State, session: &Session, ctx: &mut RequestCtx, failure: TryFailure) -> bool {
    let Some(cluster) = ctx.upstream.as_ref() else { return false };
    if let Some(endpoint) = ctx.stream.info.upstream_address {
        cluster.record_outcome(endpoint, failure.status(), &state.metrics);
    }
    if !ctx.tries.policy.as_ref().is_some_and(|p| p.covers(failure))
        || ctx.upstream_answered
        || session.response_written().is_some()
        || !ctx.replayable(session)
    {
        return false;
    }
    let cluster = cluster.clone();
    match ctx.tries.decide(failure, &session.req_header().method, &cluster.budget) {
        Decision::Retry => true,
        Decision::Stop => false,
        Decision::OverBudget => {
            cluster.metrics(&state.metrics).retry_over_budget();
            false
        }
    }
}

/// What an error after the connection was made means for retrying, `limit` bounding the
/// try's reads when it was a read timeout.
pub(super) fn failure_of(e: &Error, limit: ReadLimit) -> TryFailure {
    if e.etype() == &ErrorType::ReadTimedout && limit == ReadLimit::PerTry {
        return TryFailure::PerTryTimeout;
    }
    // Pingora nests its errors: the h2 error is somewhere down the chain of causes.
    let mut cause = e.cause.as_deref();
    while let Some(c) = cause {
        if let Some(h2) = c.downcast_ref::<h2::Error>() {
            let refused = h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM);
            return if refused { TryFailure::RefusedStream } else { TryFailure::Reset };
        }
        // A nested Pingora error is held as itself or in its box.
        let inner = c.downcast_ref::<Error>().or_else(|| c.downcast_ref::<Box<Error>>().map(|b| &**b));
        cause = inner.and_then(|inner| inner.cause.as_deref());
    }
    TryFailure::Reset
}

impl RequestCtx {
    /// Whether the request body can be sent again: all of it that left is kept (or there is
    /// no chain, and Pingora's own copy is the body).
    fn replayable(&self, session: &Session) -> bool {
        !session.as_ref().retry_buffer_truncated() && self.sent_len <= REPLAY_LIMIT
    }

    /// Keeps the body the filters released, for a retry: the chunks themselves (shared, not
    /// copied); only a retry joins them.
    pub(super) fn keep_sent(&mut self, released: &Bytes) {
        if self.sent_len <= REPLAY_LIMIT && !released.is_empty() {
            self.sent_len += released.len();
            self.sent_body.push(released.clone());
        }
    }

    /// At the first body chunk of a retry (Pingora's copy of the client's body), the body the
    /// filters released instead: they saw the body once and are not run again on it.
    pub(super) fn replay(&mut self) -> Option<Bytes> {
        if self.tries.count <= 1 || self.body_try == self.tries.count {
            self.body_try = self.tries.count;
            return None;
        }
        self.body_try = self.tries.count;
        self.request_length.restart();
        Some(match &self.sent_body[..] {
            [one] => one.clone(),
            chunks => chunks.concat().into(),
        })
    }
}
