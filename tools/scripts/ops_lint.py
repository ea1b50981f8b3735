"""`make lint`'s checks of the operations assets that need no Go tool.

python -m tools.scripts.ops_lint compose     # docker-compose.yml against the Compose spec schema
python -m tools.scripts.ops_lint dashboard   # the Grafana dashboard: JSON, and known metrics only
python -m tools.scripts.ops_lint asyncapi    # docs/asyncapi.yaml is what the apps generate now
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_SCHEMA = ROOT / "deploy" / "schemas" / "compose-spec.json"
DASHBOARD = ROOT / "deploy" / "monitoring" / "grafana-dashboard.json"
ALERTS = ROOT / "deploy" / "monitoring" / "alerts.yaml"
ASYNCAPI = ROOT / "docs" / "asyncapi.yaml"


def compose_errors(path: Path = ROOT / "docker-compose.yml") -> list[str]:
    from jsonschema import Draft201909Validator

    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = Draft201909Validator(schema)  # its $schema names draft 2019-09
    document = yaml.safe_load(path.read_text())
    errors = [
        f"{path.name}: {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(document)
    ]
    for name, service in document.get("services", {}).items():
        runs_a_stage = service.get("command", [""])[0] in ("faststream", "uvicorn")
        if runs_a_stage and "9100" not in service.get("expose", []):
            errors.append(f"{path.name}: service {name} does not expose its metrics port 9100")
    return errors


_METRIC = re.compile(r"\b(promoter_[a-z_]+|faststream_[a-z_]+)\b")


def dashboard_errors() -> list[str]:
    from faststream.kafka.prometheus import KafkaPrometheusMiddleware

    # FastStream registers its metrics on the first broker; make them known here.
    registry = CollectorRegistry()
    KafkaPrometheusMiddleware(registry=registry, app_name="lint")
    served = _served_names(registry)
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [r["expr"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    return [
        f"unknown metric {name} in: {expr}"
        for expr in exprs
        for name in _METRIC.findall(expr)
        if name not in served
    ]


def _served_names(faststream_registry: CollectorRegistry) -> set[str]:
    from prometheus_client import REGISTRY, generate_latest

    from shared import ops

    # One sample of each labelled project metric, so that every family is listed.
    ops.DEAD_LETTERS.labels("lint", "Lint")
    ops.BATCH_SIZE.labels("lint", "lint")
    ops.DECISIONS.labels("lint", "lint")
    ops.REDACTIONS.labels("lint")
    ops.FIXTURES.labels("lint")
    ops.RECEIVER_REQUESTS.labels("200")
    text = generate_latest(REGISTRY).decode()
    text += generate_latest(faststream_registry).decode()
    names = set(re.findall(r"^# (?:HELP|TYPE) (\S+)", text, re.M))
    names |= {m.split("{")[0] for m in re.findall(r"^([a-z_]+)", text, re.M)}
    names.add("promoter_consumer_lag")
    names |= {f"{n}{s}" for n in list(names) for s in ("_total", "_bucket", "_count", "_sum")}
    return names


def asyncapi_errors() -> list[str]:
    from tools.scripts.asyncapi import render

    wanted = render()
    current = ASYNCAPI.read_text() if ASYNCAPI.exists() else ""
    if current == wanted:
        return []
    diff = difflib.unified_diff(
        current.splitlines(), wanted.splitlines(), "docs/asyncapi.yaml", "generated", lineterm=""
    )
    return [
        "docs/asyncapi.yaml differs from the FastStream apps: run "
        "`.venv/bin/python -m tools.scripts.asyncapi --write`",
        *list(diff)[:40],
    ]


def main() -> None:
    checks = {"compose": compose_errors, "dashboard": dashboard_errors, "asyncapi": asyncapi_errors}
    errors = []
    for name in sys.argv[1:] or list(checks):
        found = checks[name]()
        errors += found
        print(f"{name}: {'FAILED' if found else 'ok'}")
    for error in errors:
        print(error, file=sys.stderr)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
