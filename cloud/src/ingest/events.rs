//! What edges say about themselves on their retained topics, kept in the lake's `edge_events`:
//! their link state (`status`: `online` on every connection, `offline` when they stop cleanly
//! or when the broker publishes their last will because the connection died), their rollout
//! state per model key (`model/reported`), and what the rollout manager asked of them per model
//! key (`model/desired`, the cloud's retained message each edge reads).
//!
//! A retained message comes again on every subscription, so each is recorded once: the ingest
//! state keeps the last few (state, edge time) marks per edge and topic, and a message already
//! marked is passed over. A payload that is not such a message is quarantined with the reason.

use crate::lake;
use crate::lake::write::{prepare_dirs, sync_dirs, write_parquet};
use anyhow::{Context, Result};
use moldops_shared::limits;
use moldops_shared::rollout::{DesiredModels, ReportedModels};
use moldops_shared::sparkplug;
use moldops_shared::status::{LinkState, MACHINE_ID, StatusMessage};
use moldops_shared::topic::Leaf;
use polars::prelude::{Column, DataFrame, Int64Chunked, IntoColumn, NewChunkedArray, TimeUnit, TimeZone};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The dataset of edge events.
pub const DATASET: &str = "edge_events";

/// Largest event payload read (a reported state with many model keys stays far below).
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Marks kept per edge and topic to recognise a retained message seen before.
const MARKS_KEPT: usize = 8;

const DAY_MS: i64 = 86_400_000;

/// One row of `edge_events`.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeEvent {
    /// Site of the edge.
    pub site: String,
    /// Id of the edge.
    pub edge_id: String,
    /// When the ingest received the message (UTC ms; column `ts`): for a last will, about when
    /// the edge's connection died.
    pub received_at_ms: i64,
    /// The time the edge wrote into the message (UTC ms; column `edge_ts`). A last will carries
    /// the time of the connection it guards.
    pub edge_ts_ms: i64,
    /// `online`, `offline`, `rollout` (the edge's report) or `desired` (the manager's request;
    /// `target_version` is the version asked for, `reason` says `rollback` when it came with a
    /// signed rollback statement).
    pub event: &'static str,
    /// The edge's build (status events).
    pub edge_version: Option<String>,
    /// The model key (rollout events).
    pub model_key: Option<String>,
    /// `downloading`, `verified`, `shadow`, `active`, `rejected` or `rolled_back`.
    pub rollout_state: Option<&'static str>,
    /// Version of the bundle the rollout is about.
    pub target_version: Option<u32>,
    /// Version scoring live shots.
    pub active_version: Option<u32>,
    /// Why a target was rejected or rolled back.
    pub reason: Option<String>,
    /// Shadow progress of the target (rollout events in state `shadow`): shots the candidate
    /// scored so far, and the shots its shadow run needs.
    pub shadow: Option<(u64, u64)>,
}

/// What identifies one retained message of one edge and topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMark {
    /// `online`, `offline`, `rollout` or `desired`.
    pub event: String,
    /// The edge's time in the message.
    pub edge_ts_ms: i64,
}

/// One retained message read: its key (site, edge, topic), its mark and its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMessage {
    /// `{site}/{edge_id}/{leaf}`.
    pub key: String,
    /// What identifies it.
    pub mark: EventMark,
    /// The rows it becomes (none for a cleared retained message).
    pub rows: Vec<EdgeEvent>,
}

/// Whether `leaf` is a topic whose messages are edge events.
pub fn is_event_leaf(leaf: &str) -> bool {
    leaf == Leaf::Status.as_str()
        || leaf == Leaf::ModelReported.as_str()
        || leaf == Leaf::ModelDesired.as_str()
}

