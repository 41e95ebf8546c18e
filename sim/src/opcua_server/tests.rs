//! A plant with an OPC UA machine on an OS-picked port, read back by the edge's own OPC UA
//! source through the config the simulator writes.

use crate::args::SimArgs;
use crate::edge_config::ConfigTemplate;
use anyhow::Context;
use moldops_edge::config::Protocol;
use moldops_edge::sources::opcua::OpcUaSource;

#[tokio::test]
async fn the_edge_reads_a_simulated_opcua_machine() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let args = SimArgs {
        machines: 2,
        opcua_machines: 1,
        base_port: 0,
        shots: Some(3),
        speed: 1e6,
        mold_change_shots: 0,
        idle_every: 0,
        quality_log: dir.path().join("quality-log.jsonl"),
        ..SimArgs::default()
    };
    let plant = crate::start(&args).await?;
    plant.finished().await?;

    let ready: serde_json::Value = serde_json::from_str(&plant.ready_line())?;
    let m1 = &ready["devices"][0];
    assert_eq!((&m1["id"], &m1["protocol"]), (&"m1".into(), &"opcua".into()), "{ready}");
    let endpoint = m1["endpoint"].as_str().context("no endpoint")?;
    assert!(endpoint.starts_with("opc.tcp://127.0.0.1:") && !endpoint.ends_with(":0/"), "{endpoint}");
    assert!(m1.get("word_order").is_none());
    let protocols: Vec<&str> = ready["devices"]
        .as_array()
        .context("devices")?
        .iter()
        .filter_map(|d| d["protocol"].as_str())
        .collect();
    assert_eq!(
        protocols,
        [
            "opcua",
            "modbus-tcp",
            "modbus-tcp",
            "modbus-tcp",
            "modbus-tcp",
            "modbus-tcp",
            "modbus-tcp",
            "modbus-tcp"
        ]
    );

    let cfg = plant.edge_config(ConfigTemplate::default());
    let devices = cfg.resolve(dir.path()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let dev = devices.iter().find(|d| d.cfg.id == "m1").context("m1 in the edge config")?;
    assert_eq!(dev.cfg.protocol, Protocol::Opcua);
    let mut source = OpcUaSource::new(dev.cfg.clone());
    let snap = source.snapshot().await?;

    let log = std::fs::read_to_string(plant.quality_log())?;
    let last = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|l| l["machine_id"] == "m1")
        .context("m1 logged no shot")?;
    assert_eq!(snap.counter, last["shot_number"].as_u64(), "{snap:?}");
    assert_eq!(snap.timestamp_ms, last["ts_ms"].as_i64());
    assert_eq!(snap.mold.as_deref(), last["mold"].as_str());
    let names: Vec<&str> = snap.values.keys().map(String::as_str).collect();
    let mut want: Vec<&str> = crate::features::FEATURE_NAMES.to_vec();
    want.sort_unstable();
    assert_eq!(names, want, "the 23 process values, named as over Modbus");
    let cycle = snap.values.get("Cycle_Time").copied().context("no Cycle_Time")?;
    assert!(cycle > 1.0 && cycle < 600.0, "Cycle_Time {cycle}");
    assert!(snap.out_of_range.is_empty(), "{:?}", snap.out_of_range);
    drop(source);
    plant.shutdown().await;
    Ok(())
}
