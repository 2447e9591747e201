//! One instance of a [`VmSpec`]: its wasmtime `Store`, the typed handles of the guest's
//! callbacks, and the calls into them in Envoy's order, each under the CPU deadline, with traps
//! classified and the instance marked failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmtime::{Instance, Store, TypedFunc};

use crate::error::{Failure, FailureKind, StartError};
use crate::host::{CallKind, CallbackKind, Context, Effects, Frame, HostState, Phase, RootContext};
use crate::plugin::{PluginSpec, VmSpec};
use crate::runtime::CodeTier;
use crate::shared::Inbox;
use crate::stream::{Callout, CalloutResult, GrpcEvent, HttpCallResponse, StreamState};
use crate::types::Action;

type F1 = TypedFunc<i32, ()>;
type F1R = TypedFunc<i32, i32>;
type F2 = TypedFunc<(i32, i32), ()>;
type F2R = TypedFunc<(i32, i32), i32>;
type F3 = TypedFunc<(i32, i32, i32), ()>;
type F3R = TypedFunc<(i32, i32, i32), i32>;
type F5 = TypedFunc<(i32, i32, i32, i32, i32), ()>;

/// `proxy_on_{request,response}_headers`: two parameters in ABI 0.1.0, three later.
#[derive(Clone)]
enum HeadersFn {
    V1(F2R),
    V2(F3R),
}

/// The guest's callbacks, resolved once per instance. All optional, as in Envoy.
#[derive(Clone, Default)]
struct Callbacks {
    context_create: Option<F2>,
    vm_start: Option<F2R>,
    configure: Option<F2R>,
    tick: Option<F1>,
    queue_ready: Option<F2>,
    request_headers: Option<HeadersFn>,
    request_body: Option<F3R>,
    request_trailers: Option<F2R>,
    response_headers: Option<HeadersFn>,
    response_body: Option<F3R>,
    response_trailers: Option<F2R>,
    http_call_response: Option<F5>,
    grpc_initial_metadata: Option<F3>,
    grpc_receive: Option<F3>,
    grpc_trailing_metadata: Option<F3>,
    grpc_close: Option<F3>,
    done: Option<F1R>,
    log: Option<F1>,
    delete: Option<F1>,
}

impl Callbacks {
    /// The module's callbacks, leaving out those its capability allow-list does not name
    /// (Envoy never calls those).
    fn resolve(instance: &Instance, store: &mut Store<HostState>) -> Self {
        let spec = store.data().spec.clone();
        macro_rules! get {
            ($name:literal) => {
                if spec.config.allows($name) { instance.get_typed_func(&mut *store, $name).ok() } else { None }
            };
        }
        let headers = |store: &mut Store<HostState>, name: &str| {
            if !spec.config.allows(name) {
                return None;
            }
            instance
                .get_typed_func::<(i32, i32, i32), i32>(&mut *store, name)
                .map(HeadersFn::V2)
                .or_else(|_| instance.get_typed_func::<(i32, i32), i32>(&mut *store, name).map(HeadersFn::V1))
                .ok()
        };
        Self {
            context_create: get!("proxy_on_context_create"),
            vm_start: get!("proxy_on_vm_start"),
            configure: get!("proxy_on_configure"),
            tick: get!("proxy_on_tick"),
            queue_ready: get!("proxy_on_queue_ready"),
            request_headers: headers(store, "proxy_on_request_headers"),
            request_body: get!("proxy_on_request_body"),
            request_trailers: get!("proxy_on_request_trailers"),
            response_headers: headers(store, "proxy_on_response_headers"),
            response_body: get!("proxy_on_response_body"),
            response_trailers: get!("proxy_on_response_trailers"),
            http_call_response: get!("proxy_on_http_call_response"),
            grpc_initial_metadata: get!("proxy_on_grpc_receive_initial_metadata"),
            grpc_receive: get!("proxy_on_grpc_receive"),
            grpc_trailing_metadata: get!("proxy_on_grpc_receive_trailing_metadata"),
            grpc_close: get!("proxy_on_grpc_close"),
            done: get!("proxy_on_done"),
            log: get!("proxy_on_log"),
            delete: get!("proxy_on_delete"),
        }
    }
}

