//! Turning table rows into records through a profile: the column roles are resolved once
//! ([`Columns::resolve`]), then each row becomes a record, is skipped (a repeated header row,
//! an excluded machine) or is refused with the column and reason.

use super::profile::{ImportProfile, TableKind};
use super::table::{Row, RowSink, Table};
use anyhow::Context;
use chrono::{NaiveDateTime, TimeZone};
use moldops_shared::{Record, RecordKind};

/// What became of one row.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The row's record (its `seq` is the row's line number).
    Record(Box<Record>),
    /// A header line repeated inside the file.
    Header,
    /// A machine the profile excludes.
    Excluded,
    /// Refused: the column (if one is to blame) and why.
    Bad {
        /// The column to blame, if one is.
        column: Option<String>,
        /// Why the row was refused.
        reason: String,
    },
}

/// The column indexes of each role.
#[derive(Debug, Clone)]
pub struct Columns {
    time: usize,
    machine: Option<usize>,
    shot: Option<usize>,
    mold: Option<usize>,
    values: Vec<(usize, String)>,
    /// The header's names.
    names: Vec<String>,
}

fn bad(column: Option<&str>, reason: impl Into<String>) -> Outcome {
    Outcome::Bad { column: column.map(str::to_string), reason: reason.into() }
}

impl Columns {
    /// Finds every role's column in `header`; value columns are the profile's, or (with the
    /// `census` of the whole table) every column not playing a role nor ignored whose non-null
    /// cells mostly parse as numbers.
    pub fn resolve(p: &ImportProfile, header: &[String], census: Option<&Census>) -> anyhow::Result<Columns> {
        let find = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| anyhow::anyhow!("no column {name:?} in the header"))
        };
        let opt = |name: &Option<String>| name.as_deref().map(find).transpose();
        let time = find(&p.time.column)?;
        let (machine, shot, mold) = (opt(&p.machine.column)?, opt(&p.shot_number)?, opt(&p.mold)?);
        let roles = [Some(time), machine, shot, mold];
        let values = if p.values.is_empty() {
            let census = census.context("the profile names no value columns and no census was taken")?;
            (0..header.len())
                .filter(|i| !roles.contains(&Some(*i)) && !p.ignore.contains(&header[*i]))
                .filter(|i| !crate::lake::is_lake_column(&header[*i]))
                .filter(|i| census.mostly_numeric(*i))
                .filter(|i| match value_name(&header[*i]) {
                    Ok(()) => true,
                    Err(why) => {
                        tracing::warn!(column = %header[*i].escape_debug(), %why, "numeric column skipped");
                        false
                    }
                })
                .map(|i| (i, header[i].clone()))
                .collect()
        } else {
            let named = |v: &String| {
                value_name(v).map_err(|why| anyhow::anyhow!("values: column {v:?}: {why}"))?;
                Ok((find(v)?, v.clone()))
            };
            p.values.iter().map(named).collect::<anyhow::Result<_>>()?
        };
        Ok(Columns { time, machine, shot, mold, values, names: header.to_vec() })
    }

    /// [`Columns::resolve`] for a table held in memory.
    pub fn of_table(p: &ImportProfile, t: &Table) -> anyhow::Result<Columns> {
        let mut census = Census::new(p);
        census.header(&t.header)?;
        for row in &t.rows {
            census.row(row.clone())?;
        }
        Columns::resolve(p, &t.header, Some(&census))
    }

    /// Value column names.
    pub fn value_names(&self) -> Vec<&str> {
        self.values.iter().map(|(_, n)| n.as_str()).collect()
    }

    /// One row (`line` is its line number, used as shot number when the profile has none).
    pub fn row(&self, p: &ImportProfile, line: usize, cells: &[Option<String>]) -> Outcome {
        let cell = |i: usize| {
            cells
                .get(i)
                .and_then(|c| c.as_deref())
                .map(str::trim)
                .filter(|c| !p.null_values.iter().any(|n| n == c))
        };
        let name = |i: usize| self.names[i].as_str();
        // Times, labels, counters, molds and numbers never hold a line break: one that does took
        // the lines after it into a quoted cell, and would hide them inside an accepted row.
        let roles = [Some(self.time), self.machine, self.shot, self.mold].into_iter().flatten();
        for i in roles.chain(self.values.iter().map(|(i, _)| *i)) {
            if cells.get(i).and_then(|c| c.as_deref()).is_some_and(|c| c.contains('\n')) {
                return bad(
                    Some(name(i)),
                    format!("a line break inside the cell (a quote opened on line {line} left open?)"),
                );
            }
        }
        if cells.get(self.time).and_then(|c| c.as_deref()).map(str::trim) == Some(name(self.time)) {
            return Outcome::Header;
        }
        let Some(time_text) = cell(self.time) else { return bad(Some(name(self.time)), "no time") };
        let ts_ms = match parse_time(p, time_text) {
            Ok(ts) => ts,
            Err(e) => return bad(Some(name(self.time)), e.to_string()),
        };
        if !(-62_135_596_800_000..=253_402_300_799_999).contains(&ts_ms) {
            return bad(Some(name(self.time)), "outside years 1..=9999");
        }
        let machine_id = match (&p.machine.id, self.machine) {
            (Some(id), _) => id.clone(),
            (None, Some(i)) => {
                let label = cells.get(i).and_then(|c| c.as_deref()).unwrap_or("").trim();
                if p.machine.exclude.iter().any(|e| e == label) {
                    return Outcome::Excluded;
                }
                match p.machine.map.get(label).or(p.machine.default.as_ref().filter(|_| !label.is_empty())) {
                    Some(id) => id.clone(),
                    None => return bad(Some(name(i)), format!("no machine for label {label:?}")),
                }
            }
            (None, None) => return bad(None, "the profile names no machine"),
        };
        let shot_number = match (p.kind, self.shot) {
            (TableKind::Peripheral, _) => None,
            (TableKind::Shots, None) => Some(line as u64),
            (TableKind::Shots, Some(i)) => match cell(i).map(|c| c.parse::<f64>()) {
                Some(Ok(v)) if v >= 0.0 && v.fract() == 0.0 && v < 1.8e19 => Some(v as u64),
                _ => return bad(Some(name(i)), "shot number is not a non-negative integer"),
            },
        };
        let mut values = std::collections::BTreeMap::new();
        for (i, n) in &self.values {
            match cell(*i).map(|c| c.parse::<f64>()) {
                None => {}
                Some(Ok(v)) if v.is_finite() => {
                    values.insert(n.clone(), v);
                }
                Some(_) => {
                    return bad(Some(n), format!("{:?} is not a finite number", cell(*i).unwrap_or("")));
                }
            }
        }
        let (kind, device_id) = match p.kind {
            TableKind::Shots => (RecordKind::Shot, machine_id.clone()),
            TableKind::Peripheral => {
                (RecordKind::Peripheral, format!("{machine_id}-{}", p.device.as_deref().unwrap_or("device")))
            }
        };
        let mold = self.mold.and_then(cell).map(str::to_string).filter(|_| kind == RecordKind::Shot);
        let record = Record {
            seq: line as u64,
            kind,
            machine_id,
            device_id,
            ts_ms,
            shot_number,
            mold,
            material: None,
            values,
            out_of_range: Vec::new(),
            model: None,
        };
        // The lake's own check: a row it would refuse is refused here, alone, with its reason.
        match moldops_shared::codec::check_record(&record) {
            Ok(()) => Outcome::Record(Box::new(record)),
            Err(e) => bad(None, e.to_string()),
        }
    }
}

