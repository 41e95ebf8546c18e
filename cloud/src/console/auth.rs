//! Who may use the console: users and their tokens from a file, sign-in by cookie or bearer
//! token, and the rule that reads are open only on a loopback address while every write
//! action needs a signed-in user.
//!
//! The users file holds one user per line, `NAME sha256:HEX`, the hex being the sha256 of the
//! user's token; blank lines and lines starting with `#` are skipped. Tokens are 32 random
//! bytes (`moldops-cloud console --add-user NAME` makes one and prints it once), so a plain
//! hash is enough to keep the file free of secrets. A malformed line refuses the whole file
//! with its line number: a console that silently lost users would lock people out unexplained.

use anyhow::{Context, Result, bail};
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Name of the cookie holding a signed-in browser's token.
pub const COOKIE: &str = "moldops_console";

/// Longest users file read (a few thousand users stay far below).
const MAX_USERS_BYTES: u64 = 1 << 20;

/// Longest user name: it ends up in the audit trail and on every page.
const MAX_NAME: usize = 64;

/// Longest token looked at (ours are 64 hex characters).
const MAX_TOKEN: usize = 256;

/// The known users, by the sha256 of their token.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_hash: HashMap<[u8; 32], String>,
}

impl Users {
    /// Reads a users file; a missing file is an error (the caller chose it).
    pub fn load(path: &Path) -> Result<Users> {
        let text = read_bounded(path)?;
        let mut by_hash = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, hash) =
                parse_line(line).with_context(|| format!("{} line {}", path.display(), n + 1))?;
            if by_hash.insert(hash, name.clone()).is_some() {
                bail!("{} line {}: the token of {name} is another user's too", path.display(), n + 1);
            }
        }
        Ok(Users { by_hash })
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The user a token belongs to.
    pub fn who(&self, token: &str) -> Option<&str> {
        if token.is_empty() || token.len() > MAX_TOKEN {
            return None;
        }
        self.by_hash.get(&hash(token)).map(String::as_str)
    }

    /// Adds a user with a fresh random token to the file (created if missing) and returns the
    /// token, which is stored nowhere else.
    pub fn add(path: &Path, name: &str) -> Result<String> {
        check_name(name)?;
        let existing = if path.exists() { Users::load(path)? } else { Users::default() };
        if existing.by_hash.values().any(|n| n == name) {
            bail!("{} already has a user {name}", path.display());
        }
        let token = hex::encode(rand::random::<[u8; 32]>());
        let mut text = if path.exists() { read_bounded(path)? } else { String::new() };
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("{name} sha256:{}\n", hex::encode(hash(&token))));
        moldops_common::fs::write_atomic(path, text.as_bytes())?;
        Ok(token)
    }
}

fn read_bounded(path: &Path) -> Result<String> {
    let len =
        std::fs::metadata(path).with_context(|| format!("reading users file {}", path.display()))?.len();
    if len > MAX_USERS_BYTES {
        bail!("users file {} is {len} bytes, more than {MAX_USERS_BYTES}", path.display());
    }
    std::fs::read_to_string(path).with_context(|| format!("reading users file {}", path.display()))
}

