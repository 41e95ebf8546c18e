//! The storage layer's conditional writes under real races, on a local folder and on an S3 API
//! server on loopback (PyPI `moto`'s standalone server, with `$MOLDOPS_S3_PYTHON`): of writers
//! creating one object exactly one wins, a replace with a stale version is refused, and
//! read-modify-write by concurrent writers loses no change.

use moldops_cloud::storage::Store;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

/// A JSON document several writers change at once.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Counter {
    count: u64,
    writers: Vec<String>,
}

/// The moto S3 server, killed on drop.
struct S3Server {
    child: Child,
    port: u16,
}

impl S3Server {
    fn start() -> S3Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let default =
            format!("{}/.cache/moldops-s3-venv/bin/python", std::env::var("HOME").unwrap_or_default());
        let python = std::env::var("MOLDOPS_S3_PYTHON").unwrap_or(default);
        let mut child = Command::new(&python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start the S3 server with {python} (moto installed by .ci/run): {e}")
            });
        // Werkzeug says where it listens on stderr once it accepts connections.
        let err = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(err).lines();
        let ready = lines.by_ref().take(50).map_while(Result::ok).any(|l| l.contains("Running on"));
        assert!(ready, "the S3 server did not start");
        std::thread::spawn(move || lines.for_each(drop));
        S3Server { child, port }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (moto takes an unsigned request).
    fn create_bucket(&self, name: &str) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        write!(
            s,
            "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("request");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "creating bucket {name}: {answer}");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Races on `store`: 8 creators of one object (one wins), a stale replace (refused), and 4
/// writers adding 10 each to one counter (40, every writer's change there once).
async fn races(store: Store) {
    store.verify_conditional_writes().await.expect("the server honours conditional writes");
    for bad in ["", "/", ".moldops-store/tmp/x", "claims/.hidden", "a//b/../c"] {
        assert!(store.create(bad, b"x".to_vec()).await.is_err(), "key {bad:?} accepted on {}", store.url());
    }
    let creators: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(
                async move { store.create("claims/batch-17", format!("writer {i}").into_bytes()).await },
            )
        })
        .collect();
    let mut won = 0;
    for c in creators {
        won += u32::from(c.await.expect("task").expect("create"));
    }
    assert_eq!(won, 1, "exactly one creator wins on {}", store.url());

    let (_, first) = store.get("claims/batch-17").await.expect("get").expect("created");
    assert!(store.replace("claims/batch-17", b"second".to_vec(), &first).await.expect("replace"));
    assert!(
        !store.replace("claims/batch-17", b"stale".to_vec(), &first).await.expect("replace"),
        "a replace from a stale read is refused on {}",
        store.url()
    );
    let (bytes, _) = store.get("claims/batch-17").await.expect("get").expect("there");
    assert_eq!(bytes, b"second");
    assert!(store.get("claims/none").await.expect("get").is_none());

    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..10 {
                    store
                        .update_json("state/counter.json", |c: Option<Counter>| {
                            let mut c = c.unwrap_or_default();
                            c.count += 1;
                            c.writers.push(format!("{w}-{n}"));
                            Ok(c)
                        })
                        .await
                        .expect("update");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    let (bytes, _) = store.get("state/counter.json").await.expect("get").expect("there");
    let c: Counter = serde_json::from_slice(&bytes).expect("json");
    let mut writers = c.writers.clone();
    writers.sort();
    writers.dedup();
    assert_eq!((c.count, writers.len()), (40, 40), "no lost or doubled update on {}", store.url());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_writes_hold_under_races_on_a_local_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    races(Store::open(&dir.path().display().to_string()).expect("open")).await;
    // Beside the objects nothing is left: temporary files and locks live in the store's own
    // folder, and no temporary file outlives its write.
    let names = |d: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(d)
            .expect("folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names(&dir.path().join("claims")), ["batch-17"]);
    assert!(names(&dir.path().join(".moldops-store/tmp")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_writes_hold_under_races_on_an_s3_server() {
    let s3 = S3Server::start();
    s3.create_bucket("moldops-lake");
    let endpoint = s3.endpoint();
    let settings = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
        ("aws_region", "us-east-1"),
    ];
    races(Store::open_with("s3://moldops-lake/plant-a", &settings).expect("open")).await;
    // The prefix is honoured: the objects live under it.
    let plain = Store::open_with("s3://moldops-lake", &settings).expect("open");
    assert!(plain.get("plant-a/claims/batch-17").await.expect("get").is_some());
    assert!(plain.get("claims/batch-17").await.expect("get").is_none());
}
