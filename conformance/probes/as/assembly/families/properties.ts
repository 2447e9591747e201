// `properties`: reads request, connection and plugin properties, sets one and reads it back.

import { Context, FilterHeadersStatusValues } from "@solo-io/proxy-runtime";
import { set_property } from "@solo-io/proxy-runtime/runtime";
import { Family, Kind } from "../family";
import { NONE, statusWord } from "../observe";
import { BytesResult, getProperty } from "../host";

export class PropertiesFamily extends Family {
  constructor() {
    super("properties", Kind.Properties);
  }

  onRequestHeaders(ctx: Context, num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    this.observe("request.path", asString(getProperty(["request", "path"])));
    this.observe("request.method", asString(getProperty(["request", "method"])));
    this.observe("request.header", asString(getProperty(["request", "headers", "x-conformance-in"])));
    this.observe("source.address", asString(getProperty(["source", "address"])));
    this.observe("source.port", asInt64(getProperty(["source", "port"])));
    this.observe("request.time", asLength(getProperty(["request", "time"])));
    this.observe("plugin_name", asString(getProperty(["plugin_name"])));
    this.observe("missing", asString(getProperty(["no", "such", "property"])));
    // The SDK's set_property takes the path as one string (a single segment here).
    set_property("conformance_key", String.UTF8.encode("v"));
    this.observe("set_then_get", asString(getProperty(["conformance_key"])));
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(ctx: Context, num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    this.observe("response.code", asInt64(getProperty(["response", "code"])));
    return FilterHeadersStatusValues.Continue;
  }

  onLog(ctx: Context): void {
    this.observe("log.response.code", asInt64(getProperty(["response", "code"])));
    const duration = getProperty(["request", "duration"]);
    this.observe("request.duration", duration.ok() ? "present" : absent(duration));
  }
}

// `<none>` for NotFound; any other failure as its status word.
function absent(r: BytesResult): string {
  return r.status == 1 ? NONE : statusWord(r.status);
}

function asString(r: BytesResult): string {
  return r.ok() ? String.UTF8.decode(r.value) : absent(r);
}

function asLength(r: BytesResult): string {
  return r.ok() ? r.value.byteLength.toString() : absent(r);
}

// An 8-byte little-endian int64 in decimal; another length is written `bytes_<n>`.
function asInt64(r: BytesResult): string {
  if (!r.ok()) return absent(r);
  if (r.value.byteLength != 8) return "bytes_" + r.value.byteLength.toString();
  return load<i64>(changetype<usize>(r.value)).toString();
}
