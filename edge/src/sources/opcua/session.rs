//! One OPC UA session to a device: builds the client (security, identity), connects within a
//! time limit, resolves the node map ([`super::resolve`]: namespace URIs, browse paths) afresh
//! on every connect, and creates the subscription and monitored items.
//! The session's event loop runs in its own task; when it ends (connection lost, session
//! rejected) the [`Connection`] says so and the caller drops it. Dropping closes the session.

use super::config::{NodeProfile, OpcUaConfig, SecurityMode, SecurityPolicy};
use super::node::status_text;
use crate::config::DeviceConfig;
use anyhow::{Result, anyhow, bail};
use futures::{Stream, StreamExt};
use opcua::client::{
    ClientBuilder, DataChangeCallback, IdentityToken, MonitoredItem, Session, SessionPollResult,
};
use opcua::types::{
    DataValue, MessageSecurityMode, MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters, NodeId,
    ReadValueId, StatusCode, TimestampsToReturn,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// State the event-loop task and the subscription callback share with the poller.
#[derive(Default)]
struct Shared {
    lost: Mutex<Option<StatusCode>>,
    changed: Notify,
    values: Mutex<Vec<Option<DataValue>>>,
}

impl Shared {
    fn lose(&self, code: StatusCode) {
        *self.lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(code);
        self.changed.notify_one();
    }
}

/// A connected session, its read request and (when subscribed) the notified values.
pub struct Connection {
    /// The async-opcua session; reads go through it.
    pub session: Arc<Session>,
    read: Vec<ReadValueId>,
    driver: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    subscribed: bool,
    first: bool,
}

impl Connection {
    /// Connects, activates the session and subscribes (when `subscribe`), all within `limit`.
    pub async fn open(
        cfg: &DeviceConfig,
        ua: &OpcUaConfig,
        profile: &NodeProfile,
        interval: Duration,
        subscribe: bool,
        limit: Duration,
    ) -> Result<Connection> {
        let mut builder = ClientBuilder::new()
            .application_name("moldops-edge")
            .application_uri("urn:moldops:edge")
            .product_uri("urn:moldops:edge")
            .create_sample_keypair(false)
            .trust_server_certs(ua.trust_server_certs)
            .session_retry_limit(0)
            .request_timeout(Duration::from_millis(cfg.timeout_ms))
            .session_name(format!("moldops-edge {}", cfg.id));
        if let Some(pki) = &ua.pki_dir {
            builder = builder.pki_dir(pki);
        }
        if let (Some(cert), Some(key)) = (&ua.certificate_file, &ua.private_key_file) {
            builder = builder.certificate_path(cert).private_key_path(key);
        }
        let mut client = builder.client().map_err(|e| anyhow!("client settings: {}", e.join("; ")))?;
        let policy = match ua.security_policy {
            SecurityPolicy::None => "None",
            SecurityPolicy::Basic256Sha256 => "Basic256Sha256",
        };
        let mode = match ua.security_mode {
            SecurityMode::None => MessageSecurityMode::None,
            SecurityMode::Sign => MessageSecurityMode::Sign,
            SecurityMode::SignAndEncrypt => MessageSecurityMode::SignAndEncrypt,
        };
        let identity = match (&ua.username, &ua.password) {
            (Some(u), Some(p)) => IdentityToken::new_user_name(u.clone(), p.clone()),
            _ => IdentityToken::Anonymous,
        };
        let endpoint = (ua.endpoint.as_str(), policy, mode);
        let (session, event_loop) = timeout(limit, client.connect_to_matching_endpoint(endpoint, identity))
            .await
            .map_err(|_| anyhow!("no endpoint list within {limit:?}"))?
            .map_err(|e| anyhow!("endpoint {policy}/{mode:?}: {e}"))?;
        let shared = Arc::new(Shared::default());
        let (ready_tx, ready_rx) = oneshot::channel();
        let driver = tokio::spawn(drive(event_loop.enter(), shared.clone(), ready_tx));
        let mut conn = Connection {
            session,
            read: vec![],
            driver: Some(driver),
            shared,
            subscribed: false,
            first: true,
        };
        match timeout(limit, ready_rx).await {
            Err(_) => bail!("no session within {limit:?}"),
            Ok(Err(_)) => bail!("session event loop ended"),
            Ok(Ok(Err(code))) => bail!("session not established: {}{}", status_text(code), hint(code)),
            Ok(Ok(Ok(()))) => {}
        }
        // On every connect: node ids may differ after a server restart or firmware update.
        let ids = super::resolve::node_ids(&conn.session, ua, profile, limit).await?;
        conn.read = ids.iter().cloned().map(ReadValueId::from).collect();
        *conn.shared.values.lock().unwrap_or_else(|e| e.into_inner()) = vec![None; ids.len()];
        if subscribe {
            conn.subscribed = conn.subscribe(cfg, profile, &ids, interval, limit).await?;
        }
        tracing::info!(device = %cfg.id, endpoint = %ua.endpoint, subscribed = conn.subscribed, "opc ua session established");
        Ok(conn)
    }

    /// True when a subscription was created (false: values are read with the Read service).
    pub fn subscribed(&self) -> bool {
        self.subscribed
    }

    /// The Read request for every node, in node-map order, namespaces resolved.
    pub fn read_ids(&self) -> &[ReadValueId] {
        &self.read
    }

    /// Fails once the session's event loop has ended.
    pub fn check_alive(&self) -> Result<()> {
        match *self.shared.lost.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(code) => Err(anyhow!("connection lost: {}", status_text(code))),
            None => Ok(()),
        }
    }

    /// Waits for the counter to change (at most `quiet`); the first call returns at once.
    pub async fn wait_for_change(&mut self, quiet: Duration) -> Result<()> {
        if !std::mem::take(&mut self.first) {
            let _ = timeout(quiet, self.shared.changed.notified()).await;
        }
        self.check_alive()
    }

    /// The latest notified value of every node, once each has been notified.
    pub fn notified_values(&self) -> Option<Vec<DataValue>> {
        self.shared.values.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    /// Drops the connection: the session is closed in the background (see the `Drop` impl).
    pub fn close(self) {}

    /// Creates the subscription; `Ok(false)` when the server does not support one.
    async fn subscribe(
        &self,
        cfg: &DeviceConfig,
        profile: &NodeProfile,
        ids: &[NodeId],
        interval: Duration,
        limit: Duration,
    ) -> Result<bool> {
        let watch = super::monitored(profile, cfg.role);
        let counter =
            profile.shot_counter.as_deref().and_then(|c| profile.nodes.iter().position(|n| n.name == c));
        let by_id: HashMap<NodeId, usize> = watch.iter().map(|&i| (ids[i].clone(), i)).collect();
        let shared = self.shared.clone();
        let callback = DataChangeCallback::new(move |dv: DataValue, item: &MonitoredItem| {
            let Some(&i) = by_id.get(&item.item_to_monitor().node_id) else { return };
            if let Some(slot) = shared.values.lock().unwrap_or_else(|e| e.into_inner()).get_mut(i) {
                *slot = Some(dv);
            }
            if Some(i) == counter {
                shared.changed.notify_one();
            }
        });
        let create = self.session.create_subscription(interval, 60, 10, 0, 0, true, callback);
        let id = match timeout(limit, create).await {
            Err(_) => bail!("create subscription: no answer within {limit:?}"),
            Ok(Err(e)) if unsupported(e.status()) => {
                tracing::warn!(device = %cfg.id, status = %e, "server refuses subscriptions; polling instead");
                return Ok(false);
            }
            Ok(Err(e)) => bail!("create subscription: {e}"),
            Ok(Ok(id)) => id,
        };
        let params = MonitoringParameters {
            sampling_interval: interval.as_secs_f64() * 1000.0,
            queue_size: 1,
            discard_oldest: true,
            ..Default::default()
        };
        let items: Vec<MonitoredItemCreateRequest> = watch
            .iter()
            .map(|&i| {
                MonitoredItemCreateRequest::new(
                    ids[i].clone().into(),
                    MonitoringMode::Reporting,
                    params.clone(),
                )
            })
            .collect();
        let create = self.session.create_monitored_items(id, TimestampsToReturn::Source, items);
        let created = timeout(limit, create)
            .await
            .map_err(|_| anyhow!("create monitored items: no answer within {limit:?}"))?
            .map_err(|e| anyhow!("create monitored items: {e}"))?;
        for (c, &i) in created.iter().zip(&watch) {
            if c.result.status_code.is_bad() {
                let n = &profile.nodes[i];
                bail!("monitor node {} ({}): {}", n.node, n.name, status_text(c.result.status_code));
            }
        }
        Ok(true)
    }
}

impl Drop for Connection {
    /// Closes the session in the background (bounded), then stops its event loop.
    fn drop(&mut self) {
        let Some(driver) = self.driver.take() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            driver.abort();
            return;
        };
        let session = self.session.clone();
        rt.spawn(async move {
            let _ = timeout(Duration::from_secs(2), session.disconnect()).await;
            driver.abort();
        });
    }
}

