"""Validates Argo Workflows manifests with Argo's own models and writes a JSON report to OUT.

Usage: argo_check.py MANIFESTS.yaml OUT

Each YAML document is parsed with hera's models of Argo's API (PyPI `hera`, generated from
Argo's OpenAPI schema): `WorkflowTemplate` or `CronWorkflow` by its `kind`. The models ignore
unknown fields, so each document is also dumped back from the model and compared with the
input: a misspelt or unknown key shows up as "dropped", a value the model converted as
"changed". Every container template also becomes a Pod (the template's container, volumes,
node selector, tolerations and security context with the workflow's service account and pull
secrets) checked by `kubernetes-validate --strict` against Kubernetes 1.33's schema.
Report: {"documents": [{"kind", "name", "error", "dropped": [paths], "changed": [paths]}],
"pods": [{"template", "errors": [..]}], "parsed": [the documents as read]}.
"""

import json
import sys

import yaml


def diff(a, b, path, dropped, changed):
    """Paths where `b` (the model's dump) lacks or alters what `a` (the input) holds."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k, v in a.items():
            if k not in b:
                dropped.append(f"{path}.{k}")
            else:
                diff(v, b[k], f"{path}.{k}", dropped, changed)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            diff(x, y, f"{path}[{i}]", dropped, changed)
    elif a != b and str(a) != str(b):
        changed.append(path)


def pods(doc):
    spec = doc.get("spec", {})
    for t in spec.get("templates", []):
        if "container" not in t:
            continue
        pod_spec = {"containers": [t["container"]], "restartPolicy": "Never"}
        for key in ("volumes", "nodeSelector", "tolerations", "securityContext"):
            if key in t:
                pod_spec[key] = t[key]
        for key in ("serviceAccountName", "automountServiceAccountToken", "imagePullSecrets"):
            if key in spec:
                pod_spec[key] = spec[key]
        yield t["name"], {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": t["name"], "labels": t.get("metadata", {}).get("labels", {})},
            "spec": pod_spec,
        }


def main():
    from hera.workflows.models import CronWorkflow, WorkflowTemplate
    import kubernetes_validate

    models = {"WorkflowTemplate": WorkflowTemplate, "CronWorkflow": CronWorkflow}
    report = {"documents": [], "pods": []}
    with open(sys.argv[1]) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    report["parsed"] = docs
    for doc in docs:
        entry = {"kind": doc.get("kind"), "name": doc.get("metadata", {}).get("name"), "error": None}
        entry["dropped"], entry["changed"] = [], []
        model = models.get(doc.get("kind"))
        if model is None:
            entry["error"] = f"unexpected kind {doc.get('kind')!r}"
        else:
            try:
                dumped = model.model_validate(doc).model_dump(by_alias=True, exclude_none=True, mode="json")
                diff(doc, dumped, "", entry["dropped"], entry["changed"])
            except Exception as e:  # pydantic's ValidationError, reported rather than raised
                entry["error"] = str(e)
        report["documents"].append(entry)
        for name, pod in pods(doc):
            try:
                kubernetes_validate.validate(pod, "1.33.0", strict=True)
                errors = []
            except kubernetes_validate.ValidationError as e:
                errors = [str(e)]
            report["pods"].append({"template": name, "errors": errors})
    with open(sys.argv[2], "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
