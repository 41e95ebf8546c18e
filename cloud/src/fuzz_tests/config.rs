//! Fuzz tests of `cloud.toml`: the example, mutated text with hostile overrides, deep nesting.

use super::*;
use crate::config::{CloudFile, ConfigErrors, Overrides, ingest_config, lake_path};

const CLOUD_TOML: &str = r#"
[broker]
host = "mqtt"
port = 8883
username = "ingest"
password = "secret"

[lake]
path = "lake"

[ingest]
client_id = "ing-1"
max_group_records = 500
"#;

fn hostile_overrides(u: &mut Unstructured<'_>) -> Gen<Overrides> {
    Ok(Overrides {
        broker_host: if u.ratio(1, 3)? { Some(any_string(u)?) } else { None },
        broker_port: if u.ratio(1, 3)? { Some(*u.choose(&[0, 1, 1883, u16::MAX])?) } else { None },
        lake: None,
        client_id: if u.ratio(1, 3)? { Some(any_string(u)?) } else { None },
        share_group: if u.ratio(1, 3)? { Some(any_string(u)?) } else { None },
    })
}

#[test]
fn the_example_cloud_config_is_valid() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = dir.path().join("cloud.toml");
    std::fs::write(&file, CLOUD_TOML).expect("write the config");
    let cfg = ingest_config(Some(&file), &Overrides::default()).expect("the example is valid");
    assert_eq!((cfg.broker.port, cfg.max_group_records), (8883, 500));
}

#[test]
fn fuzz_cloud_config() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = dir.path().join("cloud.toml");
    fuzz("cloud/config", |u| {
        let text = match u.int_in_range(0..=3)? {
            0 => u.arbitrary::<String>()?,
            _ => TOML.mutate(u, CLOUD_TOML)?,
        };
        if let Err(e) = timed("parse cloud.toml", || toml::from_str::<CloudFile>(&text)) {
            assert_reason(&e, &text);
        }
        std::fs::write(&file, &text).expect("write the config");
        let over = hostile_overrides(u)?;
        let verdict = timed("ingest_config", || ingest_config(Some(&file), &over));
        note(verdict.is_ok());
        match verdict {
            Err(ConfigErrors(problems)) => {
                assert!(!problems.is_empty(), "refused without a problem");
                assert!(problems.iter().all(|p| !p.trim().is_empty()), "an empty problem line");
            }
            Ok(cfg) => {
                cfg.validate().expect("an accepted config validates again");
                assert!(!cfg.client_id.trim().is_empty() && cfg.max_group_records > 0);
                assert!(!cfg.broker.host.trim().is_empty() && cfg.broker.port > 0);
                assert!(cfg.lake.is_absolute(), "{}", cfg.lake.display());
            }
        }
        if let Ok(lake) = lake_path(Some(&file), None) {
            assert!(lake.is_absolute() || lake.as_os_str().is_empty(), "{}", lake.display());
        }
        Ok(())
    });
}

#[test]
fn a_deeply_nested_cloud_toml_is_refused_quickly() {
    let text = format!("[lake]\npath = {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let err = timed("parse", || toml::from_str::<CloudFile>(&text)).expect_err("deep nesting");
    assert!(!err.to_string().is_empty());
}
