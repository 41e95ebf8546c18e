//! Node maps: node ids or browse paths mapped to the same record names a Modbus tag map
//! uses, with the same roles (shot counter, mold code, state, timestamp, shot values); their
//! validation, listing every problem, and [`NodeProfile::to_profile`], the equivalent
//! [`Profile`].

use super::browse_path::{BrowsePath, MAX_TEXT, PathError, is_alias};
use super::node::NodeSpec;
use moldops_common::config::{TomlFileError, load_toml};
use moldops_shared::profile::{DataType, Order, Profile, Tag};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Most namespace aliases a node map (or a device) may define.
pub const MAX_ALIASES: usize = 64;

/// A node map: record names for node ids, and the roles some of them play.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeProfile {
    /// Name of the node map, used in messages about it (and as the profile's name).
    pub name: String,
    /// Node whose change marks a new shot (machines): the cycle counter.
    #[serde(default)]
    pub shot_counter: Option<String>,
    /// Node holding the mold / product code (text).
    #[serde(default)]
    pub mold_code: Option<String>,
    /// Node holding the material or recipe code (text; EUROMAP 77's active job material), where
    /// the machine exposes one: the shot's mould key becomes `{mould}+{material}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub material_code: Option<String>,
    /// Node holding the machine state (kept out of the shot values).
    #[serde(default)]
    pub state: Option<String>,
    /// Node with the time of the last cycle (DateTime, or ms since the epoch).
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Nodes whose values form a shot or sample; empty: every non-string node playing no role.
    #[serde(default)]
    pub shot_values: Vec<String>,
    /// Namespace aliases for browse paths: alias → namespace URI (e.g.
    /// `imm = "http://opcfoundation.org/UA/PlasticsRubber/IMM2MES/"`); a device's
    /// `opcua.namespaces` adds to and overrides them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespaces: BTreeMap<String, String>,
    /// The nodes to read, in read order.
    pub nodes: Vec<NodeTag>,
}

/// One node of the map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeTag {
    /// Record name (the same the Modbus tag maps use).
    pub name: String,
    /// `ns=2;s=Name`, `ns=3;i=1001`, `i=2258`, `nsu=<namespace uri>;s=Name`, or a browse path
    /// from the device's root such as `/imm:Jobs/gen:ActiveJobValues/gen:JobCycleCounter`.
    pub node: String,
    /// Counter width (`u16`, `u32`, `u64`) or `string`; numbers need none.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<DataType>,
    /// Factor applied to the raw number: value = raw × `scale` + `offset`; 1 unless given.
    #[serde(default = "one")]
    pub scale: f64,
    /// Added to the scaled raw number; 0 unless given.
    #[serde(default)]
    pub offset: f64,
    /// Engineering unit of the value (e.g. `mm`); informational only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Plausible engineering range `[min, max]`; values outside are kept and flagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<[f64; 2]>,
}

fn one() -> f64 {
    1.0
}

