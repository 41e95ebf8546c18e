//! Fuzz tests of machine profiles: register decoding and encoding, validation and read planning.

use super::*;
use crate::limits;
use crate::profile::{self, DataType, History, MAX_READ, Order, Profile, RegisterKind, Tag, Value};

const TYPES: [DataType; 8] = [
    DataType::U16,
    DataType::I16,
    DataType::U32,
    DataType::I32,
    DataType::U64,
    DataType::F32,
    DataType::F64,
    DataType::String,
];
const ORDERS: [Order; 2] = [Order::Big, Order::Little];

fn tag(name: &str, address: u16, dtype: DataType) -> Tag {
    Tag {
        name: name.into(),
        register: RegisterKind::Holding,
        address,
        dtype,
        len: (dtype == DataType::String).then_some(4),
        word_order: None,
        byte_order: None,
        scale: 1.0,
        offset: 0.0,
        unit: None,
        range: None,
    }
}

fn any_u16(u: &mut Unstructured<'_>) -> Gen<u16> {
    const SPECIAL: [u16; 8] = [0, 1, 2, MAX_READ, MAX_READ + 1, u16::MAX - 3, u16::MAX - 1, u16::MAX];
    if u.ratio(1, 2)? { Ok(*u.choose(&SPECIAL)?) } else { u.arbitrary() }
}

/// A register word, often one of the patterns that make NaN, infinity or sign flips.
fn any_register(u: &mut Unstructured<'_>) -> Gen<u16> {
    const SPECIAL: [u16; 8] = [0, 0xFFFF, 0x8000, 0x7FFF, 0x7F80, 0x7FC0, 0xFF80, 0x7FF0];
    if u.ratio(1, 2)? { Ok(*u.choose(&SPECIAL)?) } else { u.arbitrary() }
}

fn registers(u: &mut Unstructured<'_>, n: usize) -> Gen<Vec<u16>> {
    (0..n).map(|_| any_register(u)).collect()
}

/// Decoding one tag's registers under every word and byte order: no panic; integers with
/// sane scale and offset are finite; text is trimmed printable ASCII; a number from a slice of
/// the wrong length (empty included) is NaN, so no order is plausible for it.
fn check_decode(t: &Tag, regs: &[u16]) {
    let exact = regs.len() == usize::from(t.registers());
    for word in ORDERS {
        for byte in ORDERS {
            match timed("decode", || profile::decode(t, regs, word, byte)) {
                Value::Text(s) => {
                    assert_eq!(t.dtype, DataType::String);
                    assert!(s.len() <= 2 * regs.len() && s.trim() == s, "{s:?}");
                    assert!(s.bytes().all(|b| b.is_ascii_graphic() || b == b' '), "{s:?}");
                }
                Value::Number(v) => {
                    assert_ne!(t.dtype, DataType::String);
                    let integer = !matches!(t.dtype, DataType::F32 | DataType::F64);
                    let sane = t.scale.abs() <= 1e6 && t.offset.abs() <= 1e12;
                    // A slice of the wrong length decodes to NaN (refused downstream), never a guess.
                    assert!(exact || v.is_nan(), "{t:?} {regs:?} gave {v} from a wrong-length slice");
                    assert!(!integer || !sane || !exact || v.is_finite(), "{t:?} {regs:?} gave {v}");
                }
            }
            let raw = profile::decode_u64(t, regs, word, byte);
            assert!(
                t.registers() >= 4 || raw < 1u64 << (16 * u32::from(t.registers())),
                "{raw} past the tag width"
            );
        }
    }
    let plausible = timed("plausible_orders", || profile::plausible_orders(t, regs));
    assert!(exact || plausible.is_empty(), "{t:?} {regs:?}: {plausible:?} from a wrong-length slice");
}

#[test]
fn fuzz_register_decoding_every_type_and_order() {
    fuzz("profile/decode", |u| {
        for dtype in TYPES {
            let mut t = tag("v", 0, dtype);
            if dtype == DataType::String {
                t.len = Some(u.int_in_range(0..=130)?);
            }
            if u.ratio(1, 3)? {
                t.scale = any_f64(u)?;
                t.offset = any_f64(u)?;
            }
            let n = usize::from(t.registers());
            check_decode(&t, &registers(u, n)?);
            // Slices shorter (empty included) or longer than the type needs: NaN, no panic.
            let (short, long) = (u.int_in_range(0..=n)?, u.int_in_range(n..=n + 8)?);
            check_decode(&t, &registers(u, short)?);
            check_decode(&t, &registers(u, long)?);
        }
        Ok(())
    });
}

