//! An edge whose buffer fills while the cloud is away: it drops the oldest records, and the
//! cloud learns exactly how many per machine and device, and when, from the gap records the
//! edge uploads in their place; what was sent before it was dropped is told apart.

use crate::common::*;
use crate::soak::{edge_status, fixed_api_port, plant_with_buffer};
use moldops_tests::{Mosquitto, wait_until};
use std::collections::BTreeMap;
use std::time::Duration;

#[test]
fn a_full_buffer_reports_what_it_dropped_per_machine_and_time_range() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let lake = dir.join("lake");
    let broker = Mosquitto::start(dir);
    let shots_per_machine = 40usize;
    let (sim, cfg, qlog) =
        plant_with_buffer(dir, broker.port, shots_per_machine as u64, 10, &dir.join("edge-buffer"));
    fixed_api_port(&cfg);
    let text = std::fs::read_to_string(&cfg).expect("config");
    let small = text.replace("max_bytes = 536870912", "max_bytes = 65536");
    assert_ne!(small, text, "the simulator writes buffer.max_bytes");
    std::fs::write(&cfg, small).expect("config");

    // No ingest yet: nothing is confirmed, so the 64 KiB buffer fills and drops.
    let edge = start_edge(dir, &cfg);
    let long = Duration::from_secs(240);
    let dropping = wait_until(long, || {
        edge_status(&cfg).is_some_and(|s| s["buffer"]["dropped"].as_u64().unwrap_or(0) >= 30)
    });
    assert!(dropping, "the buffer never filled: {:?}\n{}", edge_status(&cfg), edge.stderr_tail());
    let _ingest = start_ingest(dir, broker.port, &lake);
    assert!(
        wait_until(long, || logged_shots(&qlog).len() >= 2 * shots_per_machine),
        "simulator did not finish"
    );
    let truth = logged_shots(&qlog);

    // Every shot is in the lake or in a reported gap, per machine; every drop is reported.
    let per_machine = |rows: &[(String, u64)]| {
        let mut n: BTreeMap<String, usize> = BTreeMap::new();
        rows.iter().for_each(|(m, _)| *n.entry(m.clone()).or_default() += 1);
        n
    };
    let logged = per_machine(&truth.iter().cloned().collect::<Vec<_>>());
    let accounted = || {
        let Ok(summary) = moldops_cloud::lake::summary(&lake) else { return false };
        let in_lake = per_machine(&lake_shots(&lake));
        let status = edge_status(&cfg).unwrap_or_default();
        let edge_dropped = status["buffer"]["dropped"].as_u64().unwrap_or(u64::MAX);
        let reported: u64 = summary.dropped_at_edge.iter().map(|d| d.dropped).sum();
        reported == edge_dropped
            && logged.iter().all(|(m, &n)| {
                let missing = summary
                    .dropped_at_edge
                    .iter()
                    .find(|d| &d.machine_id == m && &d.device_id == m)
                    .map_or(0, |d| d.missing as usize);
                in_lake.get(m).copied().unwrap_or(0) + missing == n
            })
    };
    let done = wait_until(long, accounted);
    let summary = moldops_cloud::lake::summary(&lake).expect("summary");
    assert!(
        done,
        "lake shots + reported drops never matched the simulator's log per machine:\nlogged {logged:?}\nin lake {:?}\n\
         reported {:?}\nedge {:?}\n{}",
        per_machine(&lake_shots(&lake)),
        summary.dropped_at_edge,
        edge_status(&cfg),
        edge.stderr_tail()
    );
    let rows = lake_shots(&lake);
    let distinct: std::collections::BTreeSet<_> = rows.iter().cloned().collect();
    assert_eq!(distinct.len(), rows.len(), "no shot landed twice");
    assert!(distinct.is_subset(&truth), "every shot in the lake was made");
    let lost: u64 =
        summary.dropped_at_edge.iter().filter(|d| d.machine_id == d.device_id).map(|d| d.missing).sum();
    assert!(lost > 0, "shots were lost for good: {:?}", summary.dropped_at_edge);
    assert!(
        summary.dropped_at_edge.iter().all(|d| d.first_ts <= d.last_ts && d.edges == ["edge-01"]),
        "each gap has its time range and edge: {:?}",
        summary.dropped_at_edge
    );
    let table = summary.to_table();
    assert!(table.contains("dropped at the edge"), "{table}");
    eprintln!(
        "buffer full: {} shots made, {} in the lake; (source, dropped, missing): {:?}",
        truth.len(),
        rows.len(),
        summary
            .dropped_at_edge
            .iter()
            .map(|d| (d.device_id.as_str(), d.dropped, d.missing))
            .collect::<Vec<_>>()
    );
    drop(sim);
}
