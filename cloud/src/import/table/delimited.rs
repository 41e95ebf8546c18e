//! Delimited text tables (CSV, semicolon CSV, TSV) read as a stream by the `csv` crate: quoted
//! cells may hold delimiters, `""` and line breaks; blank lines are skipped; a record's line is
//! the one it starts on. Encodings whose bytes of a multi-byte character are never ASCII (UTF-8,
//! EUC-KR/CP949, the single-byte Windows and ISO code pages) are split as bytes and each cell
//! decoded strictly, so a cell that is not valid in the encoding refuses its row with a reason
//! instead of turning into `�`; the others (UTF-16, Shift_JIS, GBK, Big5, whose second bytes can
//! be a delimiter) are transcoded to UTF-8 first, and a cell holding a replacement character is
//! refused the same way. One record (with the blank lines before it) may not exceed
//! [`MAX_RECORD_BYTES`]: a quote left open would otherwise take the rest of the file into memory.

use super::encoding::{self, SAMPLE_BYTES};
use super::{ReadOptions, ReadSummary, Row, RowError, RowSink};
use anyhow::{Context, Result};
use encoding_rs::Encoding;
use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;

/// Largest record (all its cells and delimiters) read, in bytes.
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// The delimiters [`detect_delimiter`] chooses from, likeliest first on a tie.
const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];

/// Reads the delimited file at `path`.
pub fn read(path: &Path, opts: &ReadOptions, sink: &mut dyn RowSink) -> Result<ReadSummary> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    read_from(file, len, opts, sink)
}

/// Reads delimited text of `len` bytes from `input`.
pub fn read_from(
    input: impl Read,
    len: u64,
    opts: &ReadOptions,
    sink: &mut dyn RowSink,
) -> Result<ReadSummary> {
    let mut input = opts.progress.wrap_read(input);
    opts.progress.set_length(len);
    let mut sample = Vec::new();
    (&mut input).take(SAMPLE_BYTES as u64).read_to_end(&mut sample)?;
    let whole = sample.len() < SAMPLE_BYTES;
    let chosen = encoding::choose(opts.encoding, &sample, whole);
    let delimiter = match opts.delimiter {
        Some(d) => d,
        None => detect_delimiter(&header_line(chosen.encoding, &sample[chosen.bom_len..])),
    };
    let decoding = format!(
        "{}{}, delimiter {:?}",
        chosen.encoding.name(),
        if chosen.guessed { " (detected)" } else { "" },
        delimiter as char
    );
    let body = std::io::Cursor::new(sample).chain(input);
    if splits_as_bytes(chosen.encoding) {
        let mut body = body;
        std::io::copy(&mut (&mut body).take(chosen.bom_len as u64), &mut std::io::sink())?;
        split(Source::new(body), delimiter, chosen.encoding, false, sink)?;
    } else {
        let utf8 = encoding_rs_io::DecodeReaderBytesBuilder::new()
            .encoding(Some(chosen.encoding))
            .bom_override(true)
            .build(body);
        split(Source::new(utf8), delimiter, chosen.encoding, true, sink)?;
    }
    opts.progress.finish_and_clear();
    Ok(ReadSummary { decoding })
}

/// Whether `encoding`'s bytes can be split as CSV before decoding: no byte of a multi-byte
/// character is ASCII (a delimiter, quote or line break).
fn splits_as_bytes(encoding: &'static Encoding) -> bool {
    encoding == encoding_rs::UTF_8 || encoding == encoding_rs::EUC_KR || encoding.is_single_byte()
}

