//! The ETL on small hand-made lakes: each drop rule, the as-of join at its tolerance edges,
//! runs across midnight, across days and on mold changes, shot and lot labels, and reruns that
//! change nothing.

use crate::support::{DAY, DAY0, MIN, commit, good, reading, shot};
use moldops_cloud::etl::{self, EtlConfig, Tolerance, read_etl};
use moldops_cloud::import::labels::{LotLabel, ShotLabel, write_lot_labels, write_shot_labels};
use polars::prelude::DataFrame;

fn f64s(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    df.column(name).expect(name).f64().expect("f64").iter().collect()
}

fn strs(df: &DataFrame, name: &str) -> Vec<Option<String>> {
    df.column(name).expect(name).str().expect("str").iter().map(|s| s.map(str::to_string)).collect()
}

/// Settings with a fixed tolerance: for tests of incremental reruns on a few shots, where an
/// auto tolerance (not settled below 100 shots) would legitimately rebuild every date.
fn fixed() -> EtlConfig {
    EtlConfig { tolerance_ms: Tolerance::Fixed(30_000), ..Default::default() }
}

fn shots(df: &DataFrame) -> Vec<u64> {
    df.column("shot_number").expect("shot_number").u64().expect("u64").iter().flatten().collect()
}

#[test]
fn each_drop_rule_is_counted_and_the_rest_kept() {
    let lake = tempfile::tempdir().expect("tempdir");
    let t = DAY0 + 8 * 60 * MIN;
    let v = |cycle: f64, cushion: f64| [("Cycle_Time", cycle), ("Cushion_Position", cushion)];
    let records = vec![
        good(1, t, "A"),
        shot(2, t + MIN, "A", &v(60.0, 4.294967e8)),
        shot(3, t + 2 * MIN, "A", &v(0.0, 0.0)),
        shot(4, t + 3 * MIN, "A", &[("Cycle_Time", 0.0)]),
        shot(5, t + 4 * MIN, "A", &v(107_400.0, 22.0)),
        good(6, t + 5 * MIN, "A"),
        good(6, t + 5 * MIN, "A"),
        shot(7, t + 6 * MIN, "A", &v(-1.0, 22.0)),
        good(8, t + 7 * MIN, "A"),
    ];
    commit(lake.path(), "e1", 1, records);
    let s = etl::run(lake.path(), &EtlConfig::default()).expect("etl");
    assert_eq!(s.rows_in, 9);
    assert_eq!(s.rows_out, 3);
    let d = |r: &str| s.dropped.get(r).copied().unwrap_or(0);
    assert_eq!((d("sentinel"), d("idle"), d("impossible"), d("duplicate")), (1, 2, 2, 1));
    let out = read_etl(lake.path()).expect("read etl_data");
    assert_eq!(shots(&out), [1, 6, 8]);
    let saved = std::fs::read(lake.path().join("_etl/last_run.json")).expect("summary saved");
    assert!(String::from_utf8_lossy(&saved).contains("\"impossible\": 2"));
}

/// `n` good shots from `start`, `cycle` ms apart, each with a tcu reading `age` ms before it.
fn cycling(first: u64, n: u64, start: i64, cycle: i64, age: i64) -> Vec<moldops_shared::Record> {
    (0..n)
        .flat_map(|i| {
            let ts = start + i as i64 * cycle;
            [reading("M1-tcu", ts - age, &[("flow", 1.0)]), good(first + i, ts, "A")]
        })
        .collect()
}

