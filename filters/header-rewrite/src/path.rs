//! Rewrites of the path part of `:path` (Envoy's route `prefix_rewrite` and `regex_rewrite`).

use regex::Regex;

/// One piece of a regex substitution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Literal(String),
    Group(usize),
}

#[derive(Debug, Clone)]
pub enum PathRewrite {
    /// Replaces a leading `from` with `to`.
    Prefix { from: String, to: String },
    /// Replaces every match of `pattern` with `substitution` (`\N` names group N).
    Regex { pattern: Regex, substitution: Vec<Piece> },
}

/// The outcome of a rewrite.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewritten {
    /// The new path, when it changed.
    pub path: Option<String>,
    /// Groups of the first regex match, for `%PATH_CAPTURE(n)%`.
    pub captures: Vec<Option<String>>,
}

/// Characters a path written in the config may not contain: the query and fragment are not
/// part of the path, and the rest would make an invalid request line.
fn check_path_text(text: &str) -> Result<(), String> {
    match text.chars().find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#')) {
        Some(c) => Err(format!("character {c:?} is not allowed in a path")),
        None => Ok(()),
    }
}

impl PathRewrite {
    pub fn prefix(from: &str, to: &str) -> Result<Self, String> {
        if !from.starts_with('/') {
            return Err("`from` must start with `/`".into());
        }
        check_path_text(from).map_err(|e| format!("`from`: {e}"))?;
        check_path_text(to).map_err(|e| format!("`to`: {e}"))?;
        Ok(Self::Prefix { from: from.into(), to: to.into() })
    }

    pub fn regex(pattern: &str, substitution: &str) -> Result<Self, String> {
        let regex = regex::RegexBuilder::new(pattern)
            // Bounds the compiled program (the default allows 10 MiB per config).
            .size_limit(1 << 20)
            .build()
            .map_err(|e| format!("`pattern` is not a valid regular expression: {e}"))?;
        let substitution =
            parse_substitution(substitution, regex.captures_len()).map_err(|e| format!("`substitution`: {e}"))?;
        Ok(Self::Regex { pattern: regex, substitution })
    }

    /// Number of groups `%PATH_CAPTURE(n)%` may name (including group 0); `None` for a prefix.
    pub fn groups(&self) -> Option<usize> {
        match self {
            Self::Prefix { .. } => None,
            Self::Regex { pattern, .. } => Some(pattern.captures_len()),
        }
    }

    /// Rewrites `path` (without its query). Paths not starting with `/` (`*`) are left alone.
    pub fn apply(&self, path: &str) -> Rewritten {
        if !path.starts_with('/') {
            return Rewritten::default();
        }
        let (new, captures) = match self {
            Self::Prefix { from, to } => match path.strip_prefix(from.as_str()) {
                Some(rest) => (Some(format!("{to}{rest}")), Vec::new()),
                None => (None, Vec::new()),
            },
            Self::Regex { pattern, substitution } => replace_all(pattern, substitution, path),
        };
        let path = new.map(|p| if p.starts_with('/') { p } else { format!("/{p}") });
        Rewritten { path, captures }
    }
}

/// Envoy's (RE2's) substitution syntax: `\0`..`\9` name groups, `\\` is a backslash.
fn parse_substitution(text: &str, groups: usize) -> Result<Vec<Piece>, String> {
    check_path_text(text)?;
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            literal.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => literal.push('\\'),
            Some(d) if d.is_ascii_digit() => {
                let n = usize::from(d as u8 - b'0');
                if n >= groups {
                    return Err(format!("`\\{n}` names a group the pattern does not have"));
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Group(n));
            }
            _ => return Err("`\\` must be followed by a group digit (`\\1`) or another `\\`".into()),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

/// Replaces every match (RE2 `GlobalReplace`, as Envoy does) and keeps the first match's groups.
fn replace_all(pattern: &Regex, substitution: &[Piece], path: &str) -> (Option<String>, Vec<Option<String>>) {
    let mut out = String::new();
    let mut last = 0;
    let mut first: Option<Vec<Option<String>>> = None;
    for caps in pattern.captures_iter(path) {
        let Some(whole) = caps.get(0) else { continue };
        out.push_str(path.get(last..whole.start()).unwrap_or_default());
        for piece in substitution {
            match piece {
                Piece::Literal(s) => out.push_str(s),
                Piece::Group(n) => out.push_str(caps.get(*n).map_or("", |m| m.as_str())),
            }
        }
        last = whole.end();
        first.get_or_insert_with(|| caps.iter().map(|m| m.map(|m| m.as_str().to_string())).collect());
    }
    match first {
        None => (None, Vec::new()),
        Some(captures) => {
            out.push_str(path.get(last..).unwrap_or_default());
            (Some(out), captures)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_path(rewrite: &PathRewrite, path: &str) -> Option<String> {
        rewrite.apply(path).path
    }

    #[test]
    fn prefix_rewrites() {
        let r = PathRewrite::prefix("/api/", "/").unwrap();
        assert_eq!(new_path(&r, "/api/users").as_deref(), Some("/users"));
        assert_eq!(new_path(&r, "/apix"), None);
        let r = PathRewrite::prefix("/api", "").unwrap();
        assert_eq!(new_path(&r, "/api").as_deref(), Some("/"));
        assert_eq!(new_path(&r, "/api/v1").as_deref(), Some("/v1"));
        assert_eq!(new_path(&r, "*"), None);
    }

    #[test]
    fn regex_rewrites_and_captures() {
        let r = PathRewrite::regex("^/v1/([^/]+)/(.*)$", "/\\2/\\1").unwrap();
        let out = r.apply("/v1/users/42");
        assert_eq!(out.path.as_deref(), Some("/42/users"));
        assert_eq!(
            out.captures,
            vec![Some("/v1/users/42".to_string()), Some("users".to_string()), Some("42".to_string())]
        );
        assert_eq!(r.groups(), Some(3));
        assert_eq!(r.apply("/v2/x"), Rewritten::default());
    }

    #[test]
    fn regex_replaces_every_match() {
        let r = PathRewrite::regex("/+", "/").unwrap();
        assert_eq!(new_path(&r, "//a///b").as_deref(), Some("/a/b"));
        let r = PathRewrite::regex("\\.json$", "").unwrap();
        assert_eq!(new_path(&r, "/x.json").as_deref(), Some("/x"));
        let r = PathRewrite::regex("^/old", "new\\\\").unwrap();
        assert_eq!(new_path(&r, "/old/a").as_deref(), Some("/new\\/a"));
    }

    #[test]
    fn refuses_bad_rewrites() {
        assert!(PathRewrite::prefix("api", "/").unwrap_err().contains("start with `/`"));
        assert!(PathRewrite::prefix("/a", "/b?x=1").unwrap_err().contains("'?'"));
        assert!(PathRewrite::regex("(", "/").unwrap_err().contains("not a valid regular expression"));
        assert!(PathRewrite::regex("^/(a)", "/\\2").unwrap_err().contains("`\\2`"));
        assert!(PathRewrite::regex("^/(a)", "/\\x").unwrap_err().contains("group digit"));
        assert!(PathRewrite::regex("^/(a)", "/a b").unwrap_err().contains("' '"));
    }
}
