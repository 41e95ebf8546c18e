//! Rollout of one bundle to a set of edges, as library calls a demo or the CLI drives:
//! [`publish`] (chunks, then canaries, then the rest once the canaries are active, stopping
//! when failures pass the threshold), [`status`] (every edge's reported state), [`rollback`]
//! (each edge back to the bundle it ran before) and the building blocks [`set_desired`] and
//! [`wait_for`].

use super::link::Link;
use anyhow::{Result, bail};
use moldops_shared::bundle::{Bundle, ModelKey};
use moldops_shared::rollback::{RollbackStatement, SignedRollback};
use moldops_shared::rollout::{
    BundleRef, DesiredModel, DesiredModels, MAX_CHUNKS, ReportedModels, RolloutState,
};
use moldops_shared::topic::{self, Leaf};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Who gets the bundle, in which order, and when to stop.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Site of the edges (the topic tree's `{site}` level).
    pub site: String,
    /// Every edge to update.
    pub edges: Vec<String>,
    /// Edges that go first (default: the first edge).
    pub canaries: Vec<String>,
    /// Failed edges tolerated (canaries included): more failed canaries stop the rollout before
    /// the other edges get the bundle; more failures after them only mark the report `stopped`
    /// (every edge has been sent the bundle by then).
    pub max_failures: usize,
    /// How long each stage waits for the edges' final states.
    pub timeout: Duration,
    /// Chunk size in bytes; raised when the bundle would need more than `MAX_CHUNKS` (65 536) chunks.
    pub chunk_bytes: u32,
}

/// Where one edge ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EdgeOutcome {
    /// The edge.
    pub edge_id: String,
    /// `None`: no final state within the timeout.
    pub state: Option<RolloutState>,
    /// The reason the edge gave with its state (say, why it refused), or that none came in time.
    pub reason: Option<String>,
}

impl EdgeOutcome {
    /// True when the edge reported the bundle active.
    pub fn ok(&self) -> bool {
        self.state == Some(RolloutState::Active)
    }
}

/// What a rollout of one bundle did, edge by edge.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutReport {
    /// The bundle's model key label (`machine` or `machine/mold`).
    pub model_key: String,
    /// The bundle as published: model id, version, sha256, size and chunking.
    pub bundle: BundleRef,
    /// Outcomes of the canary edges.
    pub canaries: Vec<EdgeOutcome>,
    /// Outcomes of the other edges; empty when the rollout stopped after the canaries.
    pub rest: Vec<EdgeOutcome>,
    /// Why the rollout stopped before reaching every edge.
    pub stopped: Option<String>,
}

impl RolloutReport {
    /// Edges, canaries included, that did not end with the bundle active.
    pub fn failures(&self) -> usize {
        self.canaries.iter().chain(&self.rest).filter(|o| !o.ok()).count()
    }
}

/// Publishes `bundle`'s chunks (retained) for the edges of `site` to fetch, in chunks of
/// `chunk_bytes` or larger (edges take at most [`MAX_CHUNKS`]); returns its key and reference.
pub async fn upload(
    link: &mut Link,
    site: &str,
    bundle: &Bundle,
    chunk_bytes: u32,
) -> Result<(ModelKey, BundleRef)> {
    let manifest = bundle.manifest_unverified()?;
    let bytes = bundle.to_bytes();
    let fewest = (bytes.len() as u64).div_ceil(u64::from(MAX_CHUNKS)).min(u64::from(u32::MAX)) as u32;
    let bref = BundleRef::describe(&manifest.model_id, manifest.version, &bytes, chunk_bytes.max(fewest));
    for (i, chunk) in bytes.chunks(bref.chunk_bytes as usize).enumerate() {
        link.publish(&topic::bundle_chunk(site, &bref.sha256, i as u32), true, chunk.to_vec()).await?;
    }
    link.sync(Duration::from_secs(60)).await?;
    Ok((manifest.model_key, bref))
}

