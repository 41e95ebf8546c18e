//! YAML text of a JSON value, block style: every string double-quoted (so no YAML 1.1 reader
//! takes `on`, `no` or `1e3` for anything but text), keys plain only when they are a letter
//! followed by letters and digits and no YAML keyword. `apiVersion`, `kind`, `metadata` and
//! `name` come first in a map, the other keys in alphabetical order.

use serde_json::Value;

/// `v` as a YAML document (a map or list at the top).
pub(super) fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    block(v, 0, &mut out);
    out
}

/// Writes a map or list, each entry on its own line at `indent`; a scalar or empty collection
/// on the current line.
fn block(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) if !map.is_empty() => {
            const FIRST: [&str; 4] = ["apiVersion", "kind", "metadata", "name"];
            let first = FIRST.iter().filter_map(|k| map.get_key_value(*k));
            let rest = map.iter().filter(|(k, _)| !FIRST.contains(&k.as_str()));
            for (k, v) in first.chain(rest) {
                out.push_str(&format!("{pad}{}:", key(k)));
                nested(v, indent + 2, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                out.push_str(&format!("{pad}-"));
                match item {
                    // The first key goes on the dash's line, the others below it.
                    Value::Object(map) if !map.is_empty() => {
                        let mut inner = String::new();
                        block(item, indent + 2, &mut inner);
                        out.push(' ');
                        out.push_str(inner.trim_start());
                    }
                    _ => nested(item, indent + 2, out),
                }
            }
        }
        _ => {
            out.push_str(&scalar(v));
            out.push('\n');
        }
    }
}

/// After `key:` or `-`: a scalar on the same line, a collection on the following lines.
fn nested(v: &Value, indent: usize, out: &mut String) {
    let collection =
        matches!(v, Value::Object(m) if !m.is_empty()) || matches!(v, Value::Array(a) if !a.is_empty());
    if collection {
        out.push('\n');
        block(v, indent, out);
    } else {
        out.push(' ');
        block(v, indent, out);
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        other => other.to_string(),
    }
}

fn key(k: &str) -> String {
    const WORDS: [&str; 12] =
        ["y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf", "~"];
    let plain = k.starts_with(|c: char| c.is_ascii_alphabetic())
        && k.chars().all(|c| c.is_ascii_alphanumeric())
        && !WORDS.contains(&k.to_ascii_lowercase().as_str());
    if plain { k.to_string() } else { quote(k) }
}

/// A double-quoted YAML scalar: escapes for `"`, `\` and every character YAML does not allow
/// (or would fold) inside quotes.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20
                || ('\u{7f}'..='\u{9f}').contains(&c)
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}') =>
            {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
