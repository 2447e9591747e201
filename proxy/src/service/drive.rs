//! Turns a chain [`Outcome`] into what the hook does, waiting while a filter keeps the request
//! paused: runs the callouts it started, lends the paused stream to the filter's VM so any of
//! its contexts can continue, reply to or close it (a tick, a queue notification, another
//! context's callout answer), and feeds each event back until the chain continues, replies,
//! resets or fails. A pause with nothing to wake it ends after the route's `idle_timeout`,
//! as Envoy's stream idle timeout does.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio::sync::Notify;
use weir_abi::{CalloutResult, LocalResponse, Outcome};

use super::RequestCtx;
use super::reply;
use crate::state::State;

/// What the hook must do.
pub enum Flow {
    Continue,
    Buffer,
    Reply(LocalResponse),
    Reset,
}

type Pending = FuturesUnordered<BoxFuture<'static, (u32, CalloutResult)>>;

/// What ended a wait.
enum Woke {
    Answer(u32, CalloutResult),
    Stream,
    Timeout,
}

/// Resolves a phase that simply continued (most do), without [`drive`]'s future: the hooks
/// that run on every request on a route with filters (request and response headers) check
/// for `Continue` first. Building the future for every phase cost a request about 250
/// instructions, returning an `Either` of it about 800 (copies; `bench/instructions.py`).
pub fn continued(state: &Arc<State>, ctx: &mut RequestCtx) -> Flow {
    spawn_detached(state, ctx);
    Flow::Continue
}

/// Resolves `out`, waiting while the chain is paused.
pub async fn drive(state: &Arc<State>, ctx: &mut RequestCtx, mut out: Outcome) -> Flow {
    // Created on the first pause only: most phases never wait.
    let mut pending: Option<Pending> = None;
    let mut wake: Option<Arc<Notify>> = None;
    let mut deadline: Option<Instant> = None;
    let flow = loop {
        match out {
            Outcome::Continue => break Flow::Continue,
            Outcome::Buffer => break Flow::Buffer,
            Outcome::LocalResponse(r) => break Flow::Reply(r),
            Outcome::Close => break Flow::Reset,
            Outcome::Failed(f) => {
                // Reported once, when the VM fails; the requests its policy refuses later are
                // counted in the access log, not as warnings.
                if f.fresh {
                    tracing::warn!(target: "weir::proxy", plugin = %f.plugin, failure = %f.failure, "filter failed; failing the request");
                } else {
                    tracing::debug!(target: "weir::proxy", plugin = %f.plugin, "filter's VM had failed; failing the request");
                }
                break Flow::Reply(f.reply);
            }
            Outcome::Pause { callouts } => {
                let calls = pending.get_or_insert_with(FuturesUnordered::new);
                for c in callouts {
                    if let Some(fut) =
                        crate::callout::start(state, &ctx.generation, c, ctx.trace.as_ref().map(|t| t.context()))
                    {
                        calls.push(fut);
                    }
                }
                let Some(chain) = ctx.chain.as_mut() else { break Flow::Continue };
                let notify = wake.get_or_insert_with(|| Arc::new(Notify::new())).clone();
                let waker = notify.clone();
                let parked = chain.park(&mut ctx.stream, Arc::new(move || waker.notify_one()));
                if !parked && calls.is_empty() {
                    // Nothing can wake it (its VM is gone): the chain fails it by its policy.
                    out = chain.unpark(&mut ctx.stream);
                    continue;
                }
                let until = *deadline.get_or_insert_with(|| Instant::now() + ctx.idle_timeout());
                let woke = tokio::select! {
                    Some((token, result)) = calls.next(), if !calls.is_empty() => Woke::Answer(token, result),
                    _ = notify.notified() => Woke::Stream,
                    _ = tokio::time::sleep_until(until.into()) => Woke::Timeout,
                };
                let Some(chain) = ctx.chain.as_mut() else { break Flow::Continue };
                let now = if parked { chain.unpark(&mut ctx.stream) } else { Outcome::Pause { callouts: Vec::new() } };
                out = match (woke, now) {
                    (Woke::Answer(token, result), Outcome::Pause { .. }) => {
                        chain.on_callout_result(&mut ctx.stream, token, result)
                    }
                    // The stream moved on meanwhile: the answer still goes to the filter's VM.
                    (Woke::Answer(token, result), moved_on) => {
                        if let Some(vm) = chain.forget_callout(token) {
                            crate::callout::deliver_result(&vm, token, result);
                        }
                        moved_on
                    }
                    (Woke::Timeout, Outcome::Pause { .. }) => break Flow::Reply(timeout_reply(ctx)),
                    (_, now) => now,
                };
            }
        }
    };
    if let Some(calls) = pending.filter(|c| !c.is_empty()) {
        hand_over(ctx, calls);
    }
    spawn_detached(state, ctx);
    flow
}

/// Envoy's answer when a stream stays idle too long: 408 while the request is still arriving,
/// 504 once it was received whole (`Utility::maybeRequestTimeoutCode`).
fn timeout_reply(ctx: &mut RequestCtx) -> LocalResponse {
    let status = if ctx.request_received() { 504 } else { 408 };
    tracing::debug!(target: "weir::proxy", status, "a filter kept the request paused past idle_timeout");
    let reply = reply::plain(status, "stream timeout", "stream_idle_timeout");
    ctx.stream.info.response_code = Some(status);
    ctx.stream.info.response_code_details = reply.details.clone().into();
    reply
}

/// Callouts still running when their phase moved on are answered to their VM when they end,
/// as Envoy delivers them for as long as the context that made them lives.
fn hand_over(ctx: &mut RequestCtx, mut calls: Pending) {
    let Some(chain) = ctx.chain.as_mut() else { return };
    let owners = chain.take_outstanding();
    tokio::spawn(async move {
        while let Some((token, result)) = calls.next().await {
            if let Some((_, vm)) = owners.iter().find(|(t, _)| *t == token) {
                crate::callout::deliver_result(vm, token, result);
            }
        }
    });
}

/// Runs callouts filters started without waiting for them; results go back to the VM that
/// made them, on this thread.
pub fn spawn_detached(state: &Arc<State>, ctx: &mut RequestCtx) {
    let Some(chain) = ctx.chain.as_mut() else { return };
    let detached = chain.take_detached_callouts();
    if detached.is_empty() {
        return;
    }
    for (vm, c) in detached {
        let Some(work) = crate::callout::start(state, &ctx.generation, c, ctx.trace.as_ref().map(|t| t.context()))
        else {
            continue;
        };
        tokio::spawn(crate::callout::deliver(vm, work));
    }
}
