"""JSON schemas for custom resources, made from the operators' own CRD manifests.

A CustomResourceDefinition carries an OpenAPI v3 schema per version (`openAPIV3Schema`). It is made into
a JSON schema that validates as strictly as `kubectl apply --validate=strict` would: every object that
declares its properties refuses undeclared ones (the API server would prune them silently, so a typo in
the chart would simply vanish), unless the CRD keeps unknown fields (`x-kubernetes-preserve-unknown-
fields`); OpenAPI's `nullable` becomes a null type; apiVersion and kind are pinned. The CEL rules
(`x-kubernetes-validations`) are not evaluated, and `metadata` is only an object here (the API server
checks it as every object's ObjectMeta; so do the deploy tests).

scripts/install-crd-schemas runs `python -m tests.deploy.crd_schemas OUT_DIR CRD_FILE...` to write one
`<kind>-<group>-<version>.json` per served version into OUT_DIR; the deploy tests read them from there.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

Schema = dict[str, Any]


def schema_file_name(api_version: str, kind: str) -> str:
    """`monitoring.coreos.com/v1`, `ServiceMonitor` -> `servicemonitor-monitoring.coreos.com-v1.json`."""
    group, _, version = api_version.rpartition("/")
    return f"{kind.lower()}-{group}-{version}.json"


def strict(node: Any) -> Any:
    """The OpenAPI schema `node` as a JSON schema that refuses undeclared fields."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict(value) for key, value in node.items()}
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserves = out.get("x-kubernetes-preserve-unknown-fields") is True
    declared = out.get("type") == "object" and "properties" in out
    if declared and "additionalProperties" not in out and not preserves:
        out["additionalProperties"] = False
    return out


def schemas_of(crd: dict[str, Any]) -> dict[str, Schema]:
    """File name -> JSON schema, for each served version of one CustomResourceDefinition."""
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"]
    found = {}
    for version in spec["versions"]:
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if not version.get("served") or schema is None:
            continue
        api_version = f"{group}/{version['name']}"
        converted = strict(schema)
        properties = converted.setdefault("properties", {})
        properties["apiVersion"] = {"const": api_version}
        properties["kind"] = {"const": kind}
        # Some CRDs (Istio's) leave metadata out: the tests check it against the API's ObjectMeta.
        properties.setdefault("metadata", {"type": "object"})
        converted["required"] = sorted({*converted.get("required", []), "apiVersion", "kind", "metadata"})
        converted["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        converted["title"] = f"{kind} {api_version}"
        found[schema_file_name(api_version, kind)] = converted
    return found


def convert(crd_files: Iterable[Path], out_dir: Path) -> list[str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in crd_files:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            for name, schema in schemas_of(doc).items():
                (out_dir / name).write_text(json.dumps(schema, indent=1, sort_keys=True))
                written.append(name)
    return written


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m tests.deploy.crd_schemas OUT_DIR CRD_FILE...", file=sys.stderr)
        return 2
    written = convert([Path(p) for p in argv[1:]], Path(argv[0]))
    print(f"crd_schemas: {len(written)} schemas in {argv[0]}")
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
