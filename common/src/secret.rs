//! Secrets kept in files of their own (signing keys, broker passwords), read with the
//! permission check ssh applies to private keys, relaxed only as far as Kubernetes needs.
//!
//! A secret file must not be readable by others, nor writable by anyone but its owner. Group
//! *read* is accepted: a Secret volume under a pod's `fsGroup` is mounted `0440`, owned by
//! root with the pod's group, and that is how the kubelet gives a non-root container its
//! key. So `0400`, `0600`, `0440` and `0640` pass; `0644`, `0604`, `0660` do not.

use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a secret file was refused.
#[derive(Debug, Error)]
pub enum SecretError {
    /// The file could not be read.
    #[error("{what} {}: {source}", path.display())]
    Read {
        /// What the secret is for ("signing key", "broker.password_file").
        what: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Others may read it, or someone besides its owner may write it.
    #[error(
        "{what} {} has mode {mode:o}: readable by others or writable by its group; \
         allow its owner (and at most its group) to read it (chmod 600, or 0440 under fsGroup)",
        path.display()
    )]
    Exposed {
        /// What the secret is for.
        what: String,
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file holds nothing but white space.
    #[error("{what} {} is empty", path.display())]
    Empty {
        /// What the secret is for.
        what: String,
        /// The file.
        path: PathBuf,
    },
}

/// The most a secret file may hold; anything longer is not a key or password.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Whether permission bits are acceptable for a secret file (see the module docs).
pub fn mode_ok(mode: u32) -> bool {
    mode & 0o037 == 0
}

/// Checks a secret file's permissions (on Unix) without reading it.
pub fn check_file(path: &Path, what: &str) -> Result<(), SecretError> {
    let meta = std::fs::metadata(path).map_err(|source| SecretError::Read {
        what: what.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if !mode_ok(mode) {
            return Err(SecretError::Exposed { what: what.to_string(), path: path.to_path_buf(), mode });
        }
    }
    if meta.len() > MAX_SECRET_BYTES {
        let source = std::io::Error::new(std::io::ErrorKind::InvalidData, "file is too large for a secret");
        return Err(SecretError::Read { what: what.to_string(), path: path.to_path_buf(), source });
    }
    Ok(())
}

/// Reads a secret file after [`check_file`]; surrounding white space (a final newline) is
/// trimmed.
pub fn read(path: &Path, what: &str) -> Result<String, SecretError> {
    check_file(path, what)?;
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
        what: what.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(SecretError::Empty { what: what.to_string(), path: path.to_path_buf() });
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_kubernetes_mounts_pass_and_exposed_ones_do_not() {
        for ok in [0o400, 0o600, 0o440, 0o640] {
            assert!(mode_ok(ok), "{ok:o}");
        }
        for bad in [0o644, 0o604, 0o660, 0o444, 0o401, 0o620] {
            assert!(!mode_ok(bad), "{bad:o}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn reads_a_private_file_and_refuses_a_world_readable_or_empty_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("passwd");
        std::fs::write(&path, "s3cret\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440)).expect("chmod");
        assert_eq!(read(&path, "broker.password_file").expect("group-readable is fine"), "s3cret");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = read(&path, "broker.password_file").expect_err("world-readable");
        assert!(err.to_string().contains("mode 644"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::write(&path, " \n").expect("write");
        assert!(matches!(read(&path, "k"), Err(SecretError::Empty { .. })));
        assert!(matches!(read(&dir.path().join("none"), "k"), Err(SecretError::Read { .. })));
    }
}