/// Splits records and hands them on. Records end at `\n` only (a lone `\r` is data, `\r\n`
/// ends a line), so every record starts on its own line and no two share a line number — the
/// line is the record's identity in the lake. `encoding` is the file's; `transcoded` when
/// `input` is its text already turned into UTF-8.
fn split<R: Read>(
    input: Source<R>,
    delimiter: u8,
    encoding: &'static Encoding,
    transcoded: bool,
    sink: &mut dyn RowSink,
) -> Result<()> {
    let cell_encoding = if transcoded { encoding_rs::UTF_8 } else { encoding };
    let decode = |record: &csv::ByteRecord| decode(record, cell_encoding, transcoded);
    let text = |record: &csv::ByteRecord| text(record, cell_encoding, delimiter);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(input);
    let (mut current, mut next) = (csv::ByteRecord::new(), csv::ByteRecord::new());
    let mut header: Option<Vec<String>> = None;
    let mut more = reader.read_byte_record(&mut current).context("reading a record")?;
    while more {
        let line = reader.get_mut().line_at(current.position().map_or(0, |p| p.byte()));
        reader.get_mut().record_start = reader.position().byte();
        more = reader.read_byte_record(&mut next).context("reading a record")?;
        let record = trim_cr(&current);
        std::mem::swap(&mut current, &mut next);
        if is_blank(&record) {
            continue;
        }
        let Some(names) = &header else {
            let cells = decode(&record).map_err(|i| {
                anyhow::anyhow!("line {line} (header): cell {i} is not valid {}", encoding.name())
            })?;
            let names: Vec<String> = cells.into_iter().map(|c| c.trim().to_string()).collect();
            sink.header(&names)?;
            header = Some(names);
            continue;
        };
        // A quote never closed runs to the end of the file: the last record, with an odd number
        // of quotes in the file (a stray inch mark alone does not count: the record must also
        // hold a line break or end the file without one).
        let unclosed = !more && reader.get_ref().quotes % 2 == 1 && {
            let source = reader.get_ref();
            newlines(&record) > 0 || source.last_byte != Some(b'\n')
        };
        let cells = match decode(&record) {
            Err(i) => Err(format!("cell {i} is not valid {}", encoding.name())),
            Ok(_) if unclosed => Err(format!(
                "a quote opened on line {line} is never closed: its cell runs to the end of the file"
            )),
            Ok(cells) if cells.len() != names.len() => {
                let spanned = newlines(&record);
                let hint = if spanned > 0 {
                    format!(" (a quoted cell runs over lines {line}-{}: a quote left open?)", line + spanned)
                } else {
                    String::new()
                };
                Err(format!("{} cells where the header has {}{hint}", cells.len(), names.len()))
            }
            Ok(cells) => Ok(cells.into_iter().map(Some).collect()),
        };
        let cells = cells.map_err(|reason| RowError { reason, text: text(&record) });
        sink.row(Row { line, cells })?;
    }
    anyhow::ensure!(header.is_some(), "the file is empty");
    Ok(())
}

/// The record without the `\r` of a `\r\n` line end (kept by splitting at `\n`).
fn trim_cr(record: &csv::ByteRecord) -> csv::ByteRecord {
    let n = record.len();
    record
        .iter()
        .enumerate()
        .map(|(i, c)| if i + 1 == n { c.strip_suffix(b"\r").unwrap_or(c) } else { c })
        .collect()
}

/// Line breaks inside a record's cells.
fn newlines(record: &csv::ByteRecord) -> usize {
    record.iter().map(|c| c.iter().filter(|&&b| b == b'\n').count()).sum()
}

/// A record's text for the quarantine (undecodable bytes replaced).
fn text(record: &csv::ByteRecord, encoding: &'static Encoding, delimiter: u8) -> String {
    record
        .iter()
        .map(|c| encoding.decode_without_bom_handling(c).0.into_owned())
        .collect::<Vec<_>>()
        .join(&(delimiter as char).to_string())
}

/// A record of one cell that is empty or only white space: a blank line.
fn is_blank(record: &csv::ByteRecord) -> bool {
    record.len() == 1 && record.get(0).is_some_and(|c| c.iter().all(u8::is_ascii_whitespace))
}

/// The cells as text, or the 1-based number of the first cell that is not valid `encoding`
/// (for text transcoded to UTF-8, `replaced`: a cell holding the replacement character).
fn decode(
    record: &csv::ByteRecord,
    encoding: &'static Encoding,
    replaced: bool,
) -> std::result::Result<Vec<String>, usize> {
    record
        .iter()
        .enumerate()
        .map(|(i, c)| {
            encoding
                .decode_without_bom_handling_and_without_replacement(c)
                .filter(|t| !(replaced && t.contains('\u{FFFD}')))
                .map(|t| t.into_owned())
                .ok_or(i + 1)
        })
        .collect()
}

/// The first non-blank line of `sample` (the header), decoded (lossy: it only serves to count
/// delimiters).
fn header_line(encoding: &'static Encoding, sample: &[u8]) -> String {
    let (text, _) = encoding.decode_without_bom_handling(sample);
    text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").to_string()
}

