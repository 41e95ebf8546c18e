//! `moldops-cloud` command line: `ingest` (MQTT → lake) and `lake summary`. Logs go to stderr
//! (`RUST_LOG`, default `info`); stdout carries only machine-readable lines and reports.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use moldops_cloud::config::{self, ConfigErrors, Overrides};
use moldops_cloud::{ingest, lake};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "moldops-cloud",
    version,
    about = "moldops cloud: MQTT ingest into a Parquet lake, and lake inspection"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Subscribe to every edge's data topic and write the batches into the lake.
    Ingest(IngestArgs),
    /// The whole data path on one machine: simulated plant → edge → embedded broker → ingest → lake.
    Demo(moldops_cloud::demo::DemoArgs),
    /// Load historical shot/peripheral tables (CSV, Parquet) or quality labels into the lake.
    Import(moldops_cloud::import::cli::ImportArgs),
    /// Merge shots, peripheral readings and labels into etl_data (incremental).
    Etl(moldops_cloud::etl::cli::EtlArgs),
    /// Outlier fence, weak labels (MDS + DBSCAN), GAN defect rows behind a quality gate → aug_data + report.
    Augment(moldops_cloud::augment::cli::AugmentArgs),
    /// Grid search of the original's eight classifiers per machine (and mold): stratified seeded
    /// k-fold, F1 / PR-AUC / balanced accuracy, real vs real + synthetic → evaluation record.
    Evaluate(moldops_cloud::evaluate::cli::EvaluateArgs),
    /// The learning DAG (import → etl → augment → evaluate ∥ train → register → rollout),
    /// locally or as Kubernetes Jobs; runs, resume, schedule.
    Pipeline(moldops_cloud::pipeline::cli::PipelineArgs),
    /// Send a signed model bundle to edges over MQTT (canaries first), show their states, roll back.
    Rollout(moldops_cloud::rollout::cli::RolloutArgs),
    /// Batch scoring: score etl_data with a bundle's model, as the edge does, into `scores/`.
    Score(moldops_cloud::rollout::cli::ScoreArgs),
    /// Train the LSTM autoencoder (and its baseline) per model key on etl_data, evaluate on a
    /// time-ordered held-out split, export ONNX and register a signed candidate bundle.
    Train(moldops_cloud::train::TrainArgs),
    /// The model registry: list, show, promote, archive, keygen, export-bundle.
    Models(moldops_cloud::registry::cli::ModelsArgs),
    /// Read-only HTTP API over a data folder: /healthz, /lake, /models, /pipeline/runs.
    Api(moldops_cloud::api::ApiArgs),
    /// Inspect the lake, or compact it.
    Lake {
        #[command(subcommand)]
        command: LakeCommand,
    },
}

#[derive(Debug, Args)]
struct IngestArgs {
    /// Config file (TOML with [broker], [lake], [ingest]).
    #[arg(long, env = "MOLDOPS_CLOUD_CONFIG")]
    config: Option<PathBuf>,
    /// Broker host (overrides [broker] host; enough on its own without a config file).
    #[arg(long)]
    broker_host: Option<String>,
    /// Broker port (overrides [broker] port).
    #[arg(long)]
    broker_port: Option<u16>,
    /// Lake folder (overrides [lake] path).
    #[arg(long)]
    lake: Option<PathBuf>,
    /// MQTT client id (overrides [ingest] client_id); keep it fixed so the broker keeps the session.
    #[arg(long)]
    client_id: Option<String>,
}

