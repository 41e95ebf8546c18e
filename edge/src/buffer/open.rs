//! Opening a buffer's sled database: counting what it holds, its epoch, telling a corrupt
//! database from other failures, and moving a corrupt one aside.

use super::{META_DROPPED, META_EPOCH, META_NEXT_SEQ, State, be_u64, record_key, seq_of};
use std::path::{Path, PathBuf};

/// Why a buffer could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The files are damaged (truncated, overwritten, from an incompatible version): moving
    /// them aside and starting afresh is the only way to keep polling.
    #[error("the buffer at {} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The buffer's folder.
        path: PathBuf,
        /// What sled reported.
        reason: String,
    },
    /// Anything else (permissions, disk, another process holding it): not fixed by a reset.
    #[error("opening the buffer at {}: {source:#}", path.display())]
    Other {
        /// The buffer's folder.
        path: PathBuf,
        /// The underlying error.
        source: anyhow::Error,
    },
}

/// A corrupt buffer that was moved aside.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BufferReset {
    /// Path the corrupt buffer was renamed to (`{path}.corrupt-{unix ms}`).
    pub moved_to: String,
    /// Why sled could not open it.
    pub reason: String,
}

/// The open database and its tree of records.
pub(super) struct Handles {
    pub db: sled::Db,
    pub tree: sled::Tree,
}

fn corrupt(path: &Path, e: &dyn std::fmt::Display) -> OpenError {
    OpenError::Corrupt { path: path.to_path_buf(), reason: e.to_string() }
}

/// Sorts a sled error into corrupt files and the rest.
fn classify(path: &Path, e: sled::Error) -> OpenError {
    match e {
        sled::Error::Corruption { .. } | sled::Error::Unsupported(_) | sled::Error::ReportableBug(_) => {
            corrupt(path, &e)
        }
        sled::Error::Io(ref io)
            if matches!(io.kind(), std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData) =>
        {
            corrupt(path, &e)
        }
        e => OpenError::Other { path: path.to_path_buf(), source: e.into() },
    }
}

/// How long opening waits for sled's file lock: its background threads let it go shortly after
/// the last handle is dropped (a reopen in the same process), and a process that is exiting
/// holds it a moment longer. Another live process holding it still fails the open.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens the database and counts its records, bytes, next seq, drops and untold gaps.
pub(super) fn load(path: &Path) -> Result<(Handles, State), OpenError> {
    let sled_err = |e| classify(path, e);
    let started = std::time::Instant::now();
    let db = loop {
        match sled::Config::new().path(path).flush_every_ms(Some(1000)).open() {
            Err(sled::Error::Io(io))
                if io.kind() == std::io::ErrorKind::WouldBlock && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            opened => break opened.map_err(sled_err)?,
        }
    };
    let tree = db.open_tree("buffer").map_err(sled_err)?;
    let mut st = State::default();
    for kv in tree.range(record_key(0)..) {
        let (k, v) = kv.map_err(sled_err)?;
        st.records += 1;
        st.bytes += v.len() as u64;
        st.next_seq = seq_of(&k).map_or(st.next_seq, |s| s + 1);
    }
    if let Some(v) = tree.get(META_NEXT_SEQ).map_err(sled_err)? {
        st.next_seq = st.next_seq.max(be_u64(&v).unwrap_or(0));
    }
    st.dropped = tree.get(META_DROPPED).map_err(sled_err)?.and_then(|v| be_u64(&v)).unwrap_or(0);
    st.gaps = super::gaps::load_tally(&tree);
    Ok((Handles { db, tree }, st))
}

/// The buffer's epoch: stored, or made now for a new buffer. A buffer from before epochs
/// (records or seqs but no epoch) keeps the empty epoch: its seqs continue its old stream.
pub(super) fn epoch(path: &Path, tree: &sled::Tree, new: bool, st: &State) -> Result<String, OpenError> {
    let sled_err = |e| classify(path, e);
    match tree.get(META_EPOCH).map_err(sled_err)? {
        Some(v) => String::from_utf8(v.to_vec()).map_err(|e| corrupt(path, &e)),
        None if !new && (st.next_seq > 0 || st.records > 0) => Ok(String::new()),
        None => {
            let epoch = format!("{:016x}", rand::random::<u64>());
            tree.insert(META_EPOCH, epoch.as_bytes()).map_err(sled_err)?;
            tree.flush().map_err(sled_err)?;
            Ok(epoch)
        }
    }
}

/// Renames a corrupt buffer to `{path}.corrupt-{unix ms}`; returns the new name.
pub(super) fn move_aside(path: &Path) -> anyhow::Result<PathBuf> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".corrupt-{}", chrono::Utc::now().timestamp_millis()));
    let aside = PathBuf::from(aside);
    std::fs::rename(path, &aside)
        .map_err(|e| anyhow::anyhow!("moving the corrupt buffer {} aside: {e}", path.display()))?;
    Ok(aside)
}

/// How many `{path}.corrupt-*` folders sit next to the buffer.
pub(super) fn aside_count(path: &Path) -> u64 {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return 0 };
    let prefix = format!("{}.corrupt-", name.to_string_lossy());
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with(&prefix)).count()
        })
        .unwrap_or(0) as u64
}
