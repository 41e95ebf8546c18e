//! The rollout manager's canary logic against fake edges on the embedded broker (rumqttd, the
//! demo's broker: retained desired state and chunks must work there too). A fake edge takes or
//! refuses any desired bundle at once and reports it (retained), as the real agent does.

use moldops_cloud::rollout::{Link, Plan, fleet};
use moldops_common::mqtt::BrokerConfig;
use moldops_shared::bundle::{Bundle, FeatureSpec, MODEL_FILE, Manifest, ModelKey};
use moldops_shared::rollout::{DesiredModels, ReportedModel, ReportedModels, RolloutState};
use moldops_shared::topic::{self, Leaf};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const SITE: &str = "plant";

/// A fake edge: answers every desired state with `accept`'s verdict; counts desired messages.
fn fake_edge(port: u16, edge: &'static str, accept: bool) -> Arc<AtomicUsize> {
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        let (client, mut events) =
            AsyncClient::new(MqttOptions::new(format!("fake-{edge}"), "127.0.0.1", port), 100);
        let mut previous = None;
        loop {
            let Ok(ev) = events.poll().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            match ev {
                Event::Incoming(Packet::ConnAck(_)) => {
                    let _ = client
                        .subscribe(topic::topic(SITE, edge, Leaf::ModelDesired), QoS::AtLeastOnce)
                        .await;
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let Ok(d) = serde_json::from_slice::<DesiredModels>(&p.payload) else { continue };
                    count.fetch_add(1, Ordering::SeqCst);
                    let models = d
                        .models
                        .iter()
                        .map(|m| {
                            let (state, reason) = if accept {
                                (RolloutState::Active, None)
                            } else {
                                (RolloutState::Rejected, Some("bad signature: not ours".to_string()))
                            };
                            let active = if accept { Some(m.bundle.clone()) } else { previous.clone() };
                            let r = ReportedModel {
                                model_key: m.model_key.clone(),
                                state,
                                target: Some(m.bundle.clone()),
                                active,
                                previous: None,
                                reason,
                                shadow: None,
                                newest: 0,
                                desired_at_ms: 0,
                                ts_ms: 0,
                            };
                            (m.model_key.label(), r)
                        })
                        .collect();
                    previous = d.models.first().map(|m| m.bundle.clone());
                    let reported =
                        ReportedModels { site: SITE.into(), edge_id: edge.into(), models, ts_ms: 0 };
                    let payload = serde_json::to_vec(&reported).expect("json");
                    let t = topic::topic(SITE, edge, Leaf::ModelReported);
                    let _ = client.publish(t, QoS::AtLeastOnce, true, payload).await;
                }
                _ => {}
            }
        }
    });
    seen
}

fn bundle(version: u32) -> Bundle {
    let key = ModelKey { machine_id: "M1".into(), mold: None };
    let specs = vec![FeatureSpec { name: "Cycle_Time".into(), unit: None, fill: 0.0 }];
    let manifest = Manifest {
        model_id: format!("M1@{version}"),
        version,
        ..Manifest::new(key, "zscore", specs, 2, 1.0)
    };
    let onnx = moldops_scoring::inference::reference::zscore_onnx(2, &[0.0], &[1.0]);
    Bundle::seal(manifest, BTreeMap::from([(MODEL_FILE.to_string(), onnx)]), &[5; 32]).expect("seal")
}

fn plan(edges: &[&str], canaries: &[&str], max_failures: usize) -> Plan {
    Plan {
        site: SITE.into(),
        edges: edges.iter().map(|e| e.to_string()).collect(),
        canaries: canaries.iter().map(|e| e.to_string()).collect(),
        max_failures,
        timeout: Duration::from_secs(30),
        chunk_bytes: 512,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_go_first_and_failures_stop_the_rollout() {
    let addr = moldops_cloud::broker::free_loopback().expect("port");
    moldops_cloud::broker::start(addr).expect("broker");
    let port = addr.port();
    let bad_canary = fake_edge(port, "e1", false);
    let good = fake_edge(port, "e2", true);
    let other = fake_edge(port, "e3", true);
    let broker: BrokerConfig = BrokerConfig::with_host("127.0.0.1");
    let broker = BrokerConfig { port, ..broker };
    let mut link = Link::connect(&broker, std::path::Path::new("."), "test-manager").await.expect("connect");
    // Desired states are retained: a fake edge that subscribes late still gets its own.
    // The canary refuses: the rest never get the bundle.
    let report =
        fleet::publish(&mut link, &bundle(1), &plan(&["e1", "e2", "e3"], &["e1"], 0)).await.expect("publish");
    assert_eq!(report.canaries.len(), 1);
    assert_eq!(report.canaries[0].state, Some(RolloutState::Rejected));
    assert!(report.canaries[0].reason.as_deref().is_some_and(|r| r.contains("bad signature")));
    assert!(report.stopped.is_some() && report.rest.is_empty(), "{report:?}");
    assert_eq!(bad_canary.load(Ordering::SeqCst), 1);
    assert_eq!(good.load(Ordering::SeqCst) + other.load(Ordering::SeqCst), 0, "the rest were not touched");

    // A healthy canary lets the rest follow; one failure is tolerated with max_failures 1.
    let report =
        fleet::publish(&mut link, &bundle(2), &plan(&["e2", "e1", "e3"], &["e2"], 1)).await.expect("publish");
    assert!(report.stopped.is_none(), "{report:?}");
    assert_eq!(report.failures(), 1);
    let states: Vec<_> = report.rest.iter().map(|o| (o.edge_id.as_str(), o.state)).collect();
    assert_eq!(states, [("e1", Some(RolloutState::Rejected)), ("e3", Some(RolloutState::Active))]);

    // Status shows every edge's retained report.
    let status = fleet::status(&mut link, SITE, &[]).await.expect("status");
    let edges: Vec<&str> = status.iter().map(|r| r.edge_id.as_str()).collect();
    assert_eq!(edges, ["e1", "e2", "e3"]);
    assert_eq!(status[1].models["M1"].active.as_ref().map(|a| a.version), Some(2));
    link.close().await;
}
