//! Drives one request through an ordered list of filters, phase by phase, in Envoy's order:
//! request phases in chain order, response phases in reverse; `on_log` for every filter, then
//! `on_done` and `on_delete` (docs/abi.md#http-stream). The caller lends a [`StreamState`] for each phase
//! and acts on the [`Outcome`]; nothing here does I/O.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use std::time::{Duration, Instant};

use crate::clock::Nanos;

use crate::error::{Failure, FailureKind};
use crate::host::{Effects, Phase};
use crate::plugin::{PluginSpec, VmSpec};
use crate::pool;
use crate::stream::{Callout, CalloutResult, LocalResponse, StreamState};
use crate::types::{Action, FailurePolicy};
use crate::vm::StreamCallback;

/// What the host must do after a phase.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Go on: forward the (possibly changed) headers, or release the body now in the stream.
    Continue,
    /// Body phase: a filter is buffering; release nothing yet and call again with more data.
    Buffer,
    /// A filter stopped the stream. Run these callouts and feed each result back with
    /// [`FilterChain::on_callout_result`]; the chain resumes when the filter continues. An
    /// empty list means the filter waits for something else (or forever).
    Pause {
        /// Callout work started by the paused phase.
        callouts: Vec<Callout>,
    },
    /// Send this response instead of proxying (after Envoy's local-reply rules, and after the
    /// filters' response callbacks ran over it).
    LocalResponse(LocalResponse),
    /// Reset the stream (`proxy_close_stream`, or a failure after the response started).
    Close,
    /// A filter's VM failed and its policy says the request must fail.
    Failed(FilterFailure),
}

/// One filter callback, for metrics and traces.
#[derive(Debug, Clone, Copy)]
pub struct CallTiming {
    /// The phase it ran in.
    pub phase: Phase,
    /// The callback, without `proxy_on_` (`request_headers`, `log`, `done`, `delete`, …).
    pub callback: &'static str,
    started: Nanos,
    /// How long it took (in the VM and the hostcalls it made).
    pub took: Duration,
}

impl CallTiming {
    /// When it began.
    pub fn started(&self) -> Instant {
        self.started.to_instant()
    }
}

/// A callback under way, for its timing.
#[derive(Debug, Clone, Copy)]
struct Started {
    phase: Phase,
    callback: StreamCallback,
    at: Nanos,
}

/// A failure that ends the request under the fail-closed policy.
#[derive(Debug, Clone)]
pub struct FilterFailure {
    /// The filter.
    pub plugin: String,
    /// What went wrong.
    pub failure: Failure,
    /// The VM failed in this request (not before): report it; later refusals are quiet.
    pub fresh: bool,
    /// The reply to send if the response has not started: 503, empty body, details
    /// `wasm_fail_stream` (gRPC: `grpc-status: 14`).
    pub reply: LocalResponse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Runs normally.
    Active,
    /// Its VM failed and the policy is fail-open: the filter is skipped.
    Skipped,
    /// It failed this request: no more callbacks, not even `on_log`.
    Failed,
}

#[derive(Debug)]
struct Slot {
    plugin: Arc<PluginSpec>,
    /// Stream context id and the VM instance it lives in.
    context: Option<(u32, u64)>,
    state: SlotState,
    /// Body data this filter is buffering, per direction.
    request_hold: Option<BytesMut>,
    response_hold: Option<BytesMut>,
    /// Nanoseconds in this filter's callbacks during the request (`None`: none ran).
    busy: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Request,
    Response,
}

/// Where the chain stopped.
#[derive(Debug, Clone, Copy)]
struct Paused {
    phase: Phase,
    /// Position in the phase's order (not the filter index).
    pos: usize,
    /// The headers phase's `end_of_stream`: the filters after the paused one get it when it
    /// resumes, as Envoy's `continueDecoding` passes the stream's end on.
    end_of_stream: bool,
}

/// One request's run through its filters.
#[derive(Debug)]
pub struct FilterChain {
    slots: Vec<Slot>,
    paused: Option<Paused>,
    phase: Phase,
    /// Outstanding callouts: token → filter index.
    tokens: Vec<(u32, usize)>,
    /// Callouts of filters that did not wait for them, with the VM that made them.
    detached: Vec<(Arc<VmSpec>, Callout)>,
    /// Each callback since the last drain, when asked for ([`Self::record_calls`]): (filter
    /// index, timing).
    timings: Vec<(usize, CallTiming)>,
    record_calls: bool,
    /// VM failures since the last drain: (filter index, kind).
    failures: Vec<(usize, FailureKind)>,
    response_started: bool,
    finished: bool,
    clear_route_cache: bool,
    /// The filter that ran last, and the one whose local reply ended the request.
    last: usize,
    replied_by: Option<usize>,
}

