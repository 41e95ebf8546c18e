//! The mirror against a folder standing in for the bucket (the same calls; the S3 server's
//! conditional writes are tested in `cloud/tests/cloud/storage.rs`).

use super::*;
use serde_json::json;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn put(bucket: &Path, key: &str, bytes: &[u8]) {
    let path = bucket.join(key);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

fn open(bucket: &Path, cache: &Path) -> (Mirror, Pulled) {
    let store = Store::open(&bucket.display().to_string()).expect("store");
    rt().block_on(Mirror::open(store, cache)).expect("mirror")
}

#[test]
fn a_pull_fetches_only_what_changed_and_removes_what_is_gone() {
    let (bucket, cache) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    put(bucket.path(), "raw_data/machine=m1/date=2026-01-01/a.parquet", b"a");
    put(bucket.path(), "raw_data/machine=m2/date=2026-01-01/b.parquet", b"b");
    let (mut m, pulled) = open(bucket.path(), cache.path());
    assert_eq!((pulled.objects, pulled.fetched, pulled.bytes), (2, 2, 2));
    let copy = m.folder().join("raw_data/machine=m1/date=2026-01-01/a.parquet");
    assert_eq!(std::fs::read(&copy).expect("copied"), b"a");

    let again = rt().block_on(m.pull()).expect("pull");
    assert_eq!((again.fetched, again.removed), (0, 0), "nothing changed");

    put(bucket.path(), "raw_data/machine=m1/date=2026-01-01/a.parquet", b"a2");
    std::fs::remove_dir_all(bucket.path().join("raw_data/machine=m2")).expect("rm");
    let third = rt().block_on(m.pull()).expect("pull");
    assert_eq!((third.fetched, third.removed), (1, 1));
    assert_eq!(std::fs::read(&copy).expect("copied"), b"a2");
    assert!(!m.folder().join("raw_data/machine=m2").exists(), "an emptied partition goes too");

    // A stage that failed left a changed file behind: the next pull puts the bucket's back.
    std::fs::write(&copy, b"half-written").expect("write");
    let fourth = rt().block_on(m.pull()).expect("pull");
    assert_eq!(fourth.fetched, 1);
    assert_eq!(std::fs::read(&copy).expect("copied"), b"a2");
}

#[test]
fn a_push_publishes_new_changed_and_removed_files_once() {
    let (bucket, cache) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    put(bucket.path(), "etl_data/old.parquet", b"old");
    put(bucket.path(), "registry/m1/all/stages.json", b"{}");
    let (mut m, _) = open(bucket.path(), cache.path());
    std::fs::remove_file(m.folder().join("etl_data/old.parquet")).expect("rm");
    put(m.folder(), "etl_data/new.parquet", b"new");
    put(m.folder(), "registry/m1/all/stages.json", b"{\"production\":1}");
    put(m.folder(), "registry/m1/all/.lock", b"");
    let pushed = rt().block_on(m.push()).expect("push");
    assert_eq!((pushed.created, pushed.replaced, pushed.deleted), (1, 1, 1));
    assert_eq!(std::fs::read(bucket.path().join("etl_data/new.parquet")).expect("new"), b"new");
    assert!(!bucket.path().join("etl_data/old.parquet").exists());
    assert!(!bucket.path().join("registry/m1/all/.lock").exists(), "dot files stay local");
    assert_eq!(
        std::fs::read(bucket.path().join("registry/m1/all/stages.json")).expect("s"),
        b"{\"production\":1}"
    );

    let twice = rt().block_on(m.push()).expect("push");
    assert_eq!(twice, Pushed::default(), "nothing left to publish");
}

#[test]
fn a_change_another_writer_made_first_fails_the_push() {
    let bucket = tempfile::tempdir().expect("dir");
    let (c1, c2) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    put(bucket.path(), "registry/m1/all/stages.json", b"{\"production\":1}");
    let (mut a, _) = open(bucket.path(), c1.path());
    let (mut b, _) = open(bucket.path(), c2.path());
    put(a.folder(), "registry/m1/all/stages.json", b"{\"production\":2}");
    put(b.folder(), "registry/m1/all/stages.json", b"{\"production\":3}");
    put(a.folder(), "registry/m1/all/v0002/version.json", b"a");
    put(b.folder(), "registry/m1/all/v0002/version.json", b"b");
    rt().block_on(a.push()).expect("the first writer wins");
    let err = format!("{:#}", rt().block_on(b.push()).expect_err("the second loses"));
    assert!(err.contains("version.json") && err.contains("another writer created it"), "{err}");
    assert_eq!(
        std::fs::read(bucket.path().join("registry/m1/all/stages.json")).expect("s"),
        b"{\"production\":2}"
    );
    assert_eq!(std::fs::read(bucket.path().join("registry/m1/all/v0002/version.json")).expect("v"), b"a");

    // Run again on the new state: it pulls the winner's change and its own push lands.
    rt().block_on(b.pull()).expect("pull");
    assert_eq!(
        std::fs::read(b.folder().join("registry/m1/all/stages.json")).expect("s"),
        b"{\"production\":2}"
    );
    put(b.folder(), "registry/m1/all/stages.json", b"{\"production\":3}");
    rt().block_on(b.push()).expect("push");

    // A stale replace alone (no create in the way) is refused too.
    put(a.folder(), "registry/m1/all/stages.json", b"{\"production\":4}");
    let err = format!("{:#}", rt().block_on(a.push()).expect_err("stale"));
    assert!(err.contains("another writer changed it"), "{err}");
}

#[test]
fn shards_changing_disjoint_machines_of_the_etl_state_both_land() {
    let bucket = tempfile::tempdir().expect("dir");
    let (c1, c2) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let state = |v: serde_json::Value| serde_json::to_vec(&v).expect("json");
    put(bucket.path(), "_etl/state.json", &state(json!({"version": 3, "machines": {"m0": {"d": 1}}})));
    let (mut a, _) = open(bucket.path(), c1.path());
    let (mut b, _) = open(bucket.path(), c2.path());
    put(
        a.folder(),
        "_etl/state.json",
        &state(json!({"version": 3, "machines": {"m0": {"d": 1}, "m1": {"d": 2}}})),
    );
    put(
        b.folder(),
        "_etl/state.json",
        &state(json!({"version": 3, "machines": {"m0": {"d": 1}, "m2": {"d": 3}}})),
    );
    rt().block_on(a.push()).expect("a");
    let pushed = rt().block_on(b.push()).expect("b merges");
    assert_eq!(pushed.merged, 1);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bucket.path().join("_etl/state.json")).expect("state"))
            .expect("json");
    assert_eq!(saved, json!({"version": 3, "machines": {"m0": {"d": 1}, "m1": {"d": 2}, "m2": {"d": 3}}}));
    let local: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.folder().join("_etl/state.json")).expect("state"))
            .expect("json");
    assert_eq!(local, saved, "the copy holds what was published");
}

