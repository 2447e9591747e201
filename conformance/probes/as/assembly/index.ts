// weir's AssemblyScript family probe (@solo-io/proxy-runtime SDK). The contract is
// ../../SPEC.md: the plugin configuration names one family; the root context picks that
// family and every callback is handed to it here; observe.ts writes the observation lines.

// The proxy_on_* exports, malloc/free and the ABI version marker.
export * from "@solo-io/proxy-runtime/proxy";

import {
  RootContext,
  Context,
  registerRootContext,
  FilterHeadersStatusValues,
  FilterDataStatusValues,
  FilterTrailersStatusValues,
} from "@solo-io/proxy-runtime";
import { BufferTypeValues, get_buffer_bytes } from "@solo-io/proxy-runtime/runtime";
import { Family, Kind } from "./family";
import { LifecycleFamily } from "./families/lifecycle";
import { HeadersFamily } from "./families/headers";
import { BodyFamily } from "./families/body";
import { LocalReplyFamily } from "./families/local_reply";
import { HttpCallFamily } from "./families/http_call";
import { SharedDataFamily } from "./families/shared_data";
import { QueueFamily } from "./families/queue";
import { MetricsFamily } from "./families/metrics";
import { PropertiesFamily } from "./families/properties";
import { TimersFamily } from "./families/timers";
import { ResumeFamily } from "./families/resume";
import { LoggingFamily } from "./families/logging";
import { FailureFamily } from "./families/failure";

/** The family a plugin configuration names (surrounding whitespace ignored); any other
 *  name runs `lifecycle` and reports `unknown_family`. */
function familyFor(configuration: string): Family {
  const name = configuration.trim();
  if (name == "lifecycle") return new LifecycleFamily(name, false);
  if (name == "headers") return new HeadersFamily();
  if (name == "body") return new BodyFamily();
  if (name == "local_reply") return new LocalReplyFamily();
  if (name == "http_call") return new HttpCallFamily();
  if (name == "shared_data") return new SharedDataFamily();
  if (name == "queue") return new QueueFamily();
  if (name == "metrics") return new MetricsFamily();
  if (name == "properties") return new PropertiesFamily();
  if (name == "timers") return new TimersFamily();
  if (name == "resume") return new ResumeFamily();
  if (name == "logging") return new LoggingFamily();
  if (name == "failure") return new FailureFamily();
  return new LifecycleFamily(name, true);
}

/** get_buffer_bytes answers an empty buffer on a non-Ok status (never aborts). */
function pluginConfiguration(size: u32): string {
  return String.UTF8.decode(get_buffer_bytes(BufferTypeValues.PluginConfiguration, 0, size));
}

// The dispatch below switches on Family.kind and calls the concrete class through
// changetype (no run-time check, no virtual call): see family.ts for why.

class ProbeRoot extends RootContext {
  family: Family;

  constructor(context_id: u32) {
    super(context_id);
    // on_vm_start comes before on_configure, so `lifecycle` could not log vm_start if the
    // family were only read there; the plugin configuration is readable while the root
    // context is created (the SDK creates it in proxy_on_context_create).
    this.family = familyFor(pluginConfiguration(u32.MAX_VALUE));
  }

  onStart(vm_configuration_size: usize): bool {
    const f = this.family;
    if (f.kind == Kind.Lifecycle) changetype<LifecycleFamily>(f).onVmStart(vm_configuration_size);
    return true;
  }

  // Not the SDK's RootContext.onConfigure: that one passes configuration_size as the
  // returned-size *pointer* of proxy_get_buffer_bytes and aborts on a non-Ok answer.
  onConfigure(configuration_size: u32): bool {
    const family = familyFor(pluginConfiguration(configuration_size));
    // Keep the instance (and its state) when the family has not changed.
    if (family.name != this.family.name) this.family = family;
    const f = this.family;
    switch (f.kind) {
      case Kind.Lifecycle: changetype<LifecycleFamily>(f).onConfigure(configuration_size); break;
      case Kind.Queue: changetype<QueueFamily>(f).onConfigure(configuration_size); break;
      case Kind.Metrics: changetype<MetricsFamily>(f).onConfigure(configuration_size); break;
      case Kind.Timers: changetype<TimersFamily>(f).onConfigure(configuration_size); break;
      case Kind.Resume: changetype<ResumeFamily>(f).onConfigure(configuration_size); break;
    }
    return true;
  }

  onTick(): void {
    const f = this.family;
    if (f.kind == Kind.Timers) changetype<TimersFamily>(f).onTick();
    if (f.kind == Kind.Resume) changetype<ResumeFamily>(f).onTick();
  }

  onQueueReady(token: u32): void {
    const f = this.family;
    if (f.kind == Kind.Queue) changetype<QueueFamily>(f).onQueueReady(token);
  }

  createContext(context_id: u32): Context {
    const ctx = new ProbeContext(context_id, this, this.family);
    const f = this.family;
    if (f.kind == Kind.Lifecycle) changetype<LifecycleFamily>(f).onHttpContext(ctx, this.context_id);
    return ctx;
  }
}

