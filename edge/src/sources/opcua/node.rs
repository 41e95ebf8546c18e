//! Nodes as written in a node map ([`NodeSpec`]: a node id — [`NodeRef`]: `ns=`, bare
//! `i=`/`s=`, or `nsu=` with a namespace URI resolved against the server's namespace array on
//! connect — or a [`BrowsePath`] resolved with TranslateBrowsePathsToNodeIds on connect), and
//! the turning of read results ([`DataValue`]s in node-map order) into a [`Snapshot`] — the
//! same the Modbus decoder makes, so shot assembly is shared.

use super::browse_path::{BrowsePath, PathError};
use super::config::NodeProfile;
use crate::shot::{RangeIssue, Snapshot};
use opcua::types::{DataValue, NodeId, StatusCode, Variant};
use std::str::FromStr;

/// A node id from the config, possibly naming its namespace by URI.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeRef {
    /// A node id with a namespace index (`ns=`, or namespace 0 when bare), used as is.
    Id(NodeId),
    /// `nsu=<uri>;<rest>`: `rest` parsed with namespace 0, the index found on connect.
    Uri {
        /// The namespace URI.
        uri: String,
        /// The id within that namespace (parsed with namespace 0).
        id: NodeId,
    },
}

const SYNTAX: &str = "use ns=<index>;<i|s|g|b>=<id>, <i|s|g|b>=<id> or nsu=<uri>;<i|s|g|b>=<id>";

/// Why a node id from a node map cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NodeRefError {
    /// The text is no node id of the accepted forms.
    #[error("node id {text:?} is malformed: {SYNTAX}")]
    Malformed {
        /// The node id as written.
        text: String,
    },
    /// `nsu=` without the `;` that ends the URI.
    #[error("node id {text:?} has no ';' after the namespace uri: {SYNTAX}")]
    NoSeparator {
        /// The node id as written.
        text: String,
    },
    /// The server does not know the node's namespace URI.
    #[error("namespace {uri:?} is not in the server's namespace array")]
    UnknownNamespace {
        /// The namespace URI.
        uri: String,
    },
}

/// Where a node of the map is: a node id, or a browse path from the device's root node.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeSpec {
    /// A node id (`ns=`, bare, or `nsu=`).
    Id(NodeRef),
    /// A browse path (text starting with `/`, `.` or `<`).
    Path(BrowsePath),
}

/// Why a node of a node map (or a device's root) cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NodeSpecError {
    /// A malformed node id.
    #[error(transparent)]
    Id(#[from] NodeRefError),
    /// A malformed browse path.
    #[error(transparent)]
    Path(#[from] PathError),
}

impl NodeSpec {
    /// A browse path when the text starts with `/`, `.` or `<`, else a node id.
    pub fn parse(s: &str) -> Result<NodeSpec, NodeSpecError> {
        if BrowsePath::looks_like_path(s) {
            Ok(NodeSpec::Path(BrowsePath::parse(s)?))
        } else {
            Ok(NodeSpec::Id(NodeRef::parse(s)?))
        }
    }
}

impl NodeRef {
    /// Parses `ns=<index>;…`, a bare `i=`/`s=`/`g=`/`b=` id, or `nsu=<uri>;…`.
    pub fn parse(s: &str) -> Result<NodeRef, NodeRefError> {
        let s = s.trim();
        let malformed = || NodeRefError::Malformed { text: s.to_string() };
        if let Some(rest) = s.strip_prefix("nsu=") {
            let Some((uri, id)) = rest.split_once(';') else {
                return Err(NodeRefError::NoSeparator { text: s.to_string() });
            };
            if uri.is_empty() || id.starts_with("ns=") {
                return Err(malformed());
            }
            let id = NodeId::from_str(id).map_err(|_| malformed())?;
            return Ok(NodeRef::Uri { uri: uri.to_string(), id });
        }
        NodeId::from_str(s).map(NodeRef::Id).map_err(|_| malformed())
    }

    /// True for `nsu=` ids, which need the server's namespace array to resolve.
    pub fn needs_namespaces(&self) -> bool {
        matches!(self, NodeRef::Uri { .. })
    }

    /// The node id on a server whose namespace array is `namespaces`.
    pub fn resolve(&self, namespaces: &[String]) -> Result<NodeId, NodeRefError> {
        match self {
            NodeRef::Id(id) => Ok(id.clone()),
            NodeRef::Uri { uri, id } => {
                let ns = namespaces
                    .iter()
                    .position(|u| u == uri)
                    .and_then(|i| u16::try_from(i).ok())
                    .ok_or_else(|| NodeRefError::UnknownNamespace { uri: uri.clone() })?;
                Ok(NodeId { namespace: ns, identifier: id.identifier.clone() })
            }
        }
    }
}

/// A number from a scalar variant (booleans as 0/1).
pub fn number(v: &Variant) -> Option<f64> {
    Some(match v {
        Variant::Boolean(b) => f64::from(u8::from(*b)),
        Variant::SByte(x) => f64::from(*x),
        Variant::Byte(x) => f64::from(*x),
        Variant::Int16(x) => f64::from(*x),
        Variant::UInt16(x) => f64::from(*x),
        Variant::Int32(x) => f64::from(*x),
        Variant::UInt32(x) => f64::from(*x),
        Variant::Int64(x) => *x as f64,
        Variant::UInt64(x) => *x as f64,
        Variant::Float(x) => f64::from(*x),
        Variant::Double(x) => *x,
        _ => return None,
    })
}

fn text(v: &Variant) -> Option<String> {
    match v {
        Variant::String(s) => Some(s.value().clone().unwrap_or_default().trim().to_string()),
        Variant::LocalizedText(t) => Some(t.text.value().clone().unwrap_or_default().trim().to_string()),
        // EUROMAP 83's job Material is a String[]: its names, joined.
        Variant::Array(a) => {
            let parts: Vec<String> = a.values.iter().filter_map(text).filter(|t| !t.is_empty()).collect();
            Some(parts.join(","))
        }
        other => number(other).map(|n| format!("{n}")),
    }
}

fn counter(v: &Variant, bits: u32) -> Option<u64> {
    let raw = match v {
        Variant::Byte(x) => u64::from(*x),
        Variant::UInt16(x) => u64::from(*x),
        Variant::UInt32(x) => u64::from(*x),
        Variant::UInt64(x) => *x,
        Variant::SByte(x) => u64::try_from(*x).ok()?,
        Variant::Int16(x) => u64::try_from(*x).ok()?,
        Variant::Int32(x) => u64::try_from(*x).ok()?,
        Variant::Int64(x) => u64::try_from(*x).ok()?,
        Variant::Double(x) if *x >= 0.0 && x.fract() == 0.0 => *x as u64,
        Variant::Float(x) if *x >= 0.0 && x.fract() == 0.0 => *x as u64,
        _ => return None,
    };
    Some(if bits >= 64 { raw } else { raw & ((1u64 << bits) - 1) })
}

/// Milliseconds since the epoch; a null DateTime (no cycle yet) is 0.
fn millis(v: &Variant, scale: f64, offset: f64) -> Option<i64> {
    match v {
        Variant::DateTime(t) if t.is_null() => Some(0),
        Variant::DateTime(t) => Some(t.as_chrono().timestamp_millis().max(0)),
        other => number(other).map(|n| (n * scale + offset) as i64),
    }
}

/// Why one read of the node map yields no snapshot; the text names the node.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReadError {
    /// The server answered a different number of values than nodes were read.
    #[error("server answered {got} values for {nodes} nodes")]
    Count {
        /// Values the server answered.
        got: usize,
        /// Nodes in the map.
        nodes: usize,
    },
    /// A node answered with a bad status code.
    #[error("node {node} ({name}): {status}")]
    Status {
        /// Node id as written in the map.
        node: String,
        /// Record name of the node.
        name: String,
        /// Name and description of the status code.
        status: String,
    },
    /// A node answered without a value.
    #[error("node {node} ({name}): no value")]
    NoValue {
        /// Node id as written in the map.
        node: String,
        /// Record name of the node.
        name: String,
    },
    /// A node's value is not of the kind its role needs.
    #[error("node {node} ({name}): {need}, got {got}")]
    WrongKind {
        /// Node id as written in the map.
        node: String,
        /// Record name of the node.
        name: String,
        /// What the node's role needs.
        need: &'static str,
        /// The value received (debug form).
        got: String,
    },
}

