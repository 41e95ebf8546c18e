//! `[[gates]]`: one quality gate per machine — its limits, deadline, fail-safe and output —
//! validated with the rest of the edge config.

use crate::sources::opcua::config::{NodeProfile, NodeTag, OpcUaConfig};
use moldops_shared::decision::Decision;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Deadline from a shot's detection to the output's acknowledgement when none is set, ms.
pub const DEFAULT_DEADLINE_MS: u64 = 50;

/// Longest deadline a gate takes, ms: beyond it the part has long left the mould.
pub const MAX_DEADLINE_MS: u64 = 60_000;

/// `[[gates]]`: the quality gate of one machine (see docs/quality-gate.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    /// The machine whose shots this gate sorts (a configured machine's `machine_id`).
    pub machine: String,
    /// From the shot's detection (its poll) to the output's acknowledgement, ms; a decision
    /// that cannot make it writes the fail-safe instead. Default 50.
    #[serde(default = "default_deadline")]
    pub deadline_ms: u64,
    /// What the output gets when the deadline is missed or the model's inference fails (a dead
    /// model): `uncertain` (divert to inspection,
    /// the default), `reject`, or `good` (hold good, for non-critical lines).
    #[serde(default = "default_fail_safe")]
    pub fail_safe: Decision,
    /// Most features of a shot the model may fill in (missing, or older than its tolerance)
    /// before its verdict counts as unreliable (`uncertain`). Default 0.
    #[serde(default)]
    pub max_missing_features: usize,
    /// Engineering limits per value: `cushion_mm = { min = 2.0, max = 8.0 }`. A value outside
    /// rejects the part whatever the model says; a limited value the shot lacks makes it
    /// `uncertain`. With no model active, the limits alone decide.
    #[serde(default)]
    pub limits: BTreeMap<String, Limit>,
    /// The sorting output; absent: decisions are recorded only.
    #[serde(default)]
    pub output: Option<OutputConfig>,
}

fn default_deadline() -> u64 {
    DEFAULT_DEADLINE_MS
}

fn default_fail_safe() -> Decision {
    Decision::Uncertain
}

/// An engineering range; either end may be open.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Lowest acceptable value.
    #[serde(default)]
    pub min: Option<f64>,
    /// Highest acceptable value.
    #[serde(default)]
    pub max: Option<f64>,
}

impl Limit {
    /// True when `v` lies within the range (ends included).
    pub fn holds(&self, v: f64) -> bool {
        v.is_finite() && self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m)
    }
}

/// What the gate writes to: a Modbus TCP controller (registers or a coil) or an OPC UA server
/// (two variables).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// `modbus_tcp` (default) or `opcua`.
    #[serde(default)]
    pub protocol: OutputProtocol,
    /// Modbus: `host:port` of the sorting controller (PLC, robot, diverter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Modbus unit id. Default 1.
    #[serde(default = "default_unit")]
    pub unit_id: u8,
    /// Modbus: `registers` (default): three holding registers from `register` in one write —
    /// the decision's code, then the shot number's low 32 bits as two registers, high word
    /// first — so the controller matches each decision to its part and a repeated write is
    /// harmless. `coil`: one coil at `register`, on to divert (reject or uncertain).
    #[serde(default)]
    pub kind: OutputKind,
    /// Modbus: first holding register, or the coil.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register: Option<u16>,
    /// OPC UA: the variable (Int32) that takes the decision's code, e.g. `ns=2;s=Sorter.Decision`
    /// (or `nsu=urn:…;s=…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_node: Option<String>,
    /// OPC UA: the variable (UInt32) that takes the shot number's low 32 bits, written in the
    /// same request, before the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shot_node: Option<String>,
    /// OPC UA: endpoint, security and identity (`[gates.output.opcua]`, the keys of
    /// `[devices.opcua]` without a node map).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opcua: Option<OpcUaConfig>,
    /// Codes of the decisions (register values; OPC UA: the Int32 written).
    #[serde(default)]
    pub codes: Codes,
}

/// The sorting output's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputProtocol {
    /// Modbus TCP (`address`, `register`).
    #[default]
    ModbusTcp,
    /// OPC UA (`decision_node`, `shot_node`, `[gates.output.opcua]`).
    Opcua,
}

