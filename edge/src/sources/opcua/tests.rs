use crate::config::{EdgeConfig, Protocol};
use crate::sources::opcua::config::{ReadMode, SecurityPolicy, load_node_profile};
use std::path::Path;

const HEAD: &str = "site = \"s\"\nedge_id = \"e\"\n[broker]\nhost = \"127.0.0.1\"\n";

fn resolve(text: &str, base: &Path) -> Result<Vec<crate::config::Device>, String> {
    let cfg: EdgeConfig = toml::from_str(&format!("{HEAD}{text}")).map_err(|e| format!("parse: {e}"))?;
    cfg.resolve(base).map_err(|e| e.to_string())
}

#[test]
fn a_good_device_resolves_to_a_profile_with_the_same_names() {
    let dir = std::env::temp_dir();
    let text = r#"
[[devices]]
id = "m9"
role = "machine"
protocol = "opcua"
poll_interval_ms = 250
[devices.opcua]
endpoint = "opc.tcp://10.0.0.9:4840/"
mode = "poll"
username = "edge"
password = "pw"
[devices.opcua.profile]
name = "m"
shot_counter = "shot_counter"
shot_values = ["Cycle_Time"]
[[devices.opcua.profile.nodes]]
name = "shot_counter"
node = "ns=3;i=1001"
type = "u16"
[[devices.opcua.profile.nodes]]
name = "Cycle_Time"
node = "nsu=urn:vendor;s=Cycle/CycleTime"
unit = "s"
"#;
    let devices = resolve(text, &dir).unwrap_or_else(|e| panic!("{e}"));
    let d = &devices[0];
    assert_eq!(d.cfg.protocol, Protocol::Opcua);
    let ua = d.cfg.opcua.as_ref().unwrap_or_else(|| panic!("opcua kept"));
    assert_eq!((ua.mode, ua.security_policy), (ReadMode::Poll, SecurityPolicy::None));
    assert_eq!(ua.pki_dir.as_deref(), Some(dir.join("opcua-pki").as_path()));
    assert_eq!(d.profile.counter_bits(), 16);
    let names: Vec<&str> = d.profile.value_tags().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["Cycle_Time"]);
    let mut map = ua.profile.clone().unwrap_or_else(|| panic!("node map inline"));
    assert_eq!(map.value_names(), names);
    map.shot_values.clear();
    map.nodes.push(crate::sources::opcua::map::NodeTag {
        name: "Batch".into(),
        node: "ns=3;s=Batch".into(),
        dtype: Some(moldops_shared::profile::DataType::String),
        scale: 1.0,
        offset: 0.0,
        unit: None,
        range: None,
    });
    let all: Vec<String> = map.to_profile().value_tags().iter().map(|t| t.name.clone()).collect();
    assert_eq!(map.value_names(), all, "same value names as the profile without shot_values");
    assert_eq!(all, ["Cycle_Time"]);
}

#[cfg(unix)]
#[test]
fn the_password_can_come_from_a_private_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("ua.pass");
    std::fs::write(&file, "s3cret\n").unwrap_or_else(|e| panic!("{e}"));
    let text = r#"
