//! Durable, atomic replacement of files: a reader sees the old or the new content, never a mix,
//! and a completed write survives a power loss.
//!
//! One semantics for every writer: the bytes go to `<name>.tmp` beside the target, that file is
//! fsynced, renamed over the target, and the folder is fsynced so the rename itself is durable.
//! Every step's error is returned with the path it concerns; nothing is ignored.

use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` durably and atomically (creates the folder if needed).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file(path, bytes)?;
    sync_dir(path.parent().context("a file path without a folder")?)
}

/// Writes `bytes` to `path` via a fsynced temporary file and a rename, leaving the folder's
/// fsync to the caller (who may batch many files into one folder sync with [`sync_dirs`]).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("a file path without a folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = tmp_path(path)?;
    let mut file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
    file.sync_all().with_context(|| format!("fsync {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} into place", tmp.display()))
}

/// The temporary name [`write_file`] writes before the rename: `<file name>.tmp`.
pub fn tmp_path(path: &Path) -> Result<PathBuf> {
    let mut name = path.file_name().context("a path without a file name")?.to_os_string();
    name.push(".tmp");
    Ok(path.with_file_name(name))
}

/// Fsyncs a folder so that renames and new entries in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("fsync folder {}", dir.display()))
}

/// Fsyncs every folder of a set.
pub fn sync_dirs(dirs: &BTreeSet<PathBuf>) -> Result<()> {
    dirs.iter().try_for_each(|d| sync_dir(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("state.json");
        write_atomic(&path, b"one").expect("first write");
        write_atomic(&path, b"two").expect("second write");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn temporary_name_keeps_the_extension() {
        let tmp = tmp_path(Path::new("/a/run.json")).expect("tmp");
        assert_eq!(tmp, Path::new("/a/run.json.tmp"));
    }

    #[test]
    fn reports_the_path_when_the_folder_cannot_be_made() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").expect("write");
        let err = write_atomic(&blocker.join("x.json"), b"y").expect_err("a file is no folder");
        assert!(format!("{err:#}").contains("creating"), "{err:#}");
    }
}