#[test]
fn auto_tolerance_follows_the_machines_cycle_until_it_settles() {
    let lake = tempfile::tempdir().expect("tempdir");
    let joined = |lake: &std::path::Path| f64s(&read_etl(lake).expect("read"), "tcu.flow");
    // A slow machine (120 s cycle): readings 50 s before the shot are within half a cycle.
    commit(lake.path(), "e1", 1, cycling(1, 40, DAY0 + 60 * MIN, 2 * MIN, 50_000));
    let s = etl::run(lake.path(), &EtlConfig::default()).expect("etl");
    assert_eq!(s.machines[0].tolerance_ms, 60_000, "{s:?}");
    assert!(joined(lake.path()).iter().all(Option::is_some));
    let t = etl::machine_tolerance(lake.path(), "M1").expect("state").expect("recorded");
    assert!(t.auto && !t.settled() && t.shots == 40, "{t:?}");
    let again = etl::run(lake.path(), &EtlConfig::default()).expect("rerun");
    assert_eq!((again.rows_in, again.dates_written), (0, 0), "nothing new: nothing derived again");
    assert_eq!(again.machines[0].tolerance_ms, 60_000, "the summary still says what it was built with");

    // The next day it runs a 20 s cycle: the typical cycle is now 20 s, and everything is
    // rebuilt with 10 s (readings 50 s and 15 s old no longer count).
    commit(lake.path(), "e1", 100, cycling(41, 100, DAY0 + DAY + 60 * MIN, 20_000, 15_000));
    let s = etl::run(lake.path(), &EtlConfig::default()).expect("etl");
    assert_eq!((s.machines[0].tolerance_ms, s.dates_written), (10_000, 2), "{s:?}");
    assert!(joined(lake.path()).iter().all(Option::is_none));
    let t = etl::machine_tolerance(lake.path(), "M1").expect("state").expect("recorded");
    assert!(t.settled() && t.shots == 140, "{t:?}");

    // Settled: slow shots on a third day join with 10 s, and the earlier days stay as built.
    commit(lake.path(), "e1", 400, cycling(141, 20, DAY0 + 2 * DAY + 60 * MIN, 2 * MIN, 5_000));
    let s = etl::run(lake.path(), &EtlConfig::default()).expect("etl");
    assert_eq!((s.machines[0].tolerance_ms, s.dates_written), (10_000, 1), "{s:?}");
    let flow = joined(lake.path());
    assert_eq!(flow.iter().filter(|v| v.is_some()).count(), 20, "only the third day's 5 s old readings");
    assert_eq!(etl::machine_tolerance(lake.path(), "M1").expect("state").expect("recorded"), t);

    // A fixed setting overrides it (and rebuilds).
    let cfg = EtlConfig { tolerance_ms: Tolerance::Fixed(60_000), ..Default::default() };
    let s = etl::run(lake.path(), &cfg).expect("etl");
    assert_eq!((s.machines[0].tolerance_ms, s.dates_written), (60_000, 3));
    assert!(joined(lake.path()).iter().all(Option::is_some));
}

#[test]
fn as_of_join_takes_the_latest_reading_within_tolerance() {
    let lake = tempfile::tempdir().expect("tempdir");
    let t = DAY0 + 8 * 60 * MIN;
    let tol = 10_000;
    let mut records = vec![
        // Shot 1: reading exactly at the tolerance edge counts; an older one is superseded.
        reading("M1-tcu", t - tol - 5_000, &[("flow", 1.0)]),
        reading("M1-tcu", t - tol, &[("flow", 2.0)]),
        good(1, t, "A"),
        // Shot 2: the latest reading is 1 ms too old.
        reading("M1-tcu", t + 10 * MIN - tol - 1, &[("flow", 3.0)]),
        good(2, t + 10 * MIN, "A"),
        // Shot 3: a reading at the shot's own ms counts, one 1 ms after does not.
        reading("M1-tcu", t + 20 * MIN, &[("flow", 4.0)]),
        good(3, t + 20 * MIN, "A"),
        reading("M1-tcu", t + 20 * MIN + 1, &[("flow", 5.0)]),
        // Another device: its own latest reading, named by its alias.
        reading("M1-dryer", t + 20 * MIN - 1, &[("dew_point", -40.0)]),
    ];
    records.sort_by_key(|r| r.ts_ms);
    commit(lake.path(), "e1", 1, records);
    let cfg = EtlConfig { tolerance_ms: Tolerance::Fixed(tol), ..Default::default() };
    etl::run(lake.path(), &cfg).expect("etl");
    let out = read_etl(lake.path()).expect("read");
    assert_eq!(f64s(&out, "tcu.flow"), [Some(2.0), None, Some(4.0)]);
    assert_eq!(f64s(&out, "dryer.dew_point"), [None, None, Some(-40.0)]);
    let names: Vec<&str> = out.get_column_names().into_iter().map(|c| c.as_str()).collect();
    let features = &names[etl::ID_COLUMNS.len()..];
    assert_eq!(features, ["Cushion_Position", "Cycle_Time", "dryer.dew_point", "tcu.flow"]);
}

