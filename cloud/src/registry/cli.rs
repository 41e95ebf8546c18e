//! `moldops-cloud models …`: list, show, promote, archive, keygen, export-bundle. Every command
//! is non-interactive, prints a table or (`--json`) one JSON document on stdout, and exits
//! non-zero on failure (a candidate the promotion gate refuses is an outcome, not a failure).

use super::gate::{GATE_FILE, GateFile, Outcome};
use super::promote::{PromoteOptions, PromoteReport, promote_latest, promote_one};
use super::{Registry, VersionInfo, keys};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use moldops_shared::bundle::{Bundle, ModelKey};
use std::path::{Path, PathBuf};

/// Default data folder.
pub const DEFAULT_DATA_DIR: &str = "moldops-data";

/// Where the registry is.
#[derive(Debug, Clone, Args)]
pub struct RegistryLocation {
    /// Registry folder (default: <data-dir>/registry).
    #[arg(long, env = "MOLDOPS_REGISTRY")]
    pub registry: Option<PathBuf>,
    /// Data folder (default: moldops-data).
    #[arg(long, env = "MOLDOPS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

impl RegistryLocation {
    /// `--registry`, else `<data-dir>/registry`, else `moldops-data/registry`; an `s3://`
    /// location becomes this process's local copy ([`crate::config::working_folder`]).
    pub fn path(&self) -> Result<PathBuf> {
        crate::config::working_folder(&self.location())
    }

    /// The location as given: a folder or an `s3://` URL.
    pub fn location(&self) -> PathBuf {
        match (&self.registry, &self.data_dir) {
            (Some(r), _) => r.clone(),
            (None, Some(d)) => d.join("registry"),
            (None, None) => Path::new(DEFAULT_DATA_DIR).join("registry"),
        }
    }
}

/// Arguments of `moldops-cloud models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// The `models` subcommand to run.
    #[command(subcommand)]
    pub command: ModelsCommand,
}

