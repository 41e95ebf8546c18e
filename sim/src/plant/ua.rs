//! The plant's OPC UA side: binding a machine's OPC UA server (when the build has the
//! `opcua` feature; otherwise `--opcua-machines` is refused), pointing the machine task at
//! its nodes, and listing the served machine among the plant's devices.

use super::RunningPlant;
use crate::args::Plant;
use crate::machine::MachineOutput;
use crate::registers::DeviceImage;
use std::net::SocketAddr;
use std::sync::Arc;
#[cfg(feature = "opcua")]
use {
    super::{SimDevice, advertised},
    moldops_edge::config::{DeviceRole, Protocol},
    moldops_shared::profile::Order,
    std::path::Path,
};

/// A machine's OPC UA server, when the build has one.
#[cfg(feature = "opcua")]
pub(super) type UaServer = crate::opcua_server::UaServer;
#[cfg(not(feature = "opcua"))]
pub(super) type UaServer = std::convert::Infallible;

/// Builds and binds machine `id`'s OPC UA server (its certificate folders, unused with
/// security none, next to the quality log).
#[cfg(feature = "opcua")]
pub(super) async fn bind_opcua(plant: &Plant, id: &str, addr: SocketAddr) -> anyhow::Result<UaServer> {
    let dir = plant.quality_log.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    crate::opcua_server::bind(id, addr, &dir.join("opcua-pki")).await
}

#[cfg(not(feature = "opcua"))]
pub(super) async fn bind_opcua(_: &Plant, id: &str, _: SocketAddr) -> anyhow::Result<UaServer> {
    anyhow::bail!("{id}: this build has no OPC UA server (built without the opcua feature)")
}

/// Where the machine task writes: the OPC UA server's nodes, else the register image.
pub(super) fn output(ua: &Option<UaServer>, image: &Arc<DeviceImage>) -> MachineOutput {
    match ua {
        #[cfg(feature = "opcua")]
        Some(ua) => MachineOutput::OpcUa(Arc::clone(&ua.image)),
        #[cfg(not(feature = "opcua"))]
        Some(never) => match *never {},
        None => MachineOutput::Modbus(Arc::clone(image)),
    }
}

impl RunningPlant {
    /// Starts serving an OPC UA machine and lists it.
    #[cfg(feature = "opcua")]
    pub(super) fn serve_opcua(&mut self, id: &str, ua: UaServer) {
        let address = advertised(ua.addr);
        self.servers.push(ua.start(id));
        let map = crate::profiles::machine_node_map();
        self.devices.push(SimDevice {
            id: id.to_string(),
            role: DeviceRole::Machine,
            machine_id: id.to_string(),
            address,
            word_order: Order::Big,
            profile: map.to_profile(),
            protocol: Protocol::Opcua,
            node_map: Some(map),
        });
    }

    #[cfg(not(feature = "opcua"))]
    pub(super) fn serve_opcua(&mut self, _: &str, ua: UaServer) {
        match ua {}
    }
}
