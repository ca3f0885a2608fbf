import os
import subprocess
import sys
from pathlib import Path

import pytest
from flowsuite import registry

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def test_a_target_loads_only_its_domain():
    assert registry.wanted("orders", "orders_cancel")
    assert not registry.wanted("payments", "orders_cancel")


def test_discovery_loads_everything():
    assert all(registry.wanted(d, "") for d in registry.DOMAINS)


def test_flutterflow_names_map_to_their_domain():
    assert registry.domain_for("addFcmToken") == "notifications"
    assert registry.wanted("notifications", "addFcmToken") and not registry.wanted("orders", "addFcmToken")


def test_ops_functions_load_ops_alone_at_start():
    # redelivery, the sweep, metrics, health and the last eraser load the others on first need
    assert registry.wanted("ops", "opsRedeliver") and registry.wanted("ops", "ops_on_probe")
    assert not any(registry.wanted(d, "ops_on_probe") for d in registry.DOMAINS if d != "ops")


@pytest.mark.parametrize("target", ["ops_on_probe", "opsRedeliver", "ops_on_user_deleted"])
def test_an_ops_instance_finds_every_subscriber_and_eraser_when_it_needs_them(target):
    # An ops instance starts with ops alone; the functions that act for every domain ask
    # all_subscribers()/all_erasers(), which import the rest: none acts on a partial list
    # (the last eraser would redact events before the other domains had erased).
    code = ("import sys, main\n"
            "from flowsuite.core import bus, erasure\n"
            "from flowsuite import registry\n"
            "started = {s.domain for s in bus.SUBSCRIBERS.values()}\n"
            "assert started == {'ops'}, started\n"
            "assert not any(f'flowsuite.{d}.functions' in sys.modules for d in registry.DOMAINS if d != 'ops')\n"
            "domains = {s.domain for s in bus.all_subscribers().values()}\n"
            "assert domains == set(registry.DOMAINS), domains\n"
            "assert set(erasure.all_erasers()) == set(registry.DOMAINS), erasure.ERASERS\n")
    env = {**os.environ, "FUNCTION_TARGET": target, "PYTHONPATH": str(FUNCTIONS)}
    out = subprocess.run([sys.executable, "-c", code], cwd=FUNCTIONS, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


def test_unknown_targets_load_everything():
    assert registry.wanted("orders", "somethingElse")


def test_a_function_with_a_module_of_its_own_is_served_from_it_alone():
    assert registry.serving("payments_stripe_webhook", "payments_stripe_webhook")
    assert not any(registry.wanted(d, "payments_stripe_webhook") for d in registry.DOMAINS)
    assert registry.serving("orders_place", "orders_place") and not registry.wanted("orders", "orders_place")


def test_other_functions_of_its_domain_and_discovery_still_load_the_domain():
    assert registry.wanted("payments", "payments_create_intent") and registry.wanted("orders", "orders_cancel")
    assert not registry.serving("orders_place", "orders_cancel") and not registry.serving("orders_place", "")
    assert not registry.serving("orders_cancel", "orders_cancel")  # no module of its own
