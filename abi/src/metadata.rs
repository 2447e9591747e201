//! Route, cluster and node metadata as filters read it through `proxy_get_property`, encoded as
//! Envoy encodes it (`xds.route_metadata`, `xds.cluster_metadata`, `xds.node`): the whole
//! message as protobuf binary (`envoy.config.core.v3.Metadata`, `Node`), a `Struct` reached by
//! its path as a map in the pairs format, and a value as CEL serializes it: a string raw, a
//! number as an 8-byte little-endian double, a boolean as one byte, a list as pairs whose keys
//! are the elements; a null value cannot be serialized (SERIALIZATION_FAILURE).
//!
//! The protobuf encoding is written here: five small messages of known shape
//! (Metadata, Struct, Value, ListValue, Node), where a code generator would bring a build step.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::headers::HeaderMap;
use crate::types::Status;

/// A `google.protobuf.Value`.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// `null_value`.
    Null,
    /// `number_value`.
    Number(f64),
    /// `string_value`.
    String(String),
    /// `bool_value`.
    Bool(bool),
    /// `struct_value`: fields by name.
    Struct(BTreeMap<String, MetaValue>),
    /// `list_value`.
    List(Vec<MetaValue>),
}

/// `envoy.config.core.v3.Metadata`: `filter_metadata`, a `Struct` per namespace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    /// Namespace → fields.
    pub filter_metadata: BTreeMap<String, BTreeMap<String, MetaValue>>,
}

/// `envoy.config.core.v3.Node`: what `xds.node` describes.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// `id`.
    pub id: String,
    /// `cluster`.
    pub cluster: String,
    /// `metadata`, a `Struct`.
    pub metadata: BTreeMap<String, MetaValue>,
}

impl Default for Node {
    fn default() -> Self {
        Self { id: "weir".into(), cluster: String::new(), metadata: BTreeMap::new() }
    }
}

impl Metadata {
    /// The property at `rest` below this metadata (`[]` is the whole message).
    pub(crate) fn property(&self, rest: &[&[u8]]) -> Result<Bytes, Status> {
        match rest {
            [] => Ok(self.encode().into()),
            [b"filter_metadata"] => {
                let pairs = self.filter_metadata.iter().map(|(k, v)| Ok((k.clone(), struct_pairs(v)?)));
                pairs_of(pairs)
            }
            [b"filter_metadata", ns, path @ ..] => {
                let fields = self.filter_metadata.get(utf8(ns)?).ok_or(Status::NotFound)?;
                struct_property(fields, path)
            }
            _ => Err(Status::NotFound),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ns, fields) in &self.filter_metadata {
            let mut entry = Vec::new();
            bytes_field(&mut entry, 1, ns.as_bytes());
            bytes_field(&mut entry, 2, &encode_struct(fields));
            bytes_field(&mut out, 1, &entry);
        }
        out
    }
}

impl Node {
    /// The property at `rest` below the node (`[]` is the whole message).
    pub(crate) fn property(&self, rest: &[&[u8]]) -> Result<Bytes, Status> {
        match rest {
            [] => {
                let mut out = Vec::new();
                bytes_field(&mut out, 1, self.id.as_bytes());
                if !self.cluster.is_empty() {
                    bytes_field(&mut out, 2, self.cluster.as_bytes());
                }
                if !self.metadata.is_empty() {
                    bytes_field(&mut out, 3, &encode_struct(&self.metadata));
                }
                Ok(out.into())
            }
            [b"id"] => Ok(Bytes::copy_from_slice(self.id.as_bytes())),
            [b"cluster"] => Ok(Bytes::copy_from_slice(self.cluster.as_bytes())),
            [b"metadata", path @ ..] => struct_property(&self.metadata, path),
            _ => Err(Status::NotFound),
        }
    }
}

fn utf8(b: &[u8]) -> Result<&str, Status> {
    std::str::from_utf8(b).map_err(|_| Status::NotFound)
}

/// The value at `path` inside a `Struct` (`[]`: the struct itself, as a map).
fn struct_property(fields: &BTreeMap<String, MetaValue>, path: &[&[u8]]) -> Result<Bytes, Status> {
    let Some((first, rest)) = path.split_first() else { return struct_pairs(fields) };
    let mut value = fields.get(utf8(first)?).ok_or(Status::NotFound)?;
    for seg in rest {
        value = match value {
            MetaValue::Struct(f) => f.get(utf8(seg)?).ok_or(Status::NotFound)?,
            MetaValue::List(items) => {
                utf8(seg)?.parse::<usize>().ok().and_then(|i| items.get(i)).ok_or(Status::NotFound)?
            }
            _ => return Err(Status::NotFound),
        };
    }
    serialize(value)
}

