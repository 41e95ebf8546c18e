//! The data lake on disk: its layout (datasets partitioned by machine and UTC date, part file
//! names, the quarantine and the ingest's own state folder) and reading a dataset back.
//!
//! ```text
//! lake/{dataset}/machine={machine_id}/date={YYYY-MM-DD}/part-{site}~{edge_id}~{epoch}-{first}-{last}-{nanos}.parquet
//! lake/quarantine/date={YYYY-MM-DD}/{nanos}-{n}.json
//! lake/_ingest/state.json
//! lake/_pull/{source}.json
//! ```
//!
//! Partition values are escaped like Hive does (`%XX` for anything outside `[A-Za-z0-9_.-]`),
//! so an identifier from the wire can never leave its folder, and bounded: a name whose
//! escape is too long (a long Korean machine name triples twice) keeps a readable prefix and
//! ends in a hash of the whole, so every folder and file name stays far below the 255-byte
//! limit of common file systems. The true values live in the columns; folder names only
//! serve pruning and people browsing the tree.

pub mod cache;
pub mod cli;
pub mod columns;
pub mod compact;
pub mod decisions;
pub mod dropped;
pub mod quarantine;
pub mod summary;
pub mod verdicts;
pub mod write;

pub use summary::{LakeSummary, summary};

use anyhow::{Context, Result};
use moldops_shared::RecordKind;
use polars::prelude::{
    DataFrame, HiveOptions, LazyFrame, ParquetReader, PlRefPath, PlSmallStr, ScanArgsParquet, SerReader,
    SortMultipleOptions,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One edge buffer's sequence of records: the dedup key is `(stream, seq)`. An edge that
/// loses its buffer starts a new epoch, hence a new stream counting from 0 again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StreamId {
    /// Site of the edge.
    pub site: String,
    /// The edge's id (`import:{sha256 prefix}` for an imported file).
    pub edge_id: String,
    /// Empty for edges from before epochs (and for imported files).
    #[serde(default)]
    pub epoch: String,
}

impl StreamId {
    /// The stream a batch belongs to.
    pub fn of(batch: &moldops_shared::Batch) -> StreamId {
        StreamId { site: batch.site.clone(), edge_id: batch.edge_id.clone(), epoch: batch.epoch.clone() }
    }

    /// A stream from its parts (`epoch` empty for edges from before epochs).
    pub fn new(site: &str, edge_id: &str, epoch: &str) -> StreamId {
        StreamId { site: site.into(), edge_id: edge_id.into(), epoch: epoch.into() }
    }
}

/// The shots' dataset.
pub const RAW_DATA: &str = RecordKind::Shot.dataset();
/// The peripherals' readings' dataset.
pub const PERIPHERAL_DATA: &str = RecordKind::Peripheral.dataset();

/// Every dataset the ingest writes, one per record kind. (Others written by the cloud's own
/// stages — `labels`, `lot_labels`, `etl_data`, `aug_data`, `scores`, `operator_labels`,
/// `drift_events` — are named by the module that writes them.)
pub const DATASETS: [&str; 7] = [
    RAW_DATA,
    PERIPHERAL_DATA,
    RecordKind::Gap.dataset(),
    RecordKind::Score.dataset(),
    RecordKind::Status.dataset(),
    RecordKind::Decision.dataset(),
    RecordKind::Drift.dataset(),
];

/// Folder of the quarantine, relative to the lake.
pub const QUARANTINE_DIR: &str = "quarantine";

/// Folder of the ingest's own state, relative to the lake.
pub const INGEST_DIR: &str = "_ingest";

/// Columns every part file has, in this order; value columns follow, sorted by name. Files
/// written before buffer epochs lack `epoch` (read back as null).
pub const FIXED_COLUMNS: [&str; 10] = [
    "edge_id",
    "seq",
    "site",
    "machine_id",
    "device_id",
    "ts",
    "shot_number",
    "mold",
    "out_of_range",
    "epoch",
];

/// Columns of the model stamp ([`moldops_shared::score::ModelStamp`]), written after the fixed
/// columns in part files whose records carry one (`edge_scores`): the model key, registry id
/// and version, and the sha256 of the bundle that judged the record.
pub const MODEL_COLUMNS: [&str; 4] = ["model_key", "model_id", "model_version", "bundle_sha256"];

/// Whether `name` is a column the lake itself defines (fixed or model stamp), not a value:
/// a record's value may not take such a name.
pub fn is_lake_column(name: &str) -> bool {
    FIXED_COLUMNS.contains(&name) || MODEL_COLUMNS.contains(&name)
}

/// Longest escaped partition value (a folder name is `machine=` and this).
pub const MAX_ESCAPED: usize = 120;
/// Longest escaped site or edge id inside a part file name.
const MAX_ESCAPED_IN_NAME: usize = 48;

