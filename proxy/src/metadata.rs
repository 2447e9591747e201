//! Route, cluster and node metadata from the configuration, as the values filters read
//! (`xds.route_metadata`, `xds.cluster_metadata`, `xds.node`; see `weir_abi::Metadata`).

use std::collections::BTreeMap;

use weir_abi::{MetaValue, Metadata, Node};

use crate::config::{MetadataConfig, NodeConfig};

/// A YAML value as a protobuf `Value`: numbers are doubles, as in a `Struct`.
fn value(v: &serde_yaml_ng::Value) -> MetaValue {
    match v {
        serde_yaml_ng::Value::Null => MetaValue::Null,
        serde_yaml_ng::Value::Bool(b) => MetaValue::Bool(*b),
        serde_yaml_ng::Value::Number(n) => MetaValue::Number(n.as_f64().unwrap_or(0.0)),
        serde_yaml_ng::Value::String(s) => MetaValue::String(s.clone()),
        serde_yaml_ng::Value::Sequence(items) => MetaValue::List(items.iter().map(value).collect()),
        serde_yaml_ng::Value::Mapping(m) => {
            MetaValue::Struct(m.iter().map(|(k, v)| (crate::config::value_text(k), value(v))).collect())
        }
        serde_yaml_ng::Value::Tagged(t) => value(&t.value),
    }
}

fn fields(m: &BTreeMap<String, serde_yaml_ng::Value>) -> BTreeMap<String, MetaValue> {
    m.iter().map(|(k, v)| (k.clone(), value(v))).collect()
}

/// The metadata of a route or cluster.
pub fn metadata(c: &MetadataConfig) -> Metadata {
    Metadata { filter_metadata: c.filter_metadata.iter().map(|(ns, f)| (ns.clone(), fields(f))).collect() }
}

/// The node.
pub fn node(c: &NodeConfig) -> Node {
    Node { id: c.id.clone(), cluster: c.cluster.clone(), metadata: fields(&c.metadata) }
}
