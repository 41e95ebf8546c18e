//! Turns a node map into this server's node ids on every connect: `nsu=` namespace URIs and
//! browse-path aliases are looked up in the server's namespace array, and browse paths are
//! translated with TranslateBrowsePathsToNodeIds from the device's root node, in batches the
//! server's operation limit allows. Every node must resolve: one that does not fails the
//! connect with its name, path and status code, and the next attempt resolves afresh.

use super::browse_path::{BrowsePath, PathError};
use super::config::{NodeProfile, OpcUaConfig};
use super::node::{NodeSpec, status_text};
use anyhow::{Result, anyhow, bail};
use opcua::client::Session;
use opcua::types::{
    BrowsePath as UaBrowsePath, BrowsePathResult, DataValue, ExpandedNodeId, NodeId, ObjectId, ReadValueId,
    StatusCode, TimestampsToReturn, VariableId, Variant,
};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::timeout;

/// Browse paths per TranslateBrowsePathsToNodeIds request when the server states no lower limit.
pub const BATCH: usize = 100;

/// Most unresolved nodes named in one connect error (the rest are counted).
const MAX_NAMED: usize = 10;

/// What the server says about itself that resolution needs.
struct ServerFacts {
    namespaces: Vec<String>,
    batch: usize,
}

/// The node id of every node of `profile` on this server, in node-map order.
pub async fn node_ids(
    session: &Session,
    ua: &OpcUaConfig,
    profile: &NodeProfile,
    limit: Duration,
) -> Result<Vec<NodeId>> {
    let specs: Vec<NodeSpec> = profile
        .nodes
        .iter()
        .map(|n| NodeSpec::parse(&n.node).map_err(|e| anyhow!("node {} ({}): {e}", n.node, n.name)))
        .collect::<Result<_>>()?;
    let root = ua.root.as_deref().map(|r| NodeSpec::parse(r).map(|s| (r, s))).transpose()?;
    let has_path = |s: &NodeSpec| matches!(s, NodeSpec::Path(_));
    let paths = specs.iter().any(has_path) || root.as_ref().is_some_and(|(_, s)| has_path(s));
    let uris = specs.iter().any(|s| matches!(s, NodeSpec::Id(r) if r.needs_namespaces()))
        || root.as_ref().is_some_and(|(_, s)| matches!(s, NodeSpec::Id(r) if r.needs_namespaces()));
    let facts = if paths || uris {
        server_facts(session, paths, limit).await?
    } else {
        ServerFacts { namespaces: vec![], batch: BATCH }
    };
    let aliases = ua.aliases();
    let index = |alias: &str| alias_index(&aliases, &facts.namespaces, alias);

    let mut ids: Vec<Option<NodeId>> = vec![None; specs.len()];
    let mut wanted = Vec::new();
    for (i, (spec, n)) in specs.iter().zip(&profile.nodes).enumerate() {
        match spec {
            NodeSpec::Id(r) => {
                ids[i] = Some(
                    r.resolve(&facts.namespaces).map_err(|e| anyhow!("node {} ({}): {e}", n.node, n.name))?,
                );
            }
            NodeSpec::Path(p) => wanted.push((i, p)),
        }
    }
    if wanted.is_empty() {
        return Ok(ids.into_iter().flatten().collect());
    }

    let start = match &root {
        None => NodeId::from(ObjectId::ObjectsFolder),
        Some((_, NodeSpec::Id(r))) => r.resolve(&facts.namespaces).map_err(|e| anyhow!("opcua.root: {e}"))?,
        Some((text, NodeSpec::Path(p))) => {
            let objects = NodeId::from(ObjectId::ObjectsFolder);
            let request = browse_path(&objects, p, &index).map_err(|e| anyhow!("opcua.root {text}: {e}"))?;
            let results = translate(session, &[request], limit).await?;
            target(results.first(), &facts.namespaces)
                .map_err(|e| anyhow!("opcua.root {text}: {e} (browsing from the Objects folder i=85)"))?
        }
    };

    let mut failed = Vec::new();
    for chunk in wanted.chunks(facts.batch) {
        let mut requests = Vec::with_capacity(chunk.len());
        for &(i, p) in chunk {
            let n = &profile.nodes[i];
            requests.push(
                browse_path(&start, p, &index).map_err(|e| anyhow!("node {} ({}): {e}", n.node, n.name))?,
            );
        }
        let results = translate(session, &requests, limit).await?;
        if results.len() != requests.len() {
            bail!(
                "TranslateBrowsePathsToNodeIds: {} results for {} browse paths",
                results.len(),
                requests.len()
            );
        }
        for (&(i, _), r) in chunk.iter().zip(&results) {
            match target(Some(r), &facts.namespaces) {
                Ok(id) => ids[i] = Some(id),
                Err(e) => {
                    failed.push(format!("node {} ({}): {e}", profile.nodes[i].node, profile.nodes[i].name))
                }
            }
        }
    }
    if !failed.is_empty() {
        let more = failed.len().saturating_sub(MAX_NAMED);
        failed.truncate(MAX_NAMED);
        let more = if more > 0 { format!("; and {more} more") } else { String::new() };
        bail!("browse paths from {start} not resolved: {}{more}", failed.join("; "));
    }
    tracing::debug!(paths = wanted.len(), %start, "browse paths resolved");
    Ok(ids.into_iter().flatten().collect())
}

