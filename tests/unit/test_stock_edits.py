"""Staff edits cannot oversell (issue 22): stock_change is pure."""

import pytest
from flowsuite.core.errors import FailedPreconditionError, InvalidArgumentError
from flowsuite.orders.service import stock_change


def test_a_new_product_takes_its_stock():
    assert stock_change(None, stock=5, expected=None, delta=None) == 5
    with pytest.raises(InvalidArgumentError):
        stock_change(None, stock=None, expected=None, delta=None)


def test_editing_other_fields_leaves_stock_alone():
    assert stock_change(3, stock=None, expected=None, delta=None) is None


def test_an_absolute_stock_needs_the_value_the_form_loaded():
    assert stock_change(5, stock=10, expected=5, delta=None) == 10
    with pytest.raises(FailedPreconditionError):
        stock_change(3, stock=10, expected=5, delta=None)  # two units were reserved meanwhile
    with pytest.raises(InvalidArgumentError):
        stock_change(3, stock=10, expected=None, delta=None)


def test_a_delta_adds_to_whatever_is_there_and_never_goes_below_zero():
    assert stock_change(3, stock=None, expected=None, delta=7) == 10
    assert stock_change(3, stock=None, expected=None, delta=-3) == 0
    with pytest.raises(FailedPreconditionError):
        stock_change(3, stock=None, expected=None, delta=-4)
    with pytest.raises(InvalidArgumentError):
        stock_change(3, stock=1, expected=3, delta=1)