/// Escapes one partition value (or file name component) so that it is a safe single path
/// segment of at most [`MAX_ESCAPED`] bytes: `[A-Za-z0-9_-]` and non-leading `.` stay, every
/// other byte becomes `%XX`; a longer result is cut and ends in `~` and 16 hex digits of the
/// value's sha256, so distinct values stay distinct.
pub fn escape(value: &str) -> String {
    escape_within(value, MAX_ESCAPED)
}

fn escape_within(value: &str, max: usize) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, b) in value.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        return "%00".to_string();
    }
    if out.len() <= max {
        return out;
    }
    let hash = moldops_shared::bundle::sha256_hex(value.as_bytes());
    let mut cut = max - 17;
    // Never split a `%XX`.
    while out.as_bytes()[..cut].iter().rev().take(2).any(|&b| b == b'%') {
        cut -= 1;
    }
    format!("{}~{}", &out[..cut], &hash[..16])
}

/// `YYYY-MM-DD` of a day number (days since the Unix epoch, UTC).
pub fn day_string(day: i64) -> String {
    chrono::DateTime::from_timestamp(day.saturating_mul(86_400), 0)
        .map(|d| d.date_naive().to_string())
        .unwrap_or_else(|| format!("day{day}"))
}

/// Key of a dataset's machine partitions: folders `machine={escaped machine id}`.
pub const MACHINE_KEY: &str = "machine=";
/// Key of the date partitions (under a machine, and of the quarantine): `date=YYYY-MM-DD`.
pub const DATE_KEY: &str = "date=";

/// The folder name of a machine's partition: `machine={escaped id}`.
pub fn machine_folder(machine_id: &str) -> String {
    format!("{MACHINE_KEY}{}", escape(machine_id))
}

/// The folder name of a date's partition: `date={YYYY-MM-DD}`.
pub fn date_folder(date: &str) -> String {
    format!("{DATE_KEY}{date}")
}

/// The folder name of a day's partition (days since the Unix epoch, UTC).
pub fn day_folder(day: i64) -> String {
    date_folder(&day_string(day))
}

/// The value of a partition folder (`date=2026-01-05` → `2026-01-05` for [`DATE_KEY`]);
/// `None` for a folder of another key.
pub fn folder_value<'a>(folder: &'a str, key: &str) -> Option<&'a str> {
    folder.strip_prefix(key)
}

/// Folder of one partition: `lake/{dataset}/machine={machine}/date={date}`.
pub fn partition_dir(lake: &Path, dataset: &str, machine_id: &str, date: &str) -> PathBuf {
    machine_dir(lake, dataset, machine_id).join(date_folder(date))
}

/// Folder of one machine's partitions of a dataset: `lake/{dataset}/machine={machine}`.
pub fn machine_dir(lake: &Path, dataset: &str, machine_id: &str) -> PathBuf {
    lake.join(dataset).join(machine_folder(machine_id))
}

/// The machine partition folders of a dataset, sorted; none when the dataset has no folder.
pub fn machine_dirs(lake: &Path, dataset: &str) -> Result<Vec<PathBuf>> {
    subdirs(&lake.join(dataset), MACHINE_KEY)
}

/// The date partition folders in `dir` (a machine's partition, or the quarantine), sorted.
pub fn date_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    subdirs(dir, DATE_KEY)
}

/// Name of a part file of one stream. `nanos` is unique per file and increasing across
/// commits; the ingest state remembers the highest one it has recorded (see [`part_nanos`]).
/// At most about 200 bytes, whatever the identifiers.
pub fn part_file_name(stream: &StreamId, first_seq: u64, last_seq: u64, nanos: u64) -> String {
    let (site, edge) = (
        escape_within(&stream.site, MAX_ESCAPED_IN_NAME),
        escape_within(&stream.edge_id, MAX_ESCAPED_IN_NAME),
    );
    let epoch = if stream.epoch.is_empty() { "0" } else { stream.epoch.as_str() };
    format!("part-{site}~{edge}~{}-{first_seq}-{last_seq}-{nanos:020}.parquet", escape_within(epoch, 32))
}

/// Name of a part file of imported data (labels): `source` names the import, not a stream.
pub fn source_part_name(source: &str, first_seq: u64, last_seq: u64, nanos: u64) -> String {
    format!("part-{}-{first_seq}-{last_seq}-{nanos:020}.parquet", escape_within(source, MAX_ESCAPED_IN_NAME))
}

/// The `nanos` of a part file name, `None` when the name does not follow [`part_file_name`].
pub fn part_nanos(file_name: &str) -> Option<u64> {
    let stem = file_name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    stem.rsplit('-').next()?.parse().ok()
}

/// Every committed part file of a dataset, sorted by path. A missing dataset has none.
pub fn list_parts(lake: &Path, dataset: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for machine in machine_dirs(lake, dataset)? {
        parts_of_machine(&machine, &mut out)?;
    }
    out.sort();
    Ok(out)
}