/// The candidate delimiter found most often outside quotes in a header line (`,` when none is).
pub fn detect_delimiter(header: &str) -> u8 {
    let mut counts = [0usize; CANDIDATES.len()];
    let mut quoted = false;
    for b in header.bytes() {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(i) = CANDIDATES.iter().position(|&c| c == b) {
            counts[i] += 1;
        }
    }
    let best = (0..CANDIDATES.len()).max_by_key(|&i| (counts[i], std::cmp::Reverse(i))).unwrap_or(0);
    if counts[best] == 0 { b',' } else { CANDIDATES[best] }
}

/// The bytes the splitter reads, watched: it fails once more than [`MAX_RECORD_BYTES`] were read
/// past the start of the record being read, keeps the offsets of the line breaks not yet passed
/// (to number lines exactly: the `csv` crate's own count skips blank lines), the last byte and
/// how many quotes went by (to tell a quote never closed).
struct Source<R> {
    inner: R,
    read: u64,
    /// Where the record being read starts (set by the splitting loop).
    record_start: u64,
    /// Offsets of line-break bytes (`\n`: true, `\r`: false) at or after the last offset asked
    /// about.
    breaks: VecDeque<(u64, bool)>,
    /// Line breaks before those.
    lines_before: u64,
    /// The last byte read.
    last_byte: Option<u8>,
    /// `"` bytes read.
    quotes: u64,
}

impl<R> Source<R> {
    fn new(inner: R) -> Self {
        Source {
            inner,
            read: 0,
            record_start: 0,
            breaks: VecDeque::new(),
            lines_before: 0,
            last_byte: None,
            quotes: 0,
        }
    }

