"""`make lint`'s check of a compose file, without a container engine.

Three checks, each one that `docker compose config` would also fail:
- the Compose Specification's JSON schema (the copy check-jsonschema ships); where the schema
  takes any string so that `${VAR}` can stand for a number or a boolean, only `${…}` or the number
  or boolean itself is taken here, so `replicas: two` fails as it does in Compose;
- YAML that Compose refuses and PyYAML lets through: a key written twice;
- names that must exist: a service in `depends_on`, a named volume, a bind-mounted file or the
  build context (relative to the compose file).

Usage: python tools/check_compose.py compose.yaml
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

# A string is the number or boolean itself, or contains an interpolation (`$VAR`, `${VAR:-2}`).
STRICT_STRINGS = {
    "integer": r"^\s*[-+]?\d+\s*$|\$",
    "number": r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)\s*$|\$",
    "boolean": r"^(true|True|TRUE|false|False|FALSE|yes|no|on|off|1|0)$|\$",
}
# Fields the schema types "integer or string" whose strings are sizes with a unit ("512m").
BYTE_SIZES = {"mem_limit", "memswap_limit", "shm_size", "mem_reservation", "rate"}


def compose_schema() -> dict[str, Any]:
    vendor = files("check_jsonschema.builtin_schemas") / "vendor" / "compose-spec.json"
    schema: dict[str, Any] = json.loads(vendor.read_text(encoding="utf-8"))
    return strict(schema)


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema, with "a number or any string" narrowed to a number or `${…}`."""
    tightened = copy.deepcopy(schema)

    def walk(node: Any, key: str | None) -> None:
        if isinstance(node, dict):
            kind = node.get("type")
            if (
                isinstance(kind, list)
                and len(kind) == 2
                and kind[1] == "string"
                and kind[0] in STRICT_STRINGS
                and key not in BYTE_SIZES
            ):
                del node["type"]
                node["anyOf"] = [
                    {"type": kind[0]},
                    {"type": "string", "pattern": STRICT_STRINGS[kind[0]]},
                ]
                node["x-expected"] = kind[0]
            for child_key, child in node.items():
                walk(child, child_key)
        elif isinstance(node, list):
            for child in node:
                walk(child, key)

    walk(tightened, None)
    return tightened


class _UniqueKeyLoader(yaml.SafeLoader):
    pass


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen and key != "<<":
            line = key_node.start_mark.line + 1
            raise yaml.constructor.ConstructorError(
                None, None, f"line {line}: key {key!r} written twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def problems(path: Path) -> list[str]:
    """What is wrong with the compose file at `path`: empty when nothing is."""
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except (OSError, yaml.YAMLError) as error:
        return [f"not readable YAML: {error}"]
    if not isinstance(document, dict):
        return ["not a mapping of top-level keys (services, volumes…)"]
    errors = list(Draft202012Validator(compose_schema()).iter_errors(document))
    if any(error.validator != "unevaluatedProperties" for error in errors):
        # A property that failed its own check is reported "unevaluated" by its parent too.
        errors = [error for error in errors if error.validator != "unevaluatedProperties"]
    if errors:
        return sorted({_describe(error) for error in errors})
    return list(_dangling_names(document, path.parent))


def _describe(error: ValidationError) -> str:
    if error.context and error.schema.get("x-expected") is None:
        # Valid under none of the forms (oneOf, anyOf): say why not under the form of its type.
        same_type = [e for e in error.context if e.validator != "type"] or error.context
        return _describe(best_match(same_type))
    where = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    expected = error.schema.get("x-expected") if isinstance(error.schema, dict) else None
    if expected is not None:
        return f"{where}: {error.instance!r} is not {'an' if expected == 'integer' else 'a'} {expected} (nor ${{…}})"
    return f"{where}: {error.message}"


def _dangling_names(document: dict[str, Any], root: Path) -> Iterator[str]:
    services: dict[str, Any] = document.get("services") or {}
    volumes = set((document.get("volumes") or {}).keys())
    for name, service in services.items():
        service = service or {}
        depends = service.get("depends_on") or []
        for other in depends if isinstance(depends, list) else depends.keys():
            if other not in services:
                yield f"services.{name}.depends_on: no service {other!r}"
        for mount in service.get("volumes") or []:
            source = mount.get("source") if isinstance(mount, dict) else mount.split(":")[0]
            if not source or "$" in source:
                continue
            if source.startswith((".", "/", "~")):
                if source.startswith(".") and not (root / source).exists():
                    yield f"services.{name}.volumes: {source} does not exist"
            elif source not in volumes:
                yield f"services.{name}.volumes: {source!r} is not declared under top-level volumes"
        build = service.get("build")
        context = build if isinstance(build, str) else (build or {}).get("context")
        if context and "$" not in context and not (root / context / "Dockerfile").exists():
            yield f"services.{name}.build: no Dockerfile in {context}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    path = Path(argv[0])
    found = problems(path)
    for problem in found:
        print(f"{path}: {problem}", file=sys.stderr)
    if not found:
        print(f"{path}: valid (Compose Specification schema, names)")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
