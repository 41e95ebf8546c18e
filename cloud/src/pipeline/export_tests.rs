use super::airflow::{self, jinja_text};
use super::argo::{self, ArgoOptions, argo_text, object_name};
use super::*;

fn learning() -> Export {
    prepare(PipelineDef::builtin().expect("built-in"), &BTreeMap::new()).expect("exportable")
}

fn def(toml: &str) -> PipelineDef {
    PipelineDef::parse(toml, "test").expect("definition")
}

fn one_task(extra: &str) -> String {
    format!("name = \"t\"\n[[task]]\nname = \"a\"\nargs = [\"x\"]\n{extra}\n")
}

#[test]
fn tasks_keep_their_order_dependencies_images_and_secrets() {
    let e = learning();
    let names: Vec<&str> = e.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["import", "pull", "compact", "etl", "augment", "evaluate", "train", "register", "rollout"]
    );
    let task = |n: &str| e.tasks.iter().find(|t| t.name == n).expect("task");
    assert_eq!(task("etl").deps, ["import", "pull", "compact"]);
    let image = |n: &str| task(n).pod.containers[0].image.clone().unwrap_or_default();
    assert_eq!(image("train"), "ghcr.io/moldops/moldops-cloud-gpu:0.1.0", "GPU task: the GPU image");
    assert_eq!(image("etl"), "ghcr.io/moldops/moldops-cloud:0.1.0");
    let train = task("train");
    let volumes = serde_json::to_value(&train.pod.volumes).expect("json");
    assert_eq!(
        volumes,
        serde_json::json!([
            { "name": "cache", "emptyDir": {} },
            { "name": "secret-0", "secret": { "secretName": "moldops-signing-key", "defaultMode": 0o400 } },
        ]),
        "scratch for bucket copies, no shared volume, the signing key"
    );
    let env_from = serde_json::to_value(&train.pod.containers[0].env_from).expect("json");
    assert_eq!(
        env_from,
        serde_json::json!([{ "secretRef": { "name": "moldops-object-store", "optional": true } }]),
        "the bucket's keys, where the cluster has them"
    );
    let limits = serde_json::to_value(&train.pod.containers[0].resources).expect("json");
    assert_eq!(limits["limits"]["nvidia.com/gpu"], "1");
    assert_eq!(
        (train.retries, train.backoff_s, train.backoff_max_s, train.timeout_s),
        (1, 30.0, 600.0, Some(21_600))
    );
    let env = serde_json::to_value(&task("import").pod.containers[0].env).expect("json");
    assert!(env.as_array().expect("env").contains(&serde_json::json!({
        "name": SKIP_UNLESS_EXISTS_ENV, "value": "moldops-data/inbox/quality-log.jsonl"
    })));
}

#[test]
fn run_id_and_attempt_become_the_schedulers_own() {
    let mut d = def(&one_task("env = { R = \"{run_id}/x\" }"));
    d.tasks[0].args.push("--run={run_id}".into());
    let e = prepare(d, &BTreeMap::new()).expect("exportable");
    let c = &e.tasks[0].pod.containers[0];
    assert_eq!(c.args.as_ref().expect("args")[1], "--run={run_id}");
    assert_eq!(jinja_text("--run={run_id}"), "--run={{ run_id }}");
    assert_eq!(jinja_text("{attempt}"), "{{ ti.try_number }}");
    assert_eq!(argo_text("a", "{run_id}-{attempt}").expect("ok"), "{{workflow.name}}-{{retries}}");
    assert_eq!(e.tasks[0].labels[jobspec::LABEL_ATTEMPT], "{attempt}");
}

#[test]
fn literal_placeholders_and_unexportable_definitions_are_refused() {
    let literal = def(&one_task("[vars]\nx = \"{attempt}\""));
    let mut literal = literal;
    literal.tasks[0].args.push("{x}".into());
    let e = prepare(literal, &BTreeMap::new()).expect_err("refused");
    assert!(format!("{e:#}").contains("appears literally"), "{e:#}");
    let mut seconds = def(&one_task(""));
    seconds.schedule = Some("0 0 3 * * 0".into());
    let e = prepare(seconds, &BTreeMap::new()).expect_err("refused");
    assert!(format!("{e:#}").contains("5-field"), "{e:#}");
    let other = def(&one_task("program = \"/bin/sh\"\nwhen_exists = \"/x\""));
    let e = prepare(other, &BTreeMap::new()).expect_err("refused");
    assert!(format!("{e:#}").contains("checked by moldops-cloud"), "{e:#}");
}

