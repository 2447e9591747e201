// Raw hostcalls, used only where the SDK's wrapper hides (or mangles) the status or value the
// spec asks for. Buffers come back the way runtime.ts takes them: the host fills a
// pointer/size pair, the pointer is an ArrayBuffer our `malloc` made, and `free` drops the
// extra reference `malloc` took.

import * as imports from "@solo-io/proxy-runtime/imports";
import { free } from "@solo-io/proxy-runtime/malloc";
import { Reference, WasmResultValues, BufferTypeValues } from "@solo-io/proxy-runtime/runtime";

// imports.ts declares no proxy_set_buffer_bytes (its proxy_set_buffer_status is bound to
// proxy_get_buffer_status), so the body families declare it here.
// @ts-ignore: decorator
@external("env", "proxy_set_buffer_bytes")
declare function proxy_set_buffer_bytes(typ: i32, start: u32, length: u32, data: usize, size: usize): u32;

/** A status and, when it is Ok, the bytes the host returned. */
export class BytesResult {
  status: u32 = 0;
  value: ArrayBuffer = new ArrayBuffer(0);

  ok(): bool {
    return this.status == WasmResultValues.Ok;
  }
}

/** The pointer/size pair a hostcall fills in. */
class OutBuffer {
  data: usize = 0;
  size: usize = 0;

  dataPtr(): usize {
    return changetype<usize>(this) + offsetof<OutBuffer>("data");
  }
  sizePtr(): usize {
    return changetype<usize>(this) + offsetof<OutBuffer>("size");
  }
  reset(): void {
    this.data = 0;
    this.size = 0;
  }
  // Call once after an Ok answer.
  take(): ArrayBuffer {
    if (this.data == 0) return new ArrayBuffer(0);
    const buffer = changetype<ArrayBuffer>(this.data);
    free(this.data);
    this.data = 0;
    return buffer;
  }
}

const out = new OutBuffer();
const outU32 = new Reference<u32>();
const outU64 = new Reference<u64>();

function bytesResult(status: u32): BytesResult {
  const r = new BytesResult();
  r.status = status;
  if (status == WasmResultValues.Ok) r.value = out.take();
  return r;
}

/** proxy_get_property with the segments joined by NUL; the SDK's get_property aborts on
 *  NotFound. */
export function getProperty(segments: string[]): BytesResult {
  const path = propertyPath(segments);
  out.reset();
  return bytesResult(imports.proxy_get_property(changetype<usize>(path), path.byteLength,
    out.dataPtr(), out.sizePtr()));
}

/** The ABI's property path: UTF-8 segments separated by single NUL bytes. */
export function propertyPath(segments: string[]): ArrayBuffer {
  let size = 0;
  const parts = new Array<ArrayBuffer>(0);
  for (let i = 0; i < segments.length; i++) {
    const p = String.UTF8.encode(segments[i]);
    parts.push(p);
    size += p.byteLength + (i > 0 ? 1 : 0);
  }
  const path = new Uint8Array(size);
  let at = 0;
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) path[at++] = 0;
    const p = Uint8Array.wrap(parts[i]);
    for (let j = 0; j < p.length; j++) path[at++] = p[j];
  }
  return path.buffer;
}

/** A shared-data value with its CAS. */
export class SharedDataResult extends BytesResult {
  cas: u32 = 0;
}

/** proxy_get_shared_data; the SDK's get_shared_data passes a buffer and its length where
 *  the ABI wants out-pointers and drops the CAS. */
export function getSharedData(key: string): SharedDataResult {
  const k = String.UTF8.encode(key);
  out.reset();
  outU32.data = 0;
  const status = imports.proxy_get_shared_data(changetype<usize>(k), k.byteLength,
    out.dataPtr(), out.sizePtr(), outU32.ptr());
  const r = new SharedDataResult();
  r.status = status;
  if (status == WasmResultValues.Ok) {
    r.value = out.take();
    r.cas = outU32.data;
  }
  return r;
}

/** proxy_set_shared_data with a CAS; the SDK's set_shared_data takes no value or CAS. */
export function setSharedData(key: string, value: string, cas: u32): u32 {
  const k = String.UTF8.encode(key);
  const v = String.UTF8.encode(value);
  return imports.proxy_set_shared_data(changetype<usize>(k), k.byteLength,
    changetype<usize>(v), v.byteLength, cas);
}

/** A status and, when Ok, the u32 the host wrote (a queue token). */
export class U32Result {
  status: u32 = 0;
  value: u32 = 0;
}

/** proxy_register_shared_queue; the SDK's register_shared_queue passes the token value
 *  where the ABI wants a pointer to it. */
export function registerSharedQueue(name: string): U32Result {
  const n = String.UTF8.encode(name);
  outU32.data = 0;
  const r = new U32Result();
  r.status = imports.proxy_register_shared_queue(changetype<usize>(n), n.byteLength, outU32.ptr());
  if (r.status == WasmResultValues.Ok) r.value = outU32.data;
  return r;
}

/** A status and, when Ok, the u64 the host wrote (a metric value). */
export class U64Result {
  status: u32 = 0;
  value: u64 = 0;
}

/** proxy_get_metric; the SDK's get_metric calls proxy_record_metric instead. */
export function getMetric(id: u32): U64Result {
  outU64.data = 0;
  const r = new U64Result();
  r.status = imports.proxy_get_metric(id, outU64.ptr());
  if (r.status == WasmResultValues.Ok) r.value = outU64.data;
  return r;
}

/** proxy_replace_header_map_value with its status; the SDK's replace aborts on non-Ok and
 *  returns nothing. */
export function replaceHeader(map: i32, key: string, value: string): u32 {
  const k = String.UTF8.encode(key);
  const v = String.UTF8.encode(value);
  return imports.proxy_replace_header_map_value(map, changetype<usize>(k), k.byteLength,
    changetype<usize>(v), v.byteLength);
}

/** proxy_remove_header_map_value with its status (as for replaceHeader). */
export function removeHeader(map: i32, key: string): u32 {
  const k = String.UTF8.encode(key);
  return imports.proxy_remove_header_map_value(map, changetype<usize>(k), k.byteLength);
}

/** proxy_set_buffer_bytes, which the SDK does not offer. */
export function setBufferBytes(typ: BufferTypeValues, start: u32, length: u32, data: ArrayBuffer): u32 {
  return proxy_set_buffer_bytes(typ, start, length, changetype<usize>(data), data.byteLength);
}

/** proxy_dequeue_shared_queue; the SDK's dequeue_shared_queue does not compile with this
 *  AssemblyScript (its result class leaves an ArrayBuffer field uninitialized). */
export function dequeueSharedQueue(token: u32): BytesResult {
  out.reset();
  return bytesResult(imports.proxy_dequeue_shared_queue(token, out.dataPtr(), out.sizePtr()));
}
