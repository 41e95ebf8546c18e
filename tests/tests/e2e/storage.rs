//! The storage layer's conditional writes under real races, on a local folder and on an S3 API
//! server on loopback (PyPI `moto`'s standalone server, with `$MOLDOPS_S3_PYTHON`): of writers
//! creating one object exactly one wins, a replace with a stale version is refused, and
//! read-modify-write by concurrent writers loses no change.

use moldops_cloud::storage::Store;
use moldops_tests::S3Server;
use serde::{Deserialize, Serialize};

/// A JSON document several writers change at once.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Counter {
    count: u64,
    writers: Vec<String>,
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
    let owned = s3.settings();
    let settings: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    races(Store::open_with("s3://moldops-lake/plant-a", &settings).expect("open")).await;
    // The prefix is honoured: the objects live under it.
    let plain = Store::open_with("s3://moldops-lake", &settings).expect("open");
    assert!(plain.get("plant-a/claims/batch-17").await.expect("get").is_some());
    assert!(plain.get("claims/batch-17").await.expect("get").is_none());
}