/// A stream callback the chain asks a VM to run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StreamCallback {
    Create { root: u32 },
    RequestHeaders { end_of_stream: bool },
    RequestBody { size: usize, end_of_stream: bool },
    RequestTrailers,
    ResponseHeaders { end_of_stream: bool },
    ResponseBody { size: usize, end_of_stream: bool },
    ResponseTrailers,
    Log,
    Done,
    Delete,
}

impl StreamCallback {
    /// The callback's name without `proxy_on_` (`request_headers`, `log`, `done`, …).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Create { .. } => "context_create",
            Self::RequestHeaders { .. } => "request_headers",
            Self::RequestBody { .. } => "request_body",
            Self::RequestTrailers => "request_trailers",
            Self::ResponseHeaders { .. } => "response_headers",
            Self::ResponseBody { .. } => "response_body",
            Self::ResponseTrailers => "response_trailers",
            Self::Log => "log",
            Self::Done => "done",
            Self::Delete => "delete",
        }
    }
}

/// Root-context work a [`Vm::poll`] leaves to the host.
#[derive(Debug, Default)]
pub struct RootWork {
    /// Callouts root contexts started: `(originating context, callout)`.
    pub callouts: Vec<(u32, Callout)>,
    /// When the next timer is due; `None`: no timer runs.
    pub next_wake: Option<Instant>,
    /// The VM failed in a root callback.
    pub failure: Option<Failure>,
}

/// What a stream callback returned and asked for.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallOutcome {
    pub action: Option<Action>,
    pub effects: Effects,
}

static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Instances alive in the process (all threads).
pub fn live_instances() -> usize {
    LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

/// One live instance of a module. Owned by one thread; never shared.
pub struct Vm {
    store: Store<HostState>,
    cb: Arc<Callbacks>,
    spec: Arc<VmSpec>,
    failed: Option<Failure>,
    roots: Vec<(u64, u32)>,
    /// The callback and start-up deadlines in epoch ticks, computed once (each is a 128-bit
    /// division).
    callback_ticks: u64,
    startup_ticks: u64,
    /// Which compiler made the code it runs (fixed for its life: Wasmtime cannot move an
    /// instance to other code).
    tier: CodeTier,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm").field("vm_id", &self.spec.config.vm_id).field("failed", &self.failed).finish()
    }
}

