//! Fuzz tests of the edge config: TOML text, hostile fields set directly, and resolving it.

use super::*;
use crate::config::{ConfigErrors, EdgeConfig, Protocol};
use moldops_shared::limits;
use moldops_shared::profile::DataType;
use std::path::Path;

/// A config that resolves: a Modbus TCP machine, a Modbus RTU peripheral, an OPC UA machine
/// and live scoring.
const CONFIG: &str = r#"
site = "공장-1"
edge_id = "edge-01"

[broker]
host = "127.0.0.1"
port = 1883

[buffer]
path = "buffer"
max_bytes = 1048576

[uplink]
batch_max_records = 500
linger_ms = 200

[models]
public_key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
store = "models"

[[devices]]
id = "m1"
role = "machine"
protocol = "modbus-tcp"
address = "127.0.0.1:5020"
[devices.profile]
name = "imm"
shot_counter = "shot_counter"
mold_code = "mold"
[[devices.profile.tags]]
name = "shot_counter"
address = 0
type = "u32"
[[devices.profile.tags]]
name = "mold"
address = 2
type = "string"
len = 4
[[devices.profile.tags]]
name = "Cycle_Time"
address = 10
type = "f32"
scale = 0.1
range = [0.0, 600.0]

[[devices]]
id = "m1-tcu"
role = "peripheral"
machine_id = "m1"
protocol = "modbus-rtu"
[devices.serial]
path = "/dev/ttyUSB0"
[devices.profile]
name = "tcu"
[[devices.profile.tags]]
name = "flow"
register = "input"
address = 0
type = "i16"

[[devices]]
id = "m9"
role = "machine"
protocol = "opcua"
[devices.opcua]
endpoint = "opc.tcp://10.0.0.9:4840/"
mode = "poll"
[devices.opcua.profile]
name = "m"
shot_counter = "counter"
[[devices.opcua.profile.nodes]]
name = "counter"
node = "ns=3;i=1001"
type = "u16"
[[devices.opcua.profile.nodes]]
name = "Cycle_Time"
node = "nsu=urn:vendor;s=Cycle/CycleTime"
"#;

const CONFIG_KEYS: &[&str] = &[
    "site",
    "edge_id",
    "broker",
    "host",
    "port",
    "devices",
    "id",
    "role",
    "protocol",
    "address",
    "profile",
    "tags",
    "name",
    "type",
    "len",
    "opcua",
    "nodes",
    "models",
    "public_key",
    "\"machine\"",
    "\"modbus-tcp\"",
];

/// The string tags of `len = 0` in inline profiles, and whether `resolve` validates each one's
/// profile (a Modbus device with no `profile_file`; otherwise the device is refused for that).
fn zero_length_string_tags(cfg: &EdgeConfig) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    for d in &cfg.devices {
        let validated = d.protocol != Protocol::Opcua && d.opcua.is_none() && d.profile_file.is_none();
        let tags = d.profile.iter().flat_map(|p| &p.tags);
        let empty = tags.filter(|t| t.dtype == DataType::String && t.len == Some(0));
        out.extend(empty.map(|t| (validated, t.name.clone())));
    }
    out
}

