//! The state a VM's hostcalls work on (the wasmtime `Store` data): which callback is running,
//! which context it acts on, the contexts of the instance, the stream data lent to it for the
//! callback, and the effects the guest asked for.
//!
//! Phase validity is explicit: [`CallbackKind`] and [`Phase`] say which maps and buffers exist
//! right now, instead of nullable fields and flags.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmtime::{Memory, TypedFunc};

use crate::limits::MemoryLimiter;
use crate::plugin::{PluginSpec, VmSpec};
use crate::stream::{Callout, GrpcEvent, HttpCallResponse, LocalResponse, StreamState};

/// Where the stream lent to the VM stands, which decides the maps and buffers it exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Request headers are being processed (also while paused there).
    RequestHeaders,
    /// A request body chunk is being processed.
    RequestBody {
        /// The last chunk.
        end_of_stream: bool,
    },
    /// Request trailers are being processed.
    RequestTrailers,
    /// Response headers are being processed.
    ResponseHeaders,
    /// A response body chunk is being processed.
    ResponseBody {
        /// The last chunk.
        end_of_stream: bool,
    },
    /// Response trailers are being processed.
    ResponseTrailers,
    /// The exchange is complete: everything is readable, nothing writable.
    Log,
}

impl Phase {
    /// The phase as traces name it (`request_headers`, `response_body`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::RequestHeaders => "request_headers",
            Self::RequestBody { .. } => "request_body",
            Self::RequestTrailers => "request_trailers",
            Self::ResponseHeaders => "response_headers",
            Self::ResponseBody { .. } => "response_body",
            Self::ResponseTrailers => "response_trailers",
            Self::Log => "log",
        }
    }
}

/// The guest export the host is currently inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallbackKind {
    /// `_initialize`, `main`, `_start` or the start section: restricted hostcalls only.
    Start,
    /// `proxy_on_context_create` of a root context (plugin configuration readable).
    RootCreate,
    /// `proxy_on_vm_start`.
    VmStart,
    /// `proxy_on_configure`.
    Configure,
    /// A root callback without special buffers (tick, queue ready, root done, delete).
    Root,
    /// `proxy_on_http_call_response`.
    HttpCallResponse,
    /// One of the gRPC callbacks.
    Grpc,
    /// A stream callback (including stream create, log, done, delete).
    Stream,
}

/// The guest's memory and allocator, resolved once per instance.
#[derive(Default)]
pub(crate) struct GuestHandles {
    pub memory: Option<Memory>,
    pub alloc: Option<TypedFunc<i32, i32>>,
}

/// What kind of context an id names.
#[derive(Debug, Clone)]
pub(crate) enum Context {
    Root(Box<RootContext>),
    Stream { root: u32 },
}

/// A root context: one per plugin (filter configuration) in this VM.
#[derive(Debug, Clone)]
pub(crate) struct RootContext {
    pub plugin: Arc<PluginSpec>,
    /// Set by `proxy_set_tick_period_milliseconds`; `None` = no timer.
    pub tick_period: Option<Duration>,
    /// When the next `proxy_on_tick` is due: re-armed from now by every
    /// `proxy_set_tick_period_milliseconds`, and from the end of each tick.
    pub next_tick: Option<Instant>,
    /// `proxy_on_done` returned false: waiting for `proxy_done`.
    pub shutting_down: bool,
    /// What `proxy_get_status` reports.
    pub last_status: (u32, Bytes),
}

/// Per-callback state, reset before every call into the guest. The rare parts (a callout's
/// response, a gRPC event, a local reply) are boxed: a frame is moved in and out of the store
/// around every callback.
#[derive(Debug)]
pub(crate) struct Frame {
    pub kind: CallbackKind,
    /// The target of hostcalls: `context` unless the guest chose another one.
    pub effective: u32,
    /// Inside the guest allocator: only logging and clocks are allowed.
    pub in_allocator: bool,
    /// The callout response being delivered, for `proxy_on_http_call_response`.
    pub http_response: Option<Box<HttpCallResponse>>,
    /// The gRPC event being delivered.
    pub grpc_event: Option<Box<GrpcEvent>>,
    /// Effects on the lent stream.
    pub effects: Effects,
    /// Set by `proxy_done`: the root to delete after this callback.
    pub done_root: Option<u32>,
}

