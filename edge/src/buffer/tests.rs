//! Tests for the sled buffer: ordering, durability across reopen, shot marks, size bound.

use super::*;
use moldops_shared::RecordKind;
use moldops_shared::gap::DropGap;

fn rec(machine: &str, shot: u64) -> NewRecord {
    NewRecord {
        record: Record {
            seq: 0,
            kind: RecordKind::Shot,
            machine_id: machine.into(),
            device_id: machine.into(),
            ts_ms: 1_700_000_000_000 + shot as i64,
            shot_number: Some(shot),
            mold: Some("M".into()),
            material: None,
            values: [("Cycle_Time".to_string(), 60.0)].into_iter().collect(),
            out_of_range: vec![],
            model: None,
        },
        shot_mark: Some((machine.into(), shot)),
    }
}

#[tokio::test]
async fn append_read_remove_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let b = Buffer::open(dir.path(), 1 << 30).expect("open");
        let seqs = b.append(vec![rec("m1", 7), rec("m1", 8), rec("m2", 1)]).await.expect("append");
        assert_eq!(seqs, vec![0, 1, 2]);
        let got = b.read(0, 3, 10).expect("read");
        assert_eq!(got.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![0, 1, 2]);
        let r: Record = serde_json::from_slice(&got[1].1).expect("json");
        assert_eq!((r.seq, r.shot_number), (1, Some(8)));
        assert_eq!(b.remove(0..=0).expect("remove"), 1);
        assert_eq!(b.stats().records, 2);
        assert_eq!(b.last_shot("m1").expect("mark"), Some(8));
    }
    let b = Buffer::open(dir.path(), 1 << 30).expect("reopen");
    assert_eq!(b.next_seq(), 3, "seq never goes back after a restart");
    assert_eq!(b.stats().records, 2);
    assert_eq!(b.last_shot("m2").expect("mark"), Some(1));
    assert_eq!(b.read(0, u64::MAX, 10).expect("read")[0].0, 1);
    // Removing everything must not make the next seq reuse old numbers.
    b.remove(0..=10).expect("remove");
    drop(b);
    let b = Buffer::open(dir.path(), 1 << 30).expect("reopen");
    assert_eq!(b.next_seq(), 3);
}

/// Shots still buffered, and the records the buffer's gap records say were dropped.
fn shots_and_reported_drops(b: &Buffer) -> (u64, u64) {
    let (mut shots, mut reported) = (0, 0);
    for (_, json) in b.read(0, u64::MAX, usize::MAX).expect("read") {
        let r: Record = serde_json::from_slice(&json).expect("json");
        match r.kind {
            RecordKind::Gap => reported += DropGap::from_record(&r).expect("valid gap").dropped,
            _ => shots += 1,
        }
    }
    (shots, reported)
}

#[tokio::test]
async fn drops_oldest_when_full_counts_and_reports_gaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Buffer::open(dir.path(), 2000).expect("open");
    let mut first_gap = None;
    for i in 0..40 {
        let machine = if i % 4 == 3 { "m2" } else { "m1" };
        b.append(vec![rec(machine, i)]).await.expect("append");
        let (dropped, reported) = (b.stats().dropped, shots_and_reported_drops(&b).1);
        if dropped > 0 && first_gap.is_none() {
            assert_eq!(reported, dropped, "the first drops are reported at once");
            first_gap = b.read(0, u64::MAX, usize::MAX).expect("read").into_iter().find_map(|(_, json)| {
                let r: Record = serde_json::from_slice(&json).ok()?;
                DropGap::from_record(&r).ok()
            });
        }
    }
    let st = b.stats();
    assert!(st.bytes <= 2000, "{st:?}");
    assert!(st.dropped > 0);
    let (shots, reported) = shots_and_reported_drops(&b);
    assert_eq!(shots + st.dropped, 40, "every shot is buffered or counted as dropped");
    assert_eq!(reported + st.dropped_unreported, st.dropped, "every drop is in a gap record or the tally");
    assert_eq!(b.last_shot("m1").expect("mark"), Some(38), "meta survives drops");
    let gap = first_gap.expect("a gap record");
    assert_eq!(gap.machine_id, "m1", "the oldest records were m1's");
    assert_eq!(gap.first_ts_ms, 1_700_000_000_000, "the gap starts at the oldest shot");
    drop(b);

    // The tally survives a restart; once there is room again it is written out whole.
    let b = Buffer::open(dir.path(), 1 << 30).expect("reopen");
    assert_eq!(b.stats().dropped_unreported, st.dropped_unreported, "the tally is durable");
    b.append(vec![rec("m1", 40)]).await.expect("append");
    let (shots, reported) = shots_and_reported_drops(&b);
    assert_eq!((shots + st.dropped, reported), (41, st.dropped));
    assert_eq!(b.stats().dropped_unreported, 0);
}