/// Resolving a parsed config: no panic, quick, every problem a non-empty line, a string tag of
/// `len = 0` refused with a reason naming `len`; an accepted config has valid identifiers and
/// profiles and resolves again after a TOML round trip.
/// `from_text`: the config was read from TOML, so it must also serialise back to TOML (one set
/// directly may hold integers past TOML's `i64`).
fn check_resolve(cfg: &EdgeConfig, base: &Path, from_text: bool) {
    let empty_tags = zero_length_string_tags(cfg);
    let verdict = timed("EdgeConfig::resolve", || cfg.resolve(base));
    note(verdict.is_ok());
    let devices = match verdict {
        Err(ConfigErrors(problems)) => {
            assert!(!problems.is_empty(), "refused without a problem");
            for p in &problems {
                assert!(!p.trim().is_empty(), "an empty problem line");
            }
            for (_, tag) in empty_tags.iter().filter(|(validated, _)| *validated) {
                let reason = format!("tag {tag}: string tags need len");
                assert!(problems.iter().any(|p| p.contains(&reason)), "{tag:?} of len 0: {problems:?}");
            }
            return;
        }
        Ok(devices) => devices,
    };
    assert!(empty_tags.is_empty(), "a config with string tags of len 0 is accepted: {empty_tags:?}");
    limits::check_level("site", &cfg.site).expect("an accepted site is a topic level");
    limits::check_level("edge_id", &cfg.edge_id).expect("an accepted edge_id is a topic level");
    assert_eq!(devices.len(), cfg.devices.len());
    for d in &devices {
        limits::check_name("id", &d.cfg.id).expect("an accepted device id is valid");
        assert!(d.cfg.poll_interval_ms > 0 && d.cfg.timeout_ms > 0);
        if d.cfg.opcua.is_none() {
            assert!(d.profile.validate().is_empty(), "an accepted device has an invalid profile");
        }
    }
    let text = match toml::to_string(cfg) {
        Ok(text) => text,
        Err(e) => {
            assert!(!from_text, "a config read from TOML does not serialise: {e}");
            return;
        }
    };
    let again: EdgeConfig = toml::from_str(&text).expect("an accepted config parses back");
    again.resolve(base).expect("an accepted config resolves again after a round trip");
}

fn check_config_text(text: &str, base: &Path) {
    match timed("parse config", || toml::from_str::<EdgeConfig>(text)) {
        Err(e) => {
            note(false);
            assert_reason(&e, &text);
        }
        Ok(cfg) => check_resolve(&cfg, base, true),
    }
}

/// The example config with a field set to a hostile value directly (no TOML in between, so
/// NaN and `u64::MAX` reach validation).
fn hostile_config(u: &mut Unstructured<'_>) -> Gen<EdgeConfig> {
    let mut cfg: EdgeConfig = toml::from_str(CONFIG).expect("the example parses");
    for _ in 0..u.int_in_range(1..=3)? {
        let i = u.choose_index(cfg.devices.len())?;
        let field = u.int_in_range(0..=14)?;
        if field <= 5 {
            hostile_config_field(u, &mut cfg, field)?;
            continue;
        }
        let d = &mut cfg.devices[i];
        match field {
            6 => d.id = any_string(u)?,
            7 => d.machine_id = Some(any_string(u)?),
            8 => d.address = Some(any_string(u)?),
            9 => (d.poll_interval_ms, d.timeout_ms) = (any_u64(u)?, any_u64(u)?),
            10 => {
                if let Some(s) = &mut d.serial {
                    s.parity = any_string(u)?;
                    (s.data_bits, s.stop_bits) = (u.arbitrary()?, u.arbitrary()?);
                    s.baud = *u.choose(&[0, 1, 19_200, u32::MAX])?;
                }
            }
            11 => {
                if let Some(p) = &mut d.profile
                    && !p.tags.is_empty()
                {
                    let i = u.choose_index(p.tags.len())?;
                    let t = &mut p.tags[i];
                    (t.scale, t.offset) = (any_f64(u)?, any_f64(u)?);
                    t.range = Some([any_f64(u)?, any_f64(u)?]);
                    t.address = u.arbitrary()?;
                    t.dtype = *u.choose(&TYPES)?;
                    t.len = Some(*u.choose(&[0, 1, 64, 65, u16::MAX])?);
                }
            }
            12 => {
                if let Some(p) = &mut d.profile {
                    p.shot_counter = Some(any_string(u)?);
                }
            }
            13 => {
                if let Some(ua) = &mut d.opcua {
                    ua.endpoint = any_string(u)?;
                }
            }
            _ => {
                if let Some(n) =
                    d.opcua.as_mut().and_then(|ua| ua.profile.as_mut()).and_then(|p| p.nodes.first_mut())
                {
                    n.node = any_string(u)?;
                    n.scale = any_f64(u)?;
                }
            }
        }
    }
    Ok(cfg)
}

