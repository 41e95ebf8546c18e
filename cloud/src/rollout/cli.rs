//! `moldops-cloud rollout publish|status|rollback`, and the bundle sources `score` shares.

use super::{Link, Plan, fleet};
use crate::config::{self, Overrides};
use crate::registry::Registry;
use crate::registry::cli::RegistryLocation;
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use moldops_shared::bundle::{Bundle, ModelKey, parse_key_hex};
use moldops_shared::rollout::DEFAULT_CHUNK_BYTES;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Arguments of `moldops-cloud rollout`.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// `publish`, `status` or `rollback`.
    #[command(subcommand)]
    pub command: RolloutCommand,
}

/// Broker and site of the fleet.
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// Config file (TOML with [broker]).
    #[arg(long, env = "MOLDOPS_CLOUD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Broker host (overrides the config file's; enough on its own without a config file).
    #[arg(long)]
    pub broker_host: Option<String>,
    /// Broker port (overrides the config file's).
    #[arg(long)]
    pub broker_port: Option<u16>,
    /// Site of the edges.
    #[arg(long, default_value = "demo-plant")]
    pub site: String,
    /// Edge ids (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    pub edges: Vec<String>,
    /// Print JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The verbs of `moldops-cloud rollout`.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Send a bundle to the edges: canaries first, the rest once the canaries run it.
    Publish {
        /// Broker, site and the edges to update (at least one).
        #[command(flatten)]
        fleet: FleetArgs,
        /// Which bundles to send (default: every key's production version in the registry).
        #[command(flatten)]
        source: BundleSource,
        /// Edges that go first (default: the first of --edges).
        #[arg(long, value_delimiter = ',')]
        canary: Vec<String>,
        /// Failed edges tolerated before the rollout stops.
        #[arg(long, default_value_t = 0)]
        max_failures: usize,
        /// Seconds each stage waits for the edges' final states.
        #[arg(long, default_value_t = 600)]
        timeout_s: u64,
        /// Chunk size in KiB.
        #[arg(long, default_value_t = DEFAULT_CHUNK_BYTES / 1024)]
        chunk_kib: u32,
        /// Registry public key (hex, or a file holding it): refuse to publish a bundle the
        /// edges would refuse.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Each edge's reported model state.
    Status {
        /// Broker, site and the edges to show (none given: every edge of the site that reports).
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Send the edges back to the bundle they ran before the current one. Edges install an
    /// older version only with a rollback statement signed by the registry key, so this
    /// needs the signing key.
    Rollback {
        /// Broker, site and the edges to roll back (none given: every edge reporting the key).
        #[command(flatten)]
        fleet: FleetArgs,
        /// Model key (`machine` or `machine/mold`).
        #[arg(long)]
        key: String,
        /// Seconds to wait for the edges' final states.
        #[arg(long, default_value_t = 300)]
        timeout_s: u64,
        /// The registry's signing key (default: $MOLDOPS_SIGNING_KEY, else
        /// $XDG_CONFIG_HOME/moldops/signing.key, else ~/.config/moldops/signing.key).
        #[arg(long, env = crate::registry::keys::KEY_ENV)]
        signing_key: Option<PathBuf>,
        /// How long the signed statement stays valid, seconds.
        #[arg(long, default_value_t = 3600)]
        valid_for_s: u64,
    },
}

/// Which bundle: a folder or file, or a registry version (default: the key's production one).
#[derive(Debug, Clone, Args)]
pub struct BundleSource {
    /// Bundle folder (manifest.json, manifest.sig, model.onnx) or transport file.
    #[arg(long, conflicts_with_all = ["model_key", "version"])]
    pub bundle: Option<PathBuf>,
    /// Model key in the registry (`machine` or `machine/mold`); without it and without
    /// --bundle: the production version of every key in the registry.
    #[arg(long = "model-key")]
    pub model_key: Option<String>,
    /// Registry version (default: the key's production version).
    #[arg(long, requires = "model_key")]
    pub version: Option<u32>,
    /// Where the registry is (`--registry`, `--data-dir`).
    #[command(flatten)]
    pub registry: RegistryLocation,
}

impl BundleSource {
    /// The bundles, and whether the registry already verified them against its signing key.
    pub fn load(&self) -> Result<(Vec<Bundle>, bool)> {
        if let Some(p) = &self.bundle {
            return Ok((vec![read_bundle(p)?], false));
        }
        let registry = self.registry.path()?;
        if let Some(label) = self.model_key.as_deref() {
            return Ok((vec![registry_bundle(&registry, &ModelKey::parse(label)?, self.version)?], true));
        }
        let reg = Registry::open(&registry)?;
        let mut out = Vec::new();
        for key in reg.keys()? {
            match reg.production(&key)? {
                Some(p) => out.push(registry_bundle(&registry, &key, Some(p.version))?),
                None => tracing::warn!(key = %key.label(), "no production version; skipped"),
            }
        }
        if out.is_empty() {
            bail!(
                "the registry {} has no production version (give --bundle or --model-key)",
                registry.display()
            );
        }
        Ok((out, true))
    }
}

/// A registry version's bundle (verified by the registry); `None`: the production version.
pub fn registry_bundle(registry: &Path, key: &ModelKey, version: Option<u32>) -> Result<Bundle> {
    let reg = Registry::open_existing(registry)?;
    let version = match version {
        Some(v) => v,
        None => {
            reg.production(key)?
                .ok_or_else(|| anyhow!("{} has no production version in the registry", key.label()))?
                .version
        }
    };
    let bytes = reg.bundle_bytes(key, version)?;
    Bundle::from_bytes(&bytes).map_err(|e| anyhow!("registry bundle {}@{version}: {e}", key.label()))
}

/// Reads a bundle from a folder or a transport file.
pub fn read_bundle(path: &Path) -> Result<Bundle> {
    if path.is_dir() {
        Bundle::read_dir(path).with_context(|| format!("reading bundle folder {}", path.display()))
    } else {
        let bytes = std::fs::read(path).with_context(|| format!("reading bundle {}", path.display()))?;
        Bundle::from_bytes(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))
    }
}

