//! Where each field of a configuration file is, from the YAML parser's own marks.
//!
//! serde deserializes the configuration without positions, and most errors are found after that
//! (references between sections, values in range, modules that do not load). This index maps
//! each field path (`routes[1].cluster`, the form errors name) to the line and column the parser
//! saw it at, so every error points at its own place even when the same `key: value` text appears
//! on several lines. Built on `saphyr-parser`'s event stream: a maintained YAML 1.2 parser whose
//! events carry their marks (serde_yaml_ng keeps positions only for its own errors).

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScanError};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl From<Marker> for Position {
    fn from(m: Marker) -> Self {
        Position { line: m.line(), column: m.col() + 1 }
    }
}

/// Why a text has no index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexError {
    /// Not YAML.
    Syntax { at: Position, message: String },
    /// A mapping gives `key` twice: a map type would silently keep the last.
    DuplicateKey { path: String, key: String, first: Position, second: Position },
}

impl From<ScanError> for IndexError {
    fn from(e: ScanError) -> Self {
        IndexError::Syntax { at: (*e.marker()).into(), message: e.info().to_owned() }
    }
}

/// Field path → position of the key (for a mapping entry) or the item (for a sequence entry).
#[derive(Debug, Clone, Default)]
pub struct Positions(HashMap<String, Position>);

impl Positions {
    /// Indexes the first document of `text`.
    ///
    /// # Errors
    ///
    /// Text that is not YAML, or a mapping that gives a key twice.
    pub fn index(text: &str) -> Result<Positions, IndexError> {
        let mut walk = Walk::default();
        for event in Parser::new_from_str(text) {
            let (event, span) = event?;
            let at = Position::from(span.start);
            match event {
                Event::Scalar(value, ..) => walk.scalar(&value, at)?,
                Event::Alias(_) => walk.scalar("*alias", at)?,
                Event::MappingStart(..) => walk.open(true, at),
                Event::SequenceStart(..) => walk.open(false, at),
                Event::MappingEnd | Event::SequenceEnd => walk.close(),
                Event::DocumentEnd => break,
                _ => {}
            }
        }
        Ok(Positions(walk.positions))
    }

