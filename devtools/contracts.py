"""Contracts generated from the code: OpenAPI, event schemas, collection docs.

    python -m devtools.contracts write    # regenerate docs/ (make contracts)
    python -m devtools.contracts check    # exit 1 when docs/ differs from the code

Both refuse an event schema that changed incompatibly (a removed field, a changed
type, a new required field) without a new version, compared with the committed
``docs/events/*.json``; ``write`` then writes nothing.

Everything comes from the declarations the code already uses: the typed
callables (``CALLABLES``), event types (``EVENT_TYPES``), subscribers
(``SUBSCRIBERS``) and collection declarations (``COLLECTIONS``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EMULATOR_SERVER = "http://127.0.0.1:5001/demo-flowsuite/us-central1"
ERROR_STATUSES = {
    "400": ("INVALID_ARGUMENT or FAILED_PRECONDITION", "Bad input (details.fields names each failing field) or a state conflict."),
    "401": ("UNAUTHENTICATED", "Missing, expired, forged or revoked ID token (details.reason: user-not-found, "
                               "user-disabled, id-token-revoked)."),
    "403": ("PERMISSION_DENIED", "Signed in, but not allowed (role or ownership)."),
    "404": ("NOT_FOUND", "A document the request names does not exist."),
    "409": ("ALREADY_EXISTS", "The thing to create exists already."),
    "429": ("RESOURCE_EXHAUSTED", "A limit was reached."),
    "500": ("INTERNAL", "Unexpected; details.correlation_id finds the log line."),
}


def load(root: Path = ROOT) -> dict[str, Any]:
    """Imports every domain the way the Firebase CLI's discovery does (from ``root``'s
    ``functions/``, this checkout's unless told; once per process)."""
    functions = str(root / "functions")
    if functions not in sys.path:
        sys.path.insert(0, functions)
    import importlib

    importlib.import_module("main")
    from flowsuite.registry import DOMAINS

    importlib.import_module("flowsuite.core.kernel_documents")  # the kernel's records (ops owns them)
    for domain in DOMAINS:
        try:
            importlib.import_module(f"flowsuite.{domain}.documents")
        except ModuleNotFoundError:
            pass
    from flowsuite.core.bus import SUBSCRIBERS
    from flowsuite.core.callables import CALLABLES
    from flowsuite.core.documents import COLLECTIONS
    from flowsuite.core.events import EVENT_TYPES

    return {"callables": CALLABLES, "events": EVENT_TYPES, "subscribers": SUBSCRIBERS, "collections": COLLECTIONS}


# ---- OpenAPI ---------------------------------------------------------------------