impl Frame {
    /// Makes this frame a fresh one for a callback of `kind` on `context`, in place. The call
    /// before took its effects and cleared what it was lent, so only these fields differ.
    pub(crate) fn reset(&mut self, kind: CallbackKind, context: u32) {
        debug_assert!(self.http_response.is_none() && self.grpc_event.is_none() && self.done_root.is_none());
        debug_assert!(self.effects.local_response.is_none() && !self.effects.close);
        self.kind = kind;
        self.effective = context;
        self.in_allocator = false;
    }

    pub(crate) fn new(kind: CallbackKind, context: u32) -> Self {
        Self {
            kind,
            effective: context,
            in_allocator: false,
            http_response: None,
            grpc_event: None,
            effects: Effects::default(),
            done_root: None,
        }
    }
}

/// What the guest asked the host to do to the lent stream during one callback. Applied after
/// the callback returns (Envoy's "after VM call" actions: never re-entrant).
#[derive(Debug, Default, Clone)]
pub struct Effects {
    /// `proxy_continue_stream(HTTP_REQUEST)`.
    pub continue_request: bool,
    /// `proxy_continue_stream(HTTP_RESPONSE)`.
    pub continue_response: bool,
    /// `proxy_close_stream`.
    pub close: bool,
    /// `proxy_send_local_response`, as the guest gave it (headers not yet finalized).
    pub local_response: Option<Box<LocalResponse>>,
    /// The gRPC status for the local reply, if one was given (0..=16).
    pub local_grpc_status: Option<u32>,
    /// `clear_route_cache` (foreign function, or 0.1.0 hostcall): route the request again.
    pub clear_route_cache: bool,
}

/// State of one VM instance, kept in its wasmtime `Store`.
pub(crate) struct HostState {
    pub guest: GuestHandles,
    pub limiter: MemoryLimiter,
    pub spec: Arc<VmSpec>,
    pub contexts: crate::FastMap<u32, Context>,
    pub next_context_id: u32,
    pub frame: Frame,
    /// The stream lent for the current callback, and the context whose stream it is.
    pub stream: StreamState,
    pub stream_context: Option<u32>,
    pub phase: Phase,
    /// Callout work requested and not yet taken by the host: (originating context, callout).
    pub callouts: Vec<(u32, Callout)>,
    /// Outstanding callouts by token: (root, originating context, is gRPC stream).
    pub tokens: crate::FastMap<u32, OutstandingCall>,
    pub next_token: u32,
    /// Metric handles: id → process-wide metric.
    pub metrics: crate::FastMap<u32, Arc<crate::shared::Metric>>,
    pub next_metric: [u32; 3],
    /// Arguments of the foreign-function callback being delivered.
    pub foreign_args: Bytes,
    /// Where other threads post queue notifications for this instance; its waker also wakes
    /// the VM's loop when a timer changes.
    pub inbox: Arc<crate::shared::Inbox>,
    /// Streams paused in this VM, by context id: their data waits here so any context of the
    /// VM can act on them (`proxy_set_effective_context`, then continue, reply or close).
    pub parked: crate::FastMap<u32, Parked>,
    /// Parked streams a callback continued, replied to or closed: woken after it returns.
    pub to_wake: Vec<u32>,
    /// The last warning or error a root context logged in `proxy_on_vm_start` or
    /// `proxy_on_configure`: why it refused, reported with the refusal.
    pub refusal: Option<String>,
}

/// A paused stream's data, lent to the VM until the stream is woken.
pub(crate) struct Parked {
    pub stream: StreamState,
    pub phase: Phase,
    /// What the VM's contexts asked for the stream while it was parked.
    pub effects: Effects,
    /// Tells the stream's owner to take it back.
    pub waker: Arc<dyn Fn() + Send + Sync>,
}

/// A callout the guest started and has not seen the end of.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutstandingCall {
    pub root: u32,
    pub origin: u32,
    pub kind: CallKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    Http,
    GrpcCall,
    GrpcStream,
}

