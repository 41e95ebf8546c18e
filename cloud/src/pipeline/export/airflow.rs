//! The Airflow DAG of an [`Export`]: one Python file (template `airflow_dag.py.j2`), each task a
//! `KubernetesPodOperator` with the executor's pod, for Airflow 2.7+ and 3.x.
//!
//! Strings go out as Python literals (a JSON string is one). Those in the operator's templated
//! fields (image, command, arguments, environment, labels, resources, volume names, node
//! selector) are rendered by Airflow's Jinja, which would read `{{ … }}`, `{% … %}` and
//! `{# … #}`, drop a trailing newline and turn `\r\n` into `\n`: a piece of text holding `{`,
//! `\r` or `\n` is therefore written as a Jinja string expression (`{{ '…' }}`), which renders
//! to exactly that text. The run id becomes `{{ run_id }}` and the attempt `{{ ti.try_number }}`.

use super::{Export, Part, SKIP_EXIT_CODE_ENV, add_env, parts};
use crate::pipeline::jobspec::LABEL_RUN;
use anyhow::{Context, Result};
use minijinja::{Environment, Error, ErrorKind, Value};
use serde::Serialize;

/// The exit code of a skipped task in the DAG (`skip_on_exit_code`).
pub const SKIP_EXIT_CODE: u8 = 99;

const TEMPLATE: &str = include_str!("airflow_dag.py.j2");

/// One task as the template reads it.
#[derive(Serialize)]
struct TaskCtx {
    name: String,
    deps: Vec<String>,
    retries: u32,
    backoff_s: f64,
    backoff_factor: f64,
    backoff_max_s: f64,
    timeout_s: Option<u64>,
    when_exists: Option<String>,
    labels: std::collections::BTreeMap<String, String>,
    pod: serde_json::Value,
}

/// The DAG file's text.
pub fn render(export: &Export) -> Result<String> {
    let mut tasks = Vec::new();
    for t in &export.tasks {
        let mut pod = t.pod.clone();
        if t.when_exists.is_some()
            && let Some(c) = pod.containers.first_mut()
        {
            add_env(c.env.get_or_insert_default(), SKIP_EXIT_CODE_ENV, &SKIP_EXIT_CODE.to_string());
        }
        // Airflow's run ids (`scheduled__2026-01-04T03:00:00+00:00`) are no label values: the
        // operator labels its pods with a cleaned-up `run_id` itself.
        let mut labels = t.labels.clone();
        labels.remove(LABEL_RUN);
        tasks.push(TaskCtx {
            name: t.name.clone(),
            deps: t.deps.clone(),
            retries: t.retries,
            backoff_s: t.backoff_s,
            backoff_factor: t.backoff_factor,
            backoff_max_s: t.backoff_max_s,
            timeout_s: t.timeout_s,
            when_exists: t.when_exists.clone(),
            labels,
            pod: serde_json::to_value(&pod)?,
        });
    }
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env.add_filter("py", |v: Value| python(&v, false));
    env.add_filter("tpl", |v: Value| python(&v, true));
    env.add_template("airflow_dag.py", TEMPLATE).context("the Airflow DAG template")?;
    let ctx = minijinja::context! {
        name => export.name,
        schedule => export.schedule,
        max_parallel => export.max_parallel,
        namespace => export.namespace,
        skip_exit_code => SKIP_EXIT_CODE,
        tasks => tasks,
    };
    env.get_template("airflow_dag.py")?.render(ctx).context("rendering the Airflow DAG")
}

/// A value as a Python literal; `templated`: strings (and dictionary values) as Airflow must
/// see them in a templated field. Undefined and none are `None`.
fn python(v: &Value, templated: bool) -> Result<String, Error> {
    if v.is_undefined() || v.is_none() {
        return Ok("None".into());
    }
    let json = serde_json::to_value(v).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    Ok(literal(&json, templated))
}

fn literal(v: &serde_json::Value, templated: bool) -> String {
    use serde_json::Value as J;
    match v {
        J::Null => "None".into(),
        J::Bool(b) => if *b { "True" } else { "False" }.into(),
        J::Number(n) => n.to_string(),
        J::String(s) if templated => quote(&jinja_text(s)),
        J::String(s) => quote(s),
        J::Array(items) => {
            let items: Vec<String> = items.iter().map(|i| literal(i, templated)).collect();
            format!("[{}]", items.join(", "))
        }
        J::Object(map) => {
            let items: Vec<String> =
                map.iter().map(|(k, v)| format!("{}: {}", quote(k), literal(v, templated))).collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// A Python string literal (a JSON string is one).
fn quote(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The Jinja source Airflow renders to `s`, with the run id and attempt as Airflow's.
pub fn jinja_text(s: &str) -> String {
    parts(s)
        .into_iter()
        .map(|p| match p {
            Part::RunId => "{{ run_id }}".into(),
            Part::Attempt => "{{ ti.try_number }}".into(),
            Part::Lit(l) if l.contains(['{', '\r', '\n']) => format!("{{{{ '{}' }}}}", jinja_string(l)),
            Part::Lit(l) => l.into(),
        })
        .collect()
}

/// The inside of a single-quoted Jinja string literal: Jinja decodes Python's escapes.
fn jinja_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}
