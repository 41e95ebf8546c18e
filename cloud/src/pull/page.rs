//! What a source hands back: a page of rows in time order, each with its time as the source
//! holds it ([`SourceTime`]) and its cells as text, the way a file's cells are.

use anyhow::{Result, bail};
use chrono::{DateTime, NaiveDateTime};
use serde::{Deserialize, Serialize};

/// The longest cell a pulled row may hold (as for a file's record); a longer one refuses its row.
pub const MAX_CELL_BYTES: usize = 1 << 20;
/// The most one page (one answer) may hold: a page is `batch_rows` rows in memory at once.
pub const MAX_PAGE_BYTES: usize = 512 << 20;

/// The bytes of a page's cells, counted as its rows arrive.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageBytes(usize);

impl PageBytes {
    /// Counts one row's cells; fails once the page passes [`MAX_PAGE_BYTES`].
    pub fn add(&mut self, cells: &[Option<String>]) -> Result<()> {
        self.0 += cells.iter().map(|c| c.as_ref().map_or(0, String::len)).sum::<usize>();
        if self.0 > MAX_PAGE_BYTES {
            bail!("one page holds more than {} MiB: lower the source's batch_rows", MAX_PAGE_BYTES >> 20);
        }
        Ok(())
    }
}

/// A row's time as the source holds it: the watermark's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum SourceTime {
    /// A time with a zone (`timestamptz`, `datetimeoffset`): microseconds since the epoch, UTC.
    Utc(i64),
    /// A time without a zone (`timestamp`, `datetime2`, `date`): microseconds since
    /// 1970-01-01 00:00 on the source's own clock (the profile's `time_zone` places it).
    Naive(i64),
    /// An integer time column (the profile's `epoch_s` or `epoch_ms`).
    Number(i64),
    /// InfluxDB's time: nanoseconds since the epoch, UTC.
    Nanos(i64),
}

impl SourceTime {
    /// A zoned time.
    pub fn utc(t: DateTime<chrono::Utc>) -> SourceTime {
        SourceTime::Utc(t.timestamp_micros())
    }

    /// A time without zone.
    pub fn naive(t: NaiveDateTime) -> SourceTime {
        SourceTime::Naive(t.and_utc().timestamp_micros())
    }

    /// The number the watermark orders by.
    pub fn value(self) -> i64 {
        match self {
            SourceTime::Utc(v) | SourceTime::Naive(v) | SourceTime::Number(v) | SourceTime::Nanos(v) => v,
        }
    }

    /// The same kind of time holding `value`.
    fn with(self, value: i64) -> SourceTime {
        match self {
            SourceTime::Utc(_) => SourceTime::Utc(value),
            SourceTime::Naive(_) => SourceTime::Naive(value),
            SourceTime::Number(_) => SourceTime::Number(value),
            SourceTime::Nanos(_) => SourceTime::Nanos(value),
        }
    }

    /// `seconds` earlier; `per_second` is how many units of a [`SourceTime::Number`] make a
    /// second (1 for `epoch_s`, 1000 for `epoch_ms`).
    pub fn minus_seconds(self, seconds: u64, per_second: i64) -> SourceTime {
        let per = match self {
            SourceTime::Utc(_) | SourceTime::Naive(_) => 1_000_000,
            SourceTime::Number(_) => per_second,
            SourceTime::Nanos(_) => 1_000_000_000,
        };
        let back = i64::try_from(seconds).unwrap_or(i64::MAX).saturating_mul(per);
        self.with(self.value().saturating_sub(back))
    }

    /// The same kind of time one day after `now`: a row stamped later is a clock error or a
    /// placeholder date (`9999-12-31`), and would move the watermark past every real row.
    pub fn horizon(self, now: DateTime<chrono::Utc>, per_second: i64) -> SourceTime {
        const DAY_S: i64 = 86_400;
        match self {
            SourceTime::Utc(_) => SourceTime::Utc(now.timestamp_micros() + DAY_S * 1_000_000),
            SourceTime::Naive(_) => SourceTime::Naive(now.timestamp_micros() + DAY_S * 1_000_000),
            SourceTime::Number(_) => SourceTime::Number((now.timestamp() + DAY_S).saturating_mul(per_second)),
            SourceTime::Nanos(_) => SourceTime::Nanos(
                now.timestamp_nanos_opt().unwrap_or(i64::MAX).saturating_add(DAY_S * 1_000_000_000),
            ),
        }
    }

