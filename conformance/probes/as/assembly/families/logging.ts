// `logging`: one line at each level, trace (0) to critical (5).

import {
  Context,
  FilterHeadersStatusValues,
  LogLevelValues,
  log,
} from "@solo-io/proxy-runtime";
import { Family, Kind } from "../family";

export class LoggingFamily extends Family {
  constructor() {
    super("logging", Kind.Logging);
  }

  onRequestHeaders(ctx: Context, num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    log(LogLevelValues.trace, "conformance level 0");
    log(LogLevelValues.debug, "conformance level 1");
    log(LogLevelValues.info, "conformance level 2");
    log(LogLevelValues.warn, "conformance level 3");
    log(LogLevelValues.error, "conformance level 4");
    log(LogLevelValues.critical, "conformance level 5");
    this.observe("logged", "6");
    return FilterHeadersStatusValues.Continue;
  }
}
