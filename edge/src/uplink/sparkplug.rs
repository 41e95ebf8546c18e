//! The edge as a Sparkplug B edge node (`[uplink] format = "sparkplug-b"`): its birth and death
//! certificates, one `DDATA` per record on the record's device, the message `seq`, the `bdSeq`
//! that ties each connection's death to its birth (kept across restarts in a small file beside
//! the buffer), and rebirths when a host asks (`NCMD` with `Node Control/Rebirth`) or when a
//! record carries a metric its device's birth did not declare.
//!
//! Which records go out and when they leave the buffer is the uplink's business, unchanged:
//! `DDATA` are published with QoS 1 (Sparkplug asks for 0; QoS 1 lets the broker's PUBACK pace
//! the window as for batches) and records leave the buffer on the ingest's commit ack.

use crate::config::{Device, DeviceRole};
use moldops_shared::Record;
use moldops_shared::sparkplug::{self as spb, MessageType, MetricDef, Payload};
use rumqttc::{LastWill, QoS};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Topic.
    pub topic: String,
    /// Protobuf payload.
    pub payload: Vec<u8>,
    /// QoS.
    pub qos: QoS,
}

/// The record stored under `seq` when Sparkplug can carry it: it reads as a record with that
/// seq, passes the record checks, and its device id is a topic level; else why not.
pub fn carried(seq: u64, json: &[u8]) -> Result<Record, String> {
    let r: Record = serde_json::from_slice(json).map_err(|e| format!("it does not read as a record: {e}"))?;
    if r.seq != seq {
        return Err(format!("it says seq {} but is stored under {seq}", r.seq));
    }
    moldops_shared::codec::check_record(&r).map_err(|e| e.to_string())?;
    moldops_shared::limits::check_level("device_id", &r.device_id).map_err(|e| e.to_string())?;
    Ok(r)
}

/// A stored record as JSON the ingest can take apart: the bytes themselves when they are JSON,
/// else an object with the seq and the damaged bytes as text, so the ingest refuses that one
/// record under its seq (and the commit ack can pass it) instead of the whole payload.
pub fn readable_json(seq: u64, json: Vec<u8>) -> Vec<u8> {
    if serde_json::from_slice::<serde::de::IgnoredAny>(&json).is_ok() {
        return json;
    }
    #[derive(Serialize)]
    struct Damaged {
        seq: u64,
        damaged: String,
    }
    let text = String::from_utf8_lossy(&json).into_owned();
    serde_json::to_vec(&Damaged { seq, damaged: text }).unwrap_or_default()
}

/// Longest bdSeq file read (it holds a few bytes).
const MAX_STATE_BYTES: u64 = 4096;

/// What the bdSeq file holds.
#[derive(Debug, Serialize, Deserialize)]
struct BdSeqFile {
    /// The bdSeq the next connection uses.
    next: u8,
}

/// The Sparkplug B state of the edge node across connections.
pub struct Node {
    group: String,
    node: String,
    /// Metrics each device declares in its birth: from the tag maps, grown by records that
    /// carried more.
    metrics: BTreeMap<String, BTreeSet<MetricDef>>,
    /// Devices born on this connection.
    born: BTreeSet<String>,
    /// bdSeq of the current connection.
    bd_seq: u8,
    /// `seq` of the next message.
    seq: u8,
    /// Where the next connection's bdSeq is kept.
    state_path: PathBuf,
}

impl Node {
    /// A node for site `group` and edge `node`, its devices' metrics taken from their tag maps;
    /// `state_path` keeps the bdSeq across restarts.
    pub fn new(group: &str, node: &str, devices: &[Device], state_path: PathBuf) -> Node {
        let metrics = devices
            .iter()
            .map(|d| {
                let names = d.profile.value_tags().into_iter().map(|t| t.name.as_str());
                let defs = match d.cfg.role {
                    DeviceRole::Machine => spb::shot_metrics(names),
                    DeviceRole::Peripheral => names.map(MetricDef::double).collect(),
                };
                (d.cfg.id.clone(), defs.into_iter().collect())
            })
            .collect();
        Node {
            group: group.to_string(),
            node: node.to_string(),
            metrics,
            born: BTreeSet::new(),
            bd_seq: 0,
            seq: 0,
            state_path,
        }
    }

