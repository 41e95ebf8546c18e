//! Reading a historical table as a stream of text rows with their line numbers, in constant
//! memory for text files. Formats by extension:
//! - [`delimited`]: CSV and other delimited text (anything not named below), in any encoding
//!   ([`encoding`]: UTF-8 with or without BOM, CP949/EUC-KR, UTF-16 as Excel writes it, …),
//!   quoted cells across lines; the delimiter is found from the header when not given.
//! - [`workbook`]: Excel (`.xlsx`, `.xlsm` streamed; `.xls`, `.xlsb`) and OpenDocument (`.ods`)
//!   sheets; date cells are written as text in the profile's time format.
//! - Parquet (`.parquet`): every column cast to text; the line of row `i` is `i + 1`.
//!
//! A row that cannot be read (wrong cell count, bytes not valid in the encoding) is handed on as
//! an error for the quarantine, never dropped. Rows go to a [`RowSink`] as they are read.

pub mod delimited;
pub mod encoding;
pub mod workbook;

use anyhow::{Context, Result};
use polars::prelude::{DataType, ParquetReader, SerReader};
use std::path::Path;

/// Why one row could not be read, with its text as far as it could be decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    /// Why the row was refused.
    pub reason: String,
    /// The row's text (cells joined by the delimiter; undecodable bytes replaced).
    pub text: String,
}

/// One data row: the line it starts on (for a workbook, its row number) and its cells, or why
/// it could not be read. CSV cells are always `Some`; empty workbook cells and Parquet nulls are
/// `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Line (1-based) the row starts on; the header is on line 1 unless blank lines precede it.
    pub line: usize,
    /// The cells, one per header column, or why the row could not be read.
    pub cells: std::result::Result<Vec<Option<String>>, RowError>,
}

impl Row {
    /// A row read whole.
    pub fn ok(line: usize, cells: Vec<Option<String>>) -> Row {
        Row { line, cells: Ok(cells) }
    }

    /// The row's text for a quarantine entry.
    pub fn text(&self) -> String {
        match &self.cells {
            Ok(cells) => cells.iter().map(|c| c.as_deref().unwrap_or("")).collect::<Vec<_>>().join(","),
            Err(e) => e.text.clone(),
        }
    }
}

/// Where the rows of a table go as they are read: the header first, then every row in order.
pub trait RowSink {
    /// The column names (trimmed), before any row.
    fn header(&mut self, header: &[String]) -> Result<()>;
    /// One row; an error stops the reading and is the reading's error.
    fn row(&mut self, row: Row) -> Result<()>;
}

/// A whole table in memory: for small tables (lot labels) and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// Column names.
    pub header: Vec<String>,
    /// Data rows in file order.
    pub rows: Vec<Row>,
}

impl RowSink for Table {
    fn header(&mut self, header: &[String]) -> Result<()> {
        self.header = header.to_vec();
        Ok(())
    }
    fn row(&mut self, row: Row) -> Result<()> {
        self.rows.push(row);
        Ok(())
    }
}

impl Table {
    /// Reads a whole file into memory.
    pub fn read(path: &Path, opts: &ReadOptions) -> Result<Table> {
        let mut t = Table::default();
        read(path, opts, &mut t)?;
        Ok(t)
    }
}

/// How to read a file; [`Default`] detects encoding and delimiter and reads the first sheet.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Encoding of text files; `None` detects it ([`encoding::choose`]).
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// Cell delimiter of text files; `None` takes the likeliest of `,` `;` tab `|` in the header.
    pub delimiter: Option<u8>,
    /// Workbook sheet to read; `None` is the first.
    pub sheet: Option<String>,
    /// chrono format that workbook date cells are written in (the profile's time format).
    pub date_format: String,
    /// Progress shown while reading (bytes of text files, rows of the others).
    pub progress: indicatif::ProgressBar,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            encoding: None,
            delimiter: None,
            sheet: None,
            date_format: workbook::ISO_DATE_FORMAT.into(),
            progress: indicatif::ProgressBar::hidden(),
        }
    }
}

/// What a reading found out about the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadSummary {
    /// How the text was decoded, e.g. `UTF-8`, `EUC-KR (detected)`, `xlsx sheet "Data"`.
    pub decoding: String,
}

/// The kinds of file [`read`] takes, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Delimited text (CSV, TSV, …): any extension not listed below.
    Delimited,
    /// A spreadsheet workbook: `.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`.
    Workbook,
    /// Apache Parquet: `.parquet`.
    Parquet,
}

impl Format {
    /// The format of a file by its extension.
    pub fn of(path: &Path) -> Format {
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        match ext.as_str() {
            "parquet" => Format::Parquet,
            "xlsx" | "xlsm" | "xlsb" | "xls" | "ods" => Format::Workbook,
            _ => Format::Delimited,
        }
    }
}

/// Reads a table file into `sink`.
pub fn read(path: &Path, opts: &ReadOptions, sink: &mut dyn RowSink) -> Result<ReadSummary> {
    let summary = match Format::of(path) {
        Format::Parquet => read_parquet(path, sink),
        Format::Workbook => workbook::read(path, opts, sink),
        Format::Delimited => delimited::read(path, opts, sink),
    };
    summary.with_context(|| format!("reading {}", path.display()))
}

/// Parses CSV text held in memory (UTF-8, first line the header): for tests and small inputs.
pub fn read_csv(text: &str) -> Result<Table> {
    let mut t = Table::default();
    delimited::read_from(
        std::io::Cursor::new(text.as_bytes()),
        text.len() as u64,
        &ReadOptions::default(),
        &mut t,
    )?;
    Ok(t)
}

fn read_parquet(path: &Path, sink: &mut dyn RowSink) -> Result<ReadSummary> {
    let file = std::fs::File::open(path)?;
    let df = ParquetReader::new(file).finish()?;
    let header: Vec<String> = df.get_column_names().iter().map(|c| c.to_string()).collect();
    sink.header(&header)?;
    let mut columns = Vec::with_capacity(header.len());
    for c in df.columns() {
        let text = c.cast(&DataType::String)?;
        columns.push(text.str()?.clone());
    }
    for i in 0..df.height() {
        let cells = columns.iter().map(|c| c.get(i).map(str::to_string)).collect();
        sink.row(Row::ok(i + 1, cells))?;
    }
    Ok(ReadSummary { decoding: "parquet".into() })
}
