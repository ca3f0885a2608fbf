"""docs/production.md's metrics and alerts (docs/monitoring/) match the log lines the code writes.

Each log-based metric's filter selects lines by ``jsonPayload.message``: every message it
names must be one the code logs, and every ``jsonPayload`` field it filters on or extracts
must be carried by each such line (a keyword of the call, a field bound for the invocation,
the meter's counts, or an Error Reporting event's fields). The code's log calls are read
from its source (``ast``), so a renamed message or field fails here, not in production.
One line, the sweep's, is also captured from a real call. Every command in the guide names
a committed file, and every policy a committed metric and its labels.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from flowsuite.core import log, metering

ROOT = Path(__file__).resolve().parents[2]
CODE = ROOT / "functions" / "flowsuite"
MONITORING = ROOT / "docs" / "monitoring"
METRICS = {p.stem: json.loads(p.read_text()) for p in sorted((MONITORING / "metrics").glob("*.json"))}
POLICIES = {p.stem: json.loads(p.read_text()) for p in sorted((MONITORING / "policies").glob("*.json"))}
LEVELS = {"debug", "info", "warning", "error", "report"}
ALWAYS = {"severity", "message"}  # every line (log.emit)
REPORTED = set(log.error_event(ValueError("x"), service="s", version="v"))  # @type, stack_trace, serviceContext, error
METER = set(metering.Meter(reads=1, writes=1, written={"c"}).fields())  # fs_reads, fs_writes, fs_written


def _calls():
    for path in sorted(CODE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "log"):
                yield path, node


def _splats_meter(call: ast.Call) -> bool:
    return any(k.arg is None and isinstance(k.value, ast.Call) and isinstance(k.value.func, ast.Attribute)
               and k.value.func.attr == "fields" for k in call.keywords)


def logged_lines() -> dict[str, list[set[str]]]:
    """Each message the code logs with a literal, and the fields of each call that logs it."""
    lines: dict[str, list[set[str]]] = {}
    for _, call in _calls():
        if call.func.attr not in LEVELS or not call.args or not isinstance(call.args[0], ast.Constant) \
                or not isinstance(call.args[0].value, str):
            continue
        fields = ALWAYS | {k.arg for k in call.keywords if k.arg}
        if _splats_meter(call):
            fields |= METER
        if call.func.attr == "report":
            fields |= REPORTED
        lines.setdefault(call.args[0].value, []).append(fields)
    return lines


def bound_fields() -> set[str]:
    """Fields ``log.bind`` puts on every line of an invocation (function, domain, correlation_id, ...)."""
    return {k.arg for _, call in _calls() if call.func.attr == "bind" for k in call.keywords if k.arg}


def bound_functions() -> set[str]:
    """The literal ``function=`` values bound anywhere (the webhook's, the health check's, ...)."""
    return {k.value.value for _, call in _calls() if call.func.attr == "bind" for k in call.keywords
            if k.arg == "function" and isinstance(k.value, ast.Constant)}


def payload_fields(text: str) -> set[str]:
    """The top-level jsonPayload fields a filter or an extractor names."""
    return {m.split(".")[0] for m in re.findall(r"jsonPayload\.([A-Za-z_@][\w.]*)", text)}


def values_of(text: str, field: str) -> list[str]:
    """The strings a filter compares ``jsonPayload.<field>`` with: ``="a"`` or ``=("a" OR "b")``."""
    out: list[str] = []
    for single, group in re.findall(rf'jsonPayload\.{field}\s*=\s*(?:"([^"]*)"|\(([^)]*)\))', text):
        out += [single] if single else re.findall(r'"([^"]*)"', group)
    return out


def guide_section() -> str:
    text = (ROOT / "docs" / "production.md").read_text()
    start = text.index("## Monitoring and alerts")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_the_section_comes_before_the_capacity_plan():
    text = (ROOT / "docs" / "production.md").read_text()
    assert text.index("## Monitoring and alerts") < text.index("## Capacity plan")


def test_every_command_names_a_committed_file_and_every_file_has_its_command():
    section = guide_section()
    created = re.findall(r"^\s*gcloud logging metrics create (\S+) --config-from-file=(\S+)$", section, re.M)
    policies = re.findall(r"^\s*gcloud monitoring policies create --policy-from-file=(\S+)$", section, re.M)
    assert {name for name, _ in created} == set(METRICS) and len(created) == len(METRICS)
    for name, path in created:
        assert path == f"docs/monitoring/metrics/{name}.json" and (ROOT / path).is_file()
    assert sorted(policies) == sorted(f"docs/monitoring/policies/{name}.json" for name in POLICIES)
    for what in ("dead letter", "failed", "oldest pending", "webhook", "checkout"):
        assert what in section.lower(), what


@pytest.mark.parametrize("name", sorted(METRICS))
def test_each_metric_reads_lines_the_code_writes_and_fields_they_carry(name):
    metric = METRICS[name]
    lines, bound = logged_lines(), bound_fields()
    messages = values_of(metric["filter"], "message")
    assert messages, f"{name}: select lines by jsonPayload.message"
    used = payload_fields(metric["filter"]) | payload_fields(metric.get("valueExtractor", ""))
    for extractor in metric.get("labelExtractors", {}).values():
        used |= payload_fields(extractor)
    for message in messages:
        assert message in lines, f"{name}: no code logs {message!r}"
        for fields in lines[message]:  # every call that writes this line
            missing = used - fields - bound
            assert not missing, f"{name}: a {message!r} line carries no {sorted(missing)}"
    for function in values_of(metric["filter"], "function"):
        assert function in bound_functions(), f"{name}: no invocation binds function={function!r}"
    labels = {label["key"] for label in metric["metricDescriptor"].get("labels", [])}
    assert labels == set(metric.get("labelExtractors", {})), name
    is_distribution = metric["metricDescriptor"]["valueType"] == "DISTRIBUTION"
    assert is_distribution == ("valueExtractor" in metric) == ("bucketOptions" in metric), name


def test_the_bus_lines_the_alerts_read_are_logged_inside_a_delivery():
    """``function`` and ``event_type`` come from the delivery's ``log.bind``, not the call."""
    source = (CODE / "core" / "bus" / "deliver.py").read_text()
    bind = source[source.index("with log.bind("):source.index("metering.metered(), tracing.span(spec.name")]
    assert "function=spec.name" in bind and "event_type=envelope.type" in bind
    assert '"delivery dead-lettered"' in source and '"delivery failed; will retry"' in source


