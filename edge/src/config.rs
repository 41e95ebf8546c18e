//! Edge configuration (TOML): identity, broker, buffer, uplink, local API and devices with
//! their profiles. [`EdgeConfig::load`] validates everything at once and reports every
//! problem, each naming the field it is about.

use crate::sources::opcua::config::OpcUaConfig;
pub use moldops_common::config::ConfigErrors;
use moldops_common::config::{TomlFileError, load_toml};
pub use moldops_common::mqtt::{BrokerConfig, TlsConfig};
use moldops_shared::limits;
use moldops_shared::profile::{Order, Profile};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The edge's TOML config (`edge.toml`, see docs/edge-config.md); [`EdgeConfig::load`] reads and
/// validates it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// Site (plant) id; an MQTT topic level: no `/`, `+` or `#`, at most 128 bytes.
    pub site: String,
    /// This edge's id; an MQTT topic level like `site`, and the scope of the buffer's seqs.
    pub edge_id: String,
    /// `[broker]`: the MQTT broker the uplink publishes to (address, credentials, TLS).
    pub broker: BrokerConfig,
    /// `[buffer]`: the store-and-forward buffer; defaults when absent.
    #[serde(default)]
    pub buffer: BufferConfig,
    /// `[uplink]`: batching, pacing and confirmation of the upload; defaults when absent.
    #[serde(default)]
    pub uplink: UplinkConfig,
    /// `[api]`: the local HTTP API; defaults to `127.0.0.1:9464` when absent.
    #[serde(default)]
    pub api: ApiConfig,
    /// `[[devices]]`: the machines and peripherals to poll; at least one is required.
    #[serde(default)]
    pub devices: Vec<DeviceConfig>,
    /// Live scoring and model rollout; absent: the edge only collects data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<ModelsConfig>,
    /// `[[gates]]`: quality gates that sort parts per machine (docs/quality-gate.md); none by
    /// default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<crate::gate::GateConfig>,
}

/// `[models]`: the public key bundles must be signed with, the inference backend, the model
/// store and the rollout thresholds (see docs/edge-config.md and docs/rollout.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    /// Registry public key, 64 hex digits (or give `public_key_file`).
    #[serde(default)]
    pub public_key: Option<String>,
    /// File holding the registry public key in hex, relative to the config file.
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
    /// Inference backend: `tract` (pure Rust) or `ort` (ONNX Runtime, cargo feature `ort`).
    #[serde(default)]
    pub backend: moldops_scoring::inference::BackendKind,
    /// With `backend = "ort"`: use tract when ONNX Runtime cannot be loaded (else refuse to start).
    #[serde(default)]
    pub fallback: bool,
    /// ONNX Runtime shared library; default: the `ORT_DYLIB_PATH` environment variable.
    #[serde(default)]
    pub ort_library: Option<PathBuf>,
    /// Folder of the model store (bundles and rollout state), relative to the config file.
    #[serde(default = "default_model_store")]
    pub store: PathBuf,
    /// Shots a new model scores in shadow, next to the active one, before it is promoted.
    #[serde(default = "default_shadow_shots")]
    pub shadow_shots: u64,
    /// Roll back when the candidate alarms on more than this share of its shadow shots where
    /// the active model did not alarm (of all its shadow shots without an active model).
    #[serde(default = "default_max_alarm_rate")]
    pub max_alarm_rate: f64,
    /// Roll back when, on shadow shots the active model judged good, the candidate alarms
    /// significantly more often (p < 0.01) than this many times its bundle's
    /// `false_alarm_target`; 0 turns the check off (bundles without a target skip it).
    #[serde(default = "default_false_alarm_tolerance")]
    pub false_alarm_tolerance: f64,
    /// Roll back when the candidate's mean shadow score is further than this many validation
    /// standard deviations from its validation mean.
    #[serde(default = "default_max_score_shift")]
    pub max_score_shift: f64,
    /// Largest bundle the edge downloads; a desired state naming a bigger one is refused
    /// before anything is allocated.
    #[serde(default = "default_max_bundle_bytes")]
    pub max_bundle_bytes: u64,
    /// `[models.cold_start]`: a learning baseline for each mould without a model of its own
    /// (docs/mould-lifecycle.md); absent, the machine's model scores such a mould as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_start: Option<moldops_scoring::ColdStart>,
    /// `[models.drift]`: per model key, score and feature histograms summarised every period
    /// and buffered as `drift` records for the cloud to judge (docs/drift.md); on by default,
    /// `every_shots = 0` turns it off.
    #[serde(default)]
    pub drift: moldops_scoring::DriftSettings,
}

