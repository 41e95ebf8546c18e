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
        }
    }
}
