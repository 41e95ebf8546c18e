//! The edge configuration that matches a running simulated plant: one `[[devices]]` per
//! server, with its profile (or, for an OPC UA machine, its node map) inline so the file is
//! self-contained, and the odd machines' word order override.

use super::plant::SimDevice;
use anyhow::Context;
use moldops_edge::config::{
    ApiConfig, BrokerConfig, BufferConfig, DeviceConfig, DeviceRole, EdgeConfig, Protocol, UplinkConfig,
};
use moldops_edge::sources::opcua::config::{OpcUaConfig, ReadMode, SecurityMode, SecurityPolicy};
use moldops_shared::profile::Order;
use std::path::{Path, PathBuf};

/// Poll interval of machines (real time): well under a cycle even at high speed-ups.
pub const MACHINE_POLL_MS: u64 = 100;
/// Poll interval of peripherals (real time).
pub const PERIPHERAL_POLL_MS: u64 = 1000;

/// The parts of an edge config that do not follow from the plant.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigTemplate {
    /// Site name of the edge (default `demo-plant`).
    pub site: String,
    /// Edge id (default `edge-01`).
    pub edge_id: String,
    /// Host of the MQTT broker the edge publishes to.
    pub broker_host: String,
    /// Port of the MQTT broker (default 1883).
    pub broker_port: u16,
    /// Buffer folder; `None` keeps the edge's default.
    pub buffer_path: Option<PathBuf>,
    /// Local API address; `None` keeps the edge's default, empty disables it.
    pub api_listen: Option<String>,
}

impl Default for ConfigTemplate {
    fn default() -> Self {
        ConfigTemplate {
            site: "demo-plant".into(),
            edge_id: "edge-01".into(),
            broker_host: "127.0.0.1".into(),
            broker_port: 1883,
            buffer_path: None,
            api_listen: None,
        }
    }
}

/// The edge config for `devices`.
pub fn edge_config(devices: &[SimDevice], t: &ConfigTemplate) -> EdgeConfig {
    let mut buffer = BufferConfig::default();
    if let Some(p) = &t.buffer_path {
        buffer.path = p.clone();
    }
    let mut api = ApiConfig::default();
    if let Some(a) = &t.api_listen {
        api.listen = a.clone();
    }
    let broker = BrokerConfig { port: t.broker_port, ..BrokerConfig::with_host(&t.broker_host) };
    EdgeConfig {
        site: t.site.clone(),
        edge_id: t.edge_id.clone(),
        broker,
        buffer,
        uplink: UplinkConfig::default(),
        api,
        devices: devices.iter().map(device_config).collect(),
        models: None,
        gates: Vec::new(),
    }
}

fn device_config(d: &SimDevice) -> DeviceConfig {
    let machine = d.role == DeviceRole::Machine;
    if let (Some(endpoint), Some(map)) = (d.endpoint(), &d.node_map) {
        return opcua_device_config(d, endpoint, map.clone());
    }
    DeviceConfig {
        id: d.id.clone(),
        role: d.role,
        machine_id: Some(d.machine_id.clone()),
        protocol: Protocol::ModbusTcp,
        address: Some(d.address.to_string()),
        serial: None,
        unit_id: 1,
        poll_interval_ms: if machine { MACHINE_POLL_MS } else { PERIPHERAL_POLL_MS },
        timeout_ms: 1000,
        word_order: (d.word_order != d.profile.word_order).then_some(d.word_order),
        byte_order: None::<Order>,
        profile_file: None,
        profile: Some(d.profile.clone()),
        opcua: None,
    }
}

