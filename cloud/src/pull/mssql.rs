//! Pages from Microsoft SQL Server / Azure SQL (`tiberius`, TDS 7.3+): SQL Server
//! authentication, TLS as configured (`required` by default; the system's OpenSSL through
//! `native-tls`), the time column read typed
//! (`datetime`, `datetime2`, `smalldatetime`, `date`, `datetimeoffset` or an integer) and every
//! other column rendered as text (numbers exactly as the server sent them, binary as hex).

use super::config::Source;
use super::page::{Page, PageBytes, PageRow, SourceTime};
use super::sql::{Dialect, Target};
use anyhow::{Context, Result, bail};
use futures::TryStreamExt;
use tiberius::{AuthMethod, Client, ColumnData, Config, EncryptionLevel, FromSql};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

/// A connection to one source's server.
pub struct Mssql {
    client: Client<Compat<TcpStream>>,
    target: Target,
    time_column: String,
}

/// The driver's settings for a source: host, port, database and user from the url
/// (`sqlserver://user@host:1433/database`), the password from the source's secret.
pub fn config(source: &Source) -> Result<Config> {
    let url = url::Url::parse(&source.config.url).context("url")?;
    let mut config = Config::new();
    config.host(url.host_str().context("url: no host")?);
    config.port(url.port().unwrap_or(1433));
    let database = url.path().trim_start_matches('/');
    if !database.is_empty() {
        config.database(database);
    }
    let user = super::config::url_user(&url);
    if user.is_empty() {
        bail!("url: give the user (sqlserver://user@host:1433/database)");
    }
    config.authentication(AuthMethod::sql_server(user, source.secret()?.unwrap_or_default()));
    config.application_name("moldops-pull");
    match source.config.tls.as_deref().unwrap_or("required") {
        "off" => config.encryption(EncryptionLevel::NotSupported),
        "trust" => {
            config.encryption(EncryptionLevel::Required);
            config.trust_cert();
        }
        _ => config.encryption(EncryptionLevel::Required),
    }
    Ok(config)
}

impl Mssql {
    /// Connects and logs in.
    pub async fn connect(source: &Source, target: Target) -> Result<Mssql> {
        let config = config(source)?;
        let tcp = TcpStream::connect(config.get_addr())
            .await
            .with_context(|| format!("connecting to {}", config.get_addr()))?;
        tcp.set_nodelay(true)?;
        let client = Client::connect(config, tcp.compat_write())
            .await
            .with_context(|| format!("logging in to {}", source.config.url))?;
        Ok(Mssql { client, target, time_column: source.time_column().to_string() })
    }

    /// Up to `limit` rows at or after `since`, in time order.
    pub async fn page(&mut self, since: Option<SourceTime>, limit: usize) -> Result<Page> {
        let sql = Dialect::Mssql.page("*", &self.target, &self.time_column, since, None, limit)?;
        let mut rows = self
            .client
            .simple_query(sql.as_str())
            .await
            .with_context(|| format!("query {sql}"))?
            .into_row_stream();
        let (mut page, mut bytes, mut time_index) = (Page::default(), PageBytes::default(), 0);
        while let Some(row) = rows.try_next().await.with_context(|| format!("query {sql}"))? {
            if page.columns.is_empty() {
                page.columns = row.columns().iter().map(|c| c.name().to_string()).collect();
                time_index = page
                    .columns
                    .iter()
                    .position(|n| *n == self.time_column)
                    .with_context(|| format!("no column {:?}", self.time_column))?;
            }
            let data: Vec<ColumnData<'static>> = row.into_iter().collect();
            let time = time_of(data.get(time_index).context("a row shorter than its columns")?)?;
            let cells: Vec<Option<String>> = data
                .iter()
                .enumerate()
                .map(|(i, d)| if i == time_index { Some(time.cell()) } else { text_of(d) })
                .collect();
            bytes.add(&cells)?;
            page.rows.push(PageRow { time, cells });
        }
        Ok(page)
    }