/// Publishes `bundle` to the plan's edges: canaries first, the rest when they are active.
pub async fn publish(link: &mut Link, bundle: &Bundle, plan: &Plan) -> Result<RolloutReport> {
    let (key, bref) = upload(link, &plan.site, bundle, plan.chunk_bytes).await?;
    tracing::info!(key = %key.label(), version = bref.version, bytes = bref.bytes, chunks = bref.chunks, "bundle published");
    let canaries: Vec<String> = if plan.canaries.is_empty() {
        plan.edges.iter().take(1).cloned().collect()
    } else {
        plan.canaries.clone()
    };
    let rest: Vec<String> = plan.edges.iter().filter(|e| !canaries.contains(e)).cloned().collect();
    let desired = DesiredModel::new(key.clone(), bref.clone());
    let mut report = RolloutReport {
        model_key: key.label(),
        bundle: bref.clone(),
        canaries: vec![],
        rest: vec![],
        stopped: None,
    };
    report.canaries = deploy(link, &plan.site, &canaries, &desired, plan.timeout).await?;
    if report.failures() > plan.max_failures {
        report.stopped = Some(format!(
            "{} of {} canaries failed (max_failures {})",
            report.failures(),
            canaries.len(),
            plan.max_failures
        ));
        return Ok(report);
    }
    if !rest.is_empty() {
        report.rest = deploy(link, &plan.site, &rest, &desired, plan.timeout).await?;
        if report.failures() > plan.max_failures {
            report.stopped =
                Some(format!("{} edges failed (max_failures {})", report.failures(), plan.max_failures));
        }
    }
    Ok(report)
}

/// Sets `desired` on `edges` and waits for their final states.
async fn deploy(
    link: &mut Link,
    site: &str,
    edges: &[String],
    desired: &DesiredModel,
    timeout: Duration,
) -> Result<Vec<EdgeOutcome>> {
    let per_edge: BTreeMap<String, DesiredModel> =
        edges.iter().map(|e| (e.clone(), desired.clone())).collect();
    let issued = set_desired(link, site, &per_edge).await?;
    wait_for(link, site, &desired.model_key, &per_edge, issued, timeout).await
}

/// Sets one key's desired bundle per edge, keeping the edges' other keys (read back first).
pub async fn set_desired(
    link: &mut Link,
    site: &str,
    per_edge: &BTreeMap<String, DesiredModel>,
) -> Result<i64> {
    for edge in per_edge.keys() {
        link.subscribe(&topic::topic(site, edge, Leaf::ModelDesired)).await?;
    }
    link.sync(Duration::from_secs(30)).await?;
    let now = chrono::Utc::now().timestamp_millis();
    for (edge, desired) in per_edge {
        let t = topic::topic(site, edge, Leaf::ModelDesired);
        let mut state: DesiredModels =
            link.latest(&t).and_then(|p| serde_json::from_slice(p).ok()).unwrap_or_default();
        state.set(desired.clone());
        state.issued_at_ms = now;
        link.publish(&t, true, serde_json::to_vec(&state)?).await?;
    }
    link.sync(Duration::from_secs(30)).await?;
    Ok(now)
}

/// Waits until every edge reports a final state for its desired bundle of `key`, in answer
/// to the desired state issued at `issued_ms` (an edge echoes it; a report of an earlier
/// desired state for the same bundle — say, refused before — does not count).
pub async fn wait_for(
    link: &mut Link,
    site: &str,
    key: &ModelKey,
    per_edge: &BTreeMap<String, DesiredModel>,
    issued_ms: i64,
    timeout: Duration,
) -> Result<Vec<EdgeOutcome>> {
    link.subscribe(&topic::filter_site(site, Leaf::ModelReported)).await?;
    link.sync(Duration::from_secs(30)).await?;
    let mut done: BTreeMap<String, EdgeOutcome> = BTreeMap::new();
    let label = key.label();
    // Reports already received on this connection (retained ones included), then new ones.
    let known: Vec<(String, Vec<u8>)> = link.all_latest().map(|(t, p)| (t.to_string(), p.to_vec())).collect();
    for (t, payload) in known {
        consider(&t, &payload, (site, &label, issued_ms), per_edge, &mut done);
    }
    let end = Instant::now() + timeout;
    while done.len() < per_edge.len() {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let Some((t, payload)) = link.next(left).await else { break };
        consider(&t, &payload, (site, &label, issued_ms), per_edge, &mut done);
    }
    Ok(per_edge
        .keys()
        .map(|e| {
            done.remove(e).unwrap_or(EdgeOutcome {
                edge_id: e.clone(),
                state: None,
                reason: Some(format!("no final state within {timeout:?}")),
            })
        })
        .collect())
}

