//! MQTT uplink: publishes buffered records as ordered, self-describing batches with QoS 1 and
//! removes them from the buffer only once the ingest's commit ack says they are durable in
//! the lake (`uplink.delete_after = "commit"`, the default; `"puback"` removes them on the
//! broker's PUBACK, for an ingest older than commit acks). The broker's PUBACK still paces the
//! window. Every connection gets a fresh rumqttc event loop: anything not yet confirmed when a
//! connection drops is still in the buffer and is sent again on the next one, and records the
//! ingest has not confirmed within `uplink.resend_after_s` are sent again on the same one (the
//! cloud deduplicates on `(site, edge_id, epoch, seq)`).
//!
//! Two lanes share the in-flight window: **live** records (stored since this connection came
//! up) go out as they arrive; the **backlog** from an outage is sent oldest first, limited to
//! `catchup_records_per_s`, so live data keeps flowing during catch-up.
//!
//! With `uplink.format = "sparkplug-b"` each record goes out as one Sparkplug B `DDATA` of its
//! device instead of inside a batch, with the node's births, death and rebirths ([`sparkplug`]);
//! the window then counts records, and everything else (lanes, commit acks, resends) is the same.

pub mod sparkplug;

use crate::buffer::Buffer;
use crate::config::{DeleteAfter, Device, EdgeConfig, UplinkFormat};
use crate::health::{Health, MqttState};
use anyhow::{Context, Result, bail};
use moldops_common::backoff::Backoff;
use moldops_shared::ack::CommitAck;
use moldops_shared::status::{LinkState, StatusMessage};
use moldops_shared::topic::{self, Leaf};
use rumqttc::{AsyncClient, Event, LastWill, Outgoing, Packet, QoS, SubscribeReasonCode};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A publish waiting for its packet id, then for its PUBACK.
#[derive(Debug, Clone, Copy)]
enum Tracked {
    Data { first: u64, last: u64, count: u64 },
    Other,
}

/// The MQTT uplink of one edge: uploads the buffer until shutdown (see the module docs).
pub struct Uplink {
    cfg: EdgeConfig,
    base_dir: PathBuf,
    buffer: Arc<Buffer>,
    health: Arc<Health>,
    /// The Sparkplug B node, with `uplink.format = "sparkplug-b"`.
    sparkplug: Option<Mutex<sparkplug::Node>>,
}

/// Lanes and window of one connection.
struct Session {
    client: AsyncClient,
    data_topic: String,
    live_cursor: u64,
    backlog_cursor: u64,
    live_from: u64,
    catchup: TokenBucket,
    awaiting_pkid: VecDeque<Tracked>,
    inflight: HashMap<u16, Tracked>,
    ack_topic: String,
    /// Since when sent records have waited for a commit ack without any arriving.
    waiting_since: Option<Instant>,
    /// Commit acks received on this connection.
    acks: u64,
    /// When the buffer was last looked at for stale records (at most once a second).
    stale_checked: Instant,
    /// Sparkplug B: the topic of the node's commands.
    command_topic: Option<String>,
    /// Sparkplug B: a host asked for a rebirth; the births go out when the request queue has
    /// room for them (many requests at once make one rebirth).
    rebirth_pending: bool,
    /// Capacity of the client's request queue.
    room: usize,
    /// Topics subscribed to, in request order, until their packet id is known.
    subscribing: VecDeque<String>,
    /// Subscriptions waiting for their SUBACK, by packet id.
    subscriptions: HashMap<u16, String>,
}

impl Uplink {
    /// An uplink for `cfg`; `base_dir` resolves relative TLS and password file paths of `[broker]`.
    pub fn new(cfg: EdgeConfig, base_dir: PathBuf, buffer: Arc<Buffer>, health: Arc<Health>) -> Self {
        Uplink { cfg, base_dir, buffer, health, sparkplug: None }.with_devices(&[])
    }