[[devices]]
id = "m9"
role = "machine"
protocol = "opcua"
[devices.opcua]
endpoint = "opc.tcp://10.0.0.9:4840/"
username = "edge"
password_file = "ua.pass"
[devices.opcua.profile]
name = "m"
shot_counter = "c"
[[devices.opcua.profile.nodes]]
name = "c"
node = "ns=3;i=1001"
type = "u16"
"#;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap_or_else(|e| panic!("{e}"));
    let devices = resolve(text, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let ua = devices[0].cfg.opcua.as_ref().unwrap_or_else(|| panic!("opcua kept"));
    assert_eq!(ua.password.as_deref(), Some("s3cret"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap_or_else(|e| panic!("{e}"));
    let e =
        resolve(text, dir.path()).err().unwrap_or_else(|| panic!("a world-readable password file passed"));
    assert!(e.contains("opcua.password_file") && e.contains("mode 644"), "{e}");
}

#[test]
fn every_problem_is_listed_at_once() {
    let text = r#"
[[devices]]
id = "m1"
role = "machine"
protocol = "opcua"
address = "10.0.0.1:502"
[devices.opcua]
endpoint = "http://10.0.0.1:4840"
security_mode = "sign"
username = "edge"
[devices.opcua.profile]
name = "broken"
shot_counter = "counter"
shot_values = ["Missing"]
[[devices.opcua.profile.nodes]]
name = "temp"
node = "ns=two;s=Temp"
[[devices.opcua.profile.nodes]]
name = "temp"
node = "s"
[[devices]]
id = "m2"
role = "machine"
protocol = "opcua"
[devices.opcua]
endpoint = "opc.tcp://10.0.0.2:4840/"
security_policy = "basic256sha256"
security_mode = "sign_and_encrypt"
certificate_file = "nowhere/cert.der"
profile_file = "nowhere/map.toml"
[[devices]]
id = "m3"
role = "machine"
protocol = "modbus-tcp"
address = "10.0.0.3:502"
[devices.opcua]
endpoint = "opc.tcp://10.0.0.3:4840/"
"#;
    let e = resolve(text, Path::new("/nonexistent")).err().unwrap_or_else(|| panic!("accepted"));
    for needle in [
        "address is for Modbus",
        "opcua.endpoint \"http://10.0.0.1:4840\"",
        "needs security_policy",
        "username and opcua.password go together",
        "node id \"ns=two;s=Temp\" is malformed",
        "node id \"s\" is malformed",
        "temp defined twice",
        "shot_counter names unknown node \"counter\"",
        "shot_values names unknown node \"Missing\"",
        "needs certificate_file and private_key_file",
        "cert.der not found",
        "nowhere/map.toml",
        "devices[2] (m3): a [devices.opcua] table goes with protocol = \"opcua\"",
    ] {
        assert!(e.contains(needle), "message names {needle:?}:\n{e}");
    }
}

#[test]
fn the_deploy_example_map_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/opcua/euromap77-machine.toml");
    let map = load_node_profile(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(map.validate(), Vec::<String>::new());
    let p = map.to_profile();
    assert!(p.validate().is_empty(), "{:?}", p.validate());
    for name in
        ["Cycle_Time", "Injection_Time", "Cushion_Position", "Plasticizing_Time", "Barrel_Temperature_1"]
    {
        assert!(p.value_tags().iter().any(|t| t.name == name), "{name}");
    }
    let sim_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/profiles/moldops-sim-machine.toml");
    let sim_text =
        std::fs::read_to_string(&sim_path).unwrap_or_else(|e| panic!("{}: {e}", sim_path.display()));
    let sim: moldops_shared::profile::Profile = toml::from_str(&sim_text).unwrap_or_else(|e| panic!("{e}"));
    for t in p.value_tags() {
        assert!(
            sim.tag(&t.name).is_some() || t.name.starts_with("Mold_"),
            "{} is a Modbus record name",
            t.name
        );
    }
}

/// A machine using the shipped EUROMAP 77 map, with `extra` lines in its `[devices.opcua]`.
fn euromap_device(extra: &str) -> String {
    let map = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/opcua/euromap77-machine.toml");
    format!(
        "[[devices]]\nid = \"m77\"\nrole = \"machine\"\nprotocol = \"opcua\"\n[devices.opcua]\n\
         endpoint = \"opc.tcp://10.0.0.77:4840/\"\nprofile_file = {:?}\n{extra}\n",
        map.display().to_string()
    )
}

#[test]
fn the_euromap_map_takes_its_machine_and_vendor_namespace_from_the_device() {
    let dir = std::env::temp_dir();
    let good = euromap_device(
        "root = \"/di:DeviceSet/vendor:IMM_ACME_0042\"\nnamespaces = { vendor = \"http://acme.example/IMM/\" }",
    );
    let devices = resolve(&good, &dir).unwrap_or_else(|e| panic!("{e}"));
    let ua = devices[0].cfg.opcua.as_ref().unwrap_or_else(|| panic!("opcua kept"));
    let aliases = ua.aliases();
    assert_eq!(aliases.get("vendor").map(String::as_str), Some("http://acme.example/IMM/"));
    assert_eq!(
        aliases.get("imm").map(String::as_str),
        Some("http://opcfoundation.org/UA/PlasticsRubber/IMM2MES/")
    );
    let map = ua.profile.as_ref().unwrap_or_else(|| panic!("node map"));
    assert!(map.nodes.iter().all(|n| n.node.starts_with('/')), "every node by browse path");
    assert_eq!(map.paths().count(), map.nodes.len());
    assert_eq!(devices[0].profile.counter_bits(), 64);

    let e =
        resolve(&euromap_device(""), &dir).err().unwrap_or_else(|| panic!("no vendor namespace accepted"));
    for node in ["Injection_Time", "shot_time"] {
        assert!(e.contains(&format!("{node}: namespace alias \"vendor\" is defined neither")), "{e}");
    }
    // A device's alias overrides the map's (e.g. an older URI of a companion specification).
    let older = euromap_device("namespaces = { vendor = \"urn:v\", gen = \"urn:old-83\" }");
    let devices = resolve(&older, &dir).unwrap_or_else(|e| panic!("{e}"));
    let ua = devices[0].cfg.opcua.as_ref().unwrap_or_else(|| panic!("opcua kept"));
    assert_eq!(ua.aliases().get("gen").map(String::as_str), Some("urn:old-83"));
}

#[test]
fn malformed_browse_paths_roots_and_aliases_are_listed_at_load() {
    let text = r#"
[[devices]]
id = "m1"
role = "machine"
protocol = "opcua"
[devices.opcua]
endpoint = "opc.tcp://10.0.0.1:4840/"
root = "/di:DeviceSet//x:IMM"
namespaces = { "1bad" = "urn:x", empty = "" }
[devices.opcua.profile]
name = "paths"
shot_counter = "counter"
[devices.opcua.profile.namespaces]
imm = "urn:imm"
[[devices.opcua.profile.nodes]]
name = "counter"
node = "/imm:Jobs/imm:"
[[devices.opcua.profile.nodes]]
name = "temp"
node = "/imm:Zone<HasSubtype>imm:T"
[[devices.opcua.profile.nodes]]
name = "ghost"
node = "/nope:Jobs"
[[devices]]
id = "m2"
role = "machine"
protocol = "opcua"
[devices.opcua]
endpoint = "opc.tcp://10.0.0.2:4840/"
root = "/zz:Machine"
[devices.opcua.profile]
name = "ok"
shot_counter = "counter"
[[devices.opcua.profile.nodes]]
name = "counter"
node = "ns=2;i=1"
"#;
    let e = resolve(text, Path::new("/nonexistent")).err().unwrap_or_else(|| panic!("accepted"));
    for needle in [
        "node map paths: counter: element 2 of the browse path has no browse name",
        "temp: element 2 of the browse path: unknown reference type \"HasSubtype\"",
        "ghost: namespace alias \"nope\" is defined neither",
        "devices[0] (m1): opcua.root: element 2 of the browse path has no browse name",
        "opcua.namespaces: alias \"1bad\" must be a letter",
        "opcua.namespaces.empty: the namespace uri must be non-empty",
        "devices[1] (m2): opcua.root: namespace alias \"zz\" is defined neither",
    ] {
        assert!(e.contains(needle), "message names {needle:?}:\n{e}");
    }
}
