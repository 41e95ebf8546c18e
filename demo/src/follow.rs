//! The edge's score messages of one machine, followed live over MQTT by a background task, so
//! that a phase of the demo can wait for what it needs (a shot of a new mould, enough shots of
//! a key) as each message arrives.

use anyhow::{Result, bail};
use moldops_cloud::rollout::Link;
use moldops_common::mqtt::BrokerConfig;
use moldops_shared::rollout::ScoreMessage;
use moldops_shared::topic::{Leaf, filter_all};
use std::path::Path;
use std::time::Duration;
use tokio::sync::watch;

/// Longest wait for one step: a new mould's first shots, enough shots, a model, a drift flag.
pub const STEP_LIMIT: Duration = Duration::from_secs(300);

/// The score messages of one machine, collected since [`Follower::start`].
pub struct Follower {
    messages: watch::Receiver<Vec<ScoreMessage>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Follower {
    /// Subscribes to every edge's scores and keeps those of `machine`.
    pub async fn start(broker: &BrokerConfig, base: &Path, machine: &str) -> Result<Follower> {
        let mut link = Link::connect(broker, base, "moldops-demo-follower").await?;
        link.subscribe(&filter_all(Leaf::Scores)).await?;
        let (out, messages) = watch::channel(Vec::new());
        let (stop, mut stopped) = watch::channel(false);
        let machine = machine.to_string();
        let task = tokio::spawn(async move {
            while !*stopped.borrow_and_update() {
                if let Some((_, payload)) = link.next(Duration::from_millis(200)).await
                    && let Ok(m) = serde_json::from_slice::<ScoreMessage>(&payload)
                    && m.machine_id == machine
                {
                    out.send_modify(|all| all.push(m));
                }
            }
            link.close().await;
        });
        Ok(Follower { messages, stop, task })
    }

    /// The messages so far.
    pub fn snapshot(&self) -> Vec<ScoreMessage> {
        self.messages.borrow().clone()
    }

    /// Waits until `done` holds for the messages so far (checked as each one arrives); fails
    /// after [`STEP_LIMIT`].
    pub async fn until(
        &self,
        what: &str,
        done: impl Fn(&[ScoreMessage]) -> bool,
    ) -> Result<Vec<ScoreMessage>> {
        let mut rx = self.messages.clone();
        match tokio::time::timeout(STEP_LIMIT, rx.wait_for(|all| done(all))).await {
            Ok(Ok(all)) => Ok(all.clone()),
            Ok(Err(_)) => bail!("the score subscription ended before any {what}"),
            Err(_) => bail!("no {what} within {} s", STEP_LIMIT.as_secs()),
        }
    }

    /// Stops following; the messages collected.
    pub async fn finish(self) -> Vec<ScoreMessage> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.messages.borrow().clone()
    }
}