/// Sets one edge-wide field of `cfg` (0 to 5) to a hostile value.
fn hostile_config_field(u: &mut Unstructured<'_>, cfg: &mut EdgeConfig, field: u8) -> Gen<()> {
    match field {
        0 => cfg.site = any_string(u)?,
        1 => cfg.edge_id = any_string(u)?,
        2 => cfg.buffer.max_bytes = any_u64(u)?,
        3 => cfg.uplink.batch_max_records = any_u64(u)? as usize,
        4 => cfg.uplink.max_inflight = any_u64(u)? as usize,
        _ => {
            let m = cfg.models.get_or_insert_with(Default::default);
            (m.max_alarm_rate, m.max_score_shift) = (any_f64(u)?, any_f64(u)?);
            m.false_alarm_tolerance = any_f64(u)?;
            m.shadow_shots = any_u64(u)?;
            m.max_bundle_bytes = any_u64(u)?;
        }
    }
    Ok(())
}

#[test]
fn the_example_config_resolves() {
    let base = tempfile::tempdir().expect("a temporary folder");
    let cfg: EdgeConfig = toml::from_str(CONFIG).expect("the example parses");
    let devices = cfg.resolve(base.path()).expect("the example resolves");
    assert_eq!(devices.len(), 3);
}

/// The ids of the edge's own records (scores, health) are not a device's or a machine's: a
/// config using them is refused with the reason, so those records never mix with a device's.
#[test]
fn the_ids_of_the_edges_own_records_are_reserved() {
    let base = tempfile::tempdir().expect("a temporary folder");
    for (from, to) in
        [("id = \"m1-tcu\"", "id = \"_scores\""), ("machine_id = \"m1\"", "machine_id = \"_edge\"")]
    {
        let text = CONFIG.replacen(from, to, 1);
        assert_ne!(text, CONFIG);
        let cfg: EdgeConfig = toml::from_str(&text).expect("the config parses");
        let problems = cfg.resolve(base.path()).expect_err("the reserved id is refused").0;
        assert!(
            problems.iter().any(|p| p.contains("is reserved for the edge's own records")),
            "{problems:?}"
        );
    }
}

/// Drift monitoring is on by default with `[models]`; `[models.drift]` sets it, `every_shots = 0`
/// turns it off (its other settings unchecked then), a setting out of range is refused with its
/// name, an unknown one does not parse, and the drift records' device id is reserved.
#[test]
fn drift_monitoring_is_on_by_default_and_its_settings_are_checked() {
    let base = tempfile::tempdir().expect("a temporary folder");
    let cfg: EdgeConfig = toml::from_str(CONFIG).expect("the example parses");
    let drift = &cfg.models.as_ref().expect("[models]").drift;
    assert!(drift.enabled());
    assert_eq!((drift.every_shots, drift.reference_shots, drift.bins), (500, 500, 10));
    let with = |table: &str| {
        CONFIG.replacen("store = \"models\"", &format!("store = \"models\"\n[models.drift]\n{table}"), 1)
    };
    let cfg: EdgeConfig = toml::from_str(&with("every_shots = 200\nbins = 12")).expect("parses");
    let drift = &cfg.models.as_ref().expect("[models]").drift;
    assert_eq!((drift.every_shots, drift.bins, drift.reference_shots), (200, 12, 500));
    cfg.resolve(base.path()).expect("resolves");
    let bad = with("every_shots = 2000000\nbins = 13\nreference_shots = 10\nmax_keys = 0");
    let cfg: EdgeConfig = toml::from_str(&bad).expect("parses");
    let problems = cfg.resolve(base.path()).expect_err("out of range").0;
    for field in ["every_shots", "bins", "reference_shots", "max_keys"] {
        let name = format!("models.drift.{field}");
        assert!(problems.iter().any(|p| p.contains(&name)), "{name} not named in {problems:?}");
    }
    let off: EdgeConfig = toml::from_str(&with("every_shots = 0\nbins = 13")).expect("parses");
    assert!(!off.models.as_ref().expect("[models]").drift.enabled());
    off.resolve(base.path()).expect("off: the rest is not checked");
    assert!(toml::from_str::<EdgeConfig>(&with("every_shot = 5")).is_err(), "a misspelt key is refused");
    let reserved: EdgeConfig =
        toml::from_str(&CONFIG.replacen("id = \"m1-tcu\"", "id = \"_drift\"", 1)).expect("parses");
    let problems = reserved.resolve(base.path()).expect_err("reserved").0;
    assert!(problems.iter().any(|p| p.contains("is reserved for the edge's own records")), "{problems:?}");
}