def openapi(decl: dict[str, Any]) -> dict[str, Any]:
    from pydantic.json_schema import models_json_schema

    callables = sorted(decl["callables"].values(), key=lambda c: c.name)
    models = sorted({m for c in callables for m in (c.request, c.response)}, key=lambda m: m.__name__)
    keyed, definitions = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    schemas = dict(definitions.get("$defs", {}))
    schemas["CallableError"] = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["status", "message"],
            "properties": {
                "status": {"type": "string", "examples": ["INVALID_ARGUMENT"]},
                "message": {"type": "string"},
                "details": {"type": "object", "properties": {
                    "correlation_id": {"type": "string"},
                    "fields": {"type": "array", "items": {"type": "object", "properties": {
                        "field": {"type": "string"}, "type": {"type": "string"}, "message": {"type": "string"}}}},
                }},
            },
        }},
    }
    paths: dict[str, Any] = {}
    for spec in callables:
        request_ref = keyed[(spec.request, "validation")]["$ref"]
        response_ref = keyed[(spec.response, "validation")]["$ref"]
        roles = f" Roles: {', '.join(sorted(spec.roles))}." if spec.roles else ""
        idem = " Idempotent: repeat with the same idempotency_key to get the first answer." if spec.idempotent else ""
        revoked = (" A token of a deleted or disabled account, or issued before a role change or a sign-out"
                   " everywhere, is refused (UNAUTHENTICATED, details.reason)." if spec.auth and spec.checks_revocation
                   else "")
        operation = {
            "operationId": spec.name,
            "summary": spec.summary,
            "description": f"Domain: {spec.domain}.{roles}{idem}{revoked} A Firebase callable: send `{{\"data\": ...}}`.",
            "tags": [spec.domain],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["data"], "properties": {"data": {"$ref": request_ref}}}}}},
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["result"], "properties": {"result": {"$ref": response_ref}}}}}},
                **{code: {"description": f"{status}: {text}", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/CallableError"}}}}
                   for code, (status, text) in ERROR_STATUSES.items()},
            },
            "parameters": [{"name": "X-Correlation-Id", "in": "header", "required": False,
                            "description": "Optional id that follows this request through every service.",
                            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_\\-]{8,64}$"}}],
        }
        if not spec.auth:
            operation["security"] = []
        paths[f"/{spec.name}"] = {"post": operation}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flowsuite callables",
            "version": "1.0.0",
            "description": "Every callable of the suite as plain HTTPS: POST {\"data\": ...} with "
                           "`Authorization: Bearer <Firebase ID token>`; the answer is {\"result\": ...} "
                           "or {\"error\": {status, message, details}}. Generated from the code.",
        },
        "servers": [
            {"url": EMULATOR_SERVER, "description": "Local Firebase emulators (make dev)"},
            {"url": "https://{region}-{project}.cloudfunctions.net", "description": "Production",
             "variables": {"region": {"default": "us-central1"}, "project": {"default": "your-project-id"}}},
        ],
        "security": [{"firebaseIdToken": []}],
        "tags": [{"name": d} for d in sorted({c.domain for c in callables})],
        "paths": paths,
        "components": {
            "securitySchemes": {"firebaseIdToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                                    "description": "A Firebase Auth ID token ([auth_token] in FlutterFlow)."}},
            "schemas": dict(sorted(schemas.items())),
        },
    }


