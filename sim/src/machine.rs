//! The task of one simulated machine: replays its process model's steps when the simulated
//! clock reaches them, each shot's ground truth to the quality log first, then the machine's
//! registers (live block and history slot at once) or OPC UA nodes, then its peripherals.

use super::clock::SimClock;
use super::process::{MachineState, ProcessModel, Step};
use super::quality::QualityLog;
use super::registers::{DeviceImage, PeripheralImages, write_machine, write_peripherals};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::sync::watch;

/// What a running plant's owner asks of a machine ([`crate::RunningPlant`]); taken at its next
/// step.
#[derive(Debug)]
pub enum Request {
    /// Change to the next mould ([`ProcessModel::request_mold_change`]).
    MoldChange,
    /// Shift a barrel zone for good ([`ProcessModel::shift_heater`]).
    HeaterShift {
        /// Zone index, 0 = nozzle side.
        zone: usize,
        /// °C added to the zone.
        delta_c: f64,
        /// Told the number of the first shot made with the shift.
        first_shot: tokio::sync::oneshot::Sender<u32>,
    },
}

/// Where a machine task stands.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskStatus {
    /// Still making shots.
    Running,
    /// Made all its shots.
    Done,
    /// Stopped on an error (the message names the machine).
    Failed(String),
}

/// Where a machine's cycle data is served.
#[derive(Debug, Clone)]
pub enum MachineOutput {
    /// A Modbus register image.
    Modbus(Arc<DeviceImage>),
    /// The nodes of an OPC UA server.
    #[cfg(feature = "opcua")]
    OpcUa(Arc<super::opcua_server::UaImage>),
}

impl MachineOutput {
    fn write(&self, step: &Step) -> anyhow::Result<()> {
        match self {
            MachineOutput::Modbus(img) => write_machine(img, step),
            #[cfg(feature = "opcua")]
            MachineOutput::OpcUa(img) => img.write_step(step),
        }
    }

    fn set_state(&self, state: MachineState) -> anyhow::Result<()> {
        match self {
            MachineOutput::Modbus(img) => img.update(|w| w.number("machine_state", f64::from(state as u16))),
            #[cfg(feature = "opcua")]
            MachineOutput::OpcUa(img) => img.set_state(state),
        }
    }
}

/// Simulated time after the last shot at which the machine goes idle.
const IDLE_AFTER_MS: i64 = 60_000;

/// One machine, its peripherals and its process.
#[derive(Debug)]
pub struct MachineRun {
    /// Machine id (`m1`, `m2`, …), as written to the quality log.
    pub id: String,
    /// The process whose steps the task replays.
    pub model: ProcessModel,
    /// Where the machine's cycle data is written.
    pub output: MachineOutput,
    /// Register images of the tcu, dryer and scale; `None` with `--no-peripherals`.
    pub peripherals: Option<PeripheralImages>,
    /// Quality log that receives each shot's ground truth before its registers change.
    pub log: Arc<QualityLog>,
    /// Simulated clock the task waits on for each step.
    pub clock: SimClock,
    /// Shots still to make; `None` = no limit.
    pub shots_left: Option<u64>,
    /// Publishes where the task stands.
    pub status: watch::Sender<TaskStatus>,
    /// Requests from the plant's owner ([`crate::RunningPlant::change_mold`],
    /// [`crate::RunningPlant::shift_heater`]); taken at the next step.
    pub requests: mpsc::UnboundedReceiver<Request>,
}

impl MachineRun {
    /// Makes the first shot (it ends at the start time) before the servers are bound, so a
    /// client never sees an empty machine.
    pub fn first_shot(&mut self) -> anyhow::Result<()> {
        if self.shots_left == Some(0) {
            self.status.send_replace(TaskStatus::Done);
            return Ok(());
        }
        let step = self.model.next_step();
        self.apply(&step)
    }

    fn apply(&mut self, step: &Step) -> anyhow::Result<()> {
        if let Some(s) = &step.shot {
            self.log.record(&self.id, s)?;
            tracing::debug!(machine = %self.id, shot = s.number, ts_ms = s.ts_ms, defect = s.defect.as_str(), "shot");
            if let Some(n) = &mut self.shots_left {
                *n = n.saturating_sub(1);
            }
        }
        self.output.write(step)?;
        if let Some(p) = &self.peripherals {
            write_peripherals(p, step.ts_ms, &step.peripherals)?;
        }
        Ok(())
    }

    /// Runs until the shots are made (then idles the machine) or forever.
    pub async fn run(mut self) {
        let status = match self.produce().await {
            Ok(()) => TaskStatus::Done,
            Err(e) => {
                tracing::error!(machine = %self.id, "simulated machine stopped: {e:#}");
                TaskStatus::Failed(format!("machine {}: {e:#}", self.id))
            }
        };
        let failed = matches!(status, TaskStatus::Failed(_));
        self.status.send_replace(status);
        if !failed {
            self.go_idle().await;
        }
    }

    async fn produce(&mut self) -> anyhow::Result<()> {
        while self.shots_left != Some(0) {
            while let Ok(request) = self.requests.try_recv() {
                match request {
                    Request::MoldChange => self.model.request_mold_change(),
                    Request::HeaterShift { zone, delta_c, first_shot } => {
                        self.model.shift_heater(zone, delta_c)?;
                        let _ = first_shot.send(self.model.next_shot_number());
                    }
                }
            }
            let step = self.model.next_step();
            self.clock.sleep_until(step.ts_ms).await;
            self.apply(&step)?;
        }
        Ok(())
    }

    /// After the last shot the machine stands idle; its registers or nodes keep serving.
    async fn go_idle(&self) {
        let last = self.clock.now_ms();
        self.clock.sleep_until(last + IDLE_AFTER_MS).await;
        if let Err(e) = self.output.set_state(MachineState::Idle) {
            tracing::error!(machine = %self.id, "cannot set the idle state: {e:#}");
        }
    }
}
