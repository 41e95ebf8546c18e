//! The running plant: builds the devices (a machine and, unless disabled, its mold temperature
//! controller, dryer and scale), binds a Modbus TCP server per device (an OPC UA server for
//! the first `--opcua-machines` machines), and replays each machine's process model in
//! simulated time: ground truth to the quality log first, then the registers or nodes.

use super::args::Plant;
use super::clock::SimClock;
use super::edge_config::{ConfigTemplate, edge_config};
use super::machine::{MachineRun, Request, TaskStatus};
use super::process::ProcessModel;
use super::profiles::{dryer_profile, machine_profile, scale_profile, tcu_profile};
use super::quality::QualityLog;
use super::registers::{DeviceImage, PeripheralImages};
use super::server::serve;
use moldops_edge::config::{DeviceRole, EdgeConfig, Protocol};
use moldops_edge::sources::opcua::map::NodeProfile;
use moldops_shared::profile::{Order, Profile};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One bound device of the plant.
#[derive(Debug, Clone, PartialEq)]
pub struct SimDevice {
    /// Device id: `m1`, `m2`, … for machines, `m1-tcu`, `m1-dryer`, `m1-scale` for peripherals.
    pub id: String,
    /// Machine or peripheral.
    pub role: DeviceRole,
    /// The machine the device belongs to (its own id for a machine).
    pub machine_id: String,
    /// Where to connect (a wildcard bind address is advertised as loopback).
    pub address: SocketAddr,
    /// Effective word order of the device's 32/64-bit values (Modbus).
    pub word_order: Order,
    /// The profile file's content (its own default word order); for an OPC UA machine the
    /// profile its node map amounts to.
    pub profile: Profile,
    /// `ModbusTcp`, or `Opcua` for a machine served over OPC UA.
    pub protocol: Protocol,
    /// The node map an OPC UA machine serves.
    pub node_map: Option<NodeProfile>,
}

impl SimDevice {
    /// A device served over Modbus TCP.
    pub fn modbus(
        id: &str,
        role: DeviceRole,
        machine_id: &str,
        address: SocketAddr,
        word_order: Order,
        profile: Profile,
    ) -> SimDevice {
        SimDevice {
            id: id.to_string(),
            role,
            machine_id: machine_id.to_string(),
            address,
            word_order,
            profile,
            protocol: Protocol::ModbusTcp,
            node_map: None,
        }
    }

    /// `opc.tcp://host:port/` of an OPC UA device.
    pub fn endpoint(&self) -> Option<String> {
        (self.protocol == Protocol::Opcua).then(|| format!("opc.tcp://{}/", self.address))
    }
}

/// A started plant. Dropping it stops its machines and servers; [`RunningPlant::shutdown`]
/// also waits for them to end.
#[derive(Debug)]
pub struct RunningPlant {
    devices: Vec<SimDevice>,
    servers: Vec<JoinHandle<()>>,
    machines: Vec<JoinHandle<()>>,
    status: Vec<watch::Receiver<TaskStatus>>,
    /// Per machine, where its task takes requests from.
    requests: Vec<tokio::sync::mpsc::UnboundedSender<Request>>,
    quality_log: PathBuf,
    clock: SimClock,
}

