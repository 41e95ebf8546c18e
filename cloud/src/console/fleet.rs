//! The fleet page: every edge with its link state (from its retained status and last will),
//! when it was last heard of, and its latest health snapshot — buffer backlog, drops, write
//! errors, devices down, poll errors — then every machine the lake holds shots of, and what
//! edges dropped unsent per device.

use super::{Page, Shared};
use crate::ingest::events;
use crate::lake::{self, columns, dropped::DroppedSummary, summary::QuarantineSummary};
use anyhow::Result;
use axum::extract::State;
use axum::http::HeaderMap;
use moldops_shared::status::value as status;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// An online edge is shown as silent when nothing of it reached the lake for this long: three
/// missed health snapshots.
pub const SILENT_AFTER_MS: i64 = 180_000;

/// One edge as the fleet page shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EdgeView {
    /// Site of the edge.
    pub site: String,
    /// Its id.
    pub edge_id: String,
    /// `online`, `offline` or `unknown` (no status message recorded).
    pub link: String,
    /// When the link state last changed (UTC ms), when known.
    pub link_since_ms: Option<i64>,
    /// The edge's build, from its last status message.
    pub version: Option<String>,
    /// Time of the latest health snapshot or link event (UTC ms).
    pub last_seen_ms: Option<i64>,
    /// Online by its last message, but nothing heard for longer than [`SILENT_AFTER_MS`]
    /// (health snapshots come every minute): the link may be down without a last will yet.
    pub silent: bool,
    /// The latest health snapshot, when one reached the lake.
    pub health: Option<Health>,
    /// Buffer epochs the lake holds of it (more than one: a buffer was lost or replaced).
    pub epochs: usize,
    /// Seqs missing between the first and last the lake accounts for.
    pub missing: u64,
}

/// An edge's latest health snapshot (`edge_status`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    /// Records waiting in the buffer.
    pub backlog_records: u64,
    /// Age of the oldest, in seconds.
    pub oldest_buffered_s: u64,
    /// Records dropped unsent over the buffer's life.
    pub dropped_records: u64,
    /// Buffer writes that failed.
    pub buffer_write_errors: u64,
    /// Whether the broker connection was up.
    pub broker_connected: bool,
    /// Devices polled, and how many are down.
    pub devices: u64,
    /// Devices down.
    pub devices_down: u64,
    /// Poll errors so far.
    pub poll_errors: u64,
    /// Shots the edge knows it missed.
    pub missed_shots: u64,
    /// Models scoring live.
    pub models_active: u64,
    /// Alarms raised so far.
    pub alarms: u64,
    /// Each device the edge polled, from the same snapshot.
    pub per_device: Vec<DeviceView>,
}

/// One device of an edge, as its latest health snapshot says.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeviceView {
    /// The device's id (cut and hashed when very long).
    pub device_id: String,
    /// Its last poll succeeded.
    pub up: bool,
    /// Failed polls since the edge started.
    pub poll_errors: u64,
    /// Shots its controller made that could not be read back.
    pub missed_shots: u64,
}

/// One machine the lake holds shots of.
#[derive(Debug, Clone, Serialize)]
pub struct MachineView {
    /// The machine.
    pub machine_id: String,
    /// Shots in the lake.
    pub shots: u64,
    /// Shots scored live by an edge.
    pub scored: u64,
    /// Samples of its peripherals.
    pub peripheral_samples: u64,
    /// Latest shot (UTC ms).
    pub last_ts_ms: i64,
    /// Edges that sent its shots.
    pub edges: Vec<String>,
}

/// The whole page.
#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    /// Edges, by site and id.
    pub edges: Vec<EdgeView>,
    /// Machines, by id.
    pub machines: Vec<MachineView>,
    /// Records edges dropped unsent, per machine and device.
    pub dropped: Vec<DroppedSummary>,
    /// Payloads the ingest refused.
    pub quarantine: QuarantineSummary,
}

/// `GET /`.
pub async fn page(State(c): State<Shared>, headers: HeaderMap) -> Page {
    let summary = c.summary.get().await?;
    let lake_dir = c.folders.lake.clone();
    let view = super::blocking(move || fleet(&lake_dir, &summary)).await?;
    c.render("fleet.html", "fleet", "Fleet", &headers, view)
}