#[test]
fn fuzz_register_encoding_round_trips() {
    fuzz("profile/encode", |u| {
        let (word, byte) = (*u.choose(&ORDERS)?, *u.choose(&ORDERS)?);
        let int = |dtype, v: f64| {
            let t = tag("v", 0, dtype);
            assert_eq!(
                profile::decode(&t, &profile::encode(&t, v, word, byte), word, byte),
                Value::Number(v)
            );
        };
        int(DataType::U16, f64::from(u.arbitrary::<u16>()?));
        int(DataType::I16, f64::from(u.arbitrary::<i16>()?));
        int(DataType::U32, f64::from(u.arbitrary::<u32>()?));
        int(DataType::I32, f64::from(u.arbitrary::<i32>()?));
        int(DataType::U64, u.int_in_range(0..=1u64 << 53)? as f64);
        let x = any_f64(u)?;
        let t = tag("f", 0, DataType::F64);
        let back = profile::decode(&t, &profile::encode(&t, x, word, byte), word, byte);
        assert!(matches!(back, Value::Number(v) if v == x || (v.is_nan() && x.is_nan())), "{x} -> {back:?}");
        let t = tag("f", 0, DataType::F32);
        let want = f64::from(x as f32);
        let back = profile::decode(&t, &profile::encode(&t, x, word, byte), word, byte);
        assert!(
            matches!(back, Value::Number(v) if v == want || (v.is_nan() && want.is_nan())),
            "{x} -> {back:?}"
        );
        // Hostile values and scales never panic while encoding.
        let mut t = tag("h", 0, *u.choose(&TYPES)?);
        t.scale = any_f64(u)?;
        t.offset = any_f64(u)?;
        let _ = profile::encode(&t, any_f64(u)?, word, byte);
        let len = u.int_in_range(1..=8u16)?;
        let text: String = (0..u.int_in_range(0..=usize::from(len) * 2)?)
            .map(|_| Ok(char::from(u.int_in_range(b'!'..=b'~')?)))
            .collect::<Gen<_>>()?;
        let mut s = tag("s", 0, DataType::String);
        s.len = Some(len);
        assert_eq!(
            profile::decode(&s, &profile::encode_text(&text, len, byte), word, byte),
            Value::Text(text)
        );
        Ok(())
    });
}

/// A profile with hostile names, addresses, types, scales, ranges, roles and history.
fn hostile_profile(u: &mut Unstructured<'_>) -> Gen<Profile> {
    let mut tags = Vec::new();
    for i in 0..u.int_in_range(0..=12)? {
        let dtype = *u.choose(&TYPES)?;
        let name = if u.ratio(3, 4)? { format!("t{i}") } else { any_string(u)? };
        let address = if u.arbitrary()? { u.int_in_range(0..=200)? } else { any_u16(u)? };
        let mut t = tag(&name, address, dtype);
        t.register = *u.choose(&[RegisterKind::Holding, RegisterKind::Input])?;
        // Any `len`, 0 included (a string tag without registers, which `validate` refuses).
        t.len = if u.arbitrary()? { Some(any_u16(u)?) } else { t.len };
        if u.ratio(1, 3)? {
            (t.scale, t.offset) = (any_f64(u)?, any_f64(u)?);
        }
        t.range = if u.arbitrary()? { Some([any_f64(u)?, any_f64(u)?]) } else { None };
        t.word_order = if u.arbitrary()? { Some(*u.choose(&ORDERS)?) } else { None };
        tags.push(t);
    }
    let role = |u: &mut Unstructured<'_>| -> Gen<Option<String>> {
        Ok(match u.int_in_range(0..=3)? {
            0 => None,
            1 => Some(any_string(u)?),
            _ if tags.is_empty() => None,
            _ => Some(tags[u.choose_index(tags.len())?].name.clone()),
        })
    };
    let (shot_counter, mold_code, state, timestamp) = (role(u)?, role(u)?, role(u)?, role(u)?);
    let material_code = role(u)?;
    let shot_values = (0..u.int_in_range(0..=3)?).filter_map(|_| role(u).transpose()).collect::<Gen<_>>()?;
    let history = if u.ratio(1, 4)? {
        Some(History { base: any_u16(u)?, depth: any_u16(u)?, stride: any_u16(u)?, copy_of: any_u16(u)? })
    } else {
        None
    };
    Ok(Profile {
        name: any_string(u)?,
        word_order: *u.choose(&ORDERS)?,
        byte_order: *u.choose(&ORDERS)?,
        shot_counter,
        mold_code,
        material_code,
        state,
        timestamp,
        shot_values,
        history,
        tags,
    })
}

