// `timers`: a 100 ms tick that stops itself after three ticks; the current time.

import { Context, FilterHeadersStatusValues } from "@solo-io/proxy-runtime";
import { get_current_time_nanoseconds, set_tick_period_milliseconds } from "@solo-io/proxy-runtime/runtime";
import { Family, Kind } from "../family";
import { truth } from "../observe";

export class TimersFamily extends Family {
  ticks: u32 = 0;

  constructor() {
    super("timers", Kind.Timers);
  }

  onConfigure(configuration_size: u32): void {
    set_tick_period_milliseconds(100);
  }

  onTick(): void {
    this.ticks++;
    if (this.ticks > 3) return;
    this.observe("tick", this.ticks.toString());
    if (this.ticks == 3) {
      set_tick_period_milliseconds(0);
      this.observe("stopped", "");
    }
  }

  onRequestHeaders(ctx: Context, num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    this.observe("now_nonzero", truth(get_current_time_nanoseconds() > 0));
    return FilterHeadersStatusValues.Continue;
  }
}
