//! Pages from InfluxDB over HTTP: 1.x with InfluxQL (`/query`, JSON, times in nanoseconds;
//! also 2.x's v1 compatibility API), 2.x with Flux (`/api/v2/query`, CSV) and 3.x with SQL
//! (`/api/v3/query_sql`, JSON lines). Either way a page
//! is one measurement's points at or after the watermark, tags and fields as columns, in time
//! order, the time column named as the server names it (`time` in InfluxQL, `_time` in Flux —
//! as in the CSV exports of each, so one import profile reads both the export and the pull).

use super::config::{Source, SourceKind};
use super::page::{MAX_PAGE_BYTES, Page, PageRow, SourceTime};
use anyhow::{Context, Result, bail};

/// A connection to one InfluxDB.
pub struct Influx {
    http: reqwest::Client,
    base: url::Url,
    kind: SourceKind,
    database: String,
    org: String,
    measurement: String,
    user: String,
    secret: Option<String>,
}

impl Influx {
    /// Settings from the source (nothing is sent until the first page).
    pub fn new(source: &Source) -> Result<Influx> {
        moldops_common::mqtt::install_crypto_provider();
        let c = &source.config;
        let mut base = url::Url::parse(&c.url).context("url")?;
        let user = super::config::url_user(&base);
        base.set_username("").ok();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(300))
            .build()
            .context("the HTTP client")?;
        Ok(Influx {
            http,
            base,
            kind: c.kind,
            database: c.database.clone().unwrap_or_default(),
            org: c.org.clone().unwrap_or_default(),
            measurement: c.measurement.clone().unwrap_or_default(),
            user,
            secret: source.secret()?,
        })
    }

    /// Up to `limit` points at or after `since`, in time order.
    pub async fn page(&mut self, since: Option<SourceTime>, limit: usize) -> Result<Page> {
        let since_ns = match since {
            None => None,
            Some(SourceTime::Nanos(ns)) => Some(ns),
            Some(other) => bail!("an InfluxDB watermark is in nanoseconds, not {other:?}"),
        };
        match self.kind {
            SourceKind::Influxdb2 => self.page_flux(since_ns, limit).await,
            SourceKind::Influxdb3 => self.page_sql(since_ns, limit).await,
            _ => self.page_influxql(since_ns, limit).await,
        }
    }

    async fn page_influxql(&self, since_ns: Option<i64>, limit: usize) -> Result<Page> {
        let q = influxql(&self.measurement, since_ns, limit);
        let mut req = self.http.get(self.base.join("query")?).query(&[
            ("db", self.database.as_str()),
            ("q", q.as_str()),
            ("epoch", "ns"),
        ]);
        if !self.user.is_empty() {
            req = req.basic_auth(&self.user, self.secret.as_deref());
        }
        let body = read_body(req.send().await.with_context(|| format!("GET {}query", self.base))?).await?;
        parse_influxql(&body).with_context(|| format!("the answer to {q}"))
    }

    async fn page_flux(&self, since_ns: Option<i64>, limit: usize) -> Result<Page> {
        let flux = flux(&self.database, &self.measurement, since_ns, limit);
        let body = serde_json::json!({
            "query": flux,
            "type": "flux",
            "dialect": { "header": true, "annotations": [], "delimiter": "," }
        });
        let mut req = self
            .http
            .post(self.base.join("api/v2/query")?)
            .query(&[("org", self.org.as_str())])
            .header("Content-Type", "application/json")
            .header("Accept", "application/csv")
            .body(serde_json::to_vec(&body)?);
        if let Some(token) = &self.secret {
            req = req.header("Authorization", format!("Token {token}"));
        }
        let body =
            read_body(req.send().await.with_context(|| format!("POST {}api/v2/query", self.base))?).await?;
        parse_flux_csv(&body).context("the Flux answer")
    }
}

impl Influx {
    async fn page_sql(&self, since_ns: Option<i64>, limit: usize) -> Result<Page> {
        let q = influx_sql(&self.measurement, since_ns, limit);
        let body = serde_json::json!({ "db": self.database, "q": q, "format": "jsonl" });
        let mut req = self
            .http
            .post(self.base.join("api/v3/query_sql")?)
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(&body)?);
        if let Some(token) = &self.secret {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        let body =
            read_body(req.send().await.with_context(|| format!("POST {}api/v3/query_sql", self.base))?)
                .await?;
        parse_jsonl(&body).with_context(|| format!("the answer to {q}"))
    }
}