    /// The 1-based line a record whose parsing began at byte `offset` starts on: blank lines
    /// the parser skipped first are passed over. Offsets must not go back between calls.
    fn line_at(&mut self, mut offset: u64) -> usize {
        while let Some(&(at, newline)) = self.breaks.front() {
            if at == offset {
                offset += 1;
            } else if at > offset {
                break;
            }
            self.breaks.pop_front();
            self.lines_before += u64::from(newline);
        }
        self.lines_before as usize + 1
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.read.saturating_sub(self.record_start) > MAX_RECORD_BYTES {
            return Err(std::io::Error::other(format!(
                "a record longer than {} MiB (blank lines before it included) starting at byte {} (a quote left open?)",
                MAX_RECORD_BYTES >> 20,
                self.record_start
            )));
        }
        let n = self.inner.read(buf)?;
        for (i, &b) in buf[..n].iter().enumerate() {
            if b == b'\n' || b == b'\r' {
                self.breaks.push_back((self.read + i as u64, b == b'\n'));
            } else if b == b'"' {
                self.quotes += 1;
            }
        }
        if n > 0 {
            self.last_byte = Some(buf[n - 1]);
        }
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Table;
    use super::*;

    fn read_bytes(bytes: &[u8], opts: &ReadOptions) -> Result<Table> {
        let mut t = Table::default();
        read_from(std::io::Cursor::new(bytes), bytes.len() as u64, opts, &mut t)?;
        Ok(t)
    }

    fn cells(t: &Table, i: usize) -> Vec<&str> {
        t.rows[i].cells.as_ref().expect("a whole row").iter().map(|c| c.as_deref().unwrap_or("")).collect()
    }

    #[test]
    fn quoted_cells_across_lines_keep_the_line_numbers_of_the_file() {
        let t =
            read_bytes(b"a,b\n1,\"two\nlines\"\n\n3,\"x, \"\"y\"\"\"\n4\n", &ReadOptions::default()).unwrap();
        assert_eq!(t.header, ["a", "b"]);
        assert_eq!((t.rows[0].line, cells(&t, 0)), (2, vec!["1", "two\nlines"]));
        assert_eq!((t.rows[1].line, cells(&t, 1)), (5, vec!["3", "x, \"y\""]));
        let bad = t.rows[2].cells.as_ref().unwrap_err();
        assert_eq!(
            (t.rows[2].line, bad.reason.as_str(), bad.text.as_str()),
            (6, "1 cells where the header has 2", "4")
        );
    }

    #[test]
    fn an_open_quote_is_named_with_the_lines_it_took() {
        let t = read_bytes(b"a,b\n1,\"open\n2,3\n4,5\n", &ReadOptions::default()).unwrap();
        assert_eq!(t.rows.len(), 1);
        let bad = t.rows[0].cells.as_ref().unwrap_err();
        assert!(bad.reason.contains("line 2 is never closed"), "{}", bad.reason);
        // Closed by a later quote on the last line, or open on a last line without a line end.
        for bytes in [&b"a,b\n1,\"x\n2,\"\"\n"[..], b"a,b\n1,\"x"] {
            let t = read_bytes(bytes, &ReadOptions::default()).unwrap();
            let bad = t.rows[0].cells.as_ref().unwrap_err();
            assert!(bad.reason.contains("never closed"), "{}", bad.reason);
        }
        // A closed multi-line cell followed by a space, and a stray inch mark, are data.
        let t = read_bytes(b"a,b\n1,\"x\ny\" \n2,5\" pipe\n", &ReadOptions::default()).unwrap();
        assert!(t.rows.iter().all(|r| r.cells.is_ok()), "{:?}", t.rows);
        // A closed quoted cell over lines in a row of the wrong width: named with its lines.
        let t = read_bytes(b"a,b,c\n1,\"two\nmore\nlines\"\n", &ReadOptions::default()).unwrap();
        let bad = t.rows[0].cells.as_ref().unwrap_err();
        assert!(bad.reason.contains("lines 2-4") && bad.reason.contains("quote left open"), "{}", bad.reason);
    }

    #[test]
    fn cp949_semicolons_and_utf16_tabs_read_like_utf8_commas() {
        let text = "시간,기계,온도\n2024-05-01 10:00:00,우진 1호기,231.5\n";
        let utf8 = read_bytes(text.as_bytes(), &ReadOptions::default()).unwrap();
        let semicolons = text.replace(',', ";");
        let (cp949, _, _) = encoding_rs::EUC_KR.encode(&semicolons);
        assert_eq!(read_bytes(&cp949, &ReadOptions::default()).unwrap(), utf8);
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend(text.replace(',', "\t").encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(read_bytes(&utf16, &ReadOptions::default()).unwrap(), utf8);
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend(text.as_bytes());
        assert_eq!(read_bytes(&bom, &ReadOptions::default()).unwrap(), utf8);
    }

    #[test]
    fn a_cell_not_valid_in_the_encoding_refuses_its_row_only() {
        let opts = ReadOptions { encoding: Some(encoding_rs::UTF_8), ..Default::default() };
        let t = read_bytes(b"a,b\n1,\xFF\xFE\n2,3\n", &opts).unwrap();
        assert_eq!(t.rows[0].cells.as_ref().unwrap_err().reason, "cell 2 is not valid UTF-8");
        assert_eq!(cells(&t, 1), ["2", "3"]);
    }

    #[test]
    fn a_record_past_the_bound_fails_the_file_without_taking_it_into_memory() {
        let mut bytes = b"a,b\n1,\"".to_vec();
        bytes.resize(bytes.len() + MAX_RECORD_BYTES as usize + (1 << 20), b'x');
        let err = read_bytes(&bytes, &ReadOptions::default()).unwrap_err();
        assert!(format!("{err:#}").contains("a record longer than 1 MiB"), "{err:#}");
    }

    #[test]
    fn shift_jis_with_pipes_and_broken_utf16_are_read_or_refused_cell_by_cell() {
        let text = "品番|ポ|値\nA|ポ|2\n";
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(text);
        let opts = ReadOptions { encoding: Some(encoding_rs::SHIFT_JIS), ..Default::default() };
        let t = read_bytes(&sjis, &opts).unwrap();
        assert_eq!(t.header, ["品番", "ポ", "値"]);
        assert_eq!(cells(&t, 0), ["A", "ポ", "2"]);
        let mut utf16 = vec![0xFF, 0xFE];
        for unit in "a\tb\n1\t".encode_utf16().chain([0xD800]).chain("x\n2\t3\n".encode_utf16()) {
            utf16.extend(unit.to_le_bytes());
        }
        let t = read_bytes(&utf16, &ReadOptions::default()).unwrap();
        assert_eq!(t.rows[0].cells.as_ref().unwrap_err().reason, "cell 2 is not valid UTF-16LE");
        assert_eq!(cells(&t, 1), ["2", "3"]);
    }

    #[test]
    fn delimiters_are_found_outside_quotes() {
        assert_eq!(detect_delimiter("a;b;\"c,d\""), b';');
        assert_eq!(detect_delimiter("a\tb\tc"), b'\t');
        assert_eq!(detect_delimiter("one"), b',');
        let t = read_bytes(b"\n\na;b\n1;2\n", &ReadOptions::default()).unwrap();
        assert_eq!(t.header, ["a", "b"]);
        assert_eq!(t.rows[0].line, 4);
        assert!(read_bytes(b"\n\n", &ReadOptions::default()).unwrap_err().to_string().contains("empty"));
    }
}
