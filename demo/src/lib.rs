//! The whole moldops loop on one machine with embedded defaults (`moldops-demo`).
//!
//! A simulated plant (Modbus TCP, optionally some machines over OPC UA, crate `moldops-sim`)
//! is polled by the edge (`moldops-edge`), whose records reach the lake through an embedded
//! MQTT broker and the cloud ingest; then the learning pipeline ([`learn`]: import → etl →
//! augment → evaluate ∥ train → register → rollout) trains models and rolls them out to the
//! same edge, which scores the plant's next shots live ([`live`]). The demo ends with the data
//! path's exactly-once check, the live alarms held against the simulator's ground truth, and a
//! browsable page ([`page`]), then serves the operator console over the demo's data folder
//! until Ctrl-C ([`console`]; `--exit` ends there). `--data-only` stops after the data path;
//! `--new-mould` ends the live phase with a mould change ([`new_mould`]): a mould the machine
//! never ran goes from the edge's learning mode to its own model without a human step; then a
//! heater zone drifts under that model until the drift is flagged ([`heater_drift`]), and QC's
//! lot results, arriving after production, label the mould's shots ([`late_labels`]). Every
//! part is the same code the real deployment runs; this crate only wires them together, like
//! `tests/` does.

pub mod bucket;
pub mod console;
pub mod follow;
pub mod heater_drift;
pub mod late_labels;
pub mod learn;
pub mod live;
pub mod new_mould;
pub mod page;
pub mod sorting;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use moldops_cloud::{broker, ingest, lake};
use moldops_common::mqtt::BrokerConfig;
use moldops_edge::config::{ModelsConfig, Protocol};
use moldops_edge::run::RunningEdge;
use moldops_sim::{self as sim, ConfigTemplate, SimArgs};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Folder for everything the demo writes; its `demo/` subfolder is replaced at start.
    #[arg(long, default_value = "moldops-data")]
    pub data_dir: PathBuf,
    /// Injection machines in the simulated plant (each with three peripherals).
    #[arg(long, default_value_t = 2)]
    pub machines: usize,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 1000.0)]
    pub speed: f64,
    /// How long the plant produces before the learning pipeline starts, in real seconds.
    #[arg(long, default_value_t = 150)]
    pub duration_s: u64,
    /// Real seconds the edge scores live shots with the rolled-out models.
    #[arg(long, default_value_t = 90)]
    pub score_s: u64,
    /// Shots a new model runs in shadow on the edge before it goes active. The shadow judge has
    /// no labels: a short shadow run that meets a defect episode alarms often and is rolled
    /// back, so the demo watches long enough to average over episodes.
    #[arg(long, default_value_t = 150)]
    pub shadow_shots: u64,
    /// Only the data path: plant → edge → broker → ingest → lake, then the exactly-once check.
    #[arg(long)]
    pub data_only: bool,
    /// Use this MQTT broker on loopback (e.g. a Mosquitto on port 1883) instead of the embedded one.
    #[arg(long, value_name = "PORT")]
    pub broker_port: Option<u16>,
    /// Pipeline definition for the learning half (default: the built-in learning DAG).
    #[arg(long, value_name = "FILE")]
    pub pipeline_config: Option<PathBuf>,
    /// Seed of the simulated plant.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Sustained process faults in the plant: expected failed heater bands per 10 000 shots of
    /// a machine (each 60–200 shots; see `moldops-sim simulate --sustained-faults`); 0 = none.
    #[arg(long, default_value_t = 0.0)]
    pub sustained_faults: f64,
    /// The first K machines serve their cycle data over OPC UA instead of Modbus TCP (mixes
    /// protocols; needs moldops-sim's default `opcua` feature).
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub opcua_machines: usize,
    /// Exit when the demo is done instead of serving the operator console until Ctrl-C (for
    /// scripts and tests).
    #[arg(long)]
    pub exit: bool,
    /// Run a quality gate per machine: the edge sorts every part (engineering limits, then the
    /// models) onto a simulated sorting output, and the demo reports parts caught, missed and
    /// diverted against the ground truth (docs/quality-gate.md).
    #[arg(long)]
    pub gate: bool,
    /// After live scoring, machine m1 changes to a mould it never ran: the edge judges it on a
    /// cold-start baseline (learning, no alarms; then robust limits) until the lifecycle
    /// pipeline has trained, gated and rolled out its own model (docs/mould-lifecycle.md).
    /// Models are trained per (machine, mould) for this, and the edge runs `[models.cold_start]`.
    #[arg(long, conflicts_with = "data_only")]
    pub new_mould: bool,
    /// Keep the lake and the registry in this S3-compatible bucket prefix (`s3://bucket/prefix`;
    /// endpoint, region and credentials from the `AWS_*` environment, e.g. `AWS_ENDPOINT_URL`
    /// for MinIO) instead of the demo folder; `lake/` and `registry/` under it must be empty.
    /// Run records, logs and the report stay in the demo folder, where the bucket's lake and
    /// registry are copied at the end (docs/lake.md, "Object storage").
    #[arg(long, value_name = "URL", conflicts_with = "new_mould")]
    pub object_store: Option<String>,
    /// Where the operator console listens at the end (a free port when this one is taken).
    #[arg(long, default_value = "127.0.0.1:8490")]
    pub console_listen: SocketAddr,
}