/// Starts the plant: opens the quality log, makes each machine's first shot (it ends at the
/// start time), binds every server, then lets simulated time run.
pub async fn start(plant: &Plant) -> anyhow::Result<RunningPlant> {
    let clock = SimClock::new(plant.start_ms, plant.speed);
    let log = Arc::new(QualityLog::create(&plant.quality_log)?);
    let mut running = RunningPlant {
        devices: Vec::new(),
        servers: Vec::new(),
        machines: Vec::new(),
        status: Vec::new(),
        requests: Vec::new(),
        quality_log: log.path().to_path_buf(),
        clock,
    };
    let mut runs = Vec::new();
    for index in 0..plant.machines {
        let mid = format!("m{}", index + 1);
        let word = if index % 2 == 0 { Order::Big } else { Order::Little };
        let machine = Arc::new(DeviceImage::new(machine_profile(), word, clock));
        let peripherals = (!plant.no_peripherals).then(|| PeripheralImages {
            tcu: Arc::new(DeviceImage::new(tcu_profile(), Order::Big, clock)),
            dryer: Arc::new(DeviceImage::new(dryer_profile(), Order::Big, clock)),
            scale: Arc::new(DeviceImage::new(scale_profile(), Order::Big, clock)),
        });
        let addr = |k: u16| plant.addr(index, k);
        let ua =
            if index < plant.opcua_machines { Some(bind_opcua(plant, &mid, addr(5)?).await?) } else { None };
        let (tx, rx) = watch::channel(TaskStatus::Running);
        let (ask, requests) = tokio::sync::mpsc::unbounded_channel();
        let mut run = MachineRun {
            id: mid.clone(),
            model: ProcessModel::new(plant.process(index)),
            output: output(&ua, &machine),
            peripherals: peripherals.clone(),
            log: Arc::clone(&log),
            clock,
            shots_left: plant.shots,
            status: tx,
            requests,
        };
        running.requests.push(ask);
        run.first_shot()?;
        runs.push(run);
        running.status.push(rx);
        match ua {
            Some(ua) => running.serve_opcua(&mid, ua),
            None => {
                running.bind(&mid, &mid, DeviceRole::Machine, addr(0)?, machine, machine_profile()).await?
            }
        }
        if let Some(p) = peripherals {
            let kinds = [
                (1, "tcu", p.tcu, tcu_profile()),
                (2, "dryer", p.dryer, dryer_profile()),
                (3, "scale", p.scale, scale_profile()),
            ];
            for (k, kind, img, profile) in kinds {
                let id = format!("{mid}-{kind}");
                running.bind(&id, &mid, DeviceRole::Peripheral, addr(k)?, img, profile).await?;
            }
        }
    }
    running.machines = runs.into_iter().map(|r| tokio::spawn(r.run())).collect();
    Ok(running)
}

impl RunningPlant {
    async fn bind(
        &mut self,
        id: &str,
        machine_id: &str,
        role: DeviceRole,
        addr: SocketAddr,
        image: Arc<DeviceImage>,
        profile: Profile,
    ) -> anyhow::Result<()> {
        let word_order = image.profile().word_order;
        let served = serve(id, addr, image).await?;
        self.servers.push(served.task);
        let address = advertised(served.addr);
        self.devices.push(SimDevice::modbus(id, role, machine_id, address, word_order, profile));
        Ok(())
    }

    /// Asks machine `index` (0-based: `m1` is 0) to change its mould after its current shot: a
    /// 20–40 min stop of simulated time, then the next mould of the list, one the machine has
    /// not run before in a plant without scheduled changes. Fails for an unknown machine.
    pub fn change_mold(&self, index: usize) -> anyhow::Result<()> {
        self.ask(index, Request::MoldChange)
    }

    /// Asks machine `index` to shift barrel zone `zone` (0 = nozzle side) by `delta_c` °C from
    /// its next shot on, for good: a drifting heater zone (see
    /// [`crate::process::ProcessModel::shift_heater`]). The receiver gets the number of the first
    /// shot made with the shift. Fails for an unknown machine or zone, or a shift that is not a
    /// number.
    pub fn shift_heater(
        &self,
        index: usize,
        zone: usize,
        delta_c: f64,
    ) -> anyhow::Result<tokio::sync::oneshot::Receiver<u32>> {
        anyhow::ensure!(
            zone < crate::process::BARREL_ZONES && delta_c.is_finite(),
            "no heater shift of zone {} by {delta_c} °C",
            zone + 1
        );
        let (first_shot, applied) = tokio::sync::oneshot::channel();
        self.ask(index, Request::HeaterShift { zone, delta_c, first_shot })?;
        Ok(applied)
    }

    fn ask(&self, index: usize, request: Request) -> anyhow::Result<()> {
        let to = self.requests.get(index).ok_or_else(|| anyhow::anyhow!("no machine {}", index + 1))?;
        to.send(request).map_err(|_| anyhow::anyhow!("machine {} has stopped", index + 1))
    }

    /// The bound devices, machines each followed by their peripherals.
    pub fn devices(&self) -> &[SimDevice] {
        &self.devices
    }

