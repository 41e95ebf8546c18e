//! `moldops-bench`: the edge data path measured against its baseline in one run.
//!
//! 1. **Throughput**, sled → MQTT → ingest → Parquet, on loopback with a real Mosquitto:
//!    an edge buffer pre-filled with N shot records (as after an outage) is drained by the
//!    uplink into the ingest until every row is committed to the lake. Baseline: the same
//!    batch payloads published and received by plain rumqttc clients through the same broker
//!    (no buffer, no lake) — the ceiling the broker and client give.
//! 2. **Footprint**: peak RSS and mean CPU of the `moldops-edge` process polling simulated
//!    machines and their peripherals (Modbus TCP) at the poll rates the simulator writes (as a
//!    plant configures them), buffering, uploading and scoring every shot with a model per
//!    machine (signed bundles rolled out through the broker before the window), over a window.
//!
//! Usage: `moldops-bench [--records N] [--rounds R] [--footprint-s S] [--machines 50,200]
//! [--edge-bin PATH] [--lake-url s3://bucket/prefix]` (`--edge-bin`: the edge binary to
//! measure, e.g. the shipped `target/edge/moldops-edge`; default: the one beside this binary;
//! `--lake-url`: the ingests write lakes under this bucket prefix instead of local folders,
//! with the `AWS_*` environment). Run by `bench/run`; prints `BENCH-RESULT` lines.

use anyhow::{Context, Result};
use moldops_cloud::rollout::{fleet, link::Link};
use moldops_common::mqtt::BrokerConfig;
use moldops_edge::buffer::{Buffer, NewRecord};
use moldops_edge::config::EdgeConfig;
use moldops_scoring::inference::reference::zscore_onnx;
use moldops_shared::bundle::{Bundle, FeatureSpec, MODEL_FILE, Manifest, ModelKey, public_key};
use moldops_shared::rollout::{DesiredModel, DesiredModels};
use moldops_shared::topic::{self, Leaf};
use moldops_shared::{Record, RecordKind};
use moldops_sim::features::FEATURE_NAMES;
use moldops_tests::{Mosquitto, Proc, bin};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

const BATCH: usize = 500;
/// Signs the footprint run's model bundles.
const SEED: [u8; 32] = [7; 32];
const SITE: &str = "bench";
const EDGE: &str = "bench-edge";

fn shot(i: u64) -> Record {
    Record {
        seq: 0,
        kind: RecordKind::Shot,
        machine_id: format!("m{}", i % 4 + 1),
        device_id: format!("m{}", i % 4 + 1),
        ts_ms: 1_767_592_800_000 + (i as i64) * 16_000,
        shot_number: Some(i / 4 + 1),
        mold: Some("9000a 09520".into()),
        material: None,
        values: FEATURE_NAMES
            .iter()
            .enumerate()
            .map(|(k, n)| (n.to_string(), 20.0 + k as f64 + (i % 97) as f64 * 0.01))
            .collect(),
        out_of_range: vec![],
        model: None,
    }
}

fn broker_cfg(port: u16) -> BrokerConfig {
    BrokerConfig { port, keep_alive_s: 30, ..BrokerConfig::with_host("127.0.0.1") }
}

