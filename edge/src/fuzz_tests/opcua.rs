//! Fuzz tests of OPC UA decoding: node ids, node maps and read results turned into snapshots.

use super::*;
use crate::sources::opcua::config::{NodeProfile, NodeTag};
use crate::sources::opcua::node::{self, NodeRef};
use ::opcua::types::{ByteString, DataValue, DateTime, LocalizedText, StatusCode, UAString, Variant};
use moldops_shared::codec::check_record;
use moldops_shared::limits;

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

#[test]
fn fuzz_opcua_node_map() {
    fuzz("opcua/node_map", |u| {
        let text = match u.int_in_range(0..=3)? {
            0 => TOML.soup(
                u,
                &["name", "nodes", "node", "type", "scale", "range", "shot_counter", "\"ns=2;i=1\""],
            )?,
            _ => TOML.mutate(u, NODE_MAP)?,
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
        // Every node name becomes a value name on the wire: the ingest must take it.
        for n in &map.nodes {
            limits::check_name("value name", &n.name).expect("a valid node map has valid node names");
        }
        let p = map.to_profile();
        let names: Vec<&str> = p.value_tags().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, map.value_names(), "the node map and its profile disagree on values");
        assert!(p.validate().is_empty(), "a valid node map gives an invalid profile: {:?}", p.validate());
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

/// Found by `fuzz_opcua_node_map`, fixed: `NodeProfile::validate` did not check node names
/// like `Profile::validate` checks tag names, so a node named with a control character or over
/// 128 bytes (43 Hangul syllables) was accepted, and the ingest's `check_record` refused every
/// record of the device (the name is a value name in each). `validate` now runs
/// `limits::check_name` on node names (`edge/src/sources/opcua/map.rs`); the property asserts
/// every name of an accepted node map passes it.
#[test]
fn regression_node_map_accepts_names_the_ingest_refuses() {
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

/// Found by `fuzz_opcua_read_results`, fixed: a mold node answering a number is printed with
/// `format!("{n}")` (`edge/src/sources/opcua/node.rs`, `text`), so `Double(1e300)` became a
/// 301-digit mold that the ingest's `check_record` refused ("mold is 301 bytes long"), losing
/// the shot; an empty `String` answer gave the blank mold of
/// `regression_a_blank_mold_register_loses_every_shot`. `node::snapshot` now drops a mold that
/// fails `limits::check_name` (`crate::shot::usable_mold`): the shot lands without one.
#[test]
fn regression_a_numeric_opcua_mold_is_refused_by_the_ingest() {
    let map: NodeProfile = toml::from_str(NODE_MAP).expect("the example node map parses");
    let results = [
        DataValue::from(Variant::UInt16(7)),
        DataValue::from(Variant::from(DateTime::null())),
        DataValue::from(Variant::Double(1e300)),
        DataValue::from(Variant::Double(61.5)),
    ];
    let snap = node::snapshot(&map, 16, &results).expect("the read is fine");
    assert_eq!(snap.mold, None, "a mold the ingest refuses is dropped");
    assert!(
        snap.mold_refused.as_deref().is_some_and(|why| why.contains("mold")),
        "and the reason kept to log"
    );
    let r = shot_record(&snap, "m9");
    check_record(&r).expect("a shot with a numeric mold is accepted by the ingest");
}
