//! The queries a SQL pull sends, per dialect: identifiers quoted, the time bound written as a
//! typed literal made from the watermark (never from user text), rows in time order, a limit.
//!
//! ```text
//! PostgreSQL: SELECT {columns} FROM "public"."shots" WHERE "ts" >= TIMESTAMP '…' ORDER BY "ts" LIMIT 10000
//! MS-SQL:     SELECT TOP (10000) {columns} FROM [dbo].[shots] WHERE [ts] >= CAST('…' AS datetime2) ORDER BY [ts]
//! ```

use super::page::SourceTime;
use anyhow::{Result, bail};

/// A SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL: `"ident"`, `LIMIT n`.
    Postgres,
    /// Microsoft SQL Server: `[ident]`, `TOP (n)`.
    Mssql,
}

/// Where the rows come from: a table or a wrapped query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `schema.table` (each part quoted).
    Table(String),
    /// A `SELECT` whose result is read.
    Query(String),
}

impl Dialect {
    /// One identifier, quoted (quotes inside doubled).
    pub fn ident(self, name: &str) -> String {
        match self {
            Dialect::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
            Dialect::Mssql => format!("[{}]", name.replace(']', "]]")),
        }
    }

    /// The `FROM` target: a table name split on `.` into quoted parts, or `(query) AS q`.
    pub fn from(self, from: &Target) -> Result<String> {
        match from {
            Target::Table(name) => {
                let parts: Vec<&str> = name.split('.').map(str::trim).collect();
                if parts.iter().any(|p| p.is_empty()) || parts.len() > 3 {
                    bail!("table {name:?}: give table, schema.table or database.schema.table");
                }
                Ok(parts.iter().map(|p| self.ident(p)).collect::<Vec<_>>().join("."))
            }
            Target::Query(q) => Ok(format!("({}) AS moldops_pull", q.trim())),
        }
    }

    /// The watermark as a literal of the column's own type. For MS-SQL a time 4 ms earlier:
    /// `datetime` keeps 1/300 s, which servers below compatibility level 130 compare with a
    /// `datetime2` rounded down, so a row exactly at the watermark could fall below it; the rows
    /// read again are recognised (and those before the kept window skipped) by the pull.
    pub fn literal(self, t: SourceTime) -> Result<String> {
        if let SourceTime::Number(n) = t {
            return Ok(n.to_string());
        }
        let Some(mut naive) = t.naive_time() else { bail!("no SQL literal for {t:?}") };
        if self == Dialect::Mssql {
            naive -= chrono::Duration::milliseconds(4);
        }
        let text = naive.format("%Y-%m-%d %H:%M:%S%.6f");
        Ok(match (self, t) {
            (Dialect::Postgres, SourceTime::Utc(_) | SourceTime::Nanos(_)) => {
                format!("TIMESTAMPTZ '{text}+00'")
            }
            (Dialect::Postgres, _) => format!("TIMESTAMP '{text}'"),
            (Dialect::Mssql, SourceTime::Utc(_) | SourceTime::Nanos(_)) => {
                format!("CAST('{text} +00:00' AS datetimeoffset)")
            }
            (Dialect::Mssql, _) => format!("CAST('{text}' AS datetime2)"),
        })
    }

    /// The page query: `columns` (already quoted or cast) from `from`, rows at or after
    /// `since` (every row with a time without) and meeting `guard` (a condition of the
    /// caller's own making), in time order, at most `limit`.
    pub fn page(
        self,
        columns: &str,
        from: &Target,
        time: &str,
        since: Option<SourceTime>,
        guard: Option<&str>,
        limit: usize,
    ) -> Result<String> {
        let (from, t) = (self.from(from)?, self.ident(time));
        let mut bound = match since {
            Some(s) => format!(" WHERE {t} >= {}", self.literal(s)?),
            // Rows without a time cannot be placed after a watermark: they are counted, not read.
            None => format!(" WHERE {t} IS NOT NULL"),
        };
        if let Some(guard) = guard {
            bound.push_str(&format!(" AND {guard}"));
        }
        Ok(match self {
            Dialect::Postgres => format!("SELECT {columns} FROM {from}{bound} ORDER BY {t} LIMIT {limit}"),
            Dialect::Mssql => format!("SELECT TOP ({limit}) {columns} FROM {from}{bound} ORDER BY {t}"),
        })
    }

