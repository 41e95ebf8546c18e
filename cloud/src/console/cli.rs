//! `moldops-cloud console`: its arguments, adding a user, and the server's start.

use super::auth::{Access, Users};
use super::rollout_start::RolloutAccount;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `moldops-cloud console`.
#[derive(Debug, Clone, Args)]
pub struct ConsoleArgs {
    /// Address to listen on. Pages are readable without signing in only on a loopback address;
    /// on any other, a users file is required.
    #[arg(long, default_value = "127.0.0.1:8490")]
    pub listen: String,
    /// Data folder holding `lake/`, `registry/` and `pipeline/`, or `s3://bucket/prefix`
    /// (served from a local copy kept current, changes published to the bucket).
    #[arg(long, default_value = "moldops-data")]
    pub data_dir: PathBuf,
    /// Users file: one `NAME sha256:HEX` per line (see --add-user). Every change (acknowledge,
    /// promote, archive, rollout) needs a signed-in user.
    #[arg(long, env = "MOLDOPS_CONSOLE_USERS", value_name = "FILE")]
    pub users: Option<PathBuf>,
    /// Adds a user with a fresh token to the users file, prints the token once and exits.
    #[arg(long, value_name = "NAME", requires = "users")]
    pub add_user: Option<String>,
    /// Path prefix the console is served under, for a reverse proxy that forwards e.g.
    /// `/moldops/…` unchanged.
    #[arg(long, default_value = "")]
    pub base_path: String,
    /// Config file with the `[broker]` account rollouts are sent with (as `rollout publish
    /// --config`); with it or --broker-host, the models page can start a rollout.
    #[arg(long, value_name = "FILE")]
    pub rollout_config: Option<PathBuf>,
    /// Broker host for rollouts (overrides the config file's).
    #[arg(long)]
    pub broker_host: Option<String>,
    /// Broker port for rollouts (overrides the config file's).
    #[arg(long)]
    pub broker_port: Option<u16>,
    /// Let signed-in users start pipeline runs from the pipeline page (`pipeline run` as a
    /// child process of the console, on this machine or as Kubernetes Jobs).
    #[arg(long)]
    pub pipeline_start: bool,
    /// The definition those runs use (default: the built-in learning DAG).
    #[arg(long, value_name = "FILE", requires = "pipeline_start")]
    pub pipeline_config: Option<PathBuf>,
    /// Where their tasks run.
    #[arg(long, value_enum, default_value = "local", requires = "pipeline_start")]
    pub pipeline_executor: crate::pipeline::ExecutorKind,
    /// Memory for lake part files already read, in MiB: a page reads only the files that are
    /// new since the last request (0: read every file on every request).
    #[arg(long, default_value_t = super::DEFAULT_LAKE_CACHE_MIB, value_name = "MIB")]
    pub lake_cache_mib: usize,
    /// With the data in a bucket (`--data-dir s3://bucket/prefix`): seconds between pulls of
    /// the console's copy of it (docs/lake.md, "Object storage").
    #[arg(long, default_value_t = crate::storage::follow::DEFAULT_REFRESH_S, value_name = "SECONDS")]
    pub refresh_s: u64,
}

/// The rollout account, when one is configured.
fn rollout_account(args: &ConsoleArgs) -> Result<Option<RolloutAccount>> {
    if args.rollout_config.is_none() && args.broker_host.is_none() && args.broker_port.is_none() {
        return Ok(None);
    }
    let over = crate::config::Overrides {
        broker_host: args.broker_host.clone(),
        broker_port: args.broker_port,
        ..Default::default()
    };
    let cfg = crate::config::ingest_config(args.rollout_config.as_deref(), &over)?;
    Ok(Some(RolloutAccount { broker: cfg.broker, base_dir: cfg.base_dir }))
}

/// Adds a user, or serves until SIGINT or SIGTERM.
pub fn run(args: ConsoleArgs) -> Result<()> {
    if let (Some(file), Some(name)) = (&args.users, &args.add_user) {
        let token = Users::add(file, name)?;
        println!("{token}");
        eprintln!("added {name} to {}; sign in with the token above (shown only now)", file.display());
        return Ok(());
    }
    moldops_common::runtime::build()?.block_on(async move {
        let served = crate::storage::follow::Served::open(&args.data_dir, true).await?;
        let follower = served.follower().cloned();
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let access = match &args.users {
            Some(file) => Access::with_file(addr, file)?,
            None => Access::new(addr, Users::default())?,
        };
        let users = access.users();
        let settings = super::Settings {
            folders: crate::api::Folders::under(served.folder()),
            access,
            base_path: args.base_path.clone(),
            rollout: rollout_account(&args)?,
            pipeline: args.pipeline_start.then(|| super::pipeline::Launch {
                config: args.pipeline_config.clone(),
                executor: args.pipeline_executor,
                data: args.data_dir.clone(),
                logs: match &follower {
                    Some(_) => crate::storage::mirror::cache_dir().join("console-starts"),
                    None => served.folder().join("pipeline").join("console-starts"),
                },
            }),
            lake_cache_mib: args.lake_cache_mib,
            follower: follower.clone(),
        };
        let router = super::router(settings)?;
        tracing::info!(listen = %addr, data = %args.data_dir.display(), users, "console serving");
        println!("console: http://{addr}{}/", args.base_path.trim_end_matches('/'));
        let refresh = follower.map(|f| tokio::spawn(f.run(Duration::from_secs(args.refresh_s.max(1)))));
        let served = super::serve(listener, router, moldops_common::shutdown::requested()).await;
        refresh.inspect(tokio::task::JoinHandle::abort);
        served
    })
}