/// How a request went for one filter, for access logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOutcome {
    /// Its callbacks ran and let the request through.
    Passed,
    /// It answered the request itself (`proxy_send_local_response`).
    Replied,
    /// Its VM failed and its policy failed the request.
    Failed,
    /// Its VM failed and its policy skipped it (fail-open).
    Skipped,
    /// The request ended before reaching it.
    NotReached,
}

impl FilterOutcome {
    /// A short name: `passed`, `replied`, `failed`, `skipped`, `not_reached`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Replied => "replied",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::NotReached => "not_reached",
        }
    }
}

enum Step {
    Continue,
    Stop,
    // Boxed: a step's result passes through the VM lookup's closure on every callback.
    Reply(Box<LocalResponse>, Option<u32>),
    Close,
    Fail(Box<FilterFailure>),
}

impl FilterChain {
    /// A chain over `plugins`, in request order.
    pub fn new(plugins: impl IntoIterator<Item = Arc<PluginSpec>>) -> Self {
        let slots: Vec<Slot> = plugins
            .into_iter()
            .map(|plugin| Slot {
                plugin,
                context: None,
                state: SlotState::Active,
                request_hold: None,
                response_hold: None,
                busy: None,
            })
            .collect();
        for (i, vm) in slots.iter().map(|s| &s.plugin.vm).enumerate() {
            if first_use(&slots, i) {
                pool::acquire(vm);
            }
        }
        Self {
            slots,
            paused: None,
            phase: Phase::RequestHeaders,
            tokens: Vec::new(),
            detached: Vec::new(),
            timings: Vec::new(),
            record_calls: false,
            failures: Vec::new(),
            response_started: false,
            finished: false,
            clear_route_cache: false,
            last: 0,
            replied_by: None,
        }
    }

    /// Number of filters.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True without filters.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Callouts started by filters that did not pause for them, with the VM that made them;
    /// the host runs them and feeds the results to that VM ([`crate::Vm::on_callout_result`]).
    pub fn take_detached_callouts(&mut self) -> Vec<(Arc<VmSpec>, Callout)> {
        std::mem::take(&mut self.detached)
    }

    /// Keeps the timing of each callback for [`Self::drain_timings`] (a traced request shows
    /// them as spans); without it only each filter's total is kept ([`Self::filter_times`]).
    pub fn record_calls(&mut self) {
        self.record_calls = true;
    }

