// `shared_data`: get/set with and without a CAS.

import { Context, FilterHeadersStatusValues, stream_context } from "@solo-io/proxy-runtime";
import { Family, Kind } from "../family";
import { NONE, statusWord, truth } from "../observe";
import { SharedDataResult, getSharedData, setSharedData } from "../host";

export class SharedDataFamily extends Family {
  constructor() {
    super("shared_data", Kind.SharedData);
  }

  onRequestHeaders(ctx: Context, num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    let key = stream_context.headers.request.get("x-key");
    if (key == "") key = "k";

    this.observe("get_missing", sharedValue(getSharedData(key + "-missing")));
    this.observe("set_new", statusWord(setSharedData(key, "v1", 0)));
    const got = getSharedData(key);
    this.observe("get", sharedValue(got));
    this.observe("cas_nonzero", truth(got.cas != 0));
    this.observe("set_current", statusWord(setSharedData(key, "v2", got.cas)));
    this.observe("set_stale", statusWord(setSharedData(key, "v3", got.cas)));
    this.observe("final", sharedValue(getSharedData(key)));
    return FilterHeadersStatusValues.Continue;
  }
}

// The value; `<none>` for NotFound; any other status as its word.
function sharedValue(r: SharedDataResult): string {
  if (r.ok()) return String.UTF8.decode(r.value);
  return r.status == 1 ? NONE : statusWord(r.status);
}
