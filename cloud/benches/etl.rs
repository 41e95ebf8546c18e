//! ETL benchmark: generates a lake of `--shots` shots (default 1 000 000, over `--machines`
//! machines, one per minute) and ten peripheral readings per shot (three devices), runs
//! `moldops_cloud::etl::run` on it and the pandas implementation of the same merge
//! (`bench/etl_pandas.py`, Python from `MOLDOPS_BENCH_PYTHON`, else `python3`, with pandas and
//! pyarrow), checks that both wrote the same rows and values (`bench/etl_compare.py`), and
//! prints time, peak RSS and one `BENCH-RESULT` line per parallelism for `bench/run`.
//!
//! `cargo bench -p moldops-cloud --bench etl -- [--shots N] [--machines M] [--jobs 1,2] [--repeat R] [--no-pandas]`
//! (`--write-lake DIR`: only write the lake into DIR, e.g. for `bench/etl_s3.py`)
//!
//! For each `--jobs` value (default: 1 and the core count) both sides merge that many machines
//! at once (ours on threads, pandas in worker processes), `--repeat` times (default 3),
//! alternating, each from scratch on the same lake.

use anyhow::{Context, Result};
use moldops_cloud::etl::{self, EtlConfig};
use moldops_cloud::ingest::state::StreamId;
use moldops_cloud::lake::{self, write};
use polars::prelude::{Column, DataFrame, Int64Chunked, IntoColumn, NewChunkedArray, TimeUnit, TimeZone};
use std::path::Path;
use std::time::Instant;

const DAY0: i64 = 1_714_521_600_000;
const DAY: i64 = 86_400_000;
const CYCLE: i64 = 60_000;
/// Peripheral reading interval: 10 readings per cycle over three devices.
const READ_EVERY: i64 = 18_000;
const DEVICES: [(&str, &[&str]); 3] = [
    ("tcu", &["flow", "return_temperature", "supply_temperature"]),
    ("dryer", &["dew_point", "hopper_temperature"]),
    ("scale", &["part_weight"]),
];
const SHOT_VALUES: [&str; 8] = [
    "Cushion_Position",
    "Cycle_Time",
    "Filling_Time",
    "Injection_Time",
    "Max_Injection_Pressure",
    "Plasticizing_Time",
    "Switch_Over_Position",
    "Barrel_Temperature_1",
];

