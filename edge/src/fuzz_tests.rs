//! Property-based fuzz tests of the edge's decoders (config and profile TOML, Modbus register
//! images, shot planning, OPC UA node ids, node maps and read results, desired-state payloads,
//! bundle chunks), each run by plain `cargo test` for a fixed time budget.

// Inputs are arbitrary text or bytes and valid examples with fields changed to hostile values
// (huge, negative, NaN/inf, empty, over-long, Korean, MQTT wildcards, truncated TOML/JSON).
// Properties: no panic, quick answers, refusals with a non-empty reason, and whatever is
// accepted passes its validator again (a config re-serialised resolves again; a record made
// from a decoded snapshot passes the ingest's `check_record`).
// `ARBTEST_BUDGET_MS=60000 cargo test -p moldops-edge --lib fuzz` fuzzes for longer.
// `ARBTEST_SEED=0x…` (the seed a failure prints) replays one case.

use crate::config::{ConfigErrors, EdgeConfig};
use crate::rollout::transfer::{self, Transfer};
use crate::shot::{self, ShotPlan, Snapshot};
use crate::sources::Registers;
use crate::sources::opcua::config::{NodeProfile, NodeTag};
use crate::sources::opcua::node::{self, NodeRef};
use arbtest::arbitrary::{self, Unstructured};
use moldops_shared::bundle::{self, Bundle, FeatureSpec, MODEL_FILE, Manifest, ModelKey};
use moldops_shared::codec::check_record;
use moldops_shared::limits;
use moldops_shared::profile::{self, DataType, Order, Profile, RegisterKind, Tag};
use moldops_shared::rollout::{BundleRef, DEFAULT_MAX_BUNDLE_BYTES, DesiredModels, MAX_DESIRED_BYTES};
use moldops_shared::{Record, RecordKind};
use opcua::types::{ByteString, DataValue, DateTime, LocalizedText, StatusCode, UAString, Variant};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;
use std::time::{Duration, Instant};

type Gen<T> = arbitrary::Result<T>;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// How long each property runs (milliseconds) unless `ARBTEST_BUDGET_MS` says otherwise.
const BUDGET_MS: u64 = 700;
/// Longest one decoder call may take on these small inputs before it counts as unbounded work.
const SLOW: Duration = Duration::from_secs(2);

thread_local! {
    /// Inputs the running property saw accepted and refused (each test runs on its own thread).
    static VERDICTS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Counts one decoder verdict, for the summary [`fuzz`] prints.
fn note(accepted: bool) {
    VERDICTS.with(|v| {
        let (yes, no) = v.get();
        v.set(if accepted { (yes + 1, no) } else { (yes, no + 1) });
    });
}

/// Runs `property` on fresh random input until the time budget is spent; prints how many
/// cases ran and how many inputs were accepted and refused.
fn fuzz(name: &str, mut property: impl FnMut(&mut Unstructured<'_>) -> Gen<()>) {
    let mut cases = 0u64;
    let started = Instant::now();
    VERDICTS.with(|v| v.set((0, 0)));
    let test = arbtest::arbtest(|u: &mut Unstructured<'_>| {
        cases += 1;
        property(u)
    })
    .size_max(1 << 14);
    match std::env::var_os("ARBTEST_BUDGET_MS") {
        Some(_) => test.run(),
        None => test.budget_ms(BUDGET_MS).run(),
    }
    let verdicts = match VERDICTS.with(Cell::get) {
        (0, 0) => String::new(),
        (accepted, refused) => format!(", {accepted} accepted, {refused} refused"),
    };
    eprintln!("fuzz {name}: {cases} cases in {:?}{verdicts}", started.elapsed());
    assert!(cases > 0, "{name}: no case ran");
}

/// Runs `call`, failing when it takes longer than [`SLOW`] (a sign of unbounded work).
fn timed<T>(what: &str, call: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = call();
    let took = started.elapsed();
    assert!(took < SLOW, "{what} took {took:?}");
    out
}

/// A refusal must say why.
fn assert_reason(err: &impl Display, input: &dyn std::fmt::Debug) {
    assert!(!err.to_string().trim().is_empty(), "refusal without a reason for {input:?}");
}

// ---------------------------------------------------------------------------------------------
// Hostile values
// ---------------------------------------------------------------------------------------------

/// A string meant to break an identifier or a path: empty, blank, over-long, Korean, MQTT
/// wildcards, control characters, or anything at all.
fn any_string(u: &mut Unstructured<'_>) -> Gen<String> {
    Ok(match u.int_in_range(0..=10)? {
        0 => String::new(),
        1 => (*u.choose(&[" ", "\t", " \u{3000} "])?).to_string(),
        2 => "가".repeat(u.int_in_range(1..=200)?),
        3 => "사출성형기-1".into(),
        4 => {
            (*u.choose(&["/", "+", "#", "a/b", "s+", "#x", "../x", "host", "host:", ":1883", "[::1]:502"])?)
                .to_string()
        }
        5 => "x".repeat(u.int_in_range(limits::MAX_ID_BYTES - 2..=limits::MAX_ID_BYTES + 2)?),
        6 => format!("m{}1", char::from(u.int_in_range(0..=0x1f_u8)?)),
        7 => (*u.choose(&["\u{0}", "\u{7f}", "\u{85}", "\u{feff}M1", "🏭"])?).to_string(),
        8 => (*u.choose(&["M1", "Cycle_Time", "press-7", "tcu.flow"])?).to_string(),
        _ => u.arbitrary::<String>()?,
    })
}

fn any_f64(u: &mut Unstructured<'_>) -> Gen<f64> {
    const SPECIAL: [f64; 12] = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        f64::MAX,
        f64::MIN,
        5e-324,
        1e300,
        -1.0,
        0.1,
        1.0,
    ];
    if u.ratio(2, 3)? { Ok(*u.choose(&SPECIAL)?) } else { Ok(f64::from_bits(u.arbitrary()?)) }
}

