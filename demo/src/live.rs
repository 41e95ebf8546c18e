//! The demo's closing measurement: listen to the edge's `scores` topic while the plant keeps
//! producing, then hold every scored shot against the simulator's quality log (its ground
//! truth) — alarms on defective shots are hits, alarms on good shots false alarms.

use anyhow::Result;
use moldops_cloud::rollout::Link;
use moldops_common::mqtt::BrokerConfig;
use moldops_shared::rollout::ScoreMessage;
use moldops_shared::topic::{Leaf, filter_all};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Scores received, by (machine, shot number); a replayed message counts once.
#[derive(Debug, Default)]
pub struct Scores {
    pub by_shot: BTreeMap<(String, u64), ScoreMessage>,
}

/// Subscribes to every edge's scores, then collects for `duration`, calling `tick` about
/// every half second with the count so far (for the progress line).
pub async fn collect(
    broker: &BrokerConfig,
    base: &Path,
    duration: Duration,
    mut tick: impl FnMut(usize, usize),
) -> Result<Scores> {
    let mut link = Link::connect(broker, base, "moldops-demo-scores").await?;
    link.subscribe(&filter_all(Leaf::Scores)).await?;
    let mut out = Scores::default();
    let end = Instant::now() + duration;
    let mut alarms = 0;
    while Instant::now() < end {
        let wait = end.saturating_duration_since(Instant::now()).min(Duration::from_millis(500));
        if let Some((_, payload)) = link.next(wait).await
            && let Ok(m) = serde_json::from_slice::<ScoreMessage>(&payload)
            && let Some(n) = m.shot_number
        {
            alarms += usize::from(m.alarm);
            out.by_shot.entry((m.machine_id.clone(), n)).or_insert(m);
        }
        tick(out.by_shot.len(), alarms);
    }
    link.close().await;
    Ok(out)
}

/// Live detection against the ground truth.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Detection {
    /// Scored shots found in the quality log.
    pub scored: u64,
    pub defective: u64,
    pub alarms: u64,
    pub true_alarms: u64,
    pub false_alarms: u64,
    pub missed: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Defect kinds of the defective shots: (caught, total).
    pub by_defect: BTreeMap<String, (u64, u64)>,
    /// Model versions that scored, by model key.
    pub models: BTreeMap<String, u32>,
}

/// Compares the scores with the quality log (JSON lines of machine_id, shot_number, label,
/// defect).
pub fn judge(scores: &Scores, quality_log: &Path) -> Result<Detection> {
    let text = std::fs::read_to_string(quality_log)?;
    let mut truth: BTreeMap<(String, u64), (bool, String)> = BTreeMap::new();
    for v in text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
        let (Some(m), Some(n)) = (v["machine_id"].as_str(), v["shot_number"].as_u64()) else { continue };
        let defect = v["defect"].as_str().unwrap_or("defect").to_string();
        truth.insert((m.to_string(), n), (v["label"].as_f64() == Some(1.0), defect));
    }
    let mut d = Detection::default();
    for (shot, msg) in &scores.by_shot {
        let Some((bad, defect)) = truth.get(shot) else { continue };
        d.scored += 1;
        d.models.insert(msg.model_key.clone(), msg.version);
        d.alarms += u64::from(msg.alarm);
        match (msg.alarm, *bad) {
            (true, true) => d.true_alarms += 1,
            (true, false) => d.false_alarms += 1,
            (false, true) => d.missed += 1,
            (false, false) => {}
        }
        if *bad {
            d.defective += 1;
            let e = d.by_defect.entry(defect.clone()).or_default();
            e.0 += u64::from(msg.alarm);
            e.1 += 1;
        }
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    d.precision = ratio(d.true_alarms, d.alarms);
    d.recall = ratio(d.true_alarms, d.defective);
    d.f1 = if d.precision + d.recall > 0.0 {
        2.0 * d.precision * d.recall / (d.precision + d.recall)
    } else {
        0.0
    };
    Ok(d)
}

impl Detection {
    /// A few lines for the terminal.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "live scoring: {} shots scored ({} defective) · {} alarms: {} true, {} false · {} defects missed\n\
             precision {:.2} · recall {:.2} · F1 {:.2}\n",
            self.scored,
            self.defective,
            self.alarms,
            self.true_alarms,
            self.false_alarms,
            self.missed,
            self.precision,
            self.recall,
            self.f1
        );
        for (defect, (caught, total)) in &self.by_defect {
            s.push_str(&format!("  {defect:<14} caught {caught} of {total}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(machine: &str, shot: u64, alarm: bool) -> ScoreMessage {
        ScoreMessage {
            edge_id: "e".into(),
            machine_id: machine.into(),
            mold: None,
            shot_number: Some(shot),
            seq: shot,
            ts_ms: 0,
            model_key: machine.into(),
            model_id: "x".into(),
            version: 1,
            bundle_sha256: String::new(),
            score: 0.0,
            threshold: 1.0,
            alarm,
            contributions: Vec::new(),
        }
    }

    #[test]
    fn alarms_are_judged_against_the_quality_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("q.jsonl");
        let lines = [
            r#"{"machine_id":"m1","shot_number":1,"label":0,"defect":"none"}"#,
            r#"{"machine_id":"m1","shot_number":2,"label":1,"defect":"flash"}"#,
            r#"{"machine_id":"m1","shot_number":3,"label":1,"defect":"short_shot"}"#,
            r#"{"machine_id":"m1","shot_number":4,"label":0,"defect":"none"}"#,
        ];
        std::fs::write(&log, lines.join("\n")).expect("write");
        let mut s = Scores::default();
        for (n, alarm) in [(1, true), (2, true), (3, false), (4, false), (9, true)] {
            s.by_shot.insert(("m1".into(), n), msg("m1", n, alarm));
        }
        let d = judge(&s, &log).expect("judge");
        assert_eq!((d.scored, d.defective, d.alarms), (4, 2, 2), "shot 9 is not in the log");
        assert_eq!((d.true_alarms, d.false_alarms, d.missed), (1, 1, 1));
        assert_eq!((d.precision, d.recall), (0.5, 0.5));
        assert_eq!(d.by_defect["flash"], (1, 1));
        assert_eq!(d.by_defect["short_shot"], (0, 1));
    }
}