/// A public key given as hex or as a file holding the hex.
pub fn read_key(arg: &str) -> Result<[u8; 32]> {
    let p = Path::new(arg);
    let text = if p.is_file() { std::fs::read_to_string(p)? } else { arg.to_string() };
    parse_key_hex(&text).map_err(|e| anyhow!("public key {arg:?}: {e}"))
}

async fn connect(f: &FleetArgs) -> Result<Link> {
    let over =
        Overrides { broker_host: f.broker_host.clone(), broker_port: f.broker_port, ..Default::default() };
    let cfg = config::ingest_config(f.config.as_deref(), &over)?;
    let id = format!("moldops-rollout-{}", std::process::id());
    Link::connect(&cfg.broker, &cfg.base_dir, &id).await
}

/// Runs the verb; fails when an edge did not take (or roll back to) the bundle.
pub fn run(args: RolloutArgs) -> Result<()> {
    let rt = moldops_common::runtime::build()?;
    rt.block_on(run_async(args))
}

async fn run_async(args: RolloutArgs) -> Result<()> {
    match args.command {
        RolloutCommand::Publish {
            fleet: f,
            source,
            canary,
            max_failures,
            timeout_s,
            chunk_kib,
            public_key,
        } => {
            let (bundles, _) = source.load()?;
            if let Some(k) = public_key {
                let k = read_key(&k)?;
                for b in &bundles {
                    b.verify(&k).map_err(|e| anyhow!("the edges would refuse this bundle: {e}"))?;
                }
            }
            if f.edges.is_empty() {
                bail!("--edges: name at least one edge");
            }
            let plan = Plan {
                site: f.site.clone(),
                edges: f.edges.clone(),
                canaries: canary,
                max_failures,
                timeout: Duration::from_secs(timeout_s),
                chunk_bytes: chunk_kib.max(1) * 1024,
            };
            let mut link = connect(&f).await?;
            let mut problems = Vec::new();
            for bundle in &bundles {
                let report = fleet::publish(&mut link, bundle, &plan).await?;
                if f.json {
                    println!("{}", serde_json::to_string(&report)?);
                } else {
                    println!(
                        "{} v{} ({} bytes, {} chunks)",
                        report.model_key, report.bundle.version, report.bundle.bytes, report.bundle.chunks
                    );
                    print_outcomes("canary", &report.canaries);
                    print_outcomes("rest", &report.rest);
                }
                match report.stopped {
                    Some(why) => problems.push(format!("{}: rollout stopped: {why}", report.model_key)),
                    None if report.failures() > 0 => problems.push(format!(
                        "{}: {} edge(s) did not take the bundle",
                        report.model_key,
                        report.failures()
                    )),
                    None => {}
                }
            }
            link.close().await;
            if problems.is_empty() { Ok(()) } else { bail!("{}", problems.join("; ")) }
        }
        RolloutCommand::Status { fleet: f } => {
            let mut link = connect(&f).await?;
            let reports = fleet::status(&mut link, &f.site, &f.edges).await?;
            link.close().await;
            if f.json {
                println!("{}", serde_json::to_string(&reports)?);
                return Ok(());
            }
            println!(
                "{:<16} {:<16} {:<12} {:>7} {:>7} {:>8}  reason",
                "edge", "model key", "state", "target", "active", "previous"
            );
            for r in &reports {
                for (label, m) in &r.models {
                    let v = |b: &Option<moldops_shared::rollout::BundleRef>| {
                        b.as_ref().map_or("-".into(), |b| format!("v{}", b.version))
                    };
                    println!(
                        "{:<16} {:<16} {:<12} {:>7} {:>7} {:>8}  {}",
                        r.edge_id,
                        label,
                        m.state.as_str(),
                        v(&m.target),
                        v(&m.active),
                        v(&m.previous),
                        m.reason.as_deref().unwrap_or("")
                    );
                }
            }
            Ok(())
        }
        RolloutCommand::Rollback { fleet: f, key, timeout_s, signing_key, valid_for_s } => {
            let key = ModelKey::parse(&key)?;
            let path = crate::registry::keys::key_path(signing_key.as_deref())?;
            let signer = fleet::RollbackSigner {
                seed: crate::registry::keys::load_signing_key(&path)?,
                valid_for: Duration::from_secs(valid_for_s),
            };
            let mut link = connect(&f).await?;
            let outcomes =
                fleet::rollback(&mut link, &f.site, &key, &f.edges, Duration::from_secs(timeout_s), &signer)
                    .await?;
            link.close().await;
            if f.json {
                println!("{}", serde_json::to_string(&outcomes)?);
            } else {
                print_outcomes("rollback", &outcomes);
            }
            let failed = outcomes.iter().filter(|o| !o.ok()).count();
            if failed > 0 { bail!("{failed} edge(s) did not roll back") } else { Ok(()) }
        }
    }
}

fn print_outcomes(stage: &str, outcomes: &[fleet::EdgeOutcome]) {
    for o in outcomes {
        let state = o.state.map_or("no answer", |s| s.as_str());
        println!("{stage:<9} {:<16} {state:<12} {}", o.edge_id, o.reason.as_deref().unwrap_or(""));
    }
}
