//! The pull configuration (`pull.toml`): one `[[source]]` per table or measurement, with its
//! connection, what to read, the time column, the columns that identify a row, the import
//! profile its rows go through, the look-back window for late rows and where its credential is.
//!
//! ```toml
//! [[source]]
//! name = "mes-shots"                      # names the watermark, the lake stream, the quarantine
//! kind = "postgres"                       # postgres | mssql | influxdb1 | influxdb2 | influxdb3
//! url = "postgres://reader@mes-db:5432/mes"
//! password_env = "MES_DB_PASSWORD"        # or password_file (mode 0600/0640)
//! table = "public.shots"                  # or query = "SELECT … FROM …"
//! time_column = "ts"
//! key = ["machine", "shot_no"]            # identity of a row; default: every column
//! profile = "profiles/import-woojin.toml" # relative to this file
//! look_back_s = 7200                      # late rows up to 2 h behind the watermark are taken
//! ```

use super::sql::Dialect;
use crate::import::ImportProfile;
use anyhow::{Context, Result};
use moldops_common::config::{ConfigErrors, load_toml};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Rows one query asks for at most unless a source says otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 10_000;
/// The largest `batch_rows` accepted (one page is held in memory).
pub const MAX_BATCH_ROWS: usize = 500_000;

/// What a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// PostgreSQL (and servers speaking its protocol: TimescaleDB, CockroachDB, …).
    Postgres,
    /// Microsoft SQL Server / Azure SQL over TDS.
    Mssql,
    /// InfluxDB 1.x (InfluxQL over HTTP; also 2.x's v1 compatibility API).
    Influxdb1,
    /// InfluxDB 2.x (Flux over HTTP).
    Influxdb2,
    /// InfluxDB 3.x (SQL over HTTP, `/api/v3/query_sql`).
    Influxdb3,
}

impl SourceKind {
    /// The SQL dialect of a SQL source.
    pub fn dialect(self) -> Option<Dialect> {
        match self {
            SourceKind::Postgres => Some(Dialect::Postgres),
            SourceKind::Mssql => Some(Dialect::Mssql),
            SourceKind::Influxdb1 | SourceKind::Influxdb2 | SourceKind::Influxdb3 => None,
        }
    }
}

/// One source as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Names the source's watermark, its lake stream (`pull:{name}`) and its quarantine entries.
    pub name: String,
    /// The kind of server.
    pub kind: SourceKind,
    /// Where the server is: `postgres://user@host:port/db`, `sqlserver://user@host:port/db`,
    /// `http(s)://host:8086` for InfluxDB.
    pub url: String,
    /// Environment variable holding the password (InfluxDB 2 and 3: the token).
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password or token (checked like a key: not readable by others).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// SQL: the table (`table`, `schema.table` or `database.schema.table`).
    #[serde(default)]
    pub table: Option<String>,
    /// SQL: a query whose result is read instead of a table (the pull wraps it, adding its
    /// time bound, order and limit).
    #[serde(default)]
    pub query: Option<String>,
    /// InfluxDB 1 and 3: the database; InfluxDB 2: the bucket.
    #[serde(default)]
    pub database: Option<String>,
    /// InfluxDB 2: the organisation.
    #[serde(default)]
    pub org: Option<String>,
    /// InfluxDB: the measurement.
    #[serde(default)]
    pub measurement: Option<String>,
    /// The column whose order the pull follows (SQL; InfluxDB orders by its own time, named
    /// `time` in InfluxQL answers and `_time` in Flux ones).
    #[serde(default)]
    pub time_column: Option<String>,
    /// Columns identifying a row (with the time); default: every column. A row read again
    /// within the look-back window is recognised by them.
    #[serde(default)]
    pub key: Vec<String>,
    /// The import profile (machine mapping, value columns, time zone), relative to this file.
    pub profile: PathBuf,
    /// How far behind the newest time pulled a late row may arrive and still be taken.
    #[serde(default)]
    pub look_back_s: u64,
    /// Rows per query.
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// SQL servers: `required` (TLS with a verified certificate; the default), `trust` (TLS
    /// without checking the server certificate) or `off` (plain TCP, on a closed network).
    /// PostgreSQL without it follows the url's `sslmode` when the url gives one.
    #[serde(default)]
    pub tls: Option<String>,
}

