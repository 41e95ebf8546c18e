//! Spreadsheet tables through `calamine`: `.xlsx`/`.xlsm` streamed cell by cell, `.xls`, `.xlsb`
//! and `.ods` read a sheet at a time. The first non-empty row is the header; a row's line is
//! its row number in the sheet. Cells become the text a CSV export of them would hold: whole
//! numbers without a fraction (`1234`, not `1234.0`), other numbers in their shortest exact
//! form, dates in the time format of the profile (rounded to the millisecond), error cells as
//! their code (`#DIV/0!`, refused where a number is expected).

use super::{ReadOptions, ReadSummary, Row, RowError, RowSink};
use anyhow::{Context, Result};
use calamine::{Data, Reader};
use std::path::Path;

/// Date cells' text when the profile's time format is not a chrono pattern.
pub const ISO_DATE_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3f";

/// Columns of the widest sheet Excel writes (XFD); wider dimensions are not believed.
const MAX_COLUMNS: u32 = 16_384;

/// Reads one sheet of the workbook at `path`.
pub fn read(path: &Path, opts: &ReadOptions, sink: &mut dyn RowSink) -> Result<ReadSummary> {
    let streamed =
        path.extension().is_some_and(|e| e.eq_ignore_ascii_case("xlsx") || e.eq_ignore_ascii_case("xlsm"));
    if streamed {
        let mut book: calamine::Xlsx<_> = calamine::open_workbook(path).context("opening the workbook")?;
        let sheet = pick_sheet(&book.sheet_names(), opts.sheet.as_deref())?;
        let mut cells = book.worksheet_cells_reader(&sheet).with_context(|| format!("sheet {sheet:?}"))?;
        let dims = cells.dimensions();
        let mut rows = Rows::new(opts, sink, (dims.start.1, dims.end.1));
        while let Some(cell) = cells.next_cell().with_context(|| format!("sheet {sheet:?}"))? {
            let (row, col) = cell.get_position();
            rows.cell(row, col, Data::from(cell.get_value().clone()))?;
        }
        rows.finish()?;
        return Ok(ReadSummary { decoding: format!("workbook sheet {sheet:?}") });
    }
    let mut book = calamine::open_workbook_auto(path).context("opening the workbook")?;
    let sheet = pick_sheet(&book.sheet_names(), opts.sheet.as_deref())?;
    let range = book.worksheet_range(&sheet).with_context(|| format!("sheet {sheet:?}"))?;
    let (row0, col0) = range.start().unwrap_or((0, 0));
    let (_, col1) = range.end().unwrap_or((0, 0));
    let mut rows = Rows::new(opts, sink, (col0, col1));
    for (r, cells) in range.rows().enumerate() {
        for (c, cell) in cells.iter().enumerate() {
            rows.cell(row0 + r as u32, col0 + c as u32, cell.clone())?;
        }
    }
    rows.finish()?;
    Ok(ReadSummary { decoding: format!("workbook sheet {sheet:?}") })
}

/// The sheet asked for, or the first one.
fn pick_sheet(names: &[String], wanted: Option<&str>) -> Result<String> {
    match wanted {
        Some(w) => names
            .iter()
            .find(|n| n.as_str() == w)
            .cloned()
            .with_context(|| format!("no sheet {w:?} (sheets: {})", names.join(", "))),
        None => names.first().cloned().context("the workbook has no sheet"),
    }
}

/// Gathers cells (in row order) into rows and hands each on when the next row begins.
struct Rows<'a> {
    opts: &'a ReadOptions,
    sink: &'a mut dyn RowSink,
    header: Option<Vec<String>>,
    /// The sheet's used columns as its dimensions say (first, last): the header spans them, as
    /// a CSV export of the sheet would, even where its first or last cells are empty.
    used: (u32, u32),
    /// The sheet column of the header's first cell.
    first_col: u32,
    row: Option<u32>,
    cells: Vec<(u32, Option<String>)>,
    count: u64,
}

impl<'a> Rows<'a> {
    fn new(opts: &'a ReadOptions, sink: &'a mut dyn RowSink, used: (u32, u32)) -> Self {
        Rows { opts, sink, header: None, used, first_col: 0, row: None, cells: Vec::new(), count: 0 }
    }

