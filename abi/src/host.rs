//! The state a VM's hostcalls work on (the wasmtime `Store` data): which callback is running,
//! which context it acts on, the contexts of the instance, the stream data lent to it for the
//! callback, and the effects the guest asked for.
//!
//! Phase validity is explicit: [`CallbackKind`] and [`Phase`] say which maps and buffers exist
//! right now, instead of nullable fields and flags.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

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
    /// `proxy_on_done` returned false: waiting for `proxy_done`.
    pub shutting_down: bool,
    /// What `proxy_get_status` reports.
    pub last_status: (u32, Bytes),
}

/// Per-callback state, reset before every call into the guest.
#[derive(Debug)]
pub(crate) struct Frame {
    pub kind: CallbackKind,
    /// The target of hostcalls: `context` unless the guest chose another one.
    pub effective: u32,
    /// Inside the guest allocator: only logging and clocks are allowed.
    pub in_allocator: bool,
    /// The callout response being delivered, for `proxy_on_http_call_response`.
    pub http_response: Option<HttpCallResponse>,
    /// The gRPC event being delivered.
    pub grpc_event: Option<GrpcEvent>,
    /// Effects on the lent stream.
    pub effects: Effects,
    /// Set by `proxy_done`: the root to delete after this callback.
    pub done_root: Option<u32>,
}

impl Frame {
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
    pub local_response: Option<LocalResponse>,
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
    pub contexts: HashMap<u32, Context>,
    pub next_context_id: u32,
    pub frame: Frame,
    /// The stream lent for the current callback, and the context whose stream it is.
    pub stream: StreamState,
    pub stream_context: Option<u32>,
    pub phase: Phase,
    /// Callout work requested and not yet taken by the host: (originating context, callout).
    pub callouts: Vec<(u32, Callout)>,
    /// Outstanding callouts by token: (root, originating context, is gRPC stream).
    pub tokens: HashMap<u32, OutstandingCall>,
    pub next_token: u32,
    /// Metric handles: id → process-wide metric.
    pub metrics: HashMap<u32, Arc<crate::shared::Metric>>,
    pub next_metric: [u32; 3],
    /// Arguments of the foreign-function callback being delivered.
    pub foreign_args: Bytes,
    /// Where other threads post queue notifications for this instance.
    pub inbox: Arc<crate::shared::Inbox>,
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
            contexts: HashMap::new(),
            next_context_id: 1,
            frame: Frame::new(CallbackKind::Start, 0),
            stream: StreamState::default(),
            stream_context: None,
            phase: Phase::RequestHeaders,
            callouts: Vec::new(),
            tokens: HashMap::new(),
            next_token: 0,
            metrics: HashMap::new(),
            next_metric: [0; 3],
            foreign_args: Bytes::new(),
            inbox: Arc::new(crate::shared::Inbox::default()),
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

    /// The lent stream, when the effective context is the stream it belongs to.
    pub(crate) fn effective_stream(&self) -> Option<(&StreamState, Phase)> {
        (self.stream_context == Some(self.frame.effective)).then_some((&self.stream, self.phase))
    }

    /// Mutable access to the lent stream, likewise.
    pub(crate) fn effective_stream_mut(&mut self) -> Option<(&mut StreamState, Phase)> {
        (self.stream_context == Some(self.frame.effective)).then_some((&mut self.stream, self.phase))
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
