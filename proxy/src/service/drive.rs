//! Turns a chain [`Outcome`] into what the hook does, awaiting callouts while a filter is
//! paused: runs them concurrently against their clusters, feeds each result back, and
//! repeats until the chain continues, replies, resets or fails.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use weir_abi::{LocalResponse, Outcome};

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

/// Resolves `out`, running callouts while the chain is paused.
pub async fn drive(state: &Arc<State>, ctx: &mut RequestCtx, mut out: Outcome) -> Flow {
    // Created on the first pause only: most phases never wait.
    let mut inflight = None;
    let flow = loop {
        match out {
            Outcome::Continue => break Flow::Continue,
            Outcome::Buffer => break Flow::Buffer,
            Outcome::LocalResponse(r) => break Flow::Reply(r),
            Outcome::Close => break Flow::Reset,
            Outcome::Failed(f) => {
                tracing::warn!(target: "weir::proxy", plugin = %f.plugin, failure = %f.failure, "filter failed; failing the request");
                break Flow::Reply(f.reply);
            }
            Outcome::Pause { callouts } => {
                let pending = inflight.get_or_insert_with(FuturesUnordered::new);
                for c in callouts {
                    if let Some(fut) = crate::callout::start(state, &ctx.generation, c) {
                        pending.push(fut);
                    }
                }
                let Some((token, result)) = pending.next().await else {
                    tracing::warn!(target: "weir::proxy", "a filter paused with nothing to wait for; failing the request");
                    break Flow::Reply(reply::plain(
                        500,
                        "filter paused the request without a way to resume\n",
                        "wasm_paused",
                    ));
                };
                let Some(chain) = ctx.chain.as_mut() else { break Flow::Continue };
                out = chain.on_callout_result(&mut ctx.stream, token, result);
            }
        }
    };
    spawn_detached(state, ctx);
    flow
}

/// Runs callouts filters started without waiting for them; results go back to the VM that
/// made them, on this thread.
pub fn spawn_detached(state: &Arc<State>, ctx: &mut RequestCtx) {
    let Some(chain) = ctx.chain.as_mut() else { return };
    for (vm, c) in chain.take_detached_callouts() {
        let Some(work) = crate::callout::start(state, &ctx.generation, c) else { continue };
        tokio::spawn(crate::callout::deliver(vm, work));
    }
}
