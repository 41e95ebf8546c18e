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

/// Reads one sheet of the workbook at `path`.
pub fn read(path: &Path, opts: &ReadOptions, sink: &mut dyn RowSink) -> Result<ReadSummary> {
    let streamed =
        path.extension().is_some_and(|e| e.eq_ignore_ascii_case("xlsx") || e.eq_ignore_ascii_case("xlsm"));
    if streamed {
        let mut book: calamine::Xlsx<_> = calamine::open_workbook(path).context("opening the workbook")?;
        let sheet = pick_sheet(&book.sheet_names(), opts.sheet.as_deref())?;
        let mut cells = book.worksheet_cells_reader(&sheet).with_context(|| format!("sheet {sheet:?}"))?;
        let mut rows = Rows::new(opts, sink);
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
    let mut rows = Rows::new(opts, sink);
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
    /// The sheet column of the header's first cell.
    first_col: u32,
    row: Option<u32>,
    cells: Vec<(u32, Option<String>)>,
    count: u64,
}

impl<'a> Rows<'a> {
    fn new(opts: &'a ReadOptions, sink: &'a mut dyn RowSink) -> Self {
        Rows { opts, sink, header: None, first_col: 0, row: None, cells: Vec::new(), count: 0 }
    }

    fn cell(&mut self, row: u32, col: u32, value: Data) -> Result<()> {
        if self.row != Some(row) {
            self.flush()?;
            self.row = Some(row);
        }
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
            self.first_col = cells.iter().map(|(c, _)| *c).min().unwrap_or(0);
            let last = cells.iter().map(|(c, _)| *c).max().unwrap_or(0);
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
            Some(t) => t.format(date_format).to_string(),
            None => number_text(d.as_f64()),
        },
        // A duration: its length in days, as Excel stores it.
        Data::DateTime(d) => number_text(d.as_f64()),
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => e.to_string(),
    })
}

/// A number the way a CSV export writes it: whole numbers without a fraction.
fn number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 { format!("{}", f as i64) } else { f.to_string() }
}