/// Name of the decision variable in an OPC UA output's node map.
pub const DECISION_NODE: &str = "decision";
/// Name of the shot-number variable in an OPC UA output's node map.
pub const SHOT_NODE: &str = "shot";

impl OutputConfig {
    /// The controller as logs and `/status` name it: `host:port` or the endpoint.
    pub fn target(&self) -> String {
        match self.protocol {
            OutputProtocol::ModbusTcp => self.address.clone().unwrap_or_default(),
            OutputProtocol::Opcua => self.opcua.as_ref().map(|u| u.endpoint.clone()).unwrap_or_default(),
        }
    }

    /// An OPC UA output's connection settings, checked, with paths resolved against `base`
    /// and the decision and shot variables as its node map; problems go to `errs`.
    pub fn opcua_resolved(&self, at: &str, base: &Path, errs: &mut Vec<String>) -> Option<OpcUaConfig> {
        let Some(ua) = &self.opcua else {
            errs.push(format!(
                "{at}: an opcua output needs a [gates.output.opcua] table (endpoint, security)"
            ));
            return None;
        };
        if ua.profile.is_some() || ua.profile_file.is_some() {
            errs.push(format!("{at}: output.opcua takes no node map: name decision_node and shot_node"));
        }
        let Some(decision) = &self.decision_node else {
            errs.push(format!("{at}: an opcua output needs decision_node"));
            return None;
        };
        let node = |name: &str, node: &str| NodeTag {
            name: name.to_string(),
            node: node.to_string(),
            dtype: None,
            scale: 1.0,
            offset: 0.0,
            unit: None,
            range: None,
        };
        let mut nodes = vec![node(DECISION_NODE, decision)];
        nodes.extend(self.shot_node.as_deref().map(|s| node(SHOT_NODE, s)));
        let mut ua = ua.clone();
        ua.profile_file = None;
        ua.profile = Some(NodeProfile {
            name: "gate output".into(),
            shot_counter: None,
            mold_code: None,
            material_code: None,
            state: None,
            timestamp: None,
            shot_values: Vec::new(),
            namespaces: Default::default(),
            nodes,
        });
        ua.resolve(&format!("{at}: output"), base, errs)
    }
}

fn default_unit() -> u8 {
    1
}

/// How decisions reach the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// Decision code and shot number in three holding registers.
    #[default]
    Registers,
    /// One coil: on diverts the part.
    Coil,
}

/// The holding-register value of each decision (`registers` outputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Codes {
    /// Default 1.
    pub good: u16,
    /// Default 2.
    pub reject: u16,
    /// Default 3.
    pub uncertain: u16,
}

impl Default for Codes {
    fn default() -> Self {
        Codes { good: 1, reject: 2, uncertain: 3 }
    }
}

impl Codes {
    /// The code of `d`.
    pub fn of(&self, d: Decision) -> u16 {
        match d {
            Decision::Good => self.good,
            Decision::Reject => self.reject,
            Decision::Uncertain => self.uncertain,
        }
    }
}

/// Every problem of `gates`, given the configured machines; files resolve against `base`.
pub fn problems(gates: &[GateConfig], machines: &[&str], base: &Path) -> Vec<String> {
    let mut errs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, g) in gates.iter().enumerate() {
        let at = format!("gates[{i}] ({})", g.machine);
        if !seen.insert(g.machine.as_str()) {
            errs.push(format!("{at}: a second gate for the same machine"));
        }
        if !machines.contains(&g.machine.as_str()) {
            errs.push(format!("{at}: no machine {:?} among [[devices]]", g.machine));
        }
        if g.deadline_ms == 0 || g.deadline_ms > MAX_DEADLINE_MS {
            errs.push(format!("{at}: deadline_ms must be 1..={MAX_DEADLINE_MS}, not {}", g.deadline_ms));
        }
        for (name, l) in &g.limits {
            let finite = l.min.is_none_or(f64::is_finite) && l.max.is_none_or(f64::is_finite);
            if !finite || l.min.zip(l.max).is_some_and(|(a, b)| a > b) || (l.min.is_none() && l.max.is_none())
            {
                errs.push(format!("{at}: limits.{name} needs finite min and/or max with min <= max"));
            }
        }
        if let Some(o) = &g.output {
            output_problems(o, &at, base, &mut errs);
        }
    }
    errs
}

