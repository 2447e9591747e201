// `http_call`: dispatches a callout from on_request_headers and resumes the request when the
// response arrives.

import {
  Context,
  FilterHeadersStatusValues,
  Headers,
  WasmResultValues,
  stream_context,
} from "@solo-io/proxy-runtime";
import { BufferTypeValues, get_buffer_bytes } from "@solo-io/proxy-runtime/runtime";
import { Family, Kind, pair } from "../family";
import { observe, statusWord } from "../observe";

const NAME = "http_call";

export class HttpCallFamily extends Family {
  constructor() {
    super(NAME, Kind.HttpCall);
  }

  onRequestHeaders(ctx: Context, num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    let cluster = stream_context.headers.request.get("x-call-cluster");
    if (cluster == "") cluster = "origin";
    const headers: Headers = [];
    headers.push(pair(":method", "GET"));
    headers.push(pair(":path", "/callout"));
    headers.push(pair(":authority", "callout.test"));
    headers.push(pair("x-from", "probe"));
    const trailers: Headers = [];
    // The SDK keeps the callback with the root context and, on the response, makes this
    // context the effective one before calling it.
    const status = ctx.root_context.httpCall(cluster, headers, new ArrayBuffer(0), trailers, 5000,
      ctx, onCallResponse);
    this.observe("dispatch", statusWord(status));
    return status == WasmResultValues.Ok
      ? FilterHeadersStatusValues.StopIteration
      : FilterHeadersStatusValues.Continue;
  }
}

// A plain function: the SDK's callbacks cannot be closures.
function onCallResponse(origin: Context, num_headers: u32, body_size: usize, num_trailers: u32): void {
  const status = stream_context.headers.http_callback.get(":status");
  const body = get_buffer_bytes(BufferTypeValues.HttpCallResponseBody, 0, <u32>body_size);
  observe(NAME, "call_status", status);
  observe(NAME, "call_body", body.byteLength > 0 ? "nonempty" : "empty");
  stream_context.headers.request.add("x-call-status", status);
  origin.continueRequest();
}
