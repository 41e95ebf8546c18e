//! The edge's own health over time: when it starts, every minute while it runs and when it
//! stops, an edge buffers one record of kind [`RecordKind::Status`] with its backlog, its
//! drops, its broker link, its devices and its models. These travel and are acknowledged
//! exactly once like shots (dataset `edge_status`), and since they are buffered they also
//! cover a broker outage: the lake shows how the backlog grew while the link was down.
//!
//! The live state (online, or offline by the broker's last will) is the retained `status`
//! topic ([`StatusMessage`]); the lake keeps the history. A pause in an edge's status records longer than the
//! interval means the edge itself was not running.

use crate::record::{Record, RecordKind};
use serde::{Deserialize, Serialize};

/// Whether an edge is connected, as its retained `status` message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Connected to the broker (published on every connection).
    Online,
    /// Gone: stopped cleanly, or the broker published the edge's last will.
    Offline,
}

/// The retained message on `moldops/v1/{site}/{edge_id}/status`: the edge's live state. The
/// last will, set at connect, is the `offline` one with the time of that connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusMessage {
    /// Online or offline.
    pub state: LinkState,
    /// Site of the edge.
    pub site: String,
    /// Id of the edge.
    pub edge_id: String,
    /// When the edge wrote the message (UTC ms).
    pub ts_ms: i64,
    /// The edge's build (`moldops-edge` package version).
    pub version: String,
}

/// Machine and device id of status records: they describe the edge, not a machine (an edge
/// refuses a device or machine configured with this id). The `edge_id` column says which edge.
pub const MACHINE_ID: &str = "_edge";

/// Names of the values a status record carries (counts are whole numbers).
pub mod value {
    /// 1 while the edge runs, 0 on the record written as it stops.
    pub const RUNNING: &str = "running";
    /// Seconds since the edge started.
    pub const UPTIME_S: &str = "uptime_s";
    /// Records waiting in the buffer.
    pub const BUFFERED_RECORDS: &str = "buffered_records";
    /// Their stored bytes (what `buffer.max_bytes` bounds).
    pub const BUFFERED_BYTES: &str = "buffered_bytes";
    /// Age of the oldest buffered record, seconds (0 when the buffer is empty).
    pub const OLDEST_BUFFERED_S: &str = "oldest_buffered_s";
    /// Records dropped because the buffer was full, over the buffer's life.
    pub const DROPPED_RECORDS: &str = "dropped_records";
    /// Buffer appends that failed since the start (disk full, I/O errors).
    pub const BUFFER_WRITE_ERRORS: &str = "buffer_write_errors";
    /// 1 while connected to the broker.
    pub const BROKER_CONNECTED: &str = "broker_connected";
    /// Records the broker took (PUBACK) since the start.
    pub const RECORDS_SENT: &str = "records_sent";
    /// Devices configured.
    pub const DEVICES: &str = "devices";
    /// Of those, the ones whose last poll failed.
    pub const DEVICES_DOWN: &str = "devices_down";
    /// Failed polls of all devices since the start.
    pub const POLL_ERRORS: &str = "poll_errors";
    /// Shots controllers made that could not be read back, since the start.
    pub const MISSED_SHOTS: &str = "missed_shots";
    /// Model keys with an active model.
    pub const MODELS_ACTIVE: &str = "models_active";
    /// Shots scored by active models since the start.
    pub const SCORED_SHOTS: &str = "scored_shots";
    /// Of those, alarms.
    pub const ALARMS: &str = "alarms";
    /// Score records the buffer refused since the start.
    pub const SCORE_RECORDS_LOST: &str = "score_records_lost";
    /// Start of each device's own figures: `device.{device_id}.{figure}` (see
    /// [`super::device_value`]), with the figures below.
    pub const DEVICE_PREFIX: &str = "device.";
    /// A device's figure: 1 when its last poll succeeded.
    pub const DEVICE_UP: &str = "up";
    /// A device's figure: its failed polls since the start.
    pub const DEVICE_POLL_ERRORS: &str = "poll_errors";
    /// A device's figure: shots its controller made that could not be read back.
    pub const DEVICE_MISSED_SHOTS: &str = "missed_shots";
}