impl Vm {
    /// Instantiates the module and runs its start functions (`_initialize` then `main` or
    /// `__main_void`, or `_start`), with only the restricted hostcalls allowed.
    ///
    /// # Errors
    ///
    /// [`StartError::Instantiate`] when no instance can be made, [`StartError::StartFunction`]
    /// when a start function traps.
    pub fn new(spec: &Arc<VmSpec>) -> Result<Self, StartError> {
        let module = &spec.module;
        let code = module.code();
        let mut store = Store::new(code.pre.module().engine(), HostState::new(spec.clone()));
        store.limiter(|s| &mut s.limiter);
        let startup_ticks = epoch_ticks(spec, spec.config.limits.startup_deadline);
        store.set_epoch_deadline(startup_ticks);
        let instance = code.pre.instantiate(&mut store).map_err(|e| {
            if e.downcast_ref::<wasmtime::Trap>().is_some() || e.downcast_ref::<crate::error::HostTrap>().is_some() {
                StartError::StartFunction(Failure::classify(&e, store.data().limiter.hit))
            } else {
                StartError::Instantiate(crate::error::Cause::new(e))
            }
        })?;
        let memory = instance.get_memory(&mut store, "memory");
        if let Some(m) = memory {
            let base = m.data_ptr(&store) as usize;
            store.data_mut().limiter.set_base(base);
        }
        let alloc = instance.get_typed_func::<i32, i32>(&mut store, module.allocator).ok();
        store.data_mut().guest = crate::host::GuestHandles { memory, alloc };
        let cb = Arc::new(Callbacks::resolve(&instance, &mut store));
        LIVE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        spec.stats.instances.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if code.tier == CodeTier::Baseline {
            spec.stats.baseline_instances.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let callback_ticks = epoch_ticks(spec, spec.config.limits.callback_deadline);
        let mut vm = Self {
            store,
            cb,
            spec: spec.clone(),
            failed: None,
            roots: Vec::new(),
            callback_ticks,
            startup_ticks,
            tier: code.tier,
        };
        vm.run_start_functions(&instance)?;
        Ok(vm)
    }

    fn run_start_functions(&mut self, instance: &Instance) -> Result<(), StartError> {
        let start = self.spec.module.start;
        let deadline = self.startup_ticks;
        let run = |vm: &mut Self, name: &str, args: bool| -> Result<(), StartError> {
            let frame = Frame::new(CallbackKind::Start, 0);
            let result = vm.call(frame, deadline, |store| {
                if args {
                    let f = instance.get_typed_func::<(i32, i32), i32>(&mut *store, name)?;
                    f.call(&mut *store, (0, 0)).map(drop)
                } else if name == "__main_void" {
                    let f = instance.get_typed_func::<(), i32>(&mut *store, name)?;
                    f.call(&mut *store, ()).map(drop)
                } else {
                    let f = instance.get_typed_func::<(), ()>(&mut *store, name)?;
                    f.call(&mut *store, ())
                }
            });
            result.map(drop).map_err(StartError::StartFunction)
        };
        if start.initialize {
            run(self, "_initialize", false)?;
            if start.main {
                run(self, "main", true)?;
            } else if start.main_void {
                run(self, "__main_void", false)?;
            }
        } else if start.start {
            run(self, "_start", false)?;
        }
        Ok(())
    }

    /// The spec this VM is an instance of.
    pub fn spec(&self) -> &Arc<VmSpec> {
        &self.spec
    }

    /// Why the VM failed, once it has.
    pub fn failure(&self) -> Option<&Failure> {
        self.failed.as_ref()
    }

    /// Which compiler made the code this instance runs.
    pub fn tier(&self) -> CodeTier {
        self.tier
    }

    /// Bytes of linear memory the instance has.
    pub fn memory_bytes(&self) -> usize {
        self.store.data().guest.memory.map(|m| m.data_size(&self.store)).unwrap_or(0)
    }

    /// Number of live contexts (roots and streams).
    pub fn context_count(&self) -> usize {
        self.store.data().contexts.len()
    }

    /// The inbox other threads post this VM's queue notifications to.
    pub fn inbox(&self) -> &Arc<Inbox> {
        &self.store.data().inbox
    }

    /// The root context of `plugin`, if it was started in this VM.
    pub fn root_of(&self, plugin: &PluginSpec) -> Option<u32> {
        self.roots.iter().find(|(id, _)| *id == plugin.id).map(|(_, r)| *r)
    }

    /// Root context ids, with their plugins.
    pub fn roots(&self) -> Vec<(Arc<PluginSpec>, u32)> {
        let data = self.store.data();
        self.roots
            .iter()
            .filter_map(|(_, r)| match data.contexts.get(r) {
                Some(Context::Root(root)) => Some((root.plugin.clone(), *r)),
                _ => None,
            })
            .collect()
    }

    /// Creates the plugin's root context: `proxy_on_context_create(R, 0)`, `proxy_on_vm_start`,
    /// `proxy_on_configure` (docs/abi.md#root-start), as Envoy's `ContextBase::onStart` does for every
    /// root context (`proxy_on_vm_start` included). Returns the root id.
    ///
    /// # Errors
    ///
    /// [`StartError`] when a callback traps or refuses (returns false).
    pub fn start_plugin(&mut self, plugin: &Arc<PluginSpec>) -> Result<u32, StartError> {
        if let Some(root) = self.root_of(plugin) {
            return Ok(root);
        }
        if let Some(f) = &self.failed {
            return Err(StartError::Failed(f.clone()));
        }
        let root = self.new_context_id();
        let ctx = RootContext {
            plugin: plugin.clone(),
            tick_period: None,
            next_tick: None,
            shutting_down: false,
            last_status: (0, Bytes::new()),
        };
        self.store.data_mut().contexts.insert(root, Context::Root(Box::new(ctx)));
        self.store.data_mut().refusal = None;
        let deadline = self.startup_ticks;
        let name = plugin.name().to_owned();
        let trap = |callback: &'static str| {
            let name = name.clone();
            move |failure| StartError::Trap { plugin: name, callback, failure }
        };
        let cb = self.cb.clone();
        if let Some(f) = cb.context_create.clone() {
            self.call(Frame::new(CallbackKind::RootCreate, root), deadline, |s| f.call(s, (root as i32, 0)))
                .map_err(trap("proxy_on_context_create"))?;
        }
        if let Some(f) = cb.vm_start.clone() {
            let size = self.spec.config.configuration.len() as i32;
            let ok = self
                .call(Frame::new(CallbackKind::VmStart, root), deadline, |s| f.call(s, (root as i32, size)))
                .map_err(trap("proxy_on_vm_start"))?
                .0;
            if ok == 0 {
                self.store.data_mut().contexts.remove(&root);
                let reason = self.store.data_mut().refusal.take();
                return Err(StartError::VmStartRefused { plugin: plugin.name().into(), reason });
            }
        }
        if let Some(f) = cb.configure.clone() {
            let size = plugin.config.configuration.len() as i32;
            let ok = self
                .call(Frame::new(CallbackKind::Configure, root), deadline, |s| f.call(s, (root as i32, size)))
                .map_err(trap("proxy_on_configure"))?
                .0;
            if ok == 0 {
                self.store.data_mut().contexts.remove(&root);
                let reason = self.store.data_mut().refusal.take();
                return Err(StartError::ConfigureRefused { plugin: plugin.name().into(), reason });
            }
        }
        self.roots.push((plugin.id, root));
        Ok(root)
    }

