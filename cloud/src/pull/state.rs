//! A source's pull state, `lake/_pull/{source}.json`: the watermark (newest time pulled), the
//! identities of the rows pulled inside the look-back window (so a late row is taken once and
//! a row read again is not), the next `seq` of the source's lake stream, and the page being
//! committed.
//!
//! Exactly once, whatever the source does between two reads: a page's new rows are given their
//! `seq`s and written into this file *with* the new watermark (one atomic write, the commit
//! point), then committed to the lake, then the file is written again without them. A pull
//! killed in between finds the page here and commits it again (the lake dedups by `seq`); one
//! killed before never moved its watermark and reads the page again. A state file that is
//! missing while the lake holds the source's rows, or that is corrupt, stops the pull with what
//! to do: guessing could lose or duplicate rows.

use super::page::SourceTime;
use crate::import::quarantine::BadRow;
use crate::lake;
use anyhow::{Context, Result, bail};
use moldops_shared::Record;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Folder of the pull states inside the lake.
pub const PULL_DIR: &str = "_pull";
/// The state file format written.
const VERSION: u32 = 1;

/// A refused row waiting in a page (a [`BadRow`] that can be stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refused {
    /// The row's `seq`.
    pub seq: u64,
    /// The column to blame, if one is.
    pub column: Option<String>,
    /// Why.
    pub reason: String,
    /// The row's cells as text.
    pub text: String,
}

impl From<Refused> for BadRow {
    fn from(r: Refused) -> BadRow {
        BadRow {
            line: usize::try_from(r.seq).unwrap_or(usize::MAX),
            column: r.column,
            reason: r.reason,
            text: r.text,
        }
    }
}

/// A page decided but not yet (known to be) in the lake.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// Records to commit.
    pub records: Vec<Record>,
    /// Rows to quarantine.
    pub refused: Vec<Refused>,
}

/// Running totals of a source over all its pulls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Rows given a `seq` (records and refused rows).
    pub rows: u64,
    /// Rows refused into the quarantine.
    pub quarantined: u64,
    /// Rows of machines the profile excludes.
    pub excluded: u64,
    /// Rows without a usable time, as the last pull counted them (never pulled).
    #[serde(default)]
    pub without_time: u64,
    /// Rows stamped more than a day ahead, as the last pull met them (not pulled).
    #[serde(default)]
    pub in_future: u64,
}

/// One source's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullState {
    /// Format version.
    pub version: u32,
    /// The source's name.
    pub source: String,
    /// The lake stream's epoch: a fresh state starts a new one, so `seq`s never collide with
    /// those of an earlier state.
    pub epoch: String,
    /// The newest time pulled.
    pub watermark: Option<SourceTime>,
    /// The `seq` the next new row gets.
    pub next_seq: u64,
    /// The columns met so far, in the order first met: pages are aligned to it by name.
    #[serde(default)]
    pub header: Vec<String>,
    /// Value columns, fixed by the first page when the profile names none.
    pub value_columns: Option<Vec<String>>,
    /// The `key` the identities were made with (a different key cannot recognise them).
    #[serde(default)]
    pub key: Vec<String>,
    /// The oldest time whose identities are kept: no pull reads before it again (so raising
    /// `look_back_s` never re-reads rows whose identities are gone).
    #[serde(default)]
    pub recent_from: Option<SourceTime>,
    /// `(time value, identity)` of the rows pulled at or after `recent_from`.
    pub recent: Vec<(i64, u64)>,
    /// The page being committed.
    pub pending: Option<Pending>,
    /// Totals over every pull.
    pub totals: Totals,
    /// Identities of `recent`, for lookups.
    #[serde(skip)]
    seen: HashSet<u64>,
}

/// Where a source's state lives.
pub fn path(lake_dir: &Path, source: &str) -> PathBuf {
    lake_dir.join(PULL_DIR).join(format!("{}.json", lake::escape(source)))
}

