//! `moldops-bench`: the edge data path measured against its baseline in one run.
//!
//! 1. **Throughput**, sled → MQTT → ingest → Parquet, on loopback with a real Mosquitto:
//!    an edge buffer pre-filled with N shot records (as after an outage) is drained by the
//!    uplink into the ingest until every row is committed to the lake. Baseline: the same
//!    batch payloads published and received by plain rumqttc clients through the same broker
//!    (no buffer, no lake) — the ceiling the broker and client give.
//! 2. **Footprint**: peak RSS of the `moldops-edge` process polling 50 simulated machines at
//!    1 Hz for a fixed window.
//!
//! Usage: `cargo run --release -p moldops-tests --bin moldops-bench -- [records] [rss_window_s]`

use anyhow::{Context, Result};
use moldops_common::mqtt::BrokerConfig;
use moldops_edge::buffer::{Buffer, NewRecord};
use moldops_edge::config::EdgeConfig;
use moldops_shared::{Record, RecordKind};
use moldops_sim::features::FEATURE_NAMES;
use moldops_tests::{Mosquitto, Proc, bin};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::process::Command;
use std::time::{Duration, Instant};

const BATCH: usize = 500;

fn shot(i: u64) -> Record {
    Record {
        seq: 0,
        kind: RecordKind::Shot,
        machine_id: format!("m{}", i % 4 + 1),
        device_id: format!("m{}", i % 4 + 1),
        ts_ms: 1_767_592_800_000 + (i as i64) * 16_000,
        shot_number: Some(i / 4 + 1),
        mold: Some("9000a 09520".into()),
        values: FEATURE_NAMES
            .iter()
            .enumerate()
            .map(|(k, n)| (n.to_string(), 20.0 + k as f64 + (i % 97) as f64 * 0.01))
            .collect(),
        out_of_range: vec![],
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
/// broker's PUBACK). The rate counts until every record is in the lake and, with commit acks,
/// until the buffer is empty.
async fn moldops_path(port: u16, n: usize, dir: &std::path::Path, delete_after: &str) -> Result<(f64, u64)> {
    let dir = dir.join(delete_after);
    let dir = dir.as_path();
    let buffer = Buffer::open(&dir.join("buffer"), 4 << 30)?;
    for chunk in (0..n as u64).collect::<Vec<_>>().chunks(5000) {
        buffer
            .append(chunk.iter().map(|i| NewRecord { record: shot(*i), shot_mark: None }).collect())
            .await?;
    }
    let mut ingest = moldops_cloud::ingest::IngestConfig::new(broker_cfg(port), dir.join("lake"));
    ingest.client_id = format!("bench-ingest-{delete_after}");
    let stats = ingest.stats.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut stop_ingest = stop_rx.clone();
    let ingest_task = tokio::spawn(moldops_cloud::ingest::run(ingest, async move {
        let _ = stop_ingest.wait_for(|s| *s).await;
    }));
    stats.wait_subscribed().await;
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
    while (stats.snapshot().raw_records as usize) < n || (commit && buffer.stats().records > 0) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        rx = started.elapsed();
        if rx > Duration::from_secs(600) {
            anyhow::bail!("only {} of {n} rows after 10 minutes", stats.snapshot().raw_records);
        }
    }
    let rate = n as f64 / rx.as_secs_f64();
    let _ = stop_tx.send(true);
    let _ = up_task.await;
    ingest_task.await??;
    Ok((rate, stats.snapshot().duplicates))
}

/// Peak RSS (MiB) of the edge polling 50 simulated machines at 1 Hz for `window`.
fn edge_rss(dir: &std::path::Path, window: Duration) -> Result<f64> {
    let mut broker = Mosquitto::start(dir);
    let cfg = dir.join("edge50.toml");
    let mut sim_cmd = Command::new(bin("moldops-sim"));
    sim_cmd
        .args(["--machines", "50", "--no-peripherals", "--speed", "1", "--base-port", "0"])
        .arg("--quality-log")
        .arg(dir.join("q50.jsonl"))
        .arg("--write-config")
        .arg(&cfg)
        .args(["--broker-port", &broker.port.to_string(), "--api-listen", ""])
        .arg("--buffer-path")
        .arg(dir.join("buf50"));
    let mut sim = Proc::spawn("simulate50", &mut sim_cmd, dir);
    sim.wait_line(Duration::from_secs(60), |l| l.contains("\"ready\""));
    let text =
        std::fs::read_to_string(&cfg)?.replace("poll_interval_ms = 100\n", "poll_interval_ms = 1000\n");
    std::fs::write(&cfg, text)?;
    let mut cmd = Command::new(bin("moldops-edge"));
    cmd.arg("run").arg("--config").arg(&cfg);
    let edge = Proc::spawn("edge50", &mut cmd, dir);
    std::thread::sleep(window);
    let kib = edge.peak_rss_kib().context("edge exited during the RSS window")?;
    broker.stop();
    Ok(kib as f64 / 1024.0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let window = Duration::from_secs(args.get(2).and_then(|a| a.parse().ok()).unwrap_or(30));
    let tmp = tempfile::tempdir()?;
    let broker = Mosquitto::start(tmp.path());
    let base = baseline(broker.port, n).await?;
    let (ours, dups) = moldops_path(broker.port, n, tmp.path(), "commit").await?;
    let (puback, _) = moldops_path(broker.port, n, tmp.path(), "puback").await?;
    drop(broker);
    eprintln!(
        "throughput: moldops {ours:.0} rec/s (commit acks), {puback:.0} rec/s (delete on PUBACK), baseline {base:.0} rec/s"
    );
    let rss = tokio::task::spawn_blocking({
        let dir = tmp.path().to_path_buf();
        move || edge_rss(&dir, window)
    })
    .await??;
    let profile = if cfg!(debug_assertions) { "dev (deps opt-level 1)" } else { "release" };
    println!("| measure ({profile}, {n} records, batches of {BATCH}) | value | baseline | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| sled → MQTT → ingest → Parquet | {ours:.0} rec/s | {base:.0} rec/s (rumqttc pub → Mosquitto → rumqttc sub) | {:.2} | ≥ 50,000 rec/s |",
        ours / base
    );
    println!(
        "| same, records deleted on PUBACK (no end-to-end ack) | {puback:.0} rec/s | {ours:.0} rec/s with commit acks | {:.2} | — |",
        puback / ours
    );
    println!("| duplicates dropped by ingest | {dups} | 0 | — | 0 |");
    println!(
        "| edge peak RSS, 50 machines polled at 1 Hz, {}s | {rss:.1} MiB | 50 MiB target | {:.2} | < 50 MB |",
        window.as_secs(),
        rss / 50.0
    );
    Ok(())
}
