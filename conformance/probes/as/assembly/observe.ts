// Observation lines and the value formats of ../../SPEC.md ("Observations").

import { log, LogLevelValues } from "@solo-io/proxy-runtime";

/** How an absent value (a NotFound status) is written. */
export const NONE = "<none>";

/** Logs `observe {"sdk":"as","family":...,"check":...,"value":...}` at INFO. */
export function observe(family: string, check: string, value: string): void {
  log(LogLevelValues.info,
    'observe {"sdk":"as","family":"' + jsonEscape(family) +
    '","check":"' + jsonEscape(check) +
    '","value":"' + jsonEscape(value) + '"}');
}

/** One hostcall status as the spec's status word. */
export function statusWord(status: u32): string {
  switch (status) {
    case 0: return "ok";
    case 1: return "not_found";
    case 2: return "bad_argument";
    case 4: return "parse_failure";
    case 7: return "empty";
    case 8: return "cas_mismatch";
    case 10: return "internal_failure";
    case 12: return "unimplemented";
  }
  return "status_" + status.toString();
}

/** Booleans in callback arguments are written `0`/`1`. */
export function flag(b: bool): string {
  return b ? "1" : "0";
}

/** Booleans as check values are written `true`/`false`. */
export function truth(b: bool): string {
  return b ? "true" : "false";
}

/** The contents of a JSON string literal: `"` and `\` escaped, and control characters too
 *  (so a line always parses as JSON). */
export function jsonEscape(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x22) out += "\\\"";
    else if (c == 0x5c) out += "\\\\";
    else if (c == 0x0a) out += "\\n";
    else if (c == 0x0d) out += "\\r";
    else if (c == 0x09) out += "\\t";
    else if (c < 0x20) out += "\\u00" + hexDigit(c >> 4) + hexDigit(c & 0xf);
    else out += String.fromCharCode(c);
  }
  return out;
}

function hexDigit(n: i32): string {
  return "0123456789abcdef".charAt(n);
}
