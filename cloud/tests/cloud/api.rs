//! The read-only HTTP API: served on a loopback port over a data folder with a lake, a
//! registry version and no pipeline runs; each route answers JSON a client can use, and a
//! broken registry answers 500 with the reason, not a panic.

use crate::support::{DAY0, commit, good};
use moldops_cloud::api::{Folders, serve};
use moldops_cloud::registry::Registry;
use moldops_shared::bundle::ModelKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP/1.1 GET; returns (status, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.expect("read");
    let status = raw.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

// polars (the lake summary) needs the multi-threaded runtime the binary runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_answer_json_over_a_data_folder() {
    let data = tempfile::tempdir().expect("tempdir");
    let folders = Folders::under(data.path());
    commit(&folders.lake, "edge-1", 1, vec![good(1, DAY0, "A"), good(2, DAY0 + 60_000, "A")]);
    let key = ModelKey { machine_id: "M1".into(), mold: None };
    Registry::open(&folders.registry)
        .expect("registry")
        .register(crate::registry::new_version(&key, "a"), &[7; 32])
        .expect("register");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, folders.clone(), async {
        let _ = stopped.await;
    }));

    assert_eq!(get(addr, "/healthz").await, (200, "ok".to_string()));
    let (status, body) = get(addr, "/lake").await;
    assert_eq!(status, 200, "{body}");
    let lake: serde_json::Value = serde_json::from_str(&body).expect("lake json");
    let rows: u64 =
        lake["datasets"].as_array().expect("datasets").iter().filter_map(|d| d["rows"].as_u64()).sum();
    assert_eq!(rows, 2, "{lake}");
    let (status, body) = get(addr, "/models").await;
    assert_eq!(status, 200, "{body}");
    let models: serde_json::Value = serde_json::from_str(&body).expect("models json");
    assert_eq!(models[0]["key"], "M1");
    assert_eq!(models[0]["versions"][0]["stage"], "candidate", "{models}");
    let (status, body) = get(addr, "/pipeline/runs").await;
    assert_eq!((status, body.as_str()), (200, "[]"));
    assert_eq!(get(addr, "/nope").await.0, 404);

    // A registry that cannot be read is a 500 with the reason.
    std::fs::remove_dir_all(&folders.registry).expect("rm registry");
    std::fs::write(&folders.registry, "not a folder").expect("write");
    let (status, body) = get(addr, "/models").await;
    assert_eq!(status, 500, "{body}");
    assert!(!body.is_empty());

    let _ = stop.send(());
    server.await.expect("join").expect("serve");
}
