//! The pipeline runner's local executor through the real `moldops-cloud pipeline` command:
//! dependency order and parallel branches, retries with back-off, a failure stopping its
//! dependents, resume from the failed task, a runner SIGKILLed mid-run then resumed, SIGTERM
//! cancelling a run, the real `import` and `etl` commands as tasks, and the schedule.

use moldops_cloud::pipeline::state::AttemptStatus;
use moldops_cloud::pipeline::{PipelineDef, RunRecord, RunStatus, RunStore, TaskStatus};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_moldops-cloud"))
}

/// Writes `tasks` (TOML `[[task]]` tables) as a definition under `dir`, with data in `dir/data`.
pub fn write_def(dir: &Path, header: &str, tasks: &str) -> PathBuf {
    let p = dir.join("pipeline.toml");
    let text = format!(
        "name = \"test\"\nmax_parallel = 4\n{header}\n[vars]\ndata = \"{}\"\nlake = \"{{data}}/lake\"\nwork = \"{}\"\n\n[defaults]\nretries = 0\nbackoff_s = 0.05\n\n{tasks}",
        dir.join("data").display(),
        dir.display()
    );
    std::fs::write(&p, text).expect("write definition");
    p
}

fn pipeline(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin()).arg("pipeline").args(args).current_dir(dir).output().expect("run moldops-cloud")
}

fn run_def(dir: &Path, def: &Path, run_id: &str) -> Output {
    pipeline(dir, &["run", "--config", def.to_str().unwrap_or_default(), "--run-id", run_id])
}

fn load(dir: &Path, run_id: &str) -> RunRecord {
    RunStore::new(&dir.join("data")).load(run_id).expect("run record")
}

fn status(run: &RunRecord, task: &str) -> TaskStatus {
    run.tasks[task].status
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Polls until `cond` holds (a state change in another process) or panics after a minute.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn order_and_parallel_branches() {
    let dir = tempfile::tempdir().expect("tempdir");
    // b and c each wait for the other to have started: they only finish if they run together.
    let rendezvous = |me: &str, other: &str| {
        format!(
            "touch {{work}}/{me}.started; i=0; while [ ! -e {{work}}/{other}.started ]; do i=$((i+1)); [ $i -gt 600 ] && exit 9; sleep 0.05; done; echo {me} >> {{work}}/order"
        )
    };
    let tasks = format!(
        r#"
[[task]]
name = "a"
program = "sh"
args = ["-c", "echo a >> {{work}}/order"]
[[task]]
name = "b"
deps = ["a"]
program = "sh"
args = ["-c", "{}"]
[[task]]
name = "c"
deps = ["a"]
program = "sh"
args = ["-c", "{}"]
[[task]]
name = "d"
deps = ["b", "c"]
program = "sh"
args = ["-c", "echo d >> {{work}}/order; echo done-d"]
"#,
        rendezvous("b", "c"),
        rendezvous("c", "b")
    );
    let def = write_def(dir.path(), "", &tasks);
    let out = run_def(dir.path(), &def, "r-order");
    assert!(out.status.success(), "{}", text(&out));
    let order = std::fs::read_to_string(dir.path().join("order")).expect("order file");
    let order: Vec<&str> = order.lines().collect();
    assert_eq!(order.len(), 4);
    assert_eq!((order[0], order[3]), ("a", "d"), "{order:?}");
    let run = load(dir.path(), "r-order");
    assert_eq!(run.status, RunStatus::Succeeded);
    for t in ["a", "b", "c", "d"] {
        assert_eq!(status(&run, t), TaskStatus::Succeeded);
        let a = &run.tasks[t].attempts[0];
        assert_eq!((a.exit_code, a.status), (Some(0), AttemptStatus::Succeeded));
        assert!(a.ended.is_some_and(|e| e >= a.started));
    }
    let log = dir.path().join("data/pipeline/runs/r-order").join(&run.tasks["d"].attempts[0].log);
    assert_eq!(std::fs::read_to_string(log).expect("log of d").trim(), "done-d");
    // The table and the JSON record are both there.
    let show = pipeline(dir.path(), &["show", "r-order", "--data-dir", "data"]);
    assert!(text(&show).contains("succeeded"), "{}", text(&show));
    let runs = pipeline(dir.path(), &["runs", "--data-dir", "data"]);
    assert!(text(&runs).contains("r-order"), "{}", text(&runs));
}

#[test]
fn retries_with_backoff_then_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Fails twice (exit 7), then succeeds; the back-off doubles from 0.2 s.
    let tasks = r#"
[[task]]
name = "flaky"
program = "sh"
args = ["-c", "n=$(cat {work}/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > {work}/count; echo try $n; [ $n -ge 3 ] || exit 7"]
retries = 2
backoff_s = 0.2
"#;
    let def = write_def(dir.path(), "", tasks);
    let out = run_def(dir.path(), &def, "r-retry");
    assert!(out.status.success(), "{}", text(&out));
    let run = load(dir.path(), "r-retry");
    let a = &run.tasks["flaky"].attempts;
    let statuses: Vec<AttemptStatus> = a.iter().map(|x| x.status).collect();
    assert_eq!(statuses, [AttemptStatus::Failed, AttemptStatus::Failed, AttemptStatus::Succeeded]);
    assert_eq!(a.iter().map(|x| x.exit_code).collect::<Vec<_>>(), [Some(7), Some(7), Some(0)]);
    assert!(
        a[0].error.as_deref().is_some_and(|e| e.contains("exit code 7") && e.contains("try 1")),
        "{:?}",
        a[0].error
    );
    // Each retry started no earlier than its back-off after the previous attempt ended.
    for (prev, next, wait_ms) in [(&a[0], &a[1], 200), (&a[1], &a[2], 400)] {
        let gap = (next.started - prev.ended.expect("ended")).num_milliseconds();
        assert!(gap >= wait_ms, "retry after {gap} ms, back-off {wait_ms} ms");
    }
    let dir_run = dir.path().join("data/pipeline/runs/r-retry");
    for (i, at) in a.iter().enumerate() {
        let log = std::fs::read_to_string(dir_run.join(&at.log)).expect("attempt log");
        assert_eq!(log.trim(), format!("try {}", i + 1));
    }
}