    /// Root contexts whose plugin nothing else holds any more (its configuration was removed
    /// and no request uses it): the host stops them.
    pub fn orphaned_plugins(&self) -> Vec<Arc<PluginSpec>> {
        self.roots().into_iter().filter(|(p, _)| Arc::strong_count(p) == 2).map(|(p, _)| p).collect()
    }

    /// Parks a paused stream's data in the VM, so any of its contexts can act on it until
    /// [`Vm::unpark`]; `waker` is called once a callback continued, replied to or closed it.
    pub(crate) fn park(&mut self, ctx: u32, stream: StreamState, phase: Phase, waker: Arc<dyn Fn() + Send + Sync>) {
        let parked = crate::host::Parked { stream, phase, effects: Effects::default(), waker };
        self.store.data_mut().parked.insert(ctx, parked);
    }

    /// Takes a parked stream back, with what was asked for it meanwhile.
    pub(crate) fn unpark(&mut self, ctx: u32) -> Option<(StreamState, Effects)> {
        let data = self.store.data_mut();
        data.to_wake.retain(|c| *c != ctx);
        data.parked.remove(&ctx).map(|p| (p.stream, p.effects))
    }

    /// Runs the root contexts' due work at `now`: queue notifications, then every timer that
    /// is due (each re-armed from the end of its tick, so ticks never pile up). Returns the
    /// callouts root contexts started and when the VM next needs a call.
    pub fn poll(&mut self, now: Instant) -> RootWork {
        let mut work = RootWork::default();
        if self.failed.is_some() {
            return work;
        }
        if let Err(f) = self.deliver_queue_ready() {
            work.failure = Some(f);
            return work;
        }
        for (_, root) in self.roots() {
            let Some((period, due)) = self.timer(root) else { continue };
            if due <= now {
                if let Err(f) = self.on_tick(root) {
                    work.failure = Some(f);
                    break;
                }
                // A period set inside the tick already re-armed the timer.
                if let Some(Context::Root(r)) = self.store.data_mut().contexts.get_mut(&root)
                    && r.next_tick == Some(due)
                    && r.tick_period == Some(period)
                {
                    r.next_tick = Some(Instant::now() + period);
                }
            }
        }
        work.callouts = self.take_callouts();
        work.next_wake = self.roots().into_iter().filter_map(|(_, r)| self.timer(r).map(|(_, at)| at)).min();
        work
    }