/// The fleet from the lake and its summary.
pub fn fleet(lake_dir: &Path, summary: &lake::LakeSummary) -> Result<Fleet> {
    let mut edges: BTreeMap<(String, String), EdgeView> = BTreeMap::new();
    for e in &summary.edges {
        let v = entry(&mut edges, &e.site, &e.edge_id);
        v.epochs = e.epochs.len();
        v.missing = e.epochs.iter().map(|p| p.missing).sum();
    }
    for (site, edge_id, ts, health) in latest_health(lake_dir)? {
        let v = entry(&mut edges, &site, &edge_id);
        v.health = Some(health);
        v.last_seen_ms = v.last_seen_ms.max(Some(ts));
    }
    for ev in link_events(lake_dir)? {
        let v = entry(&mut edges, &ev.site, &ev.edge_id);
        if v.link_since_ms.is_none_or(|t| ev.ts_ms >= t) {
            v.link = ev.event.clone();
            v.link_since_ms = Some(ev.ts_ms);
            v.version = ev.version.clone().or(v.version.take());
        }
        v.last_seen_ms = v.last_seen_ms.max(Some(ev.ts_ms));
    }
    let now = chrono::Utc::now().timestamp_millis();
    for v in edges.values_mut() {
        v.silent = v.link == "online" && v.last_seen_ms.is_none_or(|t| now - t > SILENT_AFTER_MS);
    }
    let rows_of = |dataset: &str| -> BTreeMap<&str, &lake::summary::MachineSummary> {
        summary
            .datasets
            .iter()
            .filter(|d| d.dataset == dataset)
            .flat_map(|d| d.machines.iter().map(|m| (m.machine_id.as_str(), m)))
            .collect()
    };
    let scored = rows_of(moldops_shared::RecordKind::Score.dataset());
    let peripheral = rows_of(lake::PERIPHERAL_DATA);
    let machines = rows_of(lake::RAW_DATA)
        .into_values()
        .map(|m| MachineView {
            machine_id: m.machine_id.clone(),
            shots: m.rows,
            scored: scored.get(m.machine_id.as_str()).map_or(0, |s| s.rows),
            peripheral_samples: peripheral.get(m.machine_id.as_str()).map_or(0, |s| s.rows),
            last_ts_ms: m.last_ts_ms,
            edges: m.edges.clone(),
        })
        .collect();
    Ok(Fleet {
        edges: edges.into_values().collect(),
        machines,
        dropped: summary.dropped_at_edge.clone(),
        quarantine: summary.quarantine.clone(),
    })
}

/// The edge's row, made on first sight.
fn entry<'a>(
    edges: &'a mut BTreeMap<(String, String), EdgeView>,
    site: &str,
    edge_id: &str,
) -> &'a mut EdgeView {
    edges.entry((site.to_string(), edge_id.to_string())).or_insert_with(|| EdgeView {
        site: site.to_string(),
        edge_id: edge_id.to_string(),
        link: "unknown".into(),
        ..EdgeView::default()
    })
}

