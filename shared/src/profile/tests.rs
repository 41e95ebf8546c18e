//! Tests for register decoding, encoding and read planning.

use super::*;

/// A big-endian profile named `p` with `tags` and no roles (shared with the fuzz tests).
pub(crate) fn profile_of(tags: Vec<Tag>) -> Profile {
    Profile {
        name: "p".into(),
        word_order: Order::Big,
        byte_order: Order::Big,
        shot_counter: None,
        mold_code: None,
        material_code: None,
        state: None,
        timestamp: None,
        shot_values: vec![],
        history: None,
        tags,
    }
}

fn tag(name: &str, address: u16, dtype: DataType) -> Tag {
    Tag {
        name: name.into(),
        register: RegisterKind::Holding,
        address,
        dtype,
        len: None,
        word_order: None,
        byte_order: None,
        scale: 1.0,
        offset: 0.0,
        unit: None,
        range: None,
    }
}

#[test]
fn f32_in_all_orders() {
    // 123.456f32 = 0x42F6E979: ABCD = [0x42F6, 0xE979].
    let t = tag("x", 0, DataType::F32);
    let abcd = [0x42F6, 0xE979];
    let cdab = [0xE979, 0x42F6];
    let badc = [0xF642, 0x79E9];
    let dcba = [0x79E9, 0xF642];
    let want = f64::from(123.456f32);
    assert_eq!(decode(&t, &abcd, Order::Big, Order::Big), Value::Number(want));
    assert_eq!(decode(&t, &cdab, Order::Little, Order::Big), Value::Number(want));
    assert_eq!(decode(&t, &badc, Order::Big, Order::Little), Value::Number(want));
    assert_eq!(decode(&t, &dcba, Order::Little, Order::Little), Value::Number(want));
    for (w, b) in [(Order::Big, Order::Big), (Order::Little, Order::Little), (Order::Little, Order::Big)] {
        assert_eq!(decode(&t, &encode(&t, 123.456, w, b), w, b), Value::Number(want));
    }
}

#[test]
fn integers_scale_and_sign() {
    let mut t = tag("p", 0, DataType::I16);
    t.scale = 0.1;
    t.offset = 1.0;
    let Value::Number(v) = decode(&t, &[0xFFF6], Order::Big, Order::Big) else { panic!() };
    assert!((v - 0.0).abs() < 1e-12, "-10 * 0.1 + 1 = 0, got {v}");
    let t = tag("c", 0, DataType::U32);
    assert_eq!(decode_u64(&t, &[0x0001, 0x0002], Order::Big, Order::Big), 0x0001_0002);
    assert_eq!(decode_u64(&t, &[0x0002, 0x0001], Order::Little, Order::Big), 0x0001_0002);
    let t = tag("i", 0, DataType::I32);
    assert_eq!(decode(&t, &[0xFFFF, 0xFFFE], Order::Big, Order::Big), Value::Number(-2.0));
    let t = tag("d", 0, DataType::F64);
    let regs = encode(&t, -1.5e9, Order::Little, Order::Big);
    assert_eq!(decode(&t, &regs, Order::Little, Order::Big), Value::Number(-1.5e9));
    let t = tag("u", 0, DataType::U64);
    let regs = encode(&t, 1_700_000_000_123.0, Order::Big, Order::Big);
    assert_eq!(decode_u64(&t, &regs, Order::Big, Order::Big), 1_700_000_000_123);
}

#[test]
fn strings_trim_padding() {
    let mut t = tag("mold", 0, DataType::String);
    t.len = Some(4);
    let regs = encode_text("9000a ", 4, Order::Big);
    assert_eq!(regs.len(), 4);
    assert_eq!(decode(&t, &regs, Order::Big, Order::Big), Value::Text("9000a".into()));
    let swapped = encode_text("AB", 1, Order::Little);
    assert_eq!(decode(&t, &swapped, Order::Big, Order::Little), Value::Text("AB".into()));
}

#[test]
fn counter_wraps() {
    assert_eq!(counter_delta(u32::MAX as u64, 0, 32), 1);
    assert_eq!(counter_delta(u32::MAX as u64 - 1, 2, 32), 4);
    assert_eq!(counter_delta(65535, 1, 16), 2);
    assert_eq!(counter_delta(10, 11, 64), 1);
}

#[test]
fn plausible_order_hint() {
    let mut t = tag("temp", 0, DataType::F32);
    t.range = Some([0.0, 400.0]);
    let regs = encode(&t, 215.5, Order::Little, Order::Big);
    let Value::Number(wrong) = decode(&t, &regs, Order::Big, Order::Big) else { panic!() };
    assert!(t.out_of_range(wrong) || !wrong.is_finite());
    let hints = plausible_orders(&t, &regs);
    assert!(hints.iter().any(|(w, b, v)| *w == Order::Little && *b == Order::Big && *v == 215.5));
}

#[test]
fn read_planning_merges_and_splits() {
    let tags: Vec<Tag> = (0..100).map(|i| tag(&format!("t{i}"), i * 2, DataType::F32)).collect();
    let blocks = plan_reads(&tags, 4);
    assert_eq!(blocks.len(), 2, "200 registers need two reads: {blocks:?}");
    assert!(blocks.iter().all(|b| b.count <= MAX_READ));
    assert_eq!(blocks.iter().map(|b| u32::from(b.count)).sum::<u32>(), 200);
    let far = vec![tag("a", 0, DataType::U16), tag("b", 1000, DataType::U16)];
    assert_eq!(plan_reads(&far, 4).len(), 2);
    let mut input = tag("i", 1, DataType::U16);
    input.register = RegisterKind::Input;
    assert_eq!(plan_reads(&[tag("a", 0, DataType::U16), input], 4).len(), 2);
}

#[test]
fn validation_lists_every_problem() {
    let mut s = tag("s", 0, DataType::String);
    s.len = None;
    let mut r = tag("r", 65535, DataType::F32);
    r.range = Some([5.0, 1.0]);
    let p = Profile {
        name: "bad".into(),
        word_order: Order::Big,
        byte_order: Order::Big,
        shot_counter: Some("missing".into()),
        mold_code: None,
        material_code: None,
        state: None,
        timestamp: None,
        shot_values: vec!["nope".into()],
        history: None,
        tags: vec![s, r.clone(), r],
    };
    let errs = p.validate();
    assert!(errs.len() >= 6, "{errs:?}");
}

#[test]
fn a_nan_range_bound_and_a_string_longer_than_one_read_are_refused() {
    let mut nan = tag("n", 0, DataType::F32);
    nan.range = Some([f64::NAN, 10.0]);
    let mut one_sided = tag("o", 2, DataType::F32);
    one_sided.range = Some([f64::NEG_INFINITY, 10.0]);
    let mut long = tag("l", 10, DataType::String);
    long.len = Some(MAX_READ + 1);
    let p = profile_of(vec![nan, one_sided, long]);
    let errs: Vec<String> = p.validate().iter().map(|e| e.to_string()).collect();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].contains("tag n") && errs[0].contains("not a number"), "{errs:?}");
    assert!(errs[1].contains("tag l") && errs[1].contains("at most 125 registers"), "{errs:?}");
}
