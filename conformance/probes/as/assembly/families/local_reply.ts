// `local_reply`: answers every request itself (403 with headers and body, or an empty 204).

import {
  Context,
  FilterHeadersStatusValues,
  FilterDataStatusValues,
  GrpcStatusValues,
  Headers,
  send_local_response,
  stream_context,
} from "@solo-io/proxy-runtime";
import { Family, Kind, hasHeader, pair } from "../family";
import { flag, statusWord } from "../observe";

export class LocalReplyFamily extends Family {
  constructor() {
    super("local_reply", Kind.LocalReply);
  }

  onRequestHeaders(ctx: Context, num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    let status: u32;
    // Empty details and gRPC status -1 (none), as an SDK without those parameters sends.
    if (hasHeader(stream_context.headers.request.get_headers(), "x-reply-empty")) {
      const none: Headers = [];
      status = send_local_response(204, "", new ArrayBuffer(0), none, GrpcStatusValues.InvalidCode);
    } else {
      const headers: Headers = [];
      headers.push(pair("x-conformance", "denied"));
      headers.push(pair("x-dup", "1"));
      headers.push(pair("x-dup", "2"));
      status = send_local_response(403, "", String.UTF8.encode("denied by probe"), headers,
        GrpcStatusValues.InvalidCode);
    }
    this.observe("sent", statusWord(status));
    return FilterHeadersStatusValues.StopIteration;
  }

  onResponseHeaders(ctx: Context, num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    this.observe("status", stream_context.headers.response.get(":status"));
    return FilterHeadersStatusValues.Continue;
  }

  onResponseBody(ctx: Context, body_size: usize, end_of_stream: bool): FilterDataStatusValues {
    this.observe("response_body", (<u32>body_size).toString() + "," + flag(end_of_stream));
    return FilterDataStatusValues.Continue;
  }

  onLog(ctx: Context): void {
    this.observe("log", "");
  }
}
