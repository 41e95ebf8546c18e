use super::*;

fn shot() -> Record {
    let mut r = Record::new(
        RecordKind::Shot,
        "M1",
        "M1",
        1_764_806_400_123,
        [("Cycle_Time", 31.5), ("Cushion", 4.25)],
    );
    r.seq = 42;
    r.shot_number = Some(4_294_967_295);
    r.mold = Some("금형-A".into());
    r.out_of_range = vec!["Cushion".into()];
    r
}

fn roundtrip(r: &Record, held_from: Option<u64>) -> Decoded {
    let bytes = ddata(r, "0a1b", held_from, 7, 1_000).encode();
    decode_ddata("plant", "edge-1", &r.device_id, &bytes).expect("a valid DDATA")
}

#[test]
fn a_record_survives_ddata_exactly() {
    let r = shot();
    let d = roundtrip(&r, Some(40));
    assert!(d.refused.is_empty(), "{:?}", d.refused);
    assert_eq!(d.batch.records, vec![r.clone()]);
    let b = &d.batch;
    assert_eq!((b.site.as_str(), b.edge_id.as_str(), b.epoch.as_str()), ("plant", "edge-1", "0a1b"));
    assert_eq!((b.first_seq, b.last_seq, b.held_from, b.sent_at_ms), (42, 42, Some(40), 1_000));

    let p =
        Payload::decode_bounded(&ddata(&r, "", None, 255, 1).encode(), MAX_PAYLOAD_BYTES).expect("decodes");
    assert_eq!(p.seq, Some(255));
    let cycle = p.metric("Cycle_Time").expect("a value is a metric");
    assert_eq!((cycle.datatype, cycle.timestamp), (Some(datatype::DOUBLE), Some(1_764_806_400_123)));
    assert_eq!(p.metric(SHOT_NUMBER).and_then(|m| m.value.clone()), Some(MetricValue::Long(4_294_967_295)));
    assert_eq!(p.metric(MOLD).and_then(|m| m.value.clone()), Some(MetricValue::String("금형-A".into())));
}

#[test]
fn model_stamps_negative_times_and_values_named_like_the_shown_metrics_survive() {
    let mut r = Record::new(RecordKind::Peripheral, "M1", "M1-dryer", -5_000, [(SHOT_NUMBER, 3.0)]);
    r.seq = 9;
    r.model =
        Some(ModelStamp { key: "M1".into(), id: "M1@3".into(), version: 3, bundle_sha256: "ab".repeat(32) });
    r.shot_number = Some(17);
    let bytes = ddata(&r, "e", None, 0, 1).encode();
    let p = Payload::decode_bounded(&bytes, MAX_PAYLOAD_BYTES).expect("decodes");
    assert_eq!(p.metrics.len(), 1, "a value called {SHOT_NUMBER} wins over the shown counter");
    assert_eq!(p.metrics[0].timestamp, Some(0), "metric times cannot be negative; the body has the time");
    let got = decode_ddata("s", "e", &r.device_id, &bytes).expect("valid");
    assert!(got.refused.is_empty(), "{:?}", got.refused);
    assert_eq!(got.batch.records, vec![r]);
}

#[test]
fn topics_are_built_and_parsed_and_malformed_ones_refused() {
    let t = topic("plant", MessageType::DData, "edge-1", Some("M1"));
    assert_eq!(t, "spBv1.0/plant/DDATA/edge-1/M1");
    assert_eq!(
        parse_topic(&t),
        Some(Topic { group: "plant", kind: MessageType::DData, node: "edge-1", device: Some("M1") })
    );
    let n = topic("plant", MessageType::NDeath, "edge-1", None);
    assert_eq!(parse_topic(&n).map(|t| (t.kind, t.device)), Some((MessageType::NDeath, None)));
    assert_eq!(filter_all(MessageType::DData), "spBv1.0/+/DDATA/+/+");
    assert_eq!(filter_all(MessageType::NDeath), "spBv1.0/+/NDEATH/+");
    for bad in [
        "spBv1.0/plant/DDATA/edge-1",
        "spBv1.0/plant/NDEATH/edge-1/M1",
        "spBv1.0/plant/XDATA/edge-1/M1",
        "spBv1.0//DDATA/edge-1/M1",
        "spBv1.0/plant/DDATA/edge-1/M1/extra",
        "spAv1.0/plant/DDATA/edge-1/M1",
        "moldops/v1/plant/edge-1/data",
    ] {
        assert_eq!(parse_topic(bad), None, "{bad}");
    }
}

