"""The one claim primitive (core/claims.py) and the three records built on it."""

import datetime as dt

import pytest
from flowsuite.core import claims, effects, idempotency
from flowsuite.core.bus import records
from flowsuite.core.documents import DocumentWriteError
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
    ("shape", "state", "running", "done", "lease", "holder"),
    [
        (idempotency.SHAPE, "status", "in_progress", {"completed"}, "locked_until", "token"),
        (effects.SHAPE, "state", "PROCESSING", {"SUCCEEDED"}, "lease_until", "holder"),
        (records.SHAPE, "status", "processing", {"processed", "dead"}, "lease_until", "holder"),
    ],
)
def test_each_record_keeps_its_documented_fields(shape, state, running, done, lease, holder):
    """The records' field names and states are what docs/collections.md and the tests read."""
    assert (shape.state, shape.running, set(shape.done), shape.lease, shape.holder) == (
        state, running, done, lease, holder)


# ---- holders and leases (issue 22, point 5) ------------------------------------------

HELD = claims.Shape(state="s", running="R", done=frozenset({"D"}), lease="until", holder="who")


def take(record, *, now=None, started=NOW, lease_seconds=180, holder="me", shape=HELD):
    return claims.taking(shape, record, now=now, started=started, lease_seconds=lease_seconds, holder=holder,
                         fields=lambda record, at: {"at": at})


def test_taking_a_record_writes_the_holder_token_and_a_lease_from_the_real_clock():
    taken, written = take(None)
    assert taken == claims.Claim(claims.RUN, None, "me", NOW + dt.timedelta(seconds=180))
    assert written == {"s": "R", "until": NOW + dt.timedelta(seconds=180), "who": "me", "at": NOW}


def test_a_skewed_judging_clock_judges_the_old_lease_but_never_sets_the_new_one():
    """A sweep judging "as of" ten minutes ahead (a test's clock, or any caller's ``now``) may take
    a lease that is expired by that clock, but the lease it takes starts at the real clock."""
    old = {"s": "R", "until": NOW + dt.timedelta(minutes=1), "who": "them"}
    ahead = NOW + dt.timedelta(minutes=10)
    taken, written = take(old, now=ahead)
    assert taken.decision == claims.RUN and taken.holder == "me"
    assert written["until"] == NOW + dt.timedelta(seconds=180) and written["at"] == NOW  # not ahead + 180
    behind = NOW - dt.timedelta(hours=1)  # an event's time, say: the live lease stays live
    assert take(old, now=behind) == (claims.Claim(claims.BUSY, old), None)
    assert take(old) == (claims.Claim(claims.BUSY, old), None)  # by the real clock too


def test_a_refused_claim_takes_nothing_and_names_no_holder():
    done = {"s": "D", "who": "them"}
    assert take(done) == (claims.Claim(claims.DONE, done), None)


@pytest.mark.parametrize(
    ("record", "holder", "holds"),
    [
        ({"s": "R", "who": "me", "until": LATER}, "me", True),
        ({"s": "R", "who": "me", "until": EARLIER}, "me", True),  # expired, but nobody took it over: still mine
        ({"s": "R", "who": "them", "until": LATER}, "me", False),  # taken over after my lease ran out
        ({"s": "D", "who": "me"}, "me", False),  # already done (by me, or reset and redone)
        ({"s": "failed", "who": "me"}, "me", False),  # reset by a failure or a replay
        (None, "me", False),  # deleted
        ({"s": "R", "who": "me"}, None, False),  # no token: nothing to prove
        ({"s": "R"}, "me", False),  # a record from before holder tokens
    ],
)
def test_only_the_holder_of_a_running_record_may_finish_it(record, holder, holds):
    assert claims.holds(HELD, record, holder) is holds


def test_finish_needs_a_shape_with_a_holder():
    with pytest.raises(ValueError):
        claims.finish(None, None, SHAPE, "me", {}, document=IdempotencyRecordDoc)


def test_finish_writes_through_the_record_model():
    """A final write naming a field its record's model does not declare is refused before any I/O."""
    with pytest.raises(DocumentWriteError, match="IdempotencyRecordDoc .* declares no field 'surprise'"):
        claims.finish(None, None, idempotency.SHAPE, "me", {"status": idempotency.COMPLETED, "surprise": 1},
                      document=IdempotencyRecordDoc)


def test_an_idempotency_claim_is_a_whole_valid_record():
    """The idempotency record is claimed by replacing it (not merged): what ``taking`` writes,
    with the fields ``idempotency.run`` adds, passes ``IdempotencyRecordDoc.new``."""
    from google.cloud import firestore as gcf

    for uid in ("u1", None):  # None: a callable that takes no signed-in user
        _, written = claims.taking(
            idempotency.SHAPE, None, now=None, started=NOW, lease_seconds=60, holder="me", digest=H,
            fields=lambda record, now, uid=uid: {"uid": uid, "function": "orders_place",
                                                 "created_time": gcf.SERVER_TIMESTAMP,
                                                 "expires_at": now + dt.timedelta(hours=24)})
        assert IdempotencyRecordDoc.new(written) == written
        assert written["token"] == "me" and written["payload_hash"] == H


def test_two_claims_get_two_holder_tokens():
    first, _ = take(None, holder="a")
    second, written = take({"s": "R", "who": "a", "until": EARLIER}, holder="b")
    assert (first.holder, second.holder, written["who"]) == ("a", "b", "b")
    assert not claims.holds(HELD, written, "a") and claims.holds(HELD, written, "b")


def test_the_effect_deadline_is_the_lease_less_its_margin():
    from flowsuite.core import settings

    until = claims.lease_end(NOW, settings.LEASE_SECONDS)
    assert until == NOW + dt.timedelta(seconds=settings.MAX_FUNCTION_TIMEOUT_SECONDS + settings.LEASE_MARGIN_SECONDS)
    # an attempt may start effects for as long as its function may run after the claim, no longer
    assert claims.effect_deadline(until) == NOW + dt.timedelta(seconds=settings.MAX_FUNCTION_TIMEOUT_SECONDS)
    assert claims.effect_deadline(until, 5) == until - dt.timedelta(seconds=5)


def test_every_lease_outlasts_the_longest_function_timeout_with_margin():
    import inspect

    from flowsuite.core import settings

    assert settings.LEASE_MARGIN_SECONDS > 0
    assert settings.LEASE_SECONDS - settings.LEASE_MARGIN_SECONDS >= settings.MAX_FUNCTION_TIMEOUT_SECONDS
    assert settings.BUS_LEASE_SECONDS == settings.LEASE_SECONDS
    assert inspect.signature(effects.once).parameters["lease_seconds"].default == settings.LEASE_SECONDS
    assert inspect.signature(claims.claim).parameters["lease_seconds"].default == settings.LEASE_SECONDS
    # an idempotency key stays locked for its callable's own timeout and the margin
    for timeout in (60, settings.MAX_FUNCTION_TIMEOUT_SECONDS):
        assert idempotency.lock_seconds(timeout) - settings.LEASE_MARGIN_SECONDS >= timeout


def test_claim_needs_a_running_state_and_a_lease():
    with pytest.raises(ValueError):
        claims.claim(None, None, idempotency.IN_TRANSACTION, document=IdempotencyRecordDoc, lease_seconds=1)
