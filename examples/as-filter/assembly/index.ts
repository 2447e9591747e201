// as_example: an example Proxy-Wasm HTTP filter in AssemblyScript (@solo-io/proxy-runtime SDK).
//
// What it does, for every request through a route that lists it:
//   - adds the response header `x-hello-as: <plugin configuration>` (the configuration is a
//     plain string; when it is empty, "hello from as");
//   - answers `/example/as-ping` itself with 200 and the body "pong from as\n": the request
//     never reaches the origin.
//
// As in every Proxy-Wasm SDK, a root context per plugin holds the configuration and creates
// one context per request.

// The module's exports (proxy_on_*, malloc, the ABI version marker) come from the runtime.
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

const DEFAULT_GREETING = "hello from as";

class HelloRoot extends RootContext {
  greeting: string = DEFAULT_GREETING;

  constructor(context_id: u32) {
    super(context_id);
  }

  // Called at start and on every reload with the filter's `config:`. Returning false refuses
  // the configuration; weir then keeps serving the previous one.
  //
  // (This reads the configuration with get_buffer_bytes instead of calling the SDK's own
  // RootContext.onConfigure, which passes the size where the host expects a pointer and aborts
  // on an empty configuration.)
  onConfigure(configuration_size: u32): bool {
    const bytes = get_buffer_bytes(BufferTypeValues.PluginConfiguration, 0, configuration_size);
    const config = String.UTF8.decode(bytes);
    if (hasControlCharacter(config)) {
      log(LogLevelValues.error, "as_example: the configuration may not contain control characters");
      return false;
    }
    // An if/else, not `cond ? config : DEFAULT_GREETING`: AssemblyScript 0.14's reference
    // counting does not retain the result of such a conditional assigned to a field, so the
    // string would be freed at the end of this function (and the next request would trap).
    if (config.length > 0) {
      this.greeting = config;
    } else {
      this.greeting = DEFAULT_GREETING;
    }
    return true;
  }

  // One context per request.
  createContext(context_id: u32): Context {
    return new HelloRequest(context_id, this);
  }
}

class HelloRequest extends Context {
  root: HelloRoot;

  constructor(context_id: u32, root: HelloRoot) {
    super(context_id, root);
    this.root = root;
  }

  onRequestHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    // `:path` includes the query string; compare the path alone.
    let path = stream_context.headers.request.get(":path");
    const query = path.indexOf("?");
    if (query >= 0) path = path.substring(0, query);

    if (path == "/example/as-ping") {
      // A local response: the host sends it instead of asking the origin.
      const reply: Headers = [];
      reply.push(new HeaderPair(String.UTF8.encode("content-type"), String.UTF8.encode("text/plain")));
      send_local_response(200, "as_ping", String.UTF8.encode("pong from as\n"), reply,
        GrpcStatusValues.InvalidCode);
      return FilterHeadersStatusValues.StopIteration;
    }
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add("x-hello-as", this.root.greeting);
    return FilterHeadersStatusValues.Continue;
  }
}

// A header value may not contain control characters (a newline in particular).
function hasControlCharacter(s: string): bool {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// The runtime finds the root context by the plugin's root id; weir's default `root_id` is "".
registerRootContext((context_id: u32): RootContext => {
  return new HelloRoot(context_id);
}, "");