fn default_batch_rows() -> usize {
    DEFAULT_BATCH_ROWS
}

#[cfg(test)]
impl SourceConfig {
    /// A source of `kind` at `url` reading table `t` in order of `ts`, for tests.
    pub(crate) fn for_test(kind: SourceKind, url: &str) -> SourceConfig {
        SourceConfig {
            name: "s".into(),
            kind,
            url: url.into(),
            password_env: None,
            password_file: None,
            table: Some("t".into()),
            query: None,
            database: None,
            org: None,
            measurement: None,
            time_column: Some("ts".into()),
            key: vec![],
            profile: "p.toml".into(),
            look_back_s: 0,
            batch_rows: DEFAULT_BATCH_ROWS,
            tls: None,
        }
    }
}

/// The file: its sources.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PullFile {
    #[serde(default)]
    source: Vec<SourceConfig>,
}

/// A source ready to pull: its settings and its profile.
#[derive(Debug, Clone)]
pub struct Source {
    /// The settings.
    pub config: SourceConfig,
    /// The import profile its rows go through.
    pub profile: ImportProfile,
}

impl Source {
    /// The lake stream (edge id) of this source's records.
    pub fn stream(&self) -> String {
        format!("pull:{}", self.config.name)
    }

    /// The time column: the configured one, else InfluxDB's (`time`; `_time` in Flux).
    pub fn time_column(&self) -> &str {
        match (&self.config.time_column, self.config.kind) {
            (Some(c), _) => c,
            (None, SourceKind::Influxdb2) => "_time",
            (None, _) => "time",
        }
    }

    /// The password or token: from `password_file`, else `password_env`, else none.
    pub fn secret(&self) -> Result<Option<String>> {
        if let Some(path) = &self.config.password_file {
            return Ok(Some(moldops_common::secret::read(path, "password_file")?));
        }
        match &self.config.password_env {
            Some(var) => std::env::var(var).map(Some).with_context(|| {
                format!("source {}: environment variable {var} is not set", self.config.name)
            }),
            None => Ok(None),
        }
    }
}

/// The user named in a url, percent-decoded (`sqlserver://plant%20reader@…` → `plant reader`;
/// a `+` stays a `+`).
pub fn url_user(url: &url::Url) -> String {
    percent_encoding::percent_decode_str(url.username()).decode_utf8_lossy().into_owned()
}

/// Reads `pull.toml`, its profiles, and checks everything, listing every problem at once.
pub fn load(path: &Path) -> Result<Vec<Source>> {
    load_at(path, path)
}