/// The namespace array, and the batch size for TranslateBrowsePathsToNodeIds (`limits`),
/// read in one request.
async fn server_facts(session: &Session, limits: bool, limit: Duration) -> Result<ServerFacts> {
    let mut read = vec![ReadValueId::from(NodeId::from(VariableId::Server_NamespaceArray))];
    if limits {
        let max =
            VariableId::Server_ServerCapabilities_OperationLimits_MaxNodesPerTranslateBrowsePathsToNodeIds;
        read.push(ReadValueId::from(NodeId::from(max)));
    }
    let values = timeout(limit, session.read(&read, TimestampsToReturn::Neither, 0.0))
        .await
        .map_err(|_| anyhow!("namespace array: no answer within {limit:?}"))?
        .map_err(|e| anyhow!("namespace array: {e}"))?;
    let namespaces = match values.first().and_then(|d| d.value.as_ref()) {
        Some(Variant::Array(a)) => a
            .values
            .iter()
            .map(|v| match v {
                Variant::String(s) => s.value().clone().unwrap_or_default(),
                _ => String::new(),
            })
            .collect(),
        _ => vec![],
    };
    Ok(ServerFacts { namespaces, batch: batch(values.get(1)) })
}

/// Browse paths per request: the server's MaxNodesPerTranslateBrowsePathsToNodeIds when it
/// states one below [`BATCH`] (0, absent or unreadable: no limit stated).
fn batch(max: Option<&DataValue>) -> usize {
    let stated = match max.filter(|d| d.status.is_none_or(|s| s.is_good())).and_then(|d| d.value.as_ref()) {
        Some(Variant::UInt32(n)) => usize::try_from(*n).unwrap_or(BATCH),
        _ => 0,
    };
    if stated == 0 { BATCH } else { stated.min(BATCH) }
}

/// The namespace index of `alias` on a server with namespace array `namespaces`.
fn alias_index(
    aliases: &BTreeMap<String, String>,
    namespaces: &[String],
    alias: &str,
) -> Result<u16, PathError> {
    let uri = aliases.get(alias).ok_or_else(|| PathError::UnknownAlias { alias: alias.to_string() })?;
    namespaces
        .iter()
        .position(|u| u == uri)
        .and_then(|i| u16::try_from(i).ok())
        .ok_or_else(|| PathError::UnknownNamespace { alias: alias.to_string(), uri: uri.clone() })
}

fn browse_path(
    start: &NodeId,
    path: &BrowsePath,
    index: &impl Fn(&str) -> Result<u16, PathError>,
) -> Result<UaBrowsePath, PathError> {
    Ok(UaBrowsePath { starting_node: start.clone(), relative_path: path.to_relative_path(index)? })
}

async fn translate(
    session: &Session,
    paths: &[UaBrowsePath],
    limit: Duration,
) -> Result<Vec<BrowsePathResult>> {
    timeout(limit, session.translate_browse_paths_to_node_ids(paths))
        .await
        .map_err(|_| anyhow!("TranslateBrowsePathsToNodeIds: no answer within {limit:?}"))?
        .map_err(|e| anyhow!("TranslateBrowsePathsToNodeIds: {}", status_text(e.status())))
}

