//! Harness for the end-to-end tests: finds the built binaries, starts real peers (Mosquitto,
//! pymodbus, socat) on loopback ports the tests pick, and stops them. Processes are killed
//! when their handle drops, so a failing test leaves nothing running.

pub mod broker;
pub mod databases;
pub mod proc;
pub mod s3;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use broker::Mosquitto;
pub use databases::{Influxd, Postgres};
pub use proc::Proc;
pub use s3::S3Server;

/// Directory holding the workspace binaries (`target/debug`), found from this test binary.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // Test binaries live in target/debug/deps/, binaries (moldops-bench) in target/debug/.
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") { dir.parent().map(PathBuf::from).unwrap_or_default() } else { dir }
}

/// Path of a workspace binary; panics with a hint when it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(p.is_file(), "{} not built: run `cargo test --workspace` (builds every binary)", p.display());
    p
}

/// Python interpreter that has the test peers' packages (set by .ci/run).
pub fn python() -> String {
    std::env::var("MOLDOPS_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Path of a file under `tests/`.
pub fn asset(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Re-checks an observable condition until it holds or `timeout` passes. Used where the
/// event is a state change in another process (rows in the lake, a port that accepts).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True when something accepts TCP connections on `127.0.0.1:port`.
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// A temporary folder for one test; kept after the test when `MOLDOPS_KEEP_TEST_DIRS` is set,
/// so the logs of every process can be read after a failure.
pub fn test_dir() -> tempfile::TempDir {
    let mut dir = tempfile::Builder::new().prefix("moldops-test-").tempdir().expect("temporary folder");
    if std::env::var_os("MOLDOPS_KEEP_TEST_DIRS").is_some() {
        eprintln!("keeping {}", dir.path().display());
        dir.disable_cleanup(true);
    }
    dir
}