class _Nothing:
    """A Firestore client with no documents: enough for a sweep that finds nothing to do."""

    def collection(self, name):
        return self

    def document(self, name):
        return self

    def where(self, *, filter):  # noqa: A002 - the SDK's keyword
        return self

    def order_by(self, *args, **kwargs):
        return self

    def limit(self, n):
        return self

    def stream(self):
        return []

    def get(self):
        return type("Snap", (), {"to_dict": lambda self: None, "exists": False})()

    def set(self, *args, **kwargs):
        return None


def test_the_sweeps_line_carries_the_age_the_oldest_pending_metric_extracts(capsys):
    from flowsuite.core import bus

    bus.sweep(db=_Nothing())
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"sweep finished"' in x]
    metric = METRICS["flowsuite_oldest_pending_age"]
    assert line["message"] in values_of(metric["filter"], "message")
    assert line["oldest_pending_age_seconds"] == 0.0  # nothing pending; a number, so the filter's >=0 holds
    assert payload_fields(metric["valueExtractor"]) <= set(line)


def test_a_reported_error_keeps_its_message_and_bound_function_at_the_top_of_the_payload(capsys):
    with log.bind(function="notifications_on_order_paid", event_type="order.paid"):
        try:
            raise RuntimeError("boom")
        except RuntimeError as exc:
            log.report("delivery dead-lettered", exc, reason="attempts")
    line = json.loads(capsys.readouterr().out.splitlines()[-1])
    for extractor in METRICS["flowsuite_dead_letters"]["labelExtractors"].values():
        (field,) = payload_fields(extractor)
        assert line[field], field
    assert line["message"] == "delivery dead-lettered" and line["@type"].endswith("ReportedErrorEvent")


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_each_policy_watches_a_committed_metric_by_its_labels(name):
    import main  # noqa: F401 - every function, as discovery sees it

    functions = {n for n in dir(main) if not n.startswith("_")}
    policy = POLICIES[name]
    assert policy["displayName"].startswith("flowsuite: ") and policy["combiner"] in ("OR", "AND")
    assert policy["documentation"]["mimeType"] == "text/markdown" and policy["documentation"]["content"]
    assert policy["conditions"]
    for condition in policy["conditions"]:
        (kind,) = [k for k in condition if k.startswith("condition")]
        assert kind in ("conditionThreshold", "conditionAbsent") and condition["displayName"]
        body = condition[kind]
        (metric,) = re.findall(r'metric\.type="logging\.googleapis\.com/user/([\w-]+)"', body["filter"])
        assert metric in METRICS, f"{name}: {metric} is not in docs/monitoring/metrics"
        labels = {label["key"] for label in METRICS[metric]["metricDescriptor"].get("labels", [])}
        named = set(re.findall(r"metric\.label\.(\w+)", body["filter"]))
        for aggregation in body.get("aggregations", []):
            named |= {f.removeprefix("metric.label.") for f in aggregation.get("groupByFields", [])}
            assert aggregation["alignmentPeriod"].endswith("s")
            if METRICS[metric]["metricDescriptor"]["valueType"] == "DISTRIBUTION":
                assert aggregation["perSeriesAligner"].startswith(("ALIGN_PERCENTILE", "ALIGN_DELTA")), name
        assert named <= labels, f"{name}: {sorted(named - labels)} are not labels of {metric}"
        for group in re.findall(r"metric\.label\.function=one_of\(([^)]*)\)", body["filter"]):
            for function in re.findall(r'"([^"]*)"', group):
                assert function in functions, f"{name}: {function} is not a function of the suite"
        for value in re.findall(r'metric\.label\.message="([^"]*)"', body["filter"]):
            assert value in values_of(METRICS[metric]["filter"], "message")
        assert body["duration"].endswith("s")
        if kind == "conditionThreshold":
            assert body["comparison"] in ("COMPARISON_GT", "COMPARISON_LT") and "thresholdValue" in body
