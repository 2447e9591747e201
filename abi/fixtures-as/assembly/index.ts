// weir's AssemblyScript Proxy-Wasm test filter (@solo-io/proxy-runtime SDK).
//
// Behaviour (what weir's ABI tests check):
//   on_configure        keeps the plugin configuration as a string ("" is fine).
//   request headers     adds `x-as-seen: 1`; when the request has `x-as-deny`, sends a
//                       local 403 with body "denied by as" and header `x-as-reply: yes`,
//                       and stops iteration.
//   response headers    adds `x-as-config: <plugin configuration>`.
//   on_log              logs "as filter done" at info.

// The proxy_on_* exports, malloc/free and the ABI version marker.
export * from "@solo-io/proxy-runtime/proxy";

import {
  RootContext,
  Context,
  registerRootContext,
  FilterHeadersStatusValues,
  GrpcStatusValues,
  HeaderPair,
  Headers,
  LogLevelValues,
  log,
  send_local_response,
  stream_context,
} from "@solo-io/proxy-runtime";
import { BufferTypeValues, get_buffer_bytes } from "@solo-io/proxy-runtime/runtime";

class AsFilterRoot extends RootContext {
  config: string = "";

  constructor(context_id: u32) {
    super(context_id);
  }

  // Not the SDK's RootContext.onConfigure: that one passes configuration_size as the
  // returned-size *pointer* of proxy_get_buffer_bytes (the host would write 4 bytes at
  // that address) and aborts when the host does not answer Ok (e.g. an empty config).
  // get_buffer_bytes passes proper out-pointers and yields an empty buffer on non-Ok.
  onConfigure(configuration_size: u32): bool {
    const bytes = get_buffer_bytes(BufferTypeValues.PluginConfiguration, 0, configuration_size);
    this.config = String.UTF8.decode(bytes);
    return true;
  }

  createContext(context_id: u32): Context {
    return new AsFilter(context_id, this);
  }
}

class AsFilter extends Context {
  root: AsFilterRoot;

  constructor(context_id: u32, root: AsFilterRoot) {
    super(context_id, root);
    this.root = root;
  }

  onRequestHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.request.add("x-as-seen", "1");
    if (hasHeader(stream_context.headers.request.get_headers(), "x-as-deny")) {
      const reply: Headers = [];
      reply.push(new HeaderPair(String.UTF8.encode("x-as-reply"), String.UTF8.encode("yes")));
      send_local_response(403, "as_denied", String.UTF8.encode("denied by as"), reply,
        GrpcStatusValues.InvalidCode);
      return FilterHeadersStatusValues.StopIteration;
    }
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add("x-as-config", this.root.config);
    return FilterHeadersStatusValues.Continue;
  }

  onLog(): void {
    log(LogLevelValues.info, "as filter done");
  }
}

// Presence (not value) of a header, so `x-as-deny:` with an empty value still counts.
function hasHeader(headers: Headers, name: string): bool {
  for (let i = 0; i < headers.length; i++) {
    if (String.UTF8.decode(headers[i].key) == name) return true;
  }
  return false;
}

// The runtime looks the root factory up by the `plugin_root_id` property, which is ""
// when the host is configured with an empty root id.
registerRootContext((context_id: u32): RootContext => {
  return new AsFilterRoot(context_id);
}, "");
