use super::*;
use crate::args::SimArgs;
use crate::edge_config::ConfigTemplate;
use anyhow::Context;
use moldops_shared::profile::decode_u64;
use tokio_modbus::client::Reader;

#[tokio::test]
async fn plant_serves_its_shots_and_logs_them_first() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let args = SimArgs {
        base_port: 0,
        shots: Some(5),
        speed: 1e6,
        start_shot: u32::MAX - 2,
        mold_change_shots: 0,
        idle_every: 0,
        quality_log: dir.path().join("q/quality-log.jsonl"),
        ..SimArgs::default()
    };
    let plant = crate::start(&args).await?;
    plant.finished().await?;

    assert!(plant.ready_line().starts_with(r#"{"event":"ready","devices":[{"id":"m1","role":"machine""#));
    let ready: serde_json::Value = serde_json::from_str(&plant.ready_line())?;
    assert_eq!(ready["event"], "ready");
    assert_eq!(ready["devices"].as_array().map(Vec::len), Some(8));
    assert_eq!(ready["devices"][4]["id"], "m2");
    assert_eq!(ready["devices"][4]["word_order"], "little");
    assert_eq!(ready["devices"][5]["role"], "peripheral");
    assert!(plant.devices().iter().all(|d| d.address.port() != 0));

    let log = std::fs::read_to_string(plant.quality_log())?;
    let lines: Vec<serde_json::Value> = log.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 10);
    let m2: Vec<u64> =
        lines.iter().filter(|l| l["machine_id"] == "m2").filter_map(|l| l["shot_number"].as_u64()).collect();
    assert_eq!(m2, vec![u64::from(u32::MAX) - 2, u64::from(u32::MAX) - 1, u64::from(u32::MAX), 0, 1]);
    assert!(lines.iter().all(|l| l["label"].is_u64() && l["defect"].is_string() && l["mold"].is_string()));

    // The little-endian machine m2 and its scale, read by a real Modbus TCP client.
    let m2 = plant.devices().iter().find(|d| d.id == "m2").context("no m2")?;
    let mut ctx = tokio_modbus::client::tcp::connect(m2.address).await?;
    let mut p = m2.profile.clone();
    p.word_order = m2.word_order;
    let tag = p.tag("shot_counter").context("no counter tag")?;
    let regs = ctx.read_holding_registers(tag.address, tag.registers()).await??;
    let (w, b) = p.orders(tag);
    assert_eq!(decode_u64(tag, &regs, w, b), 1);
    let scale = plant.devices().iter().find(|d| d.id == "m2-scale").context("no scale")?;
    let mut ctx = tokio_modbus::client::tcp::connect(scale.address).await?;
    let tag = scale.profile.tag("weigh_counter").context("no weigh_counter")?;
    let regs = ctx.read_holding_registers(tag.address, tag.registers()).await??;
    assert_eq!(decode_u64(tag, &regs, Order::Big, Order::Big), 1);

    let cfg = plant.edge_config(ConfigTemplate::default());
    let addrs: Vec<String> = plant.devices().iter().map(|d| d.address.to_string()).collect();
    let cfg_addrs: Vec<String> = cfg.devices.iter().filter_map(|d| d.address.clone()).collect();
    assert_eq!(addrs, cfg_addrs);
    plant.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn every_visible_shot_is_already_in_the_quality_log() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let args = SimArgs {
        machines: 1,
        no_peripherals: true,
        base_port: 0,
        shots: Some(40),
        speed: 5_000.0,
        quality_log: dir.path().join("quality-log.jsonl"),
        ..SimArgs::default()
    };
    let plant = crate::start(&args).await?;
    assert_eq!(plant.devices().len(), 1);
    let m1 = &plant.devices()[0];
    let tag = m1.profile.tag("shot_counter").context("no counter tag")?;
    let mut ctx = tokio_modbus::client::tcp::connect(m1.address).await?;
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let regs = ctx.read_holding_registers(tag.address, tag.registers()).await??;
        let counter = decode_u64(tag, &regs, Order::Big, Order::Big);
        let log = std::fs::read_to_string(plant.quality_log())?;
        let logged = log.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
        assert!(
            logged.into_iter().any(|l| l["shot_number"].as_u64() == Some(counter)),
            "shot {counter} visible before it was logged"
        );
        seen.insert(counter);
        if counter == 40 {
            break;
        }
    }
    plant.finished().await?;
    assert!(seen.len() > 1, "the counter never moved while polled");
    plant.shutdown().await;
    Ok(())
}
