//! Edits of the query string: remove parameters by name, then add parameters. Parameters not
//! touched keep their order and their exact encoding.

use crate::template::{Template, Vars};

/// A parameter to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub value: Template,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryEdits {
    /// Names (decoded) of the parameters to remove.
    pub remove: Vec<String>,
    pub add: Vec<Param>,
}

impl QueryEdits {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }

    /// The edited query (without `?`). Added values that render empty are skipped.
    pub fn apply(&self, query: &str, vars: &Vars) -> String {
        let mut params: Vec<String> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let name = p.split_once('=').map_or(*p, |(n, _)| n);
                !self.remove.iter().any(|r| *r == decode(name))
            })
            .map(str::to_string)
            .collect();
        for param in &self.add {
            let value = param.value.render(vars);
            if !value.is_empty() {
                params.push(format!("{}={}", encode(&param.name), encode(&value)));
            }
        }
        params.join("&")
    }
}

/// Everything but RFC 3986's unreserved characters is percent-encoded.
const NOT_UNRESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, NOT_UNRESERVED).to_string()
}

/// Decodes `%XX` and `+` (form encoding, as query parameter names are written); invalid
/// escapes are kept as they are.
fn decode(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edits(remove: &[&str], add: &[(&str, &str)]) -> QueryEdits {
        QueryEdits {
            remove: remove.iter().map(|s| s.to_string()).collect(),
            add: add
                .iter()
                .map(|(n, v)| Param { name: n.to_string(), value: Template::parse(v, None).unwrap() })
                .collect(),
        }
    }

    #[test]
    fn removes_and_adds_keeping_order() {
        let e = edits(&["debug", "a b"], &[("k", "v"), ("sp ace", "x&y=z/é")]);
        let out = e.apply("z=1&debug=1&b=%2F&a+b=2&debug&y=", &Vars::default());
        assert_eq!(out, "z=1&b=%2F&y=&k=v&sp%20ace=x%26y%3Dz%2F%C3%A9");
    }

    #[test]
    fn handles_empty_queries() {
        assert_eq!(edits(&["a"], &[]).apply("a=1", &Vars::default()), "");
        assert_eq!(edits(&[], &[("a", "1")]).apply("", &Vars::default()), "a=1");
        assert_eq!(edits(&[], &[("a", "%REQ(x)%")]).apply("", &Vars::default()), "");
    }

    #[test]
    fn decodes_names() {
        assert_eq!(decode("a%20b+c%zz%4"), "a b c%zz%4");
        assert_eq!(decode("%C3%A9"), "é");
    }
}