impl PullState {
    /// A state for a source never pulled (or restarted): a new epoch, nothing pulled.
    pub fn fresh(source: &str) -> PullState {
        PullState {
            version: VERSION,
            source: source.into(),
            epoch: format!("{}", crate::ingest::state::now_nanos()),
            watermark: None,
            next_seq: 0,
            header: Vec::new(),
            value_columns: None,
            key: Vec::new(),
            recent_from: None,
            recent: Vec::new(),
            pending: None,
            totals: Totals::default(),
            seen: HashSet::new(),
        }
    }

    /// Reads the state of `source`; `None` when there is none. A file that cannot be read
    /// back is an error naming it.
    pub fn load(lake_dir: &Path, source: &str) -> Result<Option<PullState>> {
        let path = path(lake_dir, source);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut state: PullState = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "the pull state {} is corrupt; run with --source {source} --restart to pull the \
                 source again from its first row (rows the lake already holds come again)",
                path.display()
            )
        })?;
        if state.version != VERSION || state.source != source {
            bail!("the pull state {} is of version {} for {:?}", path.display(), state.version, state.source);
        }
        state.seen = state.recent.iter().map(|(_, id)| *id).collect();
        Ok(Some(state))
    }

    /// Writes the state atomically (the commit point of a page).
    pub fn save(&self, lake_dir: &Path) -> Result<()> {
        let path = path(lake_dir, &self.source);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let bytes = serde_json::to_vec(self).context("encoding the pull state")?;
        moldops_common::fs::write_atomic(&path, &bytes)
    }

    /// True when a row of this identity was pulled inside the window.
    pub fn seen(&self, id: u64) -> bool {
        self.seen.contains(&id)
    }

    /// Remembers a pulled row.
    pub fn remember(&mut self, time: SourceTime, id: u64) {
        if self.seen.insert(id) {
            self.recent.push((time.value(), id));
        }
    }

    /// Moves the watermark to `time` if newer, and forgets identities older than `from` (the
    /// next pull's lower bound: rows before it are never read again).
    pub fn advance(&mut self, time: SourceTime, from: SourceTime) {
        if self.watermark.is_none_or(|w| time > w) {
            self.watermark = Some(time);
        }
        let from = self.recent_from.map_or(from, |f| f.max(from));
        self.recent_from = Some(from);
        let before = self.recent.len();
        self.recent.retain(|(t, _)| *t >= from.value());
        if self.recent.len() != before {
            self.seen = self.recent.iter().map(|(_, id)| *id).collect();
        }
    }
}

/// What `lake summary` and the API show of one source's pulls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullSummary {
    /// The source's name.
    pub source: String,
    /// The newest time pulled, as the profile reads it.
    pub watermark: Option<String>,
    /// Rows taken over every pull (records and refused rows).
    pub rows: u64,
    /// Rows refused into the quarantine.
    pub quarantined: u64,
    /// Rows of machines the profile excludes.
    pub excluded: u64,
    /// Rows without a usable time at the last pull (never pulled).
    pub without_time: u64,
    /// Rows stamped more than a day ahead at the last pull (not pulled).
    pub in_future: u64,
    /// A page decided but not yet known to be in the lake (the next pull commits it).
    pub page_pending: bool,
    /// Why the state file could not be read, if it could not.
    pub error: Option<String>,
}

/// The pull states of a lake, sorted by file name; an unreadable one is listed with why.
pub fn summaries(lake_dir: &Path) -> Result<Vec<PullSummary>> {
    let mut out = Vec::new();
    for entry in lake::read_dir(&lake_dir.join(PULL_DIR))? {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let parsed = std::fs::read(&path)
            .map_err(anyhow::Error::from)
            .and_then(|b| serde_json::from_slice::<PullState>(&b).map_err(anyhow::Error::from));
        out.push(match parsed {
            Ok(s) => PullSummary {
                source: s.source,
                watermark: s.watermark.map(SourceTime::cell),
                rows: s.totals.rows,
                quarantined: s.totals.quarantined,
                excluded: s.totals.excluded,
                without_time: s.totals.without_time,
                in_future: s.totals.in_future,
                page_pending: s.pending.is_some(),
                error: None,
            },
            Err(e) => PullSummary {
                source: name,
                watermark: None,
                rows: 0,
                quarantined: 0,
                excluded: 0,
                without_time: 0,
                in_future: 0,
                page_pending: false,
                error: Some(format!("{e:#}")),
            },
        });
    }
    out.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(out)
}

