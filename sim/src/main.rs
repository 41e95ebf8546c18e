//! `moldops-sim`: a simulated plant that speaks Modbus TCP (and OPC UA with
//! `--opcua-machines`), for demos, tests and trying an edge config without a machine.

use clap::Parser;
use moldops_sim::SimArgs;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "moldops-sim",
    version,
    about = "A simulated injection-moulding plant: machines and peripherals over Modbus TCP and OPC UA"
)]
struct Cli {
    #[command(flatten)]
    args: SimArgs,
}

/// Default log filter (RUST_LOG overrides): the OPC UA servers have no certificate (security
/// none), which async-opcua complains about at start and on every connection.
const DEFAULT_LOG: &str = "info,opcua_crypto=off,opcua_server=warn,opcua_server::server=error,opcua_core::comms::secure_channel=off";

fn main() -> ExitCode {
    let cli = Cli::parse();
    moldops_common::logging::init(DEFAULT_LOG);
    match moldops_common::runtime::block_on(moldops_sim::run(cli.args)).and_then(|r| r) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