/// Runs the session event loop; reports the first connect outcome on `ready` and marks the
/// connection lost when the loop ends or loses its transport (no reconnect of its own).
async fn drive(
    events: impl Stream<Item = Result<SessionPollResult, StatusCode>>,
    shared: Arc<Shared>,
    ready: oneshot::Sender<Result<(), StatusCode>>,
) {
    let mut ready = Some(ready);
    let mut events = std::pin::pin!(events);
    let end = loop {
        match events.next().await {
            Some(Ok(SessionPollResult::Reconnected(_))) => {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(Ok(()));
                }
            }
            Some(Ok(SessionPollResult::ConnectionLost(code) | SessionPollResult::ReconnectFailed(code))) => {
                break code;
            }
            Some(Ok(_)) => {}
            Some(Err(code)) => break code,
            None => break StatusCode::BadConnectionClosed,
        }
    };
    if let Some(tx) = ready.take() {
        let _ = tx.send(Err(end));
    }
    shared.lose(end);
}

fn unsupported(code: StatusCode) -> bool {
    code == StatusCode::BadServiceUnsupported || code == StatusCode::BadNotSupported
}

fn hint(code: StatusCode) -> &'static str {
    if code == StatusCode::BadUserAccessDenied
        || code == StatusCode::BadIdentityTokenRejected
        || code == StatusCode::BadIdentityTokenInvalid
    {
        " — check opcua.username and opcua.password"
    } else if code == StatusCode::BadSecurityChecksFailed || code == StatusCode::BadCertificateUntrusted {
        " — is the server certificate in the pki_dir's trusted/ folder?"
    } else {
        ""
    }
}
