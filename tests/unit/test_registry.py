from flowsuite import registry


def test_a_target_loads_only_its_domain():
    assert registry.wanted("orders", "orders_place")
    assert not registry.wanted("payments", "orders_place")


def test_discovery_loads_everything():
    assert all(registry.wanted(d, "") for d in registry.DOMAINS)


def test_flutterflow_names_map_to_their_domain():
    assert registry.domain_for("addFcmToken") == "notifications"
    assert registry.wanted("notifications", "addFcmToken") and not registry.wanted("orders", "addFcmToken")


def test_ops_serves_redelivery_so_it_loads_every_subscriber():
    assert all(registry.wanted(d, "opsRedeliver") for d in registry.DOMAINS)


def test_unknown_targets_load_everything():
    assert registry.wanted("orders", "somethingElse")
