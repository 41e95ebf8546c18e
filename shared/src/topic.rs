//! MQTT topic layout, versioned: `moldops/v1/{site}/{edge_id}/{leaf}`.
//! See `docs/mqtt-contract.md` for QoS, retention and payloads.

/// Root of every moldops topic.
pub const ROOT: &str = "moldops/v1";

/// Leaf topics under one edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    /// Record batches, edge → cloud, QoS 1.
    Data,
    /// Edge status, retained, with a last will saying `offline`.
    Status,
    /// Live scores, edge → cloud.
    Scores,
    /// Alarms, edge → cloud.
    Alarms,
    /// Desired model state, cloud → edge, retained.
    ModelDesired,
    /// Reported model state, edge → cloud, retained.
    ModelReported,
    /// What the ingest has committed durably, cloud → edge, retained (see [`crate::ack`]).
    Ack,
}

impl Leaf {
    /// The leaf as written at the end of a topic (`data`, `model/desired`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Leaf::Data => "data",
            Leaf::Status => "status",
            Leaf::Scores => "scores",
            Leaf::Alarms => "alarms",
            Leaf::ModelDesired => "model/desired",
            Leaf::ModelReported => "model/reported",
            Leaf::Ack => "ack",
        }
    }
}

/// Topic of one leaf of one edge.
pub fn topic(site: &str, edge_id: &str, leaf: Leaf) -> String {
    format!("{ROOT}/{site}/{edge_id}/{}", leaf.as_str())
}

/// Level under a site that holds bundle chunks (not an edge id).
pub const BUNDLES: &str = "_bundles";

/// Topic of chunk `index` of the bundle whose transport bytes hash to `sha256` (retained,
/// cloud → edges; shared by every edge of the site).
pub fn bundle_chunk(site: &str, sha256: &str, index: u32) -> String {
    format!("{ROOT}/{site}/{BUNDLES}/{sha256}/{index}")
}

/// Filter matching every chunk of one bundle.
pub fn bundle_chunks(site: &str, sha256: &str) -> String {
    format!("{ROOT}/{site}/{BUNDLES}/{sha256}/+")
}

/// Filter matching one leaf of every edge of one site.
pub fn filter_site(site: &str, leaf: Leaf) -> String {
    format!("{ROOT}/{site}/+/{}", leaf.as_str())
}

/// Filter matching one leaf of every edge of every site.
pub fn filter_all(leaf: Leaf) -> String {
    format!("{ROOT}/+/+/{}", leaf.as_str())
}

/// Splits a topic into `(site, edge_id, leaf)` when it belongs to the moldops tree.
pub fn parse(topic: &str) -> Option<(&str, &str, &str)> {
    let rest = topic.strip_prefix(ROOT)?.strip_prefix('/')?;
    let mut parts = rest.splitn(3, '/');
    let site = parts.next().filter(|s| !s.is_empty())?;
    let edge = parts.next().filter(|s| !s.is_empty())?;
    let leaf = parts.next().filter(|s| !s.is_empty())?;
    Some((site, edge, leaf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_parse() {
        let t = topic("plant", "edge-1", Leaf::ModelDesired);
        assert_eq!(t, "moldops/v1/plant/edge-1/model/desired");
        assert_eq!(parse(&t), Some(("plant", "edge-1", "model/desired")));
        assert_eq!(parse("other/v1/a/b/data"), None);
        assert_eq!(filter_all(Leaf::Data), "moldops/v1/+/+/data");
        assert!(crate::limits::check_level("edge_id", "a/b").is_err());
        assert!(crate::limits::check_level("edge_id", "edge-01").is_ok());
        assert_eq!(bundle_chunk("plant", "ab12", 3), "moldops/v1/plant/_bundles/ab12/3");
        assert_eq!(bundle_chunks("plant", "ab12"), "moldops/v1/plant/_bundles/ab12/+");
        assert_eq!(filter_site("plant", Leaf::ModelReported), "moldops/v1/plant/+/model/reported");
    }
}
