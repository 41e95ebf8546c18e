//! `moldops-cloud pull` against real servers: simulator history for two machines in a
//! PostgreSQL table (shots) and an InfluxDB measurement (mould temperature controller
//! readings). Pull, pull again (nothing), add rows — some late, inside the look-back window —
//! pull with `kill -9` mid-way, pull again: every row is in the lake exactly once, and the ETL
//! of the pulled lake equals the ETL of the same history imported from files.

use moldops_cloud::etl::{self, EtlConfig, read_etl};
use moldops_cloud::import::{self, ImportProfile};
use moldops_cloud::lake;
use moldops_cloud::pull::{self, PullOptions, PullReport, config};
use moldops_sim::features::FEATURE_NAMES;
use moldops_sim::process::{ProcessConfig, ProcessModel};
use moldops_tests::{Influxd, Postgres, Proc, bin, test_dir, wait_until};
use polars::prelude::{DataFrame, SortMultipleOptions};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// 2024-05-01T00:00:00Z.
const DAY0: i64 = 1_714_521_600_000;

/// One shot row as the MES table holds it.
struct ShotRow {
    ts_ms: i64,
    machine: &'static str,
    mold: &'static str,
    shot_no: u32,
    values: Vec<f64>,
}

/// One controller reading.
struct TcuRow {
    ts_ms: i64,
    machine: &'static str,
    supply: f64,
    ret: f64,
    flow: f64,
}

/// `steps` process steps of machines M1 and M2, each sorted by time.
fn history(steps: usize) -> (Vec<ShotRow>, Vec<TcuRow>) {
    let (mut shots, mut tcu) = (Vec::new(), Vec::new());
    for (index, machine) in ["M1", "M2"].into_iter().enumerate() {
        let mut model = ProcessModel::new(ProcessConfig {
            seed: 11,
            index,
            start_ms: DAY0 + 22 * 3_600_000,
            start_shot: 1,
            defect_rate: 0.05,
            sustained_faults: 0.0,
            mold_change_shots: 300,
            idle_every: 0,
        });
        for _ in 0..steps {
            let step = model.next_step();
            let p = step.peripherals;
            tcu.push(TcuRow {
                ts_ms: step.ts_ms,
                machine,
                supply: p.supply_temperature,
                ret: p.return_temperature,
                flow: p.flow,
            });
            if let Some(s) = step.shot {
                shots.push(ShotRow {
                    ts_ms: s.ts_ms,
                    machine,
                    mold: s.mold,
                    shot_no: s.number,
                    values: s.values.0.to_vec(),
                });
            }
        }
    }
    shots.sort_by_key(|s| (s.ts_ms, s.machine));
    tcu.sort_by_key(|t| (t.ts_ms, t.machine));
    (shots, tcu)
}

fn naive(ts_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ts_ms)
        .expect("ts")
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S%.3f")
        .to_string()
}

fn shots_csv(rows: &[&ShotRow]) -> String {
    let mut text = format!("ts,machine,mold,shot_no,{}\n", FEATURE_NAMES.join(","));
    for r in rows {
        let values: Vec<String> = r.values.iter().map(f64::to_string).collect();
        text.push_str(&format!(
            "{},{},{},{},{}\n",
            naive(r.ts_ms),
            r.machine,
            r.mold,
            r.shot_no,
            values.join(",")
        ));
    }
    text
}

fn tcu_csv(rows: &[&TcuRow]) -> String {
    let mut text = String::from("time,machine,supply_temperature,return_temperature,flow\n");
    for r in rows {
        let t = chrono::DateTime::from_timestamp_millis(r.ts_ms).expect("ts").to_rfc3339();
        text.push_str(&format!("{t},{},{},{},{}\n", r.machine, r.supply, r.ret, r.flow));
    }
    text
}

fn tcu_lines(rows: &[&TcuRow]) -> String {
    rows.iter()
        .map(|r| {
            format!(
                "tcu,machine={} supply_temperature={},return_temperature={},flow={} {}\n",
                r.machine,
                r.supply,
                r.ret,
                r.flow,
                r.ts_ms * 1_000_000
            )
        })
        .collect()
}

