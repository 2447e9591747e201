// What every family shares: its name (for the observation lines) and its kind (for the
// dispatch in index.ts), plus header helpers.
//
// Families are plain subclasses that override nothing: index.ts switches on `kind` and calls
// the concrete class. AssemblyScript 0.14 cannot dispatch virtually here: the SDK reaches
// our context methods only through its own virtual stubs, which the compiler finalizes last,
// and a virtual call first met while finalizing those is left as an `unreachable` stub.

import { HeaderPair, Headers } from "@solo-io/proxy-runtime";
import { observe } from "./observe";

export enum Kind {
  Lifecycle,
  Headers,
  Body,
  LocalReply,
  HttpCall,
  SharedData,
  Queue,
  Metrics,
  Properties,
  Timers,
  Resume,
  Logging,
  Failure,
}

export class Family {
  name: string;
  kind: Kind;

  constructor(name: string, kind: Kind) {
    this.name = name;
    this.kind = kind;
  }

  /** Logs one observation of this family. */
  observe(check: string, value: string): void {
    observe(this.name, check, value);
  }
}

/** Whether `headers` has a pair named `name` (lower case), whatever its value: the SDK's
 *  `get` answers "" both for an absent header and for an empty value. */
export function hasHeader(headers: Headers, name: string): bool {
  for (let i = 0; i < headers.length; i++) {
    if (String.UTF8.decode(headers[i].key).toLowerCase() == name) return true;
  }
  return false;
}

/** A header pair from strings. */
export function pair(key: string, value: string): HeaderPair {
  return new HeaderPair(String.UTF8.encode(key), String.UTF8.encode(value));
}
