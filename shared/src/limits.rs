//! Limits on what one batch may carry, checked by the edge before it stores or sends and by
//! the ingest before it allocates or persists: payload size, records per batch, values per
//! record, and the length and characters of every identifier.
//!
//! Identifiers are Unicode (a Korean machine name is fine) up to [`MAX_ID_BYTES`] bytes of
//! UTF-8 without control characters. Those that are MQTT topic levels (`site`, `edge_id`) also
//! may not contain `/`, `+`, `#`. A buffer epoch is a short token of ASCII letters, digits,
//! `-` and `_`. Folder and file names derived from identifiers are bounded separately by the
//! lake's escaping, so any valid identifier fits in a path segment.

/// Largest payload the ingest decodes; larger ones are quarantined unread (by their first
/// bytes). The edge's batches stay far below it (see `uplink.max_batch_bytes`).
pub const MAX_PAYLOAD_BYTES: usize = 4 << 20;
/// Most records in one batch.
pub const MAX_RECORDS: usize = 10_000;
/// Most named values in one record.
pub const MAX_VALUES: usize = 1_000;
/// Longest identifier, in bytes of UTF-8 (28 Hangul syllables are 84 bytes).
pub const MAX_ID_BYTES: usize = 128;
/// Longest buffer epoch, in bytes.
pub const MAX_EPOCH_BYTES: usize = 32;

/// Why an identifier was refused; the text names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The identifier is empty or only whitespace.
    #[error("{field} is empty")]
    Empty {
        /// Name of the refused field, as the error text shows it (e.g. `machine_id`).
        field: &'static str,
    },
    /// The identifier is longer than its limit in bytes of UTF-8.
    #[error("{field} is {len} bytes long (at most {max})")]
    TooLong {
        /// Name of the refused field, as the error text shows it (e.g. `machine_id`).
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The most bytes allowed: [`MAX_ID_BYTES`], or [`MAX_EPOCH_BYTES`] for an epoch.
        max: usize,
    },
    /// The identifier contains a control character (newline, NUL, …).
    #[error("{field} contains the control character U+{code:04X}")]
    Control {
        /// Name of the refused field, as the error text shows it (e.g. `machine_id`).
        field: &'static str,
        /// Unicode code point of the first control character found.
        code: u32,
    },
    /// An identifier that is a topic level (`site`, `edge_id`) contains `/`, `+` or `#`.
    #[error("{field} contains {ch:?}, which MQTT reserves in topic levels")]
    TopicChar {
        /// Name of the refused field, as the error text shows it (e.g. `machine_id`).
        field: &'static str,
        /// The first reserved character found.
        ch: char,
    },
    /// A buffer epoch holds a character other than ASCII letters, digits, `-` and `_`.
    #[error("{field} may only hold ASCII letters, digits, '-' and '_'")]
    NotToken {
        /// Name of the refused field, as the error text shows it (`epoch`).
        field: &'static str,
    },
}

/// A name: non-blank, at most [`MAX_ID_BYTES`] bytes, no control characters.
pub fn check_name(field: &'static str, value: &str) -> Result<(), IdError> {
    if value.trim().is_empty() {
        return Err(IdError::Empty { field });
    }
    if value.len() > MAX_ID_BYTES {
        return Err(IdError::TooLong { field, len: value.len(), max: MAX_ID_BYTES });
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(IdError::Control { field, code: u32::from(c) });
    }
    Ok(())
}

/// A name that is also an MQTT topic level (`site`, `edge_id`): no `/`, `+`, `#`.
pub fn check_level(field: &'static str, value: &str) -> Result<(), IdError> {
    check_name(field, value)?;
    match value.chars().find(|c| matches!(c, '/' | '+' | '#')) {
        Some(ch) => Err(IdError::TopicChar { field, ch }),
        None => Ok(()),
    }
}

/// A buffer epoch: empty (an edge from before epochs) or a token of at most
/// [`MAX_EPOCH_BYTES`] ASCII letters, digits, `-`, `_`.
pub fn check_epoch(value: &str) -> Result<(), IdError> {
    let field = "epoch";
    if value.len() > MAX_EPOCH_BYTES {
        return Err(IdError::TooLong { field, len: value.len(), max: MAX_EPOCH_BYTES });
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(IdError::NotToken { field });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_names_pass_and_hostile_ones_do_not() {
        let korean = "사출성형기".repeat(5);
        assert!(korean.len() > 60 && korean.len() <= MAX_ID_BYTES);
        assert_eq!(check_name("machine_id", &korean), Ok(()));
        let long = "가".repeat(43); // 129 bytes
        assert!(matches!(check_name("machine_id", &long), Err(IdError::TooLong { len: 129, .. })));
        assert!(matches!(check_name("mold", " "), Err(IdError::Empty { .. })));
        assert!(matches!(check_name("mold", "a\nb"), Err(IdError::Control { code: 10, .. })));
        assert_eq!(check_name("machine_id", "M/1 #2"), Ok(()));
        assert!(matches!(check_level("edge_id", "e/1"), Err(IdError::TopicChar { ch: '/', .. })));
        assert!(matches!(check_level("site", "s+"), Err(IdError::TopicChar { ch: '+', .. })));
        assert_eq!(check_level("site", "공장-1"), Ok(()));
    }

    #[test]
    fn epochs_are_short_tokens() {
        assert_eq!(check_epoch(""), Ok(()));
        assert_eq!(check_epoch("0f3a9c2e41d07b65"), Ok(()));
        assert!(matches!(check_epoch("a/b"), Err(IdError::NotToken { .. })));
        assert!(matches!(check_epoch(&"a".repeat(33)), Err(IdError::TooLong { .. })));
    }
}
