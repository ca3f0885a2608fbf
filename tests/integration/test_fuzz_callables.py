"""Property-based fuzzing of every callable on the functions emulator, driven by docs/openapi.json.

Payloads come from each request schema (``from_schema`` below, for the subset of
JSON Schema the models produce) and from junk:
wrong types, missing and extra fields, huge strings and lists, unicode, extreme
numbers. Whatever the payload, no answer may be a 5xx or ``internal``, and a
refused call writes nothing: each call carries its own correlation id, and the
"callable refused" log line of each refused one reports the collections the
client layer saw it write (``fs_written``); only an idempotency record, claimed
and released again, may appear there, and none may be left in progress.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testkit import harness
from testkit.harness import call_raw, eventually

OPENAPI = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())
# ops_diagnose exists to raise each error code on purpose, `internal` included.
SKIP = {"ops_diagnose"}
CALLABLES = sorted(p.strip("/") for p in OPENAPI["paths"] if p.strip("/") not in SKIP)
SHARED_WORLD = True  # one admin for every case; the module resets once itself
EXAMPLES = 53  # 20 callables x 53 = 1,060 payloads (the fuzz floor is 1,000)
CASES: dict[str, int] = {}
REFUSED: dict[str, list[str]] = {}  # callable -> correlation ids of refused calls

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False), st.text(max_size=50), st.text(min_size=5000, max_size=20000),
    st.sampled_from(["", " ", "\u0000", "🙂" * 200, "users/../../x", "a" * 1500, "-1", "1e309",
                     # ids Firestore reserves: refused as invalid-argument, never `internal`
                     "__name__", "__x__", "__", ".", "..", "users/__x__", "__a:b__"]),
)
# Ids, valid in shape but reserved, for every field a request model declares as an id.
reserved_ids = st.sampled_from(["__x__", "__name__", "__", ".", ".."])
junk = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=60), st.dictionaries(st.text(max_size=20), inner, max_size=8)), max_leaves=40)


def resolve(schema: dict) -> dict:
    while "$ref" in schema:
        schema = OPENAPI["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def from_schema(schema: dict):
    """A Hypothesis strategy for valid instances of one of our request schemas."""
    schema = resolve(schema)
    if "anyOf" in schema:
        return st.one_of([from_schema(s) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum", -(2**40)), max_value=schema.get("maximum", 2**40))
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "string":
        lo, hi = schema.get("minLength", 0), schema.get("maxLength", 60)
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda v: lo <= len(v) <= hi)
        return st.text(min_size=lo, max_size=min(hi, 60))
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {})), min_size=schema.get("minItems", 0),
                        max_size=min(schema.get("maxItems", 5), 5))
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v) for k, v in props.items() if k in required},
            optional={k: from_schema(v) for k, v in props.items() if k not in required},
        )
    return junk


def request_schema(name: str) -> dict:
    body = OPENAPI["paths"][f"/{name}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return body["properties"]["data"]


def payloads(name: str):
    valid = from_schema(request_schema(name))

    def mutate(data):
        return st.one_of(
            st.just(data),
            junk.map(lambda extra: {**data, "unexpected_field": extra}) if isinstance(data, dict) else st.just(data),
            st.sampled_from(sorted(data)).map(lambda k: {x: v for x, v in data.items() if x != k})
            if isinstance(data, dict) and data else st.just(data),
            st.sampled_from(sorted(data)).flatmap(lambda k: junk.map(lambda v: {**data, k: v}))
            if isinstance(data, dict) and data else st.just(data),
        )

    def reserve(data):
        """A valid payload with one of its ids (top-level, or an order line's) reserved."""
        if not isinstance(data, dict):
            return st.just(data)
        ids = sorted(k for k in data if k in ID_FIELDS)
        options = [ID_FIELDS[k].map(lambda v, k=k: {**data, k: v}) for k in ids]
        if isinstance(data.get("items"), list) and data["items"] and isinstance(data["items"][0], dict):
            options.append(reserved_ids.map(lambda v: {**data, "items": [{**data["items"][0], "product_id": v},
                                                                         *data["items"][1:]]}))
        return st.one_of(options) if options else st.just(data)

    return st.one_of(valid.flatmap(mutate), valid.flatmap(reserve), junk)


ID_FIELDS = {"uid": reserved_ids, "order_id": reserved_ids, "product_id": reserved_ids,
             "ids": st.just(["__a:b__", "__x__:ops_on_probe"])}


# Callables that end the caller's own session (its account deleted, its tokens revoked):
# each of their cases runs as a fresh admin, so the shared caller's token stays valid.
SELF_ENDING = {"identity_delete_account", "identity_sign_out_everywhere"}


@pytest.fixture(scope="module")
def caller():
    harness.reset_emulators()
    return harness.user_with_role("admin")


@pytest.mark.parametrize("name", CALLABLES)
def test_no_payload_gets_a_5xx_or_internal(name, caller):
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(payloads(name))
    def check(data):
        CASES[name] = CASES.get(name, 0) + 1
        corr = f"fuzz-{uuid.uuid4().hex}"
        who = harness.user_with_role("admin") if name in SELF_ENDING else caller
        r = call_raw(name, {"data": data}, who.id_token, headers={"X-Correlation-Id": corr})
        body = r.json()
        assert r.status_code < 500, (name, data, body)
        assert body.get("error", {}).get("status") != "INTERNAL", (name, data, body)
        if "error" in body:
            REFUSED.setdefault(name, []).append(corr)

    check()
    assert CASES[name] >= EXAMPLES // 2
    assert_refused_calls_wrote_nothing(name, REFUSED.get(name, []))


def assert_refused_calls_wrote_nothing(name: str, refused: list[str]) -> None:
    from google.cloud.firestore_v1.base_query import FieldFilter

    def logged():
        lines = {x.get("correlation_id"): x for x in harness.log_lines("fuzz-") if x.get("message") == "callable refused"}
        return all(c in lines for c in refused) and lines

    lines = eventually(logged, timeout=30, what=f"the log lines of {len(refused)} refused calls of {name}")
    for corr in refused:
        line = lines[corr]
        assert set(line.get("fs_written", [])) <= {"idempotency_records"}, (name, line)
    db = harness.admin_db()
    left = (db.collection("idempotency_records").where(filter=FieldFilter("function", "==", name))
            .where(filter=FieldFilter("status", "==", "in_progress")).get())
    assert left == [], (name, [s.to_dict() for s in left])


@pytest.fixture(scope="module", autouse=True)
def report():
    """The totals, printed once the module's cases ran (in whatever order, or only some of them)."""
    yield
    print(f"\nfuzz: {sum(CASES.values())} payloads over {len(CASES)} callables")


def test_every_callable_but_the_diagnostic_is_fuzzed_with_enough_payloads():
    assert set(CALLABLES) == {p.strip("/") for p in OPENAPI["paths"]} - SKIP
    assert len(CALLABLES) * EXAMPLES >= 1000
