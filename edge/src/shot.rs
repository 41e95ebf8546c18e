//! Turning a poll's registers into records. [`Snapshot::decode`] reads every tag of a profile
//! (flagging values outside their engineering range); [`plan`] decides from the shot counter
//! which shots are new since the last one recorded — across counter wrap, restarts and
//! shots made while the edge was away (read back from the controller's history ring).

use crate::sources::Registers;
use moldops_shared::profile::{self, DataType, Order, Profile, Tag, Value};
use std::collections::BTreeMap;

/// A tag decoded outside its engineering range, with the orders that would make it plausible.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeIssue {
    pub tag: String,
    pub value: f64,
    pub plausible: Vec<(Order, Order, f64)>,
}

/// Every tag of a profile decoded from one register image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub counter: Option<u64>,
    pub timestamp_ms: Option<i64>,
    /// The mould key: the mould code, with the material joined once every tag is read
    /// ([`join_material`]).
    pub mold: Option<String>,
    /// Why a mold code that was read could not be kept (see [`usable_mold`]); blank is no
    /// problem (no mold set on the controller).
    pub mold_refused: Option<String>,
    /// The material or recipe code: as read, then (after [`join_material`]) the one joined to
    /// `mold`, or none when nothing was joined.
    pub material: Option<String>,
    /// Why a material that was read could not be joined to the mould (the mould goes alone).
    pub material_refused: Option<String>,
    pub values: BTreeMap<String, f64>,
    pub out_of_range: Vec<RangeIssue>,
}

/// A mold code as read, if it can travel: blank registers (no mold set on the controller) or
/// text the ingest would refuse (over 128 bytes, control characters) give none, so the shot
/// still lands — without a mold — instead of being quarantined.
pub(crate) fn usable_mold(text: String) -> Option<String> {
    moldops_shared::limits::check_name("mold", &text).is_ok().then_some(text)
}

/// Sets `mold` (and `mold_refused`, when text that is not blank could not be kept).
pub(crate) fn set_mold(s: &mut Snapshot, text: String) {
    s.mold_refused = match moldops_shared::limits::check_name("mold", &text) {
        Err(e) if !text.trim().is_empty() => Some(e.to_string()),
        _ => None,
    };
    s.mold = usable_mold(text);
}

/// Joins the material read (if any) to the mould: `{mould}+{material}`. A blank material, or
/// none, leaves the mould key as it is; so does a material without a mould. A key that could
/// not travel (over the name limit, control characters) keeps the mould alone and says why in
/// `material_refused`.
pub(crate) fn join_material(s: &mut Snapshot) {
    let material = s.material.take().map(|m| m.trim().to_string()).filter(|m| !m.is_empty());
    let (Some(mould), Some(material)) = (&s.mold, material) else { return };
    let key = moldops_shared::mould::with_material(mould, &material);
    let ok = moldops_shared::limits::check_name("material", &material)
        .and_then(|()| moldops_shared::limits::check_name("mold", &key));
    match ok {
        Ok(()) => {
            s.mold = Some(key);
            s.material = Some(material);
        }
        Err(e) => s.material_refused = Some(format!("material {material:?}: {e}")),
    }
}

impl Snapshot {
    /// Decodes `profile`'s tags from `regs`, addresses moved by `shift` (history slots).
    pub fn decode(profile: &Profile, regs: &Registers, shift: i32) -> Snapshot {
        let mut s = Snapshot::default();
        let role = |r: &Option<String>, t: &Tag| r.as_deref() == Some(t.name.as_str());
        let value_tags: Vec<&str> = profile.value_tags().iter().map(|t| t.name.as_str()).collect();
        for tag in &profile.tags {
            let Some(words) = regs.words(tag, shift) else { continue };
            let (word, byte) = profile.orders(tag);
            if role(&profile.shot_counter, tag) {
                s.counter = Some(profile::decode_u64(tag, words, word, byte));
            } else if role(&profile.timestamp, tag) {
                s.timestamp_ms = Some(timestamp(tag, words, word, byte));
            } else if role(&profile.mold_code, tag) {
                let text = match profile::decode(tag, words, word, byte) {
                    Value::Text(t) => t,
                    Value::Number(n) => format!("{n}"),
                };
                set_mold(&mut s, text);
            } else if role(&profile.material_code, tag) {
                s.material = Some(match profile::decode(tag, words, word, byte) {
                    Value::Text(t) => t,
                    Value::Number(n) => format!("{n}"),
                });
            } else if value_tags.contains(&tag.name.as_str())
                && let Value::Number(v) = profile::decode(tag, words, word, byte)
            {
                if !v.is_finite() || tag.out_of_range(v) {
                    let plausible = profile::plausible_orders(tag, words);
                    s.out_of_range.push(RangeIssue { tag: tag.name.clone(), value: v, plausible });
                }
                if v.is_finite() {
                    s.values.insert(tag.name.clone(), v);
                }
            }
        }
        join_material(&mut s);
        s
    }

    /// Names of the out-of-range values, for the record's flag list.
    pub fn flagged(&self) -> Vec<String> {
        self.out_of_range.iter().map(|i| i.tag.clone()).collect()
    }
}

fn timestamp(tag: &Tag, words: &[u16], word: Order, byte: Order) -> i64 {
    let v = match tag.dtype {
        DataType::F32 | DataType::F64 | DataType::I16 | DataType::I32 => {
            match profile::decode(tag, words, word, byte) {
                Value::Number(n) => n,
                Value::Text(_) => 0.0,
            }
        }
        _ => profile::decode_u64(tag, words, word, byte) as f64 * tag.scale + tag.offset,
    };
    v as i64
}

