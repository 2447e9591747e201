//! Reading and parsing a configuration file, and the errors that name file, line and field.

use std::fmt;
use std::path::{Path, PathBuf};

use super::positions::{IndexError, Positions};
use super::schema::Config;
use super::validate::validate;

/// A configuration error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `<embedded>`).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The field path, e.g. `routes[0].cluster`.
    pub field: String,
    /// What is wrong and, where possible, what to do.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `file:line:column:` as compilers write it, so editors jump to the place.
        write!(f, "{}:", self.file)?;
        if let Some(line) = self.line {
            write!(f, "{line}:")?;
            if let Some(column) = self.column {
                write!(f, "{column}:")?;
            }
        }
        write!(f, " {}: {}", self.field, self.message)
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
    /// The text, for `GET /config`.
    pub text: String,
    /// Where each field is, for errors found after parsing.
    positions: Positions,
}

impl Loaded {
    /// The directory relative paths are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        self.path.as_ref().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_else(|| PathBuf::from("."))
    }

    /// The file name for messages.
    pub fn file_name(&self) -> String {
        file_name(self.path.as_deref())
    }

    /// An error at `field` (a path such as `routes[0].cluster`), at the place the parser saw it
    /// (or its nearest enclosing field the file gives).
    pub fn error(&self, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        let field = field.into();
        let at = self.positions.find(&field);
        ConfigError {
            file: self.file_name(),
            line: at.map(|p| p.line),
            column: at.map(|p| p.column),
            field,
            message: message.into(),
        }
    }
}

fn file_name(path: Option<&Path>) -> String {
    path.map(|p| p.display().to_string()).unwrap_or_else(|| "<embedded config>".into())
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
            column: None,
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
    let file = file_name(path.as_deref());
    // The index first: it also refuses a key given twice in one mapping, which a map type
    // would silently take the last of.
    let positions = Positions::index(&text).map_err(|e| vec![index_error(&file, e)])?;
    let config: Config = serde_yaml_ng::from_str(&text).map_err(|e| vec![yaml_error(&file, &e)])?;
    let loaded = Loaded { config, path, text, positions };
    let errors = validate(&loaded);
    if errors.is_empty() { Ok(loaded) } else { Err(errors) }
}

fn yaml_error(file: &str, e: &serde_yaml_ng::Error) -> ConfigError {
    let text = e.to_string();
    // serde_yaml_ng puts the field path first ("routes[0]: unknown field ...") and the location last.
    let (field, rest) = match text.split_once(": ") {
        Some((f, r)) if !f.contains(' ') => (f.to_owned(), r.to_owned()),
        _ => ("-".to_owned(), text.clone()),
    };
    let message = rest.split(" at line ").next().unwrap_or(&rest).to_owned();
    let at = e.location();
    ConfigError {
        file: file.to_owned(),
        line: at.as_ref().map(|l| l.line()),
        column: at.as_ref().map(|l| l.column()),
        field,
        message,
    }
}

fn index_error(file: &str, e: IndexError) -> ConfigError {
    let (field, at, message) = match e {
        IndexError::Syntax { at, message } => ("-".to_owned(), at, format!("not valid YAML: {message}")),
        IndexError::DuplicateKey { path, key, first, second } => (
            if path.is_empty() { key.clone() } else { format!("{path}.{key}") },
            second,
            format!("`{key}` is given twice (first at line {}); each key may appear once", first.line),
        ),
    };
    ConfigError { file: file.to_owned(), line: Some(at.line), column: Some(at.column), field, message }
}
