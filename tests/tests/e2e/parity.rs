//! Training/serving parity: the simulator's process model drives a few hundred shots (across
//! midnight, with idle stops and mold changes) and their peripheral readings; the records go
//! into a lake through the ingest's commit path and through the ETL, and in time order
//! through the edge's `FeatureAssembler`. Every shot of `etl_data` must carry exactly the
//! feature names, order and values the edge computed for it.

use crate::lake_support::{DAY0, commit, m1_record, simulate_m1};
use moldops_cloud::etl::{self, EtlConfig, ID_COLUMNS, read_etl};
use moldops_scoring::FeatureAssembler;
use moldops_shared::{Record, RecordKind};
use moldops_sim::process::ProcessConfig;
use std::collections::HashMap;

/// Records of `steps` process steps: per step the tcu at the step's time, the dryer 20 s and
/// the scale 40 s before it (so both sides of a 30 s tolerance occur), then the shot.
fn simulate(steps: usize) -> Vec<Record> {
    let cfg = ProcessConfig {
        seed: 7,
        index: 0,
        start_ms: DAY0 + 23 * 3_600_000,
        start_shot: 1,
        defect_rate: 0.1,
        sustained_faults: 0.0,
        mold_change_shots: 120,
        idle_every: 80,
    };
    simulate_m1(cfg, steps, |s| {
        let p = &s.peripherals;
        let tcu = [
            ("supply_temperature", p.supply_temperature),
            ("return_temperature", p.return_temperature),
            ("flow", p.flow),
        ];
        let dryer = [("dew_point", p.dew_point), ("hopper_temperature", p.hopper_temperature)];
        let scale = [("part_weight", p.part_weight), ("weigh_counter", f64::from(p.weigh_counter))];
        vec![
            m1_record(RecordKind::Peripheral, "M1-tcu", s.ts_ms, &tcu),
            m1_record(RecordKind::Peripheral, "M1-dryer", s.ts_ms - 20_000, &dryer),
            m1_record(RecordKind::Peripheral, "M1-scale", s.ts_ms - 40_000, &scale),
        ]
    })
}

#[test]
fn edge_features_equal_etl_data_shot_for_shot() {
    let records = simulate(400);
    let lake = tempfile::tempdir().expect("tempdir");
    commit(lake.path(), "edge-1", 1, records.clone());
    let cfg = EtlConfig::default();
    let summary = etl::run(lake.path(), &cfg).expect("etl");
    let shots = records.iter().filter(|r| r.kind == RecordKind::Shot).count() as u64;
    assert!(shots > 200, "{shots} simulated shots");
    assert_eq!(summary.rows_out, shots, "every simulated shot survives the drop rules: {summary:?}");
    assert!(summary.dates_written >= 2, "the simulated span crosses midnight");

    // The records as the cloud receives them: through the wire codec (JSON).
    let batch = moldops_shared::Batch::new("site", "edge-1", 0, records.clone()).expect("batch");
    let wire = moldops_shared::decode_batch(&moldops_shared::encode_batch(&batch)).expect("decode").records;
    // The machine's auto tolerance, as recorded for training to put in its bundles.
    let tolerance = etl::machine_tolerance(lake.path(), "M1").expect("state").expect("recorded");
    assert!(tolerance.auto && tolerance.ms == summary.machines[0].tolerance_ms, "{tolerance:?}");
    let assemble = |records: &[Record]| {
        let mut assembler = FeatureAssembler::new(tolerance.ms);
        let mut out: HashMap<u64, _> = HashMap::new();
        for r in records {
            if let Some(f) = assembler.observe(r) {
                out.insert(f.shot_number.expect("shot number"), f);
            }
        }
        out
    };
    let edge = assemble(&wire);
    let at_shot_time = assemble(&records);

    let df = read_etl(lake.path()).expect("read etl_data");
    let names: Vec<String> =
        df.get_column_names().iter().skip(ID_COLUMNS.len()).map(|c| c.to_string()).collect();
    let shots: Vec<u64> =
        df.column("shot_number").expect("shots").u64().expect("u64").iter().flatten().collect();
    let columns: Vec<Vec<Option<f64>>> =
        names.iter().map(|n| df.column(n).expect(n).f64().expect("f64").iter().collect()).collect();
    let (mut matched, mut missing) = (0, 0);
    for (row, n) in shots.iter().enumerate() {
        let f = edge.get(n).unwrap_or_else(|| panic!("the edge saw no shot {n}"));
        assert_eq!(f.names, names, "feature names and order of shot {n}");
        for (i, name) in names.iter().enumerate() {
            let etl = columns[i][row].unwrap_or(f64::NAN);
            let at_edge = f.values[i];
            assert!(
                etl.to_bits() == at_edge.to_bits() || (etl.is_nan() && at_edge.is_nan()),
                "shot {n} {name}: etl {etl} edge {at_edge}"
            );
            // At shot time the edge holds the values before JSON: with serde_json's
            // `float_roundtrip` they cross the wire bit for bit.
            let before_wire = at_shot_time[n].values[i];
            assert!(
                before_wire.to_bits() == etl.to_bits() || (etl.is_nan() && before_wire.is_nan()),
                "shot {n} {name}: etl {etl} at shot time {before_wire}"
            );
            if name.contains('.') {
                if etl.is_nan() { missing += 1 } else { matched += 1 }
            }
        }
    }
    assert!(
        matched > 0 && missing > 0,
        "both sides of the tolerance occur ({matched} matched, {missing} missing)"
    );
}