    fn cell(&mut self, row: u32, col: u32, value: Data) -> Result<()> {
        // A row number is a record's identity in the lake: a sheet that goes back would give two
        // records one line.
        anyhow::ensure!(
            self.row.is_none_or(|r| r <= row),
            "sheet row {} comes after row {}: rows out of order",
            row + 1,
            self.row.unwrap_or(0) + 1
        );
        if self.row != Some(row) {
            self.flush()?;
            self.row = Some(row);
        }
        // Positions come from the file: a row may not claim more cells than a sheet has columns.
        anyhow::ensure!(
            col < MAX_COLUMNS && self.cells.len() < MAX_COLUMNS as usize,
            "sheet row {}: a cell beyond column {MAX_COLUMNS}",
            row + 1
        );
        if let Some(text) = cell_text(&value, &self.opts.date_format) {
            self.cells.push((col, Some(text)));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let Some(row) = self.row else { return Ok(()) };
        let cells = std::mem::take(&mut self.cells);
        if cells.is_empty() {
            return Ok(());
        }
        let line = row as usize + 1;
        let Some(header) = &self.header else {
            let (used_first, used_last) = if self.used.0 <= self.used.1 && self.used.1 < MAX_COLUMNS {
                self.used
            } else {
                (u32::MAX, 0)
            };
            self.first_col = cells.iter().map(|(c, _)| *c).min().unwrap_or(0).min(used_first);
            let last = cells.iter().map(|(c, _)| *c).max().unwrap_or(0).max(used_last);
            let mut names = vec![String::new(); (last - self.first_col + 1) as usize];
            for (c, t) in cells {
                names[(c - self.first_col) as usize] = t.unwrap_or_default().trim().to_string();
            }
            self.sink.header(&names)?;
            self.header = Some(names);
            return Ok(());
        };
        let width = header.len();
        let mut out = vec![None; width];
        let mut outside = 0;
        for (c, t) in &cells {
            match c.checked_sub(self.first_col).map(|i| i as usize).filter(|&i| i < width) {
                Some(i) => out[i] = t.clone(),
                None => outside += 1,
            }
        }
        let cells = if outside == 0 {
            Ok(out)
        } else {
            let text = cells.iter().map(|(_, t)| t.as_deref().unwrap_or("")).collect::<Vec<_>>().join(",");
            Err(RowError { reason: format!("{outside} cell(s) outside the header's {width} columns"), text })
        };
        self.count += 1;
        if self.count.is_multiple_of(10_000) {
            self.opts.progress.set_position(self.count);
        }
        self.sink.row(Row { line, cells })
    }

    fn finish(mut self) -> Result<()> {
        self.flush()?;
        self.opts.progress.finish_and_clear();
        anyhow::ensure!(self.header.is_some(), "the sheet is empty");
        Ok(())
    }
}

/// A cell as the text a CSV export would hold; `None` for an empty cell.
pub fn cell_text(cell: &Data, date_format: &str) -> Option<String> {
    Some(match cell {
        Data::Empty => return None,
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => number_text(*f),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) if d.is_datetime() => match d.as_datetime() {
            Some(t) => time_text(t, date_format),
            None => number_text(d.as_f64()),
        },
        // A duration: its length in days, as Excel stores it.
        Data::DateTime(d) => number_text(d.as_f64()),
        // ODS and xlsx `t="d"` cells: ISO text, written in the profile's format like the others.
        Data::DateTimeIso(s) => {
            s.parse::<chrono::NaiveDateTime>().map_or_else(|_| s.clone(), |t| time_text(t, date_format))
        }
        Data::DurationIso(s) => s.clone(),
        Data::Error(e) => e.to_string(),
    })
}

/// A date cell's time in `format`; in ISO form when the format cannot write a naive time (an
/// offset such as `%z`, or no valid pattern).
fn time_text(t: chrono::NaiveDateTime, format: &str) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    match write!(out, "{}", t.format(format)) {
        Ok(()) => out,
        Err(_) => t.format(ISO_DATE_FORMAT).to_string(),
    }
}

/// A number the way a CSV export writes it: whole numbers without a fraction.
fn number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 { format!("{}", f as i64) } else { f.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_read_like_a_csv_export_of_them() {
        let t = chrono::NaiveDate::from_ymd_opt(2024, 5, 1).and_then(|d| d.and_hms_milli_opt(10, 0, 0, 250));
        let t = t.expect("a time");
        assert_eq!(time_text(t, "%Y-%m-%d %H:%M:%S"), "2024-05-01 10:00:00");
        // An offset a naive time has not: ISO instead of a panic.
        assert_eq!(time_text(t, "%Y-%m-%dT%H:%M:%S%z"), "2024-05-01 10:00:00.250");
        let iso = Data::DateTimeIso("2024-05-01T10:00:00".into());
        assert_eq!(cell_text(&iso, "%Y/%m/%d %H:%M").as_deref(), Some("2024/05/01 10:00"));
        assert_eq!(cell_text(&Data::Float(5000.0), "").as_deref(), Some("5000"));
        assert_eq!(cell_text(&Data::Float(0.1), "").as_deref(), Some("0.1"));
        assert_eq!(cell_text(&Data::Empty, ""), None);
    }

    #[test]
    fn the_header_spans_the_used_columns_and_rows_may_not_go_back() {
        let opts = ReadOptions::default();
        let mut t = super::super::Table::default();
        let mut rows = Rows::new(&opts, &mut t, (0, 2));
        // pandas' to_excel with its index: A1 empty, index values in column A.
        rows.cell(0, 1, Data::String("t".into())).unwrap();
        rows.cell(0, 2, Data::String("v".into())).unwrap();
        rows.cell(1, 0, Data::Int(0)).unwrap();
        rows.cell(1, 1, Data::String("x".into())).unwrap();
        rows.cell(1, 2, Data::Float(1.5)).unwrap();
        assert!(rows.cell(0, 0, Data::Int(9)).is_err(), "a row that goes back is refused");
        assert!(rows.cell(1, MAX_COLUMNS, Data::Int(9)).is_err(), "a column past XFD is refused");
        rows.finish().unwrap();
        assert_eq!(t.header, ["", "t", "v"]);
        assert_eq!(t.rows, [Row::ok(2, vec![Some("0".into()), Some("x".into()), Some("1.5".into())])]);
    }
}
