//! RS-485 multi-drop: one serial line shared by every Modbus RTU device wired to it.
//!
//! Dryers, temperature controllers and scales usually hang on one RS-485 pair, each with its
//! own unit id, and a port can be opened only once. So the edge opens each serial path once
//! ([`Lines`]) and the devices on it take turns ([`SerialLine::lock`]):
//!
//! - **one request at a time**, in the order the devices asked (tokio's lock is fair), each
//!   under its own device's unit id and `timeout_ms`;
//! - **a silent gap between frames**: 3.5 character times as Modbus RTU requires (1.75 ms
//!   above 19 200 baud), between turns and between the requests of one turn;
//! - **any error closes the port and keeps the line quiet** for the failing device's timeout
//!   before the next turn, so an answer that comes late dies out on the bus instead of
//!   colliding with the next request; the next turn opens the port again (and tokio-modbus
//!   refuses an answer whose unit id or function does not match the request).
//!
//! A dead unit costs the others about two of its timeouts per attempt, and its device backs
//! off between attempts ([`crate::schedule`]), so it never starves the line.

use crate::config::{DeviceConfig, Protocol, SerialConfig};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};
use tokio::time::Instant;
use tokio_modbus::client::Context;
use tokio_modbus::slave::{Slave, SlaveContext};

/// Bits on the wire per character (start, 8 data, parity or second stop, stop).
const BITS_PER_CHAR: f64 = 11.0;
/// The fixed inter-frame gap above 19 200 baud (Modbus over serial line, §2.5.1.1).
const FAST_GAP: Duration = Duration::from_micros(1750);

/// The serial lines of an edge, one per serial path.
#[derive(Default)]
pub struct Lines {
    by_path: HashMap<String, Arc<SerialLine>>,
}

impl Lines {
    /// The line at `settings.path`, opened lazily; devices on one path get the same line. (The
    /// configuration check makes sure they agree on the line's settings.)
    pub fn line(&mut self, settings: &SerialConfig) -> Arc<SerialLine> {
        self.by_path
            .entry(settings.path.clone())
            .or_insert_with(|| Arc::new(SerialLine::new(settings)))
            .clone()
    }
}

/// One serial line and whose turn it is.
pub struct SerialLine {
    settings: SerialConfig,
    gap: Duration,
    state: Mutex<LineState>,
}

struct LineState {
    ctx: Option<Context>,
    /// When the next turn may speak (the gap after the last exchange, or a failure's quiet).
    free_at: Option<Instant>,
}

impl SerialLine {
    fn new(settings: &SerialConfig) -> SerialLine {
        SerialLine {
            settings: settings.clone(),
            gap: frame_gap(settings.baud),
            state: Mutex::new(LineState { ctx: None, free_at: None }),
        }
    }

    /// Waits for the line's turn and for the silent gap after the previous exchange.
    pub async fn lock(&self) -> Turn<'_> {
        let state = self.state.lock().await;
        if let Some(at) = state.free_at {
            tokio::time::sleep_until(at).await;
        }
        Turn { line: self, state, quiet: Duration::ZERO }
    }
}

/// One device's turn on the line; the exchange ends when it is dropped.
pub struct Turn<'a> {
    line: &'a SerialLine,
    state: MutexGuard<'a, LineState>,
    quiet: Duration,
}

impl Turn<'_> {
    /// The line's Modbus context addressed to `unit`, opening the port if it is closed.
    pub fn context(&mut self, unit: u8) -> Result<&mut Context, tokio_serial::Error> {
        let ctx = match self.state.ctx.take() {
            Some(ctx) => ctx,
            None => {
                let port = open(&self.line.settings)?;
                tokio_modbus::client::rtu::attach_slave(port, Slave(unit))
            }
        };
        let ctx = self.state.ctx.insert(ctx);
        ctx.set_slave(Slave(unit));
        Ok(ctx)
    }

    /// The silence the line needs between two frames (also between two requests of a turn).
    pub fn gap(&self) -> Duration {
        self.line.gap
    }

    /// After a failed exchange: closes the port and keeps the line quiet for `quiet` after
    /// this turn, so an answer the unit sends late passes before anyone speaks again.
    pub fn fail(&mut self, quiet: Duration) {
        self.state.ctx = None;
        self.quiet = quiet;
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.state.free_at = Some(Instant::now() + self.line.gap.max(self.quiet));
    }
}

/// What is wrong with how `devices` share serial lines: devices on one path must agree on the
/// line's settings (it is opened once) and answer different unit ids.
pub fn check_lines(devices: &[DeviceConfig]) -> Vec<String> {
    let mut errs = Vec::new();
    let mut first: HashMap<&str, &DeviceConfig> = HashMap::new();
    let mut units: HashMap<(&str, u8), &str> = HashMap::new();
    for d in devices.iter().filter(|d| d.protocol == Protocol::ModbusRtu) {
        let Some(s) = &d.serial else { continue };
        let path = s.path.as_str();
        let same = first.entry(path).or_insert(d);
        if let Some(theirs) = &same.serial
            && theirs != s
        {
            errs.push(format!(
                "devices {} and {} share serial line {path} but not its settings (baud, parity, data_bits, \
                 stop_bits must be equal: the port is opened once)",
                same.id, d.id
            ));
        }
        if let Some(other) = units.insert((path, d.unit_id), &d.id) {
            errs.push(format!(
                "devices {other} and {} both use unit_id {} on serial line {path}",
                d.id, d.unit_id
            ));
        }
    }
    errs
}

