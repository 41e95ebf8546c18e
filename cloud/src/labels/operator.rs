//! Operator verdicts on alarms in the lake: what an operator found on an alarmed shot's part
//! (`defect`, `false_alarm`, `unsure`), marked from the console's alarm page, one Parquet part
//! per mark in `operator_labels/machine={m}/date={shot's UTC day}/`; the latest mark of a shot
//! wins, every mark stays in the file set and in the console's audit trail.

use crate::lake::write::{prepare_dirs, sync_dirs, write_parquet};
use crate::lake::{self, columns};
use anyhow::{Context, Result};
use polars::prelude::{Column, DataFrame, Int64Chunked, IntoColumn, NewChunkedArray, TimeUnit, TimeZone};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The dataset of operator verdicts.
pub const DATASET: &str = "operator_labels";

/// What the operator found on an alarmed shot's part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The part is defective: the alarm was right.
    Defect,
    /// The part is good: the alarm was false.
    FalseAlarm,
    /// The operator could not tell: no label (a later mark may give one).
    Unsure,
}

impl Verdict {
    /// Every verdict, in the order the form offers them.
    pub const ALL: [Verdict; 3] = [Verdict::Defect, Verdict::FalseAlarm, Verdict::Unsure];

    /// The name stored in the `verdict` column and sent by the form.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Defect => "defect",
            Verdict::FalseAlarm => "false_alarm",
            Verdict::Unsure => "unsure",
        }
    }

    /// The verdict named `text`, or the refusal naming the ones there are.
    pub fn parse(text: &str) -> Result<Verdict, String> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == text).ok_or_else(|| {
            let names: Vec<&str> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
            format!("verdict {text:?} is none of {}", names.join(", "))
        })
    }

    /// The shot's label: `Some(true)` defective, `Some(false)` good, `None` unknown.
    pub fn defective(self) -> Option<bool> {
        match self {
            Verdict::Defect => Some(true),
            Verdict::FalseAlarm => Some(false),
            Verdict::Unsure => None,
        }
    }
}

/// One operator's mark on one shot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mark {
    /// The machine of the shot.
    pub machine_id: String,
    /// Time of the shot (UTC ms): with the machine, the shot's identity in `edge_scores`.
    pub shot_ts_ms: i64,
    /// Controller shot number, when the machine has one.
    pub shot_number: Option<u64>,
    /// The mould of the shot, when known.
    pub mold: Option<String>,
    /// What was found.
    pub verdict: Verdict,
    /// The signed-in user who marked it.
    pub user: String,
    /// When it was marked (UTC ms).
    pub marked_ms: i64,
    /// Increasing stamp of the mark's file, breaking ties between marks of the same ms.
    pub stamp: u64,
}

/// Writes one mark durably (tmp, fsync, rename, folder fsync) as its own part file; `stamp` is
/// set here.
pub fn record(lake_dir: &Path, mark: &Mark) -> Result<u64> {
    anyhow::ensure!(
        !mark.machine_id.is_empty() && !mark.user.is_empty(),
        "a mark needs a machine and a user"
    );
    let day = mark.shot_ts_ms.div_euclid(86_400_000);
    let dir = lake::partition_dir(lake_dir, DATASET, &mark.machine_id, &lake::day_string(day));
    let sync = prepare_dirs(lake_dir, std::iter::once(dir.as_path()))?;
    let stamp = crate::ingest::state::now_nanos();
    let name = format!("part-console-{stamp:020}-{:08x}.parquet", rand::random::<u32>());
    let time = |name: &str, ms: i64| {
        Int64Chunked::from_iter_values(name.into(), std::iter::once(ms))
            .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
            .into_column()
    };
    let mut df = DataFrame::new(
        1,
        vec![
            Column::new("machine_id".into(), [mark.machine_id.as_str()]),
            time("ts", mark.shot_ts_ms),
            Column::new("shot_number".into(), [mark.shot_number]),
            Column::new("mold".into(), [mark.mold.as_deref()]),
            Column::new("verdict".into(), [mark.verdict.as_str()]),
            Column::new("user".into(), [mark.user.as_str()]),
            time("marked_ts", mark.marked_ms),
            Column::new("stamp".into(), [stamp]),
        ],
    )
    .context("building an operator label row")?;
    write_parquet(&dir, &name, &mut df)?;
    sync_dirs(&sync)?;
    Ok(stamp)
}