fn default_max_bundle_bytes() -> u64 {
    moldops_shared::rollout::DEFAULT_MAX_BUNDLE_BYTES
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            public_key: None,
            public_key_file: None,
            backend: Default::default(),
            fallback: false,
            ort_library: None,
            store: default_model_store(),
            shadow_shots: default_shadow_shots(),
            max_alarm_rate: default_max_alarm_rate(),
            false_alarm_tolerance: default_false_alarm_tolerance(),
            max_score_shift: default_max_score_shift(),
            max_bundle_bytes: default_max_bundle_bytes(),
            cold_start: None,
            drift: Default::default(),
        }
    }
}

/// Why the registry public key in `[models]` is unusable.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Both `public_key` and `public_key_file` are set.
    #[error("models: give public_key or public_key_file, not both")]
    Both,
    /// Neither is set.
    #[error("models: needs public_key or public_key_file")]
    Missing,
    /// The key file cannot be read.
    #[error("models.public_key_file {}: {source}", path.display())]
    Read {
        /// The key file, resolved against the config file's folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key is not 64 hex digits of an Ed25519 public key.
    #[error("models public key: {0}")]
    Parse(moldops_shared::bundle::BundleError),
}

impl ModelsConfig {
    /// The registry public key (from `public_key` or `public_key_file`, resolved against `base`).
    pub fn key(&self, base: &Path) -> Result<[u8; 32], KeyError> {
        let text = match (&self.public_key, &self.public_key_file) {
            (Some(k), None) => k.clone(),
            (None, Some(f)) => {
                let path = resolve_path(base, f);
                std::fs::read_to_string(&path).map_err(|source| KeyError::Read { path, source })?
            }
            (Some(_), Some(_)) => return Err(KeyError::Both),
            (None, None) => return Err(KeyError::Missing),
        };
        moldops_shared::bundle::parse_key_hex(&text).map_err(KeyError::Parse)
    }

    fn validate(&self, base: &Path, errs: &mut Vec<String>) {
        if let Err(e) = self.key(base) {
            errs.push(e.to_string());
        }
        if self.shadow_shots == 0 {
            errs.push("models.shadow_shots must be at least 1".into());
        }
        if let Some(c) = &self.cold_start {
            errs.extend(c.problems());
        }
        if self.drift.enabled() {
            errs.extend(self.drift.problems());
        }
        if !(self.max_alarm_rate > 0.0 && self.max_alarm_rate <= 1.0) {
            errs.push("models.max_alarm_rate must be in (0, 1]".into());
        }
        if !(self.max_score_shift.is_finite() && self.max_score_shift > 0.0) {
            errs.push("models.max_score_shift must be a positive number".into());
        }
        if !(self.false_alarm_tolerance.is_finite() && self.false_alarm_tolerance >= 0.0) {
            errs.push("models.false_alarm_tolerance must be 0 (off) or a positive number".into());
        }
        if let Some(lib) = &self.ort_library
            && !resolve_path(base, lib).is_file()
            && !self.fallback
        {
            errs.push(format!("models.ort_library {} not found", lib.display()));
        }
    }
}

/// What to do when the buffer reaches `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FullPolicy {
    /// Drop the oldest records (counted in `moldops_buffer_dropped_records_total`, reported to the
    /// cloud as gap records) to make room.
    #[default]
    DropOldest,
}

/// `[buffer]`: where the store-and-forward buffer lives and how large it may grow.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// Folder of the sled database, relative to the config file; default `moldops-data/edge-buffer`.
    #[serde(default = "default_buffer_path")]
    pub path: PathBuf,
    /// Upper bound of buffered record bytes.
    #[serde(default = "default_buffer_bytes")]
    pub max_bytes: u64,
    /// What happens at `max_bytes`; `drop-oldest` (the default and only policy).
    #[serde(default)]
    pub full_policy: FullPolicy,
}

