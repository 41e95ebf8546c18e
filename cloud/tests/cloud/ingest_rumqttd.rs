//! Smoke test of `ingest::run` through a real MQTT broker (rumqttd, in process): readiness,
//! commits, quarantine, dedup of a replay across a restart, clean shutdown.

use moldops_cloud::ingest::{self, IngestConfig, IngestStats};
use moldops_cloud::lake;
use moldops_shared::topic::{Leaf, topic};
use moldops_shared::{Batch, Record, RecordKind, encode_batch};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, QoS};
use std::sync::Arc;
use std::time::Duration;

/// The embedded broker the demo uses, on a free loopback port.
fn start_broker() -> u16 {
    let addr = moldops_cloud::broker::free_loopback().expect("free port");
    moldops_cloud::broker::start(addr).expect("embedded broker");
    addr.port()
}

fn batch(edge: &str, seqs: std::ops::RangeInclusive<u64>) -> Vec<u8> {
    let records = seqs
        .map(|seq| Record {
            seq,
            kind: RecordKind::Shot,
            machine_id: "M1".into(),
            device_id: "M1".into(),
            ts_ms: 1_700_000_000_000 + seq as i64,
            shot_number: Some(seq),
            mold: Some("A".into()),
            material: None,
            values: [("Cycle_Time".to_string(), 60.0)].into_iter().collect(),
            out_of_range: vec![],
            model: None,
        })
        .collect();
    encode_batch(&Batch::new("plant", edge, 0, records).expect("non-empty"))
}

async fn publish(port: u16, msgs: Vec<(String, Vec<u8>)>) {
    let mut opts = MqttOptions::new("test-publisher", "127.0.0.1", port);
    opts.set_max_packet_size(1 << 24, 1 << 24);
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let n = msgs.len();
    for (t, p) in msgs {
        client.publish(t, QoS::AtLeastOnce, false, p).await.expect("queue publish");
    }
    let mut acked = 0;
    while acked < n {
        match tokio::time::timeout(Duration::from_secs(10), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(rumqttc::Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            other => panic!("publisher failed: {other:?}"),
        }
    }
    let _ = client.disconnect().await;
    while let Ok(Ok(ev)) = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await {
        if matches!(ev, Event::Outgoing(Outgoing::Disconnect)) {
            break;
        }
    }
}

async fn wait_for(stats: &IngestStats, what: &str, done: impl Fn(&ingest::StatsSnapshot) -> bool) {
    for _ in 0..500 {
        if done(&stats.snapshot()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}: {:?}", stats.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_through_a_broker_dedups_replays_across_restarts() {
    let port = start_broker();
    let dir = tempfile::tempdir().expect("tempdir");
    let t = topic("plant", "e1", Leaf::Data);

    let cfg = IngestConfig::local("127.0.0.1", port, dir.path());
    let stats = cfg.stats.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(ingest::run(cfg, async move {
        let _ = stopped.await;
    }));
    tokio::time::timeout(Duration::from_secs(10), stats.wait_subscribed()).await.expect("subscribed");
    publish(port, vec![(t.clone(), batch("e1", 1..=100)), (t.clone(), b"{broken".to_vec())]).await;
    wait_for(&stats, "first commit", |s| s.raw_records == 100 && s.quarantined == 1).await;
    let _ = stop.send(());
    task.await.expect("join").expect("clean shutdown");

    // A restart with the same lake: a replay of 1..=100 plus new records.
    let cfg = IngestConfig::local("127.0.0.1", port, dir.path());
    let stats: Arc<IngestStats> = cfg.stats.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(ingest::run(cfg, async move {
        let _ = stopped.await;
    }));
    tokio::time::timeout(Duration::from_secs(10), stats.wait_subscribed()).await.expect("subscribed again");
    publish(port, vec![(t.clone(), batch("e1", 1..=100)), (t.clone(), batch("e1", 90..=150))]).await;
    wait_for(&stats, "replay", |s| s.duplicates == 111 && s.raw_records == 50).await;
    let _ = stop.send(());
    task.await.expect("join").expect("clean shutdown");

    let raw = lake::read_dataset(dir.path(), "raw_data").expect("read");
    assert_eq!(raw.height(), 150);
    let summary = lake::summary(dir.path()).expect("summary");
    assert_eq!(summary.datasets[0].machines[0].distinct_shots, 150);
    assert_eq!(summary.quarantine.count, 1);
}