/// The committed part files of one machine in a dataset, sorted by path; none when the
/// machine has no folder there.
pub fn list_machine_parts(lake: &Path, dataset: &str, machine_id: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    parts_of_machine(&machine_dir(lake, dataset, machine_id), &mut out)?;
    out.sort();
    Ok(out)
}

/// Adds the part files under one `machine=` folder (every `date=` in it) to `out`.
fn parts_of_machine(machine: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for date in date_dirs(machine)? {
        for entry in read_dir(&date)? {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("part-") && name.ends_with(".parquet") && path.is_file() {
                out.push(path);
            }
        }
    }
    Ok(())
}

/// Sub-folders of `dir` whose names start with `prefix`; none when `dir` does not exist.
pub(crate) fn subdirs(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = read_dir(dir)?
        .into_iter()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    Ok(out)
}

/// Entries of a folder; none when it does not exist.
pub(crate) fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            rd.collect::<std::io::Result<Vec<_>>>().with_context(|| format!("listing {}", dir.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("listing {}", dir.display())),
    }
}

/// A lazy scan of one part file (no Hive columns: the partition values are real columns).
pub fn scan_part(path: &Path, include_path: Option<&str>) -> Result<LazyFrame> {
    let text = path.to_str().with_context(|| format!("path {} is not UTF-8", path.display()))?;
    let args = ScanArgsParquet {
        hive_options: HiveOptions::new_disabled(),
        glob: false,
        include_file_paths: include_path.map(PlSmallStr::from),
        ..Default::default()
    };
    LazyFrame::scan_parquet(PlRefPath::from(text), args)
        .with_context(|| format!("scanning {}", path.display()))
}

/// Reads part files into one frame (diagonal: the union of their columns, null where a file
/// lacks one) without the columns named in `skip`; `None` when there are none. Each file is
/// read eagerly: a lazy scan per file costs about 2.5 times as much per small file, and a lake
/// has many. A process that enabled the [`cache`] reads each file once while it is unchanged.
pub fn read_parts(files: &[PathBuf], skip: &[&str]) -> Result<Option<DataFrame>> {
    if files.is_empty() {
        return Ok(None);
    }
    let frames = files
        .iter()
        .map(|f| cache::read_through(f, skip, || read_part(f, skip)))
        .collect::<Result<Vec<_>>>()?;
    let df = polars::functions::concat_df_diagonal(&frames)
        .map_err(anyhow::Error::from)
        .context("combining part files")?;
    Ok(Some(df))
}

/// One part file without the columns named in `skip`.
fn read_part(path: &Path, skip: &[&str]) -> Result<DataFrame> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = ParquetReader::new(file);
    let schema = reader
        .schema()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("reading the schema of {}", path.display()))?;
    let columns: Vec<String> =
        schema.iter_names().filter(|n| !skip.contains(&n.as_str())).map(|n| n.to_string()).collect();
    reader
        .with_columns(Some(columns))
        .finish()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("reading {}", path.display()))
}

/// Whether `e` says a file vanished between listing and reading it — a compaction (or a
/// dataset rewrite) replaced it: reading again from a fresh listing finds its rows elsewhere.
pub fn vanished(e: &anyhow::Error) -> bool {
    /// Polars' I/O error, also when the query engine wrapped it in context.
    fn polars_kind(e: &polars::error::PolarsError) -> Option<std::io::ErrorKind> {
        match e {
            polars::error::PolarsError::IO { error, .. } => Some(error.kind()),
            polars::error::PolarsError::Context { error, .. } => polars_kind(error),
            _ => None,
        }
    }
    e.chain().any(|cause| {
        let io = cause.downcast_ref::<std::io::Error>().map(std::io::Error::kind);
        let polars = cause.downcast_ref::<polars::error::PolarsError>().and_then(polars_kind);
        io.or(polars) == Some(std::io::ErrorKind::NotFound)
    })
}

/// Most reads of the lake [`retry_vanished`] makes.
pub const READ_TRIES: u32 = 6;

/// Runs a read of the lake again (from a fresh listing, up to [`READ_TRIES`] in all, 50 ms
/// then twice as long each time) while a file it listed vanished under it: readers never lock
/// the lake, and `lake compact` may rewrite one partition after another meanwhile.
pub fn retry_vanished<T>(mut read: impl FnMut() -> Result<T>) -> Result<T> {
    let mut tries = 1;
    loop {
        match read() {
            Err(e) if tries < READ_TRIES && vanished(&e) => {
                tracing::debug!(
                    error = format!("{e:#}"),
                    "a lake file vanished while reading; reading again"
                );
                std::thread::sleep(std::time::Duration::from_millis(50 << (tries - 1)));
                tries += 1;
            }
            done => return done,
        }
    }
}

