//! The quality gate against a real sorting output: a pymodbus server (`peers/sorter_peer.py`)
//! receives the edge's writes while the simulator produces shots. The gate first decides on
//! limits alone, then with a model rolled out through Mosquitto, replaced by a second
//! version and rolled back; through a `kill -9` of the broker and of the edge, an output that goes away and
//! then refuses every write, and a deadline no decision can make. What the output received
//! must equal what the lake's `edge_decisions` says was written, shot for shot: every recorded
//! shot decided exactly once, no shot actuated twice, each decision made on the very verdict
//! `edge_scores` holds, failed writes recorded, the fail-safe written when the deadline is missed.

use crate::common::*;
use crate::rollout::{SEED, bundle, plant, publish, rollout, save, signing_key_file};
use moldops_tests::{Mosquitto, Proc, asset, free_port, python, wait_until};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(180);

/// Codes the gate writes (the config's defaults).
const GOOD: u64 = 1;
const UNCERTAIN: u64 = 3;

/// One row of `edge_decisions`.
#[derive(Debug, Clone)]
struct Decided {
    shot: u64,
    reason: String,
    actuated: u64,
    outcome: String,
    latency_ms: f64,
    bundle: Option<String>,
    score: Option<f64>,
}

fn decisions(lake: &Path) -> Vec<Decided> {
    let Ok(df) = moldops_cloud::lake::read_dataset(lake, "edge_decisions") else { return vec![] };
    let f64s = |name: &str| -> Vec<Option<f64>> {
        df.column(name)
            .ok()
            .and_then(|c| c.f64().ok().map(|c| c.iter().collect()))
            .unwrap_or_else(|| vec![None; df.height()])
    };
    let shots: Vec<Option<u64>> = df
        .column("shot_number")
        .ok()
        .and_then(|c| c.u64().ok().map(|c| c.iter().collect()))
        .unwrap_or_default();
    let bundles: Vec<Option<String>> = df
        .column("bundle_sha256")
        .ok()
        .and_then(|c| c.str().ok().map(|c| c.iter().map(|s| s.map(str::to_string)).collect()))
        .unwrap_or_else(|| vec![None; df.height()]);
    let (reason, actuated, outcome) = (f64s("reason"), f64s("actuated"), f64s("outcome"));
    let (latency, score) = (f64s("latency_ms"), f64s("score"));
    let name = |code: Option<f64>, names: &[&str]| names[code.unwrap_or(-1.0) as usize].to_string();
    let reasons = [
        "model_pass",
        "model_alarm",
        "limit_broken",
        "limits_pass",
        "no_judge",
        "warming",
        "features_missing",
        "inference_failed",
        "owed_after_restart",
        "already_actuated",
    ];
    let outcomes = ["written", "late", "failed", "not_wired", "skipped"];
    (0..df.height())
        .filter_map(|i| {
            Some(Decided {
                shot: shots.get(i).copied().flatten()?,
                reason: name(reason[i], &reasons),
                // Decision codes 0, 1, 2 are written as the config's default register codes 1, 2, 3.
                actuated: actuated[i]? as u64 + 1,
                outcome: name(outcome[i], &outcomes),
                latency_ms: latency[i]?,
                bundle: bundles[i].clone(),
                score: score[i],
            })
        })
        .collect()
}

/// `edge_scores` by shot: bundle and score.
fn scored(lake: &Path) -> BTreeMap<u64, (String, f64)> {
    let Ok(df) = moldops_cloud::lake::read_dataset(lake, "edge_scores") else { return BTreeMap::new() };
    let shots = df.column("shot_number").ok().and_then(|c| c.u64().ok().cloned());
    let bundles = df.column("bundle_sha256").ok().and_then(|c| c.str().ok().cloned());
    let scores = df.column("score").ok().and_then(|c| c.f64().ok().cloned());
    let (Some(shots), Some(bundles), Some(scores)) = (shots, bundles, scores) else { return BTreeMap::new() };
    shots
        .iter()
        .zip(bundles.iter())
        .zip(scores.iter())
        .filter_map(|((s, b), v)| Some((s?, (b?.to_string(), v?))))
        .collect()
}

/// What the sorting output received: shot number → every decision code written for it.
fn received(lines: &[String]) -> BTreeMap<u64, Vec<u64>> {
    let mut out: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for l in lines {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else { continue };
        let words: Vec<u64> =
            v["values"].as_array().map(|a| a.iter().filter_map(|w| w.as_u64()).collect()).unwrap_or_default();
        if let [code, hi, lo] = words[..] {
            out.entry((hi << 16) | lo).or_default().push(code);
        }
    }
    out
}

