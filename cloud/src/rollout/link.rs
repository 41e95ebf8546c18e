//! The rollout manager's MQTT connection: publish with QoS 1, subscribe, and a **sync point**
//! ([`Link::sync`]): a message the manager sends to itself on a private topic. The broker
//! handles one client's packets in order, so when the sync message comes back every earlier
//! publish has been stored (retained ones included) and every retained message of earlier
//! subscriptions has been delivered — no waiting on timers to know "nothing more is retained".
//! The link remembers the last payload of every topic it received ([`Link::latest`]), so a
//! second look at the same retained topics on the same connection needs no re-delivery.

use anyhow::{Context, Result, anyhow, bail};
use moldops_common::mqtt::BrokerConfig;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

/// The rollout manager's MQTT connection (clean session), with the last payload of every topic received.
pub struct Link {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    sync_topic: String,
    syncs: u64,
    seen: HashMap<String, Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
}

impl Link {
    /// Connects (clean session) and waits for the broker's CONNACK.
    pub async fn connect(broker: &BrokerConfig, base: &Path, client_id: &str) -> Result<Link> {
        let mut opts = moldops_common::mqtt::options(broker, client_id, base)?;
        opts.set_clean_session(true);
        let (client, mut events) = AsyncClient::new(opts, 1024);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), rumqttc::ConnectionError>>();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(Ok(()));
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(Err(e));
                            return;
                        }
                        tracing::warn!(error = %e, "rollout manager lost the broker; reconnecting");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        match tokio::time::timeout(Duration::from_secs(30), ready_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => bail!("cannot connect to the broker {}:{}: {e}", broker.host, broker.port),
            _ => bail!("no answer from the broker {}:{} within 30 s", broker.host, broker.port),
        }
        let sync_topic = format!("moldops/v1/_manager/{client_id}/sync");
        client.subscribe(&sync_topic, QoS::AtLeastOnce).await?;
        Ok(Link { client, rx, sync_topic, syncs: 0, seen: HashMap::new(), task })
    }

    /// Subscribes to `filter` with QoS 1 (queued; after [`Link::sync`] its retained messages are in).
    pub async fn subscribe(&self, filter: &str) -> Result<()> {
        self.client.subscribe(filter, QoS::AtLeastOnce).await.context("subscribe")
    }

    /// Publishes with QoS 1 (queued; [`Link::sync`] confirms the broker has it).
    pub async fn publish(&self, topic: &str, retain: bool, payload: Vec<u8>) -> Result<()> {
        self.client.publish(topic, QoS::AtLeastOnce, retain, payload).await.context("publish")
    }

    /// Waits until the broker has handled everything sent so far; returns the messages that
    /// arrived meanwhile (e.g. retained ones of earlier subscriptions).
    pub async fn sync(&mut self, timeout: Duration) -> Result<Vec<(String, Vec<u8>)>> {
        self.syncs += 1;
        let marker = format!("{}", self.syncs).into_bytes();
        self.client.publish(&self.sync_topic, QoS::AtLeastOnce, false, marker.clone()).await?;
        let mut got = Vec::new();
        let end = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(end, self.rx.recv())
                .await
                .map_err(|_| anyhow!("the broker did not confirm within {timeout:?}"))?
                .ok_or_else(|| anyhow!("broker connection closed"))?;
            if msg.0 == self.sync_topic {
                if msg.1 == marker {
                    return Ok(got);
                }
                continue;
            }
            self.seen.insert(msg.0.clone(), msg.1.clone());
            got.push(msg);
        }
    }

    /// The next message, or `None` when `timeout` passes first.
    pub async fn next(&mut self, timeout: Duration) -> Option<(String, Vec<u8>)> {
        loop {
            let msg = tokio::time::timeout(timeout, self.rx.recv()).await.ok()??;
            if msg.0 != self.sync_topic {
                self.seen.insert(msg.0.clone(), msg.1.clone());
                return Some(msg);
            }
        }
    }

    /// The last payload received on `topic` (an empty one clears a retained message).
    pub fn latest(&self, topic: &str) -> Option<&[u8]> {
        self.seen.get(topic).map(Vec::as_slice).filter(|p| !p.is_empty())
    }

    /// Every topic received so far with its last non-empty payload.
    pub fn all_latest(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.seen.iter().filter(|(_, p)| !p.is_empty()).map(|(t, p)| (t.as_str(), p.as_slice()))
    }

    /// Disconnects cleanly.
    pub async fn close(self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}
