// `body`: buffers both bodies, upper-cases the request body, appends to the response body.

import {
  Context,
  FilterHeadersStatusValues,
  FilterDataStatusValues,
  stream_context,
} from "@solo-io/proxy-runtime";
import { BufferTypeValues, get_buffer_bytes } from "@solo-io/proxy-runtime/runtime";
import { Family, Kind } from "../family";
import { setBufferBytes } from "../host";

export class BodyFamily extends Family {
  constructor() {
    super("body", Kind.Body);
  }

  onRequestBody(ctx: Context, body_size: usize, end_of_stream: bool): FilterDataStatusValues {
    if (!end_of_stream) {
      this.observe("request_chunk", (<u32>body_size).toString());
      return FilterDataStatusValues.StopIterationAndBuffer;
    }
    const body = String.UTF8.decode(get_buffer_bytes(BufferTypeValues.HttpRequestBody, 0, <u32>body_size));
    this.observe("request_body", body);
    // No SDK call for this (see host.ts); its status is not an observation.
    setBufferBytes(BufferTypeValues.HttpRequestBody, 0, <u32>body_size, String.UTF8.encode(body.toUpperCase()));
    return FilterDataStatusValues.Continue;
  }

  onResponseHeaders(ctx: Context, num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    // The body changes size.
    stream_context.headers.response.remove("content-length");
    return FilterHeadersStatusValues.Continue;
  }

  onResponseBody(ctx: Context, body_size: usize, end_of_stream: bool): FilterDataStatusValues {
    if (!end_of_stream) return FilterDataStatusValues.StopIterationAndBuffer;
    this.observe("response_size", (<u32>body_size).toString());
    // Start = size, length 0: append.
    setBufferBytes(BufferTypeValues.HttpResponseBody, <u32>body_size, 0, String.UTF8.encode("|probe"));
    return FilterDataStatusValues.Continue;
  }
}