#[tokio::test]
async fn writer_groups_concurrent_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Buffer::open(dir.path(), 1 << 30).expect("open");
    let w = Writer::spawn(b.clone());
    let mut tasks = Vec::new();
    for m in 0..8 {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for s in 0..25 {
                seqs.extend(w.append(vec![rec(&format!("m{m}"), s)]).await.expect("append"));
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let seqs = t.await.expect("task");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "per-task seqs increase");
        all.extend(seqs);
    }
    all.sort_unstable();
    assert_eq!(all, (0..200).collect::<Vec<_>>(), "every seq exactly once");
}

#[tokio::test]
async fn epoch_and_drop_count_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("buf");
    let (epoch, dropped) = {
        let b = Buffer::open(&path, 2000).expect("open");
        assert_eq!(b.epoch().len(), 16, "a new buffer gets a random epoch: {:?}", b.epoch());
        for i in 0..40 {
            b.append(vec![rec("m1", i)]).await.expect("append");
        }
        assert!(b.stats().dropped > 0);
        (b.epoch().to_string(), b.stats().dropped)
    };
    let b = Buffer::open(&path, 2000).expect("reopen");
    assert_eq!(b.epoch(), epoch);
    assert_eq!(b.stats().dropped, dropped, "the drop count is durable");
    drop(b);
    std::fs::remove_dir_all(&path).expect("wipe");
    let b = Buffer::open(&path, 2000).expect("fresh");
    assert_ne!(b.epoch(), epoch, "a wiped buffer is a new epoch");
    assert_eq!((b.next_seq(), b.stats().dropped), (0, 0));
}

#[tokio::test]
async fn a_buffer_from_before_epochs_keeps_its_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let b = Buffer::open(dir.path(), 1 << 30).expect("open");
        b.append(vec![rec("m1", 1)]).await.expect("append");
        b.tree().expect("tree").remove(META_EPOCH).expect("forget the epoch, as an old buffer has none");
        b.flush().await.expect("flush");
    }
    let b = Buffer::open(dir.path(), 1 << 30).expect("reopen");
    assert_eq!(b.epoch(), "", "its seqs continue the edge's old stream");
    assert_eq!(b.next_seq(), 1);
}

#[tokio::test]
async fn a_corrupt_buffer_is_moved_aside_and_a_new_one_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("buf");
    let old_epoch = {
        let b = Buffer::open(&path, 1 << 30).expect("open");
        b.append(vec![rec("m1", 1), rec("m1", 2)]).await.expect("append");
        b.flush().await.expect("flush");
        b.epoch().to_string()
    };
    for entry in std::fs::read_dir(&path).expect("ls").flatten() {
        if entry.path().is_file() {
            std::fs::write(entry.path(), vec![0xA5u8; 4096]).expect("garbage");
        }
    }
    let (b, reset) = Buffer::open_or_reset(&path, 1 << 30).expect("starts anyway");
    let reset = reset.expect("the corruption is reported");
    assert!(reset.moved_to.contains("buf.corrupt-"), "{reset:?}");
    assert!(std::path::Path::new(&reset.moved_to).is_dir(), "kept for forensics");
    assert_ne!(b.epoch(), old_epoch);
    assert_eq!((b.next_seq(), b.resets(), b.stats().resets), (0, 1, 1));
    b.append(vec![rec("m1", 3)]).await.expect("the new buffer works");
}