/// Reads one message of `site`/`edge_id` on an event topic; `Err` says why it is refused.
/// An empty payload (a retained message cleared) reads as no event.
pub fn parse(
    site: &str,
    edge_id: &str,
    leaf: &str,
    payload: &[u8],
    received_at_ms: i64,
) -> Result<Option<EventMessage>, String> {
    if payload.is_empty() {
        return Ok(None);
    }
    if payload.len() > MAX_EVENT_BYTES {
        return Err(format!("{leaf} payload is {} bytes (at most {MAX_EVENT_BYTES})", payload.len()));
    }
    // The topic's levels become a key of the ingest state and columns: bounded like a batch's.
    limits::check_level("site", site).map_err(|e| e.to_string())?;
    limits::check_level("edge_id", edge_id).map_err(|e| e.to_string())?;
    let key = format!("{site}/{edge_id}/{leaf}");
    let same_edge = |s: &str, e: &str| {
        if s == site && e == edge_id {
            Ok(())
        } else {
            Err(format!("topic says site {site:?} edge {edge_id:?} but the {leaf} message says {s:?} {e:?}"))
        }
    };
    let base = |edge_ts_ms: i64, event: &'static str| EdgeEvent {
        site: site.to_string(),
        edge_id: edge_id.to_string(),
        received_at_ms,
        edge_ts_ms,
        event,
        edge_version: None,
        model_key: None,
        rollout_state: None,
        target_version: None,
        active_version: None,
        reason: None,
        shadow: None,
    };
    if leaf == Leaf::Status.as_str() {
        let m: StatusMessage =
            serde_json::from_slice(payload).map_err(|e| format!("not a status message: {e}"))?;
        same_edge(&m.site, &m.edge_id)?;
        limits::check_name("version", &m.version).map_err(|e| e.to_string())?;
        let event = match m.state {
            LinkState::Online => "online",
            LinkState::Offline => "offline",
        };
        let row = EdgeEvent { edge_version: Some(m.version.clone()), ..base(m.ts_ms, event) };
        let mark = EventMark { event: event.to_string(), edge_ts_ms: m.ts_ms };
        return Ok(Some(EventMessage { key, mark, rows: vec![row] }));
    }
    if leaf == Leaf::ModelDesired.as_str() {
        let m: DesiredModels =
            serde_json::from_slice(payload).map_err(|e| format!("not a desired model state: {e}"))?;
        let mut rows = Vec::with_capacity(m.models.len());
        let mut refused = Vec::new();
        for d in &m.models {
            // The checks an edge makes on each entry before acting on it (the bundle size bound
            // is the edge's own); like the edge, a bad entry does not hide the others.
            if let Err(e) = d.check(u64::MAX) {
                refused.push(e.to_string());
                continue;
            }
            rows.push(EdgeEvent {
                model_key: Some(d.model_key.label()),
                target_version: Some(d.bundle.version),
                reason: d.rollback.as_ref().map(|_| "rollback".to_string()),
                ..base(m.issued_at_ms, "desired")
            });
        }
        if rows.is_empty() && !refused.is_empty() {
            return Err(format!("every desired model refused: {}", refused.join("; ")));
        }
        for why in &refused {
            tracing::warn!(site, edge_id, reason = %why, "a desired model entry refused; the others are kept");
        }
        let mark = EventMark { event: "desired".into(), edge_ts_ms: m.issued_at_ms };
        return Ok(Some(EventMessage { key, mark, rows }));
    }
    let m: ReportedModels =
        serde_json::from_slice(payload).map_err(|e| format!("not a reported model state: {e}"))?;
    same_edge(&m.site, &m.edge_id)?;
    let mut rows = Vec::with_capacity(m.models.len());
    for (label, r) in &m.models {
        limits::check_name("model key", label).map_err(|e| e.to_string())?;
        rows.push(EdgeEvent {
            model_key: Some(label.clone()),
            rollout_state: Some(r.state.as_str()),
            target_version: r.target.as_ref().map(|b| b.version),
            active_version: r.active.as_ref().map(|b| b.version),
            reason: r.reason.clone(),
            shadow: r.shadow,
            ..base(m.ts_ms, "rollout")
        });
    }
    Ok(Some(EventMessage { key, mark: EventMark { event: "rollout".into(), edge_ts_ms: m.ts_ms }, rows }))
}