/// `[uplink]`: how buffered records are batched, paced and confirmed on their way to the
/// broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// Records per MQTT message.
    #[serde(default = "default_batch_records")]
    pub batch_max_records: usize,
    /// Batches published but not yet acknowledged (PUBACK).
    #[serde(default = "default_inflight")]
    pub max_inflight: usize,
    /// Upper rate for uploading the backlog after an outage; live records are not limited.
    #[serde(default = "default_catchup_rate")]
    pub catchup_records_per_s: u64,
    /// Not used: live records are published as soon as they are durable. Accepted (default 200)
    /// so that configs written for earlier versions still load.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// When a record leaves the buffer: once the ingest has committed it to the lake
    /// (`commit`, the default: a broker crash loses nothing) or once the broker has it
    /// (`puback`: only for an ingest older than commit acks).
    #[serde(default)]
    pub delete_after: DeleteAfter,
    /// Records the broker acknowledged but the ingest has not confirmed for this long are
    /// sent again (the ingest drops the duplicates).
    #[serde(default = "default_resend_after_s")]
    pub resend_after_s: u64,
    /// What goes on the wire: `native` batches (the default) or `sparkplug-b` (one Sparkplug B
    /// `DDATA` per record, with births, deaths and rebirths; docs/sparkplug.md).
    #[serde(default)]
    pub format: UplinkFormat,
}

/// The uplink's wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UplinkFormat {
    /// Self-describing JSON batches on `moldops/v1/{site}/{edge}/data`.
    #[default]
    Native,
    /// MQTT Sparkplug B: group = site, edge node = edge, one device per machine or peripheral.
    SparkplugB,
}

/// When the uplink removes a record from the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteAfter {
    /// After the ingest's commit ack (`moldops/v1/{site}/{edge}/ack`).
    #[default]
    Commit,
    /// After the broker's PUBACK.
    Puback,
}

/// `[api]`: the local HTTP API serving `/healthz`, `/status` and `/metrics`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address of the local HTTP API; empty disables it.
    #[serde(default = "default_api_listen")]
    pub listen: String,
}

/// Role of a device: a machine produces shots, a peripheral produces samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceRole {
    /// Produces one shot record per injection cycle; its profile needs a `shot_counter`.
    Machine,
    /// Produces one sample record per poll, for the machine named in `machine_id`.
    Peripheral,
}

/// How a device is reached (`protocol` of a `[[devices]]` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// Modbus TCP to `address` (`host:port`).
    ModbusTcp,
    /// Modbus RTU over the serial line in `[devices.serial]`.
    ModbusRtu,
    /// OPC UA over `opc.tcp`, settings and node map in `[devices.opcua]`.
    Opcua,
}

/// `[devices.serial]`: the serial line of a Modbus RTU device. Devices on one RS-485 line
/// (multi-drop) give the same path and settings and different `unit_id`s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    /// Serial port, e.g. `/dev/ttyUSB0`.
    pub path: String,
    /// Baud rate; default 19200.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// `none`, `even` or `odd`.
    #[serde(default = "default_parity")]
    pub parity: String,
    /// Data bits, 5 to 8; default 8.
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    /// Stop bits, 1 or 2; default 1.
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
}

/// One `[[devices]]` entry: a machine or peripheral, how to reach it and what decodes its
/// values.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Unique device id; for machines also the machine id.
    pub id: String,
    /// `machine` (shots) or `peripheral` (samples).
    pub role: DeviceRole,
    /// Machine a peripheral serves (defaults to `id` for machines).
    #[serde(default)]
    pub machine_id: Option<String>,
    /// `modbus-tcp`, `modbus-rtu` or `opcua`.
    pub protocol: Protocol,
    /// `host:port` for Modbus TCP.
    #[serde(default)]
    pub address: Option<String>,
    /// Serial line for Modbus RTU.
    #[serde(default)]
    pub serial: Option<SerialConfig>,
    /// Modbus unit (slave) id; default 1.
    #[serde(default = "default_unit")]
    pub unit_id: u8,
    /// Time between polls, ms (> 0); default 1000. OPC UA: also the subscription's publishing
    /// and sampling interval.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Timeout of each request and of a Modbus TCP connect, ms (> 0); default 1000. OPC UA
    /// connects within 4 × this, at least 5 s.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Overrides the profile's default word order (e.g. one machine in `little` = CDAB).
    #[serde(default)]
    pub word_order: Option<Order>,
    /// Overrides the profile's default byte order inside a register.
    #[serde(default)]
    pub byte_order: Option<Order>,
    /// Profile file (TOML), relative to the config file.
    #[serde(default)]
    pub profile_file: Option<PathBuf>,
    /// Inline profile (alternative to `profile_file`).
    #[serde(default)]
    pub profile: Option<Profile>,
    /// OPC UA endpoint, security and node map (`protocol = "opcua"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opcua: Option<OpcUaConfig>,
}

