//! Shared MQTT configuration for every moldops client: the broker section of edge and cloud
//! configs, its one validator, and the `rumqttc` options built from it.
//!
//! The edge uplink and model link, the cloud ingest and the rollout manager all connect
//! through [`options`], so credentials, keep-alive, packet limits and TLS (rustls with the ring
//! provider, a CA file and an optional client certificate for mutual TLS) behave the same.

use anyhow::{Context, Result};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable read for the broker password when `username` is set and neither
/// `password` nor `password_file` is.
pub const PASSWORD_ENV: &str = "MOLDOPS_BROKER_PASSWORD";

/// The largest MQTT packet any moldops client sends or accepts (a bundle chunk, a batch).
pub const MAX_PACKET_BYTES: usize = 64 * 1024 * 1024;

/// `[broker]`: how to reach the MQTT broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// Host name or address.
    pub host: String,
    /// TCP port (1883 plain, 8883 TLS by convention).
    #[serde(default = "default_port")]
    pub port: u16,
    /// User name, when the broker asks for one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password inline (needs `username`). Prefer `password_file` or the environment
    /// variable [`PASSWORD_ENV`], which keep it out of config files.
    #[serde(default)]
    pub password: Option<String>,
    /// File holding the password (needs `username`; checked like a key: not readable by
    /// others). Relative paths resolve against the config file's folder.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// TLS; absent: plain TCP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// MQTT keep-alive in seconds (at least 5 is used).
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
}

/// `[broker.tls]`: the broker's CA and, for mutual TLS, this client's certificate and key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate(s) (PEM) that sign the broker's certificate.
    pub ca_file: PathBuf,
    /// Client certificate (PEM) for mutual TLS.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

fn default_port() -> u16 {
    1883
}
fn default_keep_alive() -> u64 {
    15
}

impl BrokerConfig {
    /// A broker section with only a host; every other field at its default.
    pub fn with_host(host: &str) -> Self {
        BrokerConfig {
            host: host.to_string(),
            port: default_port(),
            username: None,
            password: None,
            password_file: None,
            tls: None,
            keep_alive_s: default_keep_alive(),
        }
    }

    /// Every problem of the section, each naming its field (`broker.…`); relative TLS files
    /// resolve against `base`.
    pub fn problems(&self, base: &Path) -> Vec<String> {
        let mut errs = Vec::new();
        if self.host.trim().is_empty() {
            errs.push("broker.host is empty".to_string());
        }
        if self.port == 0 {
            errs.push("broker.port must be between 1 and 65535".to_string());
        }
        if self.password.is_some() && self.username.is_none() {
            errs.push("broker.password is set without broker.username".to_string());
        }
        if let Some(file) = &self.password_file {
            if self.username.is_none() {
                errs.push("broker.password_file is set without broker.username".to_string());
            }
            if self.password.is_some() {
                errs.push("broker.password and broker.password_file exclude each other".to_string());
            }
            if let Err(e) = crate::secret::check_file(&resolve(base, file), "broker.password_file") {
                errs.push(e.to_string());
            }
        }
        if let Some(tls) = &self.tls {
            let files = [
                ("ca_file", Some(&tls.ca_file)),
                ("cert_file", tls.cert_file.as_ref()),
                ("key_file", tls.key_file.as_ref()),
            ];
            for (field, f) in files.into_iter().filter_map(|(n, f)| f.map(|f| (n, f))) {
                let resolved = resolve(base, f);
                if !resolved.is_file() {
                    errs.push(format!("broker.tls.{field}: file {} not found", resolved.display()));
                }
            }
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                errs.push("broker.tls: cert_file and key_file go together".to_string());
            }
        }
        errs
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}

/// Builds connection options; relative TLS file paths resolve against `base`.
pub fn options(broker: &BrokerConfig, client_id: &str, base: &Path) -> Result<MqttOptions> {
    let mut opts = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    opts.set_keep_alive(Duration::from_secs(broker.keep_alive_s.max(5)));
    opts.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    if let Some(user) = &broker.username {
        opts.set_credentials(user.clone(), password(broker, base)?);
    }
    if let Some(tls) = &broker.tls {
        install_crypto_provider();
        let read = |p: &Path| {
            let p = resolve(base, p);
            std::fs::read(&p).with_context(|| format!("reading TLS file {}", p.display()))
        };
        let ca = read(&tls.ca_file)?;
        let client_auth = match (&tls.cert_file, &tls.key_file) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            _ => None,
        };
        opts.set_transport(Transport::Tls(TlsConfiguration::Simple { ca, alpn: None, client_auth }));
    }
    Ok(opts)
}

/// The password: inline, else from `password_file`, else from [`PASSWORD_ENV`], else empty.
fn password(broker: &BrokerConfig, base: &Path) -> Result<String> {
    if let Some(p) = &broker.password {
        return Ok(p.clone());
    }
    if let Some(file) = &broker.password_file {
        return Ok(crate::secret::read(&resolve(base, file), "broker.password_file")?);
    }
    Ok(std::env::var(PASSWORD_ENV).unwrap_or_default())
}

/// Installs rustls' ring provider once per process (a second call is a no-op).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_a_host_only_section() {
        let parsed: BrokerConfig = toml::from_str("host = \"mqtt\"").expect("parse");
        assert_eq!(parsed, BrokerConfig::with_host("mqtt"));
        assert!(parsed.problems(Path::new(".")).is_empty());
    }

    #[test]
    fn every_problem_names_its_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text =
            "host = \" \"\nport = 0\npassword = \"p\"\n[tls]\nca_file = \"ca.pem\"\ncert_file = \"c.pem\"\n";
        let b: BrokerConfig = toml::from_str(text).expect("parse");
        let all = b.problems(dir.path()).join("\n");
        for needle in [
            "broker.host",
            "broker.port",
            "broker.password",
            "broker.tls.ca_file",
            "broker.tls.cert_file",
            "cert_file and key_file",
        ] {
            assert!(all.contains(needle), "missing {needle} in {all}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_password_comes_from_a_private_file_relative_to_the_config() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("mqtt.pass"), "hunter2\n").expect("write");
        let set_mode = |m| {
            std::fs::set_permissions(dir.path().join("mqtt.pass"), std::fs::Permissions::from_mode(m))
                .expect("chmod")
        };
        set_mode(0o440);
        let text = "host = \"mqtt\"\nusername = \"edge-01\"\npassword_file = \"mqtt.pass\"\n";
        let b: BrokerConfig = toml::from_str(text).expect("parse");
        assert!(b.problems(dir.path()).is_empty(), "{:?}", b.problems(dir.path()));
        assert_eq!(password(&b, dir.path()).expect("password"), "hunter2");
        set_mode(0o644);
        let all = b.problems(dir.path()).join("\n");
        assert!(all.contains("broker.password_file") && all.contains("mode 644"), "{all}");
        assert!(options(&b, "c", dir.path()).is_err(), "a world-readable password file is refused");
        let both: BrokerConfig = toml::from_str(&format!("{text}password = \"x\"\n")).expect("parse");
        assert!(both.problems(dir.path()).join("\n").contains("exclude each other"));
    }

    #[test]
    fn a_missing_tls_file_is_an_error_naming_it() {
        let mut b = BrokerConfig::with_host("mqtt");
        b.tls = Some(TlsConfig { ca_file: "nope.pem".into(), cert_file: None, key_file: None });
        let err = options(&b, "c", Path::new("/nonexistent")).expect_err("no CA file");
        assert!(format!("{err:#}").contains("nope.pem"), "{err:#}");
    }
}