    /// The devices whose tag maps declare the metrics of the Sparkplug B device births (used only
    /// with `uplink.format = "sparkplug-b"`; without them a device is born with its first record).
    pub fn with_devices(mut self, devices: &[Device]) -> Self {
        if self.cfg.uplink.format == UplinkFormat::SparkplugB {
            let state = sparkplug::Node::state_path_for(&self.base_dir.join(&self.cfg.buffer.path));
            let node = sparkplug::Node::new(&self.cfg.site, &self.cfg.edge_id, devices, state);
            self.sparkplug = Some(Mutex::new(node));
        }
        self
    }

    /// The Sparkplug B node, if any (a panic while it was held cannot leave it inconsistent:
    /// each call finishes its changes before it returns).
    fn node(&self) -> Option<MutexGuard<'_, sparkplug::Node>> {
        self.sparkplug.as_ref().map(|m| m.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Connects, uploads and reconnects with back-off until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::reconnect();
        let mut was_up = true;
        while !*shutdown.borrow() {
            let started = Instant::now();
            match self.session(&mut shutdown).await {
                Ok(()) => return,
                Err(e) => {
                    self.health.set_mqtt_state(MqttState::Disconnected);
                    if was_up || started.elapsed() > Duration::from_secs(5) {
                        tracing::warn!(error = %format!("{e:#}"), "broker connection lost; records stay buffered");
                        backoff.reset();
                    }
                    was_up = false;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_delay()) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    fn status_payload(&self, state: LinkState) -> Vec<u8> {
        let message = StatusMessage {
            state,
            site: self.cfg.site.clone(),
            edge_id: self.cfg.edge_id.clone(),
            ts_ms: chrono::Utc::now().timestamp_millis(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        serde_json::to_vec(&message).unwrap_or_default()
    }

    async fn session(&self, shutdown: &mut watch::Receiver<bool>) -> Result<()> {
        let (site, edge) = (&self.cfg.site, &self.cfg.edge_id);
        let status_topic = topic::topic(site, edge, Leaf::Status);
        let up = &self.cfg.uplink;
        let mut opts =
            moldops_common::mqtt::options(&self.cfg.broker, &format!("moldops-edge-{edge}"), &self.base_dir)?;
        opts.set_clean_session(true);
        opts.set_inflight((up.max_inflight + 4).min(u16::MAX as usize) as u16);
        let now = now_ms();
        let will = match self.node() {
            Some(mut node) => node.connect(now),
            None => {
                LastWill::new(&status_topic, self.status_payload(LinkState::Offline), QoS::AtLeastOnce, true)
            }
        };
        opts.set_last_will(will);
        // Room for the window, plus (Sparkplug) a device birth per record and the births of
        // every device at once.
        let room = match self.node() {
            Some(node) => 2 * up.max_inflight + 16 + node.devices(),
            None => up.max_inflight + 16,
        };
        let (client, mut events) = AsyncClient::new(opts, room);
        self.health.set_mqtt_state(MqttState::Connecting);
        loop {
            match events.poll().await.context("connecting to broker")? {
                Event::Incoming(Packet::ConnAck(_)) => break,
                _ => continue,
            }
        }
        self.health.set_mqtt_state(MqttState::Connected);
        self.health.metrics.mqtt_connects.inc();
        let mut appended = self.buffer.subscribe();
        let live_from = *appended.borrow();
        tracing::info!(broker = %self.cfg.broker.host, port = self.cfg.broker.port, backlog_until = live_from, "connected to broker");
        let mut s = Session {
            client,
            data_topic: topic::topic(site, edge, Leaf::Data),
            ack_topic: topic::topic(site, edge, Leaf::Ack),
            waiting_since: None,
            acks: 0,
            stale_checked: Instant::now(),
            live_cursor: live_from,
            backlog_cursor: 0,
            live_from,
            catchup: TokenBucket::new(up.catchup_records_per_s, up.batch_max_records, Instant::now()),
            awaiting_pkid: VecDeque::new(),
            inflight: HashMap::new(),
            command_topic: None,
            rebirth_pending: false,
            room,
            subscribing: VecDeque::new(),
            subscriptions: HashMap::new(),
        };
        s.client.try_publish(
            &status_topic,
            QoS::AtLeastOnce,
            true,
            self.status_payload(LinkState::Online),
        )?;
        s.awaiting_pkid.push_back(Tracked::Other);
        let commit_acks = up.delete_after == DeleteAfter::Commit;
        if commit_acks {
            s.client.try_subscribe(&s.ack_topic, QoS::AtLeastOnce)?;
            s.subscribing.push_back(s.ack_topic.clone());
        }
        let births = self.node().map(|mut node| (node.command_topic(), node.births(now_ms())));
        if let Some((commands, births)) = births {
            s.client.try_subscribe(&commands, QoS::AtLeastOnce)?;
            s.subscribing.push_back(commands.clone());
            s.command_topic = Some(commands);
            self.send_all(&mut s, births)?;
        }
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            self.fill(&mut s, *appended.borrow())?;
            if commit_acks {
                self.resend_if_stale(&mut s)?;
            }
            tokio::select! {
                ev = events.poll() => self.on_event(&mut s, ev.context("broker connection")?)?,
                changed = appended.changed() => if changed.is_err() { bail!("buffer closed") },
                _ = tick.tick(), if commit_acks || s.backlog_cursor < s.live_from => {}
                _ = shutdown.changed() => if *shutdown.borrow() {
                    // A clean disconnect discards the will: the death is said here.
                    if let Some(death) = self.node().map(|n| n.death(now_ms())) {
                        let _ = s.client.try_publish(death.topic, QoS::AtMostOnce, false, death.payload);
                    }
                    let _ = s.client.try_publish(&status_topic, QoS::AtMostOnce, true, self.status_payload(LinkState::Offline));
                    let _ = s.client.try_disconnect();
                    let _ = tokio::time::timeout(Duration::from_millis(500), async {
                        while events.poll().await.is_ok() {}
                    }).await;
                    return Ok(());
                },
            }
        }
    }

    fn window_used(s: &Session) -> usize {
        let data = |t: &&Tracked| matches!(t, Tracked::Data { .. });
        s.awaiting_pkid.iter().filter(data).count() + s.inflight.values().filter(data).count()
    }

    /// Publishes batches while the window has room: live first, then rate-limited backlog.
    fn fill(&self, s: &mut Session, durable_until: u64) -> Result<()> {
        let up = &self.cfg.uplink;
        self.rebirth_when_room(s)?;
        s.catchup.refill(Instant::now());
        while Self::window_used(s) < up.max_inflight {
            // Sparkplug sends a message per record: the window's room is counted in records.
            let per_message = match self.sparkplug {
                Some(_) => up.max_inflight - Self::window_used(s),
                None => up.batch_max_records,
            };
            let live = self.buffer.read(s.live_cursor, durable_until, per_message)?;
            if let Some((last, _)) = live.last() {
                s.live_cursor = last + 1;
                self.publish(s, live)?;
                continue;
            }
            if s.backlog_cursor >= s.live_from {
                break;
            }
            let allowed = s.catchup.available(up.batch_max_records);
            if allowed == 0 {
                break;
            }
            let backlog = self.buffer.read(s.backlog_cursor, s.live_from, allowed.min(per_message))?;
            let Some((last, _)) = backlog.last() else {
                s.backlog_cursor = s.live_from;
                tracing::info!("backlog uploaded");
                break;
            };
            s.backlog_cursor = last + 1;
            s.catchup.take(backlog.len());
            self.publish(s, backlog)?;
        }
        Ok(())
    }

    /// The oldest record that was sent on this connection and is still in the buffer.
    fn oldest_unconfirmed(&self, s: &Session) -> Result<Option<u64>> {
        Ok(self
            .buffer
            .lowest_seq()?
            .filter(|&l| if l < s.live_from { l < s.backlog_cursor } else { l < s.live_cursor }))
    }

    /// Sends again what the ingest has not confirmed within `resend_after_s`: the records go
    /// back to the backlog lane (oldest first, rate-limited).
    fn resend_if_stale(&self, s: &mut Session) -> Result<()> {
        // Called on every turn of the session loop; the buffer read need not be.
        if s.stale_checked.elapsed() < Duration::from_secs(1) {
            return Ok(());
        }
        s.stale_checked = Instant::now();
        let Some(oldest) = self.oldest_unconfirmed(s)? else {
            s.waiting_since = None;
            return Ok(());
        };
        let since = *s.waiting_since.get_or_insert_with(Instant::now);
        let limit = Duration::from_secs(self.cfg.uplink.resend_after_s);
        if since.elapsed() < limit {
            return Ok(());
        }
        if s.acks == 0 {
            tracing::warn!(
                waited_s = limit.as_secs(),
                "no commit ack from the ingest on this connection: sending \
                the unconfirmed records again (an ingest older than commit acks never sends one; with it, set \
                uplink.delete_after = \"puback\"; or the broker's ACL may not let this edge read its ack topic)"
            );
        } else {
            tracing::info!(
                from_seq = oldest,
                waited_s = limit.as_secs(),
                "records not confirmed by the ingest; sending them again"
            );
        }
        s.backlog_cursor = oldest;
        s.live_from = s.live_cursor;
        s.waiting_since = None;
        self.health.metrics.records_resent_rounds.inc();
        Ok(())
    }

    /// A commit ack: removes what the ingest has made durable (acks of another epoch — an
    /// older buffer of this edge — are ignored).
    fn on_ack(&self, s: &mut Session, payload: &[u8]) -> Result<()> {
        let ack = match CommitAck::decode(payload) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "commit ack ignored");
                return Ok(());
            }
        };
        if ack.epoch != self.buffer.epoch() {
            return Ok(());
        }
        s.acks += 1;
        let removed = self.buffer.remove(0..=ack.committed_through)?;
        if removed > 0 {
            self.health.metrics.records_committed.inc_by(removed);
            s.waiting_since = None;
        }
        Ok(())
    }

    fn publish(&self, s: &mut Session, records: Vec<(u64, Vec<u8>)>) -> Result<()> {
        let (Some((first, _)), Some((last, _))) = (records.first(), records.last()) else { return Ok(()) };
        let held_from = match self.cfg.uplink.delete_after {
            DeleteAfter::Commit => Some(self.buffer.lowest_seq()?.unwrap_or(*first).min(*first)),
            DeleteAfter::Puback => None,
        };
        if self.sparkplug.is_some() {
            return self.publish_sparkplug(s, records, held_from);
        }
        let tracked = Tracked::Data { first: *first, last: *last, count: records.len() as u64 };
        let payload = batch_json(&self.cfg.site, &self.cfg.edge_id, self.buffer.epoch(), held_from, &records);
        s.client.try_publish(&s.data_topic, QoS::AtLeastOnce, false, payload)?;
        s.awaiting_pkid.push_back(tracked);
        Ok(())
    }

    /// Sends each record as a Sparkplug B `DDATA` (after its device's birth when needed). A
    /// stored record Sparkplug cannot carry (its device id is no topic level, it fails the record
    /// checks, or it no longer reads as a record: a damaged buffer) goes out as a native batch of
    /// its own, which the ingest stores or quarantines alone with the reason: never dropped
    /// unseen, and its seq still counts toward the commit ack.
    fn publish_sparkplug(
        &self,
        s: &mut Session,
        records: Vec<(u64, Vec<u8>)>,
        held_from: Option<u64>,
    ) -> Result<()> {
        for (seq, json) in records {
            let held = held_from.map(|h| h.min(seq));
            let record = match sparkplug::carried(seq, &json) {
                Ok(r) => r,
                Err(why) => {
                    tracing::warn!(seq, %why, "a buffered record goes out as a native batch instead of a DDATA");
                    let one = [(seq, sparkplug::readable_json(seq, json))];
                    let payload =
                        batch_json(&self.cfg.site, &self.cfg.edge_id, self.buffer.epoch(), held, &one);
                    s.client.try_publish(&s.data_topic, QoS::AtLeastOnce, false, payload)?;
                    s.awaiting_pkid.push_back(Tracked::Data { first: seq, last: seq, count: 1 });
                    continue;
                }
            };
            let messages = match self.node() {
                Some(mut node) => node.data(&record, self.buffer.epoch(), held, now_ms()),
                None => Vec::new(),
            };
            let Some((data, births)) = messages.split_last() else { continue };
            self.send_all(s, births.to_vec())?;
            s.client.try_publish(&data.topic, data.qos, false, data.payload.clone())?;
            s.awaiting_pkid.push_back(Tracked::Data { first: seq, last: seq, count: 1 });
        }
        Ok(())
    }

    /// Publishes Sparkplug births (or other messages that carry no records).
    fn send_all(&self, s: &mut Session, messages: Vec<sparkplug::Message>) -> Result<()> {
        for m in messages {
            s.client.try_publish(m.topic, m.qos, false, m.payload)?;
            s.awaiting_pkid.push_back(Tracked::Other);
        }
        Ok(())
    }

    /// A host's command to the node: a rebirth request republishes every birth (once the
    /// request queue has room); anything else is logged and ignored.
    fn on_command(&self, s: &mut Session, payload: &[u8]) -> Result<()> {
        let Some(node) = self.node() else { return Ok(()) };
        match node.on_command(payload) {
            Ok(true) => {
                tracing::info!("Sparkplug rebirth requested");
                s.rebirth_pending = true;
            }
            Ok(false) => tracing::info!(
                bytes = payload.len(),
                "Sparkplug node command without a rebirth request ignored"
            ),
            Err(e) => tracing::warn!(error = %e, bytes = payload.len(), "Sparkplug node command refused"),
        }
        drop(node);
        self.rebirth_when_room(s)
    }

    /// Publishes the births a host asked for when the client's request queue can take them all.
    fn rebirth_when_room(&self, s: &mut Session) -> Result<()> {
        if !s.rebirth_pending {
            return Ok(());
        }
        let births = match self.node() {
            Some(mut node) if s.awaiting_pkid.len() + node.devices() + 1 + 4 <= s.room => {
                node.births(now_ms())
            }
            _ => return Ok(()),
        };
        s.rebirth_pending = false;
        tracing::info!(messages = births.len(), "Sparkplug births published again");
        self.send_all(s, births)
    }

    fn on_event(&self, s: &mut Session, ev: Event) -> Result<()> {
        match ev {
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(t) = s.awaiting_pkid.pop_front()
                    && pkid != 0
                {
                    s.inflight.insert(pkid, t);
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(Tracked::Data { first, last, count }) = s.inflight.remove(&ack.pkid) {
                    if self.cfg.uplink.delete_after == DeleteAfter::Puback {
                        self.buffer.remove(first..=last)?;
                    }
                    self.health.metrics.records_sent.inc_by(count);
                    self.health.metrics.batches_sent.inc();
                }
            }
            Event::Incoming(Packet::Publish(p)) if p.topic == s.ack_topic => self.on_ack(s, &p.payload)?,
            Event::Incoming(Packet::Publish(p)) if s.command_topic.as_deref() == Some(p.topic.as_str()) => {
                self.on_command(s, &p.payload)?
            }
            Event::Outgoing(Outgoing::Subscribe(pkid)) => {
                if let Some(topic) = s.subscribing.pop_front() {
                    s.subscriptions.insert(pkid, topic);
                }
            }
            Event::Incoming(Packet::SubAck(ack)) => {
                let topic = s.subscriptions.remove(&ack.pkid).unwrap_or_default();
                if ack.return_codes.iter().any(|c| matches!(c, SubscribeReasonCode::Failure)) {
                    if topic == s.ack_topic {
                        tracing::error!(%topic, "the broker refused the subscription to the commit acks: \
                            records stay in the buffer (and are sent again) until it is allowed; see deploy/mosquitto/acl");
                    } else {
                        tracing::error!(%topic, "the broker refused a subscription (Sparkplug: the node's commands, \
                            so a host cannot ask for a rebirth); see deploy/mosquitto/acl");
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Now, UTC ms (0 before 1970).
fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// Rate limit of the backlog lane: `rate` records per second with a burst of one second (at
/// least one batch); a rate of 0 means unlimited.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    /// `rate` records/s (0: unlimited) with a burst of max(`rate`, `batch`); starts with `batch`
    /// tokens.
    pub fn new(rate: u64, batch: usize, now: Instant) -> Self {
        let burst = (rate as f64).max(batch as f64);
        TokenBucket { rate: rate as f64, burst, tokens: batch as f64, refilled: now }
    }

    /// Adds the tokens earned since the last refill.
    pub fn refill(&mut self, now: Instant) {
        let earned = self.rate * now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + earned).min(self.burst);
        self.refilled = now;
    }

    /// Records that may be sent now, at most `max`.
    pub fn available(&self, max: usize) -> usize {
        if self.rate <= 0.0 { max } else { (self.tokens.floor().max(0.0) as usize).min(max) }
    }

    /// Spends `n` tokens for records just sent (nothing when unlimited).
    pub fn take(&mut self, n: usize) {
        if self.rate > 0.0 {
            self.tokens -= n as f64;
        }
    }
}

/// Assembles a batch from stored record JSON without re-encoding the records.
pub fn batch_json(
    site: &str,
    edge_id: &str,
    epoch: &str,
    held_from: Option<u64>,
    records: &[(u64, Vec<u8>)],
) -> Vec<u8> {
    let first = records.first().map_or(0, |r| r.0);
    let last = records.last().map_or(0, |r| r.0);
    let epoch = if epoch.is_empty() {
        String::new()
    } else {
        format!(r#","epoch":{}"#, serde_json::Value::from(epoch))
    };
    let held = held_from.map(|h| format!(r#","held_from":{h}"#)).unwrap_or_default();
    let head = format!(
        r#"{{"schema":{},"site":{},"edge_id":{}{epoch},"first_seq":{first},"last_seq":{last}{held},"sent_at_ms":{},"records":["#,
        moldops_shared::SCHEMA_VERSION,
        serde_json::Value::from(site),
        serde_json::Value::from(edge_id),
        chrono::Utc::now().timestamp_millis(),
    );
    let size = head.len() + records.iter().map(|r| r.1.len() + 1).sum::<usize>() + 2;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(head.as_bytes());
    for (i, (_, json)) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(json);
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use moldops_shared::{Record, RecordKind};

    #[test]
    fn catchup_is_limited_to_its_rate_and_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 500, t0);
        assert_eq!(b.available(500), 500, "one batch may go at once");
        b.take(500);
        assert_eq!(b.available(500), 0);
        b.refill(t0 + Duration::from_millis(100));
        assert_eq!(b.available(500), 100, "1000/s earns 100 in 100 ms");
        b.take(100);
        b.refill(t0 + Duration::from_secs(60));
        assert_eq!(b.available(5000), 1000, "an idle minute earns at most one second's burst");
        let unlimited = TokenBucket::new(0, 500, t0);
        assert_eq!(unlimited.available(500), 500);
    }

    #[test]
    fn batch_json_decodes_with_the_shared_codec() {
        let recs: Vec<(u64, Vec<u8>)> = (5..8)
            .map(|seq| {
                let r = Record {
                    seq,
                    kind: RecordKind::Peripheral,
                    machine_id: "m1".into(),
                    device_id: "m1-dryer".into(),
                    ts_ms: 1,
                    shot_number: None,
                    mold: None,
                    material: None,
                    values: [("dew_point".to_string(), -40.0)].into_iter().collect(),
                    out_of_range: vec![],
                    model: None,
                };
                (seq, serde_json::to_vec(&r).expect("json"))
            })
            .collect();
        let b = moldops_shared::decode_batch(&batch_json("site \"a\"", "e1", "", None, &recs))
            .expect("valid batch");
        assert_eq!((b.first_seq, b.last_seq, b.records.len()), (5, 7, 3));
        assert_eq!((b.site.as_str(), b.epoch.as_str()), ("site \"a\"", ""));
        let b = moldops_shared::decode_batch(&batch_json("s", "e1", "0a1b", Some(2), &recs))
            .expect("valid batch");
        assert_eq!((b.epoch.as_str(), b.held_from), ("0a1b", Some(2)));
    }
}