#[derive(Debug, Subcommand)]
enum LakeCommand {
    /// What has arrived: rows, edges, time range, files and shots per dataset and machine,
    /// and the quarantine.
    Summary {
        /// Lake folder (default: [lake] path of --config, else moldops-data/lake).
        #[arg(long)]
        lake: Option<PathBuf>,
        /// Config file to take the lake folder from.
        #[arg(long, env = "MOLDOPS_CLOUD_CONFIG")]
        config: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Merge each partition's committed part files (one per ingest commit) into one file, so
    /// readers open a few files per machine and day. Safe next to a running ingest.
    Compact {
        /// Lake folder (default: [lake] path of --config, else moldops-data/lake).
        #[arg(long)]
        lake: Option<PathBuf>,
        /// Config file to take the lake folder from.
        #[arg(long, env = "MOLDOPS_CLOUD_CONFIG")]
        config: Option<PathBuf>,
        /// Only partitions with at least this many part files.
        #[arg(long, default_value_t = 2)]
        min_files: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo shows its own progress; its parts only speak up when something is wrong.
    // The demo's OPC UA machines (--opcua-machines) run with security none and no certificates,
    // which async-opcua complains about on every connection.
    let demo =
        "warn,rumqttd=off,opcua_crypto=off,opcua_server::server=error,opcua_core::comms::secure_channel=off";
    init_tracing(if matches!(cli.command, Command::Demo(_)) { demo } else { "info" });
    let result = match cli.command {
        Command::Ingest(args) => run_ingest(args),
        Command::Demo(args) => run_demo(args),
        Command::Api(args) => run_api(args),
        Command::Import(args) => moldops_cloud::import::cli::run(args),
        Command::Etl(args) => moldops_cloud::etl::cli::run(args),
        Command::Augment(args) => moldops_cloud::augment::cli::run(args),
        Command::Evaluate(args) => moldops_cloud::evaluate::cli::run_cli(args),
        Command::Pipeline(args) => moldops_cloud::pipeline::cli::run(args),
        Command::Rollout(args) => moldops_cloud::rollout::cli::run(args),
        Command::Score(args) => moldops_cloud::rollout::cli::run_score(args),
        Command::Train(args) => moldops_cloud::train::run(args),
        Command::Models(args) => moldops_cloud::registry::cli::run(args),
        Command::Lake { command: LakeCommand::Summary { lake, config, json } } => summary(lake, config, json),
        Command::Lake { command: LakeCommand::Compact { lake, config, min_files } } => {
            compact(lake, config, min_files)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<ConfigErrors>().is_some() => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}

fn run_ingest(args: IngestArgs) -> Result<()> {
    let over = Overrides {
        broker_host: args.broker_host,
        broker_port: args.broker_port,
        lake: args.lake,
        client_id: args.client_id,
    };
    let mut cfg = config::ingest_config(args.config.as_deref(), &over)?;
    cfg.announce = true;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(ingest::run(cfg, shutdown_signal()))
}

fn run_api(args: moldops_cloud::api::ApiArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen).await?;
        tracing::info!(listen = %listener.local_addr()?, data = %args.data_dir.display(), "api serving");
        moldops_cloud::api::serve(
            listener,
            moldops_cloud::api::Folders::under(&args.data_dir),
            shutdown_signal(),
        )
        .await
    })
}

fn run_demo(args: moldops_cloud::demo::DemoArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(moldops_cloud::demo::run(args))
}

fn compact(lake: Option<PathBuf>, config: Option<PathBuf>, min_files: usize) -> Result<()> {
    let path = config::lake_path(config.as_deref(), lake.as_deref())?;
    let r = lake::compact::compact(&path, min_files)?;
    println!(
        "compacted {} partitions: {} part files into {} ({} rows){}",
        r.partitions,
        r.files_in,
        r.partitions,
        r.rows,
        if r.journals_completed > 0 {
            format!("; {} interrupted compaction(s) completed", r.journals_completed)
        } else {
            String::new()
        }
    );
    Ok(())
}

fn summary(lake: Option<PathBuf>, config: Option<PathBuf>, json: bool) -> Result<()> {
    let path = config::lake_path(config.as_deref(), lake.as_deref())?;
    let s = lake::summary(&path)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", s.to_table());
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested");
}