/// Per edge, its latest health snapshot: (site, edge, time, snapshot).
fn latest_health(lake_dir: &Path) -> Result<Vec<(String, String, i64, Health)>> {
    let files = lake::list_parts(lake_dir, moldops_shared::RecordKind::Status.dataset())?;
    let Some(df) = lake::read_parts(&files, &[])? else { return Ok(Vec::new()) };
    let (site, edge, ts) =
        (columns::text(&df, "site")?, columns::text(&df, "edge_id")?, columns::millis(&df, "ts")?);
    let mut latest: BTreeMap<(String, String), (i64, usize)> = BTreeMap::new();
    for i in 0..df.height() {
        let (Some(s), Some(e), Some(t)) = (&site[i], &edge[i], ts[i]) else { continue };
        let slot = latest.entry((s.clone(), e.clone())).or_insert((t, i));
        if t >= slot.0 {
            *slot = (t, i);
        }
    }
    let n = |name: &str| columns::number(&df, name);
    let get = |v: &[Option<f64>], i: usize| v[i].filter(|x| x.is_finite() && *x >= 0.0).unwrap_or(0.0) as u64;
    let (backlog, oldest, dropped, write_errors, connected) = (
        n(status::BUFFERED_RECORDS)?,
        n(status::OLDEST_BUFFERED_S)?,
        n(status::DROPPED_RECORDS)?,
        n(status::BUFFER_WRITE_ERRORS)?,
        n(status::BROKER_CONNECTED)?,
    );
    let (devices, down, poll, missed, models, alarms) = (
        n(status::DEVICES)?,
        n(status::DEVICES_DOWN)?,
        n(status::POLL_ERRORS)?,
        n(status::MISSED_SHOTS)?,
        n(status::MODELS_ACTIVE)?,
        n(status::ALARMS)?,
    );
    // Per device, its three figures' columns (`device.{id}.{figure}`), where present.
    let mut per_device: BTreeMap<String, [Option<Vec<Option<f64>>>; 3]> = BTreeMap::new();
    for name in df.get_column_names() {
        let Some((device, figure)) = moldops_shared::status::parse_device_value(name) else { continue };
        let k = match figure {
            status::DEVICE_UP => 0,
            status::DEVICE_POLL_ERRORS => 1,
            status::DEVICE_MISSED_SHOTS => 2,
            _ => continue,
        };
        per_device.entry(device.to_string()).or_default()[k] = Some(columns::number(&df, name)?);
    }
    Ok(latest
        .into_iter()
        .map(|((s, e), (t, i))| {
            let per_device = per_device
                .iter()
                .filter_map(|(device_id, figures)| {
                    let [up, errors, missed] = [0, 1, 2].map(|k| figures[k].as_ref().and_then(|v| v[i]));
                    up.or(errors)?;
                    Some(DeviceView {
                        device_id: device_id.clone(),
                        up: up == Some(1.0),
                        poll_errors: errors.filter(|x| x.is_finite() && *x >= 0.0).unwrap_or(0.0) as u64,
                        missed_shots: missed.filter(|x| x.is_finite() && *x >= 0.0).unwrap_or(0.0) as u64,
                    })
                })
                .collect();
            let health = Health {
                per_device,
                backlog_records: get(&backlog, i),
                oldest_buffered_s: get(&oldest, i),
                dropped_records: get(&dropped, i),
                buffer_write_errors: get(&write_errors, i),
                broker_connected: connected[i] == Some(1.0),
                devices: get(&devices, i),
                devices_down: get(&down, i),
                poll_errors: get(&poll, i),
                missed_shots: get(&missed, i),
                models_active: get(&models, i),
                alarms: get(&alarms, i),
            };
            (s, e, t, health)
        })
        .collect())
}

/// One `online` or `offline` event.
#[derive(Debug, Clone)]
pub struct LinkEvent {
    /// Site of the edge.
    pub site: String,
    /// The edge.
    pub edge_id: String,
    /// When the ingest received it (UTC ms).
    pub ts_ms: i64,
    /// `online` or `offline`.
    pub event: String,
    /// The edge's build.
    pub version: Option<String>,
}

/// Every link event in `edge_events`.
fn link_events(lake_dir: &Path) -> Result<Vec<LinkEvent>> {
    let Some(df) = lake::read_parts(&lake::list_parts(lake_dir, events::DATASET)?, &[])? else {
        return Ok(Vec::new());
    };
    let (site, edge, ts, event, version) = (
        columns::text(&df, "site")?,
        columns::text(&df, "edge_id")?,
        columns::millis(&df, "ts")?,
        columns::text(&df, "event")?,
        columns::text(&df, "edge_version")?,
    );
    Ok((0..df.height())
        .filter_map(|i| {
            let event = event[i].clone().filter(|e| e == "online" || e == "offline")?;
            Some(LinkEvent {
                site: site[i].clone()?,
                edge_id: edge[i].clone()?,
                ts_ms: ts[i]?,
                event,
                version: version[i].clone(),
            })
        })
        .collect())
}
