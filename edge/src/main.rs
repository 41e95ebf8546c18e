//! `moldops-edge`: the edge daemon (`run`) and its config checker (`check-config`). The
//! simulated plant is its own binary, `moldops-sim`.

use anyhow::Result;
use clap::{Parser, Subcommand};
use moldops_edge::config::EdgeConfig;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "moldops-edge",
    version,
    about = "moldops edge gateway: machines and peripherals → sled buffer → MQTT"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the edge daemon.
    Run {
        #[arg(long, short, env = "MOLDOPS_EDGE_CONFIG", default_value = "edge.toml")]
        config: PathBuf,
    },
    /// Validate a config, list every problem, and estimate the outage the buffer covers.
    CheckConfig {
        #[arg(long, short, default_value = "edge.toml")]
        config: PathBuf,
        /// Typical machine cycle time in seconds, for the buffer estimate.
        #[arg(long, default_value_t = 30.0)]
        cycle_s: f64,
    },
}

/// Default log filter (RUST_LOG overrides): async-opcua's certificate complaints are expected
/// with security none.
const DEFAULT_LOG: &str = "info,opcua_crypto=off";

fn main() -> ExitCode {
    let cli = Cli::parse();
    moldops_common::logging::init(DEFAULT_LOG);
    let rt = match moldops_common::runtime::build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli.cmd)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::Run { config } => run(config).await,
        Cmd::CheckConfig { config, cycle_s } => Ok(check_config(&config, cycle_s)),
    }
}

fn check_config(path: &std::path::Path, cycle_s: f64) -> ExitCode {
    match EdgeConfig::load(path) {
        Ok((cfg, devices)) => {
            let hours = moldops_edge::run::outage_hours(&cfg, &devices, cycle_s);
            let rate = moldops_edge::run::estimated_buffer_bytes_per_s(&cfg, &devices, cycle_s);
            println!("{}: OK ({} devices)", path.display(), devices.len());
            println!(
                "buffer: {:.0} MiB at ~{:.0} B/s (one shot per {cycle_s} s per machine) covers {:.1} hours of broker outage",
                cfg.buffer.max_bytes as f64 / 1048576.0,
                rate,
                hours
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

async fn run(path: PathBuf) -> Result<ExitCode> {
    let (cfg, devices) = match EdgeConfig::load(&path) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let base = path.parent().map(PathBuf::from).unwrap_or_default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let edge = moldops_edge::run::start(cfg, devices, &base, stop_rx).await?;
    moldops_common::shutdown::requested().await;
    let _ = stop_tx.send(true);
    edge.join().await?;
    Ok(ExitCode::SUCCESS)
}