    /// A query counting the rows whose time is NULL or fails `guard` (never pulled).
    pub fn without_time(self, from: &Target, time: &str, guard: Option<&str>) -> Result<String> {
        let (from, t) = (self.from(from)?, self.ident(time));
        let or_not = guard.map(|g| format!(" OR NOT {g}")).unwrap_or_default();
        Ok(match self {
            Dialect::Postgres => format!("SELECT count(*) FROM {from} WHERE {t} IS NULL{or_not}"),
            Dialect::Mssql => format!("SELECT COUNT_BIG(*) FROM {from} WHERE {t} IS NULL{or_not}"),
        })
    }

    /// A query returning no rows, to learn the columns and their types.
    pub fn shape(self, from: &Target) -> Result<String> {
        let from = self.from(from)?;
        Ok(match self {
            Dialect::Postgres => format!("SELECT * FROM {from} LIMIT 0"),
            Dialect::Mssql => format!("SELECT TOP (0) * FROM {from}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_cannot_break_out() {
        assert_eq!(Dialect::Postgres.ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(Dialect::Mssql.ident("a]b"), "[a]]b]");
        assert_eq!(
            Dialect::Postgres.from(&Target::Table("public.shots".into())).expect("ok"),
            "\"public\".\"shots\""
        );
        assert!(Dialect::Mssql.from(&Target::Table("a..b".into())).is_err());
    }

    #[test]
    fn pages_are_bounded_ordered_and_limited_in_each_dialect() {
        let t = SourceTime::Naive(1_714_521_600_500_000);
        let from = Target::Table("dbo.shots".into());
        assert_eq!(
            Dialect::Mssql.page("*", &from, "ts", Some(t), None, 500).expect("sql"),
            "SELECT TOP (500) * FROM [dbo].[shots] WHERE [ts] >= CAST('2024-05-01 00:00:00.496000' AS datetime2) ORDER BY [ts]"
        );
        assert_eq!(
            Dialect::Postgres
                .page("*", &Target::Query("select * from v".into()), "ts", Some(SourceTime::Utc(0)), None, 7)
                .expect("sql"),
            "SELECT * FROM (select * from v) AS moldops_pull WHERE \"ts\" >= TIMESTAMPTZ '1970-01-01 00:00:00.000000+00' ORDER BY \"ts\" LIMIT 7"
        );
        assert_eq!(
            Dialect::Postgres.page("*", &from, "n", None, Some("isfinite(\"n\")"), 3).expect("sql"),
            "SELECT * FROM \"dbo\".\"shots\" WHERE \"n\" IS NOT NULL AND isfinite(\"n\") ORDER BY \"n\" LIMIT 3"
        );
        assert_eq!(Dialect::Mssql.literal(SourceTime::Number(-4)).expect("n"), "-4");
        assert_eq!(
            Dialect::Mssql.literal(SourceTime::Utc(0)).expect("utc"),
            "CAST('1969-12-31 23:59:59.996000 +00:00' AS datetimeoffset)"
        );
        assert_eq!(Dialect::Mssql.shape(&from).expect("shape"), "SELECT TOP (0) * FROM [dbo].[shots]");
        assert_eq!(
            Dialect::Postgres.without_time(&from, "t", Some("isfinite(\"t\")")).expect("count"),
            "SELECT count(*) FROM \"dbo\".\"shots\" WHERE \"t\" IS NULL OR NOT isfinite(\"t\")"
        );
    }
}
