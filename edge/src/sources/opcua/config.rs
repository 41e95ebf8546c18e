//! Configuration of an OPC UA device (`protocol = "opcua"`): the `[devices.opcua]` table
//! (endpoint, security, identity, read mode, node map in [`super::map`], the root and
//! namespace aliases of its browse paths). [`resolve_device`]
//! checks it all at load, listing every problem, and gives the device the profile its
//! node map amounts to, so shots and samples cannot tell the protocol.

use super::map::check_aliases;
pub use super::map::{NodeProfile, NodeTag, load_node_profile};
use super::node::NodeSpec;
use crate::config::{Device, DeviceConfig, DeviceRole, Protocol};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// OPC UA security policy of the secure channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SecurityPolicy {
    /// `none` (the default): messages neither signed nor encrypted.
    #[default]
    #[serde(rename = "none", alias = "None")]
    None,
    /// `basic256sha256`: needs `certificate_file` and `private_key_file`.
    #[serde(rename = "basic256sha256", alias = "Basic256Sha256")]
    Basic256Sha256,
}

/// OPC UA message security mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SecurityMode {
    /// `none` (the default): only with security policy `none`.
    #[default]
    #[serde(rename = "none", alias = "None")]
    None,
    /// `sign`: messages are signed.
    #[serde(rename = "sign", alias = "Sign")]
    Sign,
    /// `sign_and_encrypt`: messages are signed and encrypted.
    #[serde(rename = "sign_and_encrypt", alias = "SignAndEncrypt")]
    SignAndEncrypt,
}

/// How values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// Monitored items with sampling interval = poll interval; polling if the server refuses.
    #[default]
    Subscribe,
    /// Read service every poll interval.
    Poll,
}

/// The `[devices.opcua]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaConfig {
    /// `opc.tcp://host:port/path`
    pub endpoint: String,
    /// Security policy of the secure channel; default `none`.
    #[serde(default)]
    pub security_policy: SecurityPolicy,
    /// Message security mode; default `none` (`sign` or `sign_and_encrypt` with `basic256sha256`).
    #[serde(default)]
    pub security_mode: SecurityMode,
    /// Client application certificate (DER), needed with a security policy other than none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_file: Option<PathBuf>,
    /// Private key (PEM) of the client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<PathBuf>,
    /// PKI folder: server certificates trusted under `trusted/`, rejected ones land in `rejected/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pki_dir: Option<PathBuf>,
    /// Trust any server certificate (commissioning only).
    #[serde(default)]
    pub trust_server_certs: bool,
    /// User name identity; anonymous without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password inline; prefer `password_file`, which keeps it out of the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// File holding the password (relative to the config file; not readable by others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// How values are read: `subscribe` (the default) or `poll`.
    #[serde(default)]
    pub mode: ReadMode,
    /// Node map file (TOML), relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_file: Option<PathBuf>,
    /// Inline node map (alternative to `profile_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<NodeProfile>,
    /// Start node of the node map's browse paths (e.g. a EUROMAP 77 machine object): a node
    /// id, or a browse path from the Objects folder (`/di:DeviceSet/vendor:IMM_ACME_0042`);
    /// the Objects folder when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Namespace aliases (alias → URI) for browse paths, added to the node map's and taking
    /// precedence over them (e.g. the machine vendor's instance namespace).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespaces: BTreeMap<String, String>,
}

impl OpcUaConfig {
    /// The namespace aliases browse paths may use: the node map's, then this device's over them.
    pub fn aliases(&self) -> BTreeMap<String, String> {
        let mut all = self.profile.as_ref().map(|p| p.namespaces.clone()).unwrap_or_default();
        all.extend(self.namespaces.iter().map(|(a, u)| (a.clone(), u.clone())));
        all
    }

