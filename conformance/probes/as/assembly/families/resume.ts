// `resume`: requests pause at their headers; the root's next tick resumes each from outside
// its context (proxy_set_effective_context), as a filter that waits for something its root
// fetches does.

import { Context, FilterHeadersStatusValues } from "@solo-io/proxy-runtime";
import {
  HeaderMapTypeValues,
  WasmResultValues,
  add_header_map_value_string,
  continue_request,
  proxy_set_effective_context,
  set_tick_period_milliseconds,
} from "@solo-io/proxy-runtime/runtime";
import { Family, Kind } from "../family";

export class ResumeFamily extends Family {
  /** Streams waiting for the root, by context id. */
  paused: Array<u32> = new Array<u32>();

  constructor() {
    super("resume", Kind.Resume);
  }

  onConfigure(configuration_size: u32): void {
    set_tick_period_milliseconds(50);
  }

  onTick(): void {
    const waiting = this.paused;
    this.paused = new Array<u32>();
    for (let i = 0; i < waiting.length; i++) {
      const resumed =
        proxy_set_effective_context(waiting[i]) == WasmResultValues.Ok &&
        add_header_map_value_string(HeaderMapTypeValues.RequestHeaders, "x-resumed-by", "tick") == WasmResultValues.Ok &&
        continue_request() == WasmResultValues.Ok;
      this.observe("resumed", resumed ? "ok" : "failed");
    }
  }

  onRequestHeaders(ctx: Context, num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    this.paused.push(ctx.context_id);
    this.observe("paused", "true");
    return FilterHeadersStatusValues.StopIteration;
  }
}