/// What the simulator's quality log says was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Truth {
    shots: u64,
    defects: u64,
}

/// Counts of the quality log: shots made and how many were defective; with `upto`, only the
/// shots up to each machine's given shot number.
fn truth(log: &Path, upto: Option<&BTreeMap<String, u64>>) -> Truth {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut t = Truth::default();
    for v in text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
        let machine = v["machine_id"].as_str().unwrap_or_default();
        let shot = v["shot_number"].as_u64().unwrap_or_default();
        if upto.is_some_and(|u| u.get(machine).is_none_or(|last| shot > *last)) {
            continue;
        }
        t.shots += 1;
        t.defects += u64::from(v["label"].as_u64() == Some(1));
    }
    t
}

/// The cloud half running in this process: the ingest task and its counters.
struct Cloud {
    task: tokio::task::JoinHandle<Result<()>>,
    stats: Arc<ingest::IngestStats>,
}

/// The floor: the simulated plant, the edge polling it, and what the learning half needs.
struct Floor {
    plant: sim::RunningPlant,
    edge: RunningEdge,
    site: String,
    edge_id: String,
    broker: BrokerConfig,
    key: Option<learn::DemoKey>,
    quality_log: PathBuf,
    sorting: Option<sorting::Sorting>,
}

/// The demo from start to verdict: data path, learning, live scoring, exactly-once check.
pub async fn run(args: DemoArgs) -> Result<()> {
    let dir = std::path::absolute(args.data_dir.join("demo"))?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let lake_dir = dir.join("lake");
    let bucket = args.object_store.as_deref().map(bucket::DemoBucket::open).transpose()?;
    let lake_at = match &bucket {
        Some(b) => {
            println!("lake and registry in {} and {}", b.lake(), b.registry());
            PathBuf::from(b.lake())
        }
        None => lake_dir.clone(),
    };
    let addr = start_broker(args.broker_port)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // The ingest subscribes first, so that nothing the edge publishes finds no subscriber, and
    // the edge starts right after the plant: an OPC UA machine has no history ring, its shots
    // must be read as they are made.
    let cloud = start_ingest(addr.port(), &lake_at, stop_rx.clone()).await?;
    let floor = start_floor(&args, &dir, addr.port(), stop_rx).await?;
    let status = || status_line(&floor, &cloud);
    produce(args.duration_s, "collecting", status).await;
    let (detection, mut mould) = match &floor.key {
        Some(key) => {
            let at = learn::Locations {
                lake: lake_at.display().to_string(),
                registry: bucket
                    .as_ref()
                    .map_or_else(|| dir.join("registry").display().to_string(), |b| b.registry()),
            };
            learn_and_score(&args, &dir, &at, addr.port(), &floor, key, &status, &cloud.stats).await?
        }
        None => (None, None),
    };
    let last_read = drain(&floor, &cloud, &status).await;
    if let Some(m) = &mut mould {
        let last = last_read.get(new_mould::MACHINE).copied().unwrap_or_default();
        let labels = late_labels::run(&dir, &lake_dir, &floor.quality_log, &m.key, last)?;
        println!("\n{}", labels.to_text());
        m.late_labels = Some(labels);
    }
    let _ = stop_tx.send(true);
    floor.edge.join().await?;
    cloud.task.await.context("ingest task")??;
    floor.plant.shutdown().await;
    if let Some(b) = &bucket {
        b.copy_into(&dir)?;
        println!("copied the bucket's lake and registry into {}", dir.display());
    }
    let verdict =
        verdict(&dir, &lake_dir, &floor.quality_log, &last_read, detection.as_ref(), mould.as_ref());
    if let Some(s) = floor.sorting {
        let report = s.finish(&floor.quality_log)?;
        println!("\n{}", report.to_text());
        let json = serde_json::to_vec_pretty(&report)?;
        moldops_common::fs::write_atomic(&dir.join("sorting.json"), &json)?;
    }
    if !args.exit {
        console::serve(&dir, args.console_listen).await?;
    }
    verdict
}