/// Most devices one edge may poll: each adds three figures to the health snapshot, which must
/// stay within a record's [`crate::limits::MAX_VALUES`] with the edge's own figures (the edge's
/// config refuses more, so no device is ever left out of a snapshot).
pub const MAX_DEVICES: usize = (crate::limits::MAX_VALUES - EDGE_FIGURES) / 3;

/// The edge's own figures in a snapshot (the constants of [`value`] before the devices').
const EDGE_FIGURES: usize = 17;

/// The value name of one device's figure, `device.{device_id}.{figure}`. A device id that would
/// break the value-name limit is cut and ends in `~` and 16 hex digits of its sha256, so
/// distinct devices stay distinct.
pub fn device_value(device_id: &str, figure: &str) -> String {
    let full = format!("{}{device_id}.{figure}", value::DEVICE_PREFIX);
    if full.len() <= crate::limits::MAX_ID_BYTES {
        return full;
    }
    let hash = crate::bundle::sha256_hex(device_id.as_bytes());
    let room = crate::limits::MAX_ID_BYTES - value::DEVICE_PREFIX.len() - figure.len() - 1 - 17;
    let mut cut = room.min(device_id.len());
    while !device_id.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{}~{}.{figure}", value::DEVICE_PREFIX, &device_id[..cut], &hash[..16])
}

/// A value name read back as (device, figure), when it is a device's figure.
pub fn parse_device_value(name: &str) -> Option<(&str, &str)> {
    name.strip_prefix(value::DEVICE_PREFIX)?.rsplit_once('.')
}

/// One device in a snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceHealth {
    /// The device's id from the edge's config.
    pub device_id: String,
    /// Its last poll succeeded.
    pub up: bool,
    /// Failed polls since the start.
    pub poll_errors: u64,
    /// Shots its controller made that could not be read back, since the start (machines).
    pub missed_shots: u64,
}

/// One snapshot of an edge's health (see [`value`] for what each figure means).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EdgeHealth {
    /// False on the last record, written as the edge stops.
    pub running: bool,
    /// Seconds since the edge started.
    pub uptime_s: f64,
    /// Records waiting in the buffer.
    pub buffered_records: u64,
    /// Their stored bytes.
    pub buffered_bytes: u64,
    /// Age of the oldest buffered record, seconds.
    pub oldest_buffered_s: f64,
    /// Records dropped because the buffer was full, over the buffer's life.
    pub dropped_records: u64,
    /// Buffer appends that failed since the start.
    pub buffer_write_errors: u64,
    /// Connected to the broker now.
    pub broker_connected: bool,
    /// Records the broker took since the start.
    pub records_sent: u64,
    /// Devices configured.
    pub devices: u64,
    /// Devices whose last poll failed.
    pub devices_down: u64,
    /// Failed polls since the start.
    pub poll_errors: u64,
    /// Shots that could not be read back, since the start.
    pub missed_shots: u64,
    /// Model keys with an active model.
    pub models_active: u64,
    /// Shots scored since the start.
    pub scored_shots: u64,
    /// Alarms since the start.
    pub alarms: u64,
    /// Score records lost since the start.
    pub score_records_lost: u64,
    /// Each device polled so far (a device that never answered has no entry yet).
    pub per_device: Vec<DeviceHealth>,
}

