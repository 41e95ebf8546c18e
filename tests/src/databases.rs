//! Real database servers on loopback ports the tests pick: PostgreSQL (Debian's `postgresql`
//! binaries, a throw-away cluster with trust authentication) and InfluxDB 1.x (Debian's
//! `influxdb`). Both are killed when their handle drops.

use crate::proc::Proc;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A PostgreSQL server with database `postgres` and superuser `postgres`, no password, TLS on
/// with a self-signed certificate (made by `openssl`) beside plain connections.
pub struct Postgres {
    /// The server (declared first: killed before its folder is removed).
    _proc: Proc,
    pub port: u16,
    bin: PathBuf,
    /// The cluster (owned by the `postgres` user when the tests run as root).
    dir: tempfile::TempDir,
}

/// The newest `/usr/lib/postgresql/*/bin` (or `$MOLDOPS_PG_BIN`).
fn pg_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MOLDOPS_PG_BIN") {
        return PathBuf::from(p);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p)| p.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p).expect("PostgreSQL server binaries (apt install postgresql; .ci/run does)")
}

/// uid and gid of a system user.
fn user_ids(name: &str) -> (u32, u32) {
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, name]).output().expect("id");
        String::from_utf8_lossy(&out.stdout).trim().parse::<u32>().expect("numeric id")
    };
    (id("-u"), id("-g"))
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

impl Postgres {
    /// Creates a cluster and starts it; returns once it answers queries.
    pub fn start(log_dir: &Path) -> Postgres {
        use std::os::unix::process::CommandExt;
        let bin = pg_bin();
        let dir = tempfile::Builder::new().prefix("moldops-pg-").tempdir().expect("tempdir");
        // PostgreSQL refuses to run as root: run it as the `postgres` user Debian creates.
        let ids = is_root().then(|| user_ids("postgres"));
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let command = |name: &str| {
            let mut c = Command::new(bin.join(name));
            if let Some((uid, gid)) = ids {
                c.uid(uid).gid(gid);
            }
            c
        };
        let data = dir.path().join("data");
        let out = command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"])
            .output()
            .expect("initdb");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
        if let Some((uid, gid)) = ids {
            for f in [&cert, &key] {
                std::os::unix::fs::chown(f, Some(uid), Some(gid)).expect("chown");
            }
        }
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
        let port = crate::free_port();
        let proc = Proc::spawn(
            "postgres",
            command("postgres")
                .arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string(), "-k"])
                .arg(dir.path())
                .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"])
                .args(["-c", "ssl=on", "-c", &format!("ssl_cert_file={}", cert.display())])
                .args(["-c", &format!("ssl_key_file={}", key.display())]),
            log_dir,
        );
        let pg = Postgres { _proc: proc, port, bin, dir };
        let ready = crate::wait_until(Duration::from_secs(60), || {
            pg.psql_command().args(["-c", "SELECT 1"]).output().is_ok_and(|o| o.status.success())
        });
        assert!(ready, "PostgreSQL did not answer within 60 s");
        pg
    }

    fn psql_command(&self) -> Command {
        let mut c = Command::new(self.bin.join("psql"));
        c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &self.port.to_string()]);
        c.args(["-U", "postgres", "-d", "postgres"]);
        c
    }

    /// Runs SQL (psql meta-commands such as `\copy` included); panics with psql's message.
    pub fn psql(&self, sql: &str) {
        let out = self.psql_command().args(["-c", sql]).output().expect("psql");
        assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `postgres://postgres@127.0.0.1:{port}/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The cluster's folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// An InfluxDB 1.x server.
pub struct Influxd {
    /// The server (declared first: killed before its folder is removed).
    _proc: Proc,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Influxd {
    /// Starts a server with its data under a new folder; returns once it answers `/ping`.
    pub fn start(log_dir: &Path) -> Influxd {
        let dir = tempfile::Builder::new().prefix("moldops-influx-").tempdir().expect("tempdir");
        let (port, rpc) = (crate::free_port(), crate::free_port());
        let d = dir.path().display();
        let conf = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n[meta]\n  dir = \"{d}/meta\"\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n[monitor]\n  store-enabled = false\n"
        );
        let conf_path = dir.path().join("influxdb.conf");
        std::fs::write(&conf_path, conf).expect("influxdb.conf");
        let bin = std::env::var("MOLDOPS_INFLUXD").unwrap_or_else(|_| "influxd".into());
        let proc =
            Proc::spawn("influxd", Command::new(bin).arg("run").arg("-config").arg(&conf_path), log_dir);
        let influx = Influxd { _proc: proc, port, _dir: dir };
        let ready = crate::wait_until(Duration::from_secs(60), || {
            crate::port_open(port) && influx.request("GET", "/ping", "").is_ok_and(|(s, _)| s == 204)
        });
        assert!(ready, "InfluxDB did not answer /ping within 60 s");
        influx
    }

    /// One HTTP/1.0 request; returns the status and body.
    pub fn request(&self, method: &str, path_and_query: &str, body: &str) -> std::io::Result<(u16, String)> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        write!(
            s,
            "{method} {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Ok((status, body))
    }

    /// Creates a database.
    pub fn create_database(&self, name: &str) {
        let (status, body) = self
            .request("POST", "/query", &format!("q=CREATE%20DATABASE%20{name}"))
            .expect("CREATE DATABASE");
        assert_eq!(status, 200, "CREATE DATABASE: {body}");
    }

    /// Writes points in line protocol (nanosecond times).
    pub fn write(&self, db: &str, lines: &str) {
        let (status, body) =
            self.request("POST", &format!("/write?db={db}&precision=ns"), lines).expect("write");
        assert_eq!(status, 204, "write: {body}");
    }

    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