/// Whether a column name can be a value name in the lake: a valid identifier (at most 128
/// bytes, no control characters, not empty) that is not one of the lake's own columns.
fn value_name(name: &str) -> Result<(), String> {
    if crate::lake::is_lake_column(name) {
        return Err(format!("{name:?} is a column of the lake itself"));
    }
    moldops_shared::limits::check_name("value name", name).map_err(|e| e.to_string())
}

/// How many non-null cells of each column parse as numbers, counted over a whole table as it
/// streams by (repeated header rows and null texts not counted).
#[derive(Debug, Clone, Default)]
pub struct Census {
    nulls: Vec<String>,
    header: Vec<String>,
    numeric: Vec<u64>,
    other: Vec<u64>,
}

impl Census {
    /// An empty census with the profile's null texts.
    pub fn new(p: &ImportProfile) -> Census {
        Census { nulls: p.null_values.clone(), ..Default::default() }
    }

    /// True when at least nine in ten of column `i`'s counted cells (and at least one) are numbers.
    pub fn mostly_numeric(&self, i: usize) -> bool {
        let (num, other) =
            (self.numeric.get(i).copied().unwrap_or(0), self.other.get(i).copied().unwrap_or(0));
        num > 0 && num >= other * 9
    }
}

impl RowSink for Census {
    fn header(&mut self, header: &[String]) -> anyhow::Result<()> {
        self.header = header.to_vec();
        self.numeric = vec![0; header.len()];
        self.other = vec![0; header.len()];
        Ok(())
    }