#[test]
fn runs_continue_across_midnight_split_on_long_gaps_and_molds_incrementally() {
    let lake = tempfile::tempdir().expect("tempdir");
    let midnight = DAY0 + DAY;
    // Day 1: two shots before midnight.
    commit(lake.path(), "e1", 1, vec![good(1, midnight - 10 * MIN, "A"), good(2, midnight - 2 * MIN, "A")]);
    etl::run(lake.path(), &fixed()).expect("etl day 1");
    // Day 2 arrives later: 5 min after midnight (same run), a mold change, then a gap of one
    // day and five minutes (the original counted it as 5 minutes).
    commit(
        lake.path(),
        "e1",
        3,
        vec![
            good(3, midnight + 3 * MIN, "A"),
            good(4, midnight + 5 * MIN, "B"),
            good(5, midnight + 6 * MIN, "B"),
        ],
    );
    commit(lake.path(), "e1", 6, vec![good(6, midnight + 6 * MIN + DAY + 5 * MIN, "B")]);
    let s = etl::run(lake.path(), &fixed()).expect("etl day 2");
    assert_eq!(s.dates_written, 2, "only the new dates are written");
    let out = read_etl(lake.path()).expect("read");
    let first = format!("M1-{}", midnight - 10 * MIN);
    let b = format!("M1-{}", midnight + 5 * MIN);
    let late = format!("M1-{}", midnight + 6 * MIN + DAY + 5 * MIN);
    let want = [&first, &first, &first, &b, &b, &late].map(|s| Some(s.to_string()));
    assert_eq!(strs(&out, "run_id"), want);
}

#[test]
fn shot_and_lot_labels_attach_with_their_source() {
    let lake = tempfile::tempdir().expect("tempdir");
    let t = DAY0 + 8 * 60 * MIN;
    commit(lake.path(), "e1", 1, (1..=4).map(|n| good(n, t + n as i64 * MIN, "A")).collect());
    let label = |n: u64, label: f64| ShotLabel {
        machine_id: "M1".into(),
        shot_number: n,
        ts_ms: t + n as i64 * MIN,
        label,
        defect: (label > 0.0).then(|| "short_shot".to_string()),
    };
    write_shot_labels(lake.path(), "qc", &[label(1, 0.0), label(2, 1.0)]).expect("labels");
    let lot = LotLabel {
        machine_id: "M1".into(),
        from_ms: t + 2 * MIN,
        to_ms: t + 3 * MIN,
        defect_ratio: 0.25,
        lot: None,
    };
    write_lot_labels(lake.path(), "lots", &[lot]).expect("lots");
    etl::run(lake.path(), &EtlConfig::default()).expect("etl");
    let out = read_etl(lake.path()).expect("read");
    assert_eq!(f64s(&out, "label"), [Some(0.0), Some(1.0), Some(0.25), None]);
    let src = strs(&out, "label_source");
    assert_eq!(src, [Some("shot"), Some("shot"), Some("lot"), None].map(|s| s.map(str::to_string)));
    assert_eq!(strs(&out, "defect")[1].as_deref(), Some("short_shot"));
}