/// Reads the Sparkplug B death certificate (`NDEATH`) of node `edge_id` in group `site`: the
/// edge's `offline` event, at the time the certificate carries (a will is composed when its
/// connection starts, like a native last will).
pub fn parse_death(
    site: &str,
    edge_id: &str,
    payload: &[u8],
    received_at_ms: i64,
) -> Result<Option<EventMessage>, String> {
    limits::check_level("site", site).map_err(|e| e.to_string())?;
    limits::check_level("edge_id", edge_id).map_err(|e| e.to_string())?;
    let p = sparkplug::Payload::decode_bounded(payload, MAX_EVENT_BYTES).map_err(|e| e.to_string())?;
    let Some(bd_seq) = sparkplug::bd_seq(&p) else { return Err("NDEATH without bdSeq".into()) };
    let edge_ts_ms = p.timestamp.and_then(|t| i64::try_from(t).ok()).unwrap_or(received_at_ms);
    let row = EdgeEvent {
        site: site.to_string(),
        edge_id: edge_id.to_string(),
        received_at_ms,
        edge_ts_ms,
        event: "offline",
        edge_version: None,
        model_key: None,
        rollout_state: None,
        target_version: None,
        active_version: None,
        reason: Some(format!("Sparkplug NDEATH (bdSeq {bd_seq})")),
        shadow: None,
    };
    let mark = EventMark { event: "offline".into(), edge_ts_ms };
    Ok(Some(EventMessage { key: format!("{site}/{edge_id}/NDEATH"), mark, rows: vec![row] }))
}

/// The messages not recorded before (by `marks`, and earlier in `messages`), in order; their
/// marks are added to `marks`.
pub fn fresh(messages: Vec<EventMessage>, marks: &mut BTreeMap<String, Vec<EventMark>>) -> Vec<EdgeEvent> {
    let mut rows = Vec::new();
    for m in messages {
        if remember(marks, m.key, m.mark) {
            rows.extend(m.rows);
        }
    }
    rows
}

/// Adds `mark` to the last few kept under `key`; false when it was there already.
fn remember(marks: &mut BTreeMap<String, Vec<EventMark>>, key: String, mark: EventMark) -> bool {
    let seen = marks.entry(key).or_default();
    if seen.contains(&mark) {
        return false;
    }
    if seen.len() == MARKS_KEPT {
        seen.remove(0);
    }
    seen.push(mark);
    true
}

/// Adds to `marks` the messages one `edge_events` part file recorded (its rows grouped back
/// into messages: the key from site, edge and event — a Sparkplug death by its reason —, the
/// mark from event and edge time), for a recovery that finds the file above the ingest
/// state's mark: a retained message it recorded is then not recorded again. Returns its rows.
pub fn fold_marks(marks: &mut BTreeMap<String, Vec<EventMark>>, part: &Path) -> Result<usize> {
    use polars::prelude::{DataType, ParquetReader, SerReader};
    let file = std::fs::File::open(part).with_context(|| format!("opening {}", part.display()))?;
    let columns = ["site", "edge_id", "edge_ts", "event", "reason"].map(|c| c.into()).to_vec();
    let df = ParquetReader::new(file)
        .with_columns(Some(columns))
        .finish()
        .with_context(|| format!("reading the event columns of {}", part.display()))?;
    let text = |name: &str| -> Result<_> { Ok(df.column(name)?.str()?.clone()) };
    let (sites, edges, events, reasons) = (text("site")?, text("edge_id")?, text("event")?, text("reason")?);
    let edge_ts = df.column("edge_ts")?.cast(&DataType::Int64)?;
    let edge_ts = edge_ts.i64()?;
    for i in 0..df.height() {
        let (Some(site), Some(edge), Some(event), Some(ts)) =
            (sites.get(i), edges.get(i), events.get(i), edge_ts.get(i))
        else {
            continue;
        };
        let leaf = match event {
            "online" | "offline" if reasons.get(i).is_some_and(|r| r.starts_with("Sparkplug NDEATH")) => {
                "NDEATH"
            }
            "online" | "offline" => Leaf::Status.as_str(),
            "desired" => Leaf::ModelDesired.as_str(),
            "rollout" => Leaf::ModelReported.as_str(),
            _ => continue,
        };
        remember(
            marks,
            format!("{site}/{edge}/{leaf}"),
            EventMark { event: event.to_string(), edge_ts_ms: ts },
        );
    }
    Ok(df.height())
}

