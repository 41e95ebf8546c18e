//! Every shot exactly once under the faults a plant really has: random `kill -9`s of the edge,
//! the ingest and the broker itself (with the shipped persistence settings), the broker down
//! for over a minute, "ingest stopped, then the broker killed" (the pattern that lost
//! acknowledged data before commit acks), and an edge whose buffer is wiped or corrupt.

use crate::common::*;
use moldops_tests::{Mosquitto, Proc, bin, wait_until};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The simulator (2 machines, accelerated) writing the edge config; returns it and the paths.
fn plant(dir: &Path, broker: u16, shots: u64, resend_s: u64) -> (Proc, PathBuf, PathBuf) {
    plant_with_buffer(dir, broker, shots, resend_s, &dir.join("edge-buffer"))
}

pub(crate) fn plant_with_buffer(
    dir: &Path,
    broker: u16,
    shots: u64,
    resend_s: u64,
    buffer: &Path,
) -> (Proc, PathBuf, PathBuf) {
    let (qlog, cfg) = (dir.join("quality.jsonl"), dir.join("edge.toml"));
    let mut sim_cmd = Command::new(bin("moldops-sim"));
    sim_cmd
        .args(["--machines", "2", "--speed", "150", "--seed", "5", "--base-port", "0"])
        .args(["--shots", &shots.to_string()])
        .arg("--quality-log")
        .arg(&qlog)
        .arg("--write-config")
        .arg(&cfg)
        .args(["--broker-port", &broker.to_string(), "--api-listen", "127.0.0.1:0"])
        .arg("--buffer-path")
        .arg(buffer);
    let mut sim = Proc::spawn("simulate", &mut sim_cmd, dir);
    sim.wait_line(READY, |l| l.contains("\"ready\""));
    let text = std::fs::read_to_string(&cfg).expect("edge config");
    let text = text.replace("resend_after_s = 60", &format!("resend_after_s = {resend_s}"));
    assert!(text.contains(&format!("resend_after_s = {resend_s}")), "the sim writes uplink.resend_after_s");
    // `MOLDOPS_SOAK_DELETE_AFTER=puback` runs the edge as before commit acks, to see the loss.
    let mode = std::env::var("MOLDOPS_SOAK_DELETE_AFTER").unwrap_or_else(|_| "commit".into());
    let text = text.replace("delete_after = \"commit\"", &format!("delete_after = \"{mode}\""));
    std::fs::write(&cfg, text).expect("write edge config");
    (sim, cfg, qlog)
}

/// Waits until the first shots are in the lake.
fn wait_first_shots(lake: &Path, edge: &Proc) {
    let arrived = wait_until(Duration::from_secs(180), || lake_shots(lake).len() >= 5);
    assert!(arrived, "no shots reached the lake\n{}", edge.stderr_tail());
}

fn pause(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn soak_random_kill9_of_edge_ingest_and_broker_loses_and_doubles_nothing() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let lake = dir.join("lake");
    let mut broker = Mosquitto::start_shipped(dir);
    let shots_per_machine = 420;
    let (sim, cfg, qlog) = plant(dir, broker.port, shots_per_machine, 10);
    let mut ingest = start_ingest(dir, broker.port, &lake);
    let mut edge = start_edge(dir, &cfg);
    wait_first_shots(&lake, &edge);

    let seed = std::env::var("MOLDOPS_SOAK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20_261_203);
    eprintln!("soak seed {seed} (MOLDOPS_SOAK_SEED replays it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut kills, started) = ([0u32; 3], Instant::now());
    // The pattern that lost acknowledged data before commit acks: the ingest is away, the
    // broker holds its queue in memory, and the broker dies before its next save.
    for _ in 0..3 {
        ingest.kill9();
        pause(3000 + rng.random_range(0..3000u64));
        broker.kill9();
        broker.restart();
        ingest = start_ingest(dir, broker.port, &lake);
        kills[1] += 1;
        kills[2] += 1;
        pause(1000 + rng.random_range(0..2000u64));
    }
    // A long outage: the broker is gone for over a minute while the plant keeps producing.
    broker.kill9();
    kills[2] += 1;
    let during = logged_shots(&qlog).len();
    pause(65_000);
    assert!(logged_shots(&qlog).len() > during, "the simulator kept producing during the outage");
    broker.restart();
    // Twenty random kills, one process at a time, restarted after a short random delay.
    for _ in 0..20 {
        let which = rng.random_range(0..3usize);
        match which {
            0 => {
                edge.kill9();
                pause(rng.random_range(0..2500u64));
                edge = start_edge(dir, &cfg);
            }
            1 => {
                ingest.kill9();
                pause(rng.random_range(0..2500u64));
                ingest = start_ingest(dir, broker.port, &lake);
            }
            _ => {
                broker.kill9();
                pause(rng.random_range(0..2500u64));
                broker.restart();
            }
        }
        kills[which] += 1;
        pause(1500 + rng.random_range(0..2500u64));
    }
    let total = 2 * shots_per_machine as usize;
    let got = assert_lake_matches_log(&lake, &qlog, total, &[&edge, &ingest]);
    eprintln!(
        "soak: {} kill -9 (edge {}, ingest {}, broker {}; one began a 65 s broker outage) in {:.0} s; \
         {} shots logged, {} in the lake, 0 lost, 0 duplicated",
        kills.iter().sum::<u32>(),
        kills[0],
        kills[1],
        kills[2],
        started.elapsed().as_secs_f64(),
        total,
        got.len()
    );
    drop(sim);
}

/// Gives the edge's API a fixed free port (the simulator writes port 0).
pub(crate) fn fixed_api_port(cfg: &Path) {
    let text = std::fs::read_to_string(cfg).expect("config");
    let port = moldops_tests::free_port();
    let text = text.replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""));
    std::fs::write(cfg, text).expect("config");
}

