//! The JSON configuration: parsed and validated completely before anything is applied.

use serde::Deserialize;

use crate::headers::{AppendEntry, Entry, Rules};
use crate::names;
use crate::path::PathRewrite;
use crate::query::{Param, QueryEdits};
use crate::template::{Template, Var};
use crate::uri::UriRewrite;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a JSON object with `request`, `response`, `path` and/or `query`")]
struct RawConfig {
    request: Option<RawRules>,
    response: Option<RawRules>,
    path: Option<RawPath>,
    query: Option<RawQuery>,
}

/// A direction's rules for its headers, and `trailers` with the same keys (one type for both,
/// as serde cannot `flatten` with `deny_unknown_fields`; trailers inside trailers are refused
/// when compiled).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    #[serde(default)]
    add: Vec<RawValue>,
    #[serde(default)]
    set: Vec<RawValue>,
    #[serde(default)]
    append: Vec<RawAppend>,
    #[serde(default)]
    remove: Vec<String>,
    trailers: Option<Box<RawRules>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValue {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAppend {
    name: String,
    value: String,
    separator: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPath {
    prefix: Option<RawPrefix>,
    regex: Option<RawRegex>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrefix {
    from: String,
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegex {
    pattern: String,
    substitution: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuery {
    #[serde(default)]
    add: Vec<RawValue>,
    #[serde(default)]
    remove: Vec<String>,
}

/// The edits of one direction.
#[derive(Debug, Clone, Default)]
pub struct Direction {
    pub headers: Rules,
    pub trailers: Rules,
}

/// What the request-headers callback must capture for the values to render.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// `%REQ(...)%` names (lower case, deduplicated).
    pub req_headers: Vec<String>,
    pub remote_address: bool,
    pub request_id: bool,
    pub host: bool,
}

/// A validated configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub request: Direction,
    pub response: Direction,
    pub uri: UriRewrite,
    pub needs: Needs,
}

/// Default separator of `append`, as HTTP joins repeated header values.
const DEFAULT_SEPARATOR: &str = ",";

impl Config {
    /// Parses and validates the plugin configuration. The error names the field at fault.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "the configuration is not UTF-8".to_string())?;
        let raw: RawConfig = weir_filter_support::json_path::parse(text)?;
        let path = raw.path.map(compile_path).transpose()?;
        let groups = path.as_ref().and_then(PathRewrite::groups);
        let query = raw.query.map(|q| compile_query(q, groups)).transpose()?.unwrap_or_default();
        let request = raw.request.map(|d| compile_direction(d, "request", groups)).transpose()?.unwrap_or_default();
        let response = raw.response.map(|d| compile_direction(d, "response", groups)).transpose()?.unwrap_or_default();
        let mut config = Self { request, response, uri: UriRewrite { path, query }, needs: Needs::default() };
        config.needs = config.compute_needs();
        Ok(config)
    }

    fn compute_needs(&self) -> Needs {
        let mut needs = Needs::default();
        let rules = [&self.request.headers, &self.request.trailers, &self.response.headers, &self.response.trailers];
        let query = self.uri.query.add.iter().map(|p| &p.value);
        for var in rules.into_iter().flat_map(Rules::templates).chain(query).flat_map(Template::vars) {
            match var {
                Var::RemoteAddress | Var::RemoteAddressWithoutPort => needs.remote_address = true,
                Var::Req(name) if !needs.req_headers.contains(name) => needs.req_headers.push(name.clone()),
                Var::Req(_) | Var::PathCapture(_) => {}
                Var::RequestId => needs.request_id = true,
                Var::Host => needs.host = true,
            }
        }
        needs
    }
}

fn compile_path(raw: RawPath) -> Result<PathRewrite, String> {
    match (raw.prefix, raw.regex) {
        (Some(p), None) => PathRewrite::prefix(&p.from, &p.to).map_err(|e| format!("path.prefix: {e}")),
        (None, Some(r)) => PathRewrite::regex(&r.pattern, &r.substitution).map_err(|e| format!("path.regex: {e}")),
        _ => Err("path: expected exactly one of `prefix` ({\"from\", \"to\"}) or `regex` \
                  ({\"pattern\", \"substitution\"})"
            .into()),
    }
}

fn compile_query(raw: RawQuery, groups: Option<usize>) -> Result<QueryEdits, String> {
    let mut edits = QueryEdits::default();
    for (i, name) in raw.remove.into_iter().enumerate() {
        if name.is_empty() {
            return Err(format!("query.remove[{i}]: a parameter name must not be empty"));
        }
        edits.remove.push(name);
    }
    for (i, p) in raw.add.into_iter().enumerate() {
        let at = format!("query.add[{i}]");
        if p.name.is_empty() {
            return Err(format!("{at}.name: a parameter name must not be empty"));
        }
        edits.add.push(Param { name: p.name, value: value(&p.value, groups, &at)? });
    }
    Ok(edits)
}

fn compile_direction(mut raw: RawRules, at: &str, groups: Option<usize>) -> Result<Direction, String> {
    let trailers = raw.trailers.take();
    let headers = compile_rules(raw, at, groups)?;
    let trailers = match trailers {
        Some(t) if t.trailers.is_some() => {
            return Err(format!("{at}.trailers.trailers: trailers have no trailers of their own"));
        }
        Some(t) => compile_rules(*t, &format!("{at}.trailers"), groups)?,
        None => Rules::default(),
    };
    Ok(Direction { headers, trailers })
}

fn compile_rules(raw: RawRules, at: &str, groups: Option<usize>) -> Result<Rules, String> {
    let name = |name: &str, at: String| names::writable(name).map_err(|e| format!("{at}.name: {e}"));
    let mut rules = Rules::default();
    for (i, n) in raw.remove.iter().enumerate() {
        rules.remove.push(names::writable(n).map_err(|e| format!("{at}.remove[{i}]: {e}"))?);
    }
    for (list, raw_list, kind) in [(&mut rules.set, &raw.set, "set"), (&mut rules.add, &raw.add, "add")] {
        for (i, e) in raw_list.iter().enumerate() {
            let at = format!("{at}.{kind}[{i}]");
            list.push(Entry { name: name(&e.name, at.clone())?, value: value(&e.value, groups, &at)? });
        }
    }
    for (i, e) in raw.append.iter().enumerate() {
        let at = format!("{at}.append[{i}]");
        let separator = e.separator.clone().unwrap_or_else(|| DEFAULT_SEPARATOR.into());
        if separator.chars().any(char::is_control) {
            return Err(format!("{at}.separator: control characters are not allowed"));
        }
        rules.append.push(AppendEntry {
            name: name(&e.name, at.clone())?,
            value: value(&e.value, groups, &at)?,
            separator,
        });
    }
    Ok(rules)
}

fn value(text: &str, groups: Option<usize>, at: &str) -> Result<Template, String> {
    let template = Template::parse(text, groups).map_err(|e| format!("{at}.value: {e}"))?;
    if template.is_empty() {
        return Err(format!("{at}.value: must not be empty (to delete a header, use `remove`)"));
    }
    Ok(template)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::tests::Map;
    use crate::template::Vars;

    fn parse(json: &str) -> Config {
        match Config::parse(json.as_bytes()) {
            Ok(c) => c,
            Err(e) => panic!("{json}: {e}"),
        }
    }

    fn error(json: &str) -> String {
        match Config::parse(json.as_bytes()) {
            Ok(_) => panic!("accepted {json}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_a_full_config() {
        let c = parse(
            r#"{
              "request": {
                "add": [{"name": "X-A", "value": "1"}],
                "set": [{"name": "x-b", "value": "%REQ(Host)%"}],
                "append": [{"name": "x-c", "value": "v", "separator": "; "}, {"name": "x-d", "value": "w"}],
                "remove": ["x-internal"],
                "trailers": {"add": [{"name": "x-t", "value": "%REQUEST_ID%"}], "remove": ["x-r"]}
              },
              "response": {"set": [{"name": "x-client", "value": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}]},
              "path": {"regex": {"pattern": "^/v1/(.*)$", "substitution": "/\\1"}},
              "query": {"add": [{"name": "k", "value": "%PATH_CAPTURE(1)%"}], "remove": ["debug"]}
            }"#,
        );
        assert_eq!(c.request.headers.add[0].name, "x-a");
        assert_eq!(c.request.headers.append[0].separator, "; ");
        assert_eq!(c.request.headers.append[1].separator, ",");
        assert_eq!(c.request.trailers.remove, vec!["x-r".to_string()]);
        assert!(c.response.trailers.is_empty());
        assert_eq!(
            c.needs,
            Needs { req_headers: vec![":authority".into()], remote_address: true, request_id: true, host: false }
        );
        let mut vars = Vars::default();
        assert_eq!(c.uri.apply("/v1/a?debug=1", &mut vars).as_deref(), Some("/a?k=a"));
    }

    #[test]
    fn an_empty_object_changes_nothing() {
        let c = parse("{}");
        assert!(c.uri.is_empty() && c.request.headers.is_empty() && c.response.headers.is_empty());
        let mut map = Map::of(&[("a", "b")]);
        c.request.headers.apply(&Vars::default(), &mut map);
        assert_eq!(map, Map::of(&[("a", "b")]));
    }

    #[test]
    fn errors_name_the_field() {
        assert!(error(r#"{"requests": {}}"#).starts_with("requests: unknown field `requests`, expected one of"));
        assert!(error(r#"{"request": {"add": [{"name": "x"}]}}"#).starts_with("request.add[0]: missing field `value`"));
        assert_eq!(
            error(r#"{"request": {"set": [{"name": ":path", "value": "/x"}]}}"#),
            "request.set[0].name: `:path` cannot be changed as a header: use the `path` and `query` sections"
        );
        assert!(error(r#"{"response": {"remove": ["ok", "bad name"]}}"#).starts_with("response.remove[1]: `bad name`"));
        assert!(
            error(r#"{"response": {"trailers": {"append": [{"name": "t", "value": "%FOO%"}]}}}"#)
                .starts_with("response.trailers.append[0].value: unknown variable `%FOO%`")
        );
        assert_eq!(
            error(r#"{"request": {"add": [{"name": "x", "value": "%PATH_CAPTURE(1)%"}]}}"#),
            "request.add[0].value: `%PATH_CAPTURE(1)%` needs a `path.regex` rewrite to capture from"
        );
        assert!(error(r#"{"request": {"add": [{"name": "x", "value": ""}]}}"#).contains("use `remove`"));
        assert_eq!(
            error(r#"{"request": {"trailers": {"trailers": {}}}}"#),
            "request.trailers.trailers: trailers have no trailers of their own"
        );
        assert!(error(r#"{"path": {}}"#).starts_with("path: expected exactly one of"));
        assert!(
            error(r#"{"path": {"prefix": {"from": "/a", "to": "/"}, "regex": {"pattern": "a", "substitution": "b"}}}"#)
                .starts_with("path: expected exactly one of")
        );
        assert!(
            error(r#"{"path": {"regex": {"pattern": "(", "substitution": "/"}}}"#).starts_with("path.regex: `pattern`")
        );
        assert_eq!(
            error(r#"{"query": {"add": [{"name": "", "value": "v"}]}}"#),
            "query.add[0].name: a parameter name must not be empty"
        );
        assert!(
            error(r#"{"request": {"add": [{"name": 5, "value": "v"}]}}"#)
                .starts_with("request.add[0].name: invalid type")
        );
        assert!(error(r#"[]"#).contains("expected a JSON object with"));
        assert_eq!(Config::parse(b"\xff").err().as_deref(), Some("the configuration is not UTF-8"));
    }
}
