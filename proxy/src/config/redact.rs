//! `GET /config`: the running configuration with every value a secret could hide in replaced
//! by a fingerprint.

use sha2::{Digest, Sha256};

/// The configuration text as JSON for `/config`. The schema is closed (unknown keys are
/// errors), so every setting weir defines is shown as written, and every free-form value a
/// secret could hide in is replaced by a fingerprint (`"sha256:" + 12 hex digits` of its JSON,
/// enough to tell whether two generations differ): filter and service `config`, `vm_config`,
/// `environment` values, metadata, and the header values routes match on.
pub fn redacted_json(text: &str) -> String {
    use serde_yaml_ng::Value;
    fn fingerprint(v: &mut Value) {
        if v.is_null() {
            return;
        }
        let digest = Sha256::digest(serde_json::to_vec(&*v).unwrap_or_default());
        let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        *v = Value::String(format!("sha256:{hex}"));
    }
    fn each_value(v: Option<&mut Value>, f: fn(&mut Value)) {
        if let Some(Value::Mapping(m)) = v {
            m.iter_mut().for_each(|(_, v)| f(v));
        }
    }
    fn each_item(v: Option<&mut Value>, f: &mut dyn FnMut(&mut Value)) {
        match v {
            Some(Value::Sequence(s)) => s.iter_mut().for_each(f),
            Some(Value::Mapping(m)) => m.iter_mut().for_each(|(_, v)| f(v)),
            _ => {}
        }
    }
    let mut v: Value = serde_yaml_ng::from_str(text).unwrap_or(Value::Null);
    each_item(v.get_mut("routes"), &mut |r| {
        r.get_mut("metadata").map(fingerprint);
        each_value(r.get_mut("match").and_then(|m| m.get_mut("headers")), fingerprint);
        each_item(r.get_mut("filters"), &mut |f| _ = f.get_mut("config").map(fingerprint));
    });
    each_item(v.get_mut("services"), &mut |svc| _ = svc.get_mut("config").map(fingerprint));
    each_item(v.get_mut("plugins"), &mut |p| {
        p.get_mut("vm_config").map(fingerprint);
        each_value(p.get_mut("environment"), fingerprint);
    });
    each_item(v.get_mut("clusters"), &mut |c| _ = c.get_mut("metadata").map(fingerprint));
    v.get_mut("node").and_then(|n| n.get_mut("metadata")).map(fingerprint);
    serde_json::to_string_pretty(&v).unwrap_or_default()
}