/// `/status` of the edge whose API port the simulator's config names.
pub(crate) fn edge_status(cfg: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(cfg).ok()?;
    let listen = text.lines().find_map(|l| l.trim().strip_prefix("listen = "))?.trim_matches('"').to_string();
    let port: u16 = listen.rsplit(':').next()?.parse().ok()?;
    let body = crate::faults::http_get(port, "/status")?;
    serde_json::from_str(&body).ok()
}

#[test]
fn a_wiped_or_corrupt_edge_buffer_starts_a_new_epoch_and_every_later_shot_lands() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let lake = dir.join("lake");
    let broker = Mosquitto::start(dir);
    let (sim, cfg, qlog) = plant(dir, broker.port, 150, 10);
    let text = std::fs::read_to_string(&cfg).expect("config");
    let text = text.replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{}\"", moldops_tests::free_port()),
    );
    std::fs::write(&cfg, text).expect("config");
    let buffer = dir.join("edge-buffer");
    let _ingest = start_ingest(dir, broker.port, &lake);
    let mut edge = start_edge(dir, &cfg);
    let long = Duration::from_secs(180);
    let lake_has = |n: usize| wait_until(long, || lake_shots(&lake).len() >= n);
    assert!(lake_has(5), "no shots reached the lake\n{}", edge.stderr_tail());

    // An operator deletes the buffer (the old "fix" for a broken one) and restarts the edge.
    edge.kill9();
    std::fs::remove_dir_all(&buffer).expect("wipe the buffer");
    edge = start_edge(dir, &cfg);
    let after_wipe = logged_shots(&qlog);
    assert!(lake_has(lake_shots(&lake).len() + 5), "no shots after the wipe\n{}", edge.stderr_tail());

    // The buffer's files are overwritten with garbage: the edge moves it aside and goes on.
    edge.kill9();
    for entry in std::fs::read_dir(&buffer).expect("buffer files").flatten() {
        if entry.path().is_file() {
            std::fs::write(entry.path(), vec![0xA5u8; 4096]).expect("corrupt");
        }
    }
    edge = start_edge(dir, &cfg);
    let after_corrupt = logged_shots(&qlog);
    let reported =
        wait_until(long, || edge_status(&cfg).is_some_and(|s| s["buffer"]["resets"].as_u64() == Some(1)));
    assert!(reported, "the reset is in /status: {:?}\n{}", edge_status(&cfg), edge.stderr_tail());
    let aside = std::fs::read_dir(dir)
        .expect("ls")
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("edge-buffer.corrupt-"));
    assert!(aside, "the corrupt buffer is kept for forensics");

    // Every shot made after each restart reaches the lake exactly once.
    assert!(
        wait_until(Duration::from_secs(300), || logged_shots(&qlog).len() >= 300),
        "simulator did not finish"
    );
    let truth = logged_shots(&qlog);
    let later: BTreeSet<_> = truth.difference(&after_wipe).cloned().collect();
    let later_corrupt: BTreeSet<_> = truth.difference(&after_corrupt).cloned().collect();
    let landed = wait_until(long, || {
        let got: BTreeSet<_> = lake_shots(&lake).into_iter().collect();
        later.is_subset(&got) && later_corrupt.is_subset(&got)
    });
    let rows = lake_shots(&lake);
    let got: BTreeSet<_> = rows.iter().cloned().collect();
    let missing: Vec<_> = later.difference(&got).collect();
    assert!(landed, "shots made after the wipe never reached the lake: {missing:?}\n{}", edge.stderr_tail());
    // A fresh buffer has no shot marks, so the edge reads the controller's history ring back
    // on first contact: shots made before the wipe may land a second time (another epoch).
    // Shots made after it land exactly once.
    let twice = |s: &(String, u64)| rows.iter().filter(|r| *r == s).count() > 1;
    let doubled: Vec<_> = later.iter().filter(|s| twice(s)).collect();
    assert!(doubled.is_empty(), "shots made after the wipe landed twice: {doubled:?}");
    let reread = rows.len() - got.len();
    eprintln!(
        "buffer wipe + corruption: {} later shots all landed; {reread} older shot(s) read back from the history ring again",
        later.len()
    );
    let summary = moldops_cloud::lake::summary(&lake).expect("summary");
    let epochs: usize = summary.edges.iter().map(|e| e.epochs.len()).sum();
    assert_eq!(epochs, 3, "three buffers, three epochs: {:?}", summary.edges);
    drop(sim);
}

