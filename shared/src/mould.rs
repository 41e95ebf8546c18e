//! Mould keys: a shot's mould code, refined by its material or recipe where the machine reports
//! one (`{mould}+{material}`), so that models, cold-start baselines, drift and the mould
//! lifecycle are kept per (machine, mould, material) without a field of their own — the key
//! travels as the record's `mold` and is a model key's mould everywhere (docs/mould-lifecycle.md).

/// Separator between the mould and the material in a mould key.
pub const MATERIAL_SEPARATOR: char = '+';

/// The mould key of a shot of `mould` in `material`.
pub fn with_material(mould: &str, material: &str) -> String {
    format!("{mould}{MATERIAL_SEPARATOR}{material}")
}

/// The mould a key refines with a material (`None` for a key with no material): the key whose
/// model scores the shots of a material that has no model of its own yet.
pub fn mould_of(key: &str) -> Option<&str> {
    key.rsplit_once(MATERIAL_SEPARATOR).map(|(mould, _)| mould).filter(|m| !m.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_with_a_material_names_its_mould() {
        let key = with_material("9000a 09520", "PA66-GF30");
        assert_eq!(key, "9000a 09520+PA66-GF30");
        assert_eq!(mould_of(&key), Some("9000a 09520"));
        assert_eq!(mould_of("9000a 09520"), None);
        assert_eq!(mould_of("+PA6"), None, "no mould before the material");
        assert_eq!(mould_of(&with_material("A+B", "PA6")), Some("A+B"), "the material is the last part");
    }
}
