//! The label loop over a lake the ingest wrote: scored shots first, then labels arriving in
//! stages — none, an operator's verdicts, a QC lot result hours later, a scrap count — and the
//! report after each; hostile scrap tables refused with their reasons.

use super::join::{LotSource, Source};
use super::operator::{self, Mark, Verdict};
use super::report::{GroupReport, Report};
use super::scrap;
use crate::import::table::{ReadOptions, read_csv};
use crate::ingest::commit::tests::{T0, data_topic, payload, shot};
use crate::ingest::commit::{Committer, Group};
use moldops_shared::Record;
use moldops_shared::rollout::ScoreMessage;
use std::path::Path;

const KEY: &str = "M1/MOLD-A";
/// Shots 1–20 are lot A, 21–40 lot B, 41–60 the period the scrap count covers.
const SHOTS: u64 = 60;
/// The shots whose score raised an alarm.
const ALARMS: [u64; 6] = [3, 7, 12, 25, 30, 45];

fn ts(n: u64) -> i64 {
    T0 + n as i64 * 1000
}

/// The score record the edge sends for shot `n` (buffer seq `seq`, the shot's `2n − 1`).
fn score(seq: u64, n: u64, alarm: bool) -> Record {
    let msg = ScoreMessage {
        edge_id: "e1".into(),
        machine_id: "M1".into(),
        mold: Some("MOLD-A".into()),
        shot_number: Some(1000 + n),
        seq: 2 * n - 1,
        ts_ms: ts(n),
        model_key: KEY.into(),
        model_id: format!("{KEY}@2"),
        version: 2,
        bundle_sha256: "c0ffee".repeat(10) + "c0ff",
        score: if alarm { 9.0 } else { 0.5 },
        threshold: 3.0,
        alarm,
        contributions: vec![("Cycle_Time".into(), 6.0)],
    };
    Record { seq, ..msg.to_record() }
}

/// A lake holding 60 shots of M1 (`raw_data`) and their scores (`edge_scores`) as the ingest
/// commits them.
fn scored_lake() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, _) = Committer::open(dir.path()).expect("open");
    let mut records = Vec::new();
    for n in 1..=SHOTS {
        // Buffer seqs rise through the batch: the shot, then its score.
        let raw = shot(2 * n - 1, "M1", &[("Cycle_Time", 30.0 + n as f64)]);
        records.push(Record { ts_ms: ts(n), shot_number: Some(1000 + n), ..raw });
        records.push(score(2 * n, n, ALARMS.contains(&n)));
    }
    let mut g = Group::default();
    g.add(&data_topic("e1"), &payload("e1", records), T0);
    let out = c.commit(g).expect("commit");
    assert_eq!((out.raw_records, out.score_records, out.quarantined), (SHOTS, SHOTS, 0), "{out:?}");
    dir
}

fn only_group(report: &Report) -> &GroupReport {
    assert_eq!(report.groups.len(), 1, "one (model, version, mould): {report:#?}");
    &report.groups[0]
}

fn mark(lake: &Path, n: u64, verdict: Verdict, marked_ms: i64) {
    let mark = Mark {
        machine_id: "M1".into(),
        shot_ts_ms: ts(n),
        shot_number: Some(1000 + n),
        mold: Some("MOLD-A".into()),
        verdict,
        user: "alice".into(),
        marked_ms,
        stamp: 0,
    };
    operator::record(lake, &mark).expect("record a verdict");
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write table");
    path
}

fn rfc(n: u64) -> String {
    crate::lake::quarantine::rfc3339_ms(ts(n))
}