fn arg_text(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn arg(name: &str, default: usize) -> usize {
    arg_text(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn python() -> String {
    std::env::var("MOLDOPS_BENCH_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench").join(name)
}

/// A deterministic wobble in [-1, 1].
fn wobble(i: i64, k: usize) -> f64 {
    ((i as f64) * 0.37 + k as f64 * 1.3).sin()
}

fn frame(machine: &str, device: Option<(&str, &[&str])>, ts: &[i64], first_seq: u64) -> Result<DataFrame> {
    let n = ts.len();
    let device_id = device.map_or(machine.to_string(), |(d, _)| format!("{machine}-{d}"));
    let mut cols = vec![
        Column::new("edge_id".into(), vec!["bench"; n]),
        Column::new("seq".into(), (first_seq..first_seq + n as u64).collect::<Vec<_>>()),
        Column::new("site".into(), vec!["s"; n]),
        Column::new("machine_id".into(), vec![machine; n]),
        Column::new("device_id".into(), vec![device_id.as_str(); n]),
        Int64Chunked::from_iter_values("ts".into(), ts.iter().copied())
            .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
            .into_column(),
    ];
    match device {
        None => {
            let shot: Vec<Option<u64>> = ts.iter().map(|t| Some((t / CYCLE) as u64)).collect();
            cols.push(Column::new("shot_number".into(), shot));
            let mold: Vec<Option<&str>> =
                ts.iter().map(|t| Some(if (t / DAY) % 7 == 0 { "B" } else { "A" })).collect();
            cols.push(Column::new("mold".into(), mold));
            cols.push(Column::new("out_of_range".into(), vec![None::<&str>; n]));
            let mut names = SHOT_VALUES.to_vec();
            names.sort_unstable();
            for (k, name) in names.iter().enumerate() {
                let v: Vec<f64> = ts
                    .iter()
                    .map(|t| {
                        let i = t / CYCLE;
                        match i % 1000 {
                            0 => 0.0,
                            500 if k == 0 => 4.294967e8,
                            _ => 50.0 + 10.0 * wobble(i, k),
                        }
                    })
                    .collect();
                cols.push(Column::new((*name).into(), v));
            }
        }
        Some((_, values)) => {
            cols.push(Column::new("shot_number".into(), vec![None::<u64>; n]));
            cols.push(Column::new("mold".into(), vec![None::<&str>; n]));
            cols.push(Column::new("out_of_range".into(), vec![None::<&str>; n]));
            for (k, name) in values.iter().enumerate() {
                let v: Vec<f64> = ts.iter().map(|t| 20.0 + wobble(t / READ_EVERY, k)).collect();
                cols.push(Column::new((*name).into(), v));
            }
        }
    }
    Ok(DataFrame::new(n, cols)?)
}

/// Writes one machine's shots and readings, one part file per dataset, date (and device).
fn generate(lake_dir: &Path, machine: &str, shots: usize) -> Result<u64> {
    let end = DAY0 + shots as i64 * CYCLE;
    let mut readings = 0u64;
    let mut day = DAY0;
    while day < end {
        let next = (day + DAY).min(end);
        let date = lake::day_string(day / DAY);
        let shot_ts: Vec<i64> = (day..next).step_by(CYCLE as usize).collect();
        let dir = lake::partition_dir(lake_dir, "raw_data", machine, &date);
        std::fs::create_dir_all(&dir)?;
        let seq = ((day - DAY0) / CYCLE) as u64 + 1;
        write::write_parquet(
            &dir,
            &lake::part_file_name(&StreamId::new("bench", "bench", ""), seq, seq, 1),
            &mut frame(machine, None, &shot_ts, seq)?,
        )?;
        let dir = lake::partition_dir(lake_dir, "peripheral_data", machine, &date);
        std::fs::create_dir_all(&dir)?;
        for (d, (name, values)) in DEVICES.iter().enumerate() {
            let ts: Vec<i64> = (day + 1_000 * d as i64..next).step_by(READ_EVERY as usize).collect();
            readings += ts.len() as u64;
            let mut df = frame(machine, Some((name, values)), &ts, seq)?;
            write::write_parquet(
                &dir,
                &lake::part_file_name(&StreamId::new("bench", &format!("bench-{name}"), ""), seq, seq, 1),
                &mut df,
            )?;
        }
        day = next;
    }
    Ok(readings)
}

/// Peak resident set of this process (KiB), reset by [`reset_peak`].
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() -> Result<()> {
    let shots = arg("--shots", 1_000_000);
    let machines = arg("--machines", 20).max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs: Vec<usize> = match arg_text("--jobs") {
        Some(list) => {
            list.split(',').map(|j| j.trim().parse()).collect::<Result<_, _>>().context("--jobs")?
        }
        None if cores > 1 => vec![1, cores],
        None => vec![1],
    };
    let dir = tempfile::tempdir()?;
    let write_only = arg_text("--write-lake").map(std::path::PathBuf::from);
    let lake_dir = write_only.clone().unwrap_or_else(|| dir.path().join("lake"));
    let t = Instant::now();
    let mut readings = 0;
    for m in 0..machines {
        readings += generate(&lake_dir, &format!("M{m:02}"), shots / machines)?;
    }
    let shots = shots / machines * machines;
    println!(
        "generated {shots} shots + {readings} peripheral readings in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    if write_only.is_some() {
        return Ok(());
    }
    let pandas = !std::env::args().any(|a| a == "--no-pandas");
    let repeat = arg("--repeat", 3).max(1);
    for jobs in jobs {
        compare_at(&lake_dir, dir.path(), jobs, repeat, pandas, shots, readings)?;
    }
    Ok(())
}

/// Both sides at `jobs` machines at once, `repeat` rounds alternating; the outputs of the last
/// round compared before the result is printed.
fn compare_at(
    lake_dir: &Path,
    dir: &Path,
    jobs: usize,
    repeat: usize,
    pandas: bool,
    shots: usize,
    readings: u64,
) -> Result<()> {
    let cfg = EtlConfig { jobs, ..EtlConfig::default() };
    let pandas_out = dir.join("pandas_out");
    let (mut rust_s, mut pandas_s) = (Vec::new(), Vec::new());
    let mut pandas_version = String::new();
    for round in 1..=repeat {
        // Each round from scratch: no earlier output, no ETL state.
        for d in ["etl_data", "_etl"] {
            let _ = std::fs::remove_dir_all(lake_dir.join(d));
        }
        let _ = std::fs::remove_dir_all(&pandas_out);
        reset_peak();
        let t = Instant::now();
        let summary = etl::run(lake_dir, &cfg)?;
        rust_s.push(t.elapsed().as_secs_f64());
        println!(
            "jobs {jobs} round {round} rust (polars): {:.2} s, peak RSS {:.0} MiB, rows {} -> {}, dropped {:?}",
            rust_s[rust_s.len() - 1],
            peak_rss_mib(),
            summary.rows_in,
            summary.rows_out,
            summary.dropped
        );
        if pandas {
            let report = run_pandas(lake_dir, &pandas_out, jobs)?;
            println!(
                "jobs {jobs} round {round} pandas: {:.2} s, peak RSS {:.0} MiB, rows {} -> {}, dropped {:?}",
                report.seconds, report.peak_rss_mib, report.rows_in, report.rows_out, report.dropped
            );
            anyhow::ensure!(
                report.rows_in == summary.rows_in && report.rows_out == summary.rows_out,
                "pandas read {} and kept {} rows, ours {} and {}",
                report.rows_in,
                report.rows_out,
                summary.rows_in,
                summary.rows_out
            );
            pandas_s.push(report.seconds);
            pandas_version = format!("pandas {} + pyarrow {}", report.pandas, report.pyarrow);
        }
    }
    let mut result = serde_json::json!({
        "id": format!("etl-jobs{jobs}"),
        "title": format!("ETL, {shots} shots + {readings} readings, {jobs} machine(s) at once on each side"),
        "unit": "s",
        "better": "lower",
        "ours": rust_s,
        "target": {"text": "≥ 5× pandas", "speedup_at_least": 5.0},
    });
    if pandas {
        let checked = compare_outputs(&lake_dir.join(etl::ETL_DATA), &pandas_out)?;
        result["baseline"] = serde_json::json!(pandas_s);
        result["baseline_name"] = serde_json::json!(format!("{pandas_version}, {jobs} process(es)"));
        result["checked"] = serde_json::json!(checked);
    }
    println!("BENCH-RESULT {result}");
    Ok(())
}

/// What `bench/etl_pandas.py` prints.
#[derive(serde::Deserialize)]
struct PandasReport {
    rows_in: u64,
    rows_out: u64,
    dropped: std::collections::BTreeMap<String, u64>,
    seconds: f64,
    peak_rss_mib: f64,
    pandas: String,
    pyarrow: String,
}

/// Runs `bench/etl_pandas.py` on the lake with `jobs` worker processes.
fn run_pandas(lake_dir: &Path, out_dir: &Path, jobs: usize) -> Result<PandasReport> {
    let python = python();
    let out = std::process::Command::new(&python)
        .arg(script("etl_pandas.py"))
        .arg(lake_dir)
        .arg(out_dir)
        .args(["--jobs", &jobs.to_string()])
        .output()
        .with_context(|| format!("running {python} bench/etl_pandas.py"))?;
    anyhow::ensure!(out.status.success(), "pandas failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).context("reading the pandas report")
}

/// Runs `bench/etl_compare.py`; fails unless both outputs hold the same rows and values.
fn compare_outputs(ours: &Path, baseline: &Path) -> Result<String> {
    let out = std::process::Command::new(python())
        .arg(script("etl_compare.py"))
        .arg(ours)
        .arg(baseline)
        .output()
        .context("running bench/etl_compare.py")?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    anyhow::ensure!(
        out.status.success(),
        "the two ETL outputs differ: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&text).context("reading the comparison")?;
    Ok(format!(
        "outputs equal: {} rows × {} columns in {} machine-date files",
        v["rows"], v["columns"], v["partitions"]
    ))
}
