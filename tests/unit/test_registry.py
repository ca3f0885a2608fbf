import pytest
from flowsuite import registry


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
    assert registry.wanted("ops", "opsRedeliver") and registry.wanted("ops", "ops_health")
    assert not any(registry.wanted(d, "opsRedeliver") for d in registry.DOMAINS if d != "ops")


def test_unknown_targets_load_everything():
    assert registry.wanted("orders", "somethingElse")


def test_a_function_with_a_module_of_its_own_is_served_from_it_alone():
    assert registry.own_module("payments_stripe_webhook") == "flowsuite.payments.webhook"
    assert not any(registry.wanted(d, "payments_stripe_webhook") for d in registry.DOMAINS)
    assert registry.own_module("orders_place") == "flowsuite.orders.place" and not registry.wanted("orders", "orders_place")


def test_a_document_trigger_is_served_from_its_domains_triggers_module_alone():
    assert registry.own_module("orders_on_payment_succeeded") == "flowsuite.orders.triggers"
    assert registry.own_module("ops_on_probe") == "flowsuite.ops.triggers"
    assert not any(registry.wanted(d, "ops_on_probe") for d in registry.DOMAINS)


def test_a_domain_without_a_triggers_module_serves_its_triggers_from_functions(monkeypatch):
    # A generated domain (`make domain`) has no triggers module: its instances import its functions.
    monkeypatch.setattr(registry, "DOMAINS", (*registry.DOMAINS, "scratch"))
    assert registry.own_module("scratch_on_created") is None and registry.wanted("scratch", "scratch_on_created")
    assert registry.own_module("nosuchdomain_on_created") is None  # no domain: main imports everything


def test_only_document_triggers_and_own_modules_are_served_alone():
    assert registry.own_module("ops_ping") is None and registry.own_module("opsRedeliver") is None
    assert registry.own_module("orders_onboard") is None  # `_on` without the trigger's `_on_`


def test_other_functions_of_its_domain_and_discovery_still_load_the_domain():
    assert registry.wanted("payments", "payments_create_intent") and registry.wanted("orders", "orders_cancel")
    assert registry.own_module("orders_cancel") is None and registry.own_module("") is None
    assert registry.wanted("orders", "orders_cancel") and all(registry.wanted(d, "") for d in registry.DOMAINS)


def test_an_instance_whose_trigger_is_missing_from_its_triggers_module_refuses_to_start():
    # A subscriber declared in functions.py instead would leave its instances without their function.
    with pytest.raises(ImportError, match="ops_on_nothing is served from flowsuite.ops.triggers"):
        registry.serve_alone({}, "ops_on_nothing")
    served = {}
    assert registry.serve_alone(served, "ops_on_probe") and set(served) == {"ops_on_probe", "ops_on_user_deleted"}
