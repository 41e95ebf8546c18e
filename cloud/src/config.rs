//! Cloud configuration: the `cloud.toml` file (`[broker]`, `[lake]`, `[ingest]`), command-line
//! overrides on top of it, and validation that lists every problem at once, each naming its
//! field. Relative TLS files resolve against the config file's folder; the lake path is taken
//! as given (relative to the working folder, like `./moldops-data/`) and made absolute here.

use crate::ingest::{DEFAULT_CLIENT_ID, DEFAULT_MAX_GROUP_RECORDS, IngestConfig};
pub use moldops_common::config::ConfigErrors;
use moldops_common::config::load_toml;
use moldops_common::mqtt::BrokerConfig;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Default lake folder, relative to the working folder.
pub const DEFAULT_LAKE: &str = "moldops-data/lake";

/// The config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudFile {
    /// `[broker]`: the MQTT broker; when absent, the host must come from `--broker-host`.
    #[serde(default)]
    pub broker: Option<BrokerConfig>,
    /// `[lake]`: where the lake lives.
    #[serde(default)]
    pub lake: LakeSection,
    /// `[ingest]`: the ingest's MQTT client id and group-commit size.
    #[serde(default)]
    pub ingest: IngestSection,
}

/// `[lake]`: the lake's root folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeSection {
    /// Lake root folder (default `moldops-data/lake`, relative to the working folder).
    #[serde(default = "default_lake")]
    pub path: PathBuf,
}

/// `[ingest]`: settings of the MQTT → lake ingest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSection {
    /// MQTT client id (default `moldops-ingest`); keep it fixed so the broker keeps the session.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Upper bound of records per group commit.
    #[serde(default = "default_max_group")]
    pub max_group_records: usize,
    /// Replicas: the MQTT share group of the ingests that write one lake together, each with
    /// its own `client_id` (docs/lake.md, "Ingest replicas"); none by default.
    #[serde(default)]
    pub share_group: Option<String>,
}

impl Default for LakeSection {
    fn default() -> Self {
        LakeSection { path: default_lake() }
    }
}
impl Default for IngestSection {
    fn default() -> Self {
        IngestSection {
            client_id: default_client_id(),
            max_group_records: default_max_group(),
            share_group: None,
        }
    }
}
fn default_lake() -> PathBuf {
    PathBuf::from(DEFAULT_LAKE)
}
fn default_client_id() -> String {
    DEFAULT_CLIENT_ID.to_string()
}
fn default_max_group() -> usize {
    DEFAULT_MAX_GROUP_RECORDS
}

/// Command-line values that override the file (or stand in for it).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--broker-host`: replaces `[broker] host`; enough on its own without a `[broker]` section.
    pub broker_host: Option<String>,
    /// `--broker-port`: replaces `[broker] port`.
    pub broker_port: Option<u16>,
    /// `--lake`: replaces `[lake] path`.
    pub lake: Option<PathBuf>,
    /// `--client-id`: replaces `[ingest] client_id`.
    pub client_id: Option<String>,
    /// `--share-group`: replaces `[ingest] share_group`.
    pub share_group: Option<String>,
}

/// Reads the config file when given (or an empty one), applies the overrides, validates.
pub fn ingest_config(file: Option<&Path>, over: &Overrides) -> Result<IngestConfig, ConfigErrors> {
    let (parsed, base) = match file {
        Some(path) => (load_file(path)?, path.parent().unwrap_or(Path::new(".")).to_path_buf()),
        None => (CloudFile::default(), PathBuf::from(".")),
    };
    let mut errs = Vec::new();
    let mut broker = match (parsed.broker, &over.broker_host) {
        (Some(mut b), host) => {
            if let Some(h) = host {
                b.host = h.clone();
            }
            b
        }
        (None, Some(h)) => BrokerConfig::with_host(h),
        (None, None) => {
            errs.push("broker: no [broker] section in the config file and no --broker-host".to_string());
            BrokerConfig::with_host("unset")
        }
    };
    if let Some(port) = over.broker_port {
        broker.port = port;
    }
    let lake = over.lake.clone().unwrap_or(parsed.lake.path);
    let lake = if crate::storage::mirror::is_remote(&lake) { lake } else { absolute(&lake) };
    let mut cfg = IngestConfig::new(broker, lake);
    cfg.base_dir = absolute(&base);
    cfg.client_id = over.client_id.clone().unwrap_or(parsed.ingest.client_id);
    cfg.max_group_records = parsed.ingest.max_group_records;
    cfg.share_group = over.share_group.clone().or(parsed.ingest.share_group);
    if let Err(ConfigErrors(more)) = cfg.validate() {
        errs.extend(more);
    }
    if errs.is_empty() { Ok(cfg) } else { Err(ConfigErrors(errs)) }
}

/// The lake folder from the config file (when given) or the default, `--lake` winning; an
/// `s3://` lake becomes this process's local copy of it ([`crate::storage::mirror::local`]:
/// pulled now, published when the verb succeeds).
pub fn lake_path(file: Option<&Path>, lake: Option<&Path>) -> anyhow::Result<PathBuf> {
    working_folder(&lake_location(file, lake)?)
}

/// The lake as given: `lake`, else the config file's `[lake] path`, else the default (a path
/// or an `s3://` URL, not yet a working folder).
pub fn lake_location(file: Option<&Path>, lake: Option<&Path>) -> anyhow::Result<PathBuf> {
    Ok(match lake {
        Some(l) => l.to_path_buf(),
        None => match file {
            Some(path) => load_file(path)?.lake.path,
            None => CloudFile::default().lake.path,
        },
    })
}

