//! The admission policy that keeps the signing key to the train task
//! (`deploy/k8s/base/admission.yaml`), evaluated by an independent CEL implementation
//! (cel-python, `peers/admission_check.py`) on the Jobs the runner really builds from the
//! shipped pipeline — all admitted — and on hostile variants of them — each denied.

use moldops_cloud::pipeline::dag::PipelineDef;
use moldops_cloud::pipeline::jobspec::{JobInput, build_job};
use moldops_cloud::pipeline::kube_settings::KubeSettings;
use moldops_tests::{asset, python};
use serde_json::{Value, json};
use std::process::Command;

/// Every task's Job as JSON, by task name, as the runner builds it from `def` with `settings`.
pub(crate) fn jobs_of(def: &PipelineDef, settings: &KubeSettings) -> Vec<(String, Value)> {
    def.tasks
        .iter()
        .map(|t| {
            let input = JobInput {
                settings,
                namespace: "moldops",
                run_id: "r1",
                task: t,
                attempt: 1,
                owner: ("moldops-run-r1", "uid-1"),
                timeout_s: None,
            };
            let job = build_job(&input).expect("job");
            (t.name.clone(), serde_json::to_value(&job).expect("json"))
        })
        .collect()
}

/// Every shipped task's Job as JSON, by task name.
fn shipped_jobs() -> Vec<(String, Value)> {
    let text = std::fs::read_to_string(asset("../deploy/k8s/base/pipeline.toml")).expect("pipeline.toml");
    let def = PipelineDef::parse(&text, "pipeline.toml").expect("shipped pipeline");
    jobs_of(&def, &def.kubernetes)
}

/// The policy's verdict per case: the messages of the validations each one fails.
fn verdicts(cases: &[(String, Value)]) -> Vec<(String, Vec<String>)> {
    let tmp = moldops_tests::test_dir();
    let file = tmp.path().join("jobs.json");
    let list: Vec<Value> = cases.iter().map(|(n, j)| json!({"name": n, "job": j})).collect();
    std::fs::write(&file, serde_json::to_vec(&list).expect("json")).expect("jobs.json");
    let out = Command::new(python())
        .arg(asset("peers/admission_check.py"))
        .arg(asset("../deploy/k8s/base/admission.yaml"))
        .arg(&file)
        .output()
        .expect("run admission_check.py");
    assert!(out.status.success(), "admission_check.py: {}", String::from_utf8_lossy(&out.stderr));
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).expect("verdicts are JSON");
    v.iter()
        .map(|c| {
            let denied =
                c["denied"].as_array().into_iter().flatten().filter_map(|m| m.as_str().map(String::from));
            (c["name"].as_str().unwrap_or_default().to_string(), denied.collect())
        })
        .collect()
}

#[test]
fn the_admission_policy_admits_the_shipped_jobs_and_denies_hostile_ones() {
    let shipped = shipped_jobs();
    let job = |name: &str| shipped.iter().find(|(n, _)| n == name).map(|(_, j)| j.clone()).expect(name);
    let signing_volume = json!({"name": "key", "secret": {"secretName": "moldops-signing-key"}});
    let mut hostile: Vec<(String, Value, &str)> = Vec::new();
    let mut evaluate_with_key = job("evaluate");
    evaluate_with_key["spec"]["template"]["spec"]["volumes"]
        .as_array_mut()
        .expect("volumes")
        .push(signing_volume);
    hostile.push(("evaluate mounting the signing key".into(), evaluate_with_key, "signing key"));
    let mut train_running_a_shell = job("train");
    train_running_a_shell["spec"]["template"]["spec"]["containers"][0]["args"] =
        json!(["evaluate", "--lake", "/x"]);
    hostile.push((
        "a train-labelled Job running something else".into(),
        train_running_a_shell,
        "signing key",
    ));
    let mut env_key = job("augment");
    env_key["spec"]["template"]["spec"]["containers"][0]["envFrom"] =
        json!([{"secretRef": {"name": "moldops-signing-key"}}]);
    hostile.push(("augment reading the key into its environment".into(), env_key, "environment"));
    let mut other_secret = job("etl");
    other_secret["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "moldops-ingest-config", "key": "cloud.toml"}}}]);
    hostile.push(("etl reading another Secret".into(), other_secret, "environment"));
    let mut foreign_image = job("etl");
    foreign_image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("alpine:3");
    hostile.push(("a foreign image".into(), foreign_image, "images"));
    let mut host_path = job("etl");
    host_path["spec"]["template"]["spec"]["volumes"]
        .as_array_mut()
        .expect("volumes")
        .push(json!({"name": "root", "hostPath": {"path": "/"}}));
    hostile.push(("a hostPath volume".into(), host_path, "hostPath"));
    let mut privileged = job("etl");
    privileged["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = json!(true);
    hostile.push(("a privileged container".into(), privileged, "privileged"));

    let mut cases: Vec<(String, Value)> =
        shipped.iter().map(|(n, j)| (format!("shipped {n}"), j.clone())).collect();
    cases.extend(hostile.iter().map(|(n, j, _)| (n.clone(), j.clone())));
    let got = verdicts(&cases);
    assert_eq!(got.len(), cases.len());
    for (name, denied) in &got[..shipped.len()] {
        assert!(denied.is_empty(), "{name} is denied: {denied:?}");
    }
    assert!(shipped.iter().any(|(n, _)| n == "train"), "the shipped pipeline has a train task");
    for ((name, denied), (_, _, why)) in got[shipped.len()..].iter().zip(&hostile) {
        assert!(denied.iter().any(|m| m.contains(why)), "{name} must be denied ({why}): {denied:?}");
    }
}
