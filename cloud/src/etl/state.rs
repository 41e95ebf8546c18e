//! The ETL's memory between runs, `lake/_etl/state.json`: per machine and date the fingerprint
//! of the inputs that date was built from, a digest of its run ids and the tail the next date's
//! runs continue from. A date is merged again when its inputs or an earlier date's changed, and
//! its output rewritten only when its inputs or its run ids changed.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Folder of the ETL's state and summaries, relative to the lake.
pub const ETL_DIR: &str = "_etl";

const STATE_VERSION: u32 = 1;

/// Name of the state file in [`ETL_DIR`].
const STATE_FILE: &str = "state.json";

/// The last kept shot of a date (or the seed carried through a date that kept none): what the
/// run segmentation of the next date continues from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tail {
    /// Time of that shot, ms since the Unix epoch (UTC).
    pub ts_ms: i64,
    /// Its mold / product code.
    pub mold: Option<String>,
    /// Its production run id.
    pub run_id: String,
}

/// What was built for one machine and date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateState {
    /// Fingerprint of the date's inputs.
    pub fingerprint: String,
    /// Digest of the run id of every output row: the only output the seed decides.
    pub runs: String,
    /// What the next date's runs continue from; `None` while no shot was kept up to this date.
    pub tail: Option<Tail>,
    /// Output rows (kept shots) of the date.
    pub rows: u64,
}

impl DateState {
    /// True when an output built as `self` equals the one built as `other`.
    pub fn same_output(&self, other: &DateState) -> bool {
        self.fingerprint == other.fingerprint && self.runs == other.runs && self.rows == other.rows
    }
}

/// Everything the ETL has built, keyed by machine folder (`machine=…`) and date.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EtlState {
    /// Format version of the file (1); another version is refused.
    pub version: u32,
    /// Fingerprint of the settings the outputs were built with; another one rebuilds all.
    pub settings: String,
    /// Per machine folder, per date (`YYYY-MM-DD`), what was built.
    pub machines: BTreeMap<String, BTreeMap<String, DateState>>,
    /// The as-of tolerance each machine was built with (what training puts in its bundles).
    #[serde(default)]
    pub tolerances: BTreeMap<String, super::MachineTolerance>,
}

/// What a run built for one machine: its dates and the tolerance they were joined with.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineBuilt {
    /// Per date, what was built.
    pub dates: BTreeMap<String, DateState>,
    /// The machine's tolerance, if one is known.
    pub tolerance: Option<super::MachineTolerance>,
}

impl EtlState {
    /// The state file, `<lake>/_etl/state.json`.
    pub fn path(lake: &Path) -> PathBuf {
        lake.join(ETL_DIR).join(STATE_FILE)
    }

    /// The saved state; empty when there is none. An unreadable one is an error (delete it to
    /// rebuild everything).
    pub fn load(lake: &Path) -> Result<EtlState> {
        let path = Self::path(lake);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let s: EtlState =
                    serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))?;
                anyhow::ensure!(
                    s.version == STATE_VERSION,
                    "{}: unknown version {} (delete it to rebuild etl_data)",
                    path.display(),
                    s.version
                );
                Ok(s)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(EtlState { version: STATE_VERSION, ..Default::default() })
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Records what one run did to its machines — built (`Some`) or failed (`None`: its dates
    /// are rebuilt next time) — in the saved state, leaving every other machine's entry as it
    /// is: a read-modify-write with a conditional replace ([`crate::storage`]), so runs over
    /// disjoint machines (shards) may end at once and none loses another's entries. Saved
    /// state built with other `settings` is dropped first (its machines are rebuilt).
    pub fn save_merged(
        lake: &Path,
        settings: &str,
        updates: BTreeMap<String, Option<MachineBuilt>>,
    ) -> Result<()> {
        let store = crate::storage::Store::open(&lake.display().to_string())?;
        let key = format!("{ETL_DIR}/{STATE_FILE}");
        let merge = |saved: Option<EtlState>| -> Result<EtlState> {
            let mut st = saved.unwrap_or(EtlState { version: STATE_VERSION, ..Default::default() });
            anyhow::ensure!(st.version == STATE_VERSION, "{key}: unknown version {}", st.version);
            if st.settings != settings {
                st.machines.clear();
                st.tolerances.clear();
                st.settings = settings.to_string();
            }
            for (folder, update) in &updates {
                match update {
                    Some(built) => {
                        st.machines.insert(folder.clone(), built.dates.clone());
                        match built.tolerance {
                            Some(t) => st.tolerances.insert(folder.clone(), t),
                            None => st.tolerances.remove(folder),
                        };
                    }
                    None => {
                        st.machines.remove(folder);
                        st.tolerances.remove(folder);
                    }
                }
            }
            Ok(st)
        };
        crate::storage::block_on(store.update_json(&key, merge)).map(|_| ())
    }
}

/// Fingerprint of a set of input files: sha256 over their paths (relative to the lake) and
/// sizes, sorted. Part files are never rewritten in place, so a new or removed file changes it.
pub fn fingerprint(lake: &Path, files: &[PathBuf]) -> Result<String> {
    let mut lines = Vec::with_capacity(files.len());
    for f in files {
        let size = std::fs::metadata(f).with_context(|| format!("inspecting {}", f.display()))?.len();
        let rel = f.strip_prefix(lake).unwrap_or(f);
        lines.push(format!("{}\t{size}\n", rel.to_string_lossy()));
    }
    lines.sort_unstable();
    Ok(hex_digest(lines.concat().as_bytes()))
}

/// Lowercase hex sha256 of `bytes`.
pub fn hex_digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
