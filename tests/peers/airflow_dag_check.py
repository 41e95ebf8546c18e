"""Loads DAG files with Airflow itself and writes what it made of them as JSON to OUT (stdout
carries Airflow's own log lines).

Usage: airflow_dag_check.py DAG_FOLDER OUT [RUN_ID TRY_NUMBER]

Airflow (`apache-airflow` + `apache-airflow-providers-cncf-kubernetes`, tests/requirements.txt)
fills a DagBag from DAG_FOLDER. The output: {"import_errors": {file: error}, "dags": {dag_id:
{"timetable": {"type", "expression", "timezone"}, "max_active_runs", "max_active_tasks",
"catchup", "tasks": {task_id:
{...}}}}}; each task has its operator class, upstream ids, trigger rule, retry settings
(seconds), skip_on_exit_code, and "pod": the pod the operator would create after Airflow
rendered its templated fields with run_id RUN_ID and try number TRY_NUMBER
(`build_pod_request_obj()`, serialised by the Kubernetes client). AIRFLOW_HOME should be a
fresh folder; a dummy kubeconfig is written there (building a pod request reads one, nothing
connects).
"""

import json
import os
import sys
import tempfile


def kubeconfig():
    home = os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-home-"))
    os.makedirs(home, exist_ok=True)
    path = os.path.join(home, "kubeconfig")
    with open(path, "w") as f:
        f.write(
            "apiVersion: v1\nkind: Config\n"
            "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
            "users: [{name: u, user: {token: x}}]\n"
            "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
        )
    os.environ["KUBECONFIG"] = path


def seconds(delta):
    return None if delta is None else delta.total_seconds()


def timetable(t):
    """Kind, cron expression and time zone (Airflow 3's task SDK and Airflow 2 name them apart)."""
    expression = getattr(t, "expression", None) or getattr(t, "_expression", None)
    zone = getattr(t, "timezone", None) or getattr(t, "_timezone", None)
    return {"type": type(t).__name__, "expression": expression, "timezone": zone and str(zone)}


class TaskInstance:
    """What the DAG's templates read of `ti`."""

    def __init__(self, try_number):
        self.try_number = try_number


def main():
    folder = sys.argv[1]
    run_id = sys.argv[3] if len(sys.argv) > 3 else "manual__2026-01-04T03:00:00+00:00"
    try_number = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    kubeconfig()
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"  # Airflow 2 loads its examples by default
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3
    except ImportError:
        from airflow.models.dagbag import DagBag  # Airflow 2
    from kubernetes.client import ApiClient

    bag = DagBag(dag_folder=folder, safe_mode=False)
    out = {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "dags": {}}
    for dag_id, dag in bag.dags.items():
        tasks = {}
        for op in dag.tasks:
            op.render_template_fields({"run_id": run_id, "ti": TaskInstance(try_number)})
            pod = ApiClient().sanitize_for_serialization(op.build_pod_request_obj())
            tasks[op.task_id] = {
                "operator": type(op).__name__,
                "upstream": sorted(op.upstream_task_ids),
                "trigger_rule": str(getattr(op.trigger_rule, "value", op.trigger_rule)),
                "retries": op.retries,
                "retry_delay_s": seconds(op.retry_delay),
                "retry_exponential_backoff": op.retry_exponential_backoff,
                "max_retry_delay_s": seconds(op.max_retry_delay),
                "execution_timeout_s": seconds(op.execution_timeout),
                "skip_on_exit_code": sorted(op.skip_on_exit_code or []),
                "pod": pod,
            }
        out["dags"][dag_id] = {
            "timetable": timetable(dag.timetable),
            "max_active_runs": dag.max_active_runs,
            "max_active_tasks": dag.max_active_tasks,
            "catchup": dag.catchup,
            "tasks": tasks,
        }
    with open(sys.argv[2], "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