/// What the shot counter says happened since the last recorded shot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ShotPlan {
    /// No new shot.
    None,
    /// Record these shot numbers: earlier ones (read back from history) then the current.
    Record { backfill: Vec<u64>, current: u64 },
    /// The counter moved backwards (controller reset or replaced): record the current shot.
    Reset { previous: u64, current: u64 },
}

/// Plans which shots to record. `last` is the last shot durably recorded (None on first
/// contact), `history_depth` the controller's ring depth (0 without one). Shots older than
/// the ring are missed; the caller counts `missed(...)` of them.
pub(crate) fn plan(last: Option<u64>, current: u64, bits: u32, history_depth: u64) -> ShotPlan {
    let wrap = |n: u64| if bits >= 64 { n } else { n & ((1u64 << bits) - 1) };
    match last {
        None => {
            let back = history_depth.saturating_sub(1).min(current);
            let backfill = (1..=back).rev().map(|k| wrap(current.wrapping_sub(k))).collect();
            ShotPlan::Record { backfill, current }
        }
        Some(prev) if prev == current => ShotPlan::None,
        Some(prev) => {
            let delta = profile::counter_delta(prev, current, bits);
            if delta == 0 {
                // Equal within the counter's width (a mark stored under a wider counter).
                return ShotPlan::None;
            }
            let half = if bits >= 64 { u64::MAX / 2 } else { 1u64 << (bits - 1) };
            if delta >= half {
                return ShotPlan::Reset { previous: prev, current };
            }
            let back = (delta - 1).min(history_depth.saturating_sub(1));
            let backfill = (1..=back).rev().map(|k| wrap(current.wrapping_sub(k))).collect();
            ShotPlan::Record { backfill, current }
        }
    }
}

/// Number of shots between `last` and `current` that no backfill can cover.
pub(crate) fn missed(last: Option<u64>, current: u64, bits: u32, backfilled: usize) -> u64 {
    match last {
        Some(prev) if prev != current => {
            profile::counter_delta(prev, current, bits).saturating_sub(1).saturating_sub(backfilled as u64)
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Registers holding `text` as 2 ASCII bytes each (big endian), padded with NUL.
    fn text_words(text: &str, registers: usize) -> Vec<u16> {
        let mut bytes = text.as_bytes().to_vec();
        bytes.resize(2 * registers, 0);
        bytes.chunks(2).map(|b| u16::from_be_bytes([b[0], b[1]])).collect()
    }

    #[test]
    fn a_material_refines_the_mould_key_and_a_blank_one_leaves_it() {
        let p: Profile = toml::from_str(
            r#"
name = "imm"
mold_code = "mold"
material_code = "material"
[[tags]]
name = "mold"
address = 0
type = "string"
len = 2
[[tags]]
name = "material"
address = 2
type = "string"
len = 2
[[tags]]
name = "Cycle_Time"
address = 4
type = "u16"
"#,
        )
        .expect("profile");
        assert!(p.validate().is_empty(), "{:?}", p.validate());
        assert_eq!(p.value_tags().iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["Cycle_Time"]);
        let decode = |mold: &str, material: &str| {
            let mut words = text_words(mold, 2);
            words.extend(text_words(material, 2));
            words.push(30);
            let mut regs = Registers::default();
            let blocks = profile::plan_reads(&p.tags, 8);
            assert_eq!(blocks.len(), 1, "one read of the five registers");
            for block in blocks {
                regs.push(block, words.clone());
            }
            let s = Snapshot::decode(&p, &regs, 0);
            (s.mold, s.material)
        };
        assert_eq!(decode("A1", "PA6"), (Some("A1+PA6".into()), Some("PA6".into())));
        assert_eq!(decode("A1", ""), (Some("A1".into()), None), "no material set: the mould alone");
        assert_eq!(decode("", "PA6"), (None, None), "a material without a mould is no key");
    }

    #[test]
    fn plans_next_and_wrap() {
        assert_eq!(plan(Some(5), 5, 32, 64), ShotPlan::None);
        assert_eq!(plan(Some(5), 6, 32, 64), ShotPlan::Record { backfill: vec![], current: 6 });
        let max = u64::from(u32::MAX);
        assert_eq!(plan(Some(max), 0, 32, 64), ShotPlan::Record { backfill: vec![], current: 0 });
        assert_eq!(plan(Some(max - 1), 1, 32, 64), ShotPlan::Record { backfill: vec![max, 0], current: 1 });
    }

    #[test]
    fn plans_backfill_within_history_and_counts_missed() {
        assert_eq!(plan(Some(10), 13, 32, 64), ShotPlan::Record { backfill: vec![11, 12], current: 13 });
        let p = plan(Some(10), 100, 32, 8);
        let ShotPlan::Record { backfill, current } = p else { panic!("{p:?}") };
        assert_eq!(backfill, (93..100).collect::<Vec<_>>());
        assert_eq!(current, 100);
        assert_eq!(missed(Some(10), 100, 32, backfill.len()), 89 - 7);
        assert_eq!(plan(Some(10), 12, 32, 0), ShotPlan::Record { backfill: vec![], current: 12 });
        assert_eq!(missed(Some(10), 12, 32, 0), 1);
    }

    #[test]
    fn first_contact_reads_history_and_reset_is_detected() {
        assert_eq!(plan(None, 3, 32, 64), ShotPlan::Record { backfill: vec![0, 1, 2], current: 3 });
        assert_eq!(plan(None, 0, 32, 64), ShotPlan::Record { backfill: vec![], current: 0 });
        assert_eq!(plan(Some(500), 3, 32, 64), ShotPlan::Reset { previous: 500, current: 3 });
    }
}
