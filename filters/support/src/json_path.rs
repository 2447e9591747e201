//! Names the field a `serde_json` error is about. serde only reports "line 1 column 37", which
//! is useless for a config written in YAML and handed over as one line of JSON; scanning the
//! text up to that position gives the path instead (`request.add[0].name`).

/// The error's message, prefixed with the JSON path of the field it is about.
pub fn describe(text: &str, err: &serde_json::Error) -> String {
    let full = err.to_string();
    if err.line() == 0 {
        return full;
    }
    // serde_json appends " at line L column C"; the path replaces it.
    let message = full.rfind(" at line ").map_or(full.as_str(), |i| full.get(..i).unwrap_or(&full));
    let path = path_at(text, offset(text, err.line(), err.column()));
    if path.is_empty() { message.to_string() } else { format!("{path}: {message}") }
}

/// Byte offset of a 1-based line and (byte) column.
fn offset(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
    (start + column).min(text.len())
}

enum Frame {
    /// `key` is the member being read; `want_key` until its `:` is seen.
    Object {
        key: Option<String>,
        want_key: bool,
    },
    Array {
        index: usize,
    },
}

/// The path of the value being read at byte `end` of a JSON text.
fn path_at(text: &str, end: usize) -> String {
    let bytes = text.as_bytes();
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i).filter(|_| i < end) {
        match b {
            b'"' => {
                let start = i + 1;
                i = start;
                while let Some(&c) = bytes.get(i).filter(|_| i < end) {
                    match c {
                        b'"' => break,
                        b'\\' => i += 2,
                        _ => i += 1,
                    }
                }
                if let Some(Frame::Object { key, want_key: true }) = stack.last_mut() {
                    *key = text.get(start..i.min(end)).map(str::to_string);
                }
            }
            b'{' => stack.push(Frame::Object { key: None, want_key: true }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b':' => {
                if let Some(Frame::Object { want_key, .. }) = stack.last_mut() {
                    *want_key = false;
                }
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { key, want_key }) => {
                    *key = None;
                    *want_key = true;
                }
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(key), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::describe;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only deserialised to provoke errors")]
    struct Entry {
        name: String,
        value: String,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only deserialised to provoke errors")]
    struct Top {
        #[serde(default)]
        add: Vec<Entry>,
        #[serde(default)]
        n: u32,
    }

    fn error(text: &str) -> String {
        match serde_json::from_str::<Top>(text) {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => describe(text, &e),
        }
    }

    #[test]
    fn names_the_field_of_a_type_error() {
        let e = error(r#"{"add": [{"name": "a", "value": "b"}, {"name": 5, "value": "x"}]}"#);
        assert_eq!(e, "add[1].name: invalid type: integer `5`, expected a string");
    }

    #[test]
    fn names_the_unknown_key() {
        let e = error(r#"{"add": [], "nn": 1}"#);
        assert!(e.starts_with("nn: unknown field `nn`, expected"), "{e}");
    }

    #[test]
    fn names_the_object_missing_a_field() {
        let e = error("{\"add\": [\n  {\"name\": \"a\"}\n]}");
        assert_eq!(e, "add[0]: missing field `value`");
    }

    #[test]
    fn negative_numbers_and_escaped_quotes() {
        let e = error(r#"{"add": [{"name": "a\"b", "value": "c"}], "n": -1}"#);
        assert_eq!(e, "n: invalid value: integer `-1`, expected u32");
    }

    #[test]
    fn syntax_errors_keep_their_message() {
        let e = error(r#"{"add": [}"#);
        assert!(e.starts_with("add: expected value"), "{e}");
    }
}