/// The `models` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Versions per model key with stage and headline metrics.
    List {
        /// Where the registry is.
        #[command(flatten)]
        loc: RegistryLocation,
        /// Only this key (`M1` or `M1/MOLD`).
        #[arg(long)]
        key: Option<String>,
        /// Print the versions as one JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One version: record (metrics, lineage), stage, manifest and the key's stage history.
    Show(VersionArgs),
    /// Make a version production; the previous production is archived (re-promoting an
    /// archived version is the rollback). `--latest` promotes, for every key (or `--key`), the
    /// newest version when it is a candidate — what a pipeline runs after `train`. A candidate
    /// must pass the promotion gate (held-out data, false alarms, not worse than production on
    /// the same held-out shots) unless `--force`; a refused one stays a candidate.
    Promote(PromoteArgs),
    /// Archive a candidate or production version.
    Archive(VersionArgs),
    /// Generate the registry's Ed25519 signing key (file mode 0600) and print its public key.
    Keygen {
        /// Key file (default: $MOLDOPS_SIGNING_KEY, else $XDG_CONFIG_HOME/moldops/signing.key,
        /// else ~/.config/moldops/signing.key).
        #[arg(long, env = "MOLDOPS_SIGNING_KEY")]
        out: Option<PathBuf>,
        /// Replace an existing key (bundles signed with the old one stop verifying on edges).
        #[arg(long)]
        force: bool,
        /// Print the key file, public key file and public key as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a version's signed bundle in transport form (one file) after verifying it.
    ExportBundle {
        /// Where the registry is.
        #[command(flatten)]
        loc: RegistryLocation,
        /// Model key: `M1` or `M1/MOLD`.
        #[arg(long)]
        key: String,
        /// Version (default: the production version).
        #[arg(long)]
        version: Option<u32>,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Verify against this public key (hex or file) instead of the recorded signer.
        #[arg(long)]
        public_key: Option<String>,
        /// Print key, version, output file and size in bytes as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Arguments of `models promote`.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// Where the registry is.
    #[command(flatten)]
    pub loc: RegistryLocation,
    /// Model key: `M1` or `M1/MOLD` (with --latest: only this key).
    #[arg(long, required_unless_present = "latest")]
    pub key: Option<String>,
    /// Version to promote (required without --latest, refused with it).
    #[arg(long, required_unless_present = "latest", conflicts_with = "latest")]
    pub version: Option<u32>,
    /// The newest version of each key, when it is a candidate (keys whose newest version is
    /// already production or archived are left alone).
    #[arg(long)]
    pub latest: bool,
    /// Promote without the gate: a person's explicit choice, recorded as forced.
    #[arg(long)]
    pub force: bool,
    /// Lake whose etl_data the gate scores the candidate and the production version on
    /// (default: <data-dir>/lake when --data-dir is given).
    #[arg(long)]
    pub lake: Option<PathBuf>,
    /// Gate settings file (default: gate.toml in the registry folder, when there is one).
    #[arg(long)]
    pub gate_config: Option<PathBuf>,
    /// Print the decisions (gate outcome, reasons, transitions) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `models show` and `models archive`: one version of one key.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Where the registry is.
    #[command(flatten)]
    pub loc: RegistryLocation,
    /// Model key: `M1` or `M1/MOLD`.
    #[arg(long)]
    pub key: String,
    /// Version number.
    #[arg(long)]
    pub version: u32,
    /// Print only JSON (show: version, manifest and stage history; archive: the transition made).
    #[arg(long)]
    pub json: bool,
}

fn parse_key(label: &str) -> Result<ModelKey> {
    ModelKey::parse(label).with_context(|| format!("--key {label:?}"))
}

/// `models promote`'s settings: `--force`, the lake and the gate file.
fn promote_options(a: &PromoteArgs) -> Result<PromoteOptions> {
    let lake = match (&a.lake, &a.loc.data_dir) {
        (Some(l), _) => Some((l.clone(), true)),
        (None, Some(d)) => Some((d.join("lake"), false)),
        (None, None) => None,
    };
    let gate = match &a.gate_config {
        Some(path) => GateFile::load(path, true)?,
        None => GateFile::load(&a.loc.path()?.join(GATE_FILE), false)?,
    };
    Ok(PromoteOptions { force: a.force, lake, gate: gate.unwrap_or_default() })
}

/// `models promote`: one version, or the newest candidate of every key (`--latest`), through
/// the gate unless `--force`.
pub fn promote(a: &PromoteArgs) -> Result<PromoteReport> {
    let reg = Registry::open(&a.loc.path()?)?;
    let opts = promote_options(a)?;
    let key = a.key.as_deref().map(parse_key).transpose()?;
    if let (Some(key), Some(version)) = (&key, a.version) {
        return promote_one(&reg, key, version, &opts);
    }
    let keys = match key {
        Some(k) => vec![k],
        None => reg.keys()?,
    };
    promote_latest(&reg, &keys, &opts)
}

fn print_promotions(report: &PromoteReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    for d in &report.decisions {
        match d.gate {
            Some(Outcome::Refused) => {
                println!("{}@{}: refused by the gate; stays a candidate:", d.key.label(), d.version);
                for r in &d.reasons {
                    println!("  - {r}");
                }
            }
            _ => print_transitions(&d.transitions, false)?,
        }
    }
    Ok(())
}

/// Runs a `models` command.
pub fn run(args: ModelsArgs) -> Result<()> {
    match args.command {
        ModelsCommand::List { loc, key, json } => list(&loc, key.as_deref(), json),
        ModelsCommand::Show(a) => show(&a),
        ModelsCommand::Promote(a) => print_promotions(&promote(&a)?, a.json),
        ModelsCommand::Archive(a) => {
            let reg = Registry::open(&a.loc.path()?)?;
            let done = vec![reg.archive(&parse_key(&a.key)?, a.version)?];
            print_transitions(&done, a.json)
        }
        ModelsCommand::Keygen { out, force, json } => {
            let path = keys::key_path(out.as_deref())?;
            let public = keys::keygen(&path, force)?;
            if json {
                let v = serde_json::json!({"private_key_file": path, "public_key": public, "public_key_file": keys::public_path(&path)});
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "signing key written to {} (mode 0600; keep it out of any repository)",
                    path.display()
                );
                println!("public key (give it to the edges' [model] public_key): {public}");
            }
            Ok(())
        }
        ModelsCommand::ExportBundle { loc, key, version, out, public_key, json } => {
            let reg = Registry::open(&loc.path()?)?;
            let key = parse_key(&key)?;
            let version = match version {
                Some(v) => v,
                None => reg
                    .state(&key)?
                    .production()
                    .with_context(|| format!("{} has no production version", key.label()))?,
            };
            let bytes = reg.bundle_bytes(&key, version)?;
            if let Some(pk) = public_key {
                let pk = keys::parse_public_key(&pk)?;
                Bundle::from_bytes(&bytes)?
                    .verify(&pk)
                    .context("bundle does not verify against --public-key")?;
            }
            crate::lake::write::write_atomic(&out, &bytes)?;
            if json {
                let v = serde_json::json!({"key": key, "version": version, "out": out, "bytes": bytes.len()});
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{}@{version}: {} bytes → {}", key.label(), bytes.len(), out.display());
            }
            Ok(())
        }
    }
}

fn list(loc: &RegistryLocation, key: Option<&str>, json: bool) -> Result<()> {
    let reg = Registry::open(&loc.path()?)?;
    let keys = match key {
        Some(k) => vec![parse_key(k)?],
        None => reg.keys()?,
    };
    let mut all: Vec<VersionInfo> = Vec::new();
    for k in &keys {
        all.extend(reg.versions(k)?);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    println!(
        "{:<24} {:>7} {:<11} {:<8} {:<8} {:>9} {:>7} {:>7} {:<24}",
        "key", "version", "stage", "gate", "kind", "threshold", "roc_auc", "f1", "created_at"
    );
    for v in &all {
        let metric = |name: &str| {
            v.record
                .metrics
                .get(name)
                .and_then(serde_json::Value::as_f64)
                .map_or("-".to_string(), |x| format!("{x:.3}"))
        };
        let gate = match v.gate.as_ref().map(|g| g.outcome) {
            Some(Outcome::Passed) => "passed",
            Some(Outcome::Refused) => "refused",
            Some(Outcome::Forced) => "forced",
            None => "-",
        };
        println!(
            "{:<24} {:>7} {:<11} {:<8} {:<8} {:>9.4} {:>7} {:>7} {:<24}",
            v.record.key.label(),
            v.record.version,
            v.stage.to_string(),
            gate,
            v.record.kind,
            v.record.threshold,
            metric("roc_auc"),
            metric("f1"),
            v.record.created_at
        );
    }
    if all.is_empty() {
        println!("(no models in {})", reg.root().display());
    }
    Ok(())
}

fn show(a: &VersionArgs) -> Result<()> {
    let reg = Registry::open(&a.loc.path()?)?;
    let key = parse_key(&a.key)?;
    let info = reg.version(&key, a.version)?;
    let manifest = Bundle::read_dir(&info.bundle_dir)
        .with_context(|| format!("reading {}", info.bundle_dir.display()))?
        .manifest_unverified()?;
    let history: Vec<_> = reg.state(&key)?.history.into_iter().filter(|t| t.version == a.version).collect();
    let v = serde_json::json!({"version": info, "manifest": manifest, "history": history});
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{}@{} · {} · {}", key.label(), a.version, info.stage, info.record.kind);
        println!("bundle: {}", info.bundle_dir.display());
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}

fn print_transitions(done: &[super::Transition], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(done)?);
    } else {
        for t in done {
            let from = t.from.map_or("-".to_string(), |s| s.to_string());
            println!("version {}: {from} → {} ({})", t.version, t.to, t.reason);
        }
    }
    Ok(())
}