/// Every mark, oldest first; rows without a machine, shot time or known verdict are skipped.
pub fn read(lake_dir: &Path) -> Result<Vec<Mark>> {
    lake::retry_vanished(|| {
        let Some(df) = lake::read_parts(&lake::list_parts(lake_dir, DATASET)?, &[])? else {
            return Ok(Vec::new());
        };
        let (machine, ts, shot, mold, verdict, user, marked, stamp) = (
            columns::text(&df, "machine_id")?,
            columns::millis(&df, "ts")?,
            columns::count(&df, "shot_number")?,
            columns::text(&df, "mold")?,
            columns::text(&df, "verdict")?,
            columns::text(&df, "user")?,
            columns::millis(&df, "marked_ts")?,
            columns::count(&df, "stamp")?,
        );
        let mut out: Vec<Mark> = (0..df.height())
            .filter_map(|i| {
                Some(Mark {
                    machine_id: machine[i].clone()?,
                    shot_ts_ms: ts[i]?,
                    shot_number: shot[i],
                    mold: mold[i].clone(),
                    verdict: Verdict::parse(verdict[i].as_deref()?).ok()?,
                    user: user[i].clone().unwrap_or_default(),
                    marked_ms: marked[i].unwrap_or_default(),
                    stamp: stamp[i].unwrap_or_default(),
                })
            })
            .collect();
        out.sort_by_key(|m| (m.marked_ms, m.stamp));
        Ok(out)
    })
}

/// The latest mark of each shot, by (machine, shot time): a shot marked again takes the new
/// verdict.
pub fn latest(marks: Vec<Mark>) -> BTreeMap<(String, i64), Mark> {
    let mut out: BTreeMap<(String, i64), Mark> = BTreeMap::new();
    for m in marks {
        let key = (m.machine_id.clone(), m.shot_ts_ms);
        match out.get(&key) {
            Some(old) if (old.marked_ms, old.stamp) > (m.marked_ms, m.stamp) => {}
            _ => {
                out.insert(key, m);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(verdict: Verdict, marked_ms: i64) -> Mark {
        Mark {
            machine_id: "M1".into(),
            shot_ts_ms: 1_700_000_003_000,
            shot_number: Some(1003),
            mold: Some("MOLD-A".into()),
            verdict,
            user: "alice".into(),
            marked_ms,
            stamp: 0,
        }
    }

    #[test]
    fn marks_are_written_durably_and_the_latest_of_a_shot_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read(dir.path()).expect("empty").is_empty());
        record(dir.path(), &mark(Verdict::Defect, 2_000)).expect("first");
        record(dir.path(), &mark(Verdict::FalseAlarm, 3_000)).expect("second");
        // Marked in the same ms: the later file wins.
        record(dir.path(), &mark(Verdict::Unsure, 3_000)).expect("third");
        let all = read(dir.path()).expect("read");
        assert_eq!(all.len(), 3, "every mark is kept");
        assert_eq!(all[0].verdict, Verdict::Defect);
        assert!(all[1].stamp < all[2].stamp);
        let latest = latest(all);
        assert_eq!(latest.len(), 1);
        let m = &latest[&("M1".to_string(), 1_700_000_003_000)];
        assert_eq!((m.verdict, m.shot_number, m.user.as_str()), (Verdict::Unsure, Some(1003), "alice"));
        assert!(
            lake::list_parts(dir.path(), DATASET).expect("parts")[0]
                .to_string_lossy()
                .contains("operator_labels/machine=M1/date=2023-11-14/part-console-")
        );
    }

    #[test]
    fn verdicts_parse_only_their_names() {
        for v in Verdict::ALL {
            assert_eq!(Verdict::parse(v.as_str()), Ok(v));
        }
        let refused = Verdict::parse("DEFECT").expect_err("case matters");
        assert!(refused.contains("defect, false_alarm, unsure"), "{refused}");
        assert!(Verdict::parse("").is_err());
        assert_eq!(Verdict::Unsure.defective(), None);
        assert_eq!(Verdict::FalseAlarm.defective(), Some(false));
    }
}
