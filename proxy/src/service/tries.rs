//! The tries of one request at its upstream (`retry_policy`, `crate::retry`): choosing the
//! endpoint of each try, deciding whether a failed try gets another, and sending the request
//! body of a retry as the filters left it.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use pingora::prelude::*;
use pingora::proxy::Session;

use super::ctx::RequestCtx;
use crate::clusters::Cluster;
use crate::retry::{Decision, TryFailure};
use crate::state::State;

/// Most request body kept for a retry; Pingora keeps as much of the client's body (its retry
/// buffer), and a longer body is not retried.
const REPLAY_LIMIT: usize = 64 * 1024;

/// Before each try: the policy and the budget entry at the first, the back-off wait before a
/// retry.
pub(super) async fn start_try(state: &State, ctx: &mut RequestCtx, cluster: &Arc<Cluster>) {
    let tries = &mut ctx.tries;
    if tries.count == 0 {
        let route_policy = ctx.route.and_then(|r| ctx.generation.routes[r].retry_policy.clone());
        tries.policy = Some(route_policy.unwrap_or_else(|| cluster.retry_policy.clone()));
        tries.active = Some(cluster.budget.enter());
    } else {
        cluster.metrics(&state.metrics).retry();
        if let Some(wait) = tries.policy.as_ref().map(|p| p.backoff(tries.count)) {
            tokio::time::sleep(wait).await;
        }
    }
    tries.count += 1;
}

/// Whether the failed try gets another; counts a retry the budget refused.
pub(super) fn retry(state: &State, session: &Session, ctx: &mut RequestCtx, failure: TryFailure) -> bool {
    let Some(cluster) = ctx.upstream.clone() else { return false };
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
    match ctx.tries.decide(failure, &session.req_header().method, &cluster.budget) {
        Decision::Retry => true,
        Decision::Stop => false,
        Decision::OverBudget => {
            cluster.metrics(&state.metrics).retry_over_budget();
            false
        }
    }
}

/// What an error after the connection was made means for retrying.
pub(super) fn failure_of(e: &Error) -> TryFailure {
    let refused = e
        .cause
        .as_ref()
        .and_then(|c| c.downcast_ref::<h2::Error>())
        .is_some_and(|h2| h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM));
    if refused { TryFailure::RefusedStream } else { TryFailure::Reset }
}

impl RequestCtx {
    /// Whether the request body can be sent again: all of it that left is kept (or there is
    /// no chain, and Pingora's own copy is the body).
    fn replayable(&self, session: &Session) -> bool {
        !session.as_ref().retry_buffer_truncated() && self.sent_body.len() <= REPLAY_LIMIT
    }

    /// Keeps a copy of the body the filters released, for a retry.
    pub(super) fn keep_sent(&mut self, released: &Bytes) {
        if self.sent_body.len() <= REPLAY_LIMIT {
            self.sent_body.extend_from_slice(released);
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
        Some(BytesMut::freeze(self.sent_body.clone()))
    }
}
