//! Values meant to break decoders: numbers at the edges of their types and of f64's exact
//! integers, and text cut at a random point.

use crate::fuzz::Gen;
use arbtest::arbitrary::Unstructured;

/// A float: NaN, infinities, signed zero, extremes, subnormals, the edge of f64's exact
/// integers, plain values — or any bit pattern.
pub fn any_f64(u: &mut Unstructured<'_>) -> Gen<f64> {
    const SPECIAL: [f64; 18] = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        5e-324,
        1e300,
        9_007_199_254_740_992.0,
        9_007_199_254_740_994.0,
        -9_007_199_254_740_992.0,
        -1.0,
        0.1,
        0.5,
        1.0,
        61.5,
    ];
    if u.ratio(2, 3)? { Ok(*u.choose(&SPECIAL)?) } else { Ok(f64::from_bits(u.arbitrary()?)) }
}

/// An unsigned integer: type edges, f64's exact-integer edge, u32 and u16 overflow — or any.
pub fn any_u64(u: &mut Unstructured<'_>) -> Gen<u64> {
    const SPECIAL: [u64; 10] =
        [0, 1, 2, u64::MAX, u64::MAX - 1, 1 << 53, (1 << 53) + 1, i64::MAX as u64, u32::MAX as u64, 65_536];
    if u.ratio(1, 2)? { Ok(*u.choose(&SPECIAL)?) } else { u.arbitrary() }
}

/// Cuts `bytes` at a random point.
pub fn truncate_bytes(u: &mut Unstructured<'_>, bytes: &mut Vec<u8>) -> Gen<()> {
    let at = u.int_in_range(0..=bytes.len())?;
    bytes.truncate(at);
    Ok(())
}

/// Cuts `text` at a random character boundary.
pub fn truncate_text(u: &mut Unstructured<'_>, text: &mut String) -> Gen<()> {
    let mut at = u.int_in_range(0..=text.len())?;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    text.truncate(at);
    Ok(())
}
