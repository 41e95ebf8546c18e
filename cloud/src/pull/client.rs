//! A connection to one source, whatever its kind: the page and count queries dispatched to
//! [`postgres`](super::postgres), [`mssql`](super::mssql) or [`influx`](super::influx).

use super::config::{Source, SourceKind};
use super::page::{Page, SourceTime};
use anyhow::Result;

/// A connection to one source.
pub enum Client {
    /// PostgreSQL.
    #[cfg(feature = "pull-sql")]
    Postgres(super::postgres::Postgres),
    /// MS-SQL (boxed: the TDS client is large).
    #[cfg(feature = "pull-sql")]
    Mssql(Box<super::mssql::Mssql>),
    /// InfluxDB 1.x, 2.x or 3.x.
    Influx(super::influx::Influx),
    /// Rows held in memory, for tests of the pull itself.
    #[cfg(test)]
    Memory(Memory),
}

/// A table in memory: its rows (shared with the test, which adds rows between pulls) and how
/// many more pages it answers before failing like a lost connection.
#[cfg(test)]
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// Column names.
    pub columns: Vec<String>,
    /// The rows, in any order.
    pub rows: std::sync::Arc<std::sync::Mutex<Vec<super::page::PageRow>>>,
    /// Pages answered before the next one fails (`None`: never fails).
    pub pages_left: Option<usize>,
}

impl Client {
    /// Connects to the source's server (InfluxDB: nothing is sent before the first page).
    pub async fn connect(source: &Source) -> Result<Client> {
        #[cfg(feature = "pull-sql")]
        let target = || match (&source.config.table, &source.config.query) {
            (Some(t), _) => super::sql::Target::Table(t.clone()),
            (None, q) => super::sql::Target::Query(q.clone().unwrap_or_default()),
        };
        match source.config.kind {
            #[cfg(feature = "pull-sql")]
            SourceKind::Postgres => {
                Ok(Client::Postgres(super::postgres::Postgres::connect(source, target()).await?))
            }
            #[cfg(feature = "pull-sql")]
            SourceKind::Mssql => {
                Ok(Client::Mssql(Box::new(super::mssql::Mssql::connect(source, target()).await?)))
            }
            SourceKind::Influxdb1 | SourceKind::Influxdb2 | SourceKind::Influxdb3 => {
                Ok(Client::Influx(super::influx::Influx::new(source)?))
            }
            #[cfg(not(feature = "pull-sql"))]
            kind => anyhow::bail!(
                "this build has no SQL sources ({kind:?}): build moldops-cloud with feature pull-sql"
            ),
        }
    }

    /// Up to `limit` rows at or after `since` (all rows with a time without), in time order.
    pub async fn page(&mut self, since: Option<SourceTime>, limit: usize) -> Result<Page> {
        match self {
            #[cfg(feature = "pull-sql")]
            Client::Postgres(c) => c.page(since, limit).await,
            #[cfg(feature = "pull-sql")]
            Client::Mssql(c) => c.page(since, limit).await,
            Client::Influx(c) => c.page(since, limit).await,
            #[cfg(test)]
            Client::Memory(m) => {
                if let Some(left) = &mut m.pages_left {
                    anyhow::ensure!(*left > 0, "connection lost (a test's injected failure)");
                    *left -= 1;
                }
                let mut rows: Vec<super::page::PageRow> = match m.rows.lock() {
                    Ok(rows) => rows.iter().filter(|r| since.is_none_or(|s| r.time >= s)).cloned().collect(),
                    Err(_) => anyhow::bail!("the test's rows are poisoned"),
                };
                rows.sort_by_key(|r| r.time);
                rows.truncate(limit);
                Ok(Page { columns: m.columns.clone(), rows })
            }
        }
    }

    /// Rows the source holds without a usable time (never pulled; counted every pull).
    pub async fn without_time(&mut self) -> Result<u64> {
        match self {
            #[cfg(feature = "pull-sql")]
            Client::Postgres(c) => c.without_time().await,
            #[cfg(feature = "pull-sql")]
            Client::Mssql(c) => c.without_time().await,
            Client::Influx(_) => Ok(0),
            #[cfg(test)]
            Client::Memory(_) => Ok(0),
        }
    }
}
