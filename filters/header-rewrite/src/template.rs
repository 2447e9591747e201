//! Values with Envoy-style variables (`%REQ(x-user)%`), parsed once at configuration time and
//! rendered per request from a [`Vars`] snapshot.

use crate::names;

/// A variable a value may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `%DOWNSTREAM_REMOTE_ADDRESS%`: the client's `ip:port`.
    RemoteAddress,
    /// `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`: the client's ip.
    RemoteAddressWithoutPort,
    /// `%REQ(name)%`: a request header (lower-cased name), empty when absent.
    Req(String),
    /// `%REQUEST_ID%`: the `x-request-id` request header.
    RequestId,
    /// `%HOST%`: the request's `:authority`.
    Host,
    /// `%PATH_CAPTURE(n)%`: group `n` of the `path.regex` match.
    PathCapture(usize),
}

const KNOWN: &str = "%DOWNSTREAM_REMOTE_ADDRESS%, %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%, \
                     %REQ(header-name)%, %REQUEST_ID%, %HOST%, %PATH_CAPTURE(n)%, and %% for a literal %";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(Var),
}

/// A parsed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What the request looked like when it reached this filter: everything a value can refer to.
/// Taken in the request-headers callback, because request headers cannot be read later.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    pub remote_address: String,
    pub request_id: String,
    pub host: String,
    /// The `%REQ(...)%` headers the config uses that the request carried.
    pub req: Vec<(String, String)>,
    /// Groups of the first `path.regex` match (index 0 is the whole match).
    pub captures: Vec<Option<String>>,
}

impl Template {
    /// Parses `text`. `path_groups` is the number of groups `%PATH_CAPTURE(n)%` may name
    /// (including group 0), `None` when no `path.regex` is configured.
    pub fn parse(text: &str, path_groups: Option<usize>) -> Result<Self, String> {
        if let Some(bad) = text.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(format!("control character {bad:?} is not allowed in a value"));
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some((before, after)) = rest.split_once('%') {
            literal.push_str(before);
            if let Some(after) = after.strip_prefix('%') {
                literal.push('%');
                rest = after;
                continue;
            }
            let Some((name, after)) = after.split_once('%') else {
                return Err(format!(
                    "unterminated variable `%{after}`: end it with `%`, or write a literal percent as `%%`"
                ));
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Var(parse_var(name, path_groups)?));
            rest = after;
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self { parts })
    }

    /// The variables used, to know what to capture from the request.
    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Literal(_) => None,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    pub fn render(&self, vars: &Vars) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Var(Var::RemoteAddress) => out.push_str(&vars.remote_address),
                Part::Var(Var::RemoteAddressWithoutPort) => out.push_str(without_port(&vars.remote_address)),
                Part::Var(Var::Req(name)) => {
                    if let Some((_, v)) = vars.req.iter().find(|(n, _)| n == name) {
                        out.push_str(v);
                    }
                }
                Part::Var(Var::RequestId) => out.push_str(&vars.request_id),
                Part::Var(Var::Host) => out.push_str(&vars.host),
                Part::Var(Var::PathCapture(n)) => {
                    if let Some(Some(group)) = vars.captures.get(*n) {
                        out.push_str(group);
                    }
                }
            }
        }
        out
    }
}

fn parse_var(name: &str, path_groups: Option<usize>) -> Result<Var, String> {
    match name {
        "DOWNSTREAM_REMOTE_ADDRESS" => return Ok(Var::RemoteAddress),
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => return Ok(Var::RemoteAddressWithoutPort),
        "REQUEST_ID" => return Ok(Var::RequestId),
        "HOST" => return Ok(Var::Host),
        _ => {}
    }
    let call = name.strip_suffix(')').and_then(|n| n.split_once('('));
    match call {
        Some(("REQ", header)) => names::readable(header).map(Var::Req).map_err(|e| format!("in `%{name}%`: {e}")),
        Some(("PATH_CAPTURE", n)) => {
            let n: usize =
                n.parse().map_err(|_| format!("in `%{name}%`: expected a group number, like %PATH_CAPTURE(1)%"))?;
            match path_groups {
                None => Err(format!("`%{name}%` needs a `path.regex` rewrite to capture from")),
                Some(groups) if n >= groups => Err(format!(
                    "`%{name}%`: the `path.regex` pattern has only {} capture group(s)",
                    groups.saturating_sub(1)
                )),
                Some(_) => Ok(Var::PathCapture(n)),
            }
        }
        _ => Err(format!("unknown variable `%{name}%`; known: {KNOWN}")),
    }
}

/// `ip` of `ip:port` or `[ipv6]:port` (Envoy prints IPv6 without brackets here).
fn without_port(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, port)| {
        // A bare IPv6 address has colons but no brackets and no port.
        let bare_ipv6 = host.contains(':') && !host.starts_with('[');
        if port.chars().all(|c| c.is_ascii_digit()) && !host.is_empty() && !bare_ipv6 { host } else { address }
    });
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            remote_address: "10.0.0.7:51234".into(),
            request_id: "rid-1".into(),
            host: "example.com".into(),
            req: vec![("x-user".into(), "alice".into()), (":path".into(), "/a?b".into())],
            captures: vec![Some("/v1/users".into()), Some("users".into()), None],
        }
    }

    fn render(text: &str) -> String {
        match Template::parse(text, Some(3)) {
            Ok(t) => t.render(&vars()),
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn renders_every_variable() {
        assert_eq!(render("plain"), "plain");
        assert_eq!(render("%DOWNSTREAM_REMOTE_ADDRESS%"), "10.0.0.7:51234");
        assert_eq!(render("ip=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%;"), "ip=10.0.0.7;");
        assert_eq!(render("%REQ(X-User)%|%REQ(x-missing)%|%REQ(:path)%"), "alice||/a?b");
        assert_eq!(render("%REQUEST_ID%@%HOST%"), "rid-1@example.com");
        assert_eq!(render("[%PATH_CAPTURE(1)%][%PATH_CAPTURE(2)%][%PATH_CAPTURE(0)%]"), "[users][][/v1/users]");
        assert_eq!(render("100%% sure %%%HOST%"), "100% sure %example.com");
    }

    #[test]
    fn strips_ports() {
        assert_eq!(without_port("10.0.0.7:80"), "10.0.0.7");
        assert_eq!(without_port("[::1]:8080"), "::1");
        assert_eq!(without_port("unix"), "unix");
        assert_eq!(without_port("::1"), "::1");
        assert_eq!(without_port(""), "");
    }

    #[test]
    fn refuses_bad_templates() {
        let err = |text: &str, groups| Template::parse(text, groups).unwrap_err();
        assert!(err("50%", None).contains("unterminated"));
        assert!(err("%NOPE%", None).contains("unknown variable `%NOPE%`"));
        assert!(err("%REQ(bad name)%", None).contains("not a valid header name"));
        assert!(err("%PATH_CAPTURE(1)%", None).contains("needs a `path.regex`"));
        assert!(err("%PATH_CAPTURE(3)%", Some(3)).contains("only 2 capture group(s)"));
        assert!(err("%PATH_CAPTURE(x)%", Some(3)).contains("group number"));
        assert!(err("a\nb", None).contains("control character"));
    }

    #[test]
    fn lists_its_variables() {
        let t = Template::parse("%HOST%-%REQ(a)%", None).unwrap();
        assert_eq!(t.vars().cloned().collect::<Vec<_>>(), vec![Var::Host, Var::Req("a".into())]);
    }
}
