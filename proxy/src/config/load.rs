//! Reading and parsing a configuration file, and the errors that name file, line and field.

use std::fmt;
use std::path::{Path, PathBuf};

use super::schema::Config;
use super::validate::validate;

/// A configuration error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `<embedded>`).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The field path, e.g. `routes[0].cluster`.
    pub field: String,
    /// What is wrong and, where possible, what to do.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}: {}", self.file, self.field, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.field, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A loaded configuration with where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The parsed configuration.
    pub config: Config,
    /// The file it was read from (`None` for the embedded quick-start config).
    pub path: Option<PathBuf>,
    /// The text, for locating fields in errors found later.
    pub text: String,
}

impl Loaded {
    /// The directory relative paths are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        self.path.as_ref().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_else(|| PathBuf::from("."))
    }

    /// The file name for messages.
    pub fn file_name(&self) -> String {
        self.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "<embedded config>".into())
    }

    /// An error at `field`, located by searching for `key: value` in the text.
    pub fn error(&self, field: impl Into<String>, key: &str, value: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file_name(),
            line: locate(&self.text, key, value),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Reads and parses `path`.
///
/// # Errors
///
/// [`ConfigError`] for an unreadable file, YAML errors, unknown keys, and invalid references.
pub fn load(path: &Path) -> Result<Loaded, Vec<ConfigError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            file: path.display().to_string(),
            line: None,
            field: "-".into(),
            message: format!("cannot read: {e}"),
        }]
    })?;
    parse(text, Some(path.to_path_buf()))
}

/// Parses configuration text; `path` names it in errors.
///
/// # Errors
///
/// As [`load`].
pub fn parse(text: String, path: Option<PathBuf>) -> Result<Loaded, Vec<ConfigError>> {
    let file = path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "<embedded config>".into());
    // Into a YAML value first: it refuses a key given twice in one mapping, which a map type
    // would silently take the last of.
    serde_yaml::from_str::<serde_yaml::Value>(&text)
        .map_err(|e| vec![duplicate_aware(&text, yaml_error(&file, &e))])?;
    let config: Config = serde_yaml::from_str(&text).map_err(|e| vec![yaml_error(&file, &e)])?;
    let loaded = Loaded { config, path, text };
    let errors = validate(&loaded);
    if errors.is_empty() { Ok(loaded) } else { Err(errors) }
}

fn yaml_error(file: &str, e: &serde_yaml::Error) -> ConfigError {
    let text = e.to_string();
    // serde_yaml puts the field path first ("routes[0]: unknown field ...") and the location last.
    let (field, rest) = match text.split_once(": ") {
        Some((f, r)) if !f.contains(' ') => (f.to_owned(), r.to_owned()),
        _ => ("-".to_owned(), text.clone()),
    };
    let message = rest.split(" at line ").next().unwrap_or(&rest).to_owned();
    ConfigError { file: file.to_owned(), line: e.location().map(|l| l.line()), field, message }
}

/// A duplicate-key error names the lines of both appearances. The parser reports where the
/// mapping starts; the key's lines are those that start with it at the mapping's indentation.
fn duplicate_aware(text: &str, mut e: ConfigError) -> ConfigError {
    let Some(key) = e.message.strip_prefix("duplicate entry with key ").map(|k| k.trim_matches('"').to_owned()) else {
        return e;
    };
    let Some(start) = e.line else { return e };
    let indent = |l: &str| l.len() - l.trim_start().len();
    let lines: Vec<&str> = text.lines().collect();
    let Some(depth) = lines.get(start - 1).map(|l| indent(l)) else { return e };
    let is_key = |l: &str| {
        let t = l.trim_start();
        [format!("{key}:"), format!("\"{key}\":"), format!("'{key}':")].iter().any(|k| t.starts_with(k.as_str()))
    };
    let found: Vec<usize> = lines[start - 1..]
        .iter()
        .enumerate()
        .take_while(|(i, l)| *i == 0 || l.trim().is_empty() || l.trim_start().starts_with('#') || indent(l) >= depth)
        .filter(|(_, l)| indent(l) == depth && is_key(l))
        .map(|(i, _)| start + i)
        .take(2)
        .collect();
    e.message = match found[..] {
        [first, second] => {
            e.line = Some(second);
            format!("`{key}` is given twice (first at line {first}); each key may appear once")
        }
        _ => format!("`{key}` is given twice in one mapping; each key may appear once"),
    };
    e
}

/// The 1-based line of the first `key: value` (block or flow style), or of `value` alone when
/// `key` is empty, or of `key:` when `value` is empty.
fn locate(text: &str, key: &str, value: &str) -> Option<usize> {
    let pairs = [format!("{key}: {value}"), format!("{key}: \"{value}\""), format!("{key}: '{value}'")];
    let hit = |line: &str| -> bool {
        if key.is_empty() {
            return line.contains(value);
        }
        if value.is_empty() {
            return line.contains(&format!("{key}:"));
        }
        pairs.iter().any(|p| {
            line.match_indices(p.as_str()).any(|(i, _)| {
                let before = line[..i].chars().next_back();
                let after = line[i + p.len()..].chars().next();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
                    && !after.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
            })
        })
    };
    text.lines().position(hit).map(|i| i + 1)
}