/// The folder a batch verb works in for a lake, registry or data location: a bucket's local
/// copy for an `s3://` URL ([`crate::storage::mirror::local`]), else the absolute path.
pub fn working_folder(location: &Path) -> anyhow::Result<PathBuf> {
    let local = crate::storage::mirror::local(location)?;
    Ok(if crate::storage::mirror::is_remote(location) { local } else { absolute(&local) })
}

fn load_file(path: &Path) -> Result<CloudFile, ConfigErrors> {
    Ok(load_toml("config", path)?)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_alone_are_enough_and_override_the_file() {
        let cfg =
            ingest_config(None, &Overrides { broker_host: Some("localhost".into()), ..Default::default() })
                .expect("flags alone");
        assert_eq!((cfg.broker.port, cfg.client_id.as_str()), (1883, "moldops-ingest"));
        assert!(cfg.lake.is_absolute() && cfg.lake.ends_with("moldops-data/lake"));

        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("cloud.toml");
        let text = "[broker]\nhost = \"mqtt\"\nport = 8883\n[lake]\npath = \"/data/lake\"\n\
                    [ingest]\nclient_id = \"ing-1\"\nmax_group_records = 500\n";
        std::fs::write(&file, text).expect("write");
        let over = Overrides { broker_port: Some(1884), lake: Some("/x".into()), ..Default::default() };
        let cfg = ingest_config(Some(&file), &over).expect("file");
        assert_eq!((cfg.broker.host.as_str(), cfg.broker.port), ("mqtt", 1884));
        assert_eq!((cfg.lake.as_path(), cfg.client_id.as_str()), (Path::new("/x"), "ing-1"));
        assert_eq!(cfg.max_group_records, 500);
        assert_eq!(cfg.base_dir, dir.path());
    }

    #[test]
    fn every_problem_is_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("cloud.toml");
        let text = "[broker]\nhost = \" \"\nport = 0\npassword = \"p\"\n[broker.tls]\nca_file = \"ca.pem\"\n\
                    cert_file = \"c.pem\"\n[ingest]\nclient_id = \"\"\nmax_group_records = 0\n";
        std::fs::write(&file, text).expect("write");
        let errs = ingest_config(Some(&file), &Overrides::default()).expect_err("invalid").0;
        let all = errs.join("\n");
        for needle in [
            "broker.host",
            "broker.port",
            "broker.password",
            "broker.tls.ca_file",
            "broker.tls.cert_file",
            "cert_file and key_file",
            "ingest.client_id",
            "ingest.max_group_records",
        ] {
            assert!(all.contains(needle), "missing {needle} in {all}");
        }
        let missing = ingest_config(None, &Overrides::default()).expect_err("no broker").0;
        assert!(missing[0].contains("--broker-host"));
        std::fs::write(&file, "[lake]\npaht = \"x\"\n").expect("write");
        let typo = ingest_config(Some(&file), &Overrides::default()).expect_err("typo").0;
        assert!(typo[0].contains("paht"), "{typo:?}");
    }
}

/// `--lake` / `--config`: where a command finds the lake (flattened into its arguments).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LakeArgs {
    /// Lake folder (default: [lake] path of --config, else moldops-data/lake).
    #[arg(long)]
    pub lake: Option<PathBuf>,
    /// Config file to take the lake folder from.
    #[arg(long, env = "MOLDOPS_CLOUD_CONFIG")]
    pub config: Option<PathBuf>,
}

impl LakeArgs {
    /// The lake folder ([`lake_path`]).
    pub fn path(&self) -> anyhow::Result<PathBuf> {
        lake_path(self.config.as_deref(), self.lake.as_deref())
    }

    /// The lake as given ([`lake_location`]).
    pub fn location(&self) -> anyhow::Result<PathBuf> {
        lake_location(self.config.as_deref(), self.lake.as_deref())
    }
}

/// A stage's settings: the TOML file when given (unknown keys refused by the type), else the
/// defaults.
pub fn settings<T: serde::de::DeserializeOwned + Default>(file: Option<&Path>) -> anyhow::Result<T> {
    use anyhow::Context;
    let Some(p) = file else { return Ok(T::default()) };
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))
}

/// `--device`, shared by the commands that train a network (`train`, `augment`'s GAN).
#[derive(Debug, Clone, Copy, Default, clap::Args, serde::Serialize, serde::Deserialize)]
pub struct DeviceArgs {
    /// Where networks train: auto (a GPU when this build and machine have one, else the CPU),
    /// cpu, gpu[:N] or cuda[:N] (the Nth GPU / NVIDIA GPU; an error without one, never a
    /// silent fall-back to the CPU). The pipeline's Kubernetes GPU Jobs set MOLDOPS_DEVICE.
    #[arg(long, env = "MOLDOPS_DEVICE", default_value = "auto", alias = "backend")]
    pub device: moldops_models::device::DeviceRequest,
}

impl DeviceArgs {
    /// Resolves the request to a device (see `moldops_models::device`).
    pub fn resolve(
        &self,
    ) -> Result<moldops_models::device::TrainingDevice, moldops_models::device::DeviceError> {
        moldops_models::device::resolve(self.device)
    }
}
