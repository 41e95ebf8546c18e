//! The embedded MQTT broker (rumqttd) for running everything on one machine: plain TCP on a
//! loopback port, in memory. Production uses a real broker (Mosquitto, EMQX) over TLS with
//! persistence; see docs/mqtt-contract.md.

use anyhow::{Context, Result};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Starts rumqttd on `addr` in a background thread and waits until it accepts connections.
pub fn start(addr: SocketAddr) -> Result<()> {
    let config = serde_json::json!({
        "id": 0,
        "router": {
            "max_connections": 1000,
            "max_outgoing_packet_count": 200,
            "max_segment_size": 104857600,
            "max_segment_count": 10
        },
        "v4": { "1": {
            "name": "moldops-embedded",
            "listen": addr.to_string(),
            "next_connection_delay_ms": 1,
            "connections": {
                "connection_timeout_ms": 60000,
                "max_payload_size": 67108864,
                "max_inflight_count": 100,
                "dynamic_filters": true
            }
        }}
    });
    let config: rumqttd::Config = serde_json::from_value(config).context("embedded broker config")?;
    std::thread::Builder::new().name("rumqttd".into()).spawn(move || {
        let mut broker = rumqttd::Broker::new(config);
        if let Err(e) = broker.start() {
            tracing::error!(error = %e, "embedded broker stopped");
        }
    })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            anyhow::bail!("embedded broker did not open {addr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A free loopback port for the embedded broker.
pub fn free_loopback() -> Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("no free loopback port")?;
    Ok(l.local_addr()?)
}
