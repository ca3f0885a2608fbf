"""Typed writes: every Firestore write builds its data through the owning document model.

``Document.fields`` (a partial write) and ``Document.new`` (a whole document) refuse a
field the model does not declare, so docs/collections.md lists every field the code
writes.
"""

from __future__ import annotations

import datetime as dt

import pytest
from flowsuite.core.documents import DocumentWriteError, is_transform
from flowsuite.core.kernel_documents import DeadLetterDoc, DeliveryDoc, EffectDoc
from flowsuite.orders.documents import OrderDoc, OrderHoldDoc, StockShardDoc
from google.cloud import firestore as gcf

# ---- the check itself ----------------------------------------------------------------

def test_fields_returns_exactly_what_it_was_given():
    ref, when = object(), dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    data = OrderDoc.fields({"status": "paid", "history": [1]}, {"status": "refunded"}, user_ref=ref, paid_time=when)
    assert data == {"status": "refunded", "history": [1], "user_ref": ref, "paid_time": when}
    assert data["user_ref"] is ref and type(data) is dict


def test_an_undeclared_field_is_refused_with_the_model_and_its_collection():
    with pytest.raises(DocumentWriteError, match=r"OrderDoc \(orders/\{order_id\}\) declares no field 'surprise'"):
        OrderDoc.fields(status="paid", surprise=1)
    with pytest.raises(DocumentWriteError, match="'also', 'surprise'"):
        OrderDoc.fields({"surprise": 1, "also": 2})
    with pytest.raises(DocumentWriteError, match="surprise"):
        OrderDoc.new(surprise=1)


def test_a_dotted_path_is_checked_by_its_first_segment():
    assert DeliveryDoc.fields({"steps.refund": {"id": "re_1"}}) == {"steps.refund": {"id": "re_1"}}
    assert DeadLetterDoc.fields({"envelope.data": {}, "envelope.subject": "x"})
    with pytest.raises(DocumentWriteError, match="'stepz.refund'"):
        DeliveryDoc.fields({"stepz.refund": {}})


@pytest.mark.parametrize("value", [gcf.SERVER_TIMESTAMP, gcf.DELETE_FIELD, gcf.Increment(1), gcf.ArrayUnion([1]),
                                   gcf.ArrayRemove([1]), gcf.Maximum(1), gcf.Minimum(1)])
def test_firestore_transforms_fit_any_declared_field(value):
    assert is_transform(value)
    assert OrderDoc.fields(total=value, status=value, updated_time=value) == {
        "total": value, "status": value, "updated_time": value}
    assert StockShardDoc.new(stock=value, updated_time=value) == {"stock": value, "updated_time": value}
    with pytest.raises(DocumentWriteError):
        OrderDoc.fields(surprise=value)


def test_plain_values_are_not_transforms():
    assert not any(is_transform(v) for v in (None, 1, "x", {}, [], dt.datetime.now(dt.UTC), object()))


def test_a_whole_document_is_validated_by_the_model():
    assert OrderHoldDoc.new(orders=1, units=3, updated_time=gcf.SERVER_TIMESTAMP)["units"] == 3
    with pytest.raises(DocumentWriteError, match=r"OrderHoldDoc \(order_holds/\{uid\}\): units: .*integer"):
        OrderHoldDoc.new(orders=1, units="three", updated_time=gcf.SERVER_TIMESTAMP)
    with pytest.raises(DocumentWriteError, match="updated_time: Field required"):
        OrderHoldDoc.new(orders=1, units=3)
    with pytest.raises(DocumentWriteError, match="paths"):
        EffectDoc.new({"result.id": "x"})


def test_a_whole_document_is_written_as_given_never_converted():
    # lax validation accepts "2" for an int; the write still carries what the code gave
    data = StockShardDoc.new(stock="2", updated_time="now")
    assert data == {"stock": "2", "updated_time": "now"}


def test_a_validation_error_names_fields_never_their_values():
    with pytest.raises(DocumentWriteError) as raised:
        OrderHoldDoc.new(orders=1, units="secret-value-9", updated_time=gcf.SERVER_TIMESTAMP)
    assert "secret-value-9" not in str(raised.value)