    fn timer(&self, root: u32) -> Option<(Duration, Instant)> {
        match self.store.data().contexts.get(&root)? {
            Context::Root(r) => r.tick_period.zip(r.next_tick),
            Context::Stream { .. } => None,
        }
    }

    /// Ends a plugin's root context: `proxy_on_done(R)`, then `proxy_on_delete(R)` unless the
    /// filter asked to finish later with `proxy_done`. Returns true when the root is gone.
    pub fn stop_plugin(&mut self, plugin: &PluginSpec) -> bool {
        let Some(root) = self.root_of(plugin) else {
            return true;
        };
        self.roots.retain(|(id, _)| *id != plugin.id);
        let deadline = self.callback_ticks;
        let done = match self.cb.done.clone() {
            Some(f) => {
                self.call(Frame::new(CallbackKind::Root, root), deadline, |s| f.call(s, root as i32)).map(|r| r.0)
            }
            None => Ok(1),
        };
        match done {
            Ok(0) => {
                if let Some(Context::Root(r)) = self.store.data_mut().contexts.get_mut(&root) {
                    r.shutting_down = true;
                }
                false
            }
            _ => {
                self.delete_context(root);
                true
            }
        }
    }

    /// The tick period `plugin`'s root asked for, if any.
    pub fn tick_period(&self, root: u32) -> Option<Duration> {
        match self.store.data().contexts.get(&root)? {
            Context::Root(r) => r.tick_period,
            Context::Stream { .. } => None,
        }
    }

    /// Delivers `proxy_on_tick(R)`.
    ///
    /// # Errors
    ///
    /// The [`Failure`] when the callback trapped (the VM is then failed).
    pub fn on_tick(&mut self, root: u32) -> Result<(), Failure> {
        let Some(f) = self.cb.tick.clone() else {
            return Ok(());
        };
        let deadline = self.callback_ticks;
        self.call(Frame::new(CallbackKind::Root, root), deadline, |s| f.call(s, root as i32)).map(drop)
    }

    /// Delivers pending `proxy_on_queue_ready` notifications from the inbox.
    ///
    /// # Errors
    ///
    /// The [`Failure`] when a callback trapped.
    pub fn deliver_queue_ready(&mut self) -> Result<usize, Failure> {
        let events = self.store.data().inbox.take();
        let Some(f) = self.cb.queue_ready.clone() else {
            return Ok(0);
        };
        let deadline = self.callback_ticks;
        let mut n = 0;
        for (root, token) in events {
            if !matches!(self.store.data().contexts.get(&root), Some(Context::Root(_))) {
                continue;
            }
            self.call(Frame::new(CallbackKind::Root, root), deadline, |s| f.call(s, (root as i32, token as i32)))?;
            n += 1;
        }
        Ok(n)
    }

    /// Takes the callout work the guest requested: `(originating context, callout)`.
    pub fn take_callouts(&mut self) -> Vec<(u32, Callout)> {
        std::mem::take(&mut self.store.data_mut().callouts)
    }

    /// Takes the callouts requested by `context` only.
    #[inline]
    pub(crate) fn take_callouts_of(&mut self, context: u32) -> Vec<Callout> {
        if self.store.data().callouts.is_empty() {
            return Vec::new();
        }
        self.take_callouts_of_now(context)
    }

    fn take_callouts_of_now(&mut self, context: u32) -> Vec<Callout> {
        let all = &mut self.store.data_mut().callouts;
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(all).into_iter().partition(|(c, _)| *c == context);
        *all = rest;
        mine.into_iter().map(|(_, c)| c).collect()
    }

    /// The context that started the outstanding callout `token`.
    pub fn callout_origin(&self, token: u32) -> Option<u32> {
        self.store.data().tokens.get(&token).map(|c| c.origin)
    }

