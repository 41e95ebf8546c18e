use super::*;

fn def(tasks: &str) -> Result<PipelineDef> {
    PipelineDef::parse(tasks, "test")
}

#[test]
fn builtin_dag_is_valid_and_ordered() {
    let d = PipelineDef::builtin().expect("built-in DAG");
    let order = d.order().expect("acyclic");
    let pos = |n: &str| order.iter().position(|x| x == n).unwrap_or(usize::MAX);
    assert_eq!(order.len(), 9);
    assert!(pos("import") < pos("etl") && pos("compact") < pos("etl") && pos("etl") < pos("augment"));
    assert!(pos("pull") < pos("etl"));
    assert!(pos("augment") < pos("evaluate") && pos("augment") < pos("train"));
    assert!(
        pos("evaluate") < pos("register")
            && pos("train") < pos("register")
            && pos("register") < pos("rollout")
    );
    assert_eq!(d.task("evaluate").map(|t| t.deps.clone()), Some(vec!["augment".to_string()]));
    assert!(d.task("train").is_some_and(|t| t.gpu) && d.task("augment").is_some_and(|t| t.gpu));
    assert!(d.task("etl").is_some_and(|t| !t.gpu));
}

#[test]
fn every_problem_is_listed() {
    let text = "max_parallel = 0\n[[task]]\nname = \"A\"\ndeps = [\"nope\"]\n[[task]]\nname = \"b\"\ndeps = [\"b\"]\n[[task]]\nname = \"b\"\n[[task]]\nname = \"c\"\nshards = 0\n[[task]]\nname = \"d\"\nargs = [\"etl\", \"--shard\", \"0/2\"]\nshards = 2\n[[task]]\nname = \"e\"\nargs = [\"drift\"]\nshards = 2\n";
    let full = format!("{:#}", def(text).expect_err("invalid"));
    for needle in [
        "max_parallel",
        "`A`: name must",
        "unknown dependency `nope`",
        "depends on itself",
        "defined twice",
        "`c`: shards must be 1 to 1024",
        "`d`: gives --shard itself",
        "`e`: shards = 2 needs a moldops-cloud command that takes --shard (etl, train, score)",
    ] {
        assert!(full.contains(needle), "{needle} missing in: {full}");
    }
}

#[test]
fn cycles_are_named() {
    let e = def("[[task]]\nname = \"a\"\ndeps = [\"b\"]\n[[task]]\nname = \"b\"\ndeps = [\"a\"]\n[[task]]\nname = \"c\"\n")
        .expect_err("cycle");
    assert!(format!("{e:#}").contains("cycle among tasks: a, b"), "{e:#}");
}

#[test]
fn variables_nest_and_typos_fail() {
    let mut d = def("[vars]\ndata = \"d\"\nlake = \"{data}/lake\"\n[[task]]\nname = \"a\"\nargs = [\"etl\", \"--lake\", \"{lake}\", \"${HOME}\", \"{}\", \"{run_id}\"]\n")
        .expect("valid");
    let builtins = BTreeMap::from([("run_id".to_string(), "r1".to_string())]);
    d.resolve(&BTreeMap::from([("data".to_string(), "/x".to_string())]), &builtins).expect("resolves");
    assert_eq!(d.tasks[0].args, ["etl", "--lake", "/x/lake", "${HOME}", "{}", "r1"]);
    assert_eq!(d.data_dir(), std::path::PathBuf::from("/x"));
    let mut bad = def("[[task]]\nname = \"a\"\nargs = [\"{lak}\"]\n").expect("valid");
    let e = bad.resolve(&BTreeMap::new(), &builtins).expect_err("typo");
    assert!(format!("{e:#}").contains("unknown variable `{lak}`"), "{e:#}");
}

#[test]
fn backoff_grows_and_is_capped() {
    let d = TaskDefaults {
        retries: 5,
        backoff_s: 2.0,
        backoff_factor: 3.0,
        backoff_max_s: 10.0,
        timeout_s: None,
    };
    let t = def("[[task]]\nname = \"a\"\n").expect("valid").tasks.remove(0);
    let secs: Vec<f64> = (2..=5).map(|n| backoff(&d, &t, n).as_secs_f64()).collect();
    assert_eq!(secs, [2.0, 6.0, 10.0, 10.0]);
    assert_eq!(t.max_attempts(&d), 6);
}

#[test]
fn dependents_are_transitive() {
    let d = PipelineDef::builtin().expect("built-in DAG");
    let below: Vec<String> = d.dependents("augment").into_iter().collect();
    assert_eq!(below, ["evaluate", "register", "rollout", "train"]);
}

#[test]
fn the_shipped_hourly_pull_dag_is_valid() {
    let d = def(include_str!("../../../deploy/pipelines/pull-hourly.toml")).expect("pull-hourly.toml");
    assert_eq!(d.order().expect("acyclic"), ["pull"]);
    assert_eq!(d.schedule.as_deref(), Some("5 * * * *"));
    assert_eq!(d.task("pull").map(|t| t.args[0].as_str()), Some("pull"));
}

#[test]
fn the_shipped_mould_lifecycle_dag_is_valid_and_runs_on_its_plan() {
    let text = crate::lifecycle::PIPELINE_TOML;
    let mut d = def(text).expect("mould-lifecycle.toml");
    assert_eq!(d.order().expect("acyclic"), ["drift", "plan", "etl", "train", "register", "rollout"]);
    d.resolve(&Default::default(), &Default::default()).expect("variables resolve");
    let plan = d.task("plan").expect("plan");
    let out = plan.args.iter().position(|a| a == "--out").expect("--out") + 1;
    let drift = d.task("drift").expect("drift");
    let trigger = drift.args.iter().position(|a| a == "--trigger").expect("--trigger") + 1;
    assert!(plan.args.windows(2).any(|w| w[0] == "--drift-trigger" && w[1] == drift.args[trigger]));
    for t in d.tasks.iter().filter(|t| !["drift", "plan"].contains(&t.name.as_str())) {
        assert_eq!(t.when_exists.as_deref(), Some(plan.args[out].as_str()), "{} runs only on a plan", t.name);
    }
    let train = d.task("train").expect("train");
    assert!(train.args.windows(2).any(|w| w[0] == "--keys-from" && w[1] == plan.args[out]));
}