    /// The cell text the import profile reads: RFC 3339 for zoned times, ISO without offset for
    /// naive ones (placed by the profile's time zone), the number itself for numbers.
    pub fn cell(self) -> String {
        use chrono::SecondsFormat;
        match self {
            SourceTime::Utc(us) => DateTime::from_timestamp_micros(us)
                .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
                .unwrap_or_else(|| us.to_string()),
            SourceTime::Naive(us) => DateTime::from_timestamp_micros(us)
                .map(|t| t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.f").to_string())
                .unwrap_or_else(|| us.to_string()),
            SourceTime::Number(n) => n.to_string(),
            SourceTime::Nanos(ns) => {
                DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::AutoSi, true)
            }
        }
    }

    /// The same instant as a chrono time without zone (for SQL literals).
    pub fn naive_time(self) -> Option<NaiveDateTime> {
        match self {
            SourceTime::Utc(us) | SourceTime::Naive(us) => {
                DateTime::from_timestamp_micros(us).map(|t| t.naive_utc())
            }
            SourceTime::Nanos(ns) => Some(DateTime::from_timestamp_nanos(ns).naive_utc()),
            SourceTime::Number(_) => None,
        }
    }

    /// Fails unless `other` is the same kind of time (a column changing type between pulls).
    pub fn same_kind(self, other: SourceTime) -> Result<()> {
        if std::mem::discriminant(&self) != std::mem::discriminant(&other) {
            bail!("the time column changed type since the last pull ({self:?} then {other:?})");
        }
        Ok(())
    }
}

/// One row of a page.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRow {
    /// The row's time.
    pub time: SourceTime,
    /// Its cells in column order (the time column's cell is the time as text), `None` for NULL.
    pub cells: Vec<Option<String>>,
}

/// Rows of one query, in ascending time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// Column names.
    pub columns: Vec<String>,
    /// The rows.
    pub rows: Vec<PageRow>,
}

impl Page {
    /// Fails unless the rows come in ascending time (a source ordering otherwise would make
    /// the watermark skip rows).
    pub fn check_order(&self) -> Result<()> {
        if let Some(w) = self.rows.windows(2).find(|w| w[1].time < w[0].time) {
            bail!("the source returned rows out of time order ({:?} after {:?})", w[1].time, w[0].time);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_as_the_profile_reads_them_and_step_back_in_their_unit() {
        let t = SourceTime::Utc(1_714_521_600_123_456);
        assert_eq!(t.cell(), "2024-05-01T00:00:00.123456Z");
        assert_eq!(t.minus_seconds(2, 1), SourceTime::Utc(1_714_521_598_123_456));
        assert_eq!(SourceTime::Naive(1_714_521_600_000_000).cell(), "2024-05-01T00:00:00");
        assert_eq!(SourceTime::Number(1_714_521_600_000).minus_seconds(1, 1000).value(), 1_714_521_599_000);
        assert_eq!(SourceTime::Nanos(1_714_521_600_000_000_001).cell(), "2024-05-01T00:00:00.000000001Z");
        assert_eq!(SourceTime::Number(5).minus_seconds(u64::MAX, 1000), SourceTime::Number(i64::MIN + 6));
        assert!(SourceTime::Utc(1).same_kind(SourceTime::Naive(1)).is_err());
        let now = DateTime::from_timestamp(1_714_521_600, 0).expect("now");
        assert_eq!(SourceTime::Number(0).horizon(now, 1000), SourceTime::Number(1_714_608_000_000));
        assert_eq!(SourceTime::Naive(0).horizon(now, 1), SourceTime::Naive(1_714_608_000_000_000));
    }

    #[test]
    fn a_page_past_its_byte_bound_is_refused() {
        let mut bytes = PageBytes::default();
        let big = vec![Some("x".repeat(MAX_CELL_BYTES)); 256];
        assert!(bytes.add(&big).is_ok() && bytes.add(&big).is_ok());
        assert!(format!("{:#}", bytes.add(&big).expect_err("over")).contains("batch_rows"));
    }

    #[test]
    fn pages_out_of_order_are_refused() {
        let row = |t| PageRow { time: SourceTime::Number(t), cells: vec![] };
        let page = Page { columns: vec![], rows: vec![row(1), row(3), row(2)] };
        assert!(page.check_order().is_err());
        assert!(Page { columns: vec![], rows: vec![row(1), row(1), row(2)] }.check_order().is_ok());
    }
}
