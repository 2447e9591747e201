//! Request paths: the query parameter lookup for API keys, and `exempt_paths` matching.

use crate::config::ConfigError;

/// Splits `:path` into path and query (without `?`); a fragment is dropped.
pub fn split(full: &str) -> (&str, &str) {
    let full = full.split_once('#').map_or(full, |(p, _)| p);
    full.split_once('?').unwrap_or((full, ""))
}

/// The percent-decoded value of the first query parameter called `name`. `+` is kept as is:
/// API keys are often base64, where `+` is data.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k)? == name).then(|| percent_decode(v)).flatten()
    })
}

/// Decodes `%XX` escapes, keeping an invalid one as written (as Envoy's
/// `PercentEncoding::decode`); None for a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s).decode_utf8().ok().map(std::borrow::Cow::into_owned)
}

/// `exempt_paths`: entries ending in `/` are prefixes, others exact paths.
#[derive(Debug, Clone, Default)]
pub struct Exempt(Vec<String>);

impl Exempt {
    /// Checks every entry starts with `/`.
    pub fn new(paths: Vec<String>) -> Result<Self, ConfigError> {
        for (i, p) in paths.iter().enumerate() {
            if !p.starts_with('/') || p.contains(['?', '#']) || p.chars().any(char::is_control) {
                return Err(ConfigError::new(
                    &format!("exempt_paths[{i}]"),
                    format!("expected a path starting with `/` without query, got {p:?}"),
                ));
            }
        }
        Ok(Self(paths))
    }

    /// True when the request path (query ignored) is exempt. A path that could mean
    /// something else after normalisation upstream (dot segments, `//`, `\`, `%`-escapes)
    /// is never exempt, so `/public/../admin` still needs credentials.
    pub fn matches(&self, full_path: &str) -> bool {
        let (path, _) = split(full_path);
        if self.0.is_empty() || !is_plain(path) {
            return false;
        }
        self.0.iter().any(|e| if e.ends_with('/') { path.starts_with(e.as_str()) } else { path == e })
    }
}

fn is_plain(path: &str) -> bool {
    path.starts_with('/')
        && !path.contains(['%', '\\'])
        && !path.contains("//")
        && !path.split('/').any(|seg| seg == "." || seg == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_separates_query_and_drops_fragment() {
        assert_eq!(split("/a?b=1#f"), ("/a", "b=1"));
        assert_eq!(split("/a"), ("/a", ""));
    }

    #[test]
    fn query_params_are_found_and_decoded() {
        assert_eq!(query_param("x=1&api_key=s3%2Fcr+t&y", "api_key").as_deref(), Some("s3/cr+t"));
        assert_eq!(query_param("api%5Fkey=v", "api_key").as_deref(), Some("v"));
        assert_eq!(query_param("x=1", "api_key"), None);
        assert_eq!(query_param("api_key=%zz", "api_key").as_deref(), Some("%zz"), "kept as written, as Envoy");
        assert_eq!(query_param("api_key=%FF", "api_key"), None, "not UTF-8");
        assert_eq!(query_param("api_key", "api_key").as_deref(), Some(""));
    }

    #[test]
    fn exempt_exact_and_prefix() {
        let e = Exempt::new(vec!["/health".into(), "/public/".into()]).unwrap_or_default();
        assert!(e.matches("/health"));
        assert!(e.matches("/health?verbose=1"));
        assert!(!e.matches("/healthz"));
        assert!(e.matches("/public/logo.png"));
        assert!(!e.matches("/public"));
        assert!(!e.matches("/private"));
    }

    #[test]
    fn ambiguous_paths_are_never_exempt() {
        let e = Exempt::new(vec!["/public/".into()]).unwrap_or_default();
        assert!(!e.matches("/public/../admin"));
        assert!(!e.matches("/public/%2e%2e/admin"));
        assert!(!e.matches("/public//x"));
        assert!(!e.matches("/public/.\\admin"));
    }

    #[test]
    fn exempt_entries_must_be_paths() {
        assert!(Exempt::new(vec!["health".into()]).is_err());
        assert!(Exempt::new(vec!["/a?b".into()]).is_err());
    }
}