fn any_u64(u: &mut Unstructured<'_>) -> Gen<u64> {
    const SPECIAL: [u64; 8] = [0, 1, 2, u64::MAX, 1 << 53, i64::MAX as u64, u32::MAX as u64, 65_536];
    if u.ratio(1, 2)? { Ok(*u.choose(&SPECIAL)?) } else { u.arbitrary() }
}

/// A register word, often one of the patterns that make NaN, infinity or sign flips.
fn any_register(u: &mut Unstructured<'_>) -> Gen<u16> {
    const SPECIAL: [u16; 8] = [0, 0xFFFF, 0x8000, 0x7FFF, 0x7F80, 0x7FC0, 0x2020, 0x4D31];
    if u.ratio(1, 2)? { Ok(*u.choose(&SPECIAL)?) } else { u.arbitrary() }
}

/// Cuts `text` at a random character boundary.
fn truncate(u: &mut Unstructured<'_>, text: &mut String) -> Gen<()> {
    let mut at = u.int_in_range(0..=text.len())?;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    text.truncate(at);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// TOML and JSON mutation
// ---------------------------------------------------------------------------------------------

/// Placeholder put into a tree, later replaced by raw text the tree cannot hold.
const RAW: &str = "@@raw@@";

/// Raw TOML value text meant to break whatever key it lands on.
fn hostile_toml(u: &mut Unstructured<'_>) -> Gen<String> {
    const TOKENS: &[&str] = &[
        "0",
        "-1",
        "1",
        "65536",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775809",
        "1e400",
        "nan",
        "-inf",
        "inf",
        "0.5",
        "true",
        "\"\"",
        "\" \"",
        "[]",
        "{}",
        "'가나다'",
        "\"a/b+c#\"",
        "\"\\u0000\"",
        "0x7FFF_FFFF",
        "1979-05-27T07:32:00Z",
        "[1, \"a\"]",
        "[nan, 1.0]",
        "[5.0, 1.0]",
        "\"little\"",
        "\"string\"",
        "\"opcua\"",
    ];
    Ok(match u.int_in_range(0..=4)? {
        0..=2 => (*u.choose(TOKENS)?).to_string(),
        3 => toml::Value::String(any_string(u)?).to_string(),
        _ => {
            let depth = u.int_in_range(1..=120)?;
            format!("{}{}", "[".repeat(depth), "]".repeat(depth))
        }
    })
}

/// Breaks one node of a TOML tree: replaces it, drops it, or adds an unknown or duplicate entry.
fn mutate_toml_node(u: &mut Unstructured<'_>, value: &mut toml::Value) -> Gen<()> {
    let descend = u.ratio(3, 4)?;
    match value {
        toml::Value::Table(map) if descend && !map.is_empty() => {
            let key = map.keys().nth(u.choose_index(map.len())?).cloned().expect("index within the table");
            return mutate_toml_node(u, map.get_mut(&key).expect("key just read"));
        }
        toml::Value::Array(items) if descend && !items.is_empty() => {
            let i = u.choose_index(items.len())?;
            return mutate_toml_node(u, &mut items[i]);
        }
        _ => {}
    }
    match (u.int_in_range(0..=3)?, value) {
        (0, toml::Value::Table(map)) if !map.is_empty() => {
            let key = map.keys().nth(u.choose_index(map.len())?).cloned().expect("index within the table");
            map.remove(&key);
        }
        (1, toml::Value::Table(map)) => {
            map.insert(any_string(u)?, toml::Value::String(RAW.into()));
        }
        (0, toml::Value::Array(items)) if !items.is_empty() => {
            items.remove(u.choose_index(items.len())?);
        }
        (1, toml::Value::Array(items)) if !items.is_empty() => {
            let copy = items[u.choose_index(items.len())?].clone();
            items.push(copy);
        }
        (_, node) => *node = toml::Value::String(RAW.into()),
    }
    Ok(())
}

/// `valid` TOML with one to three nodes broken and, sometimes, cut short.
fn mutate_toml(u: &mut Unstructured<'_>, valid: &str) -> Gen<String> {
    let mut tree: toml::Value = toml::from_str(valid).expect("the valid example is TOML");
    for _ in 0..u.int_in_range(1..=3)? {
        mutate_toml_node(u, &mut tree)?;
    }
    // Some trees (a string where a table was) have no TOML text; the example itself stands in.
    let mut text = toml::to_string(&tree).unwrap_or_else(|_| valid.to_string());
    for quoted in [format!("\"{RAW}\""), format!("'{RAW}'")] {
        while let Some(at) = text.find(&quoted) {
            text.replace_range(at..at + quoted.len(), &hostile_toml(u)?);
        }
    }
    if u.ratio(1, 5)? {
        truncate(u, &mut text)?;
    }
    Ok(text)
}

/// Arbitrary text, half the time built from TOML punctuation and the keys a decoder expects.
fn toml_soup(u: &mut Unstructured<'_>, keys: &[&str]) -> Gen<String> {
    if u.arbitrary()? {
        return u.arbitrary();
    }
    let mut out = String::new();
    for _ in 0..u.int_in_range(0..=48)? {
        match u.int_in_range(0..=5)? {
            0 => out.push_str(u.choose(&["[", "]", "[[", "]]", " = ", "\n", ",", "{", "}", "."])?),
            1 | 2 => out.push_str(u.choose(keys)?),
            3 => out.push_str(&hostile_toml(u)?),
            _ => out.push_str(&u.int_in_range(0..=10u32)?.to_string()),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Edge config
// ---------------------------------------------------------------------------------------------

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

/// `bug_edge_config_with_a_zero_length_string_tag_panics`: such configs are left out until it
/// is fixed.
fn has_zero_length_string_tag(cfg: &EdgeConfig) -> bool {
    let profiles = cfg.devices.iter().filter_map(|d| d.profile.as_ref());
    profiles.flat_map(|p| &p.tags).any(|t| t.dtype == DataType::String && t.len == Some(0))
}

/// Resolving a parsed config: no panic, quick, every problem a non-empty line; an accepted
/// config has valid identifiers and profiles and resolves again after a TOML round trip.
/// `from_text`: the config was read from TOML, so it must also serialise back to TOML (one set
/// directly may hold integers past TOML's `i64`).
fn check_resolve(cfg: &EdgeConfig, base: &Path, from_text: bool) {
    if has_zero_length_string_tag(cfg) {
        return;
    }
    let verdict = timed("EdgeConfig::resolve", || cfg.resolve(base));
    note(verdict.is_ok());
    let devices = match verdict {
        Err(ConfigErrors(problems)) => {
            assert!(!problems.is_empty(), "refused without a problem");
            for p in &problems {
                assert!(!p.trim().is_empty(), "an empty problem line");
            }
            return;
        }
        Ok(devices) => devices,
    };
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

#[test]
fn fuzz_edge_config() {
    let base = tempfile::tempdir().expect("a temporary folder");
    fuzz("edge/config", |u| {
        match u.int_in_range(0..=2)? {
            0 => check_config_text(&toml_soup(u, CONFIG_KEYS)?, base.path()),
            1 => check_config_text(&mutate_toml(u, CONFIG)?, base.path()),
            _ => check_resolve(&hostile_config(u)?, base.path(), false),
        }
        Ok(())
    });
}

/// Found by `fuzz_edge_config` (which now leaves such configs out): an inline profile with a
/// string tag of `len = 0` makes `EdgeConfig::resolve` panic in a debug build
/// (`Tag::end` in `shared/src/profile.rs` computes `registers() - 1`), instead of listing the
/// problem. Same root cause as the shared crate's `bug_string_tag_of_len_0_panics_in_validate`.
#[test]
fn bug_edge_config_with_a_zero_length_string_tag_panics() {
    let text = CONFIG.replace("type = \"string\"\nlen = 4", "type = \"string\"\nlen = 0");
    assert_ne!(text, CONFIG);
    let cfg: EdgeConfig = toml::from_str(&text).expect("the config parses");
    let base = tempfile::tempdir().expect("a temporary folder");
    let verdict = std::panic::catch_unwind(|| cfg.resolve(base.path()));
    let problems = verdict.expect("resolve does not panic").expect_err("len = 0 is refused");
    assert!(problems.0.iter().any(|p| p.contains("len")), "{problems}");
}

// ---------------------------------------------------------------------------------------------
// Modbus: profiles, register images and snapshots
// ---------------------------------------------------------------------------------------------

/// A profile that validates: every role, every data type, both register tables, a history ring.
const PROFILE: &str = r#"
name = "imm"
word_order = "little"
shot_counter = "shot_counter"
mold_code = "mold"
timestamp = "ts"
state = "state"
[history]
base = 1000
depth = 10
stride = 20
copy_of = 0
[[tags]]
name = "shot_counter"
address = 0
type = "u32"
[[tags]]
name = "mold"
address = 2
type = "string"
len = 4
[[tags]]
name = "ts"
address = 6
type = "u64"
[[tags]]
name = "state"
address = 10
type = "u16"
[[tags]]
name = "Cycle_Time"
address = 11
type = "f32"
scale = 0.1
range = [0.0, 600.0]
[[tags]]
name = "Inj_Pressure"
register = "input"
address = 13
type = "i16"
byte_order = "little"
[[tags]]
name = "Hold_Time"
address = 14
type = "f64"
[[tags]]
name = "사출_압력"
address = 18
type = "i32"
offset = -40.0
"#;

const PROFILE_KEYS: &[&str] = &[
    "name",
    "tags",
    "address",
    "type",
    "len",
    "word_order",
    "byte_order",
    "scale",
    "offset",
    "range",
    "shot_counter",
    "history",
    "\"u32\"",
    "\"string\"",
    "\"f32\"",
];

/// The record the poller makes of a machine's snapshot (as `DevicePoller::record` does).
fn shot_record(snap: &Snapshot, machine: &str) -> Record {
    Record {
        seq: 1,
        kind: RecordKind::Shot,
        machine_id: machine.into(),
        device_id: machine.into(),
        ts_ms: snap.timestamp_ms.filter(|t| *t > 0).unwrap_or(1_700_000_000_000),
        shot_number: snap.counter.or(Some(0)),
        mold: snap.mold.clone(),
        values: snap.values.clone(),
        out_of_range: snap.flagged(),
    }
}

/// A mold the ingest refuses: `bug_a_blank_mold_register_loses_every_shot`.
fn mold_is_known_bug(snap: &Snapshot) -> bool {
    snap.mold.as_deref().is_some_and(|m| limits::check_name("mold", m).is_err())
}

/// A snapshot's contract: values finite and named by value tags, flags explained, a counter
/// within its tag's width, and a shot record of it that the ingest accepts.
fn check_snapshot(p: &Profile, snap: &Snapshot) {
    let value_tags: Vec<&str> = p.value_tags().iter().map(|t| t.name.as_str()).collect();
    for (name, v) in &snap.values {
        assert!(v.is_finite(), "{name} = {v}");
        assert!(value_tags.contains(&name.as_str()), "{name} is not a value tag");
    }
    for issue in &snap.out_of_range {
        let t = p.tag(&issue.tag).expect("a flagged value names a tag");
        assert!(!issue.value.is_finite() || t.out_of_range(issue.value), "{issue:?} flagged for nothing");
    }
    if let (Some(c), Some(t)) = (snap.counter, p.shot_counter.as_deref().and_then(|n| p.tag(n))) {
        assert!(t.registers() >= 4 || c < 1u64 << (16 * u32::from(t.registers())), "counter {c} past {t:?}");
    }
    if !mold_is_known_bug(snap) {
        let r = shot_record(snap, "m1");
        if let Err(e) = check_record(&r) {
            panic!("the ingest refuses a shot decoded from a valid profile: {e}: {r:?}");
        }
    }
}

/// A register image of `p`'s planned reads: random words, some blocks short or missing.
fn image(u: &mut Unstructured<'_>, p: &Profile) -> Gen<Registers> {
    let mut regs = Registers::default();
    for block in profile::plan_reads(&p.tags, 8) {
        let n = match u.int_in_range(0..=5)? {
            0 => u.int_in_range(0..=usize::from(block.count))?,
            1 => continue,
            _ => usize::from(block.count),
        };
        let words = (0..n).map(|_| any_register(u)).collect::<Gen<Vec<u16>>>()?;
        regs.push(block, words);
    }
    Ok(regs)
}

/// `bug_string_tag_of_len_0_panics_in_validate` (shared): such profiles are left out.
fn has_zero_length_tag(p: &Profile) -> bool {
    p.tags.iter().any(|t| t.dtype == DataType::String && t.len == Some(0))
}

fn check_profile_text(u: &mut Unstructured<'_>, text: &str) -> Gen<()> {
    let p = match timed("parse profile", || toml::from_str::<Profile>(text)) {
        Err(e) => {
            note(false);
            assert_reason(&e, &text);
            return Ok(());
        }
        Ok(p) if has_zero_length_tag(&p) => return Ok(()),
        Ok(p) => p,
    };
    let errs = timed("Profile::validate", || p.validate());
    note(errs.is_empty());
    for e in &errs {
        assert_reason(e, &p);
    }
    if errs.is_empty() {
        let regs = image(u, &p)?;
        let snap = timed("Snapshot::decode", || Snapshot::decode(&p, &regs, 0));
        check_snapshot(&p, &snap);
    }
    Ok(())
}

#[test]
fn fuzz_profile_toml_and_snapshots() {
    fuzz("edge/profile", |u| {
        let text = match u.int_in_range(0..=2)? {
            0 => toml_soup(u, PROFILE_KEYS)?,
            _ => mutate_toml(u, PROFILE)?,
        };
        check_profile_text(u, &text)
    });
}

const TYPES: [DataType; 8] = [
    DataType::U16,
    DataType::I16,
    DataType::U32,
    DataType::I32,
    DataType::U64,
    DataType::F32,
    DataType::F64,
    DataType::String,
];
const ORDERS: [Order; 2] = [Order::Big, Order::Little];

/// One tag of every data type, in random word and byte orders, scales and ranges.
fn every_type_profile(u: &mut Unstructured<'_>) -> Gen<Profile> {
    let mut tags = Vec::new();
    let mut address = u.int_in_range(0..=300u16)?;
    let sane = u.ratio(3, 4)?;
    for (i, dtype) in TYPES.into_iter().enumerate() {
        let tag = Tag {
            name: format!("{dtype:?}_{i}"),
            register: *u.choose(&[RegisterKind::Holding, RegisterKind::Input])?,
            address,
            dtype,
            len: (dtype == DataType::String).then_some(u.int_in_range(1..=8)?),
            word_order: Some(*u.choose(&ORDERS)?),
            byte_order: Some(*u.choose(&ORDERS)?),
            scale: if sane { *u.choose(&[1.0, 0.1, -2.5, 1e-3])? } else { any_f64(u)? },
            offset: if sane { *u.choose(&[0.0, -40.0, 273.15])? } else { any_f64(u)? },
            unit: None,
            range: match u.int_in_range(0..=2)? {
                0 => None,
                1 if sane => Some([-1e3, 1e3]),
                _ => Some([any_f64(u)?, any_f64(u)?]),
            },
        };
        address = address.saturating_add(tag.registers() + u.int_in_range(0..=3)?);
        tags.push(tag);
    }
    let roles: Vec<String> = tags.iter().map(|t| t.name.clone()).collect();
    Ok(Profile {
        name: "every-type".into(),
        word_order: Order::Big,
        byte_order: Order::Big,
        shot_counter: Some(roles[*u.choose(&[0, 2, 4])?].clone()),
        mold_code: Some(roles[7].clone()),
        state: None,
        timestamp: if u.arbitrary()? { Some(roles[*u.choose(&[4, 5, 6])?].clone()) } else { None },
        shot_values: Vec::new(),
        history: None,
        tags,
    })
}

#[test]
fn fuzz_modbus_snapshot_every_type_and_order() {
    fuzz("edge/modbus", |u| {
        let p = every_type_profile(u)?;
        let regs = image(u, &p)?;
        let shift = if u.ratio(1, 4)? { u.arbitrary()? } else { 0 };
        let snap = timed("Snapshot::decode", || Snapshot::decode(&p, &regs, shift));
        let valid = p.validate().is_empty();
        note(valid);
        if !valid {
            return Ok(()); // Hostile scales or addresses: only "no panic" holds.
        }
        check_snapshot(&p, &snap);
        // A tag whose registers are not all in the image is absent, not guessed.
        for t in &p.tags {
            if regs.words(t, shift).is_none() {
                assert!(!snap.values.contains_key(&t.name), "{} decoded from missing registers", t.name);
            }
        }
        Ok(())
    });
}

/// Found by `fuzz_profile_toml_and_snapshots`: a string mold tag whose registers are blank
/// (spaces or NULs — a controller with no mold code set) decodes to `Some("")`; the poller
/// puts it into every shot record (`edge/src/schedule.rs`, `DevicePoller::record`), and the
/// ingest's `check_record` refuses each one ("mold is empty"), so every shot of the machine
/// lands in the quarantine. A string tag longer than 64 registers (mold over 128 bytes) and an
/// OPC UA mold node answering an empty or over-long text do the same.
#[test]
fn bug_a_blank_mold_register_loses_every_shot() {
    let p: Profile = toml::from_str(PROFILE).expect("the example parses");
    let mut regs = Registers::default();
    for block in profile::plan_reads(&p.tags, 8) {
        let n = usize::from(block.count);
        regs.push(block, vec![0; n]);
    }
    let snap = Snapshot::decode(&p, &regs, 0);
    assert_eq!(snap.mold, None, "blank mold registers give no mold");
    let r = shot_record(&snap, "m1");
    check_record(&r).expect("a shot from blank mold registers is accepted by the ingest");
}

// ---------------------------------------------------------------------------------------------
// Shot planning across counter wrap and resets
// ---------------------------------------------------------------------------------------------

#[test]
fn fuzz_shot_plan() {
    fuzz("edge/shot_plan", |u| {
        let bits = *u.choose(&[16u32, 32, 64])?;
        let mask = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
        let current = any_u64(u)? & mask;
        let last = match u.int_in_range(0..=3)? {
            0 => None,
            1 => Some(any_u64(u)?),
            _ => Some(current.wrapping_sub(u.int_in_range(0..=100)?) & mask),
        };
        // A history ring's depth is a u16 (`History::depth`).
        let depth = u64::from(*u.choose(&[0, 1, 2, 10, 64, u16::MAX])?);
        // `bug_shot_plan_panics_when_the_last_shot_is_wider_than_the_counter`: left out.
        if last.is_some_and(|l| l != current && profile::counter_delta(l, current, bits) == 0) {
            return Ok(());
        }
        let plan = timed("shot::plan", || shot::plan(last, current, bits, depth));
        match &plan {
            ShotPlan::None => assert_eq!(last, Some(current)),
            ShotPlan::Reset { previous, current: c } => {
                assert_eq!((Some(*previous), *c), (last, current));
            }
            ShotPlan::Record { backfill, current: c } => {
                assert_eq!(*c, current);
                assert!(backfill.len() as u64 <= depth.saturating_sub(1), "{plan:?}");
                assert!(backfill.iter().all(|n| *n <= mask && *n != current), "{plan:?}");
                let backfilled = backfill.len();
                let missed = shot::missed(last, current, bits, backfilled);
                if let Some(l) = last {
                    let delta = profile::counter_delta(l, current, bits);
                    assert_eq!(missed + backfilled as u64, delta - 1, "every shot is recorded or missed");
                }
            }
        }
        Ok(())
    });
}

/// Found by `fuzz_shot_plan` (which now leaves this input out): when the last recorded shot
/// has bits above the counter's width (recorded while the counter was u32, now u16 — or any
/// stored shot number ≥ 2^bits) and equals the current counter modulo 2^bits, the wrap-aware
/// delta is 0 and `plan` computes `delta - 1` (`edge/src/shot.rs`, `plan`): a panic in debug
/// builds, a bogus backfill of `history_depth - 1` shots in release.
#[test]
fn bug_shot_plan_panics_when_the_last_shot_is_wider_than_the_counter() {
    let plan = std::panic::catch_unwind(|| shot::plan(Some(65_541), 5, 16, 8)).expect("plan does not panic");
    assert!(!matches!(plan, ShotPlan::Record { ref backfill, .. } if !backfill.is_empty()), "{plan:?}");
}

// ---------------------------------------------------------------------------------------------
// OPC UA: node ids, node maps and read results
// ---------------------------------------------------------------------------------------------

/// A node id text: well formed with a hostile part, or anything at all.
fn node_id_text(u: &mut Unstructured<'_>) -> Gen<String> {
    let prefix = *u.choose(&[
        "",
        "ns=2;",
        "ns=65535;",
        "ns=65536;",
        "ns=-1;",
        "nsu=urn:vendor;",
        "nsu=;",
        "nsu=urn:x",
    ])?;
    let kind = *u.choose(&["i=", "s=", "g=", "b=", "q=", ""])?;
    let id = match u.int_in_range(0..=4)? {
        0 => u.arbitrary::<u32>()?.to_string(),
        1 => "4294967296".into(),
        2 => "72962B91-FA75-4AE6-8D28-B404DC7DAF63".into(),
        3 => "M/Cycle;Time=1".into(),
        _ => any_string(u)?,
    };
    Ok(if u.ratio(1, 5)? { any_string(u)? } else { format!("{prefix}{kind}{id}") })
}

#[test]
fn fuzz_opcua_node_ids() {
    fuzz("opcua/node_id", |u| {
        let text = node_id_text(u)?;
        let verdict = timed("NodeRef::parse", || NodeRef::parse(&text));
        note(verdict.is_ok());
        match verdict {
            Err(e) => assert!(e.to_string().contains("node id"), "{e} does not say what is wrong"),
            Ok(NodeRef::Id(id)) => {
                let again =
                    NodeRef::parse(&id.to_string()).expect("a parsed node id prints as a parseable one");
                assert_eq!(again, NodeRef::Id(id));
            }
            Ok(NodeRef::Uri { uri, id }) => {
                let r = NodeRef::Uri { uri: uri.clone(), id };
                let missing = r.resolve(&[]).expect_err("no namespaces, no node");
                assert!(missing.to_string().contains(&format!("{uri:?}")), "{missing}");
                let id = r.resolve(&["\u{0}other".into(), uri]).expect("a known namespace resolves");
                assert_eq!(id.namespace, 1);
            }
        }
        Ok(())
    });
}

const NODE_MAP: &str = r#"
name = "m"
shot_counter = "counter"
mold_code = "mold"
timestamp = "ts"
[[nodes]]
name = "counter"
node = "ns=3;i=1001"
type = "u16"
[[nodes]]
name = "ts"
node = "ns=3;s=Cycle/Time"
[[nodes]]
name = "mold"
node = "nsu=urn:vendor;s=Mold"
type = "string"
[[nodes]]
name = "Cycle_Time"
node = "ns=3;s=Cycle/CycleTime"
unit = "s"
scale = 0.1
range = [0.0, 600.0]
"#;

/// A node name the ingest refuses as a value name: `bug_node_map_accepts_names_the_ingest_refuses`.
fn has_unacceptable_node_name(p: &NodeProfile) -> bool {
    p.nodes.iter().any(|n| limits::check_name("value name", &n.name).is_err())
}

#[test]
fn fuzz_opcua_node_map() {
    fuzz("opcua/node_map", |u| {
        let text = match u.int_in_range(0..=3)? {
            0 => toml_soup(
                u,
                &["name", "nodes", "node", "type", "scale", "range", "shot_counter", "\"ns=2;i=1\""],
            )?,
            _ => mutate_toml(u, NODE_MAP)?,
        };
        let map = match timed("parse node map", || toml::from_str::<NodeProfile>(&text)) {
            Err(e) => {
                note(false);
                assert_reason(&e, &text);
                return Ok(());
            }
            Ok(map) => map,
        };
        let errs = timed("NodeProfile::validate", || map.validate());
        note(errs.is_empty());
        for e in &errs {
            assert!(!e.trim().is_empty(), "an empty problem line");
        }
        if !errs.is_empty() {
            return Ok(());
        }
        let p = map.to_profile();
        let names: Vec<&str> = p.value_tags().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, map.value_names(), "the node map and its profile disagree on values");
        if !has_unacceptable_node_name(&map) {
            assert!(p.validate().is_empty(), "a valid node map gives an invalid profile: {:?}", p.validate());
        }
        Ok(())
    });
}

/// A read result as a server might send it: any variant, any status, or none.
fn any_data_value(u: &mut Unstructured<'_>) -> Gen<DataValue> {
    let variant = match u.int_in_range(0..=16)? {
        0 => Variant::Empty,
        1 => Variant::Boolean(u.arbitrary()?),
        2 => Variant::SByte(u.arbitrary()?),
        3 => Variant::Byte(u.arbitrary()?),
        4 => Variant::Int16(u.arbitrary()?),
        5 => Variant::UInt16(u.arbitrary()?),
        6 => Variant::Int32(u.arbitrary()?),
        7 => Variant::UInt32(u.arbitrary()?),
        8 => Variant::Int64(*u.choose(&[i64::MIN, -1, 0, i64::MAX])?),
        9 => Variant::UInt64(any_u64(u)?),
        10 => Variant::Float(f32::from_bits(u.arbitrary()?)),
        11 => Variant::Double(any_f64(u)?),
        12 => Variant::String(if u.arbitrary()? { UAString::from(any_string(u)?) } else { UAString::null() }),
        13 => Variant::from(LocalizedText::new("ko", &any_string(u)?)),
        14 => Variant::from(if u.arbitrary()? {
            DateTime::null()
        } else {
            DateTime::from(u.arbitrary::<i64>()?)
        }),
        15 => Variant::StatusCode(StatusCode::from(u.arbitrary::<u32>()?)),
        _ => Variant::ByteString(ByteString::from(u.arbitrary::<Vec<u8>>()?)),
    };
    let mut dv = DataValue::from(variant);
    if u.ratio(1, 5)? {
        dv.status = Some(StatusCode::from(u.arbitrary::<u32>()?));
    }
    if u.ratio(1, 20)? {
        dv.value = None;
    }
    Ok(dv)
}

#[test]
fn fuzz_opcua_read_results() {
    let map: NodeProfile = toml::from_str(NODE_MAP).expect("the example node map parses");
    fuzz("opcua/snapshot", |u| {
        let mut map = map.clone();
        if u.ratio(1, 4)? {
            map.nodes.push(NodeTag {
                name: "Extra".into(),
                node: "ns=2;s=X".into(),
                dtype: None,
                scale: *u.choose(&[1.0, 1e300, -1.0])?,
                offset: 0.0,
                unit: None,
                range: Some([any_f64(u)?, any_f64(u)?]),
            });
        }
        let n = map.nodes.len();
        let count = if u.ratio(1, 10)? { u.int_in_range(0..=n + 1)? } else { n };
        let results = (0..count).map(|_| any_data_value(u)).collect::<Gen<Vec<_>>>()?;
        let p = map.to_profile();
        // As `OpcUaSource::new` does: the counter's width comes from the node map.
        let bits = p.counter_bits();
        let verdict = timed("node::snapshot", || node::snapshot(&map, bits, &results));
        note(verdict.is_ok());
        match verdict {
            Err(e) => {
                let text = e.to_string();
                let names_a_node = map.nodes.iter().any(|n| text.contains(&format!("({})", n.name)));
                assert!(names_a_node || matches!(e, node::ReadError::Count { .. }), "{text} names no node");
            }
            Ok(snap) => {
                if let Some(c) = snap.counter {
                    assert!(bits >= 64 || c < 1u64 << bits, "counter {c} past {bits} bits");
                }
                check_snapshot(&p, &snap);
            }
        }
        assert!(!node::status_text(StatusCode::from(u.arbitrary::<u32>()?)).is_empty());
        Ok(())
    });
}

/// Found by `fuzz_opcua_node_map` (which now leaves such names out): `NodeProfile::validate`
/// does not check node names like `Profile::validate` checks tag names (`limits::check_name`),
/// so a node named with a control character or over 128 bytes (43 Hangul syllables) is
/// accepted; the name becomes a value name in every record, and the ingest's `check_record`
/// refuses every record of the device (`edge/src/sources/opcua/map.rs`, `validate`).
#[test]
fn bug_node_map_accepts_names_the_ingest_refuses() {
    for name in ["가".repeat(43), "Cycle\tTime".to_string()] {
        let text = NODE_MAP
            .replace("name = \"Cycle_Time\"", &format!("name = {}", toml::Value::String(name.clone())));
        let map: NodeProfile = toml::from_str(&text).expect("the node map parses");
        assert!(
            !map.validate().is_empty(),
            "node name {name:?} is accepted but every record with it is refused"
        );
    }
}

/// Found by `fuzz_opcua_read_results` (which now leaves such molds out): a mold node answering
/// a number is printed with `format!("{n}")` (`edge/src/sources/opcua/node.rs`, `text`), so
/// `Double(1e300)` becomes a 301-digit mold that the ingest's `check_record` refuses ("mold is
/// 301 bytes long"), losing the shot; an empty `String` answer gives the blank mold of
/// `bug_a_blank_mold_register_loses_every_shot`.
#[test]
fn bug_a_numeric_opcua_mold_is_refused_by_the_ingest() {
    let map: NodeProfile = toml::from_str(NODE_MAP).expect("the example node map parses");
    let results = [
        DataValue::from(Variant::UInt16(7)),
        DataValue::from(Variant::from(DateTime::null())),
        DataValue::from(Variant::Double(1e300)),
        DataValue::from(Variant::Double(61.5)),
    ];
    let snap = node::snapshot(&map, 16, &results).expect("the read is fine");
    let r = shot_record(&snap, "m9");
    check_record(&r).expect("a shot with a numeric mold is accepted by the ingest");
}

// ---------------------------------------------------------------------------------------------
// Rollout: desired-state payloads and bundle chunks
// ---------------------------------------------------------------------------------------------

/// Most memory a transfer's chunk table may take before its first chunk arrives.
const MAX_SLOT_TABLE_BYTES: u64 = 64 << 20;

/// Bytes `Transfer::new` allocates up front for `r` (one `Option<Vec<u8>>` per chunk).
fn slot_table_bytes(r: &BundleRef) -> u64 {
    u64::from(r.chunks) * std::mem::size_of::<Option<Vec<u8>>>() as u64
}

/// What `Agent::on_message` does with a desired-state payload before any I/O or allocation:
/// bound its size, parse it, check every entry. `None`: the payload is ignored.
fn desired_entries(payload: &[u8], max_bundle_bytes: u64) -> Option<Vec<(BundleRef, Result<(), String>)>> {
    if payload.is_empty() || payload.len() > MAX_DESIRED_BYTES {
        return None;
    }
    let desired: DesiredModels = serde_json::from_slice(payload).ok()?;
    Some(
        desired
            .models
            .into_iter()
            .map(|m| (m.bundle.clone(), m.check(max_bundle_bytes).map_err(|e| e.to_string())))
            .collect(),
    )
}

fn valid_desired_json(u: &mut Unstructured<'_>) -> Gen<serde_json::Value> {
    let bytes = u.int_in_range(1..=DEFAULT_MAX_BUNDLE_BYTES)?;
    let chunk_bytes = u.int_in_range(4096..=moldops_shared::rollout::MAX_CHUNK_BYTES)?;
    Ok(serde_json::json!({
        "models": [{
            "model_key": {"machine_id": "M1", "mold": "MOLD-A"},
            "bundle": {
                "model_id": "M1/MOLD-A@3",
                "version": 3,
                "sha256": hex::encode(u.arbitrary::<[u8; 32]>()?),
                "bytes": bytes,
                "chunks": bytes.div_ceil(u64::from(chunk_bytes)),
                "chunk_bytes": chunk_bytes,
            }
        }],
        "issued_at_ms": 1_700_000_000_000i64,
    }))
}

/// Breaks one field of a desired-state document with a hostile number or text.
fn mutate_desired(u: &mut Unstructured<'_>, mut doc: serde_json::Value) -> Gen<Vec<u8>> {
    let field = *u.choose(&["bytes", "chunks", "chunk_bytes", "sha256", "version", "model_id"])?;
    let hostile = match u.int_in_range(0..=3)? {
        0 => serde_json::json!(any_u64(u)?),
        1 => serde_json::json!(any_string(u)?),
        2 => serde_json::json!(-1),
        _ => serde_json::json!(u.arbitrary::<u32>()?),
    };
    doc["models"][0]["bundle"][field] = hostile;
    if u.ratio(1, 4)? {
        doc["models"][0]["model_key"]["machine_id"] = serde_json::json!(any_string(u)?);
    }
    let mut text = serde_json::to_string(&doc).expect("a JSON document serialises");
    if u.ratio(1, 5)? {
        truncate(u, &mut text)?;
    }
    Ok(text.into_bytes())
}

#[test]
fn fuzz_desired_state_payload() {
    fuzz("rollout/desired", |u| {
        let payload = match u.int_in_range(0..=3)? {
            0 => u.arbitrary::<Vec<u8>>()?,
            1 => serde_json::to_vec(&valid_desired_json(u)?).expect("serialises"),
            _ => {
                let valid = valid_desired_json(u)?;
                mutate_desired(u, valid)?
            }
        };
        let max = if u.ratio(3, 4)? { DEFAULT_MAX_BUNDLE_BYTES } else { any_u64(u)? };
        let Some(entries) = timed("desired state", || desired_entries(&payload, max)) else {
            note(false);
            return Ok(());
        };
        for (r, verdict) in entries {
            note(verdict.is_ok());
            match verdict {
                Err(reason) => assert!(!reason.trim().is_empty(), "refused without a reason: {r:?}"),
                // `bug_desired_state_with_one_byte_chunks_allocates_gigabytes`: too big a table
                // is not built here.
                Ok(()) if slot_table_bytes(&r) > MAX_SLOT_TABLE_BYTES => {}
                Ok(()) => {
                    let mut t = timed("Transfer::new", || Transfer::new(r.clone()));
                    let index = if u.arbitrary()? { u.arbitrary()? } else { r.chunks - 1 };
                    let data: Vec<u8> = u.arbitrary()?;
                    match t.accept(index, &data) {
                        Err(e) => assert_reason(&e, &(index, data.len())),
                        Ok(()) => assert!(index < r.chunks && data.len() as u64 <= u64::from(r.chunk_bytes)),
                    }
                }
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_bundle_chunks_assemble() {
    fuzz("rollout/chunks", |u| {
        let bytes: Vec<u8> = u.arbitrary()?;
        if bytes.is_empty() {
            return Ok(());
        }
        let chunk_bytes = u.int_in_range(1..=64u32)?;
        let r = BundleRef::describe("M1@1", 1, &bytes, chunk_bytes);
        r.check(DEFAULT_MAX_BUNDLE_BYTES).expect("describe gives a valid reference");
        let mut t = Transfer::new(r.clone());
        let mut order: Vec<u32> = (0..r.chunks).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, u.int_in_range(0..=i)?);
        }
        let chunk = |i: u32| {
            let start = i as usize * chunk_bytes as usize;
            &bytes[start..(start + chunk_bytes as usize).min(bytes.len())]
        };
        for i in order {
            if u.ratio(1, 3)? {
                // Garbage first: a chunk past the end, or the wrong length.
                let bad_index = u.int_in_range(r.chunks..=u32::MAX)?;
                let e = t.accept(bad_index, chunk(i)).expect_err("no such chunk");
                assert_reason(&e, &bad_index);
                let mut wrong = chunk(i).to_vec();
                wrong.push(0);
                assert_reason(&t.accept(i, &wrong).expect_err("a chunk one byte too long"), &i);
            }
            t.accept(i, chunk(i)).expect("a right chunk is taken");
            if u.ratio(1, 4)? {
                t.accept(i, chunk(i)).expect("a duplicate is harmless");
            }
        }
        assert_eq!(t.received(), r.chunks);
        assert_eq!(t.complete().as_deref(), Some(bytes.as_slice()), "chunks reassemble the bundle");
        Ok(())
    });
}

const SEED: [u8; 32] = [7; 32];

fn sealed_bundle() -> Vec<u8> {
    let key = ModelKey { machine_id: "M1".into(), mold: None };
    let features = vec![FeatureSpec { name: "Cycle_Time".into(), unit: None, fill: 30.0 }];
    let manifest = Manifest::new(key, "lstm_ae", features, 8, 0.5);
    let files = BTreeMap::from([(MODEL_FILE.to_string(), b"onnx".to_vec())]);
    Bundle::seal(manifest, files, &SEED).expect("a fresh manifest seals").to_bytes()
}

#[test]
fn fuzz_fetched_bundle_check() {
    let good = sealed_bundle();
    let key = ModelKey { machine_id: "M1".into(), mold: None };
    let public = bundle::public_key(&SEED);
    let available = vec!["Cycle_Time".to_string()];
    let desired = BundleRef::describe("M1@1", 1, &good, 64);
    transfer::check(&good, &desired, &key, &public, &available).expect("the sealed bundle passes");
    fuzz("rollout/check", |u| {
        let mut bytes = good.clone();
        match u.int_in_range(0..=3)? {
            0 => bytes = u.arbitrary()?,
            1 => {
                let at = u.choose_index(bytes.len())?;
                bytes[at] ^= u.arbitrary::<u8>()?.max(1);
            }
            2 => bytes.truncate(u.int_in_range(0..=bytes.len())?),
            _ => {}
        }
        // Half the time the desired state vouches for the bytes, so the deeper checks run.
        let desired =
            if u.arbitrary()? { BundleRef::describe("M1@1", 1, &bytes, 64) } else { desired.clone() };
        let verdict =
            timed("transfer::check", || transfer::check(&bytes, &desired, &key, &public, &available));
        note(verdict.is_ok());
        match verdict {
            Err(e) => assert_reason(&e, &bytes.len()),
            Ok((_, m)) => assert_eq!((m.model_key, m.version), (key.clone(), desired.version)),
        }
        Ok(())
    });
}

/// Found reviewing `Transfer::new` for `fuzz_desired_state_payload`: `BundleRef::check`
/// accepts `chunk_bytes = 1`, so a retained desired state naming a bundle of the default
/// 256 MiB limit in 268 435 456 one-byte chunks passes every check, and `Transfer::new`
/// (`edge/src/rollout/transfer.rs`) then allocates `vec![None; chunks]` — 6 GiB — before a
/// single chunk arrives. This test computes the size instead of allocating it.
#[test]
fn bug_desired_state_with_one_byte_chunks_allocates_gigabytes() {
    let payload = format!(
        r#"{{"models":[{{"model_key":{{"machine_id":"M1"}},"bundle":{{"model_id":"M1@1","version":1,"sha256":"{}","bytes":{DEFAULT_MAX_BUNDLE_BYTES},"chunks":{DEFAULT_MAX_BUNDLE_BYTES},"chunk_bytes":1}}}}]}}"#,
        "a".repeat(64)
    );
    let entries = desired_entries(payload.as_bytes(), DEFAULT_MAX_BUNDLE_BYTES).expect("the payload parses");
    let (r, verdict) = &entries[0];
    assert!(
        verdict.is_err() || slot_table_bytes(r) <= MAX_SLOT_TABLE_BYTES,
        "accepted: Transfer::new would allocate {} bytes up front",
        slot_table_bytes(r)
    );
}