#[test]
fn scrap_counts_label_no_shot_for_training() {
    let lake = tempfile::tempdir().expect("tempdir");
    let t = DAY0 + 8 * 60 * MIN;
    commit(lake.path(), "e1", 1, (1..=4).map(|n| good(n, t + n as i64 * MIN, "A")).collect());
    // 3 of 5 parts scrapped in a span: which ones is unknown, so no shot gets a label.
    let count = moldops_cloud::labels::scrap::ScrapCount {
        machine_id: "M1".into(),
        from_ms: t,
        to_ms: t + 10 * MIN,
        scrap: 3,
        parts: 5,
        lot: Some("L1".into()),
    };
    moldops_cloud::labels::scrap::write(lake.path(), "scrap", &[count]).expect("scrap");
    let lot = LotLabel {
        machine_id: "M1".into(),
        from_ms: t + 4 * MIN,
        to_ms: t + 5 * MIN,
        defect_ratio: 1.0,
        lot: None,
    };
    write_lot_labels(lake.path(), "lots", &[lot]).expect("lots");
    etl::run(lake.path(), &EtlConfig::default()).expect("etl");
    let out = read_etl(lake.path()).expect("read");
    assert_eq!(f64s(&out, "label"), [None, None, None, Some(1.0)], "only the QC lot labels a shot");
}

#[test]
fn a_rerun_changes_nothing_and_new_inputs_rebuild_only_their_dates() {
    let lake = tempfile::tempdir().expect("tempdir");
    let t = DAY0 + 8 * 60 * MIN;
    commit(lake.path(), "e1", 1, vec![good(1, t, "A"), good(2, t + DAY, "A"), good(3, t + 2 * DAY, "A")]);
    let first = etl::run(lake.path(), &fixed()).expect("etl");
    assert_eq!(first.dates_written, 3);
    let out_dir = lake.path().join("etl_data/machine=M1");
    let stamp = |d: &str| {
        std::fs::metadata(out_dir.join(format!("date={d}/part.parquet")))
            .and_then(|m| m.modified())
            .expect("output")
    };
    let before = [stamp("2024-05-01"), stamp("2024-05-02"), stamp("2024-05-03")];
    let again = etl::run(lake.path(), &fixed()).expect("rerun");
    assert_eq!((again.rows_in, again.dates_written), (0, 0));
    assert_eq!([stamp("2024-05-01"), stamp("2024-05-02"), stamp("2024-05-03")], before);
    // A late shot of the middle day: that day is rebuilt; the last day is merged again for
    // run continuity but its output is the same, so it is not rewritten.
    commit(lake.path(), "e1", 4, vec![good(4, t + DAY + MIN, "A")]);
    let late = etl::run(lake.path(), &fixed()).expect("late data");
    assert_eq!((late.machines[0].dates_processed, late.dates_written), (2, 1));
    assert_eq!(stamp("2024-05-01"), before[0]);
    assert_eq!(stamp("2024-05-03"), before[2]);
    assert_eq!(shots(&read_etl(lake.path()).expect("read")), [1, 2, 4, 3]);
}

#[test]
fn a_machine_that_fails_does_not_stop_the_others() {
    let lake = tempfile::tempdir().expect("tempdir");
    let t = DAY0 + 8 * 60 * MIN;
    commit(lake.path(), "e1", 1, (1..=3).map(|n| good(n, t + n as i64 * MIN, "A")).collect());
    // Machine M0 sorts first and has a part file that is not Parquet (e.g. a copy cut short).
    let bad = lake.path().join("raw_data/machine=M0/date=2024-05-01");
    std::fs::create_dir_all(&bad).expect("mkdir");
    let file = bad.join("part-x-1-1-00000000000000000001.parquet");
    std::fs::write(&file, b"PAR1 not really").expect("write");
    let cfg = EtlConfig { jobs: 2, ..fixed() };
    let err = etl::run(lake.path(), &cfg).expect_err("M0 cannot be read");
    assert!(format!("{err:#}").contains("machine=M0"), "{err:#}");
    assert_eq!(shots(&read_etl(lake.path()).expect("read")), [1, 2, 3], "M1 was built anyway");
    // Once the file is dealt with, only M0 is built; M1 is not touched again.
    std::fs::remove_file(&file).expect("rm");
    let s = etl::run(lake.path(), &cfg).expect("etl");
    let m1 = s.machines.iter().find(|m| m.machine == "M1").expect("M1 in the summary");
    assert_eq!((m1.dates_processed, m1.dates_written), (0, 0), "{s:?}");
}

