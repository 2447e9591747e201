//! The new `:path`: the path rewrite, then the query edits.

use crate::path::PathRewrite;
use crate::query::QueryEdits;
use crate::template::Vars;

#[derive(Debug, Clone, Default)]
pub struct UriRewrite {
    pub path: Option<PathRewrite>,
    pub query: QueryEdits,
}

impl UriRewrite {
    pub fn is_empty(&self) -> bool {
        self.path.is_none() && self.query.is_empty()
    }

    /// The new `:path` for `original`, if it changes. Stores the path regex groups in `vars`
    /// first, so that added query parameters (and later the headers) can use them.
    pub fn apply(&self, original: &str, vars: &mut Vars) -> Option<String> {
        let (path, query) = match original.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (original, None),
        };
        let rewritten = self.path.as_ref().map(|r| r.apply(path)).unwrap_or_default();
        vars.captures = rewritten.captures;
        let path = rewritten.path.as_deref().unwrap_or(path);
        let query = if self.query.is_empty() {
            query.map(str::to_string)
        } else {
            Some(self.query.apply(query.unwrap_or_default(), vars)).filter(|q| !q.is_empty())
        };
        let new = match query {
            Some(query) => format!("{path}?{query}"),
            None => path.to_string(),
        };
        (new != original).then_some(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Param;
    use crate::template::Template;

    #[test]
    fn rewrites_path_and_keeps_query() {
        let uri = UriRewrite { path: Some(PathRewrite::prefix("/api/", "/").unwrap()), ..UriRewrite::default() };
        let mut vars = Vars::default();
        assert_eq!(uri.apply("/api/x?a=1&b=2", &mut vars).as_deref(), Some("/x?a=1&b=2"));
        assert_eq!(uri.apply("/other?a=1", &mut vars), None);
        // An empty query is kept as the client sent it when the query is not edited.
        assert_eq!(uri.apply("/api/x?", &mut vars).as_deref(), Some("/x?"));
    }

    #[test]
    fn query_values_use_path_captures() {
        let uri = UriRewrite {
            path: Some(PathRewrite::regex("^/u/([0-9]+)$", "/user").unwrap()),
            query: QueryEdits {
                remove: vec!["debug".into()],
                add: vec![Param { name: "id".into(), value: Template::parse("%PATH_CAPTURE(1)%", Some(2)).unwrap() }],
            },
        };
        let mut vars = Vars::default();
        assert_eq!(uri.apply("/u/42?debug=1&x=y", &mut vars).as_deref(), Some("/user?x=y&id=42"));
        assert_eq!(vars.captures, vec![Some("/u/42".to_string()), Some("42".to_string())]);
        assert_eq!(uri.apply("/v?debug", &mut vars).as_deref(), Some("/v"));
        assert!(vars.captures.is_empty());
        assert_eq!(uri.apply("/v", &mut vars), None);
    }
}