/// The one node a browse path leads to. No match, a match on another server, a partial
/// match and more than one distinct node are errors (an ambiguous path could read the wrong
/// variable: make it precise with a namespace alias or a reference type).
fn target(result: Option<&BrowsePathResult>, namespaces: &[String]) -> Result<NodeId, String> {
    let Some(r) = result else { return Err("the server answered no result".into()) };
    if r.status_code.is_bad() {
        return Err(status_text(r.status_code));
    }
    let targets = r.targets.as_deref().unwrap_or_default();
    let mut found: Vec<NodeId> = Vec::new();
    for t in targets.iter().filter(|t| t.remaining_path_index == u32::MAX) {
        let id = local(&t.target_id, namespaces)?;
        if !found.contains(&id) {
            found.push(id);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 if !targets.is_empty() => {
            Err("the path continues on another server (remaining path index set), which is not followed"
                .into())
        }
        0 => Err(status_text(StatusCode::BadNoMatch)),
        n => {
            let ids: Vec<String> = found.iter().take(4).map(ToString::to_string).collect();
            Err(format!(
                "ambiguous: {n} nodes match ({}{}); name the namespace or the reference type",
                ids.join(", "),
                if n > 4 { ", …" } else { "" }
            ))
        }
    }
}

/// A target on this server as a plain node id (its namespace URI, when given, looked up).
fn local(id: &ExpandedNodeId, namespaces: &[String]) -> Result<NodeId, String> {
    if id.server_index != 0 {
        return Err(format!(
            "the path leads to server {} of the server array, which is not followed",
            id.server_index
        ));
    }
    let Some(uri) = id.namespace_uri.value().as_deref().filter(|u| !u.is_empty()) else {
        return Ok(id.node_id.clone());
    };
    let ns =
        namespaces.iter().position(|u| u == uri).and_then(|i| u16::try_from(i).ok()).ok_or_else(|| {
            format!("the target's namespace {uri:?} is not in the server's namespace array")
        })?;
    Ok(NodeId { namespace: ns, identifier: id.node_id.identifier.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opcua::types::BrowsePathTarget;

    fn result(status: StatusCode, targets: Vec<(ExpandedNodeId, u32)>) -> BrowsePathResult {
        let targets = targets
            .into_iter()
            .map(|(target_id, remaining_path_index)| BrowsePathTarget { target_id, remaining_path_index });
        BrowsePathResult { status_code: status, targets: Some(targets.collect()) }
    }

    #[test]
    fn one_target_resolves_and_the_others_say_why_not() {
        let ns = ["http://opcfoundation.org/UA/".to_string(), "urn:a".into(), "urn:vendor".into()];
        let a = ExpandedNodeId::from(NodeId::new(2, 7u32));
        let ok = result(StatusCode::Good, vec![(a.clone(), u32::MAX), (a.clone(), u32::MAX)]);
        assert_eq!(target(Some(&ok), &ns), Ok(NodeId::new(2, 7u32)), "the same node twice is one");
        let mut by_uri = ExpandedNodeId::from(NodeId::new(0, "X"));
        by_uri.namespace_uri = "urn:vendor".into();
        let ok = result(StatusCode::Good, vec![(by_uri, u32::MAX)]);
        assert_eq!(target(Some(&ok), &ns), Ok(NodeId::new(2, "X")));

        let none = result(StatusCode::BadNoMatch, vec![]);
        assert!(target(Some(&none), &ns).is_err_and(|e| e.starts_with("BadNoMatch")));
        let empty = result(StatusCode::Good, vec![]);
        assert!(target(Some(&empty), &ns).is_err_and(|e| e.starts_with("BadNoMatch")));
        let two = result(StatusCode::Good, vec![(a, u32::MAX), (NodeId::new(2, 8u32).into(), u32::MAX)]);
        assert!(target(Some(&two), &ns).is_err_and(|e| e.contains("ambiguous: 2 nodes")));
        let partial = result(StatusCode::Good, vec![(NodeId::new(2, 9u32).into(), 1)]);
        assert!(target(Some(&partial), &ns).is_err_and(|e| e.contains("another server")));
        let mut remote = ExpandedNodeId::from(NodeId::new(2, 9u32));
        remote.server_index = 3;
        let remote = result(StatusCode::Good, vec![(remote, u32::MAX)]);
        assert!(target(Some(&remote), &ns).is_err_and(|e| e.contains("server 3")));
        assert!(target(None, &ns).is_err());
    }

    #[test]
    fn the_batch_follows_the_servers_limit() {
        assert_eq!(batch(None), BATCH);
        assert_eq!(batch(Some(&DataValue::from(Variant::UInt32(0)))), BATCH);
        assert_eq!(batch(Some(&DataValue::from(Variant::UInt32(7)))), 7);
        assert_eq!(batch(Some(&DataValue::from(Variant::UInt32(100_000)))), BATCH);
        assert_eq!(batch(Some(&DataValue::from((Variant::Empty, StatusCode::BadNodeIdUnknown)))), BATCH);
    }

    #[test]
    fn aliases_map_to_namespace_indexes() {
        let aliases =
            BTreeMap::from([("imm".to_string(), "urn:imm".to_string()), ("x".into(), "urn:x".into())]);
        let ns = ["http://opcfoundation.org/UA/".to_string(), "urn:s".into(), "urn:imm".into()];
        assert_eq!(alias_index(&aliases, &ns, "imm"), Ok(2));
        assert_eq!(
            alias_index(&aliases, &ns, "x"),
            Err(PathError::UnknownNamespace { alias: "x".into(), uri: "urn:x".into() })
        );
        assert_eq!(alias_index(&aliases, &ns, "y"), Err(PathError::UnknownAlias { alias: "y".into() }));
    }
}
