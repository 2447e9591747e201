// `metrics`: defines a counter, a gauge and a histogram, updates them and reads them back.

import {
  Context,
  Counter,
  Gauge,
  Histogram,
  FilterHeadersStatusValues,
} from "@solo-io/proxy-runtime";
import { Family, Kind } from "../family";
import { statusWord } from "../observe";
import { U64Result, getMetric } from "../host";

export class MetricsFamily extends Family {
  counter: Counter | null = null;
  gauge: Gauge | null = null;
  histogram: Histogram | null = null;

  constructor() {
    super("metrics", Kind.Metrics);
  }

  onConfigure(configuration_size: u32): void {
    // The SDK's metric classes define the metric in their constructor (and throw on failure).
    this.counter = new Counter("conformance_counter");
    this.gauge = new Gauge("conformance_gauge");
    this.histogram = new Histogram("conformance_histogram");
  }

  onRequestHeaders(ctx: Context, num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const counter = this.counter!;
    const gauge = this.gauge!;
    const histogram = this.histogram!;
    counter.increment(1);
    // The SDK's record takes the metric id as its first argument.
    gauge.record(gauge.metric_id, 42);
    histogram.record(histogram.metric_id, 7);
    this.observe("counter", metricValue(getMetric(counter.metric_id)));
    this.observe("gauge", metricValue(getMetric(gauge.metric_id)));
    return FilterHeadersStatusValues.Continue;
  }
}

// The value; a failed read as its status word.
function metricValue(r: U64Result): string {
  return r.status == 0 ? r.value.toString() : statusWord(r.status);
}
