//! The filter's JSON configuration: parsed and checked completely in `on_configure`, so a
//! running filter only holds keys and settings that are known to be usable.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::apikey::{self, ApiKeys};
use crate::basic::{self, Basic};
use crate::external::{self, External};
use crate::headers;
use crate::jwt::{self, Jwt};
use crate::path::Exempt;

pub use weir_filter_support::ConfigError;

/// Sections stay JSON until [`section`] reads them, so a type error names its section.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    api_keys: Option<Value>,
    #[serde(default)]
    basic: Option<Value>,
    #[serde(default)]
    jwt: Option<Value>,
    #[serde(default)]
    external: Option<Value>,
    #[serde(default)]
    exempt_paths: Vec<String>,
    #[serde(default = "default_identity_header")]
    identity_header: String,
}

/// Reads section `field`, prefixing serde's message with the section name.
fn section<T: DeserializeOwned>(field: &str, value: Option<Value>) -> Result<Option<T>, ConfigError> {
    value.map(|v| serde_json::from_value(v).map_err(|e| ConfigError::new(field, e))).transpose()
}

fn default_identity_header() -> String {
    "x-auth-identity".to_owned()
}

/// Headers that carry framing or routing; removing them from requests would break them.
const RESERVED: &[&str] =
    &["host", "content-length", "transfer-encoding", "connection", "te", "upgrade", "keep-alive", "proxy-connection"];

/// A checked configuration.
#[derive(Debug)]
pub struct Config {
    /// API keys, checked first.
    pub api_keys: Option<ApiKeys>,
    /// HTTP Basic users.
    pub basic: Option<Basic>,
    /// JWT bearer tokens.
    pub jwt: Option<Jwt>,
    /// The external authorization service, asked after local checks pass.
    pub external: Option<External>,
    /// Paths served without any check.
    pub exempt: Exempt,
    /// Where the caller's identity is forwarded.
    pub identity_header: String,
    /// Headers only this filter may set: removed from every client request.
    protected: Vec<String>,
}

impl Config {
    /// Parses and checks the plugin configuration.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| ConfigError::new("(config)", e))?;
        let config = Self {
            api_keys: section::<apikey::Raw>("api_keys", raw.api_keys)?.map(ApiKeys::new).transpose()?,
            basic: section::<basic::Raw>("basic", raw.basic)?.map(Basic::new).transpose()?,
            jwt: section::<jwt::Raw>("jwt", raw.jwt)?.map(Jwt::new).transpose()?,
            external: section::<external::Raw>("external", raw.external)?.map(External::new).transpose()?,
            exempt: Exempt::new(raw.exempt_paths)?,
            identity_header: headers::name("identity_header", &raw.identity_header)?,
            protected: Vec::new(),
        };
        if config.api_keys.is_none() && config.basic.is_none() && config.jwt.is_none() && config.external.is_none() {
            return Err(ConfigError::new("(config)", "expected at least one of api_keys, basic, jwt, external"));
        }
        config.with_protected()
    }

    /// Collects the headers this filter sets and checks none of them carries credentials
    /// (they are stripped before credentials are read) or framing.
    fn with_protected(mut self) -> Result<Self, ConfigError> {
        let mut targets = vec![("identity_header", self.identity_header.clone())];
        if let Some(jwt) = &self.jwt {
            targets.extend(jwt.claims_to_headers.iter().map(|(_, h)| ("jwt.claims_to_headers", h.clone())));
        }
        if let Some(ext) = &self.external {
            targets.extend(ext.headers_from_response.iter().map(|h| ("external.headers_from_response", h.clone())));
        }
        let mut credential_headers: Vec<&str> = Vec::new();
        if let Some(header) = self.api_keys.as_ref().and_then(|k| k.header.as_deref()) {
            credential_headers.push(header);
        }
        if self.basic.is_some() {
            credential_headers.push("authorization");
        }
        if let Some(jwt) = &self.jwt {
            credential_headers.push(&jwt.header);
        }
        for (field, header) in &targets {
            if credential_headers.contains(&header.as_str()) {
                return Err(ConfigError::new(field, format!("{header:?} carries credentials; choose another header")));
            }
            if RESERVED.contains(&header.as_str()) {
                return Err(ConfigError::new(field, format!("{header:?} is a framing header; choose another header")));
            }
        }
        let mut protected: Vec<String> = targets.into_iter().map(|(_, h)| h).collect();
        protected.sort();
        protected.dedup();
        self.protected = protected;
        Ok(self)
    }

    /// Headers the filter removes from every request before anything else, so a client can
    /// never supply an identity or a claim itself.
    pub fn protected_headers(&self) -> &[String] {
        &self.protected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        match Config::from_json(json.as_bytes()) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn empty_and_non_json_are_refused() {
        assert!(err("").contains("(config)"));
        assert!(err("[]").contains("(config)"));
        assert!(err("{}").contains("at least one"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(err(r#"{"api_keys":{"keys":[{"name":"a","key":"k"}]},"extra":1}"#).contains("unknown field `extra`"));
        assert!(err(r#"{"api_keys":{"keys":[{"name":"a","key":"k","x":1}]}}"#).contains("unknown field `x`"));
    }

    #[test]
    fn type_errors_name_the_section() {
        let e = err(r#"{"jwt":{"keys":[],"clock_skew_seconds":-1}}"#);
        assert!(e.starts_with("`jwt`") && e.contains("u32"), "{e}");
        assert!(err(r#"{"external":{"path":"/"}}"#).starts_with("`external`: missing field `cluster`"));
    }

    #[test]
    fn protected_headers_collect_every_target() {
        let json = r#"{
            "jwt": {"keys": [{"alg": "HS256", "secret": "0123456789abcdef0123456789abcdef"}],
                    "claims_to_headers": [{"claim": "sub", "header": "X-User"}]},
            "external": {"cluster": "authz", "path": "/check", "headers_from_response": ["x-tenant", "x-user"]}
        }"#;
        let c = Config::from_json(json.as_bytes());
        assert_eq!(
            c.map(|c| c.protected_headers().to_vec()).ok(),
            Some(vec!["x-auth-identity".to_owned(), "x-tenant".to_owned(), "x-user".to_owned()])
        );
    }

    #[test]
    fn targets_may_not_be_credential_or_framing_headers() {
        let basic = r#""basic":{"users":[{"name":"a","password_hash":"sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}]}"#;
        assert!(err(&format!(r#"{{{basic},"identity_header":"authorization"}}"#)).contains("carries credentials"));
        assert!(err(&format!(r#"{{{basic},"identity_header":"Host"}}"#)).contains("framing"));
        let keys = r#""api_keys":{"keys":[{"name":"a","key":"k"}]}"#;
        assert!(
            err(&format!(
                r#"{{{keys},"external":{{"cluster":"c","path":"/","headers_from_response":["x-api-key"]}}}}"#
            ))
            .contains("external.headers_from_response")
        );
    }
}
