//! Breaking valid TOML examples node by node: a node replaced by a raw token TOML trees cannot
//! hold (out-of-range integers, `nan`, deep nesting, wrong types), dropped, duplicated or joined
//! by an unknown key; the text sometimes cut short. Each crate adds the tokens and strings
//! that matter to its decoders ([`TomlMutator`]).

use crate::fuzz::Gen;
use crate::hostile::truncate_text;
use arbtest::arbitrary::Unstructured;

/// Placeholder put into a tree, later replaced by raw text the tree cannot hold.
const RAW: &str = "@@raw@@";

/// Raw TOML values every decoder should refuse or take in its stride.
const TOKENS: &[&str] = &[
    "0",
    "-1",
    "1",
    "65536",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "1e400",
    "nan",
    "-inf",
    "inf",
    "0.5",
    "true",
    "\"\"",
    "\" \"",
    "[]",
    "{}",
    "'가나다'",
    "\"a/b+c#\"",
    "\"\\u0000\"",
    "0x7FFF_FFFF",
    "1979-05-27T07:32:00Z",
    "[1, \"a\"]",
];

/// A crate's way of breaking TOML: its own extra tokens and hostile strings.
#[derive(Clone, Copy)]
pub struct TomlMutator {
    /// Raw values that matter to this crate's decoders (enum names, formats, ranges).
    pub tokens: &'static [&'static str],
    /// Strings meant to break this crate's identifiers, cells or paths.
    pub string: fn(&mut Unstructured<'_>) -> Gen<String>,
}

impl TomlMutator {
    /// Raw TOML value text meant to break whatever key it lands on.
    pub fn hostile(&self, u: &mut Unstructured<'_>) -> Gen<String> {
        Ok(match u.int_in_range(0..=5)? {
            0 | 1 => (*u.choose(TOKENS)?).to_string(),
            2 if !self.tokens.is_empty() => (*u.choose(self.tokens)?).to_string(),
            2 | 3 => toml::Value::String((self.string)(u)?).to_string(),
            _ => {
                let depth = u.int_in_range(1..=120)?;
                format!("{}{}", "[".repeat(depth), "]".repeat(depth))
            }
        })
    }

    /// Breaks one node of a TOML tree: replaces it, drops it, or adds an unknown or duplicate
    /// entry.
    pub fn mutate_node(&self, u: &mut Unstructured<'_>, value: &mut toml::Value) -> Gen<()> {
        let descend = u.ratio(3, 4)?;
        match value {
            toml::Value::Table(map) if descend && !map.is_empty() => {
                let key =
                    map.keys().nth(u.choose_index(map.len())?).cloned().expect("index within the table");
                return self.mutate_node(u, map.get_mut(&key).expect("key just read"));
            }
            toml::Value::Array(items) if descend && !items.is_empty() => {
                let i = u.choose_index(items.len())?;
                return self.mutate_node(u, &mut items[i]);
            }
            _ => {}
        }
        match (u.int_in_range(0..=3)?, value) {
            (0, toml::Value::Table(map)) if !map.is_empty() => {
                let key =
                    map.keys().nth(u.choose_index(map.len())?).cloned().expect("index within the table");
                map.remove(&key);
            }
            (1, toml::Value::Table(map)) => {
                map.insert((self.string)(u)?, toml::Value::String(RAW.into()));
            }
            (0, toml::Value::Array(items)) if !items.is_empty() => {
                items.remove(u.choose_index(items.len())?);
            }
            (1, toml::Value::Array(items)) if !items.is_empty() => {
                let copy = items[u.choose_index(items.len())?].clone();
                items.push(copy);
            }
            (_, node) => *node = toml::Value::String(RAW.into()),
        }
        Ok(())
    }

    /// `valid` TOML with one to three nodes broken and, sometimes, cut short.
    pub fn mutate(&self, u: &mut Unstructured<'_>, valid: &str) -> Gen<String> {
        let mut tree: toml::Value = toml::from_str(valid).expect("the valid example is TOML");
        for _ in 0..u.int_in_range(1..=3)? {
            self.mutate_node(u, &mut tree)?;
        }
        // Some trees (a string where a table was) have no TOML text; the example stands in.
        let mut text = toml::to_string(&tree).unwrap_or_else(|_| valid.to_string());
        for quoted in [format!("\"{RAW}\""), format!("'{RAW}'")] {
            while let Some(at) = text.find(&quoted) {
                text.replace_range(at..at + quoted.len(), &self.hostile(u)?);
            }
        }
        if u.ratio(1, 5)? {
            truncate_text(u, &mut text)?;
        }
        Ok(text)
    }

    /// Arbitrary text, half the time built from TOML punctuation and the keys a decoder expects.
    pub fn soup(&self, u: &mut Unstructured<'_>, keys: &[&str]) -> Gen<String> {
        if u.arbitrary()? {
            return u.arbitrary();
        }
        let mut out = String::new();
        for _ in 0..u.int_in_range(0..=48)? {
            match u.int_in_range(0..=5)? {
                0 => out.push_str(u.choose(&["[", "]", "[[", "]]", " = ", "\n", ",", "{", "}", "."])?),
                1 | 2 => out.push_str(u.choose(keys)?),
                3 => out.push_str(&self.hostile(u)?),
                _ => out.push_str(&u.int_in_range(0..=10u32)?.to_string()),
            }
        }
        Ok(out)
    }
}