/// With the Sparkplug B uplink a device id is a topic level: one holding `/`, `+` or `#` is
/// refused with the reason (the native format takes it).
#[test]
fn a_sparkplug_device_id_must_be_a_topic_level() {
    let base = tempfile::tempdir().expect("a temporary folder");
    let mut cfg: EdgeConfig = toml::from_str(CONFIG).expect("the example parses");
    cfg.devices[0].id = "line 1/m1".into();
    cfg.resolve(base.path()).expect("the native format takes any name");
    cfg.uplink.format = crate::config::UplinkFormat::SparkplugB;
    let problems = cfg.resolve(base.path()).expect_err("a topic character is refused").0;
    assert!(problems.iter().any(|p| p.contains("the id is a topic level")), "{problems:?}");
}

/// More devices than a health snapshot can report are refused with the reason.
#[test]
fn more_devices_than_a_health_record_holds_are_refused() {
    let base = tempfile::tempdir().expect("a temporary folder");
    let mut cfg: EdgeConfig = toml::from_str(CONFIG).expect("the example parses");
    let first = cfg.devices[0].clone();
    cfg.devices = (0..=moldops_shared::status::MAX_DEVICES)
        .map(|i| {
            let mut d = first.clone();
            d.id = format!("d{i}");
            d
        })
        .collect();
    let problems = cfg.resolve(base.path()).expect_err("too many devices").0;
    assert!(problems.iter().any(|p| p.contains("at most") && p.contains("[[devices]]")), "{problems:?}");
}

/// A serial line the port could not be opened with as written is refused at load, not opened
/// with other settings (data bits 9 used to open the port with 8).
#[test]
fn serial_line_settings_a_port_cannot_take_are_refused() {
    let base = tempfile::tempdir().expect("a temporary folder");
    let text = CONFIG.replace(
        "path = \"/dev/ttyUSB0\"",
        "path = \"/dev/ttyUSB0\"\ndata_bits = 9\nstop_bits = 3\nbaud = 0",
    );
    assert_ne!(text, CONFIG);
    let cfg: EdgeConfig = toml::from_str(&text).expect("the config parses");
    let problems = cfg.resolve(base.path()).expect_err("the serial line is refused").0;
    for field in ["serial.data_bits", "serial.stop_bits", "serial.baud"] {
        assert!(problems.iter().any(|p| p.contains(field)), "{field} not named in {problems:?}");
    }
}

#[test]
fn fuzz_edge_config() {
    let base = tempfile::tempdir().expect("a temporary folder");
    fuzz("edge/config", |u| {
        match u.int_in_range(0..=2)? {
            0 => check_config_text(&TOML.soup(u, CONFIG_KEYS)?, base.path()),
            1 => check_config_text(&TOML.mutate(u, CONFIG)?, base.path()),
            _ => check_resolve(&hostile_config(u)?, base.path(), false),
        }
        Ok(())
    });
}

/// Found by `fuzz_edge_config`, fixed: an inline profile with a string tag of `len = 0` made
/// `EdgeConfig::resolve` panic in a debug build (`Tag::end` in `shared/src/profile.rs`
/// computed `registers() - 1`) instead of listing the problem. Same root cause as the shared
/// crate's `regression_string_tag_of_len_0_panics_in_validate`; `resolve` now lists "string
/// tags need len …", and the property generates such configs again.
#[test]
fn regression_edge_config_with_a_zero_length_string_tag_panics() {
    let text = CONFIG.replace("type = \"string\"\nlen = 4", "type = \"string\"\nlen = 0");
    assert_ne!(text, CONFIG);
    let cfg: EdgeConfig = toml::from_str(&text).expect("the config parses");
    let base = tempfile::tempdir().expect("a temporary folder");
    let verdict = std::panic::catch_unwind(|| cfg.resolve(base.path()));
    let problems = verdict.expect("resolve does not panic").expect_err("len = 0 is refused");
    assert!(problems.0.iter().any(|p| p.contains("len")), "{problems}");
}
