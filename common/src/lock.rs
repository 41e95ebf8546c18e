//! Exclusive lock files: one holder at a time, released when dropped or when the process dies.
//!
//! Built on the operating system's advisory file locks (`flock` on Linux, through
//! `std::fs::File::try_lock`). The holder removes the file when it lets go, so a folder shows
//! a lock file only while someone holds it (or after a crash, when the leftover file is not
//! locked and the next holder simply takes it); a holder that locked a file another holder
//! had just removed notices the replaced path and tries again. They exclude processes **on one host** sharing a local
//! filesystem. They do **not** exclude processes on different hosts sharing a network
//! filesystem (NFS, a ReadWriteMany volume): such a deployment must run one holder, which is
//! what the shipped Kubernetes manifests do (one ingest replica, `Recreate` strategy).

use std::fs::File;
use std::path::{Path, PathBuf};

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("{what} is held by another process (lock {path})")]
    Held {
        /// What the lock protects, for the message.
        what: String,
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be created or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// An exclusive hold on a lock file; released when dropped.
#[derive(Debug)]
pub struct LockFile {
    file: File,
    path: PathBuf,
}

impl Drop for LockFile {
    /// Removes the file while still holding the lock, then releases it.
    fn drop(&mut self) {
        if same_file(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// True when `path` names the open `file` (not a file created after it was removed).
fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

impl LockFile {
    /// Takes the lock at `path` without waiting (creating the file and its folder if needed);
    /// `what` names what it protects in the error when another process holds it.
    pub fn try_acquire(path: &Path, what: &str) -> Result<LockFile, LockError> {
        let io = |source| LockError::Io { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // A holder that lets go removes the file; one who locked the removed file must not
        // count as holding the new one, so the lock is taken again until the path is the file.
        for _ in 0..100 {
            let file = File::options().create(true).truncate(false).write(true).open(path).map_err(io)?;
            match file.try_lock() {
                Ok(()) if same_file(&file, path) => return Ok(LockFile { file, path: path.to_path_buf() }),
                Ok(()) => continue,
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(LockError::Held { what: what.to_string(), path: path.to_path_buf() });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        Err(LockError::Held { what: what.to_string(), path: path.to_path_buf() })
    }

    /// Takes the lock at `path`, waiting up to `timeout` for another holder to release it.
    pub fn acquire_within(
        path: &Path,
        what: &str,
        timeout: std::time::Duration,
    ) -> Result<LockFile, LockError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match Self::try_acquire(path, what) {
                Err(LockError::Held { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// True when some process holds the lock at `path` right now (a missing file is not held).
pub fn is_held(path: &Path) -> bool {
    match File::options().write(true).open(path) {
        Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_the_first_drops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a").join("x.lock");
        let first = LockFile::try_acquire(&path, "the lake").expect("first");
        assert!(is_held(&path));
        let err = LockFile::try_acquire(&path, "the lake").expect_err("held");
        assert!(matches!(err, LockError::Held { .. }), "{err}");
        assert!(err.to_string().contains("the lake is held"), "{err}");
        drop(first);
        assert!(!is_held(&path));
        assert!(!path.exists(), "the holder removes the file when it lets go");
        LockFile::try_acquire(&path, "the lake").expect("free again");
    }

    #[test]
    fn a_leftover_file_of_a_dead_holder_is_taken() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.lock");
        std::fs::write(&path, "4000000000").expect("leftover");
        let lock = LockFile::try_acquire(&path, "key").expect("nobody holds it");
        assert!(is_held(&path));
        drop(lock);
        assert!(!path.exists());
    }

    #[test]
    fn waiting_acquire_gets_the_lock_once_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.lock");
        let first = LockFile::try_acquire(&path, "key").expect("first");
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || {
                LockFile::acquire_within(&path, "key", std::time::Duration::from_secs(30))
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(first);
        waiter.join().expect("thread").expect("acquired after release");
        let _held = LockFile::try_acquire(&path, "key").expect("free");
        let err =
            LockFile::acquire_within(&path, "key", std::time::Duration::from_millis(120)).expect_err("held");
        assert!(matches!(err, LockError::Held { .. }), "{err}");
    }
}