impl DeviceConfig {
    /// The machine this device belongs to: `machine_id`, else `id`.
    pub fn machine_id(&self) -> &str {
        self.machine_id.as_deref().unwrap_or(&self.id)
    }
}

fn default_model_store() -> PathBuf {
    PathBuf::from("moldops-data/models")
}
fn default_shadow_shots() -> u64 {
    50
}
fn default_max_alarm_rate() -> f64 {
    0.25
}
fn default_false_alarm_tolerance() -> f64 {
    5.0
}
fn default_max_score_shift() -> f64 {
    4.0
}
fn default_buffer_path() -> PathBuf {
    PathBuf::from("moldops-data/edge-buffer")
}
fn default_buffer_bytes() -> u64 {
    512 * 1024 * 1024
}
fn default_batch_records() -> usize {
    500
}
fn default_inflight() -> usize {
    16
}
fn default_catchup_rate() -> u64 {
    20_000
}
fn default_linger_ms() -> u64 {
    200
}
fn default_resend_after_s() -> u64 {
    60
}
fn default_api_listen() -> String {
    "127.0.0.1:9464".into()
}
fn default_baud() -> u32 {
    19200
}
fn default_parity() -> String {
    "even".into()
}
fn default_data_bits() -> u8 {
    8
}
fn default_stop_bits() -> u8 {
    1
}
fn default_unit() -> u8 {
    1
}
fn default_poll_ms() -> u64 {
    1000
}
fn default_timeout_ms() -> u64 {
    1000
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            path: default_buffer_path(),
            max_bytes: default_buffer_bytes(),
            full_policy: FullPolicy::default(),
        }
    }
}
impl Default for UplinkConfig {
    fn default() -> Self {
        UplinkConfig {
            batch_max_records: default_batch_records(),
            max_inflight: default_inflight(),
            catchup_records_per_s: default_catchup_rate(),
            linger_ms: default_linger_ms(),
            delete_after: DeleteAfter::default(),
            resend_after_s: default_resend_after_s(),
            format: UplinkFormat::default(),
        }
    }
}
impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig { listen: default_api_listen() }
    }
}

/// A device with its profile resolved and validated.
#[derive(Debug, Clone)]
pub struct Device {
    /// The device's config entry (OPC UA: `opcua` resolved, node map inline and paths absolute).
    pub cfg: DeviceConfig,
    /// The profile that decodes its values: word/byte order overrides applied; for OPC UA the
    /// one its node map amounts to.
    pub profile: Profile,
}