    /// Each filter that ran, with the time its callbacks took over the request so far: its
    /// place in the chain, its plugin and the time.
    pub fn filter_times(&self, mut f: impl FnMut(usize, &PluginSpec, Duration)) {
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some(busy) = slot.busy {
                f(i, &slot.plugin, Duration::from_nanos(busy));
            }
        }
    }

    /// Hands out each filter callback since the last call, when [`Self::record_calls`] asked
    /// for them: the filter's place in the chain, its plugin, the callback's phase, when it
    /// began and how long it took.
    pub fn drain_timings(&mut self, mut f: impl FnMut(usize, &PluginSpec, &CallTiming)) {
        for (i, t) in self.timings.drain(..) {
            f(i, &self.slots[i].plugin, &t);
        }
    }

    /// Hands out the VM failures this request caused since the last call (refusals by an
    /// instance that had already failed are not failures of their own).
    pub fn drain_failures(&mut self, mut f: impl FnMut(&PluginSpec, FailureKind)) {
        for (i, k) in self.failures.drain(..) {
            f(&self.slots[i].plugin, k);
        }
    }

    /// True once a filter asked to route the request again (`clear_route_cache`).
    pub fn take_clear_route_cache(&mut self) -> bool {
        std::mem::take(&mut self.clear_route_cache)
    }

    /// True while callouts of this request are outstanding.
    pub fn has_outstanding_callouts(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Runs `proxy_on_request_headers` through the chain.
    pub fn on_request_headers(&mut self, s: &mut StreamState, end_of_stream: bool) -> Outcome {
        self.run_headers(s, Phase::RequestHeaders, 0, end_of_stream)
    }

    /// Runs `proxy_on_request_body` for the chunk in `s.request_body`. On `Continue` the bytes
    /// to send upstream are in `s.request_body`; on `Buffer` it is empty.
    pub fn on_request_body(&mut self, s: &mut StreamState, end_of_stream: bool) -> Outcome {
        s.info.request_body_bytes += s.request_body.len() as u64;
        self.run_body(s, Dir::Request, 0, end_of_stream, None)
    }

    /// Runs `proxy_on_request_trailers` over `s.request_trailers`. Body data still buffered
    /// by filters is released into `s.request_body` first.
    pub fn on_request_trailers(&mut self, s: &mut StreamState) -> Outcome {
        self.flush_holds(s, Dir::Request);
        self.run_headers(s, Phase::RequestTrailers, 0, false)
    }

    /// Runs `proxy_on_response_headers` (reverse order) over `s.response_headers`.
    pub fn on_response_headers(&mut self, s: &mut StreamState, end_of_stream: bool) -> Outcome {
        if s.info.response_code.is_none() {
            s.info.response_code = s.response_headers.build().get_str(":status").and_then(|v| v.parse().ok());
        }
        if s.info.response_code_details.is_empty() {
            s.info.response_code_details = "via_upstream".into();
        }
        self.run_headers(s, Phase::ResponseHeaders, 0, end_of_stream)
    }

    /// Runs `proxy_on_response_body` (reverse order) for the chunk in `s.response_body`.
    pub fn on_response_body(&mut self, s: &mut StreamState, end_of_stream: bool) -> Outcome {
        self.response_started = true;
        s.info.response_body_bytes += s.response_body.len() as u64;
        self.run_body(s, Dir::Response, 0, end_of_stream, None)
    }

    /// Runs `proxy_on_response_trailers` (reverse order) over `s.response_trailers`.
    pub fn on_response_trailers(&mut self, s: &mut StreamState) -> Outcome {
        self.response_started = true;
        self.flush_holds(s, Dir::Response);
        self.run_headers(s, Phase::ResponseTrailers, 0, false)
    }

    /// Tells the chain the response headers went to the client: a later local reply or
    /// failure can only reset the stream.
    pub fn mark_response_started(&mut self) {
        self.response_started = true;
    }

    /// The filter at position `pos` of `phase`'s order: request phases and the log run in
    /// chain order, response phases in reverse.
    fn filter_at(&self, phase: Phase, pos: usize) -> usize {
        match phase {
            Phase::RequestHeaders | Phase::RequestBody { .. } | Phase::RequestTrailers | Phase::Log => pos,
            _ => self.slots.len() - 1 - pos,
        }
    }

    fn run_headers(&mut self, s: &mut StreamState, phase: Phase, from: usize, end_of_stream: bool) -> Outcome {
        self.phase = phase;
        self.paused = None;
        let mut callouts = Vec::new();
        for pos in from..self.slots.len() {
            let i = self.filter_at(phase, pos);
            let cb = match phase {
                Phase::RequestHeaders => StreamCallback::RequestHeaders { end_of_stream },
                Phase::RequestTrailers => StreamCallback::RequestTrailers,
                Phase::ResponseHeaders => StreamCallback::ResponseHeaders { end_of_stream },
                _ => StreamCallback::ResponseTrailers,
            };
            // Trailers callbacks only run when there are trailers.
            match self.step(i, s, phase, cb, &mut callouts) {
                Step::Continue => {}
                Step::Stop => {
                    self.paused = Some(Paused { phase, pos, end_of_stream });
                    s.build_views();
                    return Outcome::Pause { callouts: callouts.into_iter().map(|(_, c)| c).collect() };
                }
                other => return self.finish_step(other, s, phase, callouts),
            }
        }
        self.detach(callouts);
        Outcome::Continue
    }

    fn run_body(
        &mut self,
        s: &mut StreamState,
        dir: Dir,
        from: usize,
        eos: bool,
        resumed: Option<BytesMut>,
    ) -> Outcome {
        let phase = match dir {
            Dir::Request => Phase::RequestBody { end_of_stream: eos },
            Dir::Response => Phase::ResponseBody { end_of_stream: eos },
        };
        self.phase = phase;
        self.paused = None;
        let mut data = match resumed {
            Some(d) => d,
            None => std::mem::take(body(s, dir)),
        };
        let mut callouts = Vec::new();
        for pos in from..self.slots.len() {
            let i = self.filter_at(phase, pos);
            if self.slots[i].state != SlotState::Active || self.slots[i].context.is_none() {
                continue;
            }
            if let Some(mut held) = hold(&mut self.slots[i], dir).take() {
                held.extend_from_slice(&data);
                data = held;
            }
            *body(s, dir) = data;
            let size = body(s, dir).len();
            let cb = match dir {
                Dir::Request => StreamCallback::RequestBody { size, end_of_stream: eos },
                Dir::Response => StreamCallback::ResponseBody { size, end_of_stream: eos },
            };
            let step = self.step(i, s, phase, cb, &mut callouts);
            data = std::mem::take(body(s, dir));
            match step {
                Step::Continue => {}
                Step::Stop => {
                    *hold(&mut self.slots[i], dir) = Some(data);
                    self.paused = Some(Paused { phase, pos, end_of_stream: eos });
                    return if eos || !callouts.is_empty() {
                        s.build_views();
                        Outcome::Pause { callouts: callouts.into_iter().map(|(_, c)| c).collect() }
                    } else {
                        Outcome::Buffer
                    };
                }
                other => return self.finish_step(other, s, phase, callouts),
            }
        }
        *body(s, dir) = data;
        self.detach(callouts);
        Outcome::Continue
    }

    /// Releases body data filters were buffering (before trailers).
    fn flush_holds(&mut self, s: &mut StreamState, dir: Dir) {
        let phase = match dir {
            Dir::Request => Phase::RequestHeaders,
            Dir::Response => Phase::ResponseHeaders,
        };
        let mut out = BytesMut::new();
        for pos in 0..self.slots.len() {
            let i = self.filter_at(phase, pos);
            if let Some(h) = hold(&mut self.slots[i], dir).take() {
                out.extend_from_slice(&h);
            }
        }
        out.extend_from_slice(body(s, dir));
        *body(s, dir) = out;
    }

    /// Runs one callback of filter `i`, creating its stream context on first contact and
    /// applying its failure policy.
    fn step(
        &mut self,
        i: usize,
        s: &mut StreamState,
        phase: Phase,
        cb: StreamCallback,
        callouts: &mut Vec<(usize, Callout)>,
    ) -> Step {
        if self.slots[i].state != SlotState::Active {
            return Step::Continue;
        }
        let skip_trailers = match cb {
            StreamCallback::RequestTrailers => s.request_trailers.is_none(),
            StreamCallback::ResponseTrailers => s.response_trailers.is_none(),
            _ => false,
        };
        if skip_trailers {
            return Step::Continue;
        }
        let vm = Arc::clone(&self.slots[i].plugin.vm);
        pool::with_vm(&vm, self.reload_backoff(i), |vm| self.step_in(vm, i, s, phase, cb, callouts))
    }

    /// With a failure policy of reload, the backoff before filter `i`'s failed VM is replaced.
    fn reload_backoff(&self, i: usize) -> Option<std::time::Duration> {
        let config = &self.slots[i].plugin.config;
        (config.failure_policy == FailurePolicy::Reload).then_some(config.reload_backoff)
    }

    /// [`Self::step`] in `vm`, the filter's VM on this thread (or why there is none).
    fn step_in(
        &mut self,
        vm: pool::VmRef<'_>,
        i: usize,
        s: &mut StreamState,
        phase: Phase,
        cb: StreamCallback,
        callouts: &mut Vec<(usize, Callout)>,
    ) -> Step {
        if phase != Phase::Log {
            self.last = i;
        }
        // Early returns, no closure or tuple of results: this runs for every callback.
        let plugin = &self.slots[i].plugin;
        let context = self.slots[i].context;
        let started = Started { phase, callback: cb, at: Nanos::now() };
        let failures_before = plugin.vm.stats().failures.load(std::sync::atomic::Ordering::Relaxed);
        let (vm, instance) = match vm {
            Ok(found) => found,
            Err(failure) => return self.step_failed(i, started, failure, failures_before, s),
        };
        let ctx = match context {
            Some((ctx, inst)) if inst == instance => ctx,
            Some(_) => {
                let gone = "the filter's VM was replaced while the request was in flight";
                let failure = Failure { kind: FailureKind::Other, message: gone.into() };
                return self.step_failed(i, started, failure, failures_before, s);
            }
            None => match open_context(vm, plugin, s, phase) {
                Ok(ctx) => ctx,
                Err(failure) => return self.step_failed(i, started, failure, failures_before, s),
            },
        };
        let outcome = match vm.stream_callback(s, ctx, phase, cb) {
            Ok(outcome) => outcome,
            Err(failure) => return self.step_failed(i, started, failure, failures_before, s),
        };
        let new_callouts = vm.take_callouts_of(ctx);
        self.timed(i, started);
        self.slots[i].context = Some((ctx, instance));
        if !new_callouts.is_empty() {
            self.tokens.extend(new_callouts.iter().filter(|c| starts_call(c)).map(|c| (c.token, i)));
            callouts.extend(new_callouts.into_iter().map(|c| (i, c)));
        }
        self.effects_step(outcome.action, outcome.effects, phase)
    }

    /// Counts the callback of filter `i` that began at `started` (and ends now) in the
    /// filter's time, and keeps its timing when asked to.
    fn timed(&mut self, i: usize, started: Started) {
        let ended = Nanos::now();
        let took = ended.nanos_since(started.at);
        let busy = self.slots[i].busy.get_or_insert(0);
        *busy += took;
        if self.record_calls {
            let Started { phase, callback, at } = started;
            let timing = CallTiming { phase, callback: callback.name(), started: at, took: Duration::from_nanos(took) };
            self.timings.push((i, timing));
        }
    }

    /// Filter `i`'s callback could not run, or trapped: its timing, then its failure policy.
    fn step_failed(
        &mut self,
        i: usize,
        started: Started,
        failure: Failure,
        failures_before: u64,
        s: &mut StreamState,
    ) -> Step {
        self.timed(i, started);
        let fresh =
            self.slots[i].plugin.vm.stats().failures.load(std::sync::atomic::Ordering::Relaxed) > failures_before;
        self.fail(i, failure, fresh, s)
    }

    fn effects_step(&mut self, action: Option<Action>, e: Effects, phase: Phase) -> Step {
        if e.clear_route_cache {
            self.clear_route_cache = true;
        }
        if let Some(reply) = e.local_response {
            return Step::Reply(reply, e.local_grpc_status);
        }
        if e.close {
            return Step::Close;
        }
        let resumed = match phase {
            Phase::RequestHeaders | Phase::RequestBody { .. } | Phase::RequestTrailers => e.continue_request,
            _ => e.continue_response,
        };
        match action {
            Some(Action::Stop) if !resumed => Step::Stop,
            _ => Step::Continue,
        }
    }

    /// Applies filter `i`'s failure policy. `fresh`: the VM failed in this very call (not an
    /// instance that had failed before), so it is counted and reported once.
    fn fail(&mut self, i: usize, failure: Failure, fresh: bool, s: &mut StreamState) -> Step {
        if fresh {
            self.failures.push((i, failure.kind));
        }
        let plugin = self.slots[i].plugin.clone();
        match plugin.config.failure_policy {
            FailurePolicy::FailOpen => {
                self.slots[i].state = SlotState::Skipped;
                Step::Continue
            }
            FailurePolicy::FailClosed | FailurePolicy::Reload => {
                self.slots[i].state = SlotState::Failed;
                let reply = LocalResponse {
                    status: 503,
                    headers: Default::default(),
                    body: Bytes::new(),
                    details: "wasm_fail_stream".into(),
                };
                let (headers, body) = crate::local_reply::finalize(&reply, Some(14), s);
                let reply = reply_from(headers, body, reply.details);
                Step::Fail(Box::new(FilterFailure { plugin: plugin.name().to_owned(), failure, fresh, reply }))
            }
        }
    }

    fn finish_step(
        &mut self,
        step: Step,
        s: &mut StreamState,
        phase: Phase,
        callouts: Vec<(usize, Callout)>,
    ) -> Outcome {
        self.detach(callouts);
        let request_side = matches!(phase, Phase::RequestHeaders | Phase::RequestBody { .. } | Phase::RequestTrailers);
        match step {
            Step::Continue | Step::Stop => Outcome::Continue,
            Step::Close => {
                // Envoy's details for a stream a filter closed.
                s.info.response_code_details = "wasm_close_stream".into();
                Outcome::Close
            }
            Step::Fail(f) if self.response_started => {
                let _ = f;
                Outcome::Close
            }
            Step::Fail(f) => {
                s.info.response_code = Some(f.reply.status);
                s.info.response_code_details = f.reply.details.clone().into();
                Outcome::Failed(*f)
            }
            Step::Reply(_, _) if self.response_started => Outcome::Close,
            Step::Reply(reply, grpc) => {
                self.replied_by = Some(self.last);
                let (headers, body) = crate::local_reply::finalize(&reply, grpc, s);
                s.info.response_code = Some(reply.status);
                s.info.response_code_details =
                    if reply.details.is_empty() { "wasm".into() } else { reply.details.clone().into() };
                let details = reply.details;
                if request_side {
                    Outcome::LocalResponse(self.encode_local_reply(s, headers, body, details))
                } else {
                    Outcome::LocalResponse(reply_from(headers, body, details))
                }
            }
        }
    }

    /// A local reply from a request phase goes through the response callbacks of every filter
    /// that has a context, as Envoy's encoder chain does; further replies or pauses there are
    /// ignored.
    fn encode_local_reply(
        &mut self,
        s: &mut StreamState,
        headers: crate::HeaderMap,
        body: Bytes,
        details: String,
    ) -> LocalResponse {
        self.response_started = true;
        s.response_headers = headers.into();
        s.response_body = BytesMut::from(&body[..]);
        let n = self.slots.len();
        let mut ignored = Vec::new();
        for pos in 0..n {
            let i = self.filter_at(Phase::ResponseHeaders, pos);
            if self.slots[i].context.is_some() {
                let eos = s.response_body.is_empty();
                let _ = self.step(
                    i,
                    s,
                    Phase::ResponseHeaders,
                    StreamCallback::ResponseHeaders { end_of_stream: eos },
                    &mut ignored,
                );
            }
        }
        if !s.response_body.is_empty() {
            for pos in 0..n {
                let i = self.filter_at(Phase::ResponseHeaders, pos);
                if self.slots[i].context.is_some() && self.slots[i].state == SlotState::Active {
                    let size = s.response_body.len();
                    let cb = StreamCallback::ResponseBody { size, end_of_stream: true };
                    let _ = self.step(i, s, Phase::ResponseBody { end_of_stream: true }, cb, &mut ignored);
                }
            }
        }
        self.detach(ignored);
        let body = s.response_body.split().freeze();
        reply_from(s.response_headers.clone(), body, details)
    }

    /// Runs a reply the proxy makes itself (an upstream failure, a timeout, a route's direct
    /// response, a failed filter's 503) through the response callbacks of every filter that
    /// has a context, as Envoy's filter manager sends every local reply through the encoder
    /// filters (`sendLocalReplyViaFilterChain`). A reply a filter made has been through them
    /// already, and once the response phase began (the filters saw the upstream's headers)
    /// Envoy sends its reply directly: both are returned as they are.
    pub fn encode_reply(&mut self, s: &mut StreamState, reply: LocalResponse) -> LocalResponse {
        let response_phase =
            matches!(self.phase, Phase::ResponseHeaders | Phase::ResponseBody { .. } | Phase::ResponseTrailers);
        if self.response_started || response_phase {
            return reply;
        }
        let mut headers = crate::HeaderMap::new();
        headers.add(b":status", Bytes::from(reply.status.to_string()));
        for (k, v) in reply.headers.iter() {
            headers.add(k, Bytes::copy_from_slice(v));
        }
        self.encode_local_reply(s, headers, reply.body, reply.details)
    }

    /// Feeds a callout's result back to the filter that made it. When that filter continues,
    /// the paused phase resumes with the next filter and its outcome is returned.
    pub fn on_callout_result(&mut self, s: &mut StreamState, token: u32, result: CalloutResult) -> Outcome {
        let Some(at) = self.tokens.iter().position(|(t, _)| *t == token) else {
            return self.still();
        };
        let (_, i) = self.tokens[at];
        let ends = match &result {
            CalloutResult::Http(_) => true,
            CalloutResult::Grpc(crate::stream::GrpcEvent::Close { .. }) => true,
            CalloutResult::Grpc(crate::stream::GrpcEvent::Message(_)) => token % 4 == 1,
            CalloutResult::Grpc(_) => false,
        };
        if ends {
            self.tokens.remove(at);
        }
        if self.slots[i].state != SlotState::Active {
            return self.still();
        }
        let plugin = self.slots[i].plugin.clone();
        let phase = self.phase;
        let context = self.slots[i].context;
        let failures_before = plugin.vm.stats().failures.load(std::sync::atomic::Ordering::Relaxed);
        let result = pool::with_vm(&plugin.vm, None, |vm| -> Result<_, Failure> {
            let (vm, instance) = vm?;
            if context.is_some_and(|(_, inst)| inst != instance) {
                return Ok(None);
            }
            let effects = vm.on_callout_result(Some((s, phase)), token, result)?;
            let more = context.map(|(ctx, _)| vm.take_callouts_of(ctx)).unwrap_or_default();
            Ok(Some((effects, more)))
        });
        let (effects, more) = match result {
            Ok(Some(r)) => r,
            Ok(None) => return self.still(),
            Err(failure) => {
                let stats = self.slots[i].plugin.vm.stats();
                let fresh = stats.failures.load(std::sync::atomic::Ordering::Relaxed) > failures_before;
                let step = self.fail(i, failure, fresh, s);
                return match step {
                    Step::Continue => self.resume(s, i),
                    other => self.finish_step(other, s, phase, Vec::new()),
                };
            }
        };
        self.tokens.extend(more.iter().filter(|c| starts_call(c)).map(|c| (c.token, i)));
        let paused_here = self.paused.is_some_and(|p| self.filter_at(p.phase, p.pos) == i);
        match self.effects_step(Some(Action::Stop), effects, phase) {
            Step::Continue if paused_here => {
                self.detach(more.into_iter().map(|c| (i, c)).collect());
                self.resume(s, i)
            }
            Step::Continue | Step::Stop => {
                if self.paused.is_some() {
                    Outcome::Pause { callouts: more }
                } else {
                    self.detach(more.into_iter().map(|c| (i, c)).collect());
                    Outcome::Continue
                }
            }
            other => self.finish_step(other, s, phase, more.into_iter().map(|c| (i, c)).collect()),
        }
    }

    /// The phase the chain is paused in, if it is.
    pub fn paused_phase(&self) -> Option<Phase> {
        self.paused.map(|p| p.phase)
    }

    /// The paused filter's slot, stream context and VM instance.
    fn paused_slot(&self) -> Option<(usize, u32, u64)> {
        let p = self.paused?;
        let i = self.filter_at(p.phase, p.pos);
        let (ctx, instance) = self.slots[i].context?;
        Some((i, ctx, instance))
    }

    /// Lends the paused stream's data to the paused filter's VM, where any of its contexts can
    /// act on it (Envoy's `proxy_set_effective_context` from a tick, a queue notification or
    /// another context's callout answer). `waker` is called when one of them continued,
    /// replied to or closed the stream, or the VM failed: then call [`Self::unpark`]. Returns
    /// false (and keeps `s`) when the chain is not paused.
    pub fn park(&mut self, s: &mut StreamState, waker: Arc<dyn Fn() + Send + Sync>) -> bool {
        let Some((i, ctx, instance)) = self.paused_slot() else { return false };
        let (phase, plugin) = (self.phase, self.slots[i].plugin.clone());
        pool::with_instance(&plugin.vm, instance, |vm| match vm {
            Some(vm) => {
                vm.park(ctx, std::mem::take(s), phase, waker);
                true
            }
            None => false,
        })
    }

    /// Takes a parked stream back into `s` and acts on what was asked for it while it was
    /// parked: the paused phase resumes, or the stream replies, closes or fails, or stays
    /// paused (`Outcome::Pause` with no callouts).
    pub fn unpark(&mut self, s: &mut StreamState) -> Outcome {
        let Some((i, ctx, instance)) = self.paused_slot() else { return self.still() };
        let plugin = self.slots[i].plugin.clone();
        let taken = pool::with_instance(&plugin.vm, instance, |vm| {
            let vm = vm?;
            let (stream, effects) = vm.unpark(ctx)?;
            Some((stream, effects, vm.failure().cloned()))
        });
        let phase = self.phase;
        let (effects, failure) = match taken {
            Some((stream, effects, failure)) => {
                *s = stream;
                (effects, failure)
            }
            None => {
                let gone = "the filter's VM was replaced while the request was paused";
                (Effects::default(), Some(Failure { kind: FailureKind::Other, message: gone.into() }))
            }
        };
        if let Some(failure) = failure {
            // The VM failed in another context's callback, which reported it.
            return match self.fail(i, failure, false, s) {
                Step::Continue => self.resume(s, i),
                other => self.finish_step(other, s, phase, Vec::new()),
            };
        }
        match self.effects_step(Some(Action::Stop), effects, phase) {
            Step::Continue => self.resume(s, i),
            Step::Stop => self.still(),
            other => self.finish_step(other, s, phase, Vec::new()),
        }
    }

    /// Stops tracking callout `token` (its answer goes to the VM directly); returns that VM.
    pub fn forget_callout(&mut self, token: u32) -> Option<Arc<VmSpec>> {
        let at = self.tokens.iter().position(|(t, _)| *t == token)?;
        let (_, i) = self.tokens.remove(at);
        Some(self.slots[i].plugin.vm.clone())
    }

    /// Hands over the outstanding callouts of this request with the VM each belongs to: their
    /// answers go to the VM without the chain (the phase that started them has moved on).
    pub fn take_outstanding(&mut self) -> Vec<(u32, Arc<VmSpec>)> {
        let slots = &self.slots;
        self.tokens.drain(..).map(|(t, i)| (t, slots[i].plugin.vm.clone())).collect()
    }

    fn detach(&mut self, list: Vec<(usize, Callout)>) {
        if list.is_empty() {
            return;
        }
        for (i, c) in list {
            self.detached.push((self.slots[i].plugin.vm.clone(), c));
        }
    }

    fn still(&self) -> Outcome {
        if self.paused.is_some() { Outcome::Pause { callouts: Vec::new() } } else { Outcome::Continue }
    }

    /// Continues the paused phase after filter `i`.
    fn resume(&mut self, s: &mut StreamState, i: usize) -> Outcome {
        let Some(p) = self.paused.take() else {
            return Outcome::Continue;
        };
        let next = p.pos + 1;
        match p.phase {
            Phase::RequestBody { end_of_stream } | Phase::ResponseBody { end_of_stream } => {
                let dir = if matches!(p.phase, Phase::RequestBody { .. }) { Dir::Request } else { Dir::Response };
                let data = hold(&mut self.slots[i], dir).take().unwrap_or_default();
                self.run_body(s, dir, next, end_of_stream, Some(data))
            }
            phase => self.run_headers(s, phase, next, p.end_of_stream),
        }
    }

    /// True when every filter was reached and let the request through (call before
    /// [`Self::finish`]): [`Self::outcomes`] would be all [`FilterOutcome::Passed`].
    pub fn all_passed(&self) -> bool {
        self.replied_by.is_none() && self.slots.iter().all(|s| s.state == SlotState::Active && s.context.is_some())
    }

    /// How the request went for each filter, in chain order (call before [`Self::finish`]).
    pub fn outcomes(&self) -> Vec<(&str, FilterOutcome)> {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let o = match s.state {
                    SlotState::Failed => FilterOutcome::Failed,
                    SlotState::Skipped => FilterOutcome::Skipped,
                    SlotState::Active if self.replied_by == Some(i) => FilterOutcome::Replied,
                    SlotState::Active if s.context.is_some() => FilterOutcome::Passed,
                    SlotState::Active => FilterOutcome::NotReached,
                };
                (s.plugin.name(), o)
            })
            .collect()
    }

    /// Ends the request for every filter: `proxy_on_log` for each, then `proxy_on_done` and
    /// `proxy_on_delete` for each (Envoy runs access logging before destroying filters). A
    /// filter never reached gets its context created here, as Envoy does. Runs once.
    pub fn finish(&mut self, s: &mut StreamState) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        // A request dropped while paused left its data parked in the filter's VM.
        if let Some((i, ctx, instance)) = self.paused_slot() {
            let plugin = self.slots[i].plugin.clone();
            if let Some((stream, _)) = pool::with_instance(&plugin.vm, instance, |vm| vm.and_then(|vm| vm.unpark(ctx)))
            {
                *s = stream;
            }
        }
        // `on_log` for every filter, then `on_done` for each reached, then `on_delete`; a run of
        // these calls into one VM (all of them, for a chain of one filter) looks it up once.
        let n = self.slots.len();
        let call = |k: usize| {
            let cb = [StreamCallback::Log, StreamCallback::Done, StreamCallback::Delete][k / n];
            (k % n, cb)
        };
        let mut ignored = Vec::new();
        let mut k = 0;
        while k < 3 * n {
            let vm = Arc::clone(&self.slots[call(k).0].plugin.vm);
            let end = (k..3 * n).find(|&j| self.slots[call(j).0].plugin.vm.id() != vm.id()).unwrap_or(3 * n);
            pool::with_vm(&vm, self.reload_backoff(call(k).0), |mut vm| {
                for (i, cb) in (k..end).map(call) {
                    let reached = self.slots[i].context.is_some();
                    if self.slots[i].state == SlotState::Active && (reached || matches!(cb, StreamCallback::Log)) {
                        let vm = match &mut vm {
                            Ok((vm, instance)) => Ok((&mut **vm, *instance)),
                            Err(failure) => Err(failure.clone()),
                        };
                        let _ = self.step_in(vm, i, s, Phase::Log, cb, &mut ignored);
                    }
                }
            });
            k = end;
        }
        for slot in &mut self.slots {
            slot.context = None;
        }
        self.detach(ignored);
    }
}