/// The silent interval between two frames at `baud`.
fn frame_gap(baud: u32) -> Duration {
    if baud > 19_200 || baud == 0 {
        FAST_GAP
    } else {
        Duration::from_secs_f64(3.5 * BITS_PER_CHAR / f64::from(baud))
    }
}

fn open(s: &SerialConfig) -> Result<tokio_serial::SerialStream, tokio_serial::Error> {
    use tokio_serial::{DataBits, Parity, SerialPortBuilderExt, StopBits};
    let parity = match s.parity.as_str() {
        "even" => Parity::Even,
        "odd" => Parity::Odd,
        _ => Parity::None,
    };
    let data_bits = match s.data_bits {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    };
    let stop_bits = if s.stop_bits == 2 { StopBits::Two } else { StopBits::One };
    tokio_serial::new(&s.path, s.baud)
        .parity(parity)
        .data_bits(data_bits)
        .stop_bits(stop_bits)
        .open_native_async()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(path: &str) -> SerialConfig {
        SerialConfig { path: path.into(), baud: 9600, parity: "even".into(), data_bits: 8, stop_bits: 1 }
    }

    #[test]
    fn the_gap_is_three_and_a_half_characters_and_fixed_on_fast_lines() {
        assert_eq!(frame_gap(9600), Duration::from_secs_f64(38.5 / 9600.0));
        assert_eq!(frame_gap(19_200), Duration::from_secs_f64(38.5 / 19_200.0));
        assert_eq!(frame_gap(115_200), FAST_GAP);
    }

    fn device(id: &str, unit: u8, path: &str, baud: u32) -> DeviceConfig {
        toml::from_str(&format!(
            "id = \"{id}\"\nrole = \"peripheral\"\nmachine_id = \"m1\"\nprotocol = \"modbus-rtu\"\nunit_id = {unit}\n\
             [serial]\npath = \"{path}\"\nbaud = {baud}"
        ))
        .expect("a device")
    }

    #[test]
    fn devices_on_one_line_agree_on_its_settings_and_differ_in_unit_id() {
        let ok = [device("dryer", 1, "/dev/ttyUSB0", 9600), device("tcu", 2, "/dev/ttyUSB0", 9600)];
        assert!(check_lines(&ok).is_empty(), "{:?}", check_lines(&ok));
        let bad = [
            device("dryer", 1, "/dev/ttyUSB0", 9600),
            device("tcu", 1, "/dev/ttyUSB0", 9600),
            device("scale", 3, "/dev/ttyUSB0", 19_200),
            device("other-line", 1, "/dev/ttyUSB1", 19_200),
        ];
        let errs = check_lines(&bad);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].contains("dryer and tcu both use unit_id 1"), "{errs:?}");
        assert!(
            errs[1].contains("dryer and scale share serial line /dev/ttyUSB0 but not its settings"),
            "{errs:?}"
        );
    }

    #[test]
    fn devices_on_one_path_share_one_line() {
        let mut lines = Lines::default();
        let a = lines.line(&settings("/dev/ttyUSB0"));
        let b = lines.line(&settings("/dev/ttyUSB0"));
        let c = lines.line(&settings("/dev/ttyUSB1"));
        assert!(Arc::ptr_eq(&a, &b) && !Arc::ptr_eq(&a, &c));
        assert_eq!(c.settings.path, "/dev/ttyUSB1");
    }

    #[tokio::test]
    async fn after_a_failed_exchange_the_line_stays_quiet_for_the_failing_timeout() {
        let line = SerialLine::new(&settings("/dev/null-line"));
        let mut turn = line.lock().await;
        turn.fail(Duration::from_millis(60));
        drop(turn);
        let failed = Instant::now();
        let _next = line.lock().await;
        assert!(
            failed.elapsed() >= Duration::from_millis(60),
            "a late answer gets its time: {:?}",
            failed.elapsed()
        );
    }

    #[tokio::test]
    async fn turns_are_taken_one_at_a_time_with_the_gap_between_them() {
        let line = Arc::new(SerialLine::new(&settings("/dev/null-line")));
        let first = line.lock().await;
        let other = line.clone();
        let waiter = tokio::spawn(async move {
            let _turn = other.lock().await;
            Instant::now()
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "a second device waits while the first has the line");
        drop(first);
        let released = Instant::now();
        let second_at = waiter.await.expect("second turn");
        let silent = second_at - released;
        assert!(silent >= frame_gap(9600), "the line stays silent for the gap: {silent:?}");
    }
}