    fn row(&mut self, row: Row) -> anyhow::Result<()> {
        let Ok(cells) = row.cells else { return Ok(()) };
        for (i, c) in cells.iter().enumerate().take(self.header.len()) {
            let Some(c) = c.as_deref().map(str::trim) else { continue };
            if self.nulls.iter().any(|n| n == c) || c == self.header[i] {
                continue;
            }
            if c.parse::<f64>().is_ok() { self.numeric[i] += 1 } else { self.other[i] += 1 }
        }
        Ok(())
    }
}

/// A time cell that yields no instant: the cell's text and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{text:?} {why}")]
pub struct BadTime {
    /// The cell's text (trimmed).
    pub text: String,
    /// Why it is no time (e.g. `is not a timestamp`).
    pub why: String,
}

impl BadTime {
    pub(crate) fn new(text: &str, why: impl Into<String>) -> Self {
        BadTime { text: text.to_string(), why: why.into() }
    }
}

/// A finite number (`NaN` and infinities, which `f64` parses, are not times).
fn finite(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A timestamp in UTC ms, by the profile's format and time zone.
pub fn parse_time(p: &ImportProfile, text: &str) -> Result<i64, BadTime> {
    let naive = |fmt: &str| NaiveDateTime::parse_from_str(text, fmt);
    let local = |n: NaiveDateTime| {
        p.zone()
            .from_local_datetime(&n)
            .earliest()
            .map(|d| d.timestamp_millis())
            .ok_or_else(|| BadTime::new(text, format!("does not exist in {}", p.zone())))
    };
    match p.time.format.as_str() {
        "epoch_ms" => finite(text).map(|v| v as i64).ok_or_else(|| BadTime::new(text, "is not epoch ms")),
        "epoch_s" => finite(text)
            .map(|v| (v * 1000.0).round() as i64)
            .ok_or_else(|| BadTime::new(text, "is not epoch s")),
        "rfc3339" => chrono::DateTime::parse_from_rfc3339(text)
            .map(|d| d.timestamp_millis())
            .map_err(|e| BadTime::new(text, format!("is not RFC 3339: {e}"))),
        "auto" => {
            if let Ok(d) = chrono::DateTime::parse_from_rfc3339(text) {
                return Ok(d.timestamp_millis());
            }
            naive("%Y-%m-%d %H:%M:%S%.f")
                .or_else(|_| naive("%Y-%m-%dT%H:%M:%S%.f"))
                .map_err(|_| BadTime::new(text, "is not a timestamp"))
                .and_then(local)
        }
        fmt => {
            naive(fmt).map_err(|e| BadTime::new(text, format!("does not match {fmt:?}: {e}"))).and_then(local)
        }
    }
}
