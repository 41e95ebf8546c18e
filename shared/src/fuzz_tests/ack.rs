//! Fuzz tests of commit acks and of the identifier limits (names, topic levels, epochs).

use super::*;
use crate::ack::{CommitAck, MAX_ACK_BYTES};
use crate::limits::{self, MAX_EPOCH_BYTES, MAX_ID_BYTES};

#[test]
fn fuzz_commit_ack() {
    fuzz("ack/decode", |u| {
        let valid = CommitAck { epoch: any_epoch(u)?, committed_through: any_u64(u)?, ts_ms: any_i64(u)? };
        let payload = match u.int_in_range(0..=3)? {
            0 => u.arbitrary::<Vec<u8>>()?,
            1 => {
                let payload = valid.encode();
                if limits::check_epoch(&valid.epoch).is_ok() {
                    CommitAck::decode(&payload).expect("a valid ack decodes");
                }
                payload
            }
            2 => json_soup(u, &["epoch", "committed_through", "ts_ms"])?,
            _ => mutate_json(u, &to_json(&valid))?,
        };
        let verdict = timed("CommitAck::decode", || CommitAck::decode(&payload));
        note(verdict.is_ok());
        match verdict {
            Err(e) => assert_reason(&e, &String::from_utf8_lossy(&payload)),
            Ok(ack) => {
                assert!(payload.len() <= MAX_ACK_BYTES);
                limits::check_epoch(&ack.epoch).expect("an accepted ack has a valid epoch");
                assert_eq!(CommitAck::decode(&ack.encode()).expect("an accepted ack round-trips"), ack);
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_identifier_limits() {
    fuzz("limits", |u| {
        let s = any_string(u)?;
        match limits::check_name("machine_id", &s) {
            Ok(()) => {
                assert!(!s.trim().is_empty() && s.len() <= MAX_ID_BYTES && !s.chars().any(char::is_control));
            }
            Err(e) => assert!(e.to_string().contains("machine_id"), "{e} does not name the field"),
        }
        match limits::check_level("site", &s) {
            Ok(()) => assert!(limits::check_name("site", &s).is_ok() && !s.contains(['/', '+', '#'])),
            Err(e) => assert!(e.to_string().contains("site"), "{e} does not name the field"),
        }
        match limits::check_epoch(&s) {
            Ok(()) => assert!(
                s.len() <= MAX_EPOCH_BYTES
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            ),
            Err(e) => assert!(e.to_string().contains("epoch"), "{e} does not name the field"),
        }
        Ok(())
    });
}