impl EdgeHealth {
    /// The snapshot as a status record taken at `ts_ms` (its seq is assigned by the buffer).
    pub fn to_record(&self, ts_ms: i64) -> Record {
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let count = |n: u64| n as f64;
        let devices = self.per_device.iter().flat_map(|d| {
            [
                (device_value(&d.device_id, value::DEVICE_UP), flag(d.up)),
                (device_value(&d.device_id, value::DEVICE_POLL_ERRORS), count(d.poll_errors)),
                (device_value(&d.device_id, value::DEVICE_MISSED_SHOTS), count(d.missed_shots)),
            ]
        });
        let edge = [
            (value::RUNNING, flag(self.running)),
            (value::UPTIME_S, self.uptime_s),
            (value::BUFFERED_RECORDS, count(self.buffered_records)),
            (value::BUFFERED_BYTES, count(self.buffered_bytes)),
            (value::OLDEST_BUFFERED_S, self.oldest_buffered_s),
            (value::DROPPED_RECORDS, count(self.dropped_records)),
            (value::BUFFER_WRITE_ERRORS, count(self.buffer_write_errors)),
            (value::BROKER_CONNECTED, flag(self.broker_connected)),
            (value::RECORDS_SENT, count(self.records_sent)),
            (value::DEVICES, count(self.devices)),
            (value::DEVICES_DOWN, count(self.devices_down)),
            (value::POLL_ERRORS, count(self.poll_errors)),
            (value::MISSED_SHOTS, count(self.missed_shots)),
            (value::MODELS_ACTIVE, count(self.models_active)),
            (value::SCORED_SHOTS, count(self.scored_shots)),
            (value::ALARMS, count(self.alarms)),
            (value::SCORE_RECORDS_LOST, count(self.score_records_lost)),
        ]
        .map(|(name, v)| (name.to_string(), v));
        Record::new(RecordKind::Status, MACHINE_ID, MACHINE_ID, ts_ms, edge.into_iter().chain(devices))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_a_valid_record_of_the_edge() {
        let h = EdgeHealth {
            running: true,
            buffered_records: 12,
            devices: 3,
            devices_down: 1,
            ..Default::default()
        };
        let long = "P".repeat(200);
        let h = EdgeHealth {
            per_device: vec![
                DeviceHealth { device_id: "press-1".into(), up: true, poll_errors: 4, missed_shots: 2 },
                DeviceHealth { device_id: long.clone(), up: false, poll_errors: 9, missed_shots: 0 },
            ],
            ..h
        };
        let r = h.to_record(1_700_000_000_000);
        assert_eq!(
            (r.kind, r.machine_id.as_str(), r.device_id.as_str()),
            (RecordKind::Status, MACHINE_ID, MACHINE_ID)
        );
        assert_eq!(r.values["device.press-1.poll_errors"], 4.0);
        assert_eq!(r.values["device.press-1.up"], 1.0);
        let cut = device_value(&long, value::DEVICE_POLL_ERRORS);
        assert!(cut.len() <= crate::limits::MAX_ID_BYTES && cut.contains('~'), "{cut}");
        assert_eq!(r.values[&cut], 9.0);
        assert_eq!(parse_device_value(&cut).map(|(_, f)| f), Some("poll_errors"));
        assert_eq!(parse_device_value("device.a.b.up"), Some(("a.b", "up")), "a dotted device id");
        assert_eq!(parse_device_value("poll_errors"), None);
        assert_eq!(r.values[value::RUNNING], 1.0);
        assert_eq!(r.values[value::BUFFERED_RECORDS], 12.0);
        assert_eq!(r.values[value::DEVICES_DOWN], 1.0);
        assert_eq!(r.values.len(), EDGE_FIGURES + 2 * 3);
        let most = EdgeHealth {
            per_device: (0..MAX_DEVICES)
                .map(|i| DeviceHealth { device_id: format!("d{i}"), ..Default::default() })
                .collect(),
            ..Default::default()
        };
        assert_eq!(crate::codec::check_record(&most.to_record(1)), Ok(()), "the most devices fit a record");
        assert_eq!(crate::codec::check_record(&r), Ok(()));
        assert_eq!(r.kind.dataset(), "edge_status");
    }

    #[test]
    fn the_status_message_keeps_its_wire_form() {
        let m = StatusMessage {
            state: LinkState::Offline,
            site: "plant".into(),
            edge_id: "e1".into(),
            ts_ms: 5,
            version: "0.1.0".into(),
        };
        let text = serde_json::to_string(&m).expect("json");
        assert_eq!(text, r#"{"state":"offline","site":"plant","edge_id":"e1","ts_ms":5,"version":"0.1.0"}"#);
        assert_eq!(serde_json::from_str::<StatusMessage>(&text).expect("back"), m);
    }
}