/// Waits until the output received decisions for `at_least` shots.
fn writes(sorter: &Proc, lines: &mut Vec<String>, at_least: usize) -> bool {
    wait_until(LONG, || {
        lines.extend(sorter.new_lines());
        received(lines).len() >= at_least
    })
}

fn gate_config(base: &str, sorter: u16, deadline_ms: u64) -> String {
    format!(
        "{base}\n[[gates]]\nmachine = \"m1\"\ndeadline_ms = {deadline_ms}\nfail_safe = \"uncertain\"\n\
         [gates.limits]\nCycle_Time = {{ min = 0.0 }}\n\
         [gates.output]\naddress = \"127.0.0.1:{sorter}\"\nregister = 10\n"
    )
}

#[test]
fn the_sorting_output_gets_every_decision_once_through_kills_a_rollout_and_failures() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let mut broker = Mosquitto::start(dir);
    let lake = dir.join("lake");
    let _ingest = start_ingest(dir, broker.port, &lake);
    let sorter_port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(asset("peers/sorter_peer.py")).arg(sorter_port.to_string());
    let mut sorter = Proc::spawn("sorter", &mut cmd, dir);
    sorter.wait_line(READY, |l| l == "READY");
    let mut lines = Vec::new();

    // Limits alone decide until a model is active; the output gets each live shot.
    let (mut sim, cfg) = plant(dir, broker.port, 2);
    let base = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(&cfg, gate_config(&base, sorter_port, 1000)).expect("write config");
    let mut edge = start_edge(dir, &cfg);
    assert!(writes(&sorter, &mut lines, 5), "the gate writes decisions\n{}", edge.stderr_tail());

    // A model rolls out (shadow, then active): it decides from then on, within the limits.
    let (ok, out) = publish(broker.port, &save(dir, "v1", &bundle(1, 1e6, &SEED)));
    assert!(ok, "v1 rollout: {out}\n{}", edge.stderr_tail());
    assert!(
        wait_until(LONG, || decisions(&lake).iter().any(|d| d.reason == "model_pass")),
        "the active model judges shots\n{}",
        edge.stderr_tail()
    );

    // A second version replaces it during production: the swap happens between two shots.
    let (ok, out) = publish(broker.port, &save(dir, "v2", &bundle(2, 1e5, &SEED)));
    assert!(ok, "v2 rollout: {out}\n{}", edge.stderr_tail());
    // ... and is rolled back to v1 during production (a signed rollback statement).
    let key_arg = signing_key_file(dir).display().to_string();
    let (ok, out) = rollout(broker.port, &["rollback", "--key", "m1", "--signing-key", &key_arg, "--json"]);
    assert!(ok, "rollback: {out}\n{}", edge.stderr_tail());
    let before = received(&lines).len();
    assert!(
        writes(&sorter, &mut lines, before + 3),
        "sorting goes on after the rollback\n{}",
        edge.stderr_tail()
    );

    // The broker crashes: parts are still sorted (the gate needs no broker); the decisions
    // wait in the edge's buffer and reach the lake once it is back.
    broker.kill9();
    let before = received(&lines).len();
    assert!(
        writes(&sorter, &mut lines, before + 5),
        "sorting goes on without a broker\n{}",
        edge.stderr_tail()
    );
    broker.restart();

    // kill -9 mid-run, then a restart: shots go on being decided, none twice.
    edge.kill9();
    let before = received(&lines).len();
    let mut edge = start_edge(dir, &cfg);
    assert!(
        writes(&sorter, &mut lines, before + 5),
        "decisions resume after the restart\n{}",
        edge.stderr_tail()
    );

    // The output goes away, then refuses every write: each shot is recorded as failed and
    // the error logged (the controller's own watchdog takes the fail-safe for those parts).
    lines.extend(sorter.new_lines());
    drop(sorter);
    let mut cmd = Command::new(python());
    cmd.arg(asset("peers/sorter_peer.py")).arg(sorter_port.to_string()).arg("--fail");
    let mut refusing = Proc::spawn("sorter-refusing", &mut cmd, dir);
    refusing.wait_line(READY, |l| l == "READY");
    let failed = |lake: &Path| decisions(lake).into_iter().filter(|d| d.outcome == "failed").count();
    assert!(wait_until(LONG, || failed(&lake) >= 3), "failed writes are recorded\n{}", edge.stderr_tail());
    assert!(edge.stderr_text().contains("gate output write failed"), "and logged\n{}", edge.stderr_tail());
    assert!(edge.terminate(Duration::from_secs(30)).is_some(), "the edge stops on SIGTERM");
    drop(refusing);
    let mut cmd = Command::new(python());
    cmd.arg(asset("peers/sorter_peer.py")).arg(sorter_port.to_string());
    let mut sorter = Proc::spawn("sorter-again", &mut cmd, dir);
    sorter.wait_line(READY, |l| l == "READY");

    // A deadline no decision can make: each live shot gets the fail-safe, counted as late.
    std::fs::write(&cfg, gate_config(&base, sorter_port, 1)).expect("write config");
    let mut edge = start_edge(dir, &cfg);
    assert!(
        wait_until(LONG, || decisions(&lake).iter().filter(|d| d.outcome == "late").count() >= 3),
        "missed deadlines are recorded\n{}",
        edge.stderr_tail()
    );
    sim.kill9();
    // Everything recorded reaches the lake: one decision per shot of the machine.
    let shots = || {
        lake_shots(&lake).into_iter().filter(|(m, _)| m == "m1").map(|(_, s)| s).collect::<BTreeSet<u64>>()
    };
    let settled = wait_until(LONG, || {
        let decided: BTreeSet<u64> = decisions(&lake).iter().map(|d| d.shot).collect();
        let shots = shots();
        !shots.is_empty() && decided == shots
    });
    let all = decisions(&lake);
    assert!(
        settled,
        "every shot decided: {} shots, {} decisions\n{}",
        shots().len(),
        all.len(),
        edge.stderr_tail()
    );
    assert!(edge.terminate(Duration::from_secs(30)).is_some());
    lines.extend(sorter.new_lines());
    let got = received(&lines);

    // A kill between a durable record and its journal entry may give that one shot a second,
    // owed record; anything else twice is a fault.
    let owed: Vec<&Decided> = all.iter().filter(|d| d.reason == "owed_after_restart").collect();
    let real: Vec<&Decided> = all.iter().filter(|d| d.reason != "owed_after_restart").collect();
    let mut seen = BTreeSet::new();
    let twice: Vec<u64> = real.iter().map(|d| d.shot).filter(|s| !seen.insert(*s)).collect();
    assert!(twice.is_empty(), "shots decided twice: {twice:?}");
    let doubled = owed.iter().filter(|d| seen.contains(&d.shot)).count();
    assert!(doubled <= 1, "{doubled} shots with a real and an owed record (one kill of the edge)");
    let mut owed_seen = BTreeSet::new();
    assert!(owed.iter().all(|d| owed_seen.insert(d.shot)), "an owed shot recorded twice: {owed:?}");
    let actuated_twice: Vec<(&u64, &Vec<u64>)> = got.iter().filter(|(_, codes)| codes.len() > 1).collect();
    assert!(actuated_twice.is_empty(), "shots actuated twice: {actuated_twice:?}");
    // The real record of a shot, else its owed one.
    let by_shot: BTreeMap<u64, &Decided> = owed.iter().chain(real.iter()).map(|d| (d.shot, *d)).collect();
    let mut unrecorded_writes = 0;
    for (shot, codes) in &got {
        match by_shot.get(shot) {
            Some(d) if d.outcome == "written" || d.outcome == "late" => {
                assert_eq!(codes, &[d.actuated], "shot {shot}: the output got what the lake says was written")
            }
            // No acknowledgement in time (the output killed between taking a write and
            // answering, or answering after the time left): failed, though the write arrived.
            Some(d) if d.outcome == "failed" => {
                assert_eq!(codes, &[d.actuated], "shot {shot}: what arrived is what was decided")
            }
            // A kill between the write and its record leaves the shot recorded as owed.
            Some(d) if d.reason == "owed_after_restart" => unrecorded_writes += 1,
            other => panic!("shot {shot}: written {codes:?} but recorded as {other:?}"),
        }
    }
    assert!(unrecorded_writes <= 1, "{unrecorded_writes} writes recorded as owed (one kill of the edge)");
    for d in &all {
        match d.outcome.as_str() {
            "written" | "late" => assert!(
                got.contains_key(&d.shot),
                "shot {}: recorded as {}, never received",
                d.shot,
                d.outcome
            ),
            "skipped" => {}
            "failed" => {}
            other => panic!("shot {}: outcome {other}", d.shot),
        }
        if d.outcome == "written" {
            assert!(d.latency_ms >= 0.0 && d.latency_ms <= 1000.0, "within the deadline: {d:?}");
        }
        if d.outcome == "late" {
            assert_eq!(d.actuated, UNCERTAIN, "a missed deadline writes the fail-safe: {d:?}");
        }
        match d.reason.as_str() {
            "model_pass" | "model_alarm" => {
                assert!(d.bundle.is_some() && d.score.is_some(), "the model's evidence: {d:?}")
            }
            "limits_pass" => assert!(d.bundle.is_none() && d.actuated == GOOD, "{d:?}"),
            _ => {}
        }
    }
    // The gate decided on exactly the verdict the lake's edge_scores holds for the shot: the
    // same bundle, the same score (two versions judged parts, each shot by one of them).
    let scores = scored(&lake);
    let judged: Vec<&Decided> = all.iter().filter(|d| d.bundle.is_some()).collect();
    for d in &judged {
        let s = scores.get(&d.shot);
        assert_eq!(s.map(|(b, _)| b), d.bundle.as_ref(), "shot {}: the gate's model is the scorer's", d.shot);
        assert_eq!(s.map(|(_, v)| *v), d.score, "shot {}: same score", d.shot);
    }
    let bundles: BTreeSet<&String> = judged.iter().filter_map(|d| d.bundle.as_ref()).collect();
    assert_eq!(bundles.len(), 2, "v1 and v2 judged parts");
    let mut in_order: Vec<(u64, &String)> =
        judged.iter().filter_map(|d| Some((d.shot, d.bundle.as_ref()?))).collect();
    in_order.sort();
    let swaps = in_order.windows(2).filter(|w| w[0].1 != w[1].1).count();
    assert!(swaps >= 2, "v1, then v2, then v1 again after the rollback ({swaps} swaps)");
    let mut latencies: Vec<f64> =
        all.iter().filter(|d| d.outcome == "written").map(|d| d.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    eprintln!(
        "gate latency, detection to acknowledgement, {} writes: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
    let reasons: BTreeSet<&str> = all.iter().map(|d| d.reason.as_str()).collect();
    assert!(
        reasons.contains("limits_pass") && reasons.contains("model_pass"),
        "both judges decided: {reasons:?}"
    );
}

/// The same gate writing to an OPC UA server (the asyncua peer's `--sorter` variables) for a
/// machine read over OPC UA from the same server: one write per shot, shot number and code.
#[test]
fn an_opcua_sorting_output_gets_one_write_per_shot() {
    use crate::opcua::{NUMERIC_MAP, edge_config, start_peer, ua_device, write};
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let (port, api) = (free_port(), free_port());
    let map = write(dir, "machine.toml", NUMERIC_MAP);
    let args = ["--shots", "6", "--every", "0.3", "--wait-client", "--sorter"];
    let mut peer = start_peer(dir, "opcua-sorter", port, &[map.as_path()], &args);
    let gate = format!(
        "[[gates]]\nmachine = \"m-ua\"\ndeadline_ms = 1000\n[gates.limits]\nCycle_Time = {{ min = 0.0 }}\n\
         [gates.output]\nprotocol = \"opcua\"\ndecision_node = \"ns=2;s=Sorter.Decision\"\nshot_node = \"ns=2;s=Sorter.Shot\"\n\
         [gates.output.opcua]\nendpoint = \"opc.tcp://127.0.0.1:{port}/moldops/\"\n"
    );
    let devices = ua_device("m-ua", "machine", port, 200, &format!("profile_file = {map:?}"));
    let cfg = edge_config(dir, broker.port, api, &format!("{devices}\n{gate}"));
    let edge = start_edge(dir, &cfg);
    let (mut shots, mut writes) = (BTreeSet::new(), BTreeMap::new());
    while shots.len() < 6 || writes.len() < 6 {
        let line = peer.wait_line(LONG, |l| l.starts_with("SHOT ") || l.starts_with("WRITE "));
        let v: serde_json::Value = serde_json::from_str(&line[line.find('{').unwrap_or(0)..]).expect("json");
        if line.starts_with("SHOT ") {
            shots.insert(v["n"].as_u64().expect("n"));
        } else {
            let shot = v["shot"].as_u64().expect("shot");
            assert!(
                writes.insert(shot, v["decision"].as_i64()).is_none(),
                "shot {shot} written twice: {line}"
            );
        }
        assert!(writes.len() <= 6 + 1, "writes beyond the shots made: {writes:?}\n{}", edge.stderr_tail());
    }
    assert_eq!(writes.keys().copied().collect::<BTreeSet<u64>>(), shots, "one write per shot");
    assert!(writes.values().all(|d| *d == Some(GOOD as i64)), "limits hold: good for each ({writes:?})");
}