/** The SDK's per-request context; every callback goes to the root's family. */
class ProbeContext extends Context {
  family: Family;

  constructor(context_id: u32, root: RootContext, family: Family) {
    super(context_id, root);
    this.family = family;
  }

  onRequestHeaders(num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const f = this.family;
    switch (f.kind) {
      case Kind.Lifecycle: return changetype<LifecycleFamily>(f).onRequestHeaders(this, num_headers, end_of_stream);
      case Kind.Headers: return changetype<HeadersFamily>(f).onRequestHeaders(this, num_headers, end_of_stream);
      case Kind.LocalReply: return changetype<LocalReplyFamily>(f).onRequestHeaders(this, num_headers, end_of_stream);
      case Kind.HttpCall: return changetype<HttpCallFamily>(f).onRequestHeaders(this, num_headers, end_of_stream);
      case Kind.SharedData: return changetype<SharedDataFamily>(f).onRequestHeaders(this, num_headers, end_of_stream);
      case Kind.Queue: return changetype<QueueFamily>(f).onRequestHeaders(this, num_headers, end_of_stream);
      case Kind.Metrics: return changetype<MetricsFamily>(f).onRequestHeaders(this, num_headers, end_of_stream);
      case Kind.Properties: return changetype<PropertiesFamily>(f).onRequestHeaders(this, num_headers, end_of_stream);
      case Kind.Timers: return changetype<TimersFamily>(f).onRequestHeaders(this, num_headers, end_of_stream);
      case Kind.Resume: return changetype<ResumeFamily>(f).onRequestHeaders(this, num_headers, end_of_stream);
      case Kind.Logging: return changetype<LoggingFamily>(f).onRequestHeaders(this, num_headers, end_of_stream);
      case Kind.Failure: return changetype<FailureFamily>(f).onRequestHeaders(this, num_headers, end_of_stream);
    }
    return FilterHeadersStatusValues.Continue;
  }

  onRequestBody(body_size: usize, end_of_stream: bool): FilterDataStatusValues {
    const f = this.family;
    switch (f.kind) {
      case Kind.Lifecycle: return changetype<LifecycleFamily>(f).onRequestBody(this, body_size, end_of_stream);
      case Kind.Body: return changetype<BodyFamily>(f).onRequestBody(this, body_size, end_of_stream);
    }
    return FilterDataStatusValues.Continue;
  }

  onRequestTrailers(num_trailers: u32): FilterTrailersStatusValues {
    const f = this.family;
    if (f.kind == Kind.Lifecycle) return changetype<LifecycleFamily>(f).onRequestTrailers(this, num_trailers);
    return FilterTrailersStatusValues.Continue;
  }

  onResponseHeaders(num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const f = this.family;
    switch (f.kind) {
      case Kind.Lifecycle: return changetype<LifecycleFamily>(f).onResponseHeaders(this, num_headers, end_of_stream);
      case Kind.Headers: return changetype<HeadersFamily>(f).onResponseHeaders(this, num_headers, end_of_stream);
      case Kind.Body: return changetype<BodyFamily>(f).onResponseHeaders(this, num_headers, end_of_stream);
      case Kind.LocalReply: return changetype<LocalReplyFamily>(f).onResponseHeaders(this, num_headers, end_of_stream);
      case Kind.Properties: return changetype<PropertiesFamily>(f).onResponseHeaders(this, num_headers, end_of_stream);
    }
    return FilterHeadersStatusValues.Continue;
  }

  onResponseBody(body_size: usize, end_of_stream: bool): FilterDataStatusValues {
    const f = this.family;
    switch (f.kind) {
      case Kind.Lifecycle: return changetype<LifecycleFamily>(f).onResponseBody(this, body_size, end_of_stream);
      case Kind.Body: return changetype<BodyFamily>(f).onResponseBody(this, body_size, end_of_stream);
      case Kind.LocalReply: return changetype<LocalReplyFamily>(f).onResponseBody(this, body_size, end_of_stream);
    }
    return FilterDataStatusValues.Continue;
  }

  onResponseTrailers(num_trailers: u32): FilterTrailersStatusValues {
    const f = this.family;
    if (f.kind == Kind.Lifecycle) return changetype<LifecycleFamily>(f).onResponseTrailers(this, num_trailers);
    return FilterTrailersStatusValues.Continue;
  }

  onLog(): void {
    const f = this.family;
    switch (f.kind) {
      case Kind.Lifecycle: changetype<LifecycleFamily>(f).onLog(this); break;
      case Kind.LocalReply: changetype<LocalReplyFamily>(f).onLog(this); break;
      case Kind.Properties: changetype<PropertiesFamily>(f).onLog(this); break;
    }
  }

  // BaseContext.onDone: the SDK sends proxy_on_done of HTTP contexts here too.
  onDone(): bool {
    const f = this.family;
    if (f.kind == Kind.Lifecycle) changetype<LifecycleFamily>(f).onDone(this);
    return true;
  }
}

// The runtime looks the root factory up by the `plugin_root_id` property: "" for an empty
// root id.
registerRootContext((context_id: u32): RootContext => {
  return new ProbeRoot(context_id);
}, "");