    /// Feeds a callout's result back to the root that made it (`proxy_on_http_call_response`
    /// or a gRPC callback). With `stream`, the originating stream's data is lent so the filter
    /// can act on it after `proxy_set_effective_context`. Results for unknown tokens are
    /// dropped, never passed to the guest. Returns what the callback did to the stream.
    ///
    /// # Errors
    ///
    /// The [`Failure`] when the callback trapped.
    pub fn on_callout_result(
        &mut self,
        stream: Option<(&mut StreamState, Phase)>,
        token: u32,
        result: CalloutResult,
    ) -> Result<Effects, Failure> {
        let Some(call) = self.store.data().tokens.get(&token).copied() else {
            return Ok(Effects::default());
        };
        let root = call.root;
        if !matches!(self.store.data().contexts.get(&root), Some(Context::Root(_))) {
            self.store.data_mut().tokens.remove(&token);
            return Ok(Effects::default());
        }
        let deadline = self.callback_ticks;
        let cb = self.cb.clone();
        let (t, r) = (token as i32, root as i32);
        let run = |vm: &mut Self, frame: Frame| -> Result<Effects, Failure> {
            let effects = match &result {
                CalloutResult::Http(resp) => {
                    vm.store.data_mut().tokens.remove(&token);
                    let (nh, nb, nt) = match resp {
                        HttpCallResponse::Response { headers, body, trailers } => {
                            (headers.len() as i32, body.len() as i32, trailers.len() as i32)
                        }
                        HttpCallResponse::Reset => {
                            vm.set_last_status(root, 11, Bytes::from_static(b"reset"));
                            (0, 0, 0)
                        }
                    };
                    let mut frame = frame;
                    frame.http_response = Some(Box::new(resp.clone()));
                    match cb.http_call_response.clone() {
                        Some(f) => vm.call(frame, deadline, |s| f.call(s, (r, t, nh, nb, nt)))?.1,
                        None => Effects::default(),
                    }
                }
                CalloutResult::Grpc(event) => {
                    let (f, n) = match event {
                        GrpcEvent::InitialMetadata(m) => (cb.grpc_initial_metadata.clone(), m.len()),
                        GrpcEvent::Message(b) => {
                            if call.kind == CallKind::GrpcCall {
                                vm.store.data_mut().tokens.remove(&token);
                            }
                            (cb.grpc_receive.clone(), b.len())
                        }
                        GrpcEvent::TrailingMetadata(m) => (cb.grpc_trailing_metadata.clone(), m.len()),
                        GrpcEvent::Close { status, message } => {
                            vm.store.data_mut().tokens.remove(&token);
                            vm.set_last_status(root, *status, Bytes::copy_from_slice(message.as_bytes()));
                            (cb.grpc_close.clone(), *status as usize)
                        }
                    };
                    let mut frame = frame;
                    frame.kind = CallbackKind::Grpc;
                    frame.grpc_event = Some(Box::new(event.clone()));
                    match f {
                        Some(f) => vm.call(frame, deadline, |s| f.call(s, (r, t, n as i32)))?.1,
                        None => Effects::default(),
                    }
                }
            };
            Ok(effects)
        };
        let frame = Frame::new(CallbackKind::HttpCallResponse, root);
        match stream {
            Some((stream, phase)) => self.lend(stream, call.origin, phase, |vm| run(vm, frame)),
            None => run(self, frame),
        }
    }

    fn set_last_status(&mut self, root: u32, code: u32, message: Bytes) {
        if let Some(Context::Root(r)) = self.store.data_mut().contexts.get_mut(&root) {
            r.last_status = (code, message);
        }
    }

    /// True when the guest has a callout outstanding with this token.
    pub fn has_outstanding(&self, token: u32) -> bool {
        self.store.data().tokens.contains_key(&token)
    }

