//! Mould keys: a shot's mould code, refined by its material or recipe where the machine reports
//! one (`{mould}+{material}`), so that models, cold-start baselines, drift and the mould
//! lifecycle are kept per (machine, mould, material) — the key travels as the record's `mold`
//! and is a model key's mould everywhere, and the record's `material` says what was joined, so
//! a `+` inside a code never splits it wrongly (docs/mould-lifecycle.md).

/// Separator between the mould and the material in a mould key.
pub const MATERIAL_SEPARATOR: char = '+';

/// The mould key of a shot of `mould` in `material`.
pub fn with_material(mould: &str, material: &str) -> String {
    format!("{mould}{MATERIAL_SEPARATOR}{material}")
}

/// The mould of `key`, a key joined from a mould and `material` (`None` when `key` does not end
/// in `+{material}`): the key whose model scores the shots of a material that has no model of
/// its own yet.
pub fn mould_of<'a>(key: &'a str, material: &str) -> Option<&'a str> {
    key.strip_suffix(material)?.strip_suffix(MATERIAL_SEPARATOR).filter(|m| !m.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_with_a_material_names_its_mould() {
        let key = with_material("9000a 09520", "PA66-GF30");
        assert_eq!(key, "9000a 09520+PA66-GF30");
        assert_eq!(mould_of(&key, "PA66-GF30"), Some("9000a 09520"));
        assert_eq!(mould_of("9000a+1", "1"), Some("9000a"), "only with the material it was joined with");
        assert_eq!(mould_of("+PA6", "PA6"), None, "no mould before the material");
        assert_eq!(mould_of("APA6", "PA6"), None, "no separator");
        // A `+` inside either code splits nothing: the material is known.
        assert_eq!(mould_of(&with_material("A+B", "PA6+GF30"), "PA6+GF30"), Some("A+B"));
    }
}
