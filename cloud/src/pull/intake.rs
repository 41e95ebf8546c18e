//! One source's pull under way: each page is aligned to the source's columns by name, its new
//! rows decided (a record, an excluded row or a refusal, each with the next `seq`), written
//! with the moved watermark as the commit point, then committed to the lake.

use super::config::Source;
use super::page::{MAX_CELL_BYTES, Page, PageRow, SourceTime};
use super::state::{self, Pending, PullState, Refused};
use super::{PullReport, per_second};
use crate::import::ImportProfile;
use crate::import::quarantine::Quarantine;
use crate::import::rows::{self, Columns, Outcome};
use crate::import::table::{Row, RowSink};
use crate::ingest::{Committer, Group};
use anyhow::{Context, Result, bail};
use moldops_shared::topic::{Leaf, topic};
use std::path::Path;

/// The most of a refused row's text kept in its quarantine entry.
const MAX_REFUSED_TEXT: usize = 4096;

/// One source's pull under way.
pub struct Intake<'a> {
    lake: &'a Path,
    source: &'a Source,
    committer: Committer,
    quarantine: Quarantine,
    /// The source's state (watermark, identities, header, next seq).
    pub state: PullState,
    /// The profile (time format fixed for the column's type) and its columns, for the header.
    columns: Option<(ImportProfile, Columns)>,
    /// What this pull did so far.
    pub report: PullReport,
}

/// How a page ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageEnd {
    /// Every row was taken.
    Whole,
    /// A row stamped beyond the horizon was met: it and the rest of the page were not taken.
    Future,
}

