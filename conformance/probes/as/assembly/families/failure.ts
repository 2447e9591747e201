// `failure`: fails the AssemblyScript way on request (a throw, i.e. abort: with
// `--use abort=abort_proc_exit` that logs at critical and calls proc_exit(255)).

import { Context, FilterHeadersStatusValues, stream_context } from "@solo-io/proxy-runtime";
import { Family, Kind, hasHeader } from "../family";

export class FailureFamily extends Family {
  constructor() {
    super("failure", Kind.Failure);
  }

  onRequestHeaders(ctx: Context, num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const request = stream_context.headers.request;
    if (hasHeader(request.get_headers(), "x-fail")) {
      throw new Error("conformance trap");
    }
    request.add("x-failure-probe", "passed");
    return FilterHeadersStatusValues.Continue;
  }
}