#[test]
fn precision_and_recall_appear_per_lot_as_labels_arrive() {
    let lake = scored_lake();
    let files = tempfile::tempdir().expect("tempdir");

    // 1. Scored shots, no label: counted, but no precision or recall.
    let r = super::report(lake.path()).expect("report");
    assert_eq!(r.scored, SHOTS);
    let g = only_group(&r);
    assert_eq!((g.model_key.as_str(), g.model_version, g.mold.as_deref()), (KEY, Some(2), Some("MOLD-A")));
    assert_eq!((g.scored, g.alarms, g.labelled), (SHOTS, ALARMS.len() as u64, 0));
    assert_eq!((g.quality.precision.value, g.quality.recall.value), (None, None));
    assert!(g.lots.is_empty() && g.lot_bounds.is_none());
    assert!(super::report::to_text(&r).contains("precision –  recall –"), "{}", super::report::to_text(&r));
    assert!(super::evidence(lake.path(), 1).expect("evidence").is_empty(), "nothing labelled yet");

    // 2. Operators mark two alarms: precision appears; recall does not, since a verdict exists
    //    only where an alarm was raised and cannot show a missed defect.
    mark(lake.path(), 3, Verdict::Defect, T0 + 100_000);
    mark(lake.path(), 7, Verdict::Defect, T0 + 100_000);
    mark(lake.path(), 7, Verdict::FalseAlarm, T0 + 200_000); // marked again: the latest wins
    mark(lake.path(), 12, Verdict::Unsure, T0 + 100_000); // no label
    let r = super::report(lake.path()).expect("report");
    let g = only_group(&r);
    assert_eq!(r.operator_verdicts, 3);
    assert_eq!(g.labelled, 2);
    assert_eq!(g.by_source.get(&Source::Operator), Some(&2));
    assert_eq!((g.counts.tp, g.counts.fp, g.counts.fn_, g.counts.tn), (1, 1, 0, 0));
    assert_eq!(g.quality.precision.value, Some(0.5));
    let (low, high) = (g.quality.precision.low.expect("low"), g.quality.precision.high.expect("high"));
    assert!(low < 0.5 && 0.5 < high && high - low > 0.5, "two labels give a wide interval: {low} {high}");
    assert_eq!(g.quality.recall.value, None, "operator verdicts never feed recall");
    assert_eq!(g.recall_counts.total(), 0);

    // 3. Hours later QC's lot results arrive: lot A had 10 % defective parts (labels no shot,
    //    bounds the lot), lot B was all defective (labels each of its shots).
    mark(lake.path(), 25, Verdict::FalseAlarm, T0 + 300_000); // disagrees with lot B's result
    let lots = format!(
        "machine_id,from_ts,to_ts,defect_ratio,lot\nM1,{},{},0.1,LOT-A\nM1,{},{},1,LOT-B\n",
        rfc(1),
        rfc(20),
        rfc(21),
        rfc(40)
    );
    let imported = crate::import::import_lot_labels(
        lake.path(),
        &write(files.path(), "lots.csv", &lots),
        &ReadOptions::default(),
    )
    .expect("import lots");
    assert_eq!(imported.written, 2);
    let r = super::report(lake.path()).expect("report");
    let g = only_group(&r);
    assert_eq!(r.lots, 2);
    // Precision: 3 TP (op), 7 FP (op), 25 FP (op, before the lot), 30 TP (lot); the rest of lot
    // B are missed defects.
    assert_eq!((g.counts.tp, g.counts.fp, g.counts.fn_, g.counts.tn), (2, 2, 18, 0));
    assert_eq!(g.quality.precision.value, Some(0.5));
    // Recall counts lot B's shots by the lot alone: 25 and 30 were caught, 18 missed.
    assert_eq!((g.recall_counts.tp, g.recall_counts.fn_, g.recall_counts.fp), (2, 18, 0));
    assert_eq!(g.quality.recall.value, Some(0.1));
    let (low, high) = (g.quality.recall.low.expect("low"), g.quality.recall.high.expect("high"));
    assert!(low < 0.1 && 0.1 < high && high < 0.35, "{low} {high}");
    assert_eq!(g.clusters, 2, "the lots are the clusters");
    let names: Vec<&str> = g.lots.iter().map(|l| l.lot.as_str()).collect();
    assert_eq!(names, ["LOT-A", "LOT-B"]);
    let (a, b) = (&g.lots[0], &g.lots[1]);
    assert_eq!((a.source, a.bounds.shots, a.bounds.alarms, a.bounds.defects), (LotSource::Qc, 20, 3, 2));
    assert_eq!((a.bounds.tp_low, a.bounds.tp_high), (0, 2));
    assert_eq!(a.precision, Some([0.0, 2.0 / 3.0]));
    assert_eq!((b.bounds.shots, b.bounds.alarms, b.bounds.defects), (20, 2, 20));
    assert_eq!((b.precision, b.recall), (Some([1.0, 1.0]), Some([0.1, 0.1])));
    let text = super::report::to_text(&r);
    assert!(text.contains("lot LOT-B: 20 shot(s), 2 alarm(s), QC defect ratio 1.000"), "{text}");

    // The trigger's view: one key, its recall clearly below 50 %.
    let evidence = super::evidence(lake.path(), 4).expect("evidence");
    assert_eq!(evidence.len(), 1);
    let e = &evidence[0];
    assert_eq!((e.model_key.as_str(), e.model_version, e.labelled, e.blind_labelled), (KEY, 2, 22, 20));
    assert!(e.recall_below(0.5) && !e.recall_below(0.1), "{:?}", e.quality.recall);
    assert!(!e.precision_below(0.5), "precision 0.5 is not clearly below 0.5");
    assert!(super::evidence(lake.path(), 23).expect("evidence").is_empty(), "too few labels");

    // 4. A scrap count for shots 41–60, out of the shots the lake holds (no `parts` column).
    let scrap_csv = format!("machine_id,from_ts,to_ts,scrap,lot\nM1,{},{},5,PERIOD-C\n", rfc(41), rfc(60));
    let path = write(files.path(), "scrap.csv", &scrap_csv);
    let imported = scrap::import(lake.path(), &path, &ReadOptions::default()).expect("import scrap");
    assert_eq!((imported.written, imported.quarantined, imported.dataset.as_str()), (1, 0, "lot_labels"));
    let again = scrap::import(lake.path(), &path, &ReadOptions::default()).expect("again");
    assert_eq!((again.written, again.duplicates), (0, 1), "importing the same file adds nothing");
    let r = super::report(lake.path()).expect("report");
    let g = only_group(&r);
    assert_eq!(r.lots, 3);
    let c = g.lots.iter().find(|l| l.lot == "PERIOD-C").expect("the scrap count's row");
    assert_eq!((c.source, c.scrap, c.parts, c.defect_ratio), (LotSource::Scrap, Some(5), Some(20), 0.25));
    assert_eq!((c.bounds.shots, c.bounds.alarms, c.bounds.defects), (20, 1, 5));
    assert_eq!(c.recall, Some([0.0, 0.2]));
    assert_eq!(g.clusters, 2, "a ratio between 0 and 1 labels no shot");
    assert!(super::report::to_text(&r).contains("scrap 5 of 20"));
}

