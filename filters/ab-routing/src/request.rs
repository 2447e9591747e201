//! What the choice needs from a request, read from its headers in one pass.

use weir_filter_support::header_block::HeaderBlock;

use crate::config::{Config, Source};
use crate::cookies;

/// The request's say in the choice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    /// Variant name asked for through `override`.
    pub override_value: Option<String>,
    /// Variant name in the `set_cookie` cookie.
    pub cookie_variant: Option<String>,
    /// The `sticky` value to hash.
    pub sticky_key: Option<Vec<u8>>,
}

impl Inputs {
    /// Reads the inputs from the request headers (lower-case names, as hosts give them).
    /// Empty values count as absent.
    pub fn from_headers(config: &Config, headers: &HeaderBlock) -> Self {
        let header = |name: &str| headers.get(name);
        let cookie = |name: &str| cookies::find(headers.get_all("cookie"), name);
        let read = |source: &Source| match source {
            Source::Header(name) => header(name),
            Source::Cookie(name) => cookie(name),
        };
        let text = |bytes: &[u8]| {
            let text = std::str::from_utf8(bytes).ok()?.trim();
            (!text.is_empty()).then(|| text.to_string())
        };
        Self {
            override_value: config.override_by.as_ref().and_then(read).and_then(text),
            cookie_variant: config.set_cookie.as_ref().and_then(|c| cookie(&c.name)).and_then(text),
            sticky_key: config.sticky.as_ref().and_then(read).filter(|v| !v.is_empty()).map(<[u8]>::to_vec),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let json = format!(r#"{{"variants": [{{"name": "a", "cluster": "a", "weight": 1}}]{extra}}}"#);
        Config::parse(json.as_bytes()).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderBlock {
        HeaderBlock::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn reads_headers_and_cookies() {
        let c = config(
            r#", "sticky": {"cookie": "uid"}, "override": {"header": "x-variant"}, "set_cookie": {"name": "wv"}"#,
        );
        let h = headers(&[("cookie", "x=1"), ("x-variant", " canary "), ("cookie", "uid=u1; wv=stable")]);
        let inputs = Inputs::from_headers(&c, &h);
        assert_eq!(
            inputs,
            Inputs {
                override_value: Some("canary".into()),
                cookie_variant: Some("stable".into()),
                sticky_key: Some(b"u1".to_vec()),
            }
        );
    }

    #[test]
    fn empty_and_missing_values_are_absent() {
        let c = config(r#", "sticky": {"header": "x-user"}, "override": {"cookie": "v"}"#);
        let h = headers(&[("x-user", ""), ("cookie", "v=")]);
        assert_eq!(Inputs::from_headers(&c, &h), Inputs::default());
        assert_eq!(Inputs::from_headers(&config(""), &headers(&[("x-user", "u")])), Inputs::default());
    }
}
