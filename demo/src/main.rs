//! `moldops-demo`: the whole loop on one machine with embedded defaults (see [`moldops_demo`]).
//!
//! With no verb it runs the demo; `moldops-demo demo [flags]` does the same. The binary also
//! carries every `moldops-cloud` verb, because the demo's learning pipeline runs its tasks as
//! child processes of this binary, exactly as `moldops-cloud pipeline run` does.

use clap::{Parser, Subcommand};
use moldops_cloud::cli;
use moldops_demo::DemoArgs;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "moldops-demo",
    version,
    about = "The whole moldops loop on one machine: simulated plant → edge → broker → ingest → lake → \
             learning pipeline → rollout → live scoring",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    demo: DemoArgs,
}

// Parsed once at start-up: the size of the larger variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the demo (the same as giving no verb).
    Demo(DemoArgs),
    #[command(flatten)]
    Cloud(cli::Command),
}

/// Log filter of the demo itself: it shows its own progress, its parts speak up only when
/// something is wrong; the OPC UA machines (`--opcua-machines`) run with security none, which
/// async-opcua complains about on every connection.
const DEMO_LOG: &str =
    "warn,rumqttd=off,opcua_crypto=off,opcua_server::server=error,opcua_core::comms::secure_channel=off";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let demo = match cli.command {
        None => cli.demo,
        Some(Command::Demo(args)) => args,
        Some(Command::Cloud(command)) => {
            cli::init_tracing("info");
            return cli::exit_code(cli::run(command));
        }
    };
    cli::init_tracing(DEMO_LOG);
    cli::exit_code(moldops_common::runtime::block_on(moldops_demo::run(demo)).and_then(|r| r))
}
