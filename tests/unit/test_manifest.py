"""The manifest the Firebase CLI deploys, from the SDK's own discovery, against the domains' declarations."""

from __future__ import annotations

import importlib
import inspect
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"
DISCOVER = (
    "from firebase_functions.private.serving import functions_as_yaml, get_functions\n"
    "print(functions_as_yaml(get_functions()))\n"
)


@pytest.fixture(scope="module")
def manifest() -> dict:
    """Discovery exactly as `firebase deploy` runs it: functions/venv, cwd functions/, main.py."""
    out = subprocess.run([str(FUNCTIONS / "venv/bin/python"), "-c", DISCOVER], cwd=FUNCTIONS, capture_output=True,
                         text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    return yaml.safe_load(out.stdout)


@pytest.fixture(scope="module")
def declared() -> dict:
    from devtools import contracts

    decl = contracts.load()
    from flowsuite.registry import DOMAINS

    decl["exports"] = {}
    for domain in DOMAINS:
        module = importlib.import_module(f"flowsuite.{domain}.functions")
        for name in module.__all__:
            decl["exports"][name] = (domain, getattr(module, name))
    return decl


def trigger_of(endpoint: dict) -> str:
    for key in ("callableTrigger", "httpsTrigger", "blockingTrigger", "eventTrigger", "taskQueueTrigger", "scheduleTrigger"):
        if key in endpoint:
            return key
    raise AssertionError(f"unknown trigger in {endpoint}")


def test_every_declared_function_is_deployed_and_nothing_else(manifest, declared):
    assert set(manifest["endpoints"]) == set(declared["exports"])


def test_triggers_match_the_declarations(manifest, declared):
    endpoints = manifest["endpoints"]
    for name in declared["callables"]:
        assert trigger_of(endpoints[name]) == "callableTrigger", name
    for name, spec in declared["subscribers"].items():
        trigger = endpoints[name]["eventTrigger"]
        assert trigger["eventType"] == "google.cloud.firestore.document.v1.created"
        assert trigger["eventFilterPathPatterns"]["document"] == spec.event_type.trigger_path
        assert trigger.get("retry") is False
    assert trigger_of(endpoints["payments_stripe_webhook"]) == "httpsTrigger"
    assert endpoints["identity_before_user_created"]["blockingTrigger"]["eventType"].endswith("beforeCreate")
    assert endpoints["identity_before_user_signed_in"]["blockingTrigger"]["eventType"].endswith("beforeSignIn")
    assert trigger_of(endpoints["opsRedeliver"]) == "taskQueueTrigger"
    assert trigger_of(endpoints["ops_sweep"]) == "scheduleTrigger"


def test_firestore_triggers_listen_only_where_a_domain_publishes(manifest, declared):
    published = {spec.trigger_path for spec in declared["events"].values()}
    owned = {c.path for c in declared["collections"].values()}
    for name, endpoint in manifest["endpoints"].items():
        if "eventTrigger" not in endpoint:
            continue
        path = endpoint["eventTrigger"]["eventFilterPathPatterns"]["document"]
        generic = {p.split("/{")[0] for p in owned}
        assert path in published or path.split("/{")[0] in generic, f"{name} listens on {path}, which nobody writes"


def test_one_region_everywhere(manifest):
    regions = {tuple(e.get("region", [])) for e in manifest["endpoints"].values()}
    assert regions == {("us-central1",)}


def secret_names(endpoint: dict) -> set[str]:
    return {s["key"] for s in endpoint.get("secretEnvironmentVariables") or []}


def source_of(obj) -> str:
    target = getattr(obj, "__wrapped_handler__", None) or getattr(obj, "__flowsuite_subscriber__", None)
    target = getattr(target, "handler", target) or inspect.unwrap(obj)
    text = inspect.getsource(target)
    # erasers: the registered erase function does the work
    from flowsuite.core.erasure import ERASERS

    for eraser in ERASERS.values():
        if target.__name__.endswith("_on_user_deleted") and eraser.domain in target.__module__:
            text += inspect.getsource(eraser.erase)
    return text


def test_a_secret_used_is_a_secret_declared(manifest, declared):
    uses = {"STRIPE_SECRET_KEY": "clients.stripe()", "SMTP_PASSWORD": "_notify("}
    for name, (_, fn) in declared["exports"].items():
        text = source_of(fn)
        for secret, marker in uses.items():
            if marker in text:
                assert secret in secret_names(manifest["endpoints"][name]), f"{name} uses {secret} without declaring it"
    assert "STRIPE_WEBHOOK_SECRET" in secret_names(manifest["endpoints"]["payments_stripe_webhook"])


def test_parameters_are_declared_for_deploy(manifest):
    names = {p["name"] for p in manifest.get("params", [])}
    assert {"ADMIN_EMAILS", "BLOCKED_EMAIL_DOMAINS", "BUS_MAX_ATTEMPTS", "STRIPE_API_BASE", "SMTP_HOST",
            "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "SMTP_PASSWORD"} <= names


def test_domain_options_reach_their_functions(manifest):
    assert manifest["endpoints"]["payments_create_intent"]["availableMemoryMb"] == 512
    assert manifest["endpoints"]["orders_place"]["availableMemoryMb"] == 256
    assert manifest["endpoints"]["payments_stripe_webhook"]["availableMemoryMb"] == 512
    assert manifest["endpoints"]["notifications_on_ff_user_push_created"]["timeoutSeconds"] == 120


# Runtime options and the manifest fields they become.
MANIFEST_FIELD = {
    "memory": "availableMemoryMb",
    "timeout_sec": "timeoutSeconds",
    "max_instances": "maxInstances",
    "min_instances": "minInstances",
    "concurrency": "concurrency",
    "service_account": "serviceAccountEmail",
    "labels": "labels",
}


def manifest_value(value):
    from firebase_functions.params import Expression

    if isinstance(value, Expression):  # a param: resolved at deploy, e.g. "{{ params.ORDERS_MAX_INSTANCES }}"
        return f"{{{{ params.{value.name} }}}}"
    return getattr(value, "value", value)  # MemoryOption.MB_512 -> 512


def test_instance_limits_are_params_with_the_capacity_plans_defaults(manifest):
    """docs/production.md's capacity plan: a larger app raises these at deploy, not in code."""
    params = {p["name"]: p for p in manifest.get("params", [])}
    defaults = {"FUNCTIONS_MAX_INSTANCES": 20, "ORDERS_MAX_INSTANCES": 100, "PAYMENTS_MAX_INSTANCES": 50,
                "NOTIFICATIONS_MAX_INSTANCES": 20}
    for name, default in defaults.items():
        assert params[name]["default"] == default, name
    endpoints = manifest["endpoints"]
    assert endpoints["orders_place"]["maxInstances"] == "{{ params.ORDERS_MAX_INSTANCES }}"
    assert endpoints["payments_create_intent"]["maxInstances"] == "{{ params.PAYMENTS_MAX_INSTANCES }}"
    assert endpoints["payments_stripe_webhook"]["maxInstances"] == "{{ params.PAYMENTS_MAX_INSTANCES }}"
    assert endpoints["identity_set_role"]["maxInstances"] == "{{ params.FUNCTIONS_MAX_INSTANCES }}"


def test_every_endpoint_gets_its_domains_options(manifest, declared):
    """Whatever decorator builds a function (a callable, a subscriber, a webhook, a FlutterFlow push
    trigger, a schedule, a task queue, a blocking function), the manifest holds the suite's options,
    then its domain's declaration (``OPTIONS``), then its own."""
    from flowsuite.core import options
    from flowsuite.registry import domain_for

    endpoints = manifest["endpoints"]
    missing = sorted(set(endpoints) - set(options.APPLIED))
    assert not missing, f"functions built without options.trigger: {missing}"
    for name, endpoint in endpoints.items():
        applied = options.APPLIED[name]
        domain = domain_for(name)
        assert applied["domain"] == domain == declared["exports"][name][0], name
        expected = {**options.GLOBAL, **options.for_domain(domain), **applied["own"]}
        for option, field in MANIFEST_FIELD.items():
            if option in expected:
                assert endpoint.get(field) == manifest_value(expected[option]), (name, option)
        assert endpoint["region"] == [expected["region"]], name


def test_no_function_may_outrun_its_lease(manifest, declared):
    """Every lease (deliveries, effects, idempotency keys) lasts the longest function timeout plus a
    margin, so an attempt still inside its timeout never loses its lease to a second attempt (issue
    22). A function whose timeout exceeds lease - margin fails here: raise
    settings.MAX_FUNCTION_TIMEOUT_SECONDS (and with it every lease), not just the timeout."""
    from flowsuite.core import idempotency, options, settings

    ceiling = settings.LEASE_SECONDS - settings.LEASE_MARGIN_SECONDS
    timeouts = {name: endpoint["timeoutSeconds"] for name, endpoint in manifest["endpoints"].items()}
    assert len(timeouts) == len(manifest["endpoints"]), "a function without a timeout runs for the platform's"
    too_long = {name: t for name, t in timeouts.items() if t > ceiling}
    assert not too_long, f"timeouts past the lease ({settings.LEASE_SECONDS} s) less its margin: {too_long}"
    # the ceiling is the longest declared timeout, so leases are no longer than they must be
    assert max(timeouts.values()) == settings.MAX_FUNCTION_TIMEOUT_SECONDS
    for name in declared["callables"]:  # an idempotency key is locked for its own callable's timeout + margin
        assert options.timeout_of(name) == timeouts[name], name
        assert idempotency.lock_seconds(options.timeout_of(name)) - settings.LEASE_MARGIN_SECONDS >= timeouts[name]


def test_a_timeout_past_the_ceiling_is_refused_when_the_function_is_built():
    from firebase_functions import https_fn
    from flowsuite.core import options, settings

    def too_slow(req): ...

    with pytest.raises(ValueError, match="MAX_FUNCTION_TIMEOUT_SECONDS"):
        options.trigger(https_fn.on_request, domain="ops", timeout_sec=settings.MAX_FUNCTION_TIMEOUT_SECONDS + 1)(
            too_slow)
    assert "too_slow" not in options.APPLIED