/// Plain rumqttc publisher → broker → subscriber with the same payloads.
async fn baseline(port: u16, n: usize) -> Result<f64> {
    let payloads: Vec<Vec<u8>> = (0..n / BATCH)
        .map(|b| {
            let recs: Vec<(u64, Vec<u8>)> = (0..BATCH as u64)
                .map(|k| {
                    let seq = b as u64 * BATCH as u64 + k;
                    let mut r = shot(seq);
                    r.seq = seq;
                    (seq, serde_json::to_vec(&r).unwrap_or_default())
                })
                .collect();
            let first = b as u64 * BATCH as u64;
            moldops_edge::uplink::batch_json("bench", "baseline", "0123456789abcdef", Some(first), &recs)
        })
        .collect();
    let mut sub_opts = MqttOptions::new("bench-sub", "127.0.0.1", port);
    sub_opts.set_max_packet_size(64 << 20, 64 << 20);
    let (sub, mut sub_loop) = AsyncClient::new(sub_opts, 100);
    sub.subscribe("bench/baseline", QoS::AtLeastOnce).await?;
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = sub_loop.poll().await? {
            break;
        }
    }
    let mut pub_opts = MqttOptions::new("bench-pub", "127.0.0.1", port);
    pub_opts.set_max_packet_size(64 << 20, 64 << 20);
    pub_opts.set_inflight(16);
    let (publ, mut pub_loop) = AsyncClient::new(pub_opts, 100);
    let count = payloads.len();
    let started = Instant::now();
    tokio::spawn(async move {
        for p in payloads {
            if publ.publish("bench/baseline", QoS::AtLeastOnce, false, p).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move { while pub_loop.poll().await.is_ok() {} });
    let mut got = 0;
    while got < count {
        if let Event::Incoming(Packet::Publish(_)) = sub_loop.poll().await? {
            got += 1;
        }
    }
    Ok((count * BATCH) as f64 / started.elapsed().as_secs_f64())
}

/// Pre-filled edge buffer → uplink → broker → ingest → lake; `delete_after` is the uplink's
/// mode (`commit`: records leave the buffer on the ingest's commit ack; `puback`: on the
/// broker's PUBACK); `replicas` ingests (more than one: a share group, one lake). The rate
/// counts until every record is in the lake and, with commit acks, until the buffer is empty.
async fn moldops_path(
    port: u16,
    n: usize,
    dir: &std::path::Path,
    delete_after: &str,
    replicas: usize,
    lake_url: Option<&str>,
) -> Result<(f64, u64)> {
    let name = format!("{delete_after}-{replicas}");
    let dir = dir.join(&name);
    let dir = dir.as_path();
    let lake = match lake_url {
        Some(url) => {
            let round =
                dir.parent().and_then(|p| p.file_name()).map(|f| f.to_string_lossy()).unwrap_or_default();
            std::path::PathBuf::from(format!("{url}/{round}/{name}"))
        }
        None => dir.join("lake"),
    };
    let buffer = Buffer::open(&dir.join("buffer"), 4 << 30)?;
    for chunk in (0..n as u64).collect::<Vec<_>>().chunks(5000) {
        buffer
            .append(chunk.iter().map(|i| NewRecord { record: shot(*i), shot_mark: None }).collect())
            .await?;
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (mut all_stats, mut ingest_tasks) = (Vec::new(), Vec::new());
    for i in 1..=replicas {
        let mut ingest = moldops_cloud::ingest::IngestConfig::new(broker_cfg(port), lake.clone());
        ingest.client_id = format!("bench-ingest-{delete_after}-{replicas}-{i}");
        ingest.share_group = (replicas > 1).then(|| "bench".to_string());
        all_stats.push(ingest.stats.clone());
        let mut stop_ingest = stop_rx.clone();
        ingest_tasks.push(tokio::spawn(moldops_cloud::ingest::run(ingest, async move {
            let _ = stop_ingest.wait_for(|s| *s).await;
        })));
    }
    for stats in &all_stats {
        stats.wait_subscribed().await;
    }
    let total = |f: fn(&moldops_cloud::ingest::StatsSnapshot) -> u64| -> u64 {
        all_stats.iter().map(|s| f(&s.snapshot())).sum()
    };
    let cfg: EdgeConfig = toml::from_str(&format!(
        "site = \"bench\"\nedge_id = \"bench-edge\"\n[broker]\nhost = \"127.0.0.1\"\nport = {port}\n\
         [uplink]\ncatchup_records_per_s = 0\nbatch_max_records = {BATCH}\ndelete_after = \"{delete_after}\"\n"
    ))?;
    let health = moldops_edge::health::Health::new();
    let uplink = moldops_edge::uplink::Uplink::new(cfg, dir.to_path_buf(), buffer.clone(), health);
    let started = Instant::now();
    let up_task = tokio::spawn(uplink.run(stop_rx));
    let mut rx = Duration::ZERO;
    let commit = delete_after == "commit";
    while (total(|s| s.raw_records) as usize) < n || (commit && buffer.stats().records > 0) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        rx = started.elapsed();
        if rx > Duration::from_secs(600) {
            anyhow::bail!("only {} of {n} rows after 10 minutes", total(|s| s.raw_records));
        }
    }
    let rate = n as f64 / rx.as_secs_f64();
    let _ = stop_tx.send(true);
    let _ = up_task.await;
    for task in ingest_tasks {
        task.await??;
    }
    Ok((rate, total(|s| s.duplicates)))
}

/// What the edge used while polling one plant.
struct Footprint {
    peak_rss_mib: f64,
    cpu_percent: f64,
    devices: usize,
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("unreadable /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).context("short /proc stat");
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name and state.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// A quiet z-score model over the simulator's first four values of `machine` (window 3).
fn model(machine: &str) -> Result<Bundle> {
    let names = &FEATURE_NAMES[..4];
    let specs = names.iter().map(|n| FeatureSpec { name: n.to_string(), unit: None, fill: 0.0 }).collect();
    let key = ModelKey { machine_id: machine.into(), mold: None };
    let manifest = Manifest {
        model_id: format!("{machine}@1"),
        version: 1,
        ..Manifest::new(key, "zscore", specs, 3, 1e6)
    };
    let files = BTreeMap::from([(MODEL_FILE.to_string(), zscore_onnx(3, &[0.0; 4], &[1e3; 4]))]);
    Ok(Bundle::seal(manifest, files, &SEED)?)
}

/// Sends one model per machine to the edge in one desired state; waits until it runs them all.
async fn roll_out_models(port: u16, machines: usize, dir: &std::path::Path) -> Result<()> {
    let mut link = Link::connect(&broker_cfg(port), dir, "bench-rollout").await?;
    let mut desired = DesiredModels::default();
    let mut wanted = Vec::new();
    for m in 1..=machines {
        let (key, bref) = fleet::upload(&mut link, SITE, &model(&format!("m{m}"))?, 64 << 10).await?;
        let d = DesiredModel::new(key, bref);
        desired.set(d.clone());
        wanted.push(d);
    }
    desired.issued_at_ms = chrono::Utc::now().timestamp_millis();
    let t = topic::topic(SITE, EDGE, Leaf::ModelDesired);
    link.publish(&t, true, serde_json::to_vec(&desired)?).await?;
    link.sync(Duration::from_secs(60)).await?;
    for d in wanted {
        let per_edge = BTreeMap::from([(EDGE.to_string(), d.clone())]);
        let outcome = fleet::wait_for(
            &mut link,
            SITE,
            &d.model_key,
            &per_edge,
            desired.issued_at_ms,
            Duration::from_secs(600),
        )
        .await?;
        anyhow::ensure!(
            outcome.iter().all(|o| o.ok()),
            "model {} did not go live: {outcome:?}",
            d.model_key.label()
        );
    }
    link.close().await;
    Ok(())
}

/// The edge polling `machines` simulated machines with their peripherals for `window`.
fn footprint(
    dir: &std::path::Path,
    edge_bin: &std::path::Path,
    machines: usize,
    window: Duration,
) -> Result<Footprint> {
    let dir = dir.join(format!("plant{machines}"));
    std::fs::create_dir_all(&dir)?;
    let mut broker = Mosquitto::start(&dir);
    let cfg = dir.join("edge.toml");
    let mut sim_cmd = Command::new(bin("moldops-sim"));
    sim_cmd
        .args(["--machines", &machines.to_string(), "--speed", "1", "--base-port", "0"])
        .arg("--quality-log")
        .arg(dir.join("quality.jsonl"))
        .arg("--write-config")
        .arg(&cfg)
        .args([
            "--broker-port",
            &broker.port.to_string(),
            "--api-listen",
            "",
            "--site",
            SITE,
            "--edge-id",
            EDGE,
        ])
        .arg("--buffer-path")
        .arg(dir.join("buffer"));
    let mut sim = Proc::spawn("simulate", &mut sim_cmd, &dir);
    sim.wait_line(Duration::from_secs(120), |l| l.contains("\"ready\""));
    let mut text = std::fs::read_to_string(&cfg)?;
    let devices = text.matches("[[devices]]").count();
    let key: String = public_key(&SEED).iter().map(|b| format!("{b:02x}")).collect();
    text.push_str(&format!("\n[models]\npublic_key = \"{key}\"\nstore = \"models\"\nshadow_shots = 1\n"));
    std::fs::write(&cfg, text)?;
    let mut cmd = Command::new(edge_bin);
    cmd.arg("run").arg("--config").arg(&cfg).current_dir(&dir);
    let edge = Proc::spawn("edge", &mut cmd, &dir);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(roll_out_models(broker.port, machines, &dir))?;
    let cpu0 = cpu_seconds(edge.pid())?;
    let started = Instant::now();
    std::thread::sleep(window);
    let cpu = cpu_seconds(edge.pid()).context("the edge exited during the window")? - cpu0;
    let wall = started.elapsed().as_secs_f64();
    let kib = edge.peak_rss_kib().context("the edge exited during the window")?;
    broker.stop();
    Ok(Footprint { peak_rss_mib: kib as f64 / 1024.0, cpu_percent: 100.0 * cpu / wall, devices })
}

/// `target/{profile}/{name}` of a built binary: the profile folder it came from, without the
/// machine's own target path.
fn shown(bin: &std::path::Path) -> String {
    let mut parts = bin.iter().rev().take(2).map(|p| p.to_string_lossy()).collect::<Vec<_>>();
    parts.reverse();
    format!("target/{}", parts.join("/"))
}

struct Args {
    records: usize,
    rounds: usize,
    footprint_s: u64,
    machines: Vec<usize>,
    edge_bin: std::path::PathBuf,
    lake_url: Option<String>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        records: 200_000,
        rounds: 3,
        footprint_s: 300,
        machines: vec![50, 200],
        edge_bin: bin("moldops-edge"),
        lake_url: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--records" => a.records = value()?.parse()?,
            "--rounds" => a.rounds = value()?.parse::<usize>()?.max(1),
            "--footprint-s" => a.footprint_s = value()?.parse()?,
            "--machines" => {
                a.machines = value()?.split(',').map(|m| m.trim().parse()).collect::<Result<_, _>>()?
            }
            "--edge-bin" => a.edge_bin = value()?.into(),
            "--lake-url" => a.lake_url = Some(value()?.trim_end_matches('/').to_string()),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    let n = a.records;
    let tmp = tempfile::tempdir()?;
    let broker = Mosquitto::start(tmp.path());
    let (mut base, mut ours, mut puback, mut dups) = (Vec::new(), Vec::new(), Vec::new(), 0);
    let mut replicated = Vec::new();
    let url = a.lake_url.as_deref();
    for round in 1..=a.rounds {
        base.push(baseline(broker.port, n).await?);
        let dir = tmp.path().join(format!("round{round}"));
        let (rate, d) = moldops_path(broker.port, n, &dir, "commit", 1, url).await?;
        ours.push(rate);
        dups += d;
        let (rate, d) = moldops_path(broker.port, n, &dir, "puback", 1, url).await?;
        puback.push(rate);
        dups += d;
        let (rate, d) = moldops_path(broker.port, n, &dir, "puback", 3, url).await?;
        replicated.push(rate);
        dups += d;
        eprintln!(
            "round {round}: moldops {:.0} rec/s (commit acks), {:.0} rec/s (delete on PUBACK), {:.0} rec/s \
             (3 replicas, delete on PUBACK), baseline {:.0} rec/s",
            ours[round - 1],
            puback[round - 1],
            replicated[round - 1],
            base[round - 1]
        );
    }
    drop(broker);
    anyhow::ensure!(dups == 0, "the ingest dropped {dups} duplicates of records sent once");
    let checked = format!("every record in the lake, {dups} duplicates");
    let title = format!("sled → MQTT → ingest → Parquet, {n} buffered records, batches of {BATCH}");
    let result = serde_json::json!({
        "id": "uplink-commit", "title": format!("{title}, deleted on the ingest's commit ack"),
        "unit": "rec/s", "better": "higher", "ours": ours, "baseline": base,
        "baseline_name": "rumqttc → Mosquitto → rumqttc, same payloads (the broker's ceiling)",
        "checked": checked, "target": {"text": "≥ 50 000 rec/s", "ours_above": 50_000.0},
    });
    println!("BENCH-RESULT {result}");
    let result = serde_json::json!({
        "id": "uplink-puback", "title": format!("{title}, deleted on PUBACK"),
        "unit": "rec/s", "better": "higher", "ours": puback, "baseline": base,
        "baseline_name": "rumqttc → Mosquitto → rumqttc, same payloads",
        "checked": checked,
    });
    println!("BENCH-RESULT {result}");
    let result = serde_json::json!({
        "id": "uplink-puback-3-replicas",
        "title": format!("{title}, deleted on PUBACK, 3 ingest replicas (one share group, one lake)"),
        "unit": "rec/s", "better": "higher", "ours": replicated, "baseline": puback,
        "baseline_name": "the same with one ingest",
        "checked": checked,
    });
    println!("BENCH-RESULT {result}");
    let size = std::fs::metadata(&a.edge_bin).with_context(|| format!("{}", a.edge_bin.display()))?.len();
    let result = serde_json::json!({
        "id": "edge-binary", "title": format!("edge binary size ({})", shown(&a.edge_bin)),
        "unit": "MB", "better": "lower", "ours": [size as f64 / 1e6],
        "target": {"text": "< 30 MB", "ours_below": 30.0},
    });
    println!("BENCH-RESULT {result}");
    for machines in &a.machines {
        let window = Duration::from_secs(a.footprint_s);
        let dir = tmp.path().to_path_buf();
        let bin = a.edge_bin.clone();
        let machines = *machines;
        let f = tokio::task::spawn_blocking(move || footprint(&dir, &bin, machines, window)).await??;
        eprintln!(
            "{machines} machines ({} devices): peak RSS {:.1} MiB, CPU {:.1} %",
            f.devices, f.peak_rss_mib, f.cpu_percent
        );
        let title = format!(
            "edge, {machines} machines + peripherals ({} devices) at the simulator's poll rates, {} s",
            f.devices, a.footprint_s
        );
        let target = if machines <= 50 {
            serde_json::json!({"text": "< 50 MB", "ours_below": 47.68})
        } else {
            serde_json::Value::Null
        };
        let result = serde_json::json!({
            "id": format!("edge-rss-{machines}"), "title": format!("{title}: peak RSS"),
            "unit": "MiB", "better": "lower", "ours": [f.peak_rss_mib], "target": target,
        });
        println!("BENCH-RESULT {result}");
        let result = serde_json::json!({
            "id": format!("edge-cpu-{machines}"), "title": format!("{title}: mean CPU (100 % = one core)"),
            "unit": "%", "better": "lower", "ours": [f.cpu_percent],
        });
        println!("BENCH-RESULT {result}");
    }
    Ok(())
}
