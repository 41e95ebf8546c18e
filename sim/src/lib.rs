//! `moldops-sim`: a plant that speaks real Modbus TCP — and OPC UA. N injection
//! machines, each with a mold temperature controller, a dryer and a part-weight scale, every
//! one its own Modbus TCP server whose registers follow the profiles in `deploy/profiles/`;
//! with `--opcua-machines K` the first K machines serve their cycle data from an OPC UA server
//! instead (node map `deploy/opcua/moldops-sim-machine.toml`, cargo feature `opcua`). A seeded
//! process model (per-mold setpoints, drifts, defect episodes with physical signatures, mold
//! changes, idle stops) runs in accelerated simulated time; the ground truth of every shot
//! goes only to the quality-inspection log.
//!
//! Modules: [`args`] flags and validation, [`process`] the process model ([`features`],
//! [`molds`], [`defects`]), [`registers`] register images, [`server`] the Modbus service,
//! `opcua_server` the OPC UA service (feature `opcua`), [`machine`] one machine's task, [`plant`] orchestration, [`quality`] the quality log,
//! [`edge_config`] the matching edge config, [`clock`] simulated time, [`profiles`] the
//! embedded profiles, [`sorter`] a sorting output for the edge's quality gates.

#![warn(missing_docs)]

pub mod args;
pub mod clock;
pub mod defects;
pub mod edge_config;
pub mod features;
pub mod machine;
pub mod molds;
#[cfg(feature = "opcua")]
pub mod opcua_server;
pub mod plant;
pub mod process;
pub mod profiles;
pub mod quality;
pub mod registers;
pub mod server;
pub mod sorter;

pub use args::{Plant, SimArgs};
pub use edge_config::{ConfigTemplate, write_edge_config};
pub use plant::{RunningPlant, SimDevice};
pub use profiles::{dryer_profile, machine_node_map, machine_profile, scale_profile, tcu_profile};

use anyhow::Context;
use std::io::Write;

/// Validates the flags, binds every server and starts the machines.
pub async fn start(args: &SimArgs) -> anyhow::Result<RunningPlant> {
    Plant::from_args(args)?.start().await
}

/// The CLI entry: starts the plant, writes the edge config if asked, prints the readiness
/// line and serves until Ctrl-C or SIGTERM (or until a machine fails).
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let plant = start(&args).await?;
    if let Some(path) = &args.write_config {
        write_edge_config(path, &plant.edge_config(ConfigTemplate::from(&args)))?;
        tracing::info!("edge config written to {}", path.display());
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", plant.ready_line()).and_then(|()| out.flush()).context("cannot write stdout")?;
    }
    let served = tokio::select! {
        r = moldops_common::shutdown::signal() => r,
        r = finished_then_serve(&plant) => r,
    };
    plant.shutdown().await;
    served
}

/// Resolves only with an error: after all shots are made the servers keep serving.
async fn finished_then_serve(plant: &RunningPlant) -> anyhow::Result<()> {
    plant.finished().await?;
    tracing::info!("all shots made; serving until Ctrl-C");
    std::future::pending().await
}
