//! MQTT connection options from a [`BrokerConfig`]: credentials, keep-alive and TLS
//! (rustls with the ring provider, CA file and optional client certificate). Used by the
//! edge uplink and by the cloud ingest so both connect the same way.

use crate::config::BrokerConfig;
use anyhow::{Context, Result};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use std::path::Path;
use std::time::Duration;

/// Builds connection options; relative TLS file paths resolve against `base`.
pub fn options(broker: &BrokerConfig, client_id: &str, base: &Path) -> Result<MqttOptions> {
    let mut opts = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    opts.set_keep_alive(Duration::from_secs(broker.keep_alive_s.max(5)));
    opts.set_max_packet_size(64 * 1024 * 1024, 64 * 1024 * 1024);
    if let Some(user) = &broker.username {
        opts.set_credentials(user.clone(), broker.password.clone().unwrap_or_default());
    }
    if let Some(tls) = &broker.tls {
        install_crypto_provider();
        let read = |p: &Path| {
            let p = if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
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

/// Installs rustls' ring provider once per process (a second call is a no-op).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
