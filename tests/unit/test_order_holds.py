"""No stock hoarding: the pure check behind orders_place's unpaid-order limits."""

import pytest
from flowsuite.orders import config, service


def refusal(hold, units, max_orders=3, max_units=50):
    return service.hold_refusal(hold, units, max_orders=max_orders, max_units=max_units)


def test_a_user_without_holds_may_place_up_to_the_unit_limit():
    assert refusal(None, 50) is None
    assert refusal({}, 1) is None


def test_the_order_limit_counts_unpaid_orders():
    assert refusal({"orders": 2, "units": 2}, 1) is None
    err = refusal({"orders": 3, "units": 3}, 1)
    assert err.code == "resource-exhausted"
    assert err.details == {"reason": "too_many_unpaid_orders", "limit": 3, "held": 3}


def test_the_unit_limit_counts_held_and_requested_units():
    assert refusal({"orders": 1, "units": 40}, 10) is None
    err = refusal({"orders": 1, "units": 40}, 11)
    assert err.code == "resource-exhausted"
    assert err.details == {"reason": "too_many_unpaid_units", "limit": 50, "held": 40, "requested": 11}
    assert "50" in err.message


def test_a_single_order_over_the_unit_limit_is_refused():
    assert refusal(None, 51).details["reason"] == "too_many_unpaid_units"


@pytest.mark.parametrize("hold", [{"orders": -2, "units": -9}, {"orders": "x", "units": None}, {"orders": True}])
def test_a_counter_that_went_negative_or_is_malformed_counts_as_nothing(hold):
    assert service.held(hold) == (0, 0)
    assert refusal(hold, 50) is None


def test_the_limits_are_parameters_with_defaults():
    assert (config.MAX_UNPAID_ORDERS.name, config.MAX_UNPAID_ORDERS.default) == ("ORDER_MAX_UNPAID_ORDERS", 3)
    assert (config.MAX_UNPAID_UNITS.name, config.MAX_UNPAID_UNITS.default) == ("ORDER_MAX_UNPAID_UNITS", 50)
    assert config.PAYMENT_TIMEOUT_MINUTES.name == "ORDER_PAYMENT_TIMEOUT_MINUTES"  # the hold time
