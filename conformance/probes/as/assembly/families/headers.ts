// `headers`: reads and edits the request headers, reads and edits the response headers.

import { Context, FilterHeadersStatusValues, stream_context } from "@solo-io/proxy-runtime";
import { HeaderMapTypeValues, add_header_map_value_string } from "@solo-io/proxy-runtime/runtime";
import { Family, Kind } from "../family";
import { statusWord, truth } from "../observe";
import { replaceHeader, removeHeader } from "../host";

export class HeadersFamily extends Family {
  constructor() {
    super("headers", Kind.Headers);
  }

  onRequestHeaders(ctx: Context, num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const request = stream_context.headers.request;
    this.observe("path", request.get(":path"));
    this.observe("method", request.get(":method"));
    this.observe("authority", request.get(":authority"));
    // The SDK's get answers "" for an absent header; that is what is logged.
    this.observe("host", request.get("host"));
    this.observe("mixed_case", request.get("X-Conformance-In"));
    this.observe("dup", request.get("x-dup"));

    const pairs = request.get_headers();
    this.observe("count", pairs.length.toString());
    let pseudoFirst = true;
    let seenRegular = false;
    for (let i = 0; i < pairs.length; i++) {
      const name = String.UTF8.decode(pairs[i].key);
      if (name.startsWith(":")) {
        if (seenRegular) pseudoFirst = false;
      } else {
        seenRegular = true;
      }
    }
    this.observe("pseudo_first", truth(pseudoFirst));

    // The stream_context setters return nothing (and replace/remove abort on non-Ok), so
    // these go through the status-returning calls to log each status.
    const map = HeaderMapTypeValues.RequestHeaders;
    this.observe("add", statusWord(add_header_map_value_string(map, "x-added", "1")));
    this.observe("add", statusWord(add_header_map_value_string(map, "x-dup", "c")));
    this.observe("replace", statusWord(replaceHeader(map, "x-replaced", "new")));
    this.observe("replace", statusWord(replaceHeader(map, "x-created", "yes")));
    this.observe("remove", statusWord(removeHeader(map, "x-remove-me")));
    this.observe("add", statusWord(add_header_map_value_string(map, "X-Upper", "v")));
    this.observe("replace", statusWord(replaceHeader(map, ":path", "/rewritten")));
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(ctx: Context, num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const response = stream_context.headers.response;
    this.observe("status", response.get(":status"));
    response.add("x-response-added", "1");
    response.remove("x-demo-origin");
    return FilterHeadersStatusValues.Continue;
  }
}