/// Records an edge's outcome when `payload` is its final report for its desired bundle.
fn consider(
    t: &str,
    payload: &[u8],
    (site, label, issued_ms): (&str, &str, i64),
    per_edge: &BTreeMap<String, DesiredModel>,
    done: &mut BTreeMap<String, EdgeOutcome>,
) {
    let Some((s, edge, leaf)) = topic::parse(t) else { return };
    if s != site || leaf != Leaf::ModelReported.as_str() {
        return;
    }
    let (Some(want), Ok(r)) = (per_edge.get(edge), serde_json::from_slice::<ReportedModels>(payload)) else {
        return;
    };
    let Some(m) = r.models.get(label) else { return };
    let same = m.target.as_ref().is_some_and(|t| t.sha256 == want.bundle.sha256);
    // Edges from before the echo report 0: their answer is taken as it is.
    let current = m.desired_at_ms == 0 || m.desired_at_ms >= issued_ms;
    if same && current && m.state.is_final() && !done.contains_key(edge) {
        tracing::info!(edge, state = m.state.as_str(), reason = ?m.reason, "edge reported");
        let outcome =
            EdgeOutcome { edge_id: edge.to_string(), state: Some(m.state), reason: m.reason.clone() };
        done.insert(edge.to_string(), outcome);
    }
}

/// The reported state of every edge of `site` (only `edges` when given).
pub async fn status(link: &mut Link, site: &str, edges: &[String]) -> Result<Vec<ReportedModels>> {
    link.subscribe(&topic::filter_site(site, Leaf::ModelReported)).await?;
    link.sync(Duration::from_secs(30)).await?;
    let mut by_edge: BTreeMap<String, ReportedModels> = BTreeMap::new();
    for (t, payload) in link.all_latest() {
        let Some((s, edge, leaf)) = topic::parse(t) else { continue };
        if s != site || leaf != Leaf::ModelReported.as_str() {
            continue;
        }
        if !edges.is_empty() && !edges.iter().any(|e| e == edge) {
            continue;
        }
        if let Ok(r) = serde_json::from_slice::<ReportedModels>(payload) {
            by_edge.insert(edge.to_string(), r);
        }
    }
    Ok(by_edge.into_values().collect())
}

/// Signs rollback statements with the registry key, valid for a while.
pub struct RollbackSigner {
    /// The registry's private Ed25519 seed (its signing key).
    pub seed: [u8; 32],
    /// How long each statement stays valid after it is signed.
    pub valid_for: Duration,
}

impl RollbackSigner {
    /// A statement letting an edge whose newest version is `newest` go back to `to`.
    pub fn sign(&self, key: &ModelKey, to: u32, newest: u32) -> SignedRollback {
        let expires = chrono::Utc::now().timestamp_millis().saturating_add(self.valid_for.as_millis() as i64);
        let statement = RollbackStatement {
            model_key: key.clone(),
            to_version: to,
            replaces_up_to: newest,
            expires_at_ms: expires,
        };
        SignedRollback::sign(&statement, &self.seed)
    }
}

/// Sends every edge of `edges` (every edge reporting `key` when empty) back to the bundle it
/// ran before the current one, with a rollback statement signed for it, and waits for them to
/// report it active.
pub async fn rollback(
    link: &mut Link,
    site: &str,
    key: &ModelKey,
    edges: &[String],
    timeout: Duration,
    signer: &RollbackSigner,
) -> Result<Vec<EdgeOutcome>> {
    let label = key.label();
    let mut per_edge = BTreeMap::new();
    let mut problems = Vec::new();
    for r in status(link, site, edges).await? {
        let Some(m) = r.models.get(&label) else { continue };
        match m.previous.clone() {
            Some(prev) => {
                // The edge refuses an older version without a statement covering its newest.
                let newest = m.newest.max(m.active.as_ref().map_or(0, |a| a.version));
                let rollback = signer.sign(key, prev.version, newest);
                per_edge.insert(
                    r.edge_id.clone(),
                    DesiredModel { model_key: key.clone(), bundle: prev, rollback: Some(rollback) },
                );
            }
            None => problems.push(format!("{} has no previous version of {label}", r.edge_id)),
        }
    }
    for e in edges {
        if !per_edge.contains_key(e) && !problems.iter().any(|p| p.starts_with(e.as_str())) {
            problems.push(format!("{e} reports nothing for {label}"));
        }
    }
    if per_edge.is_empty() {
        bail!("nothing to roll back: {}", problems.join("; "));
    }
    for p in &problems {
        tracing::warn!("{p}");
    }
    let issued = set_desired(link, site, &per_edge).await?;
    wait_for(link, site, key, &per_edge, issued, timeout).await
}
