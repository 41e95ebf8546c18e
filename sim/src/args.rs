//! Command-line flags of `moldops-sim` ([`SimArgs`]) and their validation into a
//! [`Plant`]: the plant to build, with every problem in the flags reported at once.

use super::edge_config::ConfigTemplate;
use super::plant::RunningPlant;
use super::process::ProcessConfig;
use chrono::{DateTime, Utc};
use clap::Parser;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Simulated plant: injection machines and their peripherals, each a Modbus TCP server (or,
/// for the first `--opcua-machines` machines, an OPC UA server).
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct SimArgs {
    /// Number of injection machines (m1, m2, …).
    #[arg(long, default_value_t = 2)]
    pub machines: usize,
    /// Seed of every random choice; machine i draws from its own stream of it.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Simulated time at start (RFC 3339); the first shot of every machine ends then.
    #[arg(long, default_value = "2026-01-05T06:00:00Z", value_parser = parse_time)]
    pub start_time: DateTime<Utc>,
    /// Stop making shots after this many per machine (the servers keep serving).
    #[arg(long)]
    pub shots: Option<u64>,
    /// Number of each machine's first shot (the u32 counter wraps after 4294967295).
    #[arg(long, default_value_t = 1)]
    pub start_shot: u32,
    /// Fraction of defective shots (episodes of 1–5 shots).
    #[arg(long, default_value_t = 0.03)]
    pub defect_rate: f64,
    /// Sustained process faults: expected failed barrel heater bands per 10 000 shots of a
    /// machine, each lasting 60–200 shots or until the next stop (all its shots defective, on
    /// top of --defect-rate); 0 = none.
    #[arg(long, default_value_t = 0.0)]
    pub sustained_faults: f64,
    /// Shots between mold changes (±15 %, each a 20–40 min stop); 0 = never.
    #[arg(long, default_value_t = 300)]
    pub mold_change_shots: u64,
    /// Mean shots between idle stops of 16–45 min; 0 = never.
    #[arg(long, default_value_t = 600)]
    pub idle_every: u64,
    /// Address the servers listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port of machine m1; machine m(i+1) listens on base + 10·i, its tcu +1, dryer +2, scale +3,
    /// and over OPC UA on base + 10·i + 5. 0 lets the OS pick every port.
    #[arg(long, default_value_t = 5020)]
    pub base_port: u16,
    /// Quality-inspection log (JSON lines, ground truth per shot); truncated at start.
    #[arg(long, default_value = "moldops-data/sim/quality-log.jsonl")]
    pub quality_log: PathBuf,
    /// The first K machines serve their cycle data over OPC UA (security none, anonymous; one
    /// server per machine) instead of Modbus TCP; their peripherals stay on Modbus.
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub opcua_machines: usize,
    /// Serve only the machines.
    #[arg(long)]
    pub no_peripherals: bool,
    /// After binding, write an edge config (TOML) that polls this plant.
    #[arg(long)]
    pub write_config: Option<PathBuf>,
    /// Broker host for the written edge config.
    #[arg(long, default_value = "127.0.0.1")]
    pub broker_host: String,
    /// Broker port for the written edge config.
    #[arg(long, default_value_t = 1883)]
    pub broker_port: u16,
    /// Edge id for the written edge config.
    #[arg(long, default_value = "edge-01")]
    pub edge_id: String,
    /// Site for the written edge config.
    #[arg(long, default_value = "demo-plant")]
    pub site: String,
    /// Buffer folder for the written edge config.
    #[arg(long)]
    pub buffer_path: Option<PathBuf>,
    /// Local API address for the written edge config ("" disables it).
    #[arg(long)]
    pub api_listen: Option<String>,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time (e.g. 2026-01-05T06:00:00Z): {e}"))
}

#[derive(Parser)]
struct Defaults {
    #[command(flatten)]
    args: SimArgs,
}

impl Default for SimArgs {
    /// The command-line defaults.
    fn default() -> Self {
        match Defaults::try_parse_from(["simulate"]) {
            Ok(d) => d.args,
            Err(e) => panic!("the simulate flags' defaults do not parse: {e}"),
        }
    }
}

impl From<&SimArgs> for ConfigTemplate {
    fn from(a: &SimArgs) -> Self {
        ConfigTemplate {
            site: a.site.clone(),
            edge_id: a.edge_id.clone(),
            broker_host: a.broker_host.clone(),
            broker_port: a.broker_port,
            buffer_path: a.buffer_path.clone(),
            api_listen: a.api_listen.clone(),
        }
    }
}

/// A validated plant description.
#[derive(Debug, Clone, PartialEq)]
pub struct Plant {
    /// Number of injection machines (m1, m2, …), 1 to 1000.
    pub machines: usize,
    /// Seed of every random choice; machine i draws from its own stream of it.
    pub seed: u64,
    /// Simulated seconds per real second, a positive finite number.
    pub speed: f64,
    /// Simulated time at start, ms since the Unix epoch (UTC); the first shot of every machine
    /// ends then.
    pub start_ms: i64,
    /// Shots each machine makes before it stops producing (its servers keep serving); `None` =
    /// no limit.
    pub shots: Option<u64>,
    /// Number of each machine's first shot (the u32 counter wraps).
    pub start_shot: u32,
    /// Fraction of defective shots, within `0..=0.9`.
    pub defect_rate: f64,
    /// Expected sustained faults per 10 000 shots, within `0..=100`.
    pub sustained_faults: f64,
    /// Shots between mold changes (±15 %, each a 20–40 min stop); 0 = never.
    pub mold_change_shots: u64,
    /// Mean shots between idle stops of 16–45 min; 0 = never.
    pub idle_every: u64,
    /// Address every server listens on.
    pub host: IpAddr,
    /// Port of machine m1 (see [`Plant::addr`] for the others); 0 lets the OS pick every port.
    pub base_port: u16,
    /// Path of the quality-inspection log (JSON lines), never empty; truncated at start.
    pub quality_log: PathBuf,
    /// Serve only the machines: no tcu, dryer or scale servers.
    pub no_peripherals: bool,
    /// Machines (the first ones) served over OPC UA.
    pub opcua_machines: usize,
}

/// Most machines one simulator serves.
const MAX_MACHINES: usize = 1000;

impl Plant {
    /// Checks the flags, listing every problem at once.
    pub fn from_args(a: &SimArgs) -> anyhow::Result<Plant> {
        let mut errs = Vec::new();
        if a.machines == 0 || a.machines > MAX_MACHINES {
            errs.push(format!("--machines {} must be 1..={MAX_MACHINES}", a.machines));
        }
        if !(a.speed.is_finite() && a.speed > 0.0) {
            errs.push(format!("--speed {} must be a positive number", a.speed));
        }
        if !(0.0..=0.9).contains(&a.defect_rate) {
            errs.push(format!("--defect-rate {} must be within 0..=0.9", a.defect_rate));
        }
        if !(0.0..=100.0).contains(&a.sustained_faults) {
            errs.push(format!("--sustained-faults {} must be within 0..=100", a.sustained_faults));
        }
        let last_port = u32::from(a.base_port) + 10 * a.machines.saturating_sub(1) as u32 + 3;
        if a.base_port != 0 && last_port > u32::from(u16::MAX) {
            errs.push(format!("--base-port {} leaves no room for {} machines", a.base_port, a.machines));
        }
        if a.opcua_machines > a.machines {
            errs.push(format!("--opcua-machines {} exceeds --machines {}", a.opcua_machines, a.machines));
        }
        if a.opcua_machines > 0 && !cfg!(feature = "opcua") {
            errs.push(format!(
                "--opcua-machines {}: this build has no OPC UA server (moldops-sim was built without \
                 its opcua feature)",
                a.opcua_machines
            ));
        }
        let last_ua_port = u32::from(a.base_port) + 10 * a.opcua_machines.saturating_sub(1) as u32 + 5;
        if a.base_port != 0 && a.opcua_machines > 0 && last_ua_port > u32::from(u16::MAX) {
            errs.push(format!(
                "--base-port {} leaves no room for {} OPC UA machines",
                a.base_port, a.opcua_machines
            ));
        }
        if a.quality_log.as_os_str().is_empty() {
            errs.push("--quality-log is empty".into());
        }
        if !errs.is_empty() {
            anyhow::bail!("invalid simulate flags:\n  - {}", errs.join("\n  - "));
        }
        Ok(Plant {
            machines: a.machines,
            seed: a.seed,
            speed: a.speed,
            start_ms: a.start_time.timestamp_millis(),
            shots: a.shots,
            start_shot: a.start_shot,
            defect_rate: a.defect_rate,
            sustained_faults: a.sustained_faults,
            mold_change_shots: a.mold_change_shots,
            idle_every: a.idle_every,
            host: a.host,
            base_port: a.base_port,
            quality_log: a.quality_log.clone(),
            no_peripherals: a.no_peripherals,
            opcua_machines: a.opcua_machines,
        })
    }

    /// The process settings of machine `index`.
    pub fn process(&self, index: usize) -> ProcessConfig {
        ProcessConfig {
            seed: self.seed,
            index,
            start_ms: self.start_ms,
            start_shot: self.start_shot,
            defect_rate: self.defect_rate,
            sustained_faults: self.sustained_faults,
            mold_change_shots: self.mold_change_shots,
            idle_every: self.idle_every,
        }
    }

    /// Listen address of device `k` (0 machine, 1 tcu, 2 dryer, 3 scale, 5 machine over OPC UA)
    /// of machine `index`.
    pub fn addr(&self, index: usize, k: u16) -> anyhow::Result<SocketAddr> {
        if self.base_port == 0 {
            return Ok(SocketAddr::new(self.host, 0));
        }
        let port = u16::try_from(usize::from(self.base_port) + 10 * index + usize::from(k))
            .map_err(|_| anyhow::anyhow!("machine {} has no port below 65536", index + 1))?;
        Ok(SocketAddr::new(self.host, port))
    }

    /// Binds every server and starts the machines.
    pub async fn start(&self) -> anyhow::Result<RunningPlant> {
        super::plant::start(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let a = SimArgs::default();
        assert_eq!((a.machines, a.base_port, a.start_shot), (2, 5020, 1));
        assert_eq!(a.start_time.to_rfc3339(), "2026-01-05T06:00:00+00:00");
        let p = Plant::from_args(&a).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(p.addr(1, 3).map(|a| a.port()).ok(), Some(5033));
        let bad = SimArgs { machines: 0, speed: -1.0, defect_rate: 2.0, ..SimArgs::default() };
        let msg = format!("{:#}", Plant::from_args(&bad).err().unwrap_or_else(|| panic!("accepted")));
        assert!(
            msg.contains("--machines") && msg.contains("--speed") && msg.contains("--defect-rate"),
            "{msg}"
        );
        let crowded = SimArgs { base_port: 65530, ..SimArgs::default() };
        assert!(Plant::from_args(&crowded).is_err());
        assert_eq!(p.opcua_machines, 0);
        let too_many = SimArgs { opcua_machines: 3, ..SimArgs::default() };
        let msg = format!("{:#}", Plant::from_args(&too_many).err().unwrap_or_else(|| panic!("accepted")));
        assert!(msg.contains("--opcua-machines 3 exceeds --machines 2"), "{msg}");
        let ua = SimArgs { opcua_machines: 2, base_port: 65_516, ..SimArgs::default() };
        assert_eq!(Plant::from_args(&ua).is_ok(), cfg!(feature = "opcua"), "65516 + 10 + 5 fits");
        let ua = SimArgs { opcua_machines: 2, base_port: 65_522, ..SimArgs::default() };
        assert!(Plant::from_args(&ua).is_err(), "65522 + 10 + 5 does not fit");
        assert!(parse_time("yesterday").is_err());
    }
}
