"""The one claim primitive (core/claims.py) and the three records built on it."""

import datetime as dt

import pytest
from flowsuite.core import claims, effects, idempotency
from flowsuite.core.bus import records
from flowsuite.core.errors import InvalidArgumentError
from flowsuite.core.kernel_documents import IdempotencyRecordDoc

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(minutes=5)
EARLIER = NOW - dt.timedelta(minutes=5)
H, OTHER = claims.payload_hash({"x": 1}), claims.payload_hash({"x": 2})

SHAPE = claims.Shape(state="s", running="R", done=frozenset({"D", "X"}), lease="until", payload_hash="h",
                     result="r", expires="exp")


@pytest.mark.parametrize(
    ("record", "decision"),
    [
        (None, claims.RUN),
        ({"s": "D", "h": H, "exp": LATER}, claims.DONE),
        ({"s": "X", "h": H, "exp": LATER}, claims.DONE),
        ({"s": "D", "h": OTHER, "exp": LATER}, claims.DONE_OTHER_PAYLOAD),
        ({"s": "D", "h": H, "exp": EARLIER}, claims.RUN),  # expired
        ({"s": "D", "h": H}, claims.RUN),  # no expiry kept: expired
        ({"s": "R", "h": H, "until": LATER}, claims.BUSY),
        ({"s": "R", "h": OTHER, "until": LATER}, claims.BUSY_OTHER_PAYLOAD),
        ({"s": "R", "h": H, "until": EARLIER}, claims.RUN),  # the holder's lease ran out
        ({"s": "R", "h": H, "until": None}, claims.RUN),
        ({"s": "failed", "h": OTHER}, claims.RUN),  # free again, whatever the payload was
    ],
)
def test_one_decision(record, decision):
    assert claims.decide(SHAPE, record, NOW, H) == decision


def test_without_a_payload_hash_or_an_expiry_done_is_done():
    shape = claims.Shape(state="s", running="R", done=frozenset({"D"}), lease="until")
    assert claims.decide(shape, {"s": "D"}, NOW) == claims.DONE
    assert claims.decide(shape, {"s": "D"}, NOW, "any digest") == claims.DONE


def test_the_in_transaction_mode_is_done_once_the_document_exists():
    assert claims.decide(idempotency.IN_TRANSACTION, None, NOW, H) == claims.RUN
    assert claims.decide(idempotency.IN_TRANSACTION, {"request_hash": H}, NOW, H) == claims.DONE
    assert claims.decide(idempotency.IN_TRANSACTION, {"request_hash": OTHER}, NOW, H) == claims.DONE_OTHER_PAYLOAD


def test_orders_replays_its_own_document_or_refuses_another_payload():
    order = {"order_id": "o1", "request_hash": H, "status": "cancelled"}
    assert idempotency.replay_in_transaction(None, H) is None
    assert idempotency.replay_in_transaction(order, H) is order
    with pytest.raises(InvalidArgumentError) as err:
        idempotency.replay_in_transaction(order, OTHER)
    assert err.value.fields[0] == {"field": "idempotency_key", "type": "idempotency_key_reused",
                                   "message": "was already used with a different payload"}


def test_a_key_in_use_with_another_payload_is_refused_with_its_own_message():
    with pytest.raises(InvalidArgumentError) as err:
        idempotency.decide({"status": "in_progress", "payload_hash": OTHER, "locked_until": LATER}, H, NOW)
    assert err.value.fields[0]["message"] == "is in use by another call with a different payload"


@pytest.mark.parametrize(
    ("shape", "state", "running", "done", "lease"),
    [
        (idempotency.SHAPE, "status", "in_progress", {"completed"}, "locked_until"),
        (effects.SHAPE, "state", "PROCESSING", {"SUCCEEDED"}, "lease_until"),
        (records.SHAPE, "status", "processing", {"processed", "dead"}, "lease_until"),
    ],
)
def test_each_record_keeps_its_documented_fields(shape, state, running, done, lease):
    """The records' field names and states are what docs/collections.md and the tests read."""
    assert (shape.state, shape.running, set(shape.done), shape.lease) == (state, running, done, lease)


def test_claim_needs_a_running_state_and_a_lease():
    with pytest.raises(ValueError):
        claims.claim(None, None, idempotency.IN_TRANSACTION, document=IdempotencyRecordDoc, lease_seconds=1)