/// [`load`] for the local copy `path` of the file at `origin` (an `s3://` object): a relative
/// profile is read from beside the object in the bucket; a relative `password_file` is refused
/// (a password belongs in a mounted secret, not in a bucket).
pub fn load_at(path: &Path, origin: &Path) -> Result<Vec<Source>> {
    let file: PullFile = load_toml("pull config", path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let in_bucket = crate::storage::mirror::is_remote(origin);
    let mut problems = Vec::new();
    let mut sources = Vec::new();
    for (i, mut c) in file.source.into_iter().enumerate() {
        let at = format!("source {} ({:?})", i + 1, c.name);
        problems.extend(check(&c).into_iter().map(|p| format!("{at}: {p}")));
        if sources.iter().any(|s: &Source| s.config.name == c.name) {
            problems.push(format!("{at}: the name is used twice"));
        }
        for secret in c.password_file.iter_mut() {
            if in_bucket && secret.is_relative() {
                problems.push(format!(
                    "{at}: password_file {} is relative to a pull.toml in a bucket: give the absolute path of a mounted secret",
                    secret.display()
                ));
            }
            *secret = base.join(&*secret);
        }
        let profile = if in_bucket && c.profile.is_relative() {
            let url = beside(&origin.to_string_lossy(), &c.profile.to_string_lossy());
            crate::storage::object::local_file(Path::new(&url))
        } else {
            Ok(base.join(&c.profile))
        };
        match profile.and_then(|p| ImportProfile::load(&p)) {
            Ok(profile) => {
                let source = Source { config: c, profile };
                let time = source.time_column();
                if source.config.kind.dialect().is_none() && source.profile.time.column != time {
                    problems.push(format!(
                        "{at}: the profile's time column is {:?}; InfluxDB's answers call it {time:?}",
                        source.profile.time.column
                    ));
                }
                sources.push(source);
            }
            Err(e) => problems.push(format!("{at}: {e:#}")),
        }
    }
    if sources.is_empty() && problems.is_empty() {
        problems.push("no [[source]] in the file".into());
    }
    ConfigErrors::check(problems).with_context(|| format!("pull config {}", path.display()))?;
    Ok(sources)
}

/// Every problem of one source.
fn check(c: &SourceConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(why) = moldops_shared::limits::check_level("name", &c.name) {
        problems.push(why.to_string());
    }
    if c.name.contains(':') {
        problems.push("name: no `:` (it ends the stream id `pull:{name}`)".into());
    }
    match url::Url::parse(&c.url) {
        Err(e) => problems.push(format!("url {:?}: {e}", c.url)),
        Ok(u) => {
            let schemes: &[&str] = match c.kind {
                SourceKind::Postgres => &["postgres", "postgresql"],
                SourceKind::Mssql => &["sqlserver", "mssql"],
                SourceKind::Influxdb1 | SourceKind::Influxdb2 | SourceKind::Influxdb3 => &["http", "https"],
            };
            if !schemes.contains(&u.scheme()) {
                problems.push(format!("url: scheme {:?}, expected {}", u.scheme(), schemes.join(" or ")));
            }
            if u.password().is_some() {
                problems.push("url: no password in the url; use password_env or password_file".into());
            }
        }
    }
    if c.password_env.is_some() && c.password_file.is_some() {
        problems.push("give password_env or password_file, not both".into());
    }
    if !(1..=MAX_BATCH_ROWS).contains(&c.batch_rows) {
        problems.push(format!("batch_rows {}: give 1 to {MAX_BATCH_ROWS}", c.batch_rows));
    }
    let has = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.trim().is_empty());
    match c.kind {
        SourceKind::Postgres | SourceKind::Mssql => {
            if has(&c.table) == has(&c.query) {
                problems.push("give exactly one of `table` and `query`".into());
            }
            if !has(&c.time_column) {
                problems.push("time_column is required for a SQL source".into());
            }
            if let Some(q) = &c.query
                && q.contains(';')
            {
                problems.push("query: one SELECT without `;`".into());
            }
        }
        SourceKind::Influxdb1 | SourceKind::Influxdb2 | SourceKind::Influxdb3 => {
            if !has(&c.database) {
                problems.push("database is required (InfluxDB 1: the database; 2: the bucket)".into());
            }
            if !has(&c.measurement) {
                problems.push("measurement is required".into());
            }
            if c.kind == SourceKind::Influxdb2 && !has(&c.org) {
                problems.push("org is required for InfluxDB 2".into());
            }
            if c.time_column.is_some() {
                problems
                    .push("time_column: InfluxDB rows are ordered by their own time (leave it out)".into());
            }
        }
    }
    match c.tls.as_deref() {
        None | Some("required" | "off" | "trust") => {}
        Some(other) => problems.push(format!("tls {other:?}: give required, off or trust")),
    }
    if c.tls.is_some() && c.kind.dialect().is_none() {
        problems.push("tls applies to SQL sources (use an https url for InfluxDB)".into());
    }
    problems
}