/// The SQL of a page for InfluxDB 3 (DataFusion): the measurement is a table, `time` a column.
pub fn influx_sql(measurement: &str, since_ns: Option<i64>, limit: usize) -> String {
    let bound = since_ns.map(|ns| format!(" WHERE time >= to_timestamp_nanos({ns})")).unwrap_or_default();
    format!("SELECT * FROM \"{}\"{bound} ORDER BY time LIMIT {limit}", measurement.replace('"', "\"\""))
}

/// The rows of a JSON-lines answer: one object per row, `time` as RFC 3339 or as a UTC time
/// without offset (`2024-05-01T00:00:00.5`); columns in the order first met, missing ones NULL.
pub fn parse_jsonl(body: &[u8]) -> Result<Page> {
    let mut columns: Vec<String> = vec!["time".into()];
    let mut rows = Vec::new();
    for (n, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(line).with_context(|| format!("line {} is not a JSON object", n + 1))?;
        if let Some(e) = object.get("error").and_then(|e| e.as_str()) {
            bail!("InfluxDB: {e}");
        }
        let text = object
            .get("time")
            .and_then(|t| t.as_str())
            .with_context(|| format!("line {}: no time", n + 1))?;
        let t = chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&chrono::Utc))
            .or_else(|_| {
                chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc())
            })
            .with_context(|| format!("line {}: time {text:?}", n + 1))?;
        let t = SourceTime::Nanos(t.timestamp_nanos_opt().context("a time outside 1677–2262")?);
        let mut cells = vec![None; columns.len()];
        cells[0] = Some(t.cell());
        for (name, value) in &object {
            if name == "time" {
                continue;
            }
            let i = columns.iter().position(|c| c == name).unwrap_or_else(|| {
                columns.push(name.clone());
                cells.push(None);
                columns.len() - 1
            });
            cells[i] = cell(value);
        }
        rows.push(PageRow { time: t, cells });
    }
    let width = columns.len();
    for r in &mut rows {
        r.cells.resize(width, None);
    }
    Ok(Page { columns, rows })
}

/// The body of a successful answer, bounded; an error answer becomes an error with its text.
async fn read_body(mut resp: reqwest::Response) -> Result<Vec<u8>> {
    let status = resp.status();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.context("reading the answer")? {
        if body.len() + chunk.len() > MAX_PAGE_BYTES {
            bail!("the answer is larger than {} MiB; lower batch_rows", MAX_PAGE_BYTES >> 20);
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(2000)]).into_owned();
        bail!("HTTP {status}: {}", text.trim());
    }
    Ok(body)
}

/// An InfluxQL identifier or Flux string body: backslash and the quote escaped (and, for Flux,
/// `$`, which would start an interpolation `${…}`).
fn escape(text: &str, quote: char) -> String {
    text.replace('\\', "\\\\").replace(quote, &format!("\\{quote}"))
}

/// A Flux string body.
fn flux_string(text: &str) -> String {
    escape(text, '"').replace('$', "\\$")
}

/// The InfluxQL of a page.
pub fn influxql(measurement: &str, since_ns: Option<i64>, limit: usize) -> String {
    let bound = since_ns.map(|ns| format!(" WHERE time >= {ns}")).unwrap_or_default();
    format!("SELECT * FROM \"{}\"{bound} ORDER BY time ASC LIMIT {limit}", escape(measurement, '"'))
}

/// The Flux of a page: fields pivoted into columns, one table, in time order.
pub fn flux(bucket: &str, measurement: &str, since_ns: Option<i64>, limit: usize) -> String {
    format!(
        "from(bucket: \"{}\")\n  |> range(start: time(v: {}))\n  |> filter(fn: (r) => r._measurement == \"{}\")\n  \
         |> pivot(rowKey: [\"_time\"], columnKey: [\"_field\"], valueColumn: \"_value\")\n  |> group()\n  \
         |> sort(columns: [\"_time\"])\n  |> limit(n: {limit})",
        flux_string(bucket),
        since_ns.unwrap_or(0),
        flux_string(measurement),
    )
}

/// A JSON value as a cell.
fn cell(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(b) => Some(u8::from(*b).to_string()),
        other => Some(other.to_string()),
    }
}