/// A value as Envoy's `serializeValue` writes the CEL value it becomes.
fn serialize(value: &MetaValue) -> Result<Bytes, Status> {
    match value {
        MetaValue::Null => Err(Status::SerializationFailure),
        MetaValue::Number(n) => Ok(Bytes::copy_from_slice(&n.to_le_bytes())),
        MetaValue::String(s) => Ok(Bytes::copy_from_slice(s.as_bytes())),
        MetaValue::Bool(b) => Ok(Bytes::copy_from_slice(&[*b as u8])),
        MetaValue::Struct(fields) => struct_pairs(fields),
        MetaValue::List(items) => pairs_of(items.iter().map(|v| Ok((serialize(v)?, Bytes::new())))),
    }
}

fn struct_pairs(fields: &BTreeMap<String, MetaValue>) -> Result<Bytes, Status> {
    pairs_of(fields.iter().map(|(k, v)| Ok((k.clone(), serialize(v)?))))
}

fn pairs_of<K: AsRef<[u8]>>(pairs: impl Iterator<Item = Result<(K, Bytes), Status>>) -> Result<Bytes, Status> {
    let pairs = pairs.collect::<Result<Vec<_>, _>>()?;
    Ok(HeaderMap::from_pairs(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))).encode().into())
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field (wire type 2).
fn bytes_field(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    varint(out, u64::from(field << 3 | 2));
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// `google.protobuf.Struct`: `fields` (1) as map entries of key (1) and Value (2).
fn encode_struct(fields: &BTreeMap<String, MetaValue>) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in fields {
        let mut entry = Vec::new();
        bytes_field(&mut entry, 1, k.as_bytes());
        bytes_field(&mut entry, 2, &encode_value(v));
        bytes_field(&mut out, 1, &entry);
    }
    out
}

/// `google.protobuf.Value`: null (1, enum), number (2, double), string (3), bool (4),
/// struct (5), list (6: `ListValue` with `values` (1)).
fn encode_value(v: &MetaValue) -> Vec<u8> {
    let mut out = Vec::new();
    match v {
        MetaValue::Null => out.extend_from_slice(&[1 << 3, 0]),
        MetaValue::Number(n) => {
            out.push(2 << 3 | 1);
            out.extend_from_slice(&n.to_le_bytes());
        }
        MetaValue::String(s) => bytes_field(&mut out, 3, s.as_bytes()),
        MetaValue::Bool(b) => out.extend_from_slice(&[4 << 3, *b as u8]),
        MetaValue::Struct(fields) => bytes_field(&mut out, 5, &encode_struct(fields)),
        MetaValue::List(items) => {
            let mut list = Vec::new();
            for item in items {
                bytes_field(&mut list, 1, &encode_value(item));
            }
            bytes_field(&mut out, 6, &list);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, MetaValue)]) -> BTreeMap<String, MetaValue> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    #[test]
    fn the_default_node_is_protobuf_with_the_id() {
        assert_eq!(Node::default().property(&[]).unwrap().as_ref(), b"\x0a\x04weir");
    }

    #[test]
    fn values_are_encoded_as_cel_serializes_them() {
        let ns = fields(&[
            ("s", MetaValue::String("v".into())),
            ("n", MetaValue::Number(1.5)),
            ("b", MetaValue::Bool(true)),
            ("z", MetaValue::Null),
        ]);
        let m = Metadata { filter_metadata: [("ns".to_owned(), ns)].into_iter().collect() };
        let at = |path: &[&[u8]]| m.property(path);
        assert_eq!(at(&[b"filter_metadata", b"ns", b"s"]).unwrap().as_ref(), b"v");
        assert_eq!(at(&[b"filter_metadata", b"ns", b"n"]).unwrap().as_ref(), 1.5f64.to_le_bytes());
        assert_eq!(at(&[b"filter_metadata", b"ns", b"b"]).unwrap().as_ref(), [1]);
        assert_eq!(at(&[b"filter_metadata", b"ns", b"z"]), Err(Status::SerializationFailure));
        assert_eq!(at(&[b"filter_metadata", b"ns", b"missing"]), Err(Status::NotFound));
        // Metadata { filter_metadata: { "ns": Struct { "s": "v" } } } as protobuf.
        let one = Metadata {
            filter_metadata: [("ns".to_owned(), fields(&[("s", MetaValue::String("v".into()))]))].into_iter().collect(),
        };
        assert_eq!(
            one.property(&[]).unwrap().as_ref(),
            b"\x0a\x10\x0a\x02ns\x12\x0a\x0a\x08\x0a\x01s\x12\x03\x1a\x01v".as_slice()
        );
    }
}