#[test]
fn hostile_scrap_tables_are_refused_with_their_reasons() {
    let lake = scored_lake();
    let files = tempfile::tempdir().expect("tempdir");
    let long = "M".repeat(200);
    let text = format!(
        "machine_id,from_ts,to_ts,scrap,parts\n\
         M1,{a},{b},-3,\n\
         M1,{a},{b},2.5,10\n\
         M1,{a},{b},11,10\n\
         M1,{a},{b},1,0\n\
         M1,{b},{a},1,10\n\
         M1,0,{huge},1,10\n\
         {long},{a},{b},1,10\n\
         ,{a},{b},1,10\n\
         M1,yesterday,{b},1,10\n\
         M1,{a},{b},99,\n\
         M9,{a},{b},1,\n\
         M1,{a},{b},2,10\n",
        a = rfc(1),
        b = rfc(10),
        huge = i64::MAX
    );
    let path = write(files.path(), "hostile.csv", &text);
    let report =
        scrap::import(lake.path(), &path, &ReadOptions::default()).expect("rows are refused, not the file");
    assert_eq!((report.rows, report.written, report.quarantined), (12, 1, 11));

    let table = read_csv(&text).expect("csv");
    let calls = std::cell::Cell::new(0);
    let (ok, refused) = scrap::parse(&table, |m, from, to| {
        calls.set(calls.get() + 1);
        scrap::ShotCounter::new(lake.path()).count(m, from, to)
    })
    .expect("parse");
    assert_eq!(ok.len(), 1);
    assert_eq!((ok[0].scrap, ok[0].parts), (2, 10));
    assert_eq!(calls.get(), 2, "the lake is read only for rows without parts that passed every other check");
    let reasons: Vec<(Option<&str>, &str)> =
        refused.iter().map(|(_, c, r)| (c.as_deref(), r.as_str())).collect();
    let expect = [
        ("scrap", "\"-3\" is not a whole number"),
        ("scrap", "\"2.5\" is not a whole number"),
        ("scrap", "11 scrapped is more than the lot's 10 parts"),
        ("parts", "a lot of 0 parts"),
        ("to_ts", "before from_ts"),
        ("to_ts", "longer than 366 days"),
        ("machine_id", "200 bytes long"),
        ("machine_id", "empty"),
        ("from_ts", "neither RFC 3339"),
        ("scrap", "99 scrapped is more than the 10 shots of M1"),
        ("from_ts", "the lake holds no shot of M9"),
    ];
    assert_eq!(reasons.len(), expect.len(), "{reasons:#?}");
    for ((column, reason), (want_col, want)) in reasons.iter().zip(expect) {
        assert_eq!(*column, Some(want_col), "{reason}");
        assert!(reason.contains(want), "{reason:?} should say {want:?}");
    }

    // A table that is not a scrap table is refused whole, naming what it lacks.
    let lots = write(files.path(), "lots.csv", "machine_id,from_ts,to_ts,defect_ratio\nM1,0,10,0.5\n");
    let err = scrap::import(lake.path(), &lots, &ReadOptions::default()).expect_err("no scrap column");
    assert!(format!("{err:#}").contains("a scrap table needs the column(s) scrap"), "{err:#}");
    // Bytes that are no table at all.
    let junk = files.path().join("junk.csv");
    std::fs::write(&junk, [0xffu8, 0xfe, 0x00, 0x01, b'\n', 0x80, 0x81]).expect("write");
    assert!(scrap::import(lake.path(), &junk, &ReadOptions::default()).is_err());
    assert_eq!(super::report(lake.path()).expect("report").lots, 1, "only the good row was stored");
}

#[test]
fn the_shot_counter_counts_distinct_shots_in_the_span_only() {
    let lake = scored_lake();
    let mut counter = scrap::ShotCounter::new(lake.path());
    assert_eq!(counter.count("M1", ts(1), ts(60)).expect("count"), 60);
    assert_eq!(counter.count("M1", ts(5), ts(9)).expect("count"), 5, "inclusive ends, from memory");
    assert_eq!(counter.count("M1", ts(61), ts(61) + 86_400_000).expect("count"), 0);
    assert_eq!(counter.count("M2", ts(1), ts(60)).expect("count"), 0);
}