#[test]
fn an_unreadable_manifest_means_fetching_everything_again() {
    let (bucket, cache) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    put(bucket.path(), "labels/a.parquet", b"a");
    let (m, _) = open(bucket.path(), cache.path());
    let folder = m.folder().to_path_buf();
    drop(m);
    std::fs::write(folder.join(MANIFEST), b"{\"version\":1,\"ur").expect("truncate");
    std::fs::write(folder.join("labels/a.parquet"), b"x").expect("corrupt the copy too");
    let (m, pulled) = open(bucket.path(), cache.path());
    assert_eq!(m.folder(), folder, "the same slot");
    assert_eq!(pulled.fetched, 1);
    assert_eq!(std::fs::read(folder.join("labels/a.parquet")).expect("a"), b"a");
}

#[test]
fn a_second_process_on_the_host_takes_another_slot() {
    let (bucket, cache) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    put(bucket.path(), "labels/a.parquet", b"a");
    let (a, _) = open(bucket.path(), cache.path());
    let (b, _) = open(bucket.path(), cache.path());
    assert_ne!(a.folder(), b.folder());
}

#[test]
fn merge3_takes_each_sides_members_and_refuses_one_member_changed_twice() {
    let base = json!({"a": 1, "b": {"x": 1}, "c": 3});
    let ours = json!({"a": 2, "b": {"x": 1, "y": 2}, "c": 3});
    let theirs = json!({"a": 1, "b": {"x": 1, "z": 3}});
    assert_eq!(
        merge3(Some(&base), Some(&ours), Some(&theirs)),
        Ok(Some(json!({"a": 2, "b": {"x": 1, "y": 2, "z": 3}})))
    );
    let clash = json!({"a": 5, "b": {"x": 1}, "c": 3});
    assert_eq!(merge3(Some(&base), Some(&ours), Some(&clash)), Err(Conflict));
    assert_eq!(merge3(Some(&json!([1])), Some(&json!([1, 2])), Some(&json!([1, 3]))), Err(Conflict));
    assert_eq!(
        merge3(None, Some(&json!({"a": 1})), Some(&json!({"b": 2}))),
        Ok(Some(json!({"a": 1, "b": 2})))
    );
}

#[test]
fn locations_other_than_s3_urls_stay_folders() {
    assert_eq!(local(Path::new("moldops-data/lake")).expect("path"), PathBuf::from("moldops-data/lake"));
    assert_eq!(local(Path::new("file:///srv/lake")).expect("file URL"), PathBuf::from("/srv/lake"));
    assert!(is_remote(Path::new("s3://bucket/lake")));
    assert!(!is_remote(Path::new("/s3/lake")));
}

#[test]
fn shards_that_both_create_the_etl_state_merge_and_a_stale_delete_is_refused() {
    let bucket = tempfile::tempdir().expect("dir");
    let (c1, c2) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    put(bucket.path(), "etl_data/x.parquet", b"x1");
    let (mut a, _) = open(bucket.path(), c1.path());
    let (mut b, _) = open(bucket.path(), c2.path());
    let state = |v: serde_json::Value| serde_json::to_vec(&v).expect("json");
    put(a.folder(), "_etl/state.json", &state(json!({"machines": {"m1": 1}})));
    put(b.folder(), "_etl/state.json", &state(json!({"machines": {"m2": 2}})));
    rt().block_on(a.push()).expect("a creates it");
    assert_eq!(rt().block_on(b.push()).expect("b merges into it").merged, 1);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bucket.path().join("_etl/state.json")).expect("state"))
            .expect("json");
    assert_eq!(saved, json!({"machines": {"m1": 1, "m2": 2}}));

    // b rewrote x since a pulled it: a's removal of x is refused, b's x stays.
    put(b.folder(), "etl_data/x.parquet", b"x2");
    rt().block_on(b.push()).expect("b replaces x");
    std::fs::remove_file(a.folder().join("etl_data/x.parquet")).expect("rm");
    let err = format!("{:#}", rt().block_on(a.push()).expect_err("stale delete"));
    assert!(err.contains("not removed"), "{err}");
    assert_eq!(std::fs::read(bucket.path().join("etl_data/x.parquet")).expect("x"), b"x2");
}