#[test]
fn births_deaths_and_rebirth_requests() {
    let b = nbirth(200, 5);
    assert_eq!((b.seq, bd_seq(&b)), (Some(0), Some(200)));
    assert_eq!(b.metric(REBIRTH).and_then(|m| m.value.clone()), Some(MetricValue::Boolean(false)));
    let d = ndeath(200, 5);
    assert_eq!((d.seq, bd_seq(&d)), (None, Some(200)), "a death carries the birth's bdSeq and no seq");
    assert!(is_moldops_node(&b) && is_moldops_node(&d), "a moldops node's certificates say so");
    assert_eq!(b.metric(BD_SEQ).and_then(|m| m.datatype), Some(datatype::INT64), "bdSeq is an Int64");
    let defs = shot_metrics(["Cycle_Time"]);
    let db = dbirth(1, 5, &defs);
    assert_eq!(db.metrics.len(), 3);
    assert!(db.metrics.iter().all(|m| m.is_null == Some(true) && m.value.is_none()));
    let ask = |v| Payload {
        metrics: vec![Metric::new(REBIRTH, datatype::BOOLEAN, 1, MetricValue::Boolean(v))],
        ..Payload::default()
    };
    assert!(is_rebirth_request(&ask(true)));
    assert!(!is_rebirth_request(&ask(false)));
    assert!(!is_rebirth_request(&Payload::default()));
}

#[test]
fn hostile_ddata_is_refused_with_a_reason() {
    let r = shot();
    let good = ddata(&r, "0a1b", None, 1, 1);
    let decode = |p: &Payload| decode_ddata("plant", "edge-1", "M1", &p.encode());

    let empty_metrics: Vec<u8> = [0x12u8, 0x00].repeat(MAX_METRICS + 1);
    assert!(
        matches!(decode_ddata("p", "e", "d", &empty_metrics), Err(SparkplugError::TooManyMetrics(_))),
        "metrics are counted on the wire before they are decoded"
    );
    let big = vec![0u8; MAX_PAYLOAD_BYTES + 1];
    assert!(matches!(decode_ddata("p", "e", "d", &big), Err(SparkplugError::TooLarge { .. })));
    assert!(matches!(decode_ddata("p", "e", "d", b"\xff\xff\xff"), Err(SparkplugError::Protobuf(_))));
    let foreign = Payload { uuid: None, body: None, ..good.clone() };
    assert!(matches!(decode(&foreign), Err(SparkplugError::NotMoldops(None))));
    let bad_body = Payload { body: Some(b"{\"seq\":1}".to_vec()), ..good.clone() };
    assert!(matches!(decode(&bad_body), Err(SparkplugError::Body(_))));
    let mut meta: RecordMeta = serde_json::from_slice(good.body.as_deref().expect("body")).expect("meta");
    meta.held_from = Some(meta.seq + 1);
    let ahead = Payload { body: Some(serde_json::to_vec(&meta).expect("json")), ..good.clone() };
    assert!(matches!(decode(&ahead), Err(SparkplugError::Body(_))));
    meta.held_from = None;
    meta.epoch = "../x".into();
    let epoch = Payload { body: Some(serde_json::to_vec(&meta).expect("json")), ..good.clone() };
    assert!(matches!(decode(&epoch), Err(SparkplugError::Id(_))));
    assert!(matches!(decode_ddata("a/b", "e", "M1", &good.encode()), Err(SparkplugError::Id(_))));

    // A bad record keeps its identity: refused alone, with the reason, so it is quarantined.
    let mut nan = good.clone();
    nan.metrics[0].value = Some(MetricValue::Double(f64::NAN));
    let d = decode(&nan).expect("header fine");
    assert!(d.batch.records.is_empty());
    assert_eq!(d.refused[0].seq, Some(42));
    assert!(d.refused[0].reason.contains("not finite"), "{}", d.refused[0].reason);
    let mut typed = good.clone();
    typed.metrics.push(Metric::new("Pressure", datatype::STRING, 1, MetricValue::String("high".into())));
    let d = decode(&typed).expect("header fine");
    assert!(d.refused[0].reason.contains("not a Double"), "{}", d.refused[0].reason);
    let mut twice = good.clone();
    twice.metrics.push(twice.metrics[0].clone());
    assert!(decode(&twice).expect("header fine").refused[0].reason.contains("twice"));
}