    /// Where `field` is, or its nearest enclosing field that the file gives (a defaulted key
    /// points at its section). Text after the path (`routes[0].filters[0] (plugin `p`)`) is
    /// ignored.
    pub fn find(&self, field: &str) -> Option<Position> {
        let mut path = field.split(' ').next().unwrap_or_default();
        loop {
            if let Some(p) = self.0.get(path) {
                return Some(*p);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

/// One open mapping or sequence.
struct Frame {
    /// Its field path; `None` inside a complex (non-scalar) mapping key, which has no path.
    path: Option<String>,
    kind: FrameKind,
}

enum FrameKind {
    Mapping { keys: HashMap<String, Position>, pending: Option<(String, Position)> },
    Sequence { next: usize },
}

#[derive(Default)]
struct Walk {
    stack: Vec<Frame>,
    positions: HashMap<String, Position>,
}

/// What a node starting now is to its parent.
enum Role {
    /// A mapping key.
    Key,
    /// A value at this path (`None`: not addressable) and the position to record for it.
    Value(Option<String>, Position),
}

impl Walk {
    fn role(&mut self, at: Position) -> Role {
        let Some(frame) = self.stack.last_mut() else { return Role::Value(Some(String::new()), at) };
        let parent = frame.path.as_deref();
        match &mut frame.kind {
            FrameKind::Mapping { pending: None, .. } => Role::Key,
            FrameKind::Mapping { pending, .. } => {
                let (key, key_at) = pending.take().unwrap_or_default();
                Role::Value(parent.map(|p| if p.is_empty() { key } else { format!("{p}.{key}") }), key_at)
            }
            FrameKind::Sequence { next } => {
                *next += 1;
                Role::Value(parent.map(|p| format!("{p}[{}]", *next - 1)), at)
            }
        }
    }

    fn record(&mut self, path: Option<&String>, at: Position) {
        if let Some(path) = path.filter(|p| !p.is_empty()) {
            self.positions.entry(path.clone()).or_insert(at);
        }
    }

    fn scalar(&mut self, value: &str, at: Position) -> Result<(), IndexError> {
        match self.role(at) {
            Role::Key => self.key(value.to_owned(), at),
            Role::Value(path, at) => {
                self.record(path.as_ref(), at);
                Ok(())
            }
        }
    }

    fn key(&mut self, key: String, at: Position) -> Result<(), IndexError> {
        let Some(Frame { path, kind: FrameKind::Mapping { keys, pending } }) = self.stack.last_mut() else {
            return Ok(());
        };
        if let Some(first) = keys.insert(key.clone(), at) {
            return Err(IndexError::DuplicateKey { path: path.clone().unwrap_or_default(), key, first, second: at });
        }
        *pending = Some((key, at));
        Ok(())
    }

    fn open(&mut self, mapping: bool, at: Position) {
        let path = match self.role(at) {
            // A complex key: its contents have no field path; the mapping takes it as key `?`.
            Role::Key => {
                if let Some(Frame { kind: FrameKind::Mapping { pending, .. }, .. }) = self.stack.last_mut() {
                    *pending = Some(("?".to_owned(), at));
                }
                None
            }
            Role::Value(path, at) => {
                self.record(path.as_ref(), at);
                path
            }
        };
        let kind = if mapping {
            FrameKind::Mapping { keys: HashMap::new(), pending: None }
        } else {
            FrameKind::Sequence { next: 0 }
        };
        self.stack.push(Frame { path, kind });
    }

    fn close(&mut self) {
        self.stack.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, column: usize) -> Option<Position> {
        Some(Position { line, column })
    }

    #[test]
    fn each_field_is_found_at_its_own_line_when_the_text_repeats() {
        let text = "routes:\n  - cluster: o\n    name: a\n  - cluster: o\n    name: a\n  - { cluster: o, name: b }\n";
        let p = Positions::index(text).unwrap();
        assert_eq!(p.find("routes"), at(1, 1));
        assert_eq!(p.find("routes[0].cluster"), at(2, 5));
        assert_eq!(p.find("routes[1].cluster"), at(4, 5));
        assert_eq!(p.find("routes[1].name"), at(5, 5));
        assert_eq!(p.find("routes[2]"), at(6, 5));
        assert_eq!(p.find("routes[2].name"), at(6, 19));
    }

    #[test]
    fn a_field_the_file_leaves_out_points_at_its_section() {
        let p = Positions::index("clusters:\n  o:\n    endpoints: [a]\n").unwrap();
        assert_eq!(p.find("clusters.o.read_timeout"), at(2, 3));
        assert_eq!(p.find("routes[0] (plugin `x`)"), None);
        assert_eq!(p.find("clusters.o.endpoints[0] (why)"), at(3, 17));
    }

    #[test]
    fn a_key_given_twice_names_both_places() {
        let e = Positions::index("clusters:\n  o: {}\n  p: {}\n  o: {}\n").unwrap_err();
        assert_eq!(
            e,
            IndexError::DuplicateKey {
                path: "clusters".into(),
                key: "o".into(),
                first: Position { line: 2, column: 3 },
                second: Position { line: 4, column: 3 },
            }
        );
        // The same key in two mappings is not a repeat.
        assert!(Positions::index("a: { x: 1 }\nb: { x: 1 }\n").is_ok());
    }

    #[test]
    fn complex_keys_and_aliases_do_not_confuse_the_paths() {
        let p = Positions::index("base: &b { x: 1 }\n? [k]\n: v\nnext: *b\nlast: 1\n").unwrap();
        assert_eq!(p.find("next"), at(4, 1));
        assert_eq!(p.find("last"), at(5, 1));
        assert!(matches!(Positions::index("a: [\n"), Err(IndexError::Syntax { .. })));
    }
}