/// Reads every partition of a dataset into one frame: the fixed columns, then the union of
/// value columns sorted by name (null where a file lacks one), rows sorted by machine, time,
/// edge and seq. An empty frame when nothing has arrived.
pub fn read_dataset(lake: &Path, dataset: &str) -> Result<DataFrame> {
    retry_vanished(|| read_dataset_once(lake, dataset))
}

fn read_dataset_once(lake: &Path, dataset: &str) -> Result<DataFrame> {
    let Some(df) = read_parts(&list_parts(lake, dataset)?, &[])
        .with_context(|| format!("reading dataset {dataset} in {}", lake.display()))?
    else {
        return Ok(DataFrame::empty());
    };
    let df = in_lake_order(df)?;
    let sort = SortMultipleOptions::default().with_maintain_order(true);
    Ok(df.sort(["machine_id", "ts", "edge_id", "seq"], sort)?)
}

/// The columns of a part file frame in the lake's order: the fixed columns, the model stamp's
/// (when present), then the value columns sorted by name.
pub(crate) fn in_lake_order(mut df: DataFrame) -> Result<DataFrame> {
    if df.column("epoch").is_err() {
        let n = df.height();
        df.with_column(polars::prelude::Column::full_null(
            "epoch".into(),
            n,
            &polars::prelude::DataType::String,
        ))?;
    }
    let names: Vec<&str> = df.get_column_names().into_iter().map(|c| c.as_str()).collect();
    let stamp = MODEL_COLUMNS.iter().copied().filter(|c| names.contains(c));
    let mut values: Vec<&str> = names.iter().copied().filter(|c| !is_lake_column(c)).collect();
    values.sort_unstable();
    let order: Vec<PlSmallStr> =
        FIXED_COLUMNS.iter().copied().chain(stamp).chain(values).map(PlSmallStr::from).collect();
    Ok(df.select(order)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_is_tried_again_when_a_listed_file_vanished_and_only_then() {
        let gone = || {
            anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::NotFound)).context("reading a part")
        };
        let mut calls = 0;
        let read = retry_vanished(|| {
            calls += 1;
            if calls < 3 { Err(gone()) } else { Ok(calls) }
        });
        assert_eq!(read.expect("third time"), 3);
        let mut calls = 0;
        let always = retry_vanished(|| -> Result<()> {
            calls += 1;
            Err(gone())
        });
        assert!(always.is_err() && calls == READ_TRIES, "at most {READ_TRIES} tries");
        let mut calls = 0;
        let other = retry_vanished(|| -> Result<()> {
            calls += 1;
            Err(anyhow::anyhow!("corrupt part file"))
        });
        assert!(other.is_err() && calls == 1, "other errors are not retried");
        let polars = polars::error::PolarsError::from(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(
            vanished(&anyhow::Error::from(polars.wrap_msg(|m| format!("{m} (in a query)")))),
            "also wrapped"
        );
    }

    #[test]
    fn escaping_keeps_segments_safe() {
        assert_eq!(escape("M-01_a.b"), "M-01_a.b");
        assert_eq!(escape("../x"), "%2E.%2Fx");
        assert_eq!(escape("a b/c"), "a%20b%2Fc");
        assert_eq!(escape(""), "%00");
        assert_eq!(escape(".."), "%2E.");
    }

    #[test]
    fn long_names_stay_short_and_distinct() {
        let a = "사출성형기".repeat(5) + "A";
        let b = "사출성형기".repeat(5) + "B";
        let (ea, eb) = (escape(&a), escape(&b));
        assert!(ea.len() <= MAX_ESCAPED && eb.len() <= MAX_ESCAPED, "{ea}");
        assert_ne!(ea, eb);
        assert!(ea.starts_with("%EC%82%AC"), "{ea}");
        assert!(!ea.contains('/') && ea.split('~').next().is_some_and(|p| !p.ends_with('%')));
        let stream = StreamId::new(&"가".repeat(42), &"e".repeat(128), "0123456789abcdef0123456789abcdef");
        let name = part_file_name(&stream, u64::MAX, u64::MAX, u64::MAX);
        assert!(name.len() < 255, "{} bytes: {name}", name.len());
        assert_eq!(part_nanos(&name), Some(u64::MAX));
    }

    #[test]
    fn part_names_round_trip() {
        let name =
            part_file_name(&StreamId::new("plant", "edge-1", "ab12"), 10, 20, 1_700_000_000_123_456_789);
        assert_eq!(name, "part-plant~edge-1~ab12-10-20-01700000000123456789.parquet");
        assert_eq!(part_nanos(&name), Some(1_700_000_000_123_456_789));
        assert_eq!(part_nanos("part-x.parquet"), None);
        assert_eq!(day_string(19_675), "2023-11-14");
    }
}
