//! The gate's journal: the last shot each gate actuated, in a small JSON file beside the
//! buffer (written atomically after every actuation). It outlives the buffer — a corrupt buffer
//! moved aside forgets its shot marks, and the journal keeps the gate from actuating a shot
//! twice — and it tells, after a restart, which recorded shots were never actuated (owed).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest journal file read back (it holds one number per machine).
const MAX_BYTES: u64 = 1 << 20;

/// Last actuated shot per machine, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entries {
    pub last_actuated: BTreeMap<String, u64>,
}

/// The journal file and what it holds.
pub(crate) struct Journal {
    path: PathBuf,
    entries: Entries,
}

impl Journal {
    /// Reads the journal at `path`. A missing file is an empty journal; an unreadable or
    /// corrupt one too, with the reason logged (the gate then cannot tell owed shots, and says
    /// so, but it never refuses to start).
    pub(crate) fn open(path: &Path) -> Journal {
        let entries = match read(path) {
            Ok(e) => e,
            Err(why) => {
                tracing::error!(path = %path.display(), reason = %why, "gate journal not readable: starting an empty one");
                Entries::default()
            }
        };
        Journal { path: path.to_path_buf(), entries }
    }

    /// The last shot actuated for `machine`.
    pub(crate) fn last(&self, machine: &str) -> Option<u64> {
        self.entries.last_actuated.get(machine).copied()
    }

    /// Records `shot` as the last actuated for `machine` and writes the file.
    pub(crate) fn set(&mut self, machine: &str, shot: u64) -> anyhow::Result<()> {
        self.entries.last_actuated.insert(machine.to_string(), shot);
        let bytes = serde_json::to_vec(&self.entries)?;
        moldops_common::fs::write_atomic(&self.path, &bytes)
    }
}

fn read(path: &Path) -> Result<Entries, String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Entries::default()),
        Err(e) => return Err(e.to_string()),
    };
    if meta.len() > MAX_BYTES {
        return Err(format!("{} bytes, more than a journal holds", meta.len()));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("corrupt: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_shot_survives_a_reopen_and_a_corrupt_file_starts_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gate.json");
        let mut j = Journal::open(&path);
        assert_eq!(j.last("M1"), None);
        j.set("M1", 41).expect("write");
        j.set("M1", 42).expect("write");
        assert_eq!(Journal::open(&path).last("M1"), Some(42));
        std::fs::write(&path, b"{\"last_actuated\": {\"M1\": 4").expect("truncate");
        assert_eq!(Journal::open(&path).last("M1"), None);
    }
}
