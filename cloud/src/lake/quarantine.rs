//! The quarantine: payloads the ingest could not accept (not JSON, unknown schema, invalid,
//! topic and body disagreeing, too large) and single records refused inside a good batch are
//! kept with the reason, one JSON file each under `lake/quarantine/date={YYYY-MM-DD}/`, so
//! nothing that arrived is ever silently lost. A payload is kept verbatim up to
//! [`MAX_STORED_BYTES`]; a larger one keeps its head, its size and its sha256, so a flood of
//! huge messages cannot fill the lake's disk.

use super::write::{prepare_dirs, sync_dirs, write_file};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One quarantined payload as stored on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    /// Why the payload was refused.
    pub reason: String,
    /// MQTT topic it arrived on.
    pub topic: String,
    /// When the ingest received it (UTC, RFC 3339).
    pub received_at: String,
    /// The payload: the text itself when it is UTF-8, else lowercase hex.
    pub payload: String,
    /// `utf8` or `hex`: how `payload` encodes the bytes.
    pub payload_encoding: String,
    /// Size of the whole payload in bytes (`payload` holds at most [`MAX_STORED_BYTES`]).
    #[serde(default)]
    pub bytes: usize,
    /// sha256 of the whole payload, when `payload` holds only its head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Most bytes of one payload kept in the quarantine.
pub const MAX_STORED_BYTES: usize = 64 << 10;

impl QuarantineEntry {
    /// An entry for `payload` refused for `reason`, received at `received_at_ms` (UTC ms).
    pub fn new(reason: String, topic: &str, received_at_ms: i64, payload: &[u8]) -> QuarantineEntry {
        let bytes = payload.len();
        // A large payload keeps its head (hex doubles it, so half the budget) and its hash.
        let (head, sha256) = if bytes > MAX_STORED_BYTES {
            (&payload[..MAX_STORED_BYTES / 2], Some(moldops_shared::bundle::sha256_hex(payload)))
        } else {
            (payload, None)
        };
        let (payload, payload_encoding) = match std::str::from_utf8(head) {
            Ok(text) => (text.to_string(), "utf8"),
            Err(_) => (hex(head), "hex"),
        };
        QuarantineEntry {
            reason,
            topic: topic.chars().take(1024).collect(),
            received_at: rfc3339_ms(received_at_ms),
            payload,
            payload_encoding: payload_encoding.to_string(),
            bytes,
            sha256,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// RFC 3339 text (UTC, milliseconds) of a timestamp in ms since the epoch.
pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{ms}ms"))
}

/// Stores entries durably, each as `quarantine/date={date}/{nanos:020}-{i:06}.json` where the
/// date is the day it was received; `nanos` orders files by time. Returns their paths.
pub fn store(lake: &Path, entries: &[(i64, QuarantineEntry)], nanos: u64) -> Result<Vec<PathBuf>> {
    let root = lake.join(super::QUARANTINE_DIR);
    let dir_of = |ms: i64| root.join(super::day_folder(ms.div_euclid(86_400_000)));
    let dirs: Vec<PathBuf> = entries.iter().map(|(ms, _)| dir_of(*ms)).collect();
    let sync = prepare_dirs(lake, dirs.iter().map(PathBuf::as_path))?;
    let mut paths = Vec::with_capacity(entries.len());
    for (i, ((_, entry), dir)) in entries.iter().zip(&dirs).enumerate() {
        let path = dir.join(format!("{nanos:020}-{i:06}.json"));
        let bytes = serde_json::to_vec_pretty(entry).context("encoding a quarantine entry")?;
        write_file(&path, &bytes)?;
        paths.push(path);
    }
    sync_dirs(&sync)?;
    Ok(paths)
}

/// How many payloads are in quarantine, and the most recent `recent` of them (newest first:
/// by file modification time, then name — ingest and import entries are named differently, so
/// names alone do not order them). An entry that cannot be read or parsed is counted, logged and
/// left out of `recent` (the quarantine is what was refused; a torn file must not hide the rest).
pub fn scan(lake: &Path, recent: usize) -> Result<(u64, Vec<QuarantineEntry>)> {
    let mut files: Vec<(std::time::SystemTime, String, PathBuf)> = Vec::new();
    for dir in super::date_dirs(&lake.join(super::QUARANTINE_DIR))? {
        for entry in super::read_dir(&dir)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") {
                let modified = entry.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
                files.push((modified, name, entry.path()));
            }
        }
    }
    files.sort();
    let mut newest = Vec::new();
    for (_, _, path) in files.iter().rev() {
        if newest.len() >= recent {
            break;
        }
        let parsed =
            std::fs::read(path).with_context(|| format!("reading {}", path.display())).and_then(|text| {
                serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
            });
        match parsed {
            Ok(entry) => newest.push(entry),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "unreadable quarantine entry left out"),
        }
    }
    Ok((files.len() as u64, newest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_scans_text_and_binary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = QuarantineEntry::new("bad json".into(), "moldops/v1/s/e/data", 1_700_000_000_000, b"{oops");
        let b =
            QuarantineEntry::new("binary".into(), "moldops/v1/s/e/data", 1_700_000_000_001, &[0xff, 0x00]);
        assert_eq!(b.payload, "ff00");
        assert_eq!(b.payload_encoding, "hex");
        store(dir.path(), &[(1_700_000_000_000, a.clone())], 1).expect("store a");
        store(dir.path(), &[(1_700_000_000_001, b.clone())], 2).expect("store b");
        let (count, recent) = scan(dir.path(), 1).expect("scan");
        assert_eq!(count, 2);
        assert_eq!(recent, vec![b]);
        assert!(dir.path().join("quarantine/date=2023-11-14").is_dir());
    }

    /// An import's entry (named `import-…`, which sorts after the ingest's numeric names) is not
    /// taken for the newest when it is older; a torn entry is counted but does not fail the scan.
    #[test]
    fn newest_by_time_not_name_and_torn_entries_do_not_hide_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let day = dir.path().join("quarantine/date=2023-11-14");
        std::fs::create_dir_all(&day).expect("mkdir");
        let old = QuarantineEntry::new("old import row".into(), "import:ab", 1_700_000_000_000, b"x");
        std::fs::write(day.join("import-ab-000000002.json"), serde_json::to_vec(&old).expect("json"))
            .expect("w");
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let f =
            std::fs::File::options().write(true).open(day.join("import-ab-000000002.json")).expect("open");
        f.set_modified(past).expect("set mtime");
        let new = QuarantineEntry::new("new batch".into(), "moldops/v1/s/e/data", 1_700_000_000_001, b"y");
        store(dir.path(), &[(1_700_000_000_001, new.clone())], 1).expect("store");
        std::fs::write(day.join("import-cd-000000001.json"), b"{torn").expect("torn");
        let f =
            std::fs::File::options().write(true).open(day.join("import-cd-000000001.json")).expect("open");
        f.set_modified(past - std::time::Duration::from_secs(60)).expect("set mtime");
        let (count, recent) = scan(dir.path(), 1).expect("scan");
        assert_eq!((count, recent), (3, vec![new.clone()]));
        let (_, all) = scan(dir.path(), 10).expect("scan all");
        assert_eq!(all, vec![new, old]);
    }
}
