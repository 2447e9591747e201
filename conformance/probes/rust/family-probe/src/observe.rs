//! The probe's output: `observe {json}` lines at INFO, and the value formats of SPEC.md
//! ("Observations").

use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, Status};
use std::fmt::Write;
use std::rc::Rc;

/// How an absent value is written.
pub const NONE: &str = "<none>";

/// Writes the observations of one family. Cheap to clone: every context of a plugin has one.
#[derive(Clone)]
pub struct Observer {
    /// The configured family name as given (trimmed), also for an unknown family.
    family: Rc<str>,
}

impl Observer {
    pub fn new(family: &str) -> Observer {
        Observer { family: family.into() }
    }

    pub fn family(&self) -> &str {
        &self.family
    }

    /// Logs `observe {"sdk":"rust","family":..,"check":..,"value":..}` at INFO.
    pub fn emit(&self, check: &str, value: &str) {
        let mut line = String::from("observe {\"sdk\":\"rust\",\"family\":");
        push_json_string(&mut line, &self.family);
        line.push_str(",\"check\":");
        push_json_string(&mut line, check);
        line.push_str(",\"value\":");
        push_json_string(&mut line, value);
        line.push('}');
        // The SDK panics itself on any status but ok, so the result carries nothing.
        let _ = hostcalls::log(LogLevel::Info, &line);
    }
}

/// A JSON string literal: `"` and `\` escaped, control characters too (as `JSON.stringify`
/// writes them) so that the line stays one valid JSON object.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A hostcall status as one word. Mapped from the raw ABI value: the SDK's `Status` enum has
/// no variant for some of the spec's words (unimplemented = 12).
pub fn status_word(status: Status) -> String {
    let word = match status as u32 {
        0 => "ok",
        1 => "not_found",
        2 => "bad_argument",
        4 => "parse_failure",
        7 => "empty",
        8 => "cas_mismatch",
        10 => "internal_failure",
        12 => "unimplemented",
        n => return format!("status_{n}"),
    };
    word.to_owned()
}

/// The status word of a call that returns a `Result`: `ok` for any `Ok`.
pub fn result_word<T>(result: &Result<T, Status>) -> String {
    match result {
        Ok(_) => status_word(Status::Ok),
        Err(status) => status_word(*status),
    }
}

/// An optional value, `<none>` when absent.
pub fn or_none(value: Option<String>) -> String {
    value.unwrap_or_else(|| NONE.to_owned())
}

/// Bytes from the host as text (lossy: the probe's values are ASCII).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A bytes-valued hostcall result: the text, `<none>` when absent (`None` or a NotFound
/// status), else the status word.
pub fn bytes_result(result: Result<Option<Vec<u8>>, Status>, show: impl FnOnce(&[u8]) -> String) -> String {
    match result {
        Ok(Some(bytes)) => show(&bytes),
        Ok(None) | Err(Status::NotFound) => NONE.to_owned(),
        Err(status) => status_word(status),
    }
}

/// A boolean argument as `0`/`1`.
pub fn flag(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

/// A boolean check as `true`/`false`.
pub fn truth(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}