#[test]
fn of_readings_with_one_time_the_last_committed_wins() {
    let lake = tempfile::tempdir().expect("tempdir");
    let t = DAY0 + 8 * 60 * MIN;
    let records = vec![
        reading("M1-tcu", t - 2_000, &[("flow", 1.0)]),
        reading("M1-tcu", t - 1_000, &[("flow", 2.0)]),
        reading("M1-tcu", t - 1_000, &[("flow", 3.0)]),
        good(1, t, "A"),
    ];
    // Seqs 2..=5, then 10: the later commit's file (`part-e1-10-…`) sorts, and is read, before
    // the earlier one's (`part-e1-2-…`), so only ordering by seq picks the right reading.
    commit(lake.path(), "e1", 2, records);
    // The same time again, committed later (a higher seq).
    commit(lake.path(), "e1", 10, vec![reading("M1-tcu", t - 1_000, &[("flow", 4.0)])]);
    etl::run(lake.path(), &fixed()).expect("etl");
    assert_eq!(f64s(&read_etl(lake.path()).expect("read"), "tcu.flow"), [Some(4.0)]);
}

#[test]
fn shards_run_at_once_build_what_one_whole_run_builds() {
    use moldops_cloud::etl::state::EtlState;
    use moldops_cloud::shard::MachineSelection;
    let (whole, sharded) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    // Six machines, two days each: good shots a minute apart, each with a tcu reading.
    let mut records = Vec::new();
    for m in 1..=6 {
        let id = format!("M{m}");
        for r in cycling(1, 60, DAY0 + 23 * 60 * MIN + 30 * MIN, MIN, 10_000) {
            let device = if r.device_id == "M1" { id.clone() } else { format!("{id}-tcu") };
            records.push(moldops_shared::Record { machine_id: id.clone(), device_id: device, ..r });
        }
    }
    commit(whole.path(), "e1", 1, records.clone());
    commit(sharded.path(), "e1", 1, records);
    let all = etl::run(whole.path(), &fixed()).expect("whole run");
    let n = 3;
    let summaries: Vec<etl::EtlSummary> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..n)
            .map(|i| {
                let select = MachineSelection {
                    shard: Some(format!("{i}/{n}").parse().expect("shard")),
                    ..Default::default()
                };
                let lake = sharded.path();
                s.spawn(move || etl::run_selected(lake, &fixed(), &select).expect("shard run"))
            })
            .collect();
        runs.into_iter().map(|r| r.join().expect("thread")).collect()
    });
    let machines: usize = summaries.iter().map(|s| s.machines.len()).sum();
    assert_eq!((all.machines.len(), machines), (6, 6), "each machine in exactly one shard");
    let rows: u64 = summaries.iter().map(|s| s.rows_out).sum();
    assert_eq!(rows, all.rows_out);
    let (a, b) = (read_etl(whole.path()).expect("whole"), read_etl(sharded.path()).expect("sharded"));
    assert!(a.height() == 360 && a.equals_missing(&b), "the same etl_data:\n{a}\n{b}");
    // The same state but for the input fingerprints (part file names differ between lakes).
    let built = |lake: &std::path::Path| {
        let st = EtlState::load(lake).expect("state");
        let dates: Vec<_> = st
            .machines
            .into_iter()
            .flat_map(|(m, dates)| {
                dates.into_iter().map(move |(d, s)| (m.clone(), d, s.runs, s.tail, s.rows))
            })
            .collect();
        (dates, st.tolerances)
    };
    let (sa, sb) = (built(whole.path()), built(sharded.path()));
    assert_eq!(sa.0.len(), 12, "6 machines × 2 dates");
    assert_eq!(sa, sb, "every shard's machines in the one state file");
    // A shard run again finds nothing new; named machines run only those.
    let again = etl::run_selected(
        sharded.path(),
        &fixed(),
        &MachineSelection { machines: vec!["M2".into()], shard: None },
    )
    .expect("rerun");
    assert_eq!((again.machines.len(), again.rows_in, again.dates_written), (1, 0, 0), "{again:?}");
}