    /// Path of the quality-inspection log.
    pub fn quality_log(&self) -> &Path {
        &self.quality_log
    }

    /// The plant's simulated clock.
    pub fn clock(&self) -> SimClock {
        self.clock
    }

    /// An edge config that polls every device of this plant.
    pub fn edge_config(&self, template: ConfigTemplate) -> EdgeConfig {
        edge_config(&self.devices, &template)
    }

    /// The readiness line printed on stdout (keys in the documented order).
    pub fn ready_line(&self) -> String {
        #[derive(Serialize)]
        struct Device<'a> {
            id: &'a str,
            role: DeviceRole,
            machine_id: &'a str,
            address: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            word_order: Option<Order>,
            protocol: Protocol,
            #[serde(skip_serializing_if = "Option::is_none")]
            endpoint: Option<String>,
        }
        #[derive(Serialize)]
        struct Ready<'a> {
            event: &'static str,
            devices: Vec<Device<'a>>,
            quality_log: &'a Path,
            start_ms: i64,
        }
        let devices = self.devices.iter().map(|d| Device {
            id: &d.id,
            role: d.role,
            machine_id: &d.machine_id,
            address: d.address.to_string(),
            word_order: (d.protocol == Protocol::ModbusTcp).then_some(d.word_order),
            protocol: d.protocol,
            endpoint: d.endpoint(),
        });
        let ready = Ready {
            event: "ready",
            devices: devices.collect(),
            quality_log: &self.quality_log,
            start_ms: self.clock.start_ms(),
        };
        serde_json::to_string(&ready).unwrap_or_else(|e| format!(r#"{{"event":"ready","error":"{e}"}}"#))
    }

    /// Resolves when every machine has made its `--shots` (never without `--shots`), or
    /// with an error as soon as one machine fails (e.g. the quality log cannot be written).
    pub async fn finished(&self) -> anyhow::Result<()> {
        let waits = self.status.iter().map(|rx| {
            let mut rx = rx.clone();
            async move {
                // A task that is gone (plant shut down) counts as finished.
                match rx.wait_for(|s| *s != TaskStatus::Running).await.map(|s| s.clone()) {
                    Ok(TaskStatus::Failed(e)) => Err(anyhow::anyhow!(e)),
                    _ => Ok(()),
                }
            }
        });
        futures::future::try_join_all(waits).await.map(|_| ())
    }

    /// Stops every machine and server and waits for them to end.
    pub async fn shutdown(mut self) {
        self.abort();
        let tasks = std::mem::take(&mut self.machines).into_iter().chain(std::mem::take(&mut self.servers));
        for t in tasks {
            let _aborted = t.await;
        }
    }

    fn abort(&self) {
        for t in self.machines.iter().chain(&self.servers) {
            t.abort();
        }
    }
}

impl Drop for RunningPlant {
    fn drop(&mut self) {
        self.abort();
    }
}

/// The address clients should use: a wildcard bind address becomes loopback.
pub(crate) fn advertised(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()),
        _ => addr,
    }
}

/// Devices as a plant of `machines` machines with peripherals would bind them (ports from
/// 5020), for tests of what is derived from them.
#[cfg(test)]
pub fn test_devices(machines: usize) -> Vec<SimDevice> {
    let mut out = Vec::new();
    for i in 0..machines {
        let mid = format!("m{}", i + 1);
        let word_order = if i % 2 == 0 { Order::Big } else { Order::Little };
        let addr = |k: usize| SocketAddr::new(Ipv4Addr::LOCALHOST.into(), (5020 + 10 * i + k) as u16);
        out.push(SimDevice::modbus(&mid, DeviceRole::Machine, &mid, addr(0), word_order, machine_profile()));
        for (k, kind, profile) in
            [(1, "tcu", tcu_profile()), (2, "dryer", dryer_profile()), (3, "scale", scale_profile())]
        {
            let id = format!("{mid}-{kind}");
            out.push(SimDevice::modbus(&id, DeviceRole::Peripheral, &mid, addr(k), Order::Big, profile));
        }
    }
    out
}

mod ua;
use ua::{bind_opcua, output};

#[cfg(test)]
mod tests;