/// The URL of `relative` (`/`-separated, `..` allowed) beside the object at `url`.
fn beside(url: &str, relative: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let mut parts: Vec<&str> = rest.split('/').collect();
    parts.pop();
    for segment in relative.split('/') {
        match segment {
            "" | "." => {}
            // Never above the bucket itself.
            ".." if parts.len() > 1 => {
                parts.pop();
            }
            ".." => {}
            s => parts.push(s),
        }
    }
    format!("{scheme}://{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_relative_profile_is_found_beside_the_object_never_above_the_bucket() {
        let at = "s3://plant/config/pull.toml";
        assert_eq!(super::beside(at, "../profiles/mes.toml"), "s3://plant/profiles/mes.toml");
        assert_eq!(super::beside(at, "./mes.toml"), "s3://plant/config/mes.toml");
        assert_eq!(super::beside(at, "../../../x.toml"), "s3://plant/x.toml");
    }

    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    const PROFILE: &str = "name = \"p\"\n[time]\ncolumn = \"ts\"\n[machine]\nid = \"m1\"\n";
    const INFLUX_PROFILE: &str = "name = \"i\"\n[time]\ncolumn = \"time\"\n[machine]\nid = \"m1\"\n";

    #[test]
    fn a_good_file_loads_with_profiles_relative_to_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "p.toml", PROFILE);
        write(dir.path(), "i.toml", INFLUX_PROFILE);
        let cfg = write(
            dir.path(),
            "pull.toml",
            "[[source]]\nname = \"shots\"\nkind = \"postgres\"\nurl = \"postgres://u@127.0.0.1:5432/db\"\n\
             table = \"public.shots\"\ntime_column = \"ts\"\nprofile = \"p.toml\"\nlook_back_s = 60\n\
             [[source]]\nname = \"tcu\"\nkind = \"influxdb1\"\nurl = \"http://127.0.0.1:8086\"\n\
             database = \"plant\"\nmeasurement = \"tcu\"\nprofile = \"i.toml\"\n",
        );
        let s = load(&cfg).expect("load");
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].stream(), s[0].time_column(), s[0].config.batch_rows),
            ("pull:shots".into(), "ts", 10_000)
        );
        assert_eq!(s[1].time_column(), "time");
    }

    #[test]
    fn every_problem_is_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "p.toml", PROFILE);
        let cfg = write(
            dir.path(),
            "pull.toml",
            "[[source]]\nname = \"a:b\"\nkind = \"postgres\"\nurl = \"http://u:secret@h/db\"\n\
             table = \"t\"\nquery = \"select 1; drop table t\"\nprofile = \"p.toml\"\nbatch_rows = 0\n\
             password_env = \"X\"\npassword_file = \"f\"\n\
             [[source]]\nname = \"i\"\nkind = \"influxdb2\"\nurl = \"http://h:8086\"\nprofile = \"missing.toml\"\ntls = \"off\"\n\
             [[source]]\nname = \"j\"\nkind = \"influxdb1\"\nurl = \"http://h:8086\"\nprofile = \"p.toml\"\n\
             database = \"d\"\nmeasurement = \"m\"\n",
        );
        let e = format!("{:#}", load(&cfg).expect_err("invalid"));
        for needle in [
            "no `:`",
            "scheme \"http\"",
            "no password in the url",
            "not both",
            "batch_rows 0",
            "exactly one of `table` and `query`",
            "time_column is required",
            "without `;`",
            "database is required",
            "measurement is required",
            "org is required",
            "tls applies to SQL sources",
            "missing.toml",
            "InfluxDB's answers call it \"time\"",
        ] {
            assert!(e.contains(needle), "{needle} missing in: {e}");
        }
    }
    #[test]
    fn the_shipped_example_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/pull/pull.example.toml");
        let sources = load(&path).expect("deploy/pull/pull.example.toml");
        let kinds: Vec<SourceKind> = sources.iter().map(|s| s.config.kind).collect();
        assert_eq!(
            kinds,
            [SourceKind::Mssql, SourceKind::Postgres, SourceKind::Influxdb1, SourceKind::Influxdb2]
        );
    }
}
