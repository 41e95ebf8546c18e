//! Fuzz tests of Modbus decoding: profile TOML, register images of every type and order, snapshots.

use super::*;
use crate::shot::Snapshot;
use crate::sources::Registers;
use moldops_shared::codec::check_record;
use moldops_shared::profile::{self, DataType, Order, Profile, RegisterKind, Tag};

/// A profile that validates: every role, every data type, both register tables, a history ring.
const PROFILE: &str = r#"
name = "imm"
word_order = "little"
shot_counter = "shot_counter"
mold_code = "mold"
timestamp = "ts"
state = "state"
[history]
base = 1000
depth = 10
stride = 20
copy_of = 0
[[tags]]
name = "shot_counter"
address = 0
type = "u32"
[[tags]]
name = "mold"
address = 2
type = "string"
len = 4
[[tags]]
name = "ts"
address = 6
type = "u64"
[[tags]]
name = "state"
address = 10
type = "u16"
[[tags]]
name = "Cycle_Time"
address = 11
type = "f32"
scale = 0.1
range = [0.0, 600.0]
[[tags]]
name = "Inj_Pressure"
register = "input"
address = 13
type = "i16"
byte_order = "little"
[[tags]]
name = "Hold_Time"
address = 14
type = "f64"
[[tags]]
name = "사출_압력"
address = 18
type = "i32"
offset = -40.0
"#;

const PROFILE_KEYS: &[&str] = &[
    "name",
    "tags",
    "address",
    "type",
    "len",
    "word_order",
    "byte_order",
    "scale",
    "offset",
    "range",
    "shot_counter",
    "history",
    "\"u32\"",
    "\"string\"",
    "\"f32\"",
];

/// A register word, often one of the patterns that make NaN, infinity or sign flips.
fn any_register(u: &mut Unstructured<'_>) -> Gen<u16> {
    const SPECIAL: [u16; 8] = [0, 0xFFFF, 0x8000, 0x7FFF, 0x7F80, 0x7FC0, 0x2020, 0x4D31];
    if u.ratio(1, 2)? { Ok(*u.choose(&SPECIAL)?) } else { u.arbitrary() }
}

/// A register image of `p`'s planned reads: random words, some blocks short or missing.
fn image(u: &mut Unstructured<'_>, p: &Profile) -> Gen<Registers> {
    let mut regs = Registers::default();
    for block in profile::plan_reads(&p.tags, 8) {
        let n = match u.int_in_range(0..=5)? {
            0 => u.int_in_range(0..=usize::from(block.count))?,
            1 => continue,
            _ => usize::from(block.count),
        };
        let words = (0..n).map(|_| any_register(u)).collect::<Gen<Vec<u16>>>()?;
        regs.push(block, words);
    }
    Ok(regs)
}

/// String tags of `len = 0`: no registers, refused by `validate` with a reason naming `len`.
fn zero_length_tags(p: &Profile) -> impl Iterator<Item = &Tag> {
    p.tags.iter().filter(|t| t.dtype == DataType::String && t.len == Some(0))
}

fn check_profile_text(u: &mut Unstructured<'_>, text: &str) -> Gen<()> {
    let p = match timed("parse profile", || toml::from_str::<Profile>(text)) {
        Err(e) => {
            note(false);
            assert_reason(&e, &text);
            return Ok(());
        }
        Ok(p) => p,
    };
    let errs = timed("Profile::validate", || p.validate());
    note(errs.is_empty());
    for e in &errs {
        assert_reason(e, &p);
    }
    for t in zero_length_tags(&p) {
        let for_len = errs.iter().any(|e| match e {
            profile::ProfileError::Tag { tag, msg } => *tag == t.name && msg.contains("len"),
            profile::ProfileError::Profile(_) => false,
        });
        assert!(for_len, "{t:?} is not refused for its len: {errs:?}");
    }
    if errs.is_empty() {
        let regs = image(u, &p)?;
        let snap = timed("Snapshot::decode", || Snapshot::decode(&p, &regs, 0));
        check_snapshot(&p, &snap);
    }
    Ok(())
}

#[test]
fn fuzz_profile_toml_and_snapshots() {
    fuzz("edge/profile", |u| {
        let text = match u.int_in_range(0..=3)? {
            0 => TOML.soup(u, PROFILE_KEYS)?,
            // The mold tag without registers, of one, or over 128 bytes of text.
            1 => PROFILE.replace("len = 4", &format!("len = {}", u.choose(&[0, 1, 64, 65, 125])?)),
            _ => TOML.mutate(u, PROFILE)?,
        };
        check_profile_text(u, &text)
    });
}

