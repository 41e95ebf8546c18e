//! The quality-inspection log: the ground truth of every simulated shot (label and defect
//! kind), one JSON line per shot, written through to the file before the shot's counter
//! becomes visible in the machine's registers. Ground truth never goes into registers.

use super::process::Shot;
use anyhow::Context;
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One line of the log.
#[derive(Debug, Serialize)]
pub struct QualityRecord<'a> {
    /// Machine id (`m1`, `m2`, …).
    pub machine_id: &'a str,
    /// The shot's counter value, as in the machine's registers.
    pub shot_number: u32,
    /// End of the shot, simulated ms since the Unix epoch (UTC).
    pub ts_ms: i64,
    /// Code of the mold the shot was made in.
    pub mold: &'a str,
    /// 1 for a defective shot, 0 for a good one.
    pub label: u8,
    /// Defect kind: `none`, `short_shot`, `flash`, `sink_marks` or `wet_material`.
    pub defect: &'static str,
}

/// An open quality log, shared by all machines.
#[derive(Debug)]
pub struct QualityLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl QualityLog {
    /// Creates (truncates) the log, creating its folder.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(QualityLog { path: path.to_path_buf(), file: Mutex::new(file) })
    }

    /// Path of the log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the shot's ground truth and flushes it to the file.
    pub fn record(&self, machine_id: &str, shot: &Shot) -> anyhow::Result<()> {
        let rec = QualityRecord {
            machine_id,
            shot_number: shot.number,
            ts_ms: shot.ts_ms,
            mold: shot.mold,
            label: shot.defect.label(),
            defect: shot.defect.as_str(),
        };
        let mut line = serde_json::to_vec(&rec)?;
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(&line)
            .and_then(|()| file.flush())
            .with_context(|| format!("cannot write the quality log {}", self.path.display()))
    }
}
