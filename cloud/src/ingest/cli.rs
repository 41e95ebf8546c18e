//! `moldops-cloud ingest`: its arguments, read over `cloud.toml`, and the daemon's start.

use crate::config::{self, Overrides};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `moldops-cloud ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Config file (TOML with [broker], [lake], [ingest]).
    #[arg(long, env = "MOLDOPS_CLOUD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Broker host (overrides [broker] host; enough on its own without a config file).
    #[arg(long)]
    pub broker_host: Option<String>,
    /// Broker port (overrides [broker] port).
    #[arg(long)]
    pub broker_port: Option<u16>,
    /// Lake folder (overrides [lake] path).
    #[arg(long)]
    pub lake: Option<PathBuf>,
    /// MQTT client id (overrides [ingest] client_id); keep it fixed so the broker keeps the
    /// session. Replicas each need their own (e.g. the StatefulSet pod's name).
    #[arg(long, env = "MOLDOPS_INGEST_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Write the lake as one of several replicas sharing the data topics through this MQTT
    /// share group (overrides [ingest] share_group).
    #[arg(long, env = "MOLDOPS_INGEST_SHARE_GROUP")]
    pub share_group: Option<String>,
    /// Address of the ingest's HTTP endpoint (/healthz, /readyz, /status, /metrics), e.g.
    /// `0.0.0.0:9465`; none by default.
    #[arg(long)]
    pub listen: Option<String>,
}

/// Validates the configuration, then ingests until SIGINT or SIGTERM.
pub fn run(args: IngestArgs) -> Result<()> {
    let over = Overrides {
        broker_host: args.broker_host,
        broker_port: args.broker_port,
        lake: args.lake,
        client_id: args.client_id,
        share_group: args.share_group,
    };
    let mut cfg = config::ingest_config(args.config.as_deref(), &over)?;
    cfg.announce = true;
    moldops_common::runtime::build()?.block_on(async move {
        if let Some(listen) = &args.listen {
            let addr = super::http::serve(listen, cfg.stats.clone()).await?;
            tracing::info!(%addr, "ingest HTTP endpoint (/healthz, /readyz, /status, /metrics)");
        }
        super::run(cfg, moldops_common::shutdown::requested()).await
    })
}