/// Unmounts a test file system when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_reported_as_disk_full_and_the_edge_resumes_when_space_returns() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let fs = dir.join("small-fs");
    std::fs::create_dir_all(&fs).expect("mkdir");
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"]).arg(&fs).status();
    assert!(
        mounted.is_ok_and(|s| s.success()),
        "this test mounts a 16 MiB tmpfs for the edge buffer (needs root)"
    );
    let _unmount = Mounted(fs.clone());
    let lake = dir.join("lake");
    let broker = Mosquitto::start(dir);
    let (sim, cfg, qlog) = plant_with_buffer(dir, broker.port, 400, 10, &fs.join("edge-buffer"));
    fixed_api_port(&cfg);
    let _ingest = start_ingest(dir, broker.port, &lake);
    let mut edge = start_edge(dir, &cfg);
    let long = Duration::from_secs(180);
    wait_first_shots(&lake, &edge);

    // Fill the file system to the last byte.
    let filler = fs.join("filler");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 64 << 10];
        while f.write_all(&chunk).and_then(|()| f.sync_data()).is_ok() {}
    }
    let full = wait_until(long, || {
        edge_status(&cfg).is_some_and(|s| s["buffer"]["write_failing"]["disk_full"] == true)
    });
    let s = edge_status(&cfg).unwrap_or_default();
    assert!(full, "disk full is reported as such: {s:#}\n{}", edge.stderr_tail());
    assert!(s["buffer"]["write_errors"].as_u64().unwrap_or(0) >= 1);
    let devices = s["devices"].as_object().cloned().unwrap_or_default();
    assert!(
        devices.values().all(|d| d["connected"] == true),
        "a full disk is not a device fault: {devices:?}"
    );
    assert!(edge.wait_exit(Duration::from_millis(10)).is_none(), "the edge keeps running");

    // The edge tries to reopen the database while the disk is still full; whatever that
    // attempt meets, the status goes on saying why writes fail (once said "closed").
    let tried = wait_until(long, || {
        let log = edge.stderr_tail();
        log.contains("reopening the buffer failed") || log.contains("buffer database reopened")
    });
    assert!(tried, "the edge retries the buffer while the disk is full\n{}", edge.stderr_tail());
    let errors = |s: &serde_json::Value| s["buffer"]["write_errors"].as_u64().unwrap_or(0);
    let before = edge_status(&cfg).map_or(0, |s| errors(&s));
    let later = wait_until(long, || edge_status(&cfg).is_some_and(|s| errors(&s) >= before + 2));
    let s = edge_status(&cfg).unwrap_or_default();
    assert!(later, "appends go on failing while full: {s:#}");
    assert_eq!(s["buffer"]["write_failing"]["disk_full"], true, "still disk full after a reopen: {s:#}");

    // Space returns: writes resume and later shots reach the lake.
    std::fs::remove_file(&filler).expect("free the space");
    let resumed =
        wait_until(long, || edge_status(&cfg).is_some_and(|s| s["buffer"]["write_failing"].is_null()));
    assert!(resumed, "writes resume: {:?}\n{}", edge_status(&cfg), edge.stderr_tail());
    let after = logged_shots(&qlog);
    let landed = wait_until(long, || {
        let got: BTreeSet<_> = lake_shots(&lake).into_iter().collect();
        let truth = logged_shots(&qlog);
        let later: Vec<_> = truth.difference(&after).collect();
        later.len() >= 3 && later.iter().all(|s| got.contains(*s))
    });
    assert!(landed, "shots made after the disk had room again reached the lake\n{}", edge.stderr_tail());
    let log = edge.stderr_tail();
    assert!(
        log.contains("disk full") && log.contains("accepts writes again"),
        "the log says what happened:\n{log}"
    );
    drop(sim);
}