/// Splits rows into a first load and the rest: the first `cut` rows go first, except `late` of
/// the last five minutes before the cut, held back to arrive with the rest (late rows).
fn split<T>(rows: &[T], cut: usize, ts: impl Fn(&T) -> i64) -> (Vec<&T>, Vec<&T>) {
    let edge = ts(&rows[cut - 1]);
    let (mut first, mut rest) = (Vec::new(), Vec::new());
    for (i, r) in rows.iter().enumerate() {
        let late = i < cut - 1 && edge - ts(r) < 300_000 && i % 3 == 0;
        if i < cut && !late { first.push(r) } else { rest.push(r) }
    }
    (first, rest)
}

const SHOTS_PROFILE: &str = "name = \"mes\"\nshot_number = \"shot_no\"\nmold = \"mold\"\nignore = [\"id\"]\n\
    [time]\ncolumn = \"ts\"\n[machine]\ncolumn = \"machine\"\nmap = { M1 = \"M1\", M2 = \"M2\" }\n";
const TCU_PROFILE: &str = "name = \"tcu\"\nkind = \"peripheral\"\ndevice = \"tcu\"\n\
    [time]\ncolumn = \"time\"\n[machine]\ncolumn = \"machine\"\nmap = { M1 = \"M1\", M2 = \"M2\" }\n";

fn pull_all(lake: &Path, sources: &[config::Source]) -> Vec<PullReport> {
    let rt = moldops_common::runtime::build().expect("runtime");
    rt.block_on(pull::pull_all(lake, sources, &PullOptions::default())).expect("pull")
}

/// `moldops-cloud pull --json --lake {lake} {sources}` run to its end.
fn pull_binary(lake: &Path, sources: &Path) -> std::process::Output {
    Command::new(bin("moldops-cloud"))
        .args(["pull", "--json", "--lake"])
        .arg(lake)
        .arg(sources)
        .output()
        .expect("run moldops-cloud pull")
}

/// The ETL output without the columns that name the stream a record came by.
fn etl_rows(lake: &Path) -> DataFrame {
    etl::run(lake, &EtlConfig::default()).expect("etl");
    let df = read_etl(lake).expect("etl_data");
    let keep: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .filter(|c| !["edge_id", "seq", "epoch", "site"].contains(&c.as_str()))
        .collect();
    df.select(keep).expect("select").sort(["machine_id", "ts"], SortMultipleOptions::default()).expect("sort")
}

/// `(machine, shot number)` of every shot in the lake, sorted, duplicates kept.
fn lake_shots(lake: &Path) -> Vec<(String, u64)> {
    let df = lake::read_dataset(lake, "raw_data").expect("raw_data");
    let m = df.column("machine_id").expect("m").str().expect("str").clone();
    let n = df.column("shot_number").expect("n").cast(&polars::prelude::DataType::UInt64).expect("u64");
    let mut out: Vec<(String, u64)> = m
        .iter()
        .zip(n.u64().expect("u64").iter())
        .map(|(m, n)| (m.unwrap_or_default().to_string(), n.unwrap_or_default()))
        .collect();
    out.sort();
    out
}

