//! Header (and trailer) edits of one map, applied in a fixed order: remove, set, append, add.

use crate::template::{Template, Vars};

/// The map being edited: request or response headers or trailers on the host, a `Vec` in tests.
pub trait HeaderMap {
    fn get(&self, name: &str) -> Option<String>;
    /// Replaces every value of `name` with `value`, adding it when absent.
    fn set(&mut self, name: &str, value: &str);
    /// Adds one more value of `name`.
    fn add(&mut self, name: &str, value: &str);
    fn remove(&mut self, name: &str);
}

/// A header and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub value: Template,
}

/// A value appended to an existing header with a separator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendEntry {
    pub name: String,
    pub value: Template,
    pub separator: String,
}

/// The edits of one map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub remove: Vec<String>,
    pub set: Vec<Entry>,
    pub append: Vec<AppendEntry>,
    pub add: Vec<Entry>,
}

impl Rules {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.append.is_empty() && self.add.is_empty()
    }

    /// Whether applying the rules to an empty map would create entries.
    pub fn creates(&self) -> bool {
        !(self.set.is_empty() && self.append.is_empty() && self.add.is_empty())
    }

    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        let set = self.set.iter().map(|e| &e.value);
        let add = self.add.iter().map(|e| &e.value);
        set.chain(self.append.iter().map(|e| &e.value)).chain(add)
    }

    /// Applies the rules. Values that render empty are skipped (Envoy's `keep_empty_value:
    /// false`); values that would carry CR, LF or NUL (from a variable) are skipped and their
    /// header names returned, for the caller to log.
    pub fn apply(&self, vars: &Vars, map: &mut impl HeaderMap) -> Vec<String> {
        self.run(vars, map, true)
    }

    /// [`Self::apply`] to a map that does not exist yet (trailers created at the end of a body):
    /// there is nothing to remove, and touching the map would create it empty.
    pub fn apply_to_new(&self, vars: &Vars, map: &mut impl HeaderMap) -> Vec<String> {
        self.run(vars, map, false)
    }

    fn run(&self, vars: &Vars, map: &mut impl HeaderMap, remove: bool) -> Vec<String> {
        let mut refused = Vec::new();
        let mut render = |name: &str, template: &Template| {
            let value = template.render(vars);
            if value.contains(['\r', '\n', '\0']) {
                refused.push(name.to_string());
                return None;
            }
            Some(value).filter(|v| !v.is_empty())
        };
        for name in self.remove.iter().filter(|_| remove) {
            map.remove(name);
        }
        for e in &self.set {
            if let Some(value) = render(&e.name, &e.value) {
                map.set(&e.name, &value);
            }
        }
        for e in &self.append {
            if let Some(value) = render(&e.name, &e.value) {
                match map.get(&e.name).filter(|v| !v.is_empty()) {
                    Some(old) => map.set(&e.name, &format!("{old}{}{value}", e.separator)),
                    None => map.add(&e.name, &value),
                }
            }
        }
        for e in &self.add {
            if let Some(value) = render(&e.name, &e.value) {
                map.add(&e.name, &value);
            }
        }
        refused
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A header map as a host keeps it: ordered, duplicates allowed.
    #[derive(Debug, Default, PartialEq, Eq)]
    pub(crate) struct Map(pub Vec<(String, String)>);

    impl HeaderMap for Map {
        fn get(&self, name: &str) -> Option<String> {
            self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
        }
        fn set(&mut self, name: &str, value: &str) {
            self.remove(name);
            self.add(name, value);
        }
        fn add(&mut self, name: &str, value: &str) {
            self.0.push((name.into(), value.into()));
        }
        fn remove(&mut self, name: &str) {
            self.0.retain(|(n, _)| n != name);
        }
    }

    impl Map {
        pub(crate) fn of(pairs: &[(&str, &str)]) -> Self {
            Self(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect())
        }
    }

    fn entry(name: &str, value: &str) -> Entry {
        Entry { name: name.into(), value: Template::parse(value, None).unwrap() }
    }

    #[test]
    fn applies_remove_set_append_add_in_order() {
        let rules = Rules {
            remove: vec!["x-internal".into(), "x-b".into()],
            set: vec![entry("x-b", "set"), entry("x-s", "one")],
            append: vec![
                AppendEntry { name: "x-b".into(), value: Template::parse("app", None).unwrap(), separator: ",".into() },
                AppendEntry {
                    name: "x-new".into(),
                    value: Template::parse("n", None).unwrap(),
                    separator: "; ".into(),
                },
            ],
            add: vec![entry("x-s", "two"), entry("x-a", "%HOST%")],
        };
        let mut map = Map::of(&[("x-internal", "1"), ("x-b", "old"), ("x-s", "a"), ("x-s", "b"), ("keep", "k")]);
        let vars = Vars { host: "h".into(), ..Vars::default() };
        assert!(rules.apply(&vars, &mut map).is_empty());
        assert_eq!(
            map,
            Map::of(&[("keep", "k"), ("x-s", "one"), ("x-b", "set,app"), ("x-new", "n"), ("x-s", "two"), ("x-a", "h")])
        );
    }

    #[test]
    fn a_new_map_is_only_added_to() {
        let rules = Rules { remove: vec!["x".into()], add: vec![entry("x", "1")], ..Rules::default() };
        let mut map = Map::of(&[("x", "0")]);
        rules.apply_to_new(&Vars::default(), &mut map);
        assert_eq!(map, Map::of(&[("x", "0"), ("x", "1")]));
        assert!(rules.creates());
        assert!(!Rules { remove: vec!["x".into()], ..Rules::default() }.creates());
    }

    #[test]
    fn skips_empty_values_and_refuses_line_breaks() {
        let rules =
            Rules { set: vec![entry("x-user", "%REQ(x-user)%"), entry("x-evil", "%REQ(x-evil)%")], ..Rules::default() };
        let vars = Vars { req: vec![("x-evil".into(), "a\r\nb".into())], ..Vars::default() };
        let mut map = Map::of(&[("x-user", "spoofed")]);
        assert_eq!(rules.apply(&vars, &mut map), vec!["x-evil".to_string()]);
        assert_eq!(map, Map::of(&[("x-user", "spoofed")]));
    }
}
