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
    assert registry.wanted("ops", "opsRedeliver") and registry.wanted("ops", "ops_on_probe")
    assert not any(registry.wanted(d, "ops_on_probe") for d in registry.DOMAINS if d != "ops")


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