/// The rows of an InfluxQL answer (`epoch=ns`).
pub fn parse_influxql(body: &[u8]) -> Result<Page> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        results: Vec<Statement>,
        error: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Statement {
        #[serde(default)]
        series: Vec<Series>,
        error: Option<String>,
        /// Set when the server cut the answer short (its `max-row-limit`).
        #[serde(default)]
        partial: bool,
    }
    #[derive(serde::Deserialize)]
    struct Series {
        columns: Vec<String>,
        #[serde(default)]
        partial: bool,
        #[serde(default)]
        values: Vec<Vec<serde_json::Value>>,
    }
    let answer: Answer = serde_json::from_slice(body).context("not an InfluxDB JSON answer")?;
    if let Some(e) = answer.error.or_else(|| answer.results.iter().find_map(|r| r.error.clone())) {
        bail!("InfluxDB: {e}");
    }
    if answer.results.iter().any(|r| r.partial || r.series.iter().any(|s| s.partial)) {
        bail!("the server cut its answer short (its max-row-limit): set batch_rows at or below that limit");
    }
    let mut page = Page::default();
    for series in answer.results.into_iter().flat_map(|r| r.series) {
        let time = series.columns.iter().position(|c| c == "time").context("no time column")?;
        if page.columns.is_empty() {
            page.columns = series.columns.clone();
        } else if page.columns != series.columns {
            bail!("series with different columns in one answer");
        }
        for values in series.values {
            anyhow::ensure!(
                values.len() == series.columns.len(),
                "a point of {} values under {} columns",
                values.len(),
                series.columns.len()
            );
            let ns = values.get(time).and_then(|v| v.as_i64()).context("a point without a time in ns")?;
            let t = SourceTime::Nanos(ns);
            let cells =
                values.iter().enumerate().map(|(i, v)| if i == time { Some(t.cell()) } else { cell(v) });
            page.rows.push(PageRow { time: t, cells: cells.collect() });
        }
    }
    Ok(page)
}

/// Columns of Flux's CSV that are bookkeeping, not data.
const FLUX_META: [&str; 6] = ["", "result", "table", "_start", "_stop", "_measurement"];

/// True for a header line of Flux's CSV: `,result,table,…` (one per table whose columns differ).
fn is_flux_header(record: &csv::StringRecord) -> bool {
    record.get(1) == Some("result") && record.get(2) == Some("table")
}