/// The embedded broker on a free loopback port, or the one on `port`.
fn start_broker(port: Option<u16>) -> Result<SocketAddr> {
    Ok(match port {
        Some(port) => {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            println!("MQTT broker on {addr}");
            addr
        }
        None => {
            let addr = broker::free_loopback()?;
            broker::start(addr)?;
            println!("embedded MQTT broker on {addr}");
            addr
        }
    })
}

/// Starts the ingest into `lake` and waits until it has subscribed.
async fn start_ingest(port: u16, lake: &Path, stop: watch::Receiver<bool>) -> Result<Cloud> {
    let mut cfg = ingest::IngestConfig::local("127.0.0.1", port, lake);
    cfg.client_id = "moldops-demo-ingest".into();
    let stats = cfg.stats.clone();
    let mut stop = stop;
    let task = tokio::spawn(ingest::run(cfg, async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
    tokio::time::timeout(Duration::from_secs(30), stats.wait_subscribed())
        .await
        .context("the ingest did not subscribe to the embedded broker")?;
    Ok(Cloud { task, stats })
}

/// Starts the simulated plant and the edge polling it (with `[models]` unless `--data-only`).
async fn start_floor(args: &DemoArgs, dir: &Path, port: u16, stop: watch::Receiver<bool>) -> Result<Floor> {
    let sim_args = SimArgs {
        machines: args.machines,
        speed: args.speed,
        seed: args.seed,
        sustained_faults: args.sustained_faults,
        opcua_machines: args.opcua_machines,
        base_port: 0,
        quality_log: dir.join("quality-log.jsonl"),
        // With --new-mould each machine keeps its first mould until the demo changes m1's: the
        // mould it gets then is one it never ran.
        mold_change_shots: if args.new_mould { 0 } else { SimArgs::default().mold_change_shots },
        ..SimArgs::default()
    };
    let plant = sim::start(&sim_args).await?;
    let ua = plant.devices().iter().filter(|d| d.protocol == Protocol::Opcua).count();
    println!(
        "simulated plant: {} Modbus TCP and {ua} OPC UA devices ({} machines), time ×{}",
        plant.devices().len() - ua,
        args.machines,
        args.speed
    );
    let template = ConfigTemplate {
        broker_port: port,
        buffer_path: Some(dir.join("edge-buffer")),
        api_listen: Some("127.0.0.1:0".into()),
        ..ConfigTemplate::default()
    };
    let mut edge_cfg = plant.edge_config(template);
    let key = if args.data_only { None } else { Some(learn::DemoKey::generate()?) };
    if let Some(k) = &key {
        edge_cfg.models = Some(ModelsConfig {
            public_key: Some(k.public_hex.clone()),
            store: dir.join("edge-models"),
            shadow_shots: args.shadow_shots,
            cold_start: args.new_mould.then(|| moldops_scoring::ColdStart {
                learning_shots: new_mould::LEARNING_SHOTS,
                ..Default::default()
            }),
            drift: if args.new_mould { heater_drift::settings() } else { Default::default() },
            ..Default::default()
        });
    }
    let sorting = if args.gate {
        let mut s = sorting::Sorting::start().await?;
        let devices = edge_cfg.resolve(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
        edge_cfg.gates = s.gates(&devices);
        println!("quality gates on every machine, sorting onto a simulated output at {}", s.addr);
        Some(s)
    } else {
        None
    };
    sim::write_edge_config(&dir.join("edge.toml"), &edge_cfg)?;
    let devices = edge_cfg.resolve(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (site, edge_id, broker) = (edge_cfg.site.clone(), edge_cfg.edge_id.clone(), edge_cfg.broker.clone());
    let edge = moldops_edge::run::start(edge_cfg, devices, dir, stop).await?;
    if let Some(a) = edge.api_addr {
        println!("edge API: http://{a}/status  http://{a}/metrics");
    }
    let quality_log = plant.quality_log().to_path_buf();
    Ok(Floor { plant, edge, site, edge_id, broker, key, quality_log, sorting })
}

/// One line of progress: shots made, buffered, sent, and landed in the lake.
fn status_line(floor: &Floor, cloud: &Cloud) -> String {
    let t = truth(&floor.quality_log, None);
    let s = cloud.stats.snapshot();
    format!(
        "shots made {} ({} defective) · buffered {} · sent {} · lake: {} shots, {} peripheral samples",
        t.shots,
        t.defects,
        floor.edge.buffer.stats().records,
        floor.edge.health.metrics.records_sent.get(),
        s.raw_records,
        s.peripheral_records
    )
}

/// Runs the learning pipeline, then scores live shots with the rolled-out models for
/// `--score-s` and judges the alarms against the quality log; with `--new-mould`, then follows
/// a new mould to its own model.
#[allow(clippy::too_many_arguments, reason = "the demo's phases share these")]
async fn learn_and_score(
    args: &DemoArgs,
    dir: &Path,
    at: &learn::Locations,
    port: u16,
    floor: &Floor,
    key: &learn::DemoKey,
    status: &impl Fn() -> String,
    ingest: &ingest::IngestStats,
) -> Result<(Option<live::Detection>, Option<new_mould::NewMould>)> {
    let edges = vec![floor.edge_id.clone()];
    let by_mould =
        if args.new_mould { Some(by_mould_definition(dir, args.pipeline_config.as_deref())?) } else { None };
    let learning = learn::Learning {
        dir,
        at,
        broker_port: port,
        site: &floor.site,
        edges: &edges,
        seed: args.seed,
        key,
        definition: by_mould.as_deref().or(args.pipeline_config.as_deref()),
    };
    let labels = learning.snapshot_labels(&floor.quality_log)?;
    learning.run_pipeline(&labels).await?;
    if let Some(s) = &floor.sorting {
        s.mark_models_active();
    }
    println!("models active on the edge; scoring live shots for {} s …", args.score_s);
    let bar = phase_bar(args.score_s);
    let scores = live::collect(&floor.broker, dir, Duration::from_secs(args.score_s), |n, alarms| {
        bar.set_position(bar.elapsed().as_secs().min(args.score_s));
        bar.set_message(format!("{n} shots scored, {alarms} alarms · {}", status()));
    })
    .await?;
    bar.finish_and_clear();
    let detection = live::judge(&scores, &floor.quality_log)?;
    let mould = if args.new_mould {
        Some(new_mould::run(&learning, &floor.plant, &floor.broker, status, ingest).await?)
    } else {
        None
    };
    Ok((Some(detection), mould))
}

/// The learning DAG (`--pipeline-config` or the built-in one) with `train --by-mold`, written
/// to the demo folder: models per (machine, mould), so that a new mould is a new key.
fn by_mould_definition(dir: &Path, base: Option<&Path>) -> Result<PathBuf> {
    use moldops_cloud::pipeline::dag::PipelineDef;
    let mut def = match base {
        Some(path) => PipelineDef::load(path)?,
        None => PipelineDef::builtin()?,
    };
    let train =
        def.tasks.iter_mut().find(|t| t.name == "train").context("the learning DAG has no train task")?;
    if !train.args.iter().any(|a| a == "--by-mold") {
        train.args.push("--by-mold".into());
    }
    let path = dir.join("learning-by-mould.toml");
    std::fs::write(&path, toml::to_string(&def)?).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Stops polling and waits (up to 30 s) until the edge's buffer has reached the lake; returns
/// the last shot number the edge read per machine.
async fn drain(floor: &Floor, cloud: &Cloud, status: &impl Fn() -> String) -> BTreeMap<String, u64> {
    let edge = &floor.edge;
    edge.stop_polling();
    println!("stopped polling; draining the edge buffer into the lake …");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sent = edge.health.metrics.records_sent.get();
        let s = cloud.stats.snapshot();
        let landed = s.raw_records
            + s.peripheral_records
            + s.gap_records
            + s.score_records
            + s.status_records
            + s.decision_records
            + s.drift_records
            + s.duplicates;
        let drained = edge.buffer.stats().records == 0 && landed >= sent;
        if drained || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("{}", status());
    edge.health.devices().into_values().filter_map(|d| Some((d.machine_id, d.last_shot?))).collect()
}

/// The lake held against the simulator (every shot up to the last one read, exactly once), the
/// live detection, the report page and `summary.json`; fails on a mismatch.
fn verdict(
    dir: &Path,
    lake_dir: &Path,
    quality_log: &Path,
    last_read: &BTreeMap<String, u64>,
    detection: Option<&live::Detection>,
    mould: Option<&new_mould::NewMould>,
) -> Result<()> {
    let summary = lake::summary(lake_dir)?;
    println!("\n{}", summary.to_table());
    let t = truth(quality_log, Some(last_read));
    let in_lake: u64 = summary.datasets.iter().filter(|d| d.dataset == lake::RAW_DATA).map(|d| d.rows).sum();
    println!(
        "simulator made {} shots up to the last one the edge read ({} defective; ground truth in {})",
        t.shots,
        t.defects,
        quality_log.display()
    );
    let once = format!(
        "lake holds {in_lake} shots: {}",
        if in_lake == t.shots { "every shot, exactly once" } else { "MISMATCH" }
    );
    println!("{once}");
    if let Some(d) = detection {
        println!("\n{}", d.to_text());
        let lake_table = summary.to_table();
        let page = page::write(&page::PageInput {
            dir,
            lake_table: &lake_table,
            exactly_once: &once,
            detection: d,
        })?;
        println!("report: {}", page.display());
        let json = serde_json::json!({
            "exactly_once": in_lake == t.shots,
            "shots": in_lake,
            "detection": d,
            "new_mould": mould,
        });
        moldops_common::fs::write_atomic(&dir.join("summary.json"), &serde_json::to_vec_pretty(&json)?)?;
    }
    println!(
        "lake: {}   (inspect again: moldops-cloud lake summary --lake {})",
        lake_dir.display(),
        lake_dir.display()
    );
    if in_lake != t.shots {
        anyhow::bail!("the lake holds {in_lake} shots but the simulator made {}", t.shots);
    }
    Ok(())
}

/// A progress bar over `seconds` of real time.
fn phase_bar(seconds: u64) -> ProgressBar {
    let bar = ProgressBar::new(seconds);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// Lets the plant produce for `seconds`, showing `status` in a bar (or a log line every 5 s
/// when stdout is not a terminal).
async fn produce(seconds: u64, what: &str, status: impl Fn() -> String) {
    let bar = phase_bar(seconds);
    let started = Instant::now();
    let mut last_line = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let line = status();
        bar.set_position(started.elapsed().as_secs());
        bar.set_message(line.clone());
        if bar.is_hidden() && last_line.elapsed() >= Duration::from_secs(5) {
            println!("[{:>4}s] {what}: {line}", started.elapsed().as_secs());
            last_line = Instant::now();
        }
    }
    bar.finish_and_clear();
}
