#!/usr/bin/env python3
"""Evaluates a Kubernetes ValidatingAdmissionPolicy's CEL (variables, then validations) on
Jobs, with cel-python (an independent CEL implementation, not the API server's).

  admission_check.py POLICY.yaml JOBS.json

JOBS.json is a list of {"name": ..., "job": {...}}. Prints one JSON line: a list of
{"name": ..., "denied": [messages of the validations that are false]}.
"""
import json
import sys

import celpy
import yaml
from celpy import celtypes


def main():
    docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
    policy = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicy")
    jobs = json.load(open(sys.argv[2]))
    env = celpy.Environment()
    compiled = {}

    def run(expr, activation):
        if expr not in compiled:
            compiled[expr] = env.program(env.compile(expr))
        return compiled[expr].evaluate(activation)

    out = []
    for case in jobs:
        activation = {"object": celpy.json_to_cel(case["job"])}
        variables = {}
        for v in policy["spec"].get("variables", []):
            activation["variables"] = celtypes.MapType({celtypes.StringType(k): x for k, x in variables.items()})
            variables[v["name"]] = run(v["expression"], activation)
        activation["variables"] = celtypes.MapType({celtypes.StringType(k): x for k, x in variables.items()})
        denied = []
        for val in policy["spec"]["validations"]:
            if not bool(run(val["expression"], activation)):
                denied.append(val["message"])
        out.append({"name": case["name"], "denied": denied})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