/// Writes `rows` durably, one part file per UTC day of arrival (`edge_events/machine=_edge/
/// date=…/part-events-{nanos}.parquet`); returns the files written, relative to the lake.
pub fn write(lake_dir: &Path, rows: &[EdgeEvent], nanos: u64) -> Result<Vec<String>> {
    let mut by_day: BTreeMap<i64, Vec<&EdgeEvent>> = BTreeMap::new();
    for r in rows {
        by_day.entry(r.received_at_ms.div_euclid(DAY_MS)).or_default().push(r);
    }
    let dirs: Vec<_> = by_day
        .keys()
        .map(|d| lake::partition_dir(lake_dir, DATASET, MACHINE_ID, &lake::day_string(*d)))
        .collect();
    let sync = prepare_dirs(lake_dir, dirs.iter().map(|d| d.as_path()))?;
    let name = format!("part-events-{nanos:020}.parquet");
    let mut files = Vec::new();
    for (dir, day_rows) in dirs.iter().zip(by_day.values()) {
        let mut df = frame(day_rows)?;
        write_parquet(dir, &name, &mut df)?;
        let path = dir.join(&name);
        files.push(path.strip_prefix(lake_dir).unwrap_or(&path).to_string_lossy().into_owned());
    }
    sync_dirs(&sync)?;
    Ok(files)
}