fn output_problems(o: &OutputConfig, at: &str, base: &Path, errs: &mut Vec<String>) {
    let c = o.codes;
    if c.good == c.reject || c.good == c.uncertain || c.reject == c.uncertain {
        errs.push(format!("{at}: output.codes must differ from one another"));
    }
    match o.protocol {
        OutputProtocol::ModbusTcp => {
            let host_port = |a: &str| {
                a.rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
            };
            match &o.address {
                Some(a) if host_port(a) => {}
                a => errs.push(format!("{at}: output.address {a:?} must be host:port")),
            }
            match o.register {
                None => errs.push(format!("{at}: output.register is needed")),
                Some(r) if o.kind == OutputKind::Registers && r > u16::MAX - 2 => {
                    errs.push(format!("{at}: output.register must leave room for three registers"))
                }
                Some(_) => {}
            }
            if o.opcua.is_some() || o.decision_node.is_some() || o.shot_node.is_some() {
                errs.push(format!("{at}: opcua, decision_node and shot_node go with protocol = \"opcua\""));
            }
        }
        OutputProtocol::Opcua => {
            if o.address.is_some() || o.register.is_some() {
                errs.push(format!("{at}: address and register are for Modbus outputs"));
            }
            o.opcua_resolved(at, base, errs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(text: &str) -> GateConfig {
        toml::from_str(text).expect("parses")
    }

    #[test]
    fn defaults_are_a_50_ms_deadline_and_divert() {
        let g = gate("machine = \"M1\"");
        assert_eq!((g.deadline_ms, g.fail_safe, g.max_missing_features), (50, Decision::Uncertain, 0));
        assert!(problems(&[g], &["M1"], Path::new(".")).is_empty());
        let g = gate(
            "machine = \"M1\"\nfail_safe = \"good\"\n[limits]\ncushion = { min = 2.0 }\n[output]\naddress = \"127.0.0.1:502\"\nregister = 10",
        );
        assert_eq!(g.fail_safe, Decision::Good);
        assert!(g.limits["cushion"].holds(2.0) && !g.limits["cushion"].holds(1.9));
        assert_eq!(
            g.output.as_ref().map(|o| (o.kind, o.codes.of(Decision::Reject))),
            Some((OutputKind::Registers, 2))
        );
        assert!(problems(&[g], &["M1"], Path::new(".")).is_empty());
        let g = gate(
            "machine = \"M1\"\n[output]\nprotocol = \"opcua\"\ndecision_node = \"ns=2;s=Sorter.Decision\"\nshot_node = \"ns=2;s=Sorter.Shot\"\n[output.opcua]\nendpoint = \"opc.tcp://127.0.0.1:4840/\"",
        );
        assert!(
            problems(std::slice::from_ref(&g), &["M1"], Path::new(".")).is_empty(),
            "{:?}",
            problems(&[g], &["M1"], Path::new("."))
        );
    }

    #[test]
    fn every_problem_is_listed() {
        let g = gate(
            "machine = \"M9\"\ndeadline_ms = 0\n[limits]\na = { min = 3.0, max = 1.0 }\nb = {}\n[output]\naddress = \"plc\"\nregister = 65535\ncodes = { good = 1, reject = 1, uncertain = 3 }",
        );
        let ua = gate(
            "machine = \"M1\"\n[output]\nprotocol = \"opcua\"\nregister = 3\n[output.opcua]\nendpoint = \"plc:4840\"",
        );
        let mut errs = problems(&[g.clone(), g], &["M1"], Path::new("."));
        errs.extend(problems(&[ua], &["M1"], Path::new(".")));
        for needle in [
            "no machine",
            "deadline_ms",
            "limits.a",
            "limits.b",
            "host:port",
            "differ",
            "three registers",
            "second gate",
            "are for Modbus outputs",
            "needs decision_node",
        ] {
            assert!(errs.iter().any(|e| e.contains(needle)), "{needle} in {errs:?}");
        }
        assert!(toml::from_str::<GateConfig>("machine = \"M1\"\nfail_safe = \"maybe\"").is_err());
    }
}