    /// Rows whose time is NULL (never pulled).
    pub async fn without_time(&mut self) -> Result<u64> {
        let sql = Dialect::Mssql.without_time(&self.target, &self.time_column, None)?;
        let row =
            self.client.simple_query(sql.as_str()).await?.into_row().await?.context("no count returned")?;
        Ok(row.try_get::<i64, _>(0)?.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }
}

/// A time cell as the watermark holds it.
fn time_of(d: &ColumnData<'static>) -> Result<SourceTime> {
    let missing = || anyhow::anyhow!("a NULL time");
    Ok(match d {
        ColumnData::DateTimeOffset(_) => {
            SourceTime::utc(chrono::DateTime::<chrono::Utc>::from_sql(d)?.ok_or_else(missing)?)
        }
        ColumnData::DateTime(_) | ColumnData::DateTime2(_) | ColumnData::SmallDateTime(_) => {
            SourceTime::naive(chrono::NaiveDateTime::from_sql(d)?.ok_or_else(missing)?)
        }
        ColumnData::Date(_) => SourceTime::naive(
            chrono::NaiveDate::from_sql(d)?.ok_or_else(missing)?.and_time(chrono::NaiveTime::MIN),
        ),
        ColumnData::U8(v) => SourceTime::Number(v.ok_or_else(missing)?.into()),
        ColumnData::I16(v) => SourceTime::Number(v.ok_or_else(missing)?.into()),
        ColumnData::I32(v) => SourceTime::Number(v.ok_or_else(missing)?.into()),
        ColumnData::I64(v) => SourceTime::Number(v.ok_or_else(missing)?),
        other => bail!("time column of type {other:?}: give a date/time or integer column"),
    })
}

/// A cell as text, `None` for NULL.
fn text_of(d: &ColumnData<'static>) -> Option<String> {
    match d {
        ColumnData::U8(v) => v.map(|v| v.to_string()),
        ColumnData::I16(v) => v.map(|v| v.to_string()),
        ColumnData::I32(v) => v.map(|v| v.to_string()),
        ColumnData::I64(v) => v.map(|v| v.to_string()),
        ColumnData::F32(v) => v.map(|v| v.to_string()),
        ColumnData::F64(v) => v.map(|v| v.to_string()),
        ColumnData::Bit(v) => v.map(|v| u8::from(v).to_string()),
        ColumnData::String(v) => v.as_ref().map(|s| s.to_string()),
        ColumnData::Guid(v) => v.map(|v| v.to_string()),
        ColumnData::Numeric(v) => v.map(|v| v.to_string()),
        ColumnData::DateTime(_)
        | ColumnData::DateTime2(_)
        | ColumnData::SmallDateTime(_)
        | ColumnData::Date(_) => chrono::NaiveDateTime::from_sql(d)
            .ok()
            .flatten()
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.f").to_string()),
        ColumnData::DateTimeOffset(_) => {
            chrono::DateTime::<chrono::Utc>::from_sql(d).ok().flatten().map(|t| t.to_rfc3339())
        }
        ColumnData::Time(_) => chrono::NaiveTime::from_sql(d).ok().flatten().map(|t| t.to_string()),
        ColumnData::Binary(v) => v.as_ref().map(hex::encode),
        ColumnData::Xml(v) => v.as_ref().map(|x| x.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pull::config::{SourceConfig, SourceKind};

    fn source(url: &str, tls: Option<&str>) -> Source {
        let profile = crate::import::ImportProfile::generic("ts", "m1", crate::import::TableKind::Shots);
        let config = SourceConfig {
            table: Some("dbo.shots".into()),
            tls: tls.map(str::to_string),
            ..SourceConfig::for_test(SourceKind::Mssql, url)
        };
        Source { config, profile }
    }

    #[test]
    fn cells_render_as_text_and_times_typed() {
        assert_eq!(text_of(&ColumnData::F64(Some(0.1))), Some("0.1".into()));
        assert_eq!(text_of(&ColumnData::Bit(Some(true))), Some("1".into()));
        assert_eq!(text_of(&ColumnData::I32(None)), None);
        assert_eq!(
            time_of(&ColumnData::I64(Some(1_714_521_600))).expect("n"),
            SourceTime::Number(1_714_521_600)
        );
        assert!(time_of(&ColumnData::I64(None)).is_err());
        assert!(time_of(&ColumnData::F64(Some(1.0))).is_err());
    }

    #[test]
    fn the_url_gives_address_database_and_user() {
        let c =
            config(&source("sqlserver://plant%20reader@db.local:1444/mes", Some("trust"))).expect("config");
        assert_eq!(c.get_addr(), "db.local:1444");
        let url = url::Url::parse("sqlserver://a+b%40c@h/d").expect("url");
        assert_eq!(crate::pull::config::url_user(&url), "a+b@c");
        assert!(config(&source("sqlserver://db.local/mes", None)).is_err(), "a user is required");
    }

    /// The driver speaks TDS to the address the url names: its first packet is a PRELOGIN
    /// (type 0x12) asking for the encryption the source configures.
    #[test]
    fn the_driver_opens_with_a_tds_prelogin_to_the_configured_server() {
        let rt = moldops_common::runtime::build().expect("runtime");
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let server = tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut header = [0u8; 8];
                s.read_exact(&mut header).await.expect("header");
                let len = u16::from_be_bytes([header[2], header[3]]) as usize;
                let mut body = vec![0u8; len.saturating_sub(8)];
                s.read_exact(&mut body).await.expect("body");
                (header[0], body)
            });
            let src = source(&format!("sqlserver://reader@127.0.0.1:{port}/mes"), Some("off"));
            let connect =
                tokio::spawn(async move { Mssql::connect(&src, Target::Table("dbo.shots".into())).await });
            let (kind, body) = server.await.expect("server");
            assert_eq!(kind, 0x12, "PRELOGIN packet");
            // The option list: (token, offset u16, length u16)… ended by 0xFF; token 1 is ENCRYPTION.
            let mut i = 0;
            let mut encryption = None;
            while i + 5 <= body.len() && body[i] != 0xFF {
                let offset = u16::from_be_bytes([body[i + 1], body[i + 2]]) as usize;
                let len = u16::from_be_bytes([body[i + 3], body[i + 4]]);
                if body[i] == 1 && len >= 1 {
                    encryption = body.get(offset).copied();
                }
                i += 5;
            }
            assert_eq!(encryption, Some(2), "ENCRYPT_NOT_SUP for tls = \"off\"");
            let e = connect.await.expect("join").err().expect("the server hung up");
            assert!(format!("{e:#}").contains("logging in to"), "{e:#}");
        });
    }
}