const ORDERS: [Order; 2] = [Order::Big, Order::Little];

/// One tag of every data type, in random word and byte orders, scales and ranges.
fn every_type_profile(u: &mut Unstructured<'_>) -> Gen<Profile> {
    let mut tags = Vec::new();
    let mut address = u.int_in_range(0..=300u16)?;
    let sane = u.ratio(3, 4)?;
    for (i, dtype) in TYPES.into_iter().enumerate() {
        let tag = Tag {
            name: format!("{dtype:?}_{i}"),
            register: *u.choose(&[RegisterKind::Holding, RegisterKind::Input])?,
            address,
            dtype,
            // Now and then no registers, or a mold over 128 bytes (which the edge drops).
            len: (dtype == DataType::String).then_some(match u.int_in_range(0..=5)? {
                0 => *u.choose(&[0, 64, 65, 100])?,
                _ => u.int_in_range(1..=8)?,
            }),
            word_order: Some(*u.choose(&ORDERS)?),
            byte_order: Some(*u.choose(&ORDERS)?),
            scale: if sane { *u.choose(&[1.0, 0.1, -2.5, 1e-3])? } else { any_f64(u)? },
            offset: if sane { *u.choose(&[0.0, -40.0, 273.15])? } else { any_f64(u)? },
            unit: None,
            range: match u.int_in_range(0..=2)? {
                0 => None,
                1 if sane => Some([-1e3, 1e3]),
                _ => Some([any_f64(u)?, any_f64(u)?]),
            },
        };
        address = address.saturating_add(tag.registers() + u.int_in_range(0..=3)?);
        tags.push(tag);
    }
    let roles: Vec<String> = tags.iter().map(|t| t.name.clone()).collect();
    Ok(Profile {
        name: "every-type".into(),
        word_order: Order::Big,
        byte_order: Order::Big,
        shot_counter: Some(roles[*u.choose(&[0, 2, 4])?].clone()),
        mold_code: Some(roles[7].clone()),
        material_code: None,
        state: None,
        timestamp: if u.arbitrary()? { Some(roles[*u.choose(&[4, 5, 6])?].clone()) } else { None },
        shot_values: Vec::new(),
        history: None,
        tags,
    })
}

#[test]
fn fuzz_modbus_snapshot_every_type_and_order() {
    fuzz("edge/modbus", |u| {
        let p = every_type_profile(u)?;
        let regs = image(u, &p)?;
        let shift = if u.ratio(1, 4)? { u.arbitrary()? } else { 0 };
        let snap = timed("Snapshot::decode", || Snapshot::decode(&p, &regs, shift));
        let valid = p.validate().is_empty();
        note(valid);
        if !valid {
            return Ok(()); // Hostile scales or addresses: only "no panic" holds.
        }
        check_snapshot(&p, &snap);
        // A tag whose registers are not all in the image is absent, not guessed.
        for t in &p.tags {
            if regs.words(t, shift).is_none() {
                assert!(!snap.values.contains_key(&t.name), "{} decoded from missing registers", t.name);
            }
        }
        Ok(())
    });
}

/// Found by `fuzz_profile_toml_and_snapshots`, fixed: a string mold tag whose registers are
/// blank (spaces or NULs — a controller with no mold code set) decoded to `Some("")`; the
/// poller put it into every shot record and the ingest's `check_record` refused each one
/// ("mold is empty"), so every shot of the machine landed in the quarantine (a string tag over
/// 64 registers, a mold over 128 bytes, did the same). `Snapshot::decode` now drops a mold
/// that fails `limits::check_name` (`edge/src/shot.rs`, `usable_mold`); the snapshot
/// properties assert every shot record is accepted.
#[test]
fn regression_a_blank_mold_register_loses_every_shot() {
    let p: Profile = toml::from_str(PROFILE).expect("the example parses");
    let mut regs = Registers::default();
    for block in profile::plan_reads(&p.tags, 8) {
        let n = usize::from(block.count);
        regs.push(block, vec![0; n]);
    }
    let snap = Snapshot::decode(&p, &regs, 0);
    assert_eq!(snap.mold, None, "blank mold registers give no mold");
    assert_eq!(snap.mold_refused, None, "a blank mold is no problem to report");
    let r = shot_record(&snap, "m1");
    check_record(&r).expect("a shot from blank mold registers is accepted by the ingest");
}
