//! Free-form YAML values (filter `config`, `vm_config`) as the bytes a filter receives.

/// A YAML value as the bytes a filter receives: strings raw, anything else as JSON.
pub fn value_bytes(v: &Option<serde_yaml_ng::Value>) -> Vec<u8> {
    match v {
        None | Some(serde_yaml_ng::Value::Null) => Vec::new(),
        Some(serde_yaml_ng::Value::String(s)) => s.clone().into_bytes(),
        Some(other) => serde_json::to_vec(other).unwrap_or_default(),
    }
}

/// A YAML scalar used as a key: a string as is, anything else in its YAML form.
pub fn value_text(v: &serde_yaml_ng::Value) -> String {
    match v {
        serde_yaml_ng::Value::String(s) => s.clone(),
        other => serde_yaml_ng::to_string(other).map(|t| t.trim_end().to_owned()).unwrap_or_default(),
    }
}
