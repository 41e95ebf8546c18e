//! Starting a rollout from the console: the registry's production version of a key sent to
//! edges the user picks, per site the first chosen edge as canary, through the same [`crate::rollout::fleet::publish`] the
//! `rollout publish` command runs. The console needs a broker account for it (`--broker-host`
//! or `--rollout-config`, the rollout's `[broker]` section); without one the page says so.
//!
//! The rollout runs in the background (canaries take their shadow run first, which can take
//! minutes): the start and the end, with every edge's outcome, are audited; the edges' states
//! show on the rollouts page as they report them.

use super::audit::{self, Action, Kind};
use super::{Failure, Page, Shared};
use crate::rollout::{Link, Plan, fleet};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use moldops_common::mqtt::BrokerConfig;
use moldops_shared::bundle::ModelKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// How long each stage of a console rollout waits for the edges' final states.
pub const STAGE_TIMEOUT: Duration = Duration::from_secs(900);

/// The broker account rollouts are sent with.
#[derive(Debug, Clone)]
pub struct RolloutAccount {
    /// The broker.
    pub broker: BrokerConfig,
    /// Folder that relative TLS file paths resolve against.
    pub base_dir: PathBuf,
}

/// `?key=&version=`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Which {
    /// The key's label.
    pub key: String,
    /// The version (must be production).
    pub version: u32,
}

/// An edge to offer.
#[derive(Debug, Clone, Serialize)]
struct EdgeChoice {
    /// `site/edge`, the form value.
    value: String,
    site: String,
    edge_id: String,
    link: String,
}

#[derive(Debug, Clone, Serialize)]
struct Confirm {
    which: Which,
    enabled: bool,
    edges: Vec<EdgeChoice>,
}

/// `GET /models/rollout`: the edges to send the production version to, and the button.
pub async fn confirm(State(c): State<Shared>, headers: HeaderMap, Query(which): Query<Which>) -> Page {
    let registry = c.folders.registry.clone();
    let w = which.clone();
    super::blocking(move || production_bundle(&registry, &w).map(|_| ()))
        .await
        .map_err(|e| Failure::bad_request(e.reason))?;
    let summary = c.summary.get().await?;
    let lake_dir = c.folders.lake.clone();
    let fleet = super::blocking(move || super::fleet::fleet(&lake_dir, &summary)).await?;
    let edges = fleet
        .edges
        .into_iter()
        .map(|e| EdgeChoice {
            value: format!("{}/{}", e.site, e.edge_id),
            site: e.site,
            edge_id: e.edge_id,
            link: e.link,
        })
        .collect();
    let view = Confirm { which, enabled: c.rollout.is_some(), edges };
    c.render("rollout.html", "models", "Roll out", &headers, view)
}

/// The production bundle of `which`, refusing any other version.
fn production_bundle(
    registry: &std::path::Path,
    which: &Which,
) -> anyhow::Result<moldops_shared::bundle::Bundle> {
    let key = ModelKey::parse(&which.key)?;
    let reg = crate::registry::Registry::open_existing(registry)?;
    if reg.state(&key)?.production() != Some(which.version) {
        anyhow::bail!("{}@{} is not the production version: promote it first", which.key, which.version);
    }
    crate::rollout::cli::registry_bundle(registry, &key, Some(which.version))
}

/// The rollout form: `key`, `version`, `comment` and one `edge=site/edge` per chosen edge
/// (the first is the canary).
#[derive(Debug, Clone, Deserialize)]
pub struct RolloutForm {
    /// The key's label.
    pub key: String,
    /// The version.
    pub version: u32,
    /// Why.
    #[serde(default)]
    pub comment: String,
    /// `site/edge` values.
    #[serde(default)]
    pub edge: Vec<String>,
}

