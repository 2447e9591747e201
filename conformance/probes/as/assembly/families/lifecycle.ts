// `lifecycle`: every callback logs its arguments. Also what an unknown family runs.

import {
  Context,
  FilterHeadersStatusValues,
  FilterDataStatusValues,
  FilterTrailersStatusValues,
} from "@solo-io/proxy-runtime";
import { Family, Kind } from "../family";
import { flag } from "../observe";

export class LifecycleFamily extends Family {
  // Set for a configuration that names no known family: it logs `unknown_family` first.
  unknown: bool;

  constructor(name: string, unknown: bool) {
    super(name, Kind.Lifecycle);
    this.unknown = unknown;
  }

  onVmStart(vm_configuration_size: usize): void {
    this.observe("vm_start", (<u32>vm_configuration_size).toString());
  }
  onConfigure(configuration_size: u32): void {
    if (this.unknown) this.observe("unknown_family", this.name);
    this.observe("configure", configuration_size.toString());
  }
  onHttpContext(ctx: Context, root_context_id: u32): void {
    this.observe("http_context", ctx.context_id.toString() + "," + root_context_id.toString());
  }
  onRequestHeaders(ctx: Context, num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    this.observe("request_headers", num_headers.toString() + "," + flag(end_of_stream));
    return FilterHeadersStatusValues.Continue;
  }
  onRequestBody(ctx: Context, body_size: usize, end_of_stream: bool): FilterDataStatusValues {
    this.observe("request_body", (<u32>body_size).toString() + "," + flag(end_of_stream));
    return FilterDataStatusValues.Continue;
  }
  onRequestTrailers(ctx: Context, num_trailers: u32): FilterTrailersStatusValues {
    this.observe("request_trailers", num_trailers.toString());
    return FilterTrailersStatusValues.Continue;
  }
  onResponseHeaders(ctx: Context, num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    this.observe("response_headers", num_headers.toString() + "," + flag(end_of_stream));
    return FilterHeadersStatusValues.Continue;
  }
  onResponseBody(ctx: Context, body_size: usize, end_of_stream: bool): FilterDataStatusValues {
    this.observe("response_body", (<u32>body_size).toString() + "," + flag(end_of_stream));
    return FilterDataStatusValues.Continue;
  }
  onResponseTrailers(ctx: Context, num_trailers: u32): FilterTrailersStatusValues {
    this.observe("response_trailers", num_trailers.toString());
    return FilterTrailersStatusValues.Continue;
  }
  onLog(ctx: Context): void {
    this.observe("log", "");
  }
  onDone(ctx: Context): void {
    this.observe("done", "");
  }
}