    /// Runs one stream callback for context `ctx`, with `stream` lent to the VM. Written out
    /// flat (not through [`Self::call`]): it runs eight times a request for every filter.
    pub(crate) fn stream_callback(
        &mut self,
        stream: &mut StreamState,
        ctx: u32,
        phase: Phase,
        callback: StreamCallback,
    ) -> Result<CallOutcome, Failure> {
        if let Some(f) = &self.failed {
            return Err(f.clone());
        }
        // The callbacks and the store are borrowed apart (no reference count taken per call).
        let cb = &*self.cb;
        let data = self.store.data_mut();
        if let StreamCallback::Create { root } = callback {
            data.contexts.insert(ctx, Context::Stream { root });
        }
        std::mem::swap(&mut data.stream, stream);
        data.stream_context = Some(ctx);
        data.phase = phase;
        data.frame.reset(CallbackKind::Stream, ctx);
        self.store.set_epoch_deadline(self.callback_ticks);
        let (s, c) = (&mut self.store, ctx as i32);
        // Entry counts are read only for the callback that is told one.
        let raw: wasmtime::Result<Option<i32>> = match callback {
            StreamCallback::Create { root } => match &cb.context_create {
                Some(f) => f.call(s, (c, root as i32)).map(|()| None),
                None => Ok(None),
            },
            StreamCallback::RequestHeaders { end_of_stream } => {
                let n = s.data().stream.request_headers.len() as i32;
                call_headers(s, cb.request_headers.as_ref(), c, n, end_of_stream)
            }
            StreamCallback::ResponseHeaders { end_of_stream } => {
                let n = s.data().stream.response_headers.len() as i32;
                call_headers(s, cb.response_headers.as_ref(), c, n, end_of_stream)
            }
            StreamCallback::RequestBody { size, end_of_stream } => {
                cb.request_body.as_ref().map(|f| f.call(s, (c, size as i32, end_of_stream as i32))).transpose()
            }
            StreamCallback::ResponseBody { size, end_of_stream } => {
                cb.response_body.as_ref().map(|f| f.call(s, (c, size as i32, end_of_stream as i32))).transpose()
            }
            StreamCallback::RequestTrailers => {
                let n = s.data().stream.request_trailers.as_ref().map_or(0, crate::HeaderMap::len) as i32;
                cb.request_trailers.as_ref().map(|f| f.call(s, (c, n))).transpose()
            }
            StreamCallback::ResponseTrailers => {
                let n = s.data().stream.response_trailers.as_ref().map_or(0, crate::HeaderMap::len) as i32;
                cb.response_trailers.as_ref().map(|f| f.call(s, (c, n))).transpose()
            }
            StreamCallback::Log => cb.log.as_ref().map(|f| f.call(s, c)).transpose().map(|_| None),
            StreamCallback::Done => cb.done.as_ref().map(|f| f.call(s, c)).transpose().map(|_| None),
            StreamCallback::Delete => cb.delete.as_ref().map(|f| f.call(s, c)).transpose().map(|_| None),
        };
        let data = self.store.data_mut();
        std::mem::swap(&mut data.stream, stream);
        data.stream_context = None;
        let effects = std::mem::take(&mut data.frame.effects);
        let done_root = data.frame.done_root.take();
        if matches!(callback, StreamCallback::Delete) {
            data.contexts.remove(&ctx);
        }
        match raw {
            Ok(raw) => {
                if let Some(root) = done_root {
                    self.delete_context(root);
                }
                self.wake_parked(false);
                let action = raw.map(|v| match callback {
                    StreamCallback::RequestHeaders { .. } | StreamCallback::ResponseHeaders { .. } => {
                        Action::from_headers_status(v)
                    }
                    _ => Action::from_data_status(v),
                });
                Ok(CallOutcome { action, effects })
            }
            Err(e) => Err(self.trapped(&e)),
        }
    }

    /// Lends `stream` to the VM as the data of context `ctx` while `f` runs.
    fn lend<R>(&mut self, stream: &mut StreamState, ctx: u32, phase: Phase, f: impl FnOnce(&mut Self) -> R) -> R {
        let data = self.store.data_mut();
        std::mem::swap(&mut data.stream, stream);
        data.stream_context = Some(ctx);
        data.phase = phase;
        let r = f(self);
        let data = self.store.data_mut();
        std::mem::swap(&mut data.stream, stream);
        data.stream_context = None;
        r
    }

    /// A fresh context id (never reused while the instance lives).
    pub(crate) fn new_context_id(&mut self) -> u32 {
        let data = self.store.data_mut();
        let id = data.next_context_id;
        data.next_context_id += 1;
        id
    }