#[test]
fn fuzz_profile_validation_and_read_plan() {
    fuzz("profile/validate", |u| {
        let p = hostile_profile(u)?;
        let errs = timed("Profile::validate", || p.validate());
        note(errs.is_empty());
        for e in &errs {
            assert_reason(e, &p);
            if let profile::ProfileError::Tag { tag, .. } = e {
                assert!(e.to_string().contains(tag.as_str()), "{e} does not name its tag");
            }
        }
        let max_gap = u.arbitrary()?;
        let blocks = timed("plan_reads", || profile::plan_reads(&p.tags, max_gap));
        for t in p.tags.iter().filter(|t| t.registers() == 0) {
            // A string tag of `len = 0`: refused with a reason naming `len`, and never read.
            assert_eq!(t.end(), None, "{t:?} has no registers, so no end");
            let for_len = errs.iter().any(|e| match e {
                profile::ProfileError::Tag { tag, msg } => *tag == t.name && msg.contains("len"),
                profile::ProfileError::Profile(_) => false,
            });
            assert!(for_len, "{t:?} is not refused for its len: {errs:?}");
            assert!(profile::plan_reads([t], max_gap).is_empty(), "{t:?} is planned a read");
        }
        if !errs.is_empty() {
            return Ok(());
        }
        for t in &p.tags {
            limits::check_name("tag name", &t.name).expect("a valid profile has valid tag names");
            assert!(t.scale.is_finite() && t.scale != 0.0 && t.offset.is_finite());
            let end = t.end().expect("a valid tag ends inside the register space");
            let covered = blocks.iter().any(|b| {
                b.register == t.register
                    && b.start <= t.address
                    && u32::from(end) < u32::from(b.start) + u32::from(b.count)
            });
            assert!(covered, "tag {} is not read by {blocks:?}", t.name);
        }
        for b in &blocks {
            assert!(b.count >= 1 && u32::from(b.start) + u32::from(b.count) <= 65_536, "{b:?}");
            let single_big_tag = p.tags.iter().any(|t| t.registers() > MAX_READ);
            assert!(b.count <= MAX_READ || single_big_tag, "{b:?} over {MAX_READ} registers");
        }
        assert!(matches!(p.counter_bits(), 16 | 32 | 64));
        Ok(())
    });
}

/// Found by `fuzz_register_decoding_every_type_and_order`, fixed: a 16-bit tag decoded from an
/// empty slice indexed `w[0]` (`shared/src/profile.rs`, `raw_number`) and panicked, and longer
/// types decoded a too-short slice silently. `decode` now gives NaN for a numeric tag whose
/// slice is not `tag.registers()` words long (refused downstream); the property checks it.
#[test]
fn regression_decode_of_an_empty_register_slice_panics() {
    for dtype in [DataType::U16, DataType::I16] {
        let t = tag("v", 0, dtype);
        let caught = std::panic::catch_unwind(|| profile::decode(&t, &[], Order::Big, Order::Big));
        let value = caught.expect("decoding no registers does not panic");
        assert!(
            matches!(value, Value::Number(v) if v.is_nan()),
            "{dtype:?} from no registers gave {value:?}"
        );
    }
}

/// Found by `fuzz_profile_validation_and_read_plan`, fixed: `Tag::end` computed
/// `self.registers() - 1`, which underflowed for a string tag with `len = 0`, so
/// `Profile::validate` (and `plan_reads`) panicked on `[[tags]] type = "string" len = 0` in
/// debug builds. `Tag::end` is now `None` for such a tag, `validate` refuses it ("string tags
/// need len …") and `plan_reads` skips it; the property generates `len = 0` again.
#[test]
fn regression_string_tag_of_len_0_panics_in_validate() {
    let mut t = tag("mold", 10, DataType::String);
    t.len = Some(0);
    let p = crate::profile::tests::profile_of(vec![t]);
    let errs = std::panic::catch_unwind(|| p.validate()).expect("validate refuses len = 0 without panicking");
    assert!(errs.iter().any(|e| e.to_string().contains("len")), "{errs:?}");
    let plan = std::panic::catch_unwind(|| profile::plan_reads(&p.tags, 8));
    assert_eq!(plan.expect("plan_reads does not panic on a zero-length tag"), vec![], "no read for it");
}