    /// The file beside the buffer folder `buffer` that keeps the bdSeq.
    pub fn state_path_for(buffer: &Path) -> PathBuf {
        let mut name = buffer.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "buffer".into());
        name.push(".sparkplug.json");
        buffer.with_file_name(name)
    }

    /// Starts a connection: takes the next bdSeq (0 for a missing or unreadable file, which is
    /// logged) and stores the one after it before the connection is attempted, so a crash
    /// cannot reuse it. Returns the will: the death certificate with that bdSeq.
    pub fn connect(&mut self, now_ms: u64) -> LastWill {
        let stored = std::fs::File::open(&self.state_path).ok().and_then(|f| {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_STATE_BYTES), &mut bytes)
                .ok()
                .map(|_| bytes)
        });
        self.bd_seq = match stored.as_deref().map(serde_json::from_slice::<BdSeqFile>) {
            Some(Ok(f)) => f.next,
            Some(Err(e)) => {
                tracing::warn!(file = %self.state_path.display(), error = %e, "unreadable Sparkplug bdSeq file: starting at 0");
                0
            }
            None => 0,
        };
        let next = BdSeqFile { next: self.bd_seq.wrapping_add(1) };
        let bytes = serde_json::to_vec(&next).unwrap_or_default();
        if let Err(e) = moldops_common::fs::write_atomic(&self.state_path, &bytes) {
            tracing::warn!(error = %format!("{e:#}"), "could not store the next Sparkplug bdSeq: a restart may repeat this one");
        }
        self.born.clear();
        let death =
            self.message(MessageType::NDeath, None, &spb::ndeath(self.bd_seq, now_ms), QoS::AtLeastOnce);
        LastWill::new(death.topic, death.payload, death.qos, false)
    }

    /// The death certificate of this connection, published before a clean disconnect.
    pub fn death(&self, now_ms: u64) -> Message {
        self.message(MessageType::NDeath, None, &spb::ndeath(self.bd_seq, now_ms), QoS::AtLeastOnce)
    }

    /// Devices known so far.
    pub fn devices(&self) -> usize {
        self.metrics.len()
    }

    /// The topic of the commands a host sends this node.
    pub fn command_topic(&self) -> String {
        spb::topic(&self.group, MessageType::NCmd, &self.node, None)
    }

    /// The node's birth certificate (`seq` 0) and one birth per known device.
    pub fn births(&mut self, now_ms: u64) -> Vec<Message> {
        self.seq = 0;
        self.born.clear();
        let mut out =
            vec![self.message(MessageType::NBirth, None, &spb::nbirth(self.bd_seq, now_ms), QoS::AtMostOnce)];
        self.seq = 1;
        let devices: Vec<String> = self.metrics.keys().cloned().collect();
        for d in devices {
            out.push(self.device_birth(&d, now_ms));
        }
        out
    }

    /// The messages that carry `record`: a device birth first when the device was not born on
    /// this connection or the record has a metric its birth did not declare, then its `DDATA`.
    pub fn data(
        &mut self,
        record: &Record,
        epoch: &str,
        held_from: Option<u64>,
        now_ms: u64,
    ) -> Vec<Message> {
        let device = record.device_id.clone();
        let declared = self.metrics.entry(device.clone()).or_default();
        let mut grown = false;
        for def in spb::record_metrics(record) {
            grown |= declared.insert(def);
        }
        let mut out = Vec::with_capacity(2);
        if grown || !self.born.contains(&device) {
            out.push(self.device_birth(&device, now_ms));
        }
        let seq = self.next_seq();
        let payload = spb::ddata(record, epoch, held_from, seq, now_ms);
        out.push(self.message(MessageType::DData, Some(&device), &payload, QoS::AtLeastOnce));
        out
    }

    /// Reads a node command; `Ok(true)` when it asks for a rebirth.
    pub fn on_command(&self, payload: &[u8]) -> Result<bool, spb::SparkplugError> {
        Payload::decode_bounded(payload, spb::MAX_COMMAND_BYTES).map(|p| spb::is_rebirth_request(&p))
    }

    fn device_birth(&mut self, device: &str, now_ms: u64) -> Message {
        let defs: Vec<MetricDef> =
            self.metrics.get(device).map(|s| s.iter().cloned().collect()).unwrap_or_default();
        let seq = self.next_seq();
        self.born.insert(device.to_string());
        self.message(MessageType::DBirth, Some(device), &spb::dbirth(seq, now_ms, &defs), QoS::AtMostOnce)
    }

    fn next_seq(&mut self) -> u8 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        s
    }

    fn message(&self, kind: MessageType, device: Option<&str>, payload: &Payload, qos: QoS) -> Message {
        Message { topic: spb::topic(&self.group, kind, &self.node, device), payload: payload.encode(), qos }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moldops_shared::RecordKind;

    fn node(dir: &Path) -> Node {
        Node::new("plant", "edge-1", &[], dir.join("buf.sparkplug.json"))
    }

    fn decode(m: &Message) -> Payload {
        Payload::decode_bounded(&m.payload, usize::MAX).expect("protobuf")
    }

    #[test]
    fn bd_seq_grows_per_connection_and_survives_a_restart_and_a_corrupt_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut n = node(dir.path());
        let _ = n.connect(1);
        assert_eq!(n.bd_seq, 0);
        let _ = n.connect(2);
        assert_eq!(n.bd_seq, 1);
        let mut restarted = node(dir.path());
        let will = restarted.connect(3);
        assert_eq!(restarted.bd_seq, 2, "a restart goes on from the stored bdSeq");
        assert_eq!(will.topic, "spBv1.0/plant/NDEATH/edge-1");
        let death = Payload::decode_bounded(&will.message, usize::MAX).expect("protobuf");
        assert_eq!(spb::bd_seq(&death), Some(2));
        let birth = decode(&restarted.births(4)[0]);
        assert_eq!(
            (spb::bd_seq(&birth), birth.seq),
            (Some(2), Some(0)),
            "the birth carries the will's bdSeq"
        );
        std::fs::write(dir.path().join("buf.sparkplug.json"), b"{garbage").expect("write");
        let _ = restarted.connect(5);
        assert_eq!(restarted.bd_seq, 0, "an unreadable file starts over at 0");
    }

    #[test]
    fn records_sparkplug_cannot_carry_go_as_readable_native_json() {
        let mut r = Record::new(RecordKind::Peripheral, "M1", "line 1/dryer", 10, [("dew_point", -40.0)]);
        r.seq = 7;
        let json = serde_json::to_vec(&r).expect("json");
        assert!(carried(7, &json).expect_err("a device id with '/'").contains("device_id"));
        r.device_id = "dryer".into();
        let json = serde_json::to_vec(&r).expect("json");
        assert_eq!(carried(7, &json), Ok(r.clone()));
        assert!(carried(8, &json).is_err(), "a record stored under another seq");
        assert_eq!(readable_json(7, json.clone()), json, "good JSON goes as it is");
        let damaged = readable_json(9, b"{\"seq\":9,\"kin".to_vec());
        let batch = crate::uplink::batch_json("s", "e", "ep", None, &[(9, damaged)]);
        let decoded = moldops_shared::decode_lenient(&batch).expect("the batch stays readable");
        assert_eq!(decoded.refused[0].seq, Some(9), "refused alone, under its seq");
    }

    #[test]
    fn records_go_out_after_their_device_birth_and_seq_wraps() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut n = node(dir.path());
        let _ = n.connect(1);
        let births = n.births(1);
        assert_eq!(births.len(), 1, "no devices known: the node birth only");
        let mut r = Record::new(RecordKind::Peripheral, "M1", "M1-dryer", 10, [("dew_point", -40.0)]);
        let first = n.data(&r, "ep", None, 2);
        assert_eq!(first.len(), 2, "an unborn device is born before its data");
        assert_eq!(first[0].topic, "spBv1.0/plant/DBIRTH/edge-1/M1-dryer");
        assert_eq!((decode(&first[0]).seq, decode(&first[1]).seq), (Some(1), Some(2)));
        assert_eq!(n.data(&r, "ep", None, 3).len(), 1, "a born device with the same metrics: data only");
        r.values.insert("temp".into(), 80.0);
        let grown = n.data(&r, "ep", None, 4);
        assert_eq!(grown.len(), 2, "a new metric brings a new birth");
        assert_eq!(decode(&grown[0]).metrics.len(), 2);
        for _ in 0..300 {
            let _ = n.data(&r, "ep", None, 5);
        }
        let seqs: Vec<u64> = (0..3).filter_map(|_| decode(&n.data(&r, "ep", None, 6)[0]).seq).collect();
        assert!(seqs.iter().all(|s| *s < 256), "seq stays in 0..=255: {seqs:?}");
        assert_eq!(seqs[1], (seqs[0] + 1) % 256);
        assert!(n.on_command(b"\xff").is_err(), "a malformed command is refused, not obeyed");
        let ask = Payload {
            metrics: vec![spb::Metric::new(
                spb::REBIRTH,
                spb::datatype::BOOLEAN,
                1,
                spb::MetricValue::Boolean(true),
            )],
            ..Payload::default()
        };
        assert_eq!(n.on_command(&ask.encode()), Ok(true));
        let again = n.births(7);
        assert_eq!(again.len(), 2, "a rebirth declares every device seen so far");
        assert_eq!(decode(&again[0]).seq, Some(0));
    }
}