    /// Checks the connection settings (files relative to `base`) and resolves the node map;
    /// problems are pushed to `errs` prefixed with `at`. Paths come back absolute.
    pub fn resolve(&self, at: &str, base: &Path, errs: &mut Vec<String>) -> Option<OpcUaConfig> {
        let mut out = self.clone();
        let ep = self.endpoint.trim();
        let host = ep.strip_prefix("opc.tcp://").map(|r| r.split('/').next().unwrap_or(""));
        if host.is_none_or(|h| h.is_empty()) {
            errs.push(format!("{at}: opcua.endpoint {ep:?} must look like opc.tcp://host:port/"));
        }
        match (self.security_policy, self.security_mode) {
            (SecurityPolicy::None, SecurityMode::None) => {}
            (SecurityPolicy::None, m) => {
                errs.push(format!("{at}: opcua.security_mode {m:?} needs security_policy = \"basic256sha256\""))
            }
            (SecurityPolicy::Basic256Sha256, SecurityMode::None) => errs.push(format!(
                "{at}: opcua.security_policy basic256sha256 needs security_mode = \"sign\" or \"sign_and_encrypt\""
            )),
            (SecurityPolicy::Basic256Sha256, _) => {
                if self.certificate_file.is_none() || self.private_key_file.is_none() {
                    errs.push(format!("{at}: opcua security needs certificate_file and private_key_file"));
                }
            }
        }
        for (field, f) in
            [("certificate_file", &mut out.certificate_file), ("private_key_file", &mut out.private_key_file)]
        {
            if let Some(p) = f {
                *p = absolute(base, p);
                if !p.is_file() {
                    errs.push(format!("{at}: opcua.{field} {} not found", p.display()));
                }
            }
        }
        out.pki_dir = Some(absolute(base, self.pki_dir.as_deref().unwrap_or(Path::new("opcua-pki"))));
        if let Some(file) = &self.password_file {
            if self.password.is_some() {
                errs.push(format!("{at}: give either opcua.password or opcua.password_file, not both"));
            }
            match moldops_common::secret::read(&absolute(base, file), "opcua.password_file") {
                Ok(p) => out.password = Some(p),
                Err(e) => errs.push(format!("{at}: {e}")),
            }
            out.password_file = None;
        }
        if self.username.is_some() != out.password.is_some() {
            errs.push(format!("{at}: opcua.username and opcua.password go together"));
        }
        let profile = match (&self.profile, &self.profile_file) {
            (Some(p), None) => Some(p.clone()),
            (None, Some(f)) => match load_node_profile(&absolute(base, f)) {
                Ok(p) => Some(p),
                Err(e) => {
                    errs.push(format!("{at}: {e}"));
                    None
                }
            },
            (Some(_), Some(_)) => {
                errs.push(format!("{at}: give either opcua.profile or opcua.profile_file, not both"));
                None
            }
            (None, None) => {
                errs.push(format!("{at}: needs opcua.profile_file or an inline [devices.opcua.profile]"));
                None
            }
        }?;
        for e in profile.validate() {
            errs.push(format!("{at}: node map {}: {e}", profile.name));
        }
        for e in check_aliases("opcua.namespaces", &self.namespaces) {
            errs.push(format!("{at}: {e}"));
        }
        for e in profile.unknown_aliases(&self.namespaces) {
            errs.push(format!("{at}: node map {}: {e}", profile.name));
        }
        if let Some(root) = &self.root {
            match NodeSpec::parse(root) {
                Err(e) => errs.push(format!("{at}: opcua.root: {e}")),
                Ok(NodeSpec::Path(p)) => {
                    let known =
                        |a: &str| self.namespaces.contains_key(a) || profile.namespaces.contains_key(a);
                    for a in p.aliases().filter(|a| !known(a)) {
                        let e = super::browse_path::PathError::UnknownAlias { alias: a.to_string() };
                        errs.push(format!("{at}: opcua.root: {e}"));
                    }
                }
                Ok(NodeSpec::Id(_)) => {}
            }
        }
        out.profile = Some(profile);
        out.profile_file = None;
        Some(out)
    }
}

/// An OPC UA device: `[devices.opcua]` checked, its node map resolved and turned into the
/// device's profile; Modbus-only fields are refused.
pub fn resolve_device(d: &DeviceConfig, at: &str, base: &Path, errs: &mut Vec<String>) -> Option<Device> {
    let Some(ua) = (d.protocol == Protocol::Opcua).then_some(d.opcua.as_ref()).flatten() else {
        errs.push(format!("{at}: a [devices.opcua] table goes with protocol = \"opcua\" and it needs one"));
        return None;
    };
    let modbus_only = [
        ("address", d.address.is_some()),
        ("serial", d.serial.is_some()),
        ("profile", d.profile.is_some() || d.profile_file.is_some()),
        ("word_order/byte_order", d.word_order.is_some() || d.byte_order.is_some()),
    ];
    for (field, set) in modbus_only {
        if set {
            errs.push(format!(
                "{at}: {field} is for Modbus; an OPC UA device takes its node map in [devices.opcua]"
            ));
        }
    }
    let ua = ua.resolve(at, base, errs)?;
    let profile = ua.profile.as_ref()?.to_profile();
    if d.role == DeviceRole::Machine && profile.shot_counter.is_none() {
        errs.push(format!("{at}: a machine's node map needs shot_counter"));
    }
    let mut cfg = d.clone();
    cfg.opcua = Some(ua);
    Some(Device { cfg, profile })
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}