def openapi_flutterflow(spec: dict[str, Any]) -> dict[str, Any]:
    """The same API for FlutterFlow's OpenAPI import: OpenAPI 3.0, every schema inline (its
    import loses request bodies behind ``$ref`` and ``allOf``), 3.1's ``null`` unions as
    ``nullable``, numeric exclusive bounds as 3.0's booleans. Pure."""
    components = spec["components"]["schemas"]

    def down(node: Any, seen: tuple[str, ...] = ()) -> Any:
        if isinstance(node, list):
            return [down(x, seen) for x in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name in seen:  # a recursive model: an open object instead of an endless inline
                return {"type": "object"}
            merged = {**components[name], **{k: v for k, v in node.items() if k != "$ref"}}
            return down(merged, (*seen, name))
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "allOf":
                for part in down(value, seen):
                    out.update(part)
            elif key in ("anyOf", "oneOf"):
                parts = [p for p in down(value, seen) if p != {"type": "null"}]
                if len(parts) < len(value):
                    out["nullable"] = True
                if len(parts) == 1:
                    out.update(parts[0])
                else:
                    out[key] = parts
            elif key == "type" and isinstance(value, list):
                kinds = [t for t in value if t != "null"]
                out["type"] = kinds[0] if len(kinds) == 1 else "string"
                if "null" in value:
                    out["nullable"] = True
            elif key == "const":
                out["enum"] = [value]
            elif key == "examples":
                if isinstance(value, list) and value:
                    out["example"] = value[0]
            elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
                out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
                out[key] = True
            elif key == "properties":
                out[key] = {name: down(prop, seen) for name, prop in value.items()}
            else:
                out[key] = down(value, seen)
        return out

    paths = {path: {verb: down(op) for verb, op in ops.items()} for path, ops in spec["paths"].items()}
    return {
        **{k: v for k, v in spec.items() if k not in ("paths", "components", "openapi")},
        "openapi": "3.0.3",
        "info": {**spec["info"], "title": "flowsuite callables (FlutterFlow import)",
                 "description": spec["info"]["description"] + " OpenAPI 3.0 with every schema inline, for "
                                                              "FlutterFlow's API Calls import."},
        "paths": paths,
        "components": {"securitySchemes": spec["components"]["securitySchemes"]},
    }


# ---- types for the docs ---------------------------------------------------------------

def describe_type(prop: dict[str, Any], defs: dict[str, Any]) -> tuple[str, str]:
    """(Firestore type, FlutterFlow type) of a JSON-schema property."""
    if "anyOf" in prop:
        options = [p for p in prop["anyOf"] if p.get("type") != "null"]
        nullable = len(options) < len(prop["anyOf"])
        fs, ff = describe_type(options[0], defs) if options else ("null", "-")
        return (f"{fs} or null", f"{ff} (nullable)") if nullable else (fs, ff)
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return "map", f"Data Type `{name}`"
    fmt, kind = prop.get("format"), prop.get("type")
    if fmt == "document-reference":
        return "reference", "Doc Reference"
    if fmt == "date-time":
        return "timestamp", "DateTime"
    if "enum" in prop or "const" in prop:
        values = prop.get("enum") or [prop["const"]]
        return "string", f"String (one of {', '.join(map(str, values))})"
    if kind == "integer":
        return "number (integer)", "Integer"
    if kind == "number":
        return "number (double)", "Double"
    if kind == "boolean":
        return "boolean", "Boolean"
    if kind == "string":
        return "string", "String"
    if kind == "array":
        fs, ff = describe_type(prop.get("items", {}), defs)
        return f"array of {fs}", f"List <{ff}>"
    if kind == "object":
        return "map", "JSON / Data Type"
    return "any", "JSON"


def collections_md(decl: dict[str, Any]) -> str:
    lines = [
        "# Collections",
        "",
        "Generated from the domains' collection declarations (`python -m devtools.contracts write`).",
        "Each collection is written only by its owning domain; the app's access is enforced by",
        "`firestore.rules`. Choose the FlutterFlow type shown when you mirror a collection in",
        "FlutterFlow's schema editor. Amounts are integers in the currency's smallest unit.",
        "",
    ]
    for path, col in sorted(decl["collections"].items()):
        schema = col.model.model_json_schema(ref_template="#/$defs/{model}")
        defs = schema.get("$defs", {})
        lines += [f"## `{path}`", "", col.description, "",
                  f"- owner: **{col.domain}**", f"- app reads: {col.read}", f"- writes: {col.write}"]
        lines += [f"- {domain} reads: {why}" for domain, why in col.read_by]
        lines += [""]
        if schema.get("properties"):
            lines += field_table(schema["properties"], defs)
        for def_name, definition in sorted(defs.items()):
            lines += [f"Data Type `{def_name}`:", "", *field_table(definition.get("properties", {}), defs)]
    return "\n".join(lines).rstrip() + "\n"


def field_table(props: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    rows = ["| field | Firestore type | FlutterFlow type |", "|---|---|---|"]
    for name, prop in props.items():
        fs, ff = describe_type(prop, defs)
        rows.append(f"| `{name}` | {fs} | {ff} |")
    return [*rows, ""]


# ---- events --------------------------------------------------------------------------

def event_schemas(decl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, spec in sorted(decl["events"].items()):
        schema = spec.model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"flowsuite/events/{name}.json"
        schema["title"] = name
        schema["x-source"] = spec.source
        schema["x-schema-version"] = spec.version
        schema["x-versions"] = [{"version": v, "change": change} for v, change in spec.history]
        out[name] = schema
    return out


def committed_event_schemas() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((DOCS / "events").glob("*.json"))}


# Keys that document a field without changing what it accepts.
_DOC_KEYS = frozenset({"title", "description", "default", "examples", "$comment"})


def _shape(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _shape(v) for k, v in schema.items() if k not in _DOC_KEYS}
    if isinstance(schema, list):
        return [_shape(v) for v in schema]
    return schema


def _model_incompatibilities(where: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    out = []
    for field, prop in old_props.items():
        if field not in new_props:
            out.append(f"{where}{field}: removed")
        elif _shape(prop) != _shape(new_props[field]):
            out.append(f"{where}{field}: type changed")
    for field in sorted(new_required - old_required):
        out.append(f"{where}{field}: {'now required' if field in old_props else 'new required field'}")
    return out


def incompatibilities(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What makes ``new`` incompatible with ``old`` (two JSON schemas of one event's data). Pure.

    A consumer of either version must read the other's data: a removed field, a
    changed type (nullable, another enum, another item type) and a new required
    field break that; a new optional field and a changed description do not. The
    models a schema uses (``$defs``, e.g. an order's lines) follow the same rules."""
    out = _model_incompatibilities("", old, new)
    new_defs = new.get("$defs", {})
    for name, definition in sorted(old.get("$defs", {}).items()):
        if name in new_defs:  # a definition no longer used shows as a changed field above
            out += _model_incompatibilities(f"{name}.", definition, new_defs[name])
    return out


def version_problems(decl: dict[str, Any], committed: dict[str, dict[str, Any]]) -> list[str]:
    """Event types whose schema changed incompatibly without a new version, whose version went
    back, or that lack an upcaster from an older version. Empty when all is well."""
    from flowsuite.core import events

    problems = [f"{step}: no upcaster to the next version" for step in events.missing_upcasters(decl["events"])]
    current = event_schemas(decl)
    for name, spec in sorted(decl["events"].items()):
        old = committed.get(name)
        if old is None:
            continue  # a new type
        old_version = int(old.get("x-schema-version", 1))
        if spec.version < old_version:
            problems.append(f"{name}: version {spec.version} is older than the committed {old_version}")
        elif spec.version == old_version:
            problems += [f"{name} v{spec.version}: {issue} (declare version {spec.version + 1} with an upcaster)"
                         for issue in incompatibilities(old, current[name])]
    return problems


def events_md(decl: dict[str, Any]) -> str:
    lines = [
        "# Event catalogue",
        "",
        "Generated from the event types and subscribers in the code. Every event is stored at",
        "`topics/{type}/events/{id}` with the envelope `id, type, source, subject, time,",
        "correlation_id, schema_version, data`; `data` follows `docs/events/{type}.json`.",
        "",
        "| type | publisher | version | subscribers | data fields |",
        "|---|---|---|---|---|",
    ]
    for name, spec in sorted(decl["events"].items()):
        subs = sorted(s.name for s in decl["subscribers"].values() if s.event_type.name == name)
        fields = ", ".join(f"`{f}`" for f in spec.model.model_fields)
        lines.append(f"| `{name}` | {spec.source} | {spec.version} | {', '.join(f'`{s}`' for s in subs) or '-'} | {fields} |")
    lines += [
        "",
        "## Versions",
        "",
        "Domains deploy separately, so a consumer meets events one version older or newer than",
        "its code. A new optional field keeps the version (older consumers ignore it); a removed",
        "field, a changed type or a new required field needs a new version and an upcaster, which",
        "brings older data up to the consumer's version. Data newer than a consumer that it cannot",
        "read is retried until the consumer is deployed (at most `BUS_MAX_RETRY_HOURS`).",
        "`make contracts` refuses an incompatible schema without a new version.",
        "",
        "| type | version | change |",
        "|---|---|---|",
    ]
    for name, spec in sorted(decl["events"].items()):
        lines += [f"| `{name}` | {version} | {change} |" for version, change in spec.history]
    return "\n".join(lines) + "\n"


# ---- files ---------------------------------------------------------------------------

def render() -> dict[Path, str]:
    decl = load()
    files = {
        DOCS / "openapi.json": json.dumps(openapi(decl), indent=2, sort_keys=False) + "\n",
        DOCS / "openapi-flutterflow.json": json.dumps(openapi_flutterflow(openapi(decl)), indent=2) + "\n",
        DOCS / "collections.md": collections_md(decl),
        DOCS / "events.md": events_md(decl),
    }
    for name, schema in event_schemas(decl).items():
        files[DOCS / "events" / f"{name}.json"] = json.dumps(schema, indent=2) + "\n"
    return files


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    problems = version_problems(load(), committed_event_schemas())
    if problems:
        print("contracts: event schemas changed incompatibly without a new version (nothing written):\n  "
              + "\n  ".join(problems))
        return 1
    files = render()
    if command == "write":
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        stale = set((DOCS / "events").glob("*.json")) - set(files)
        for path in stale:
            path.unlink()
        print(f"contracts: wrote {len(files)} files under docs/")
        return 0
    differ = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    differ += sorted(set((DOCS / "events").glob("*.json")) - set(files))
    if differ:
        print("contracts: out of date (run `make contracts`): " + ", ".join(str(p.relative_to(ROOT)) for p in differ))
        return 1
    print("contracts: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
