//! A real Mosquitto broker on a loopback port, with persistence on (as production must run
//! it), which tests can stop and start again on the same port.

use crate::proc::Proc;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub struct Mosquitto {
    pub port: u16,
    dir: PathBuf,
    extra: String,
    proc: Option<Proc>,
}

fn mosquitto_bin() -> String {
    if let Ok(p) = std::env::var("MOSQUITTO") {
        return p;
    }
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .unwrap_or("mosquitto")
        .to_string()
}

impl Mosquitto {
    /// Starts a broker on a free port, keeping its config, data and log under `dir`.
    pub fn start(dir: &Path) -> Mosquitto {
        Self::start_with(dir, "")
    }

    /// Starts a broker whose listener only speaks TLS with the given PEM files.
    pub fn start_tls(dir: &Path, ca: &Path, cert: &Path, key: &Path) -> Mosquitto {
        let tls =
            format!("cafile {}\ncertfile {}\nkeyfile {}\n", ca.display(), cert.display(), key.display());
        Self::start_with(dir, &tls)
    }

    /// Starts a broker with the persistence and queue settings of the shipped
    /// `deploy/mosquitto/mosquitto.conf` (not its TLS listener or accounts).
    pub fn start_shipped(dir: &Path) -> Mosquitto {
        Self::start_with(dir, &shipped_settings())
    }

    /// Starts a broker with extra lines for its listener.
    pub fn start_with(dir: &Path, extra: &str) -> Mosquitto {
        let port = crate::free_port();
        let mut m = Mosquitto { port, dir: dir.to_path_buf(), extra: extra.to_string(), proc: None };
        m.write_config();
        m.restart();
        m
    }

    fn write_config(&self) {
        let conf = format!(
            "listener {port} 127.0.0.1\nuser root\nallow_anonymous true\npersistence true\npersistence_location {dir}/\n\
             autosave_interval 1\nmax_queued_messages 0\nmax_inflight_messages 100\n\
             message_size_limit 0\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n{extra}",
            port = self.port,
            dir = self.dir.display(),
            extra = self.extra
        );
        std::fs::write(self.dir.join("mosquitto.conf"), conf).expect("write mosquitto.conf");
    }

    /// Starts the broker (again) and waits until it accepts connections.
    pub fn restart(&mut self) {
        let conf = self.dir.join("mosquitto.conf");
        let mut cmd = Command::new(mosquitto_bin());
        cmd.arg("-c").arg(&conf);
        let p = Proc::spawn("mosquitto", &mut cmd, &self.dir);
        let port = self.port;
        let up = crate::wait_until(Duration::from_secs(20), || crate::port_open(port));
        assert!(up, "mosquitto did not open port {port}\n{}", p.stderr_tail());
        self.proc = Some(p);
    }

    /// Stops the broker gracefully (it saves its persistent sessions).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let st = p.terminate(Duration::from_secs(10));
            assert!(st.is_some(), "mosquitto did not stop");
        }
    }

    /// Kills the broker with SIGKILL: it saves nothing more.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill9();
        }
    }

    pub fn is_running(&self) -> bool {
        self.proc.is_some()
    }
}

/// The shipped config's lines that decide what the broker keeps and for how long.
fn shipped_settings() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/mosquitto/mosquitto.conf");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let keep = [
        "autosave_interval",
        "max_queued_messages",
        "max_queued_bytes",
        "max_inflight_messages",
        "max_packet_size",
    ];
    let lines: Vec<&str> = text.lines().filter(|l| keep.iter().any(|k| l.starts_with(k))).collect();
    assert!(lines.len() >= 3, "the shipped config lost its persistence settings: {lines:?}");
    lines.join("\n") + "\n"
}