/// Builds the snapshot of one read of every node (results in node-map order). A bad status
/// or a value of the wrong kind fails the read, naming the node.
pub fn snapshot(p: &NodeProfile, bits: u32, results: &[DataValue]) -> Result<Snapshot, ReadError> {
    if results.len() != p.nodes.len() {
        return Err(ReadError::Count { got: results.len(), nodes: p.nodes.len() });
    }
    let mut s = Snapshot::default();
    let is = |role: &Option<String>, name: &str| role.as_deref() == Some(name);
    let values = p.value_names();
    for (n, dv) in p.nodes.iter().zip(results) {
        let (node, name) = (n.node.clone(), n.name.clone());
        let status = dv.status.unwrap_or(StatusCode::Good);
        if status.is_bad() {
            return Err(ReadError::Status { node, name, status: status_text(status) });
        }
        let Some(v) = dv.value.as_ref() else {
            return Err(ReadError::NoValue { node, name });
        };
        let wrong = |need: &'static str| ReadError::WrongKind {
            node: node.clone(),
            name: name.clone(),
            need,
            got: format!("{v:?}"),
        };
        if is(&p.shot_counter, &n.name) {
            s.counter =
                Some(counter(v, bits).ok_or_else(|| wrong("counter must be a non-negative integer"))?);
        } else if is(&p.timestamp, &n.name) {
            s.timestamp_ms = Some(
                millis(v, n.scale, n.offset)
                    .ok_or_else(|| wrong("timestamp must be a DateTime or a number"))?,
            );
        } else if is(&p.mold_code, &n.name) {
            if let Some(t) = text(v) {
                crate::shot::set_mold(&mut s, t);
            }
        } else if is(&p.material_code, &n.name) {
            s.material = text(v);
        } else if values.contains(&n.name.as_str()) {
            let x = number(v).ok_or_else(|| wrong("value must be a number"))? * n.scale + n.offset;
            if !x.is_finite() || n.range.is_some_and(|[lo, hi]| x < lo || x > hi) {
                s.out_of_range.push(RangeIssue { tag: n.name.clone(), value: x, plausible: vec![] });
            }
            if x.is_finite() {
                s.values.insert(n.name.clone(), x);
            }
        }
    }
    crate::shot::join_material(&mut s);
    Ok(s)
}

/// `BadNodeIdUnknown (The node id refers to a node that does not exist …)`.
pub fn status_text(code: StatusCode) -> String {
    let sub = code.sub_code();
    format!("{} ({})", sub.name(), sub.description())
}

#[cfg(test)]
mod tests;
