//! Pages from PostgreSQL (`tokio-postgres`): the columns are learnt once from the server, the
//! time column is read typed (`timestamp`, `timestamptz`, `date` or an integer) and every other
//! column as PostgreSQL's own text (`::text`: exact for `float8` and `numeric`).
//!
//! TLS through the system's OpenSSL (`native-tls`): the source's `tls` (`required`: a verified
//! certificate; `trust`: any certificate; `off`: plain TCP), else the url's explicit `sslmode`,
//! else `required` — never libpq's `prefer`, which falls back to plain text when a man in the
//! middle says the server has no TLS.

use super::config::Source;
use super::page::{Page, PageBytes, PageRow, SourceTime};
use super::sql::{Dialect, Target};
use anyhow::{Context, Result, bail};
use futures::TryStreamExt;
use tokio_postgres::types::Type;

/// The time column's type.
#[derive(Debug, Clone, Copy)]
enum TimeType {
    Zoned,
    Naive,
    Date,
    Int2,
    Int4,
    Int8,
}

/// The columns learnt from the server.
#[derive(Debug, Clone)]
struct Shape {
    names: Vec<String>,
    time: usize,
    time_type: TimeType,
    /// The select list: the time column as is, the others `::text`.
    select: String,
    /// `isfinite(time)` for date/time columns: `infinity` cannot be placed on a timeline.
    guard: Option<String>,
}

/// A connection to one source's server.
pub struct Postgres {
    client: tokio_postgres::Client,
    target: Target,
    time_column: String,
    shape: Option<Shape>,
}

impl Postgres {
    /// Connects (the connection runs on the current runtime until the client is dropped).
    pub async fn connect(source: &Source, target: Target) -> Result<Postgres> {
        let mut config: tokio_postgres::Config = source.config.url.parse().context("url")?;
        if let Some(password) = source.secret()? {
            config.password(password);
        }
        config.application_name("moldops-pull");
        config.connect_timeout(std::time::Duration::from_secs(30));
        let mut tls = native_tls::TlsConnector::builder();
        match source.config.tls.as_deref() {
            Some("off") => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            }
            Some("trust") => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                tls.danger_accept_invalid_certs(true);
            }
            Some(_) => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
            }
            None if source.config.url.contains("sslmode=") => {}
            None => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
            }
        }
        let tls = postgres_native_tls::MakeTlsConnector::new(tls.build().context("TLS")?);
        let (client, connection) =
            config.connect(tls).await.with_context(|| format!("connecting to {}", source.config.url))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "PostgreSQL connection ended");
            }
        });
        client.batch_execute("SET TIME ZONE 'UTC'").await.context("SET TIME ZONE")?;
        Ok(Postgres { client, target, time_column: source.time_column().to_string(), shape: None })
    }

    /// Learns the columns and the time column's type.
    async fn shape(&mut self) -> Result<Shape> {
        if let Some(s) = &self.shape {
            return Ok(s.clone());
        }
        let d = Dialect::Postgres;
        let stmt = self.client.prepare(&d.shape(&self.target)?).await.context("reading the columns")?;
        let names: Vec<String> = stmt.columns().iter().map(|c| c.name().to_string()).collect();
        let time = names
            .iter()
            .position(|n| *n == self.time_column)
            .with_context(|| format!("no column {:?} (columns: {})", self.time_column, names.join(", ")))?;
        let time_type = match *stmt.columns()[time].type_() {
            Type::TIMESTAMPTZ => TimeType::Zoned,
            Type::TIMESTAMP => TimeType::Naive,
            Type::DATE => TimeType::Date,
            Type::INT2 => TimeType::Int2,
            Type::INT4 => TimeType::Int4,
            Type::INT8 => TimeType::Int8,
            ref other => bail!(
                "time column {:?} is {other}: give a timestamp, timestamptz, date or integer column \
                 (cast it in `query`)",
                self.time_column
            ),
        };
        let select = names
            .iter()
            .enumerate()
            .map(|(i, n)| if i == time { d.ident(n) } else { format!("{0}::text AS {0}", d.ident(n)) })
            .collect::<Vec<_>>()
            .join(", ");
        let guard = match time_type {
            TimeType::Zoned | TimeType::Naive | TimeType::Date => {
                Some(format!("isfinite({})", d.ident(&self.time_column)))
            }
            TimeType::Int2 | TimeType::Int4 | TimeType::Int8 => None,
        };
        let shape = Shape { names, time, time_type, select, guard };
        self.shape = Some(shape.clone());
        Ok(shape)
    }

    /// Up to `limit` rows at or after `since`, in time order.
    pub async fn page(&mut self, since: Option<SourceTime>, limit: usize) -> Result<Page> {
        let shape = self.shape().await?;
        let sql = Dialect::Postgres.page(
            &shape.select,
            &self.target,
            &self.time_column,
            since,
            shape.guard.as_deref(),
            limit,
        )?;
        let rows = self
            .client
            .query_raw(&sql, std::iter::empty::<i32>())
            .await
            .with_context(|| format!("query {sql}"))?;
        futures::pin_mut!(rows);
        let (mut page, mut bytes) =
            (Page { columns: shape.names.clone(), rows: Vec::new() }, PageBytes::default());
        while let Some(row) = rows.try_next().await.with_context(|| format!("query {sql}"))? {
            let t = shape.time;
            let time = match shape.time_type {
                TimeType::Zoned => row.try_get::<_, chrono::DateTime<chrono::Utc>>(t).map(SourceTime::utc),
                TimeType::Naive => row.try_get::<_, chrono::NaiveDateTime>(t).map(SourceTime::naive),
                TimeType::Date => row
                    .try_get::<_, chrono::NaiveDate>(t)
                    .map(|d| SourceTime::naive(d.and_time(chrono::NaiveTime::MIN))),
                TimeType::Int2 => row.try_get::<_, i16>(t).map(|v| SourceTime::Number(v.into())),
                TimeType::Int4 => row.try_get::<_, i32>(t).map(|v| SourceTime::Number(v.into())),
                TimeType::Int8 => row.try_get::<_, i64>(t).map(SourceTime::Number),
            }
            .context("reading the time column")?;
            let mut cells = Vec::with_capacity(shape.names.len());
            for i in 0..shape.names.len() {
                cells.push(if i == t {
                    Some(time.cell())
                } else {
                    row.try_get::<_, Option<String>>(i)
                        .with_context(|| format!("column {}", shape.names[i]))?
                });
            }
            bytes.add(&cells)?;
            page.rows.push(PageRow { time, cells });
        }
        Ok(page)
    }

    /// Rows whose time is NULL or infinite (never pulled: they cannot be placed in time).
    pub async fn without_time(&mut self) -> Result<u64> {
        let shape = self.shape().await?;
        let sql = Dialect::Postgres.without_time(&self.target, &self.time_column, shape.guard.as_deref())?;
        let row = self.client.query_one(&sql, &[]).await.with_context(|| format!("query {sql}"))?;
        Ok(u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0))
    }
}