impl<'a> Intake<'a> {
    /// A pull of `source` into the lake, from its state.
    pub fn new(
        lake: &'a Path,
        source: &'a Source,
        committer: Committer,
        state: PullState,
    ) -> Result<Intake<'a>> {
        let stream = source.stream();
        Ok(Intake {
            lake,
            source,
            committer,
            quarantine: Quarantine::open_pull(lake, &source.config.name, &state.epoch)?,
            state,
            columns: None,
            report: PullReport { source: source.config.name.clone(), stream, ..Default::default() },
        })
    }

    /// Commits the page an interrupted pull had decided, if any.
    pub fn resume(&mut self) -> Result<()> {
        if let Some(pending) = self.state.pending.take() {
            self.report.resumed_page = true;
            self.apply(pending)?;
            self.state.save(self.lake)?;
        }
        Ok(())
    }

    /// The page's rows with their cells in the order of the source's header; columns met for
    /// the first time are added to the header (and the column roles found again). A SQL answer
    /// always has every column: one gone from it (dropped, renamed) stops the pull rather than
    /// turn its values into NULLs.
    fn align(&mut self, page: Page) -> Result<Vec<PageRow>> {
        if self.source.config.kind.dialect().is_some()
            && let Some(gone) = self.state.header.iter().find(|h| !page.columns.contains(h))
        {
            bail!(
                "column {gone:?} is gone from the source's answer (columns now: {:?}); restore it, or \
                 start the source over with --restart",
                page.columns
            );
        }
        for c in &page.columns {
            if !self.state.header.contains(c) {
                if !self.state.header.is_empty() && self.source.config.key.is_empty() {
                    tracing::warn!(
                        source = %self.source.config.name,
                        column = %c,
                        "a new column: rows of the look-back window that now hold a value in it \
                         count as new (give the source a `key` to identify rows by their id)"
                    );
                }
                self.state.header.push(c.clone());
                self.columns = None;
            }
        }
        if page.columns == self.state.header {
            return Ok(page.rows);
        }
        let at: Vec<Option<usize>> =
            self.state.header.iter().map(|h| page.columns.iter().position(|c| c == h)).collect();
        let cells =
            |r: &PageRow| at.iter().map(|i| i.and_then(|i| r.cells.get(i).cloned().flatten())).collect();
        Ok(page.rows.iter().map(|r| PageRow { time: r.time, cells: cells(r) }).collect())
    }

    /// The profile and column roles for the header. A time column of a date/time type is read
    /// as such whatever format the profile gives for files; an integer one needs the profile's
    /// `epoch_s` or `epoch_ms`. Value columns found by a census of the first page are kept in
    /// the state, so every later page and pull takes the same ones.
    fn resolve(&mut self, rows: &[PageRow]) -> Result<(ImportProfile, Columns)> {
        let mut profile = self.source.profile.clone();
        match rows.first().map(|r| r.time) {
            Some(SourceTime::Number(_)) if per_second(&profile).is_none() => {
                bail!(
                    "the time column holds numbers: give the profile's [time] format = \"epoch_s\" or \"epoch_ms\""
                )
            }
            Some(SourceTime::Number(_)) => {}
            _ => profile.time.format = "auto".into(),
        }
        // Columns the profile names win; else those the census of the first page ever chose.
        if profile.values.is_empty()
            && let Some(values) = self.state.value_columns.as_ref().filter(|v| !v.is_empty())
        {
            profile.values = values.clone();
        }
        let mut census = rows::Census::new(&profile);
        if profile.values.is_empty() {
            census.header(&self.state.header)?;
            for (i, r) in rows.iter().enumerate() {
                census.row(Row { line: i + 2, cells: Ok(r.cells.clone()) })?;
            }
        }
        let columns = Columns::resolve(&profile, &self.state.header, Some(&census))?;
        let values: Vec<String> = columns.value_names().iter().map(|s| s.to_string()).collect();
        if values.is_empty() {
            bail!(
                "no column of the first page holds numbers: name the value columns in the profile's `values`"
            );
        }
        self.state.value_columns = Some(values.clone());
        profile.values = values;
        Ok((profile, columns))
    }

    /// Decides a page and commits it: rows pulled before (by identity) are skipped, rows stamped
    /// after `horizon` end the page, the watermark moves to the last row taken.
    pub fn page(&mut self, page: Page, horizon: SourceTime) -> Result<PageEnd> {
        let rows = self.align(page)?;
        if self.columns.is_none() {
            self.columns = Some(self.resolve(&rows)?);
        }
        let (profile, columns) = self.columns.as_ref().context("the columns of the first page")?;
        let header = self.state.header.clone();
        let key: Vec<usize> = if self.source.config.key.is_empty() {
            (0..header.len()).collect()
        } else {
            let find = |k: &String| header.iter().position(|c| c == k);
            let found: Option<Vec<usize>> = self.source.config.key.iter().map(find).collect();
            found.with_context(|| {
                format!("key {:?}: not all among the columns {header:?}", self.source.config.key)
            })?
        };
        let mut pending = Pending::default();
        let (mut last, mut end) = (None, PageEnd::Whole);
        self.report.pages += 1;
        for (n, row) in rows.iter().enumerate() {
            if row.time > horizon {
                self.report.in_future += (rows.len() - n) as u64;
                end = PageEnd::Future;
                break;
            }
            self.report.rows_read += 1;
            if self.state.recent_from.is_some_and(|from| row.time < from) {
                // Before the kept window (a bound a little wide, as for MS-SQL `datetime`): pulled
                // by an earlier pull, whose identities are gone.
                self.report.already_pulled += 1;
                continue;
            }
            last = Some(row.time);
            let cells: Vec<(&str, &Option<String>)> =
                key.iter().filter_map(|&i| Some((header.get(i)?.as_str(), row.cells.get(i)?))).collect();
            let id = state::identity(row.time, &cells);
            if self.state.seen(id) {
                self.report.already_pulled += 1;
                continue;
            }
            self.state.remember(row.time, id);
            let seq = self.state.next_seq;
            self.state.next_seq += 1;
            self.report.new_rows += 1;
            let refuse =
                |column: Option<String>, reason: String| Refused { seq, column, reason, text: text(row) };
            if let Some(i) =
                row.cells.iter().position(|c| c.as_ref().is_some_and(|c| c.len() > MAX_CELL_BYTES))
            {
                pending
                    .refused
                    .push(refuse(header.get(i).cloned(), format!("a cell over {MAX_CELL_BYTES} bytes")));
                continue;
            }
            let line = usize::try_from(seq).context("seq beyond this machine's word")?;
            match columns.row(profile, line, &row.cells) {
                Outcome::Record(r) => pending.records.push(*r),
                Outcome::Excluded => {
                    self.report.excluded += 1;
                    self.state.totals.excluded += 1;
                }
                Outcome::Header => {
                    pending.refused.push(refuse(None, "a row repeating the column names".into()))
                }
                Outcome::Bad { column, reason } => pending.refused.push(refuse(column, reason)),
            }
        }
        if let Some(last) = last {
            let watermark = self.state.watermark.map_or(last, |w| w.max(last));
            let per_second = per_second(&self.source.profile).unwrap_or(1);
            self.state.advance(last, watermark.minus_seconds(self.source.config.look_back_s, per_second));
        }
        self.state.totals.rows += pending.records.len() as u64 + pending.refused.len() as u64;
        self.state.totals.quarantined += pending.refused.len() as u64;
        self.state.pending = Some(pending.clone());
        self.state.save(self.lake)?;
        self.apply(pending)?;
        self.state.pending = None;
        self.state.save(self.lake)?;
        Ok(end)
    }

    /// Commits a decided page to the lake and its refusals to the quarantine.
    fn apply(&mut self, pending: Pending) -> Result<()> {
        let site = &self.source.profile.site;
        let stream = &self.report.stream;
        if !pending.records.is_empty() {
            let mut group = Group::default();
            let now = chrono::Utc::now().timestamp_millis();
            for payload in crate::import::payloads(site, stream, &self.state.epoch, &pending.records) {
                group.add(&topic(site, stream, Leaf::Data), &payload, now);
            }
            let out = self.committer.commit(group)?;
            anyhow::ensure!(out.quarantined == 0, "the lake refused a page of {stream}; see its quarantine");
            self.report.written += out.raw_records + out.peripheral_records;
            self.report.duplicates += out.duplicates;
        }
        let refused = pending.refused.len() as u64;
        for r in pending.refused {
            self.quarantine.add(r.into())?;
        }
        self.quarantine.sync()?;
        self.report.quarantined += refused;
        Ok(())
    }
}

/// A row's cells as one line of text for its quarantine entry (at most [`MAX_REFUSED_TEXT`] bytes).
fn text(row: &PageRow) -> String {
    let mut text = row.cells.iter().map(|c| c.as_deref().unwrap_or("")).collect::<Vec<_>>().join(",");
    let mut cut = text.len().min(MAX_REFUSED_TEXT);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text
}