fn parse_line(line: &str) -> Result<(String, [u8; 32])> {
    let mut parts = line.split_whitespace();
    let (Some(name), Some(hash), None) = (parts.next(), parts.next(), parts.next()) else {
        bail!("expected `NAME sha256:HEX`")
    };
    check_name(name)?;
    let hex_text = hash.strip_prefix("sha256:").context("the token hash must start with `sha256:`")?;
    let bytes = hex::decode(hex_text).context("the token hash is not hex")?;
    let hash: [u8; 32] = bytes.try_into().map_err(|_| anyhow::anyhow!("the token hash is not 32 bytes"))?;
    Ok((name.to_string(), hash))
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    if !ok {
        bail!("user name {name:?}: 1-{MAX_NAME} characters of A-Z a-z 0-9 . _ @ -");
    }
    Ok(())
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The console's access rule.
#[derive(Debug)]
pub struct Access {
    users: std::sync::RwLock<Users>,
    /// The users file and the modification time of the copy in `users`: a user added while
    /// the console runs can sign in at once, without a restart.
    file: Option<(PathBuf, std::sync::Mutex<Option<SystemTime>>)>,
    /// Whether pages may be read without signing in (only when bound to loopback).
    pub open_reads: bool,
}

impl Access {
    /// The rule for a console listening on `listen` with `users`: reads are open on loopback
    /// only, and a console reachable from the network without any user is refused.
    pub fn new(listen: std::net::SocketAddr, users: Users) -> Result<Access> {
        let open_reads = listen.ip().is_loopback();
        if !open_reads && users.is_empty() {
            bail!(
                "the console listens on {listen}, which is not loopback, and has no users: give it a users \
                 file (--users; add one with `moldops-cloud console --users FILE --add-user NAME`)"
            );
        }
        Ok(Access { users: std::sync::RwLock::new(users), file: None, open_reads })
    }

    /// The rule with the users of `file`, read again whenever it changes.
    pub fn with_file(listen: std::net::SocketAddr, file: &Path) -> Result<Access> {
        let modified = std::fs::metadata(file).and_then(|m| m.modified()).ok();
        let mut access = Access::new(listen, Users::load(file)?)?;
        access.file = Some((file.to_path_buf(), std::sync::Mutex::new(modified)));
        Ok(access)
    }

    /// How many users there are.
    pub fn users(&self) -> usize {
        self.refresh();
        self.users.read().map_or(0, |u| u.len())
    }

    /// The user a token belongs to.
    pub fn who(&self, token: &str) -> Option<String> {
        self.refresh();
        self.users.read().ok()?.who(token).map(str::to_string)
    }

    /// Reads the users file again when its modification time changed; a file that no longer
    /// reads keeps the users known before (and says why in the log).
    fn refresh(&self) {
        let Some((path, seen)) = &self.file else { return };
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let Ok(mut seen) = seen.lock() else { return };
        if *seen == modified {
            return;
        }
        *seen = modified;
        match Users::load(path) {
            Ok(users) => {
                tracing::info!(file = %path.display(), users = users.len(), "console users read again");
                if let Ok(mut u) = self.users.write() {
                    *u = users;
                }
            }
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "console users file refused; keeping the users known before"
            ),
        }
    }

    /// The signed-in user of a request: the bearer token, else the console's cookie.
    pub fn user(&self, headers: &HeaderMap) -> Option<String> {
        let bearer = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let cookie = headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
            .next();
        bearer.or(cookie).and_then(|t| self.who(t.trim()))
    }

    /// Whether a request may read pages.
    pub fn may_read(&self, headers: &HeaderMap) -> bool {
        self.open_reads || self.user(headers).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn users_are_added_read_back_and_recognised_by_token_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("users");
        let alice = Users::add(&file, "alice").expect("add alice");
        let bob = Users::add(&file, "bob").expect("add bob");
        assert!(Users::add(&file, "alice").is_err(), "a name once");
        assert!(Users::add(&file, "a b").is_err(), "a name without spaces");
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(!text.contains(&alice) && !text.contains(&bob), "tokens are not stored: {text}");
        let users = Users::load(&file).expect("load");
        assert_eq!(users.len(), 2);
        assert_eq!(users.who(&alice), Some("alice"));
        assert_eq!(users.who(&bob), Some("bob"));
        assert_eq!(users.who("guess"), None);
        assert_eq!(users.who(""), None);
    }

    #[test]
    fn a_malformed_users_file_is_refused_with_its_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("users");
        std::fs::write(&file, "# users\nalice sha256:00\n").expect("write");
        let err = format!("{:#}", Users::load(&file).expect_err("short hash"));
        assert!(err.contains("line 2") && err.contains("32 bytes"), "{err}");
        std::fs::write(&file, "alice\n").expect("write");
        assert!(format!("{:#}", Users::load(&file).expect_err("no hash")).contains("NAME sha256:HEX"));
    }

    #[test]
    fn reads_are_open_on_loopback_only_and_a_networked_console_needs_users() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("users");
        let token = Users::add(&file, "alice").expect("add");
        let users = Users::load(&file).expect("load");
        let open = Access::new("127.0.0.1:0".parse().expect("addr"), Users::default()).expect("loopback");
        assert!(open.may_read(&HeaderMap::new()));
        assert!(Access::new("0.0.0.0:0".parse().expect("addr"), Users::default()).is_err());
        let closed = Access::new("0.0.0.0:0".parse().expect("addr"), users).expect("with users");
        assert!(!closed.may_read(&HeaderMap::new()));
        let mut h = HeaderMap::new();
        h.insert("cookie", HeaderValue::from_str(&format!("x=1; {COOKIE}={token}")).expect("header"));
        assert_eq!(closed.user(&h).as_deref(), Some("alice"));
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_str(&format!("Bearer {token}")).expect("header"));
        assert!(closed.may_read(&h));
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer nope"));
        assert_eq!(closed.user(&h), None);
    }

    #[test]
    fn a_user_added_while_the_console_runs_signs_in_and_a_broken_file_keeps_the_old_users() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("users");
        let alice = Users::add(&file, "alice").expect("add");
        let access = Access::with_file("0.0.0.0:0".parse().expect("addr"), &file).expect("access");
        let bob = Users::add(&file, "bob").expect("add");
        // Same-second writes may keep the modification time: move it on explicitly.
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options().write(true).open(&file).and_then(|f| f.set_modified(later)).expect("touch");
        assert_eq!(access.who(&bob).as_deref(), Some("bob"));
        std::fs::write(&file, "garbage line\n").expect("write");
        let later = later + std::time::Duration::from_secs(5);
        std::fs::File::options().write(true).open(&file).and_then(|f| f.set_modified(later)).expect("touch");
        assert_eq!(access.who(&alice).as_deref(), Some("alice"), "the users known before stay");
    }
}