/// The rows of a Flux CSV answer (header, no annotations; a table with other columns starts
/// with its own header line): `_time` first, then tags and fields in the order first met;
/// columns missing from a table are NULL. One CSV reader reads the whole answer, so a quoted
/// string field holding blank lines stays one cell.
pub fn parse_flux_csv(body: &[u8]) -> Result<Page> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(body);
    let mut columns: Vec<String> = vec!["_time".into()];
    let mut rows: Vec<PageRow> = Vec::new();
    // Where each cell of the current table goes (`None`: bookkeeping), and its time cell.
    let mut at: Vec<Option<usize>> = Vec::new();
    let mut time = None;
    let mut records = reader.records();
    while let Some(record) = records.next() {
        let record = record.context("the Flux answer is not CSV")?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.get(0) == Some("error") {
            let message = records.next().transpose()?.map(|r| r.iter().collect::<Vec<_>>().join(" "));
            bail!("InfluxDB: {}", message.unwrap_or_default());
        }
        if is_flux_header(&record) {
            time = record.iter().position(|h| h == "_time");
            at = record
                .iter()
                .map(|h| {
                    if FLUX_META.contains(&h) {
                        return None;
                    }
                    Some(columns.iter().position(|c| c == h).unwrap_or_else(|| {
                        columns.push(h.to_string());
                        columns.len() - 1
                    }))
                })
                .collect();
            continue;
        }
        let time = time.context("a Flux row before its header (or a table without _time)")?;
        anyhow::ensure!(
            record.len() == at.len(),
            "a Flux row of {} cells under {} columns",
            record.len(),
            at.len()
        );
        let t = chrono::DateTime::parse_from_rfc3339(record.get(time).unwrap_or_default())
            .with_context(|| format!("time {:?}", record.get(time)))?;
        let t = SourceTime::Nanos(t.timestamp_nanos_opt().context("a time outside 1677–2262")?);
        let mut cells: Vec<Option<String>> = vec![None; columns.len()];
        for (i, v) in at.iter().zip(record.iter()) {
            if let Some(i) = i
                && !v.is_empty()
            {
                cells[*i] = Some(v.to_string());
            }
        }
        cells[0] = Some(t.cell());
        rows.push(PageRow { time: t, cells });
    }
    let width = columns.len();
    for r in &mut rows {
        r.cells.resize(width, None);
    }
    Ok(Page { columns, rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pull::config::SourceConfig;

    #[test]
    fn queries_quote_names_and_bound_time() {
        assert_eq!(
            influxql("tcu \"a\"", Some(5), 100),
            "SELECT * FROM \"tcu \\\"a\\\"\" WHERE time >= 5 ORDER BY time ASC LIMIT 100"
        );
        let f = flux("plant", "t${x}\"", None, 10);
        assert!(f.contains("range(start: time(v: 0))") && f.contains("limit(n: 10)"), "{f}");
        assert!(f.contains(r#"r._measurement == "t\${x}\"""#), "{f}");
    }

    #[test]
    fn influxql_answers_become_pages_and_errors_errors() {
        let body = br#"{"results":[{"statement_id":0,"series":[{"name":"tcu","columns":["time","machine","temp"],"values":[[1714521600000000000,"M1",55.25],[1714521601000000000,"M1",null]]}]}]}"#;
        let p = parse_influxql(body).expect("page");
        assert_eq!(p.columns, ["time", "machine", "temp"]);
        assert_eq!(
            p.rows[0].cells,
            [Some("2024-05-01T00:00:00Z".into()), Some("M1".into()), Some("55.25".into())]
        );
        assert_eq!(p.rows[1].cells[2], None);
        let e = parse_influxql(br#"{"results":[{"statement_id":0,"error":"database not found: x"}]}"#);
        assert!(format!("{:#}", e.expect_err("error")).contains("database not found"));
        assert!(parse_influxql(b"<html>").is_err());
        let cut = br#"{"results":[{"statement_id":0,"series":[{"columns":["time"],"values":[[1]],"partial":true}]}]}"#;
        assert!(format!("{:#}", parse_influxql(cut).expect_err("partial")).contains("max-row-limit"));
        assert!(
            parse_influxql(br#"{"results":[{"series":[{"columns":["time"],"values":[["x"]]}]}]}"#).is_err()
        );
        let short = br#"{"results":[{"series":[{"columns":["time","a"],"values":[[1]]}]}]}"#;
        assert!(format!("{:#}", parse_influxql(short).expect_err("short")).contains("1 values under 2"));
    }

    #[test]
    fn sql_answers_in_json_lines_become_pages() {
        assert_eq!(
            influx_sql("tcu", Some(7), 5),
            "SELECT * FROM \"tcu\" WHERE time >= to_timestamp_nanos(7) ORDER BY time LIMIT 5"
        );
        let body = b"{\"machine\":\"M1\",\"temp\":55.5,\"time\":\"2024-05-01T00:00:00\"}\n\
                     {\"flow\":3,\"machine\":\"M2\",\"time\":\"2024-05-01T00:00:01.5Z\"}\n";
        let p = parse_jsonl(body).expect("page");
        assert_eq!(p.columns, ["time", "machine", "temp", "flow"]);
        assert_eq!(
            p.rows[0].cells,
            [Some("2024-05-01T00:00:00Z".into()), Some("M1".into()), Some("55.5".into()), None]
        );
        assert_eq!(p.rows[1].time, SourceTime::Nanos(1_714_521_601_500_000_000));
        assert_eq!(p.rows[1].cells[3].as_deref(), Some("3"));
        assert!(parse_jsonl(b"{\"machine\":\"M1\"}\n").is_err(), "a row without time");
        assert!(
            format!("{:#}", parse_jsonl(b"{\"error\":\"table not found\"}").expect_err("e"))
                .contains("not found")
        );
    }

    #[test]
    fn flux_csv_tables_merge_into_one_page() {
        let body = ",result,table,_start,_stop,_time,_measurement,machine,temp\r\n\
                    ,_result,0,1970-01-01T00:00:00Z,2030-01-01T00:00:00Z,2024-05-01T00:00:00Z,tcu,M1,55.5\r\n\
                    \r\n\
                    ,result,table,_start,_stop,_time,_measurement,machine,flow,temp,note\r\n\
                    ,_result,1,1970-01-01T00:00:00Z,2030-01-01T00:00:00Z,2024-05-01T00:00:01.5Z,tcu,M2,3,56,\"a\r\n\r\n,b\"\r\n";
        let p = parse_flux_csv(body.as_bytes()).expect("page");
        assert_eq!(p.columns, ["_time", "machine", "temp", "flow", "note"]);
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.rows[1].cells[4].as_deref(), Some("a\r\n\r\n,b"), "blank lines inside a quoted cell");
        assert_eq!(
            p.rows[0].cells,
            [Some("2024-05-01T00:00:00Z".into()), Some("M1".into()), Some("55.5".into()), None, None]
        );
        assert_eq!(p.rows[1].time, SourceTime::Nanos(1_714_521_601_500_000_000));
        assert_eq!(p.rows[1].cells[3].as_deref(), Some("3"));
        let e = parse_flux_csv(b"error,reference\r\nbucket \"x\" not found,\r\n").expect_err("error");
        assert!(format!("{e:#}").contains("not found"));
    }

    /// The 2.x client against an HTTP server playing InfluxDB: the request carries the token,
    /// the org and the Flux of the page; the CSV answer becomes the page.
    #[test]
    fn the_flux_and_sql_clients_send_token_org_and_query() {
        use axum::{Router, extract::Query, http::HeaderMap, routing::post};
        let rt = moldops_common::runtime::build().expect("runtime");
        rt.block_on(async {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String, String)>();
            let app = Router::new().route(
                "/api/v2/query",
                post(
                    move |Query(q): Query<std::collections::BTreeMap<String, String>>,
                          headers: HeaderMap,
                          body: String| {
                        let tx = tx.clone();
                        async move {
                            let auth =
                                headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
                            tx.send((q.get("org").cloned().unwrap_or_default(), auth.to_string(), body)).ok();
                            ",result,table,_time,machine,temp\r\n,_result,0,2024-05-01T00:00:00Z,M1,55\r\n"
                        }
                    },
                ),
            );
            let (tx3, mut rx3) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
            let app = app.route(
                "/api/v3/query_sql",
                post(move |headers: HeaderMap, body: String| {
                    let tx3 = tx3.clone();
                    async move {
                        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
                        tx3.send((auth.to_string(), body)).ok();
                        "{\"machine\":\"M1\",\"temp\":55,\"time\":\"2024-05-01T00:00:00\"}\n"
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let port = listener.local_addr().expect("addr").port();
            tokio::spawn(async move { axum::serve(listener, app).await });
            let profile =
                crate::import::ImportProfile::generic("time", "m1", crate::import::TableKind::Shots);
            let dir = tempfile::tempdir().expect("tempdir");
            let token = dir.path().join("token");
            std::fs::write(&token, "tok\n").expect("token");
            std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("chmod");
            let source = Source {
                config: toml::from_str(&format!(
                    "name = \"tcu\"\nkind = \"influxdb2\"\nurl = \"http://127.0.0.1:{port}\"\n\
                     database = \"plant\"\norg = \"acme\"\nmeasurement = \"tcu\"\nprofile = \"p.toml\"\n\
                     password_file = {:?}\n",
                    token.display().to_string()
                ))
                .expect("config"),
                profile,
            };
            let mut influx = Influx::new(&source).expect("client");
            let page = influx.page(Some(SourceTime::Nanos(42)), 7).await.expect("page");
            assert_eq!(page.rows.len(), 1);
            assert_eq!(page.columns, ["_time", "machine", "temp"]);
            let (org, auth, body) = rx.recv().await.expect("request");
            assert_eq!((org.as_str(), auth.as_str()), ("acme", "Token tok"));
            let body: serde_json::Value = serde_json::from_str(&body).expect("json body");
            let q = body["query"].as_str().expect("query");
            assert!(q.contains("time(v: 42)") && q.contains("limit(n: 7)") && q.contains("\"plant\""), "{q}");

            let v3 = Source {
                config: SourceConfig { kind: SourceKind::Influxdb3, ..source.config.clone() },
                profile: source.profile.clone(),
            };
            let page = Influx::new(&v3).expect("client").page(None, 3).await.expect("v3 page");
            assert_eq!((page.rows.len(), page.columns.len()), (1, 3));
            let (auth, body) = rx3.recv().await.expect("v3 request");
            assert_eq!(auth, "Bearer tok");
            let body: serde_json::Value = serde_json::from_str(&body).expect("json body");
            assert_eq!((body["db"].as_str(), body["format"].as_str()), (Some("plant"), Some("jsonl")));
            assert_eq!(body["q"], "SELECT * FROM \"tcu\" ORDER BY time LIMIT 3");
        });
    }
}
