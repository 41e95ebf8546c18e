//! One EUROMAP 77 node map by browse path, the shipped `deploy/opcua/euromap77-machine.toml`
//! unchanged, on two independent servers that expose the same EUROMAP-77-shaped address space
//! under different node ids and namespace orders: asyncua (numeric ids) and then node-opcua
//! (string ids, a TranslateBrowsePathsToNodeIds limit of 4 per request) on the same port — the
//! edge re-resolves on reconnect and records every shot of both with the values the servers
//! wrote. A second device whose map has a path the servers lack is refused at connect, naming
//! the path and BadNoMatch.

use super::{
    EUROMAP_ROOT, VENDOR_NS, check_shots, collect, deploy_map, edge_config, euromap_opcua, euromap_peer_args,
    peer_nodes, peer_shots, records, shots_of, start_peer, status, ua_device, write,
};
use crate::common::*;
use moldops_tests::{Mosquitto, Proc, asset, free_port, wait_until};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A path no EUROMAP 77 test server has.
const GHOST: &str = "/vendor:NoSuchObject/gen:Nothing";

/// The node-opcua peer's folder; its `node_modules` comes from `npm ci` (see `.ci/run`).
fn node_peer_dir() -> PathBuf {
    let dir = asset("peers/opcua-node");
    assert!(
        dir.join("node_modules/node-opcua-server").is_dir(),
        "node-opcua is not installed: run `npm ci` in {} (.ci/run does)",
        dir.display()
    );
    dir
}

/// Starts the node-opcua peer serving the node map `map` (TOML, handed over as JSON).
fn start_node_peer(dir: &Path, port: u16, map: &Path, args: &[&str]) -> Proc {
    let text = std::fs::read_to_string(map).expect("node map");
    let value: toml::Value = toml::from_str(&text).expect("node map is TOML");
    let json = dir.join("node-map.json");
    std::fs::write(&json, serde_json::to_vec(&value).expect("node map as JSON")).expect("write node map");
    let node = std::env::var("MOLDOPS_NODE").unwrap_or_else(|_| "node".into());
    let mut cmd = Command::new(node);
    cmd.arg(node_peer_dir().join("server.js"))
        .args(["--port", &port.to_string(), "--map"])
        .arg(&json)
        .arg("--pki")
        .arg(dir.join("node-opcua-pki"))
        .args(["--root", EUROMAP_ROOT, "--alias", &format!("vendor={VENDOR_NS}")]);
    let mut p = Proc::spawn("node-opcua", cmd.args(args), dir);
    p.wait_line(READY, |l| l == "READY");
    p
}

fn last_error(st: &Value, device: &str) -> String {
    st["devices"][device]["last_error"].as_str().unwrap_or_default().to_string()
}

#[test]
fn one_euromap77_map_on_asyncua_and_node_opcua_and_a_missing_path_refused() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let (port, api) = (free_port(), free_port());
    let map = deploy_map();
    let ghost_text = std::fs::read_to_string(&map).expect("deploy map");
    let ghost =
        write(dir, "ghost.toml", &format!("{ghost_text}\n[[nodes]]\nname = \"Ghost\"\nnode = \"{GHOST}\"\n"));

    let mut args = vec!["--start", "1", "--shots", "3", "--every", "0.5", "--wait-client"];
    let euromap = euromap_peer_args();
    args.extend(euromap.iter().map(String::as_str));
    let mut asyncua = start_peer(dir, "asyncua", port, &[&map], &args);
    let asyncua_nodes = peer_nodes(&mut asyncua);
    let rx = records(broker.port);
    let devices = [
        ua_device("m77", "machine", port, 100, &euromap_opcua(&map)),
        ua_device("m77-ghost", "machine", port, 200, &euromap_opcua(&ghost)),
    ];
    let edge = start_edge(dir, &edge_config(dir, broker.port, api, &devices.concat()));
    let mut truth = peer_shots(&mut asyncua, 3);
    let mut got = Vec::new();
    collect(&rx, &mut got, &edge, |g| shots_of(g, "m-ua").len() >= 3);
    let refused = |st: &Value| {
        let e = last_error(st, "m77-ghost");
        e.contains(GHOST) && e.contains("BadNoMatch") && e.contains("(Ghost)")
    };
    assert!(wait_until(READY, || refused(&status(api))), "asyncua: {:#}", status(api));

    asyncua.kill9();
    // Both devices notice: the ghost's last error is no longer asyncua's refusal, so the one
    // checked below can only come from node-opcua.
    let down = wait_until(READY, || {
        let st = status(api);
        st["devices"]["m77"]["connected"] == false && !refused(&st)
    });
    assert!(down, "the edge noticed asyncua went away: {}", status(api));
    let node_args =
        ["--start", "4", "--shots", "3", "--every", "0.5", "--wait-client", "--max-translate", "4"];
    let mut node = start_node_peer(dir, port, &map, &node_args);
    let node_nodes = peer_nodes(&mut node);
    for name in ["shot_counter", "Cycle_Time", "Injection_Time", "mold_code"] {
        let (a, n) = (&asyncua_nodes["ids"][name], &node_nodes["ids"][name]);
        assert!(a.is_string() && n.is_string() && a != n, "{name}: asyncua {a}, node-opcua {n}");
    }
    assert_ne!(asyncua_nodes["namespaces"], node_nodes["namespaces"], "other namespace order");
    truth.extend(peer_shots(&mut node, 3));
    collect(&rx, &mut got, &edge, |g| shots_of(g, "m-ua").len() >= 6);
    check_shots(&shots_of(&got, "m-ua"), &truth, 9);

    let node_refused = wait_until(READY, || {
        let st = status(api);
        refused(&st) && st["devices"]["m77"]["last_shot"] == 6
    });
    let st = status(api);
    assert!(node_refused, "node-opcua: {st:#}\n{}", edge.stderr_tail());
    assert_eq!(st["devices"]["m77-ghost"]["shots"], 0, "the device with the missing path made no shot");
    let m = &st["devices"]["m77"];
    assert_eq!((m["missed_shots"].as_u64(), m["connected"].as_bool()), (Some(0), Some(true)), "{st:#}");
}
