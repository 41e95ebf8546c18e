use super::*;
use crate::sources::opcua::config::NodeTag;
use opcua::types::{DateTime, LocalizedText};

fn tag(name: &str, node: &str) -> NodeTag {
    NodeTag {
        name: name.into(),
        node: node.into(),
        dtype: None,
        scale: 1.0,
        offset: 0.0,
        unit: None,
        range: None,
    }
}

fn profile() -> NodeProfile {
    let mut temp = tag("temp", "ns=2;s=T");
    temp.scale = 0.1;
    temp.range = Some([0.0, 300.0]);
    let mut counter = tag("counter", "ns=2;i=1");
    counter.dtype = Some(moldops_shared::profile::DataType::U16);
    NodeProfile {
        name: "t".into(),
        shot_counter: Some("counter".into()),
        mold_code: Some("mold".into()),
        material_code: None,
        state: None,
        timestamp: Some("ts".into()),
        shot_values: vec![],
        namespaces: Default::default(),
        nodes: vec![
            counter,
            tag("ts", "ns=2;i=2"),
            tag("mold", "ns=2;s=M"),
            temp,
            tag("running", "ns=2;s=R"),
        ],
    }
}

#[test]
fn parses_node_ids_and_resolves_namespace_uris() {
    assert!(matches!(NodeRef::parse("ns=2;s=Machine/Counter"), Ok(NodeRef::Id(_))));
    assert!(matches!(NodeRef::parse("i=2258"), Ok(NodeRef::Id(_))));
    let r = NodeRef::parse("nsu=urn:vendor:imm;s=IMM/Counter").unwrap_or_else(|e| panic!("{e}"));
    let ns = ["http://opcfoundation.org/UA/".to_string(), "urn:server".into(), "urn:vendor:imm".into()];
    let id = r.resolve(&ns).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((id.namespace, id.to_string()), (2, "ns=2;s=IMM/Counter".to_string()));
    let missing = r.resolve(&ns[..2]).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(missing.contains("urn:vendor:imm"), "{missing}");
    for bad in ["", "ns=two;s=x", "Counter", "nsu=urn:x", "nsu=urn:x;ns=2;s=y", "ns=2;q=1", "i=abc"] {
        let e = NodeRef::parse(bad).err().unwrap_or_else(|| panic!("{bad:?} accepted")).to_string();
        assert!(e.contains("ns=<index>"), "{bad:?}: {e}");
    }
}

#[test]
fn snapshot_decodes_roles_scales_and_flags() {
    let p = profile();
    let results = vec![
        DataValue::from(Variant::UInt32(65_536 + 7)),
        DataValue::from(Variant::from(DateTime::null())),
        DataValue::from(Variant::from(LocalizedText::new("", " MOLD-7 "))),
        DataValue::from(Variant::Float(4000.0)),
        DataValue::from(Variant::Boolean(true)),
    ];
    let s = snapshot(&p, 16, &results).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.counter, Some(7), "a u16 counter wraps");
    assert_eq!(s.timestamp_ms, Some(0), "null DateTime = no cycle yet");
    assert_eq!(s.mold.as_deref(), Some("MOLD-7"));
    assert_eq!(s.values.get("temp"), Some(&400.0));
    assert_eq!(s.values.get("running"), Some(&1.0));
    assert_eq!(s.flagged(), vec!["temp".to_string()]);

    let when = chrono::DateTime::from_timestamp_millis(1_767_600_000_123).unwrap_or_default();
    let mut results = results;
    results[1] = DataValue::from(Variant::from(DateTime::from(when)));
    let s = snapshot(&p, 16, &results).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.timestamp_ms, Some(1_767_600_000_123));
}

#[test]
fn a_job_material_array_joins_the_mould_key() {
    let mut p = profile();
    p.material_code = Some("material".into());
    p.nodes.push(tag("material", "ns=2;s=Job/Material"));
    assert!(p.validate().is_empty(), "{:?}", p.validate());
    assert!(!p.value_names().contains(&"material"), "a role is no shot value");
    let names = |names: &[&str]| {
        let values: Vec<Variant> = names.iter().map(|n| Variant::from(*n)).collect();
        let array = opcua::types::Array::new(opcua::types::VariantScalarTypeId::String, values);
        DataValue::from(Variant::Array(Box::new(array.unwrap_or_else(|e| panic!("{e:?}")))))
    };
    let read = |material: DataValue| {
        let results = vec![
            DataValue::from(Variant::UInt32(7)),
            DataValue::from(Variant::from(DateTime::null())),
            DataValue::from(Variant::from("MOLD-7")),
            DataValue::from(Variant::Float(2000.0)),
            DataValue::from(Variant::Boolean(true)),
            material,
        ];
        snapshot(&p, 16, &results).unwrap_or_else(|e| panic!("{e}")).mold
    };
    // EUROMAP 83's job Material is a String[]: every name, in order.
    assert_eq!(read(names(&["PA66-GF30", "MB-black"])).as_deref(), Some("MOLD-7+PA66-GF30,MB-black"));
    assert_eq!(read(DataValue::from(Variant::from(" PA6 "))).as_deref(), Some("MOLD-7+PA6"));
    assert_eq!(read(names(&[])).as_deref(), Some("MOLD-7"), "no material: the mould alone");
}

#[test]
fn bad_status_and_wrong_kinds_name_the_node() {
    let p = profile();
    let good = vec![
        DataValue::from(Variant::UInt32(1)),
        DataValue::from(Variant::Double(5.0)),
        DataValue::from(Variant::from("M")),
        DataValue::from(Variant::Double(1.0)),
        DataValue::from(Variant::Int32(0)),
    ];
    let mut unknown = good.clone();
    unknown[3] = DataValue::from((Variant::Empty, StatusCode::BadNodeIdUnknown));
    let e = snapshot(&p, 32, &unknown).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("ns=2;s=T (temp)") && e.contains("BadNodeIdUnknown"), "{e}");
    let mut text_counter = good.clone();
    text_counter[0] = DataValue::from(Variant::from("seven"));
    let e = snapshot(&p, 32, &text_counter).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("(counter)") && e.contains("non-negative integer"), "{e}");
    let mut negative = good.clone();
    negative[0] = DataValue::from(Variant::Int32(-1));
    assert!(snapshot(&p, 32, &negative).is_err());
    let e = snapshot(&p, 32, &good[..2]).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("2 values for 5 nodes"), "{e}");
}