impl NodeProfile {
    /// The node named `name`, if the map has one.
    pub fn node(&self, name: &str) -> Option<&NodeTag> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Names of the nodes that form a shot's (or a sample's) values, as
    /// [`Profile::value_tags`] would give them.
    pub fn value_names(&self) -> Vec<&str> {
        if !self.shot_values.is_empty() {
            return self.shot_values.iter().map(String::as_str).collect();
        }
        let roles = [&self.shot_counter, &self.mold_code, &self.material_code, &self.state, &self.timestamp];
        self.nodes
            .iter()
            .filter(|n| n.dtype != Some(DataType::String))
            .filter(|n| !roles.iter().any(|r| r.as_deref() == Some(n.name.as_str())))
            .map(|n| n.name.as_str())
            .collect()
    }

    /// Every problem with the node map, listed at once.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for n in &self.nodes {
            if n.name.trim().is_empty() {
                errs.push(format!("node {:?} has an empty name", n.node));
            } else if let Err(e) = moldops_shared::limits::check_name("node name", &n.name) {
                // The name becomes a value name on the wire: one the ingest refuses loses data.
                errs.push(format!("node {:?}: {e}", n.node));
            }
            if !seen.insert(n.name.as_str()) {
                errs.push(format!("{} defined twice", n.name));
            }
            if let Err(e) = NodeSpec::parse(&n.node) {
                errs.push(format!("{}: {e}", n.name));
            }
            if n.scale == 0.0 || !n.scale.is_finite() || !n.offset.is_finite() {
                errs.push(format!("{}: scale must be finite and non-zero, offset finite", n.name));
            }
            if let Some([lo, hi]) = n.range
                && (lo.is_nan() || hi.is_nan() || lo > hi)
            {
                errs.push(format!("{}: range [{lo}, {hi}] is empty or not a number", n.name));
            }
        }
        let roles = [
            ("shot_counter", &self.shot_counter),
            ("mold_code", &self.mold_code),
            ("material_code", &self.material_code),
            ("state", &self.state),
            ("timestamp", &self.timestamp),
        ];
        for (role, name) in roles {
            if let Some(n) = name
                && self.node(n).is_none()
            {
                errs.push(format!("{role} names unknown node {n:?}"));
            }
        }
        if let Some(t) = self.shot_counter.as_deref().and_then(|n| self.node(n))
            && !matches!(t.dtype, None | Some(DataType::U16 | DataType::U32 | DataType::U64))
        {
            errs.push(format!("shot_counter {:?} must be u16, u32 or u64", t.name));
        }
        for n in &self.shot_values {
            if self.node(n).is_none() {
                errs.push(format!("shot_values names unknown node {n:?}"));
            }
        }
        errs.extend(check_aliases("namespaces", &self.namespaces));
        errs
    }

    /// The browse paths of the map (node name, path as written, parsed path); malformed ones
    /// are left out ([`NodeProfile::validate`] reports them).
    pub fn paths(&self) -> impl Iterator<Item = (&str, &str, BrowsePath)> {
        self.nodes.iter().filter_map(|n| match NodeSpec::parse(&n.node) {
            Ok(NodeSpec::Path(p)) => Some((n.name.as_str(), n.node.as_str(), p)),
            _ => None,
        })
    }

    /// Every browse path whose namespace alias is in neither this map's `namespaces` nor
    /// `extra` (the device's), one message per node and alias.
    pub fn unknown_aliases(&self, extra: &BTreeMap<String, String>) -> Vec<String> {
        let mut errs = Vec::new();
        for (name, _, path) in self.paths() {
            let mut seen = Vec::new();
            for a in path.aliases() {
                if !self.namespaces.contains_key(a) && !extra.contains_key(a) && !seen.contains(&a) {
                    seen.push(a);
                    errs.push(format!("{name}: {}", PathError::UnknownAlias { alias: a.to_string() }));
                }
            }
        }
        errs
    }

    /// The equivalent [`Profile`] (tags in node order; addresses are node indices, unused).
    pub fn to_profile(&self) -> Profile {
        let tags = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let counter = self.shot_counter.as_deref() == Some(n.name.as_str());
                let default = if counter { DataType::U32 } else { DataType::F64 };
                let dtype = n.dtype.unwrap_or(default);
                Tag {
                    name: n.name.clone(),
                    register: moldops_shared::profile::RegisterKind::Holding,
                    address: u16::try_from(i).unwrap_or(u16::MAX - 4),
                    dtype,
                    len: (dtype == DataType::String).then_some(1),
                    word_order: None,
                    byte_order: None,
                    scale: n.scale,
                    offset: n.offset,
                    unit: n.unit.clone(),
                    range: n.range,
                }
            })
            .collect();
        Profile {
            name: self.name.clone(),
            word_order: Order::Big,
            byte_order: Order::Big,
            shot_counter: self.shot_counter.clone(),
            mold_code: self.mold_code.clone(),
            material_code: self.material_code.clone(),
            state: self.state.clone(),
            timestamp: self.timestamp.clone(),
            shot_values: self.shot_values.clone(),
            history: None,
            tags,
        }
    }
}

/// Problems with an alias table (`field` names it in messages): malformed aliases, empty or
/// overlong URIs, too many entries.
pub fn check_aliases(field: &str, table: &BTreeMap<String, String>) -> Vec<String> {
    let mut errs = Vec::new();
    if table.len() > MAX_ALIASES {
        errs.push(format!("{field}: {} aliases, at most {MAX_ALIASES}", table.len()));
    }
    for (alias, uri) in table {
        if !is_alias(alias) {
            errs.push(format!(
                "{field}: alias {alias:?} must be a letter followed by letters, digits, '_' or '-' (at most 32)"
            ));
        }
        if uri.trim().is_empty() || uri.len() > MAX_TEXT || uri.chars().any(char::is_control) {
            errs.push(format!(
                "{field}.{alias}: the namespace uri must be non-empty text of at most {MAX_TEXT} bytes"
            ));
        }
    }
    errs
}

/// Loads a node map file (TOML).
pub fn load_node_profile(path: &Path) -> Result<NodeProfile, TomlFileError> {
    load_toml("node map", path)
}