fn frame(rows: &[&EdgeEvent]) -> Result<DataFrame> {
    let time = |name: &str, f: fn(&EdgeEvent) -> i64| {
        Int64Chunked::from_iter_values(name.into(), rows.iter().map(|r| f(r)))
            .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
            .into_column()
    };
    let text = |name: &str, f: fn(&EdgeEvent) -> Option<&str>| {
        Column::new(name.into(), rows.iter().map(|r| f(r)).collect::<Vec<_>>())
    };
    let version = |name: &str, f: fn(&EdgeEvent) -> Option<u32>| {
        Column::new(name.into(), rows.iter().map(|r| f(r)).collect::<Vec<_>>())
    };
    let count = |name: &str, f: fn(&EdgeEvent) -> Option<u64>| {
        Column::new(name.into(), rows.iter().map(|r| f(r)).collect::<Vec<_>>())
    };
    let columns = vec![
        text("site", |r| Some(r.site.as_str())),
        text("edge_id", |r| Some(r.edge_id.as_str())),
        time("ts", |r| r.received_at_ms),
        time("edge_ts", |r| r.edge_ts_ms),
        text("event", |r| Some(r.event)),
        text("edge_version", |r| r.edge_version.as_deref()),
        text("model_key", |r| r.model_key.as_deref()),
        text("rollout_state", |r| r.rollout_state),
        version("target_version", |r| r.target_version),
        version("active_version", |r| r.active_version),
        text("reason", |r| r.reason.as_deref()),
        count("shadow_scored", |r| r.shadow.map(|s| s.0)),
        count("shadow_needed", |r| r.shadow.map(|s| s.1)),
    ];
    DataFrame::new(rows.len(), columns).context("building the edge events frame")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: &str, ts_ms: i64) -> Vec<u8> {
        format!(r#"{{"state":"{state}","site":"plant","edge_id":"e1","ts_ms":{ts_ms},"version":"0.1.0"}}"#)
            .into_bytes()
    }

    #[test]
    fn a_retained_status_is_recorded_once_and_the_last_will_is_not_taken_for_stale() {
        let parse_status = |payload: &[u8]| parse("plant", "e1", "status", payload, 9_000).expect("valid");
        let online = parse_status(&status("online", 1_000)).expect("an event");
        assert_eq!(online.rows[0].event, "online");
        // The last will was built before the connection it guards: an older edge time.
        let will = parse_status(&status("offline", 999)).expect("an event");
        let again = parse_status(&status("online", 1_000)).expect("an event");
        let mut marks = BTreeMap::new();
        let rows = fresh(vec![online, again.clone()], &mut marks);
        assert_eq!(rows.len(), 1, "the same retained message twice in one group");
        assert!(fresh(vec![again], &mut marks).is_empty(), "redelivered on a new subscription");
        let rows = fresh(vec![will], &mut marks);
        assert_eq!((rows.len(), rows[0].event, rows[0].edge_ts_ms), (1, "offline", 999));
        assert_eq!(parse_status(b""), None, "a cleared retained message is no event");
    }

    #[test]
    fn hostile_event_payloads_are_refused_with_a_reason() {
        let wrong_edge = parse("plant", "e2", "status", &status("online", 1), 0).expect_err("another edge's");
        assert!(wrong_edge.contains("topic says"), "{wrong_edge}");
        assert!(parse("plant", "e1", "status", b"{\"state\":\"maybe\"}", 0).is_err());
        assert!(parse("plant", "e1", "model/reported", b"[]", 0).is_err());
        let huge = vec![b' '; MAX_EVENT_BYTES + 1];
        assert!(parse("plant", "e1", "status", &huge, 0).expect_err("too large").contains("bytes"));
        let long = "e".repeat(limits::MAX_ID_BYTES + 1);
        assert!(
            parse("plant", &long, "status", &status("online", 1), 0)
                .expect_err("long id")
                .contains("edge_id")
        );
    }

    fn desired(issued_at_ms: i64, version: u32, sha: &str) -> Vec<u8> {
        format!(
            r#"{{"issued_at_ms":{issued_at_ms},"models":[
            {{"model_key":{{"machine_id":"m1"}},"bundle":{{"model_id":"m1@{version}","version":{version},
              "sha256":"{sha}","bytes":10,"chunks":1,"chunk_bytes":10}}}},
            {{"model_key":{{"machine_id":"m2","mold":"A"}},"bundle":{{"model_id":"m2/A@1","version":1,
              "sha256":"{sha}","bytes":10,"chunks":1,"chunk_bytes":10}},
              "rollback":{{"statement":"{{}}","signature":"00"}}}}]}}"#
        )
        .into_bytes()
    }

    #[test]
    fn a_desired_state_becomes_one_row_per_key_once_and_a_malformed_one_is_refused() {
        let sha = "a".repeat(64);
        let parse_desired = |payload: &[u8]| {
            parse("plant", "e1", "model/desired", payload, 9_000).expect("valid").expect("event")
        };
        let m = parse_desired(&desired(4_000, 3, &sha));
        let again = parse_desired(&desired(4_000, 3, &sha));
        let mut marks = BTreeMap::new();
        let rows = fresh(vec![m, again], &mut marks);
        assert_eq!(rows.len(), 2, "two keys, recorded once: {rows:?}");
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.event, r.model_key.as_deref(), r.target_version, r.reason.as_deref(), r.edge_ts_ms))
            .collect();
        assert_eq!(
            got,
            [
                ("desired", Some("m1"), Some(3), None, 4_000),
                ("desired", Some("m2/A"), Some(1), Some("rollback"), 4_000)
            ]
        );
        // A newer request for the same edge is a new event; the old one redelivered is not.
        assert_eq!(fresh(vec![parse_desired(&desired(5_000, 4, &sha))], &mut marks).len(), 2);
        assert!(fresh(vec![parse_desired(&desired(4_000, 3, &sha))], &mut marks).is_empty());
        // The checks an edge makes: a message with nothing valid is refused with the reason,
        // one bad entry among good ones is passed over (as the edge does) and the rest kept.
        let bad = parse("plant", "e1", "model/desired", &desired(1, 1, "xyz"), 0).expect_err("bad sha");
        assert!(bad.contains("sha256"), "{bad}");
        let mixed = String::from_utf8(desired(6_000, 5, &sha)).expect("utf8").replacen(&sha, "xyz", 1);
        let kept = parse("plant", "e1", "model/desired", mixed.as_bytes(), 0).expect("valid").expect("event");
        assert_eq!(kept.rows.iter().map(|r| r.model_key.as_deref()).collect::<Vec<_>>(), [Some("m2/A")]);
        assert!(parse("plant", "e1", "model/desired", b"{\"models\":7}", 0).is_err());
    }

    #[test]
    fn shadow_progress_is_kept_with_the_rollout_row() {
        let reported = r#"{"site":"plant","edge_id":"e1","ts_ms":6000,"models":{
            "m1":{"model_key":{"machine_id":"m1"},"state":"shadow","target":null,"active":null,
                  "previous":null,"shadow":[40,150],"newest":3,"desired_at_ms":0,"ts_ms":6000}}}"#;
        let m = parse("plant", "e1", "model/reported", reported.as_bytes(), 7).expect("valid");
        let rows = fresh(m.into_iter().collect(), &mut BTreeMap::new());
        assert_eq!(rows[0].shadow, Some((40, 150)));
        let lake_dir = tempfile::tempdir().expect("tempdir");
        write(lake_dir.path(), &rows, 1).expect("write");
        let df = lake::read_parts(&lake::list_parts(lake_dir.path(), DATASET).expect("list"), &[])
            .expect("read")
            .expect("a file");
        let got = (
            lake::columns::count(&df, "shadow_scored").expect("scored")[0],
            lake::columns::count(&df, "shadow_needed").expect("needed")[0],
        );
        assert_eq!(got, (Some(40), Some(150)));
    }

    #[test]
    fn a_reported_state_becomes_one_row_per_model_key_and_lands_in_the_lake() {
        let reported = r#"{"site":"plant","edge_id":"e1","ts_ms":5000,"models":{
            "m1":{"model_key":{"machine_id":"m1"},"state":"rolled_back","target":null,"active":null,
                  "previous":null,"reason":"alarm rate 0.90","shadow":null,"newest":3,"desired_at_ms":0,"ts_ms":5000}}}"#;
        let m = parse("plant", "e1", "model/reported", reported.as_bytes(), 86_400_000 + 7).expect("valid");
        let rows = fresh(m.into_iter().collect(), &mut BTreeMap::new());
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].rollout_state, rows[0].reason.as_deref()),
            (Some("rolled_back"), Some("alarm rate 0.90"))
        );
        let lake_dir = tempfile::tempdir().expect("tempdir");
        let files = write(lake_dir.path(), &rows, 42).expect("write");
        assert_eq!(
            files,
            ["edge_events/machine=_edge/date=1970-01-02/part-events-00000000000000000042.parquet"]
        );
        let df = lake::read_parts(&lake::list_parts(lake_dir.path(), DATASET).expect("list"), &[])
            .expect("read")
            .expect("a file");
        assert_eq!(df.column("model_key").expect("model_key").str().expect("str").get(0), Some("m1"));
        assert_eq!(df.column("event").expect("event").str().expect("str").get(0), Some("rollout"));
    }
}