impl EdgeConfig {
    /// Reads, parses and validates a config file; profile files resolve relative to it.
    pub fn load(path: &Path) -> Result<(EdgeConfig, Vec<Device>), ConfigErrors> {
        let cfg: EdgeConfig = load_toml("config", path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let devices = cfg.resolve(base)?;
        Ok((cfg, devices))
    }

    /// Resolves profiles and validates the whole config, listing every problem.
    pub fn resolve(&self, base: &Path) -> Result<Vec<Device>, ConfigErrors> {
        let mut errs = Vec::new();
        for (field, v) in [("site", &self.site), ("edge_id", &self.edge_id)] {
            if let Err(e) = limits::check_level(field, v) {
                errs.push(format!("{e} ({v:?})"));
            }
        }
        errs.extend(self.broker.problems(base));
        if self.buffer.max_bytes < 64 * 1024 {
            errs.push("buffer.max_bytes must be at least 64 KiB".into());
        }
        if self.uplink.batch_max_records == 0 || self.uplink.max_inflight == 0 {
            errs.push("uplink.batch_max_records and uplink.max_inflight must be > 0".into());
        }
        if self.uplink.resend_after_s == 0 {
            errs.push("uplink.resend_after_s must be at least 1".into());
        }
        if self.uplink.batch_max_records > limits::MAX_RECORDS {
            errs.push(format!(
                "uplink.batch_max_records must be at most {} (what the ingest takes)",
                limits::MAX_RECORDS
            ));
        }
        if let Some(models) = &self.models {
            models.validate(base, &mut errs);
        }
        if self.devices.is_empty() {
            errs.push("no [[devices]] configured".into());
        }
        let machines: Vec<&str> =
            self.devices.iter().filter(|d| d.role == DeviceRole::Machine).map(|d| d.machine_id()).collect();
        errs.extend(crate::gate::config::problems(&self.gates, &machines, base));
        if self.devices.len() > moldops_shared::status::MAX_DEVICES {
            errs.push(format!(
                "{} [[devices]] configured, at most {} per edge (each is reported in the edge's health \
                 records); split them over more edges",
                self.devices.len(),
                moldops_shared::status::MAX_DEVICES
            ));
        }
        let mut ids = std::collections::HashSet::new();
        let mut devices = Vec::new();
        for (i, d) in self.devices.iter().enumerate() {
            let at = format!("devices[{i}] ({})", d.id);
            if !ids.insert(d.id.as_str()) {
                errs.push(format!("{at}: id defined twice"));
            }
            if let Err(e) = limits::check_name("id", &d.id) {
                errs.push(format!("devices[{i}]: {e}"));
            } else if self.uplink.format == UplinkFormat::SparkplugB
                && let Err(e) = limits::check_level("id", &d.id)
            {
                errs.push(format!("{at}: {e}: with uplink.format = \"sparkplug-b\" the id is a topic level"));
            }
            for (field, id) in [("id", d.id.as_str()), ("machine_id", d.machine_id())] {
                if moldops_shared::RESERVED_IDS.contains(&id) {
                    errs.push(format!("{at}: {field} {id:?} is reserved for the edge's own records"));
                }
            }
            if let Err(e) = limits::check_name("machine_id", d.machine_id()) {
                errs.push(format!("{at}: {e}"));
            }
            match (d.protocol, &d.address, &d.serial) {
                (Protocol::ModbusTcp, Some(a), _)
                    if a.parse::<std::net::SocketAddr>().is_err() && !a.contains(':') =>
                {
                    errs.push(format!("{at}: address {a:?} must be host:port"))
                }
                (Protocol::ModbusTcp, None, _) => {
                    errs.push(format!("{at}: modbus-tcp needs address = \"host:port\""))
                }
                (Protocol::ModbusRtu, _, None) => {
                    errs.push(format!("{at}: modbus-rtu needs a [serial] table"))
                }
                (Protocol::ModbusRtu, _, Some(s))
                    if !["none", "even", "odd"].contains(&s.parity.as_str()) =>
                {
                    errs.push(format!("{at}: serial.parity must be none, even or odd"))
                }
                _ => {}
            }
            if let Some(s) = &d.serial {
                if !(5..=8).contains(&s.data_bits) {
                    errs.push(format!("{at}: serial.data_bits must be 5, 6, 7 or 8, not {}", s.data_bits));
                }
                if !(1..=2).contains(&s.stop_bits) {
                    errs.push(format!("{at}: serial.stop_bits must be 1 or 2, not {}", s.stop_bits));
                }
                if s.baud == 0 {
                    errs.push(format!("{at}: serial.baud must be > 0"));
                }
            }
            if d.poll_interval_ms == 0 || d.timeout_ms == 0 {
                errs.push(format!("{at}: poll_interval_ms and timeout_ms must be > 0"));
            }
            if d.protocol == Protocol::Opcua || d.opcua.is_some() {
                if let Some(dev) = crate::sources::opcua::config::resolve_device(d, &at, base, &mut errs) {
                    devices.push(dev);
                }
                continue;
            }
            let profile = match (&d.profile, &d.profile_file) {
                (Some(p), None) => Some(p.clone()),
                (None, Some(f)) => match load_profile(&resolve_path(base, f)) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        errs.push(format!("{at}: {e}"));
                        None
                    }
                },
                (Some(_), Some(_)) => {
                    errs.push(format!("{at}: give either profile or profile_file, not both"));
                    None
                }
                (None, None) => {
                    errs.push(format!("{at}: needs profile_file or an inline [devices.profile]"));
                    None
                }
            };
            let Some(mut profile) = profile else { continue };
            if let Some(w) = d.word_order {
                profile.word_order = w;
            }
            if let Some(b) = d.byte_order {
                profile.byte_order = b;
            }
            for e in profile.validate() {
                errs.push(format!("{at}: profile {}: {e}", profile.name));
            }
            if d.role == DeviceRole::Machine && profile.shot_counter.is_none() {
                errs.push(format!("{at}: a machine's profile needs shot_counter"));
            }
            devices.push(Device { cfg: d.clone(), profile });
        }
        errs.extend(crate::sources::serial_line::check_lines(&self.devices));
        if errs.is_empty() { Ok(devices) } else { Err(ConfigErrors(errs)) }
    }
}

/// Loads a profile file (TOML).
pub fn load_profile(path: &Path) -> Result<Profile, TomlFileError> {
    load_toml("profile", path)
}

fn resolve_path(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}
