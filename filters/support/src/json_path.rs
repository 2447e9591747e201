//! Parses a filter's JSON configuration, naming the field an error is about
//! (`request.add[0].name: invalid type …`): serde alone reports "line 1 column 37", useless for
//! a configuration written in YAML and handed to the filter as one line of JSON.
//! `serde_path_to_error` tracks the path while deserializing.

use serde::de::DeserializeOwned;

/// `text` as a `T`, or the error's message prefixed with the path of the field it is about.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let full = e.inner().to_string();
        // serde_json appends " at line L column C"; the path replaces it.
        let message = full.rfind(" at line ").map_or(full.as_str(), |i| &full[..i]);
        if path.is_empty() || path == "." { message.to_owned() } else { format!("{path}: {message}") }
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::parse;

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
        match parse::<Top>(text) {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e,
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
        assert_eq!(e, "add[0]: expected value", "the element being read");
    }
}