/// The identity of a row: its time and its key cells (every non-NULL cell when no key is
/// given) as `(column, text)` pairs sorted by column — so neither the order of the columns in
/// an answer nor a column added later changes it — hashed with SHA-256 to 64 bits, stable
/// across versions and machines.
pub fn identity(time: SourceTime, cells: &[(&str, &Option<String>)]) -> u64 {
    use sha2::{Digest, Sha256};
    let mut pairs: Vec<(&str, &str)> =
        cells.iter().filter_map(|(name, c)| c.as_deref().map(|text| (*name, text))).collect();
    pairs.sort_unstable();
    let mut h = Sha256::new();
    h.update(time.value().to_le_bytes());
    for (name, text) in pairs {
        for part in [name, text] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_forgets_what_the_window_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(PullState::load(dir.path(), "s").expect("none").is_none());
        let mut s = PullState::fresh("s");
        let (a, b) = (
            identity(SourceTime::Number(1), &[("c", &Some("x".into()))]),
            identity(SourceTime::Number(5), &[]),
        );
        s.remember(SourceTime::Number(1), a);
        s.remember(SourceTime::Number(5), b);
        s.advance(SourceTime::Number(5), SourceTime::Number(3));
        assert!(!s.seen(a) && s.seen(b));
        s.save(dir.path()).expect("save");
        let back = PullState::load(dir.path(), "s").expect("load").expect("some");
        assert_eq!(back, s);
        assert!(back.seen(b));

        let listed = summaries(dir.path()).expect("summaries");
        assert_eq!(
            (listed.len(), listed[0].watermark.as_deref(), listed[0].error.is_none()),
            (1, Some("5"), true)
        );

        std::fs::write(path(dir.path(), "s"), b"{\"version\":1,").expect("truncate");
        assert!(
            summaries(dir.path()).expect("summaries")[0].error.is_some(),
            "a corrupt state is listed as such"
        );
        let e = format!("{:#}", PullState::load(dir.path(), "s").expect_err("corrupt"));
        assert!(e.contains("corrupt") && e.contains("--restart"), "{e}");
    }

    #[test]
    fn identities_follow_names_and_values_not_column_order() {
        let t = SourceTime::Utc(7);
        let (a, b, none) = (Some("a".to_string()), Some("b".to_string()), None);
        let ab = identity(t, &[("x", &a), ("y", &b)]);
        assert_eq!(ab, identity(t, &[("y", &b), ("x", &a)]), "column order");
        assert_eq!(ab, identity(t, &[("x", &a), ("z", &none), ("y", &b)]), "a NULL column added");
        assert_ne!(ab, identity(t, &[("x", &Some("ab".into())), ("y", &Some(String::new()))]));
        assert_ne!(ab, identity(t, &[("x", &b), ("y", &a)]));
        assert_ne!(ab, identity(SourceTime::Utc(8), &[("x", &a), ("y", &b)]));
        assert_ne!(identity(t, &[("x", &none)]), identity(t, &[("x", &Some(String::new()))]));
    }

    #[test]
    fn the_kept_window_never_moves_back() {
        let mut s = PullState::fresh("s");
        s.advance(SourceTime::Number(100), SourceTime::Number(90));
        s.advance(SourceTime::Number(100), SourceTime::Number(50));
        assert_eq!(s.recent_from, Some(SourceTime::Number(90)));
    }
}