/// `POST /models/rollout`: signed in only; starts the rollout in the background.
pub async fn start(State(c): State<Shared>, headers: HeaderMap, body: String) -> Result<Response, Failure> {
    let user = c.writer(&headers)?;
    let Some(account) = c.rollout.clone() else {
        return Err(Failure::bad_request(
            "this console has no broker account: start it with --broker-host or --rollout-config",
        ));
    };
    let form = parse_form(&body)?;
    let comment = audit::comment(&form.comment)?;
    let by_site = edges_by_site(&form.edge)?;
    let registry = c.folders.registry.clone();
    let which = Which { key: form.key.clone(), version: form.version };
    let bundle = super::blocking(move || production_bundle(&registry, &which))
        .await
        .map_err(|e| Failure::new(axum::http::StatusCode::CONFLICT, e.reason))?;
    let target = format!("{}@{}", form.key, form.version);
    let chosen: Vec<String> =
        by_site.iter().flat_map(|(s, edges)| edges.iter().map(move |e| format!("{s}/{e}"))).collect();
    let started = Action {
        ts_ms: chrono::Utc::now().timestamp_millis(),
        user: user.clone(),
        kind: Kind::Rollout,
        target: target.clone(),
        comment: if comment.is_empty() {
            chosen.join(", ")
        } else {
            format!("{comment} (to {})", chosen.join(", "))
        },
        outcome: "started".into(),
    };
    let lake_dir = c.folders.lake.clone();
    c.writing(move || audit::record(&lake_dir, &started)).await?;
    c.metrics.action(Kind::Rollout.as_str(), true);
    tracing::info!(user, target, edges = ?chosen, "rollout started from the console");
    let lake_dir = c.folders.lake.clone();
    let console = c.clone();
    tokio::spawn(async move {
        let (outcome, ok) = match run(&account, &bundle, by_site).await {
            Ok(ended) => (ended.lines.join("; "), ended.failures == 0),
            Err(e) => (format!("{e:#}"), false),
        };
        if ok {
            tracing::info!(target, outcome, "console rollout ended");
        } else {
            tracing::warn!(target, outcome, "console rollout ended with failures");
        }
        let done = Action {
            ts_ms: chrono::Utc::now().timestamp_millis(),
            user,
            kind: Kind::Rollout,
            target,
            comment: String::new(),
            outcome,
        };
        if let Err(e) = console.writing(move || audit::record(&lake_dir, &done)).await {
            tracing::error!(error = ?e, "the end of a console rollout was not audited");
        }
    });
    Ok(Redirect::to(&c.link("/rollouts")).into_response())
}

/// The chosen `site/edge` values by site, each edge once, in the order chosen.
fn edges_by_site(values: &[String]) -> Result<BTreeMap<String, Vec<String>>, Failure> {
    let mut by_site: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for v in values {
        let Some((site, edge)) = v.split_once('/') else {
            return Err(Failure::bad_request(format!("edge {v:?}")));
        };
        for (field, value) in [("site", site), ("edge_id", edge)] {
            moldops_shared::limits::check_level(field, value)
                .map_err(|r| Failure::bad_request(r.to_string()))?;
        }
        let edges = by_site.entry(site.to_string()).or_default();
        if !edges.iter().any(|e| e == edge) {
            edges.push(edge.to_string());
        }
    }
    if by_site.is_empty() {
        return Err(Failure::bad_request("choose at least one edge"));
    }
    Ok(by_site)
}

/// How a rollout ended: one line per edge (and per stop), and the edges that did not take it.
struct Ended {
    lines: Vec<String>,
    failures: usize,
}

/// A distinct MQTT client id per rollout: two at once must not take over each other's session.
fn client_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("moldops-console-rollout-{}-{n}", std::process::id())
}

/// Publishes the bundle site by site, each site's first chosen edge as its canary.
async fn run(
    account: &RolloutAccount,
    bundle: &moldops_shared::bundle::Bundle,
    by_site: BTreeMap<String, Vec<String>>,
) -> anyhow::Result<Ended> {
    let mut link = Link::connect(&account.broker, &account.base_dir, &client_id()).await?;
    let mut ended = Ended { lines: Vec::new(), failures: 0 };
    let mut result = Ok(());
    for (site, edges) in by_site {
        let plan = Plan {
            site: site.clone(),
            canaries: edges.iter().take(1).cloned().collect(),
            edges,
            max_failures: 0,
            timeout: STAGE_TIMEOUT,
            chunk_bytes: moldops_shared::rollout::DEFAULT_CHUNK_BYTES,
        };
        let report = match fleet::publish(&mut link, bundle, &plan).await {
            Ok(r) => r,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        ended.failures += report.failures();
        for o in report.canaries.iter().chain(&report.rest) {
            let state =
                o.state.map_or("no final state in time".to_string(), |s| format!("{s:?}").to_lowercase());
            ended.lines.push(format!("{site}/{}: {state}", o.edge_id));
        }
        if let Some(why) = report.stopped {
            ended.lines.push(format!("{site}: stopped: {why}"));
        }
    }
    link.close().await;
    result.map(|()| ended)
}

/// Parses the form; its `edge` field repeats, which a struct-shaped form decoder does not take.
fn parse_form(body: &str) -> Result<RolloutForm, Failure> {
    let mut form = RolloutForm { key: String::new(), version: 0, comment: String::new(), edge: Vec::new() };
    let mut version = None;
    for (k, v) in url::form_urlencoded::parse(body.as_bytes()) {
        match k.as_ref() {
            "key" => form.key = v.into_owned(),
            "version" => version = v.parse::<u32>().ok(),
            "comment" => form.comment = v.into_owned(),
            "edge" => form.edge.push(v.into_owned()),
            _ => {}
        }
    }
    form.version = version.ok_or_else(|| Failure::bad_request("a version number"))?;
    if form.key.is_empty() {
        return Err(Failure::bad_request("a model key"));
    }
    Ok(form)
}