#[test]
fn pulls_from_postgresql_and_influxdb_take_every_row_once_through_kills_and_late_rows() {
    let dir = test_dir();
    let logs = dir.path();
    let pg = Postgres::start(logs);
    let influx = Influxd::start(logs);
    let (shots, tcu) = history(900);
    let (shots_first, shots_rest) = split(&shots, shots.len() * 6 / 10, |r| r.ts_ms);
    let (tcu_first, tcu_rest) = split(&tcu, tcu.len() * 6 / 10, |r| r.ts_ms);
    assert!(shots_rest.len() > 500 && tcu_rest.len() > 500, "enough rows to kill a pull mid-way");

    // The MES table, filled by COPY from the same CSV a file import reads.
    let values: Vec<String> = FEATURE_NAMES.iter().map(|f| format!("\"{f}\" double precision")).collect();
    pg.psql(&format!(
        "CREATE TABLE public.shots (id bigserial primary key, ts timestamp(3), machine text, mold text, shot_no bigint, {})",
        values.join(", ")
    ));
    let copy = |rows: &[&ShotRow], name: &str| {
        let path = pg.dir().join(name);
        std::fs::write(&path, shots_csv(rows)).expect("csv");
        let columns =
            format!("ts, machine, mold, shot_no, {}", FEATURE_NAMES.map(|f| format!("\"{f}\"")).join(", "));
        pg.psql(&format!("\\copy public.shots ({columns}) FROM '{}' CSV HEADER", path.display()));
    };
    copy(&shots_first, "first.csv");
    // Rows a pull cannot place: no time, an infinite one, a placeholder far in the future.
    pg.psql(
        "INSERT INTO public.shots (ts, machine, mold, shot_no) VALUES (NULL, 'M1', 'X', 0), \
         ('infinity', 'M1', 'X', 0), ('9999-12-31 00:00:00', 'M1', 'X', 0)",
    );
    influx.create_database("plant");
    influx.write("plant", &tcu_lines(&tcu_first));

    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("work");
    std::fs::write(work.join("shots.toml"), SHOTS_PROFILE).expect("profile");
    std::fs::write(work.join("tcu.toml"), TCU_PROFILE).expect("profile");
    let pull_toml = work.join("pull.toml");
    std::fs::write(
        &pull_toml,
        format!(
            "[[source]]\nname = \"mes-shots\"\nkind = \"postgres\"\nurl = \"{}\"\ntable = \"public.shots\"\n\
             time_column = \"ts\"\nkey = [\"id\"]\ntls = \"trust\"\nprofile = \"shots.toml\"\nlook_back_s = 3600\nbatch_rows = 40\n\n\
             [[source]]\nname = \"tcu\"\nkind = \"influxdb1\"\nurl = \"{}\"\ndatabase = \"plant\"\n\
             measurement = \"tcu\"\nprofile = \"tcu.toml\"\nlook_back_s = 3600\nbatch_rows = 250\n",
            pg.url(),
            influx.url()
        ),
    )
    .expect("pull.toml");
    let sources = config::load(&pull_toml).expect("sources");
    let lake = dir.path().join("lake");

    // First pull: every row so far; the rows without a usable time are counted, not pulled.
    let first = pull_all(&lake, &sources);
    assert_eq!(first[0].written, shots_first.len() as u64, "{:?}", first[0]);
    assert_eq!(
        (first[0].without_time, first[0].in_future, first[0].quarantined),
        (1 + 1, 1, 0),
        "{:?}",
        first[0]
    );
    assert_eq!(first[1].written, tcu_first.len() as u64, "{:?}", first[1]);
    // Again: the look-back window is read again and recognised; nothing is written.
    let again = pull_all(&lake, &sources);
    for r in &again {
        assert_eq!((r.written, r.new_rows, r.duplicates), (0, 0, 0), "{r:?}");
        assert!(r.already_pulled > 0, "the window was read again: {r:?}");
    }

    // New and late rows arrive (the controller readings with a field more: the answers' columns
    // move); the shots pull is killed after its first page.
    copy(&shots_rest, "rest.csv");
    let with_pressure: String = tcu_lines(&tcu_rest)
        .lines()
        .filter_map(|l| l.rsplit_once(' ').map(|(point, ts)| format!("{point},pressure=2.5 {ts}\n")))
        .collect();
    influx.write("plant", &with_pressure);
    let state_file = moldops_cloud::pull::state::path(&lake, "mes-shots");
    let seq_now = || -> u64 {
        std::fs::read(&state_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["next_seq"].as_u64())
            .unwrap_or(0)
    };
    let before = seq_now();
    let mut child = Proc::spawn(
        "pull-killed",
        Command::new(bin("moldops-cloud"))
            .args(["pull", "--source", "mes-shots", "--json", "--lake"])
            .arg(&lake)
            .arg(&pull_toml),
        logs,
    );
    assert!(wait_until(Duration::from_secs(120), || seq_now() > before), "no page pulled in 120 s");
    child.kill9();
    let partial = lake_shots(&lake).len();
    assert!(partial < shots.len(), "killed mid-way: {partial} of {} shots", shots.len());

    let out = pull_binary(&lake, &pull_toml);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reports: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON report"))
        .collect();
    assert_eq!(reports.len(), 2, "{reports:?}");
    eprintln!("after the kill: {partial} shots in the lake; the next pull: {reports:?}");

    // Every shot exactly once, late ones included.
    let mut want: Vec<(String, u64)> =
        shots.iter().map(|s| (s.machine.to_string(), u64::from(s.shot_no))).collect();
    want.sort();
    assert_eq!(lake_shots(&lake), want, "every shot once");
    assert_eq!(
        lake::read_dataset(&lake, "peripheral_data").expect("tcu").height(),
        tcu.len(),
        "every reading once"
    );
    let last = pull_all(&lake, &sources);
    assert!(last.iter().all(|r| r.written == 0 && r.new_rows == 0), "{last:?}");
    // A lost state, or another key, stops the source instead of pulling everything again.
    let rt = moldops_common::runtime::build().expect("runtime");
    let pull_one = |s: &config::Source| rt.block_on(pull::pull_source(&lake, s, &PullOptions::default()));
    // The test server's certificate is self-signed: `trust` (above) reads over TLS, `required`
    // checks the certificate and refuses it.
    let mut checked = sources[0].clone();
    checked.config.tls = Some("required".into());
    let e = format!("{:#}", pull_one(&checked).expect_err("a self-signed certificate"));
    assert!(e.contains("certificate"), "{e}");

    let moved = state_file.with_extension("moved");
    std::fs::rename(&state_file, &moved).expect("move the state away");
    let lost = format!("{:#}", pull_one(&sources[0]).expect_err("state missing"));
    assert!(lost.contains("missing") && lost.contains("--restart"), "{lost}");
    std::fs::rename(&moved, &state_file).expect("put it back");
    let mut rekeyed = sources[0].clone();
    rekeyed.config.key = vec!["machine".into()];
    let e = format!("{:#}", pull_one(&rekeyed).expect_err("key changed"));
    assert!(e.contains("differs"), "{e}");
    assert_eq!(pull_one(&sources[0]).expect("the state back").written, 0);

    // A column renamed in the MES table stops the source instead of pulling NULLs for it.
    pg.psql("ALTER TABLE public.shots RENAME COLUMN mold TO mould");
    let e = format!("{:#}", pull_one(&sources[0]).expect_err("a column gone"));
    assert!(e.contains("\"mold\" is gone"), "{e}");
    pg.psql("ALTER TABLE public.shots RENAME COLUMN mould TO mold");

    // A source whose server is down fails alone: the others are pulled, the exit code says so.
    let with_dead = work.join("pull-with-dead.toml");
    let dead = format!(
        "\n[[source]]\nname = \"dead\"\nkind = \"influxdb1\"\nurl = \"http://127.0.0.1:{}\"\n\
         database = \"plant\"\nmeasurement = \"tcu\"\nprofile = \"tcu.toml\"\n",
        moldops_tests::free_port()
    );
    std::fs::write(&with_dead, std::fs::read_to_string(&pull_toml).expect("pull.toml") + &dead)
        .expect("write");
    let out = pull_binary(&lake, &with_dead);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("source dead"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2, "the two live sources reported");

    // What was left out stays visible in the lake's summary (and so in the API's /lake).
    let summary = lake::summary(&lake).expect("summary");
    let left_out: Vec<(&str, u64, u64, u64)> =
        summary.pulls.iter().map(|p| (p.source.as_str(), p.rows, p.without_time, p.in_future)).collect();
    assert_eq!(left_out, [("mes-shots", shots.len() as u64, 2, 1), ("tcu", tcu.len() as u64, 0, 0)]);
    assert!(summary.to_table().contains("mes-shots  up to 2024-05-02"), "{}", summary.to_table());

    // The same history imported from files gives the same etl_data.
    let files = dir.path().join("files");
    let (shots_all, tcu_all): (Vec<&ShotRow>, Vec<&TcuRow>) = (shots.iter().collect(), tcu.iter().collect());
    std::fs::create_dir_all(&files).expect("files");
    std::fs::write(files.join("shots.csv"), shots_csv(&shots_all)).expect("csv");
    std::fs::write(files.join("tcu.csv"), tcu_csv(&tcu_all)).expect("csv");
    let file_lake = dir.path().join("file-lake");
    let profile = |name: &str| ImportProfile::load(&work.join(name)).expect("profile");
    import::import_table(&file_lake, &files.join("shots.csv"), &profile("shots.toml")).expect("import shots");
    import::import_table(&file_lake, &files.join("tcu.csv"), &profile("tcu.toml")).expect("import tcu");
    let (pulled, imported) = (etl_rows(&lake), etl_rows(&file_lake));
    assert_eq!(pulled.height(), shots.len());
    assert_eq!(pulled.get_column_names(), imported.get_column_names());
    assert!(pulled.equals_missing(&imported), "etl_data differs:\n{pulled}\n{imported}");
}