    fn delete_context(&mut self, ctx: u32) {
        // The callbacks are shared: borrowing one (not cloning its typed function, which
        // clones its registered type) keeps a callback's dispatch cheap.
        let cb = Arc::clone(&self.cb);
        if let Some(f) = &cb.delete {
            let deadline = self.callback_ticks;
            let _ = self.call(Frame::new(CallbackKind::Root, ctx), deadline, |s| f.call(s, ctx as i32));
        }
        let data = self.store.data_mut();
        data.contexts.remove(&ctx);
        data.tokens.retain(|_, c| c.root != ctx);
    }

    /// Calls into the guest under the deadline (`ticks` of the epoch), with `frame` as the
    /// per-callback state. Returns the guest's result and the effects it asked for; a trap
    /// fails the VM.
    fn call<R>(
        &mut self,
        frame: Frame,
        ticks: u64,
        f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<(R, Effects), Failure> {
        if let Some(failure) = &self.failed {
            return Err(failure.clone());
        }
        self.store.data_mut().frame = frame;
        self.store.set_epoch_deadline(ticks);
        let result = f(&mut self.store);
        let data = self.store.data_mut();
        let effects = std::mem::take(&mut data.frame.effects);
        let done_root = data.frame.done_root.take();
        // What a callout's answer lent the callback goes now, not at the next call.
        data.frame.http_response = None;
        data.frame.grpc_event = None;
        match result {
            Ok(r) => {
                if let Some(root) = done_root {
                    self.delete_context(root);
                }
                self.wake_parked(false);
                Ok((r, effects))
            }
            Err(e) => Err(self.trapped(&e)),
        }
    }

    /// Marks the VM failed by the trap (or deadline, or memory limit) `e`; returns why.
    fn trapped(&mut self, e: &wasmtime::Error) -> Failure {
        let failure = Failure::classify(e, self.store.data().limiter.hit);
        self.spec.stats.failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.failed = Some(failure.clone());
        // A failed VM resumes nobody: its parked streams must hear of it now.
        self.wake_parked(true);
        failure
    }

    /// Calls the wakers of the parked streams a callback acted on (or of all, when `all`).
    #[inline]
    fn wake_parked(&mut self, all: bool) {
        let data = self.store.data();
        if !data.to_wake.is_empty() || all && !data.parked.is_empty() {
            self.wake_parked_now(all);
        }
    }

    fn wake_parked_now(&mut self, all: bool) {
        let data = self.store.data_mut();
        let woken: Vec<u32> =
            if all { data.parked.keys().copied().collect() } else { std::mem::take(&mut data.to_wake) };
        for ctx in woken {
            if let Some(p) = data.parked.get(&ctx) {
                (p.waker)();
            }
        }
    }

    /// Marks the VM failed on purpose (tests, and the host when it gives up on an instance).
    pub fn fail(&mut self, kind: FailureKind, message: impl Into<String>) {
        self.failed.get_or_insert(Failure { kind, message: message.into() });
        self.wake_parked(true);
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // Streams parked here lose their data with the VM: wake them to find out.
        self.wake_parked(true);
        LIVE.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.spec.stats.instances.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if self.tier == CodeTier::Baseline {
            self.spec.stats.baseline_instances.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Calls a headers callback in its ABI's shape (0.1.0 has no `end_of_stream`).
fn call_headers(
    s: &mut Store<HostState>,
    f: Option<&HeadersFn>,
    c: i32,
    n: i32,
    end_of_stream: bool,
) -> wasmtime::Result<Option<i32>> {
    match f {
        Some(HeadersFn::V2(f)) => f.call(s, (c, n, end_of_stream as i32)).map(Some),
        Some(HeadersFn::V1(f)) => f.call(s, (c, n)).map(Some),
        None => Ok(None),
    }
}

/// `deadline` in ticks of the runtime's epoch (at least one).
fn epoch_ticks(spec: &VmSpec, deadline: Duration) -> u64 {
    let tick = spec.runtime.config().epoch_tick.as_nanos().max(1);
    deadline.as_nanos().div_ceil(tick).max(1) as u64
}