/// An OPC UA machine: security none, anonymous, subscription, node map inline.
fn opcua_device_config(
    d: &SimDevice,
    endpoint: String,
    map: moldops_edge::sources::opcua::map::NodeProfile,
) -> DeviceConfig {
    let opcua = OpcUaConfig {
        endpoint,
        security_policy: SecurityPolicy::None,
        security_mode: SecurityMode::None,
        certificate_file: None,
        private_key_file: None,
        pki_dir: None,
        trust_server_certs: false,
        username: None,
        password: None,
        password_file: None,
        mode: ReadMode::Subscribe,
        profile_file: None,
        profile: Some(map),
        root: None,
        namespaces: Default::default(),
    };
    DeviceConfig {
        id: d.id.clone(),
        role: d.role,
        machine_id: Some(d.machine_id.clone()),
        protocol: Protocol::Opcua,
        address: None,
        serial: None,
        unit_id: 1,
        poll_interval_ms: MACHINE_POLL_MS,
        timeout_ms: 1000,
        word_order: None,
        byte_order: None,
        profile_file: None,
        profile: None,
        opcua: Some(opcua),
    }
}

/// Writes `cfg` as TOML to `path`, creating its folder.
pub fn write_edge_config(path: &Path, cfg: &EdgeConfig) -> anyhow::Result<()> {
    let text = toml::to_string(cfg).context("cannot serialise the edge config")?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let header = "# Edge config for the simulated plant, written by `moldops-sim`.\n\n";
    std::fs::write(path, format!("{header}{text}"))
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plant::test_devices;

    #[test]
    fn config_round_trips_and_validates() -> anyhow::Result<()> {
        let devices = test_devices(2);
        let t = ConfigTemplate { buffer_path: Some("buf".into()), ..ConfigTemplate::default() };
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("sub/edge.toml");
        write_edge_config(&path, &edge_config(&devices, &t))?;
        let (cfg, resolved) = EdgeConfig::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(cfg.devices.len(), 8);
        assert_eq!(cfg.buffer.path, PathBuf::from("buf"));
        let m2 = resolved.iter().find(|d| d.cfg.id == "m2").context("m2")?;
        assert_eq!(m2.profile.word_order, Order::Little);
        assert_eq!(m2.cfg.poll_interval_ms, MACHINE_POLL_MS);
        let m1 = resolved.iter().find(|d| d.cfg.id == "m1").context("m1")?;
        assert_eq!((m1.cfg.word_order, m1.profile.word_order), (None, Order::Big));
        let tcu = resolved.iter().find(|d| d.cfg.id == "m2-tcu").context("m2-tcu")?;
        assert_eq!((tcu.cfg.role, tcu.cfg.machine_id()), (DeviceRole::Peripheral, "m2"));
        assert_eq!(m1.profile, crate::profiles::machine_profile());
        Ok(())
    }

    #[test]
    fn an_opcua_machine_gets_an_opcua_device_with_the_node_map_inline() -> anyhow::Result<()> {
        let mut devices = test_devices(2);
        let map = crate::profiles::machine_node_map();
        devices[0].protocol = Protocol::Opcua;
        devices[0].node_map = Some(map.clone());
        devices[0].profile = map.to_profile();
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("edge.toml");
        write_edge_config(&path, &edge_config(&devices, &ConfigTemplate::default()))?;
        let text = std::fs::read_to_string(&path)?;
        assert!(
            text.contains("protocol = \"opcua\"")
                && text.contains("endpoint = \"opc.tcp://127.0.0.1:5020/\"")
        );
        let (_, resolved) = EdgeConfig::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let m1 = resolved.iter().find(|d| d.cfg.id == "m1").context("m1")?;
        assert_eq!((m1.cfg.protocol, m1.cfg.address.as_deref()), (Protocol::Opcua, None));
        let ua = m1.cfg.opcua.as_ref().context("opcua")?;
        assert_eq!((ua.mode, ua.profile.as_ref()), (ReadMode::Subscribe, Some(&map)));
        let names = |p: &moldops_shared::profile::Profile| -> Vec<String> {
            p.value_tags().iter().map(|t| t.name.clone()).collect()
        };
        assert_eq!(names(&m1.profile), names(&crate::profiles::machine_profile()));
        let tcu = resolved.iter().find(|d| d.cfg.id == "m1-tcu").context("m1-tcu")?;
        assert_eq!(tcu.cfg.protocol, Protocol::ModbusTcp, "peripherals stay on Modbus");
        Ok(())
    }
}