impl Drop for FilterChain {
    fn drop(&mut self) {
        for (i, slot) in self.slots.iter().enumerate() {
            if first_use(&self.slots, i) {
                pool::release(slot.plugin.vm.id());
            }
        }
    }
}

/// True when the filter at `i` is the first of the chain on its VM (a request counts as one
/// use of each VM, however many of its filters share it).
fn first_use(slots: &[Slot], i: usize) -> bool {
    let id = slots[i].plugin.vm.id();
    !slots[..i].iter().any(|s| s.plugin.vm.id() == id)
}

/// Starts `plugin` in `vm` if needed and creates the request's stream context there
/// (`proxy_on_context_create`); returns the context's id.
fn open_context(
    vm: &mut crate::Vm,
    plugin: &Arc<PluginSpec>,
    s: &mut StreamState,
    phase: Phase,
) -> Result<u32, Failure> {
    let root = vm.start_plugin(plugin).map_err(|e| match e {
        crate::StartError::Failed(f) => f,
        other => Failure { kind: FailureKind::Other, message: crate::Chain(&other).to_string() },
    })?;
    let ctx = vm.new_context_id();
    vm.stream_callback(s, ctx, phase, StreamCallback::Create { root })?;
    Ok(ctx)
}

fn starts_call(c: &Callout) -> bool {
    matches!(c.kind, crate::stream::CalloutKind::Http(_) | crate::stream::CalloutKind::Grpc(_))
}

fn body(s: &mut StreamState, dir: Dir) -> &mut BytesMut {
    match dir {
        Dir::Request => &mut s.request_body,
        Dir::Response => &mut s.response_body,
    }
}

fn hold(slot: &mut Slot, dir: Dir) -> &mut Option<BytesMut> {
    match dir {
        Dir::Request => &mut slot.request_hold,
        Dir::Response => &mut slot.response_hold,
    }
}

fn reply_from(mut headers: crate::HeaderMap, body: Bytes, details: String) -> LocalResponse {
    let status = headers.get_str(":status").and_then(|v| v.parse().ok()).unwrap_or(500);
    headers.remove(b":status");
    LocalResponse { status, headers, body, details }
}
