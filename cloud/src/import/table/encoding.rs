//! Which character encoding a text table is in: named in the profile (any WHATWG label, plus
//! `cp949`), or found from the file's first bytes — a byte-order mark, else UTF-8 when the
//! sample is valid UTF-8, else the legacy encoding `chardetng` (Firefox's detector) guesses.
//! Korean MES and Excel exports are usually CP949 (EUC-KR with its extension, which
//! `encoding_rs` decodes under the label `euc-kr`); Excel's "Unicode text" is UTF-16LE.

use encoding_rs::Encoding;

/// Bytes looked at to guess an encoding.
pub const SAMPLE_BYTES: usize = 1 << 20;

/// The encoding of a file and how it was chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chosen {
    /// The encoding the bytes are decoded with.
    pub encoding: &'static Encoding,
    /// Length of the byte-order mark to skip (0 without one).
    pub bom_len: usize,
    /// Whether the encoding was guessed (no BOM and no encoding named).
    pub guessed: bool,
}

/// The encoding named by a profile or option: `auto` (or empty) means `None`, i.e. detect.
pub fn by_label(label: &str) -> anyhow::Result<Option<&'static Encoding>> {
    let label = label.trim();
    if label.is_empty() || label.eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    // Windows' name for Korean; the WHATWG `euc-kr` decoder is the same unified Hangul code.
    let alias = match label.to_ascii_lowercase().as_str() {
        "cp949" | "ms949" | "uhc" => "euc-kr".to_string(),
        other => other.to_string(),
    };
    match Encoding::for_label_no_replacement(alias.as_bytes()) {
        Some(e) => Ok(Some(e)),
        None => anyhow::bail!(
            "unknown encoding {label:?} (use auto, utf-8, cp949/euc-kr, utf-16le, windows-1252, shift_jis, gbk, … )"
        ),
    }
}

/// Chooses the encoding of a file that starts with `sample` (its first [`SAMPLE_BYTES`] or
/// all of it; `whole` when the sample is the whole file). A byte-order mark always wins, as
/// Excel and Notepad write one to say what follows.
pub fn choose(named: Option<&'static Encoding>, sample: &[u8], whole: bool) -> Chosen {
    if let Some((encoding, bom_len)) = Encoding::for_bom(sample) {
        return Chosen { encoding, bom_len, guessed: false };
    }
    if let Some(encoding) = named {
        return Chosen { encoding, bom_len: 0, guessed: false };
    }
    let encoding = if is_utf8(sample, whole) {
        encoding_rs::UTF_8
    } else {
        let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
        detector.feed(sample, whole);
        detector.guess(None, chardetng::Utf8Detection::Deny)
    };
    Chosen { encoding, bom_len: 0, guessed: true }
}

/// Whether `sample` is UTF-8 (pure ASCII counts: the likeliest encoding of what follows). A
/// sample cut off inside a character at its end still counts when more of the file follows.
fn is_utf8(sample: &[u8], whole: bool) -> bool {
    match std::str::from_utf8(sample) {
        Ok(_) => true,
        Err(e) => !whole && e.error_len().is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_then_name_then_detection() {
        let bom_utf8 = b"\xEF\xBB\xBFa,b\n";
        assert_eq!(
            choose(None, bom_utf8, true),
            Chosen { encoding: encoding_rs::UTF_8, bom_len: 3, guessed: false }
        );
        let utf16 = b"\xFF\xFEa\0,\0b\0";
        assert_eq!(choose(by_label("cp949").unwrap(), utf16, true).encoding, encoding_rs::UTF_16LE);
        assert_eq!(choose(by_label("cp949").unwrap(), b"a,b", true).encoding, encoding_rs::EUC_KR);
        assert_eq!(choose(None, "시간,값\n".as_bytes(), true).encoding, encoding_rs::UTF_8);
        // "사출기 온도,시간" in CP949: not UTF-8, detected as Korean.
        let (korean, _, _) =
            encoding_rs::EUC_KR.encode("사출기 온도,시간,금형 번호\n1호기,2024-05-01,우진\n");
        let chosen = choose(None, &korean, true);
        assert_eq!((chosen.encoding, chosen.guessed), (encoding_rs::EUC_KR, true));
        // A UTF-8 sample cut inside a character is still UTF-8 when the file goes on.
        let cut = &"값".as_bytes()[..2];
        assert_eq!(choose(None, cut, false).encoding, encoding_rs::UTF_8);
    }

    #[test]
    fn labels() {
        assert_eq!(by_label("auto").unwrap(), None);
        assert_eq!(by_label("UTF-16LE").unwrap(), Some(encoding_rs::UTF_16LE));
        assert_eq!(by_label("ks_c_5601-1987").unwrap(), Some(encoding_rs::EUC_KR));
        assert!(by_label("klingon").unwrap_err().to_string().contains("unknown encoding"));
    }
}