#[test]
fn failure_stops_dependents_and_resume_continues() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tasks = r#"
[[task]]
name = "a"
program = "sh"
args = ["-c", "echo a >> {work}/ran"]
[[task]]
name = "b"
deps = ["a"]
program = "sh"
args = ["-c", "echo b >> {work}/ran; [ -e {work}/fixed ] || { echo broken >&2; exit 3; }"]
[[task]]
name = "c"
deps = ["b"]
program = "sh"
args = ["-c", "echo c >> {work}/ran"]
[[task]]
name = "side"
deps = ["a"]
program = "sh"
args = ["-c", "echo side >> {work}/ran"]
"#;
    let def = write_def(dir.path(), "", tasks);
    let out = run_def(dir.path(), &def, "r-fail");
    assert!(!out.status.success(), "a failed task must fail the command");
    let msg = text(&out);
    assert!(msg.contains("run r-fail failed") && msg.contains("[b]") && msg.contains("[c]"), "{msg}");
    let run = load(dir.path(), "r-fail");
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(status(&run, "a"), TaskStatus::Succeeded);
    assert_eq!(status(&run, "b"), TaskStatus::Failed);
    assert_eq!(run.tasks["b"].attempts[0].exit_code, Some(3));
    assert!(
        run.tasks["b"].note.as_deref().is_some_and(|n| n.contains("broken")),
        "{:?}",
        run.tasks["b"].note
    );
    assert_eq!(status(&run, "c"), TaskStatus::UpstreamFailed);
    assert!(run.tasks["c"].attempts.is_empty());
    assert_eq!(status(&run, "side"), TaskStatus::Succeeded, "independent branches still run");

    std::fs::write(dir.path().join("fixed"), "").expect("fix");
    let out = pipeline(dir.path(), &["resume", "r-fail", "--data-dir", "data"]);
    assert!(out.status.success(), "{}", text(&out));
    let run = load(dir.path(), "r-fail");
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.resumed.len(), 1);
    assert_eq!(run.tasks["a"].attempts.len(), 1, "succeeded tasks are not run again");
    assert_eq!(run.tasks["b"].attempts.len(), 2);
    assert_eq!(run.tasks["b"].attempts[1].number, 2);
    let ran = std::fs::read_to_string(dir.path().join("ran")).expect("ran");
    let mut ran: Vec<&str> = ran.lines().collect();
    ran.sort();
    assert_eq!(ran, ["a", "b", "b", "c", "side"]);
    let again = pipeline(dir.path(), &["resume", "r-fail", "--data-dir", "data"]);
    assert!(!again.status.success() && text(&again).contains("already succeeded"), "{}", text(&again));
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(')').is_some_and(|(_, r)| !r.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

#[test]
fn runner_killed_mid_run_is_resumed() {
    let dir = tempfile::tempdir().expect("tempdir");
    // First time: marks itself started and hangs; on the resume it finds the mark and succeeds.
    let tasks = r#"
[[task]]
name = "long"
program = "sh"
args = ["-c", "if [ -e {work}/started ]; then echo second; exit 0; fi; touch {work}/started; exec sleep 300"]
[[task]]
name = "after"
deps = ["long"]
program = "sh"
args = ["-c", "echo after"]
"#;
    let def = write_def(dir.path(), "", tasks);
    let mut runner = Command::new(bin())
        .args(["pipeline", "run", "--config", def.to_str().unwrap_or_default(), "--run-id", "r-crash"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start runner");
    let store = RunStore::new(&dir.path().join("data"));
    let pid_of_task =
        || store.load("r-crash").ok().and_then(|r| r.tasks["long"].attempts.first().and_then(|a| a.pid));
    wait_for("the task to start", || dir.path().join("started").exists() && pid_of_task().is_some());
    let child = pid_of_task().expect("pid recorded");
    runner.kill().expect("SIGKILL the runner");
    let _ = runner.wait();
    assert!(alive(child), "the task outlives its runner");
    let run = store.load("r-crash").expect("record");
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.tasks["long"].attempts[0].status, AttemptStatus::Running);
    let runs = pipeline(dir.path(), &["runs", "--data-dir", "data"]);
    assert!(text(&runs).contains("interrupted"), "{}", text(&runs));

    let out = pipeline(dir.path(), &["resume", "r-crash", "--data-dir", "data"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!alive(child), "resume stops the crashed runner's task");
    let run = store.load("r-crash").expect("record");
    assert_eq!(run.status, RunStatus::Succeeded);
    let a = &run.tasks["long"].attempts;
    assert_eq!((a[0].status, a[1].status), (AttemptStatus::Interrupted, AttemptStatus::Succeeded));
    assert_eq!(status(&run, "after"), TaskStatus::Succeeded);
}

#[test]
fn sigterm_cancels_the_run_and_its_tasks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tasks = r#"
[[task]]
name = "long"
program = "sh"
args = ["-c", "touch {work}/started; exec sleep 300"]
[[task]]
name = "after"
deps = ["long"]
program = "sh"
args = ["-c", "echo after"]
"#;
    let def = write_def(dir.path(), "", tasks);
    let runner = Command::new(bin())
        .args(["pipeline", "run", "--config", def.to_str().unwrap_or_default(), "--run-id", "r-cancel"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start runner");
    let store = RunStore::new(&dir.path().join("data"));
    let pid_of_task =
        || store.load("r-cancel").ok().and_then(|r| r.tasks["long"].attempts.first().and_then(|a| a.pid));
    wait_for("the task to start", || dir.path().join("started").exists() && pid_of_task().is_some());
    let child = pid_of_task().expect("pid");
    let term = Command::new("kill").args(["-TERM", &runner.id().to_string()]).status().expect("kill");
    assert!(term.success());
    let out = runner.wait_with_output().expect("runner ends");
    assert!(!out.status.success(), "a cancelled run exits non-zero");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cancelled"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!alive(child), "the task process is stopped");
    let run = store.load("r-cancel").expect("record");
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_eq!(status(&run, "long"), TaskStatus::Cancelled);
    assert_eq!(run.tasks["long"].attempts[0].status, AttemptStatus::Cancelled);
    assert_eq!(status(&run, "after"), TaskStatus::Pending);
}

#[test]
fn real_import_and_etl_commands_as_tasks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let csv = root.join("tests/data/woojin_shots.csv");
    let profile = root.join("../deploy/profiles/import-woojin.toml");
    let tasks = format!(
        r#"
[[task]]
name = "import"
args = ["import", "{}", "--profile", "{}", "--lake", "{{lake}}"]
[[task]]
name = "etl"
deps = ["import"]
args = ["etl", "--lake", "{{lake}}", "--json"]
shards = 2
[[task]]
name = "labels"
deps = ["import"]
args = ["import", "--labels", "{{data}}/inbox/quality-log.jsonl", "--lake", "{{lake}}"]
when_exists = "{{data}}/inbox/quality-log.jsonl"
[[task]]
name = "bad-args"
deps = ["etl"]
args = ["etl", "--no-such-flag"]
[[task]]
name = "never"
deps = ["bad-args"]
args = ["etl", "--lake", "{{lake}}"]
"#,
        csv.display(),
        profile.display()
    );
    let def = write_def(dir.path(), "", &tasks);
    PipelineDef::load(&def).expect("valid definition");
    let out = run_def(dir.path(), &def, "r-real");
    assert!(!out.status.success(), "bad-args must fail the run");
    let run = load(dir.path(), "r-real");
    assert_eq!(status(&run, "import"), TaskStatus::Succeeded, "{}", text(&out));
    assert_eq!(status(&run, "etl"), TaskStatus::Succeeded, "{}", text(&out));
    assert_eq!(status(&run, "labels"), TaskStatus::Skipped);
    assert_eq!(status(&run, "bad-args"), TaskStatus::Failed);
    assert_eq!(run.tasks["bad-args"].attempts[0].exit_code, Some(2), "clap usage error");
    assert_eq!(status(&run, "never"), TaskStatus::UpstreamFailed);
    let etl_log = dir.path().join("data/pipeline/runs/r-real").join(&run.tasks["etl"].attempts[0].log);
    let etl_log = std::fs::read_to_string(etl_log).expect("etl log");
    assert!(etl_log.contains('{'), "the etl task's JSON summary is in its log: {etl_log}");
    // Two shards, one after another, each with its summary; together they built every machine.
    for shard in ["# moldops pipeline: shard 0/2", "# moldops pipeline: shard 1/2"] {
        assert!(etl_log.contains(shard), "{shard} in {etl_log}");
    }
    assert_eq!(etl_log.matches("\"seconds\"").count(), 2, "{etl_log}");
    let lake = dir.path().join("data/lake");
    let rows = moldops_cloud::etl::read_etl(&lake).map(|d| d.height()).unwrap_or(0);
    assert!(rows > 0, "etl_data written by the etl task");
}

#[test]
fn schedule_starts_runs_on_the_cron_expression() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tasks =
        "[[task]]\nname = \"tick\"\nprogram = \"sh\"\nargs = [\"-c\", \"echo tick >> {work}/ticks\"]\n";
    let def = write_def(dir.path(), "schedule = \"* * * * * *\"", tasks);
    let out =
        pipeline(dir.path(), &["schedule", "--config", def.to_str().unwrap_or_default(), "--max-runs", "2"]);
    assert!(out.status.success(), "{}", text(&out));
    let runs = RunStore::new(&dir.path().join("data")).list().expect("runs");
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.status == RunStatus::Succeeded));
    assert!(runs[0].run_id != runs[1].run_id);
    assert_eq!(std::fs::read_to_string(dir.path().join("ticks")).expect("ticks").lines().count(), 2);
    let bad = pipeline(
        dir.path(),
        &["schedule", "--config", def.to_str().unwrap_or_default(), "--cron", "61 * * * *"],
    );
    assert!(!bad.status.success() && text(&bad).contains("not a cron expression"), "{}", text(&bad));
}

#[test]
fn definitions_builtin_and_deployed_agree() {
    let out = Command::new(bin()).args(["pipeline", "definition"]).output().expect("definition");
    assert!(out.status.success());
    let builtin = PipelineDef::parse(&String::from_utf8_lossy(&out.stdout), "printed").expect("parses");
    let deployed =
        PipelineDef::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s/base/pipeline.toml"))
            .expect("deploy/k8s/base/pipeline.toml");
    assert_eq!(builtin.tasks, deployed.tasks, "the CronJob's DAG drifted from the built-in one");
    assert_eq!(builtin.kubernetes, deployed.kubernetes);
}
