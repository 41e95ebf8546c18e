//! Reading a historical table into text cells with their line numbers: CSV (header row,
//! comma separated, `"` quoting with `""` escapes, one record per line) or Parquet (every
//! column cast to text; the line of row `i` is `i + 1`). A CSV line that cannot be split is
//! kept as an error for the quarantine, never dropped.

use anyhow::{Context, Result};
use polars::prelude::{DataType, ParquetReader, SerReader};
use std::path::Path;

/// One data row: its line number and its cells (or why it could not be split).
pub type Row = (usize, std::result::Result<Vec<Option<String>>, String>);

/// A table: column names and rows. CSV cells are always `Some`; Parquet nulls are `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// Column names, in order (CSV: the first line, trimmed; Parquet: the schema's).
    pub header: Vec<String>,
    /// Data rows in file order (CSV blank lines skipped).
    pub rows: Vec<Row>,
}

/// Reads a `.csv` or `.parquet` file (by extension; anything else is read as CSV).
pub fn read(path: &Path, bytes: &[u8]) -> Result<Table> {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet")) {
        return read_parquet(bytes).with_context(|| format!("reading {}", path.display()));
    }
    let text = std::str::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))?;
    read_csv(text).with_context(|| format!("reading {}", path.display()))
}

/// Parses CSV text (first line the header).
pub fn read_csv(text: &str) -> Result<Table> {
    let mut lines = text.lines().enumerate();
    let (_, header) = lines.next().context("the file is empty")?;
    let header: Vec<String> = split(header.trim_start_matches('\u{feff}'))
        .map_err(anyhow::Error::msg)
        .context("line 1 (header)")?
        .into_iter()
        .map(|c| c.trim().to_string())
        .collect();
    let mut rows = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let row = split(line).and_then(|cells| {
            if cells.len() == header.len() {
                Ok(cells.into_iter().map(Some).collect())
            } else {
                Err(format!("{} cells where the header has {}", cells.len(), header.len()))
            }
        });
        rows.push((i + 1, row));
    }
    Ok(Table { header, rows })
}

/// Splits one CSV line into cells.
fn split(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.trim().is_empty() => {
                cur.clear();
                quoted = true;
            }
            (',', false) => cells.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    cells.push(cur);
    Ok(cells)
}

fn read_parquet(bytes: &[u8]) -> Result<Table> {
    let df = ParquetReader::new(std::io::Cursor::new(bytes)).finish()?;
    let header: Vec<String> = df.get_column_names().iter().map(|c| c.to_string()).collect();
    let mut columns = Vec::with_capacity(header.len());
    for c in df.columns() {
        let text = c.cast(&DataType::String)?;
        columns.push(text.str()?.iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>());
    }
    let rows =
        (0..df.height()).map(|i| (i + 1, Ok(columns.iter().map(|c| c[i].clone()).collect()))).collect();
    Ok(Table { header, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_quotes_and_keeps_bad_lines() {
        let t = read_csv("a,b,c\n1,\"x, \"\"y\"\"\",3\n\n1,2\n\"open,2,3\n").expect("csv");
        assert_eq!(t.header, ["a", "b", "c"]);
        assert_eq!(t.rows[0], (2, Ok(vec![Some("1".into()), Some("x, \"y\"".into()), Some("3".into())])));
        assert_eq!(t.rows[1], (4, Err("2 cells where the header has 3".into())));
        assert_eq!(t.rows[2], (5, Err("unterminated quote".into())));
    }
}