impl HostState {
    pub(crate) fn new(spec: Arc<VmSpec>) -> Self {
        let limiter = MemoryLimiter::new(spec.config.limits.memory_bytes, spec.stats.clone());
        Self {
            guest: GuestHandles::default(),
            limiter,
            spec,
            contexts: Default::default(),
            next_context_id: 1,
            frame: Frame::new(CallbackKind::Start, 0),
            stream: StreamState::default(),
            stream_context: None,
            phase: Phase::RequestHeaders,
            callouts: Vec::new(),
            tokens: Default::default(),
            next_token: 0,
            metrics: Default::default(),
            next_metric: [0; 3],
            foreign_args: Bytes::new(),
            inbox: Arc::new(crate::shared::Inbox::default()),
            parked: Default::default(),
            to_wake: Vec::new(),
            refusal: None,
        }
    }

    /// The root context id of `context` (itself for a root).
    pub(crate) fn root_of(&self, context: u32) -> Option<u32> {
        match self.contexts.get(&context)? {
            Context::Root(_) => Some(context),
            Context::Stream { root } => Some(*root),
        }
    }

    /// The root context the current hostcall acts for.
    pub(crate) fn effective_root(&self) -> Option<&RootContext> {
        let root = self.root_of(self.frame.effective)?;
        match self.contexts.get(&root)? {
            Context::Root(r) => Some(r),
            Context::Stream { .. } => None,
        }
    }

    pub(crate) fn effective_root_mut(&mut self) -> Option<&mut RootContext> {
        let root = self.root_of(self.frame.effective)?;
        match self.contexts.get_mut(&root)? {
            Context::Root(r) => Some(r),
            Context::Stream { .. } => None,
        }
    }

    /// The stream of the effective context: the one lent for this callback, or a parked one.
    pub(crate) fn effective_stream(&self) -> Option<(&StreamState, Phase)> {
        if self.stream_context == Some(self.frame.effective) {
            return Some((&self.stream, self.phase));
        }
        self.parked.get(&self.frame.effective).map(|p| (&p.stream, p.phase))
    }

    /// Mutable access to the effective context's stream, likewise.
    pub(crate) fn effective_stream_mut(&mut self) -> Option<(&mut StreamState, Phase)> {
        if self.stream_context == Some(self.frame.effective) {
            return Some((&mut self.stream, self.phase));
        }
        self.parked.get_mut(&self.frame.effective).map(|p| (&mut p.stream, p.phase))
    }

    /// What was asked so far for the effective context's stream.
    pub(crate) fn effective_effects(&self) -> &Effects {
        match self.parked.get(&self.frame.effective) {
            Some(p) if self.stream_context != Some(self.frame.effective) => &p.effects,
            _ => &self.frame.effects,
        }
    }

    /// Where a stream-control hostcall records its wish: the lent stream's effects, or a
    /// parked stream's (which is then woken after the callback). `None` without a stream.
    pub(crate) fn stream_effects_mut(&mut self) -> Option<&mut Effects> {
        let ctx = self.frame.effective;
        if self.stream_context == Some(ctx) {
            return Some(&mut self.frame.effects);
        }
        let parked = self.parked.get_mut(&ctx)?;
        if !self.to_wake.contains(&ctx) {
            self.to_wake.push(ctx);
        }
        Some(&mut parked.effects)
    }

    /// True when the effective root's plugin may send callouts to `cluster`.
    pub(crate) fn allows_cluster(&self, cluster: &str) -> bool {
        match self.effective_root().and_then(|r| r.plugin.config.clusters.as_ref()) {
            Some(clusters) => clusters.contains(cluster),
            None => self.spec.runtime.has_cluster(cluster),
        }
    }

    /// A token for a new callout: HTTP calls are multiples of 4, gRPC calls ≡ 1 and gRPC
    /// streams ≡ 2 (mod 4), as in Envoy, and never 0.
    pub(crate) fn new_token(&mut self, kind: CallKind) -> u32 {
        self.next_token = self.next_token.wrapping_add(4);
        if self.next_token == 0 {
            self.next_token = 4;
        }
        self.next_token
            + match kind {
                CallKind::Http => 0,
                CallKind::GrpcCall => 1,
                CallKind::GrpcStream => 2,
            }
    }
}
