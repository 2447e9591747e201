// `queue`: registers a shared queue, enqueues each request's path, drains it when ready.

import {
  Context,
  FilterHeadersStatusValues,
  stream_context,
} from "@solo-io/proxy-runtime";
import { enqueue_shared_queue } from "@solo-io/proxy-runtime/runtime";
import { Family, Kind } from "../family";
import { statusWord } from "../observe";
import { dequeueSharedQueue, registerSharedQueue } from "../host";

export class QueueFamily extends Family {
  token: u32 = 0;

  constructor() {
    super("queue", Kind.Queue);
  }

  onConfigure(configuration_size: u32): void {
    const r = registerSharedQueue("conformance");
    this.token = r.value;
    this.observe("register", statusWord(r.status));
  }

  onRequestHeaders(ctx: Context, num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const path = String.UTF8.encode(stream_context.headers.request.get(":path"));
    this.observe("enqueue", statusWord(enqueue_shared_queue(this.token, path)));
    return FilterHeadersStatusValues.Continue;
  }

  onQueueReady(token: u32): void {
    // Until Empty (or any other non-Ok answer).
    while (true) {
      const r = dequeueSharedQueue(token);
      if (!r.ok()) break;
      this.observe("dequeued", String.UTF8.decode(r.value));
    }
  }
}