#[test]
fn jinja_text_escapes_what_airflow_would_change() {
    assert_eq!(jinja_text("plain --lake /x"), "plain --lake /x");
    assert_eq!(jinja_text("a{{ b }}"), r"{{ 'a{{ b }}' }}");
    assert_eq!(jinja_text("it's\\\n"), r"{{ 'it\'s\\\n' }}");
    assert_eq!(jinja_text("x\r\ny"), r"{{ 'x\r\ny' }}");
    assert_eq!(jinja_text("{x}{run_id}"), "{{ '{x}' }}{{ run_id }}");
}

#[test]
fn argo_refuses_template_tags_it_cannot_escape() {
    for bad in ["{{ x }}", "{{workflow.name", "{{{run_id}}}", "a {{=1}}"] {
        let e = argo_text("a", bad).expect_err(bad);
        assert!(e.to_string().contains("template tag"), "{e}");
    }
    assert_eq!(argo_text("a", "{x} }} {").expect("ok"), "{x} }} {");
}

#[test]
fn argo_names_are_dns_labels() {
    assert_eq!(object_name("Learning DAG (v2)").expect("ok"), "learning-dag-v2");
    for bad in ["", "---", "7up", &"x".repeat(53)] {
        assert!(object_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_airflow_dag_holds_every_task_and_edge_as_python() {
    let py = airflow::render(&learning()).expect("render");
    assert!(py.contains("dag_id=\"learning\""));
    assert!(py.contains("CronTriggerTimetable(\"0 3 * * 0\", timezone=\"UTC\")"));
    assert!(py.contains("max_active_tasks=2,"));
    assert!(py.contains("    task[\"augment\"] >> task[\"train\"]\n"));
    assert_eq!(py.matches("= KubernetesPodOperator(").count(), 9);
    assert_eq!(py.matches("trigger_rule=\"none_failed\"").count(), 6, "every task with dependencies");
    assert_eq!(py.matches("skip_on_exit_code=99").count(), 2, "import and pull");
    assert!(py.contains("k8s.V1EnvVar(name=\"MOLDOPS_PIPELINE_RUN\", value=\"{{ run_id }}\")"));
    assert!(!py.contains("moldops.io/run-id"), "Airflow run ids are no label values");
    assert!(py.contains("default_mode=256"), "secret files readable by the owner only");
}

#[test]
fn the_argo_yaml_has_a_template_and_a_cron_workflow() {
    let yaml = argo::render(&learning(), &ArgoOptions::default()).expect("render");
    let docs: Vec<&str> = yaml.split("---\n").collect();
    assert_eq!(docs.len(), 2);
    assert!(docs[0].starts_with("apiVersion: \"argoproj.io/v1alpha1\"\nkind: \"WorkflowTemplate\"\n"));
    assert!(
        docs[1].contains("schedules:\n    - \"0 3 * * 0\"\n")
            && docs[1].contains("concurrencyPolicy: \"Forbid\"")
    );
    assert!(yaml.contains("      name: \"task-train\"\n") || yaml.contains("    - name: \"task-train\"\n"));
    assert!(yaml.contains("cap: \"600s\"") && yaml.contains("factor: 2\n"));
    let mut unscheduled = learning();
    unscheduled.schedule = None;
    let yaml = argo::render(&unscheduled, &ArgoOptions::default()).expect("render");
    assert!(!yaml.contains("CronWorkflow"), "no schedule, no CronWorkflow");
}

#[test]
fn yaml_strings_are_always_quoted_and_escaped() {
    let v = serde_json::json!({ "on": "no", "a b": ["x\"\\\n\u{85}", 1, true, null, {}, []], "k": { "z": 1, "name": "n" } });
    let y = yaml::to_yaml(&v);
    assert_eq!(
        y,
        "\"a b\":\n  - \"x\\\"\\\\\\n\\u0085\"\n  - 1\n  - true\n  - null\n  - {}\n  - []\nk:\n  name: \"n\"\n  z: 1\n\"on\": \"no\"\n"
    );
}

#[test]
fn the_skip_check_reads_the_environment() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    };
    let absent = |_: &Path| Ok(false);
    assert_eq!(skip_unless_exists(env(&[]), absent).expect("ok"), None, "no variable: run");
    let path = &[(SKIP_UNLESS_EXISTS_ENV, "/x")];
    assert_eq!(skip_unless_exists(env(path), |_: &Path| Ok(true)).expect("ok"), None, "present: run");
    assert_eq!(skip_unless_exists(env(path), absent).expect("ok"), Some(0));
    let coded = &[(SKIP_UNLESS_EXISTS_ENV, "/x"), (SKIP_EXIT_CODE_ENV, "99")];
    assert_eq!(skip_unless_exists(env(coded), absent).expect("ok"), Some(99));
    let bad = &[(SKIP_UNLESS_EXISTS_ENV, "/x"), (SKIP_EXIT_CODE_ENV, "300")];
    assert!(skip_unless_exists(env(bad), absent).is_err());
}
