import datetime as dt

import pytest
from flowsuite.core import bus, effects, events, idempotency
from flowsuite.core.errors import InvalidArgumentError
from flowsuite.ops.events import ProbeSent

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(minutes=5)
EARLIER = NOW - dt.timedelta(minutes=5)


def test_envelope_carries_type_source_version_and_data():
    env = events.envelope_for(ProbeSent(probe_id="p1"), subject="ops_probes/p1", correlation_id="corr-1", now=NOW)
    assert (env.type, env.source, env.schema_version) == ("ops.probe", "ops", 1)
    assert env.data == {"probe_id": "p1", "note": ""}
    assert env.correlation_id == "corr-1" and env.time == NOW and len(env.id) == 32


def test_event_type_lives_on_its_own_path():
    assert ProbeSent.event_type.trigger_path == "topics/ops.probe/events/{event_id}"


def test_event_type_names_must_name_their_source():
    with pytest.raises(ValueError):
        events.event_type("order.placed", source="payments")
    with pytest.raises(ValueError):
        events.event_type("order/placed", source="orders")


def test_parse_roundtrip_validates_data():
    env = events.envelope_for(ProbeSent(probe_id="p2"), subject="s", correlation_id="c")
    envelope, data = events.parse(env.model_dump())
    assert data == ProbeSent(probe_id="p2")


def test_backoff_doubles_and_is_capped():
    mid = lambda: 0.5  # noqa: E731 - no jitter
    assert [bus.backoff_seconds(n, 10, rand=mid) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert bus.backoff_seconds(30, 10, cap=600, rand=mid) == 600
    assert 9 <= bus.backoff_seconds(1, 10) <= 11


@pytest.mark.parametrize(
    ("record", "decision"),
    [
        (None, "run"),
        ({"status": "processed"}, "duplicate"),
        ({"status": "dead"}, "duplicate"),
        ({"status": "processing", "lease_until": LATER}, "busy"),
        ({"status": "processing", "lease_until": EARLIER}, "run"),
        ({"status": "failed"}, "run"),
    ],
)
def test_delivery_claim_decisions(record, decision):
    assert bus.claim_decision(record, NOW) == decision


def test_payload_hash_ignores_key_order():
    assert idempotency.payload_hash({"a": 1, "b": [1, 2]}) == idempotency.payload_hash({"b": [1, 2], "a": 1})
    assert idempotency.payload_hash({"a": 1}) != idempotency.payload_hash({"a": 2})


def test_idempotency_record_decisions():
    h = idempotency.payload_hash({"x": 1})
    assert idempotency.decide(None, h, NOW) == "run"
    assert idempotency.decide({"status": "completed", "payload_hash": h, "expires_at": LATER}, h, NOW) == "replay"
    assert idempotency.decide({"status": "completed", "payload_hash": h, "expires_at": EARLIER}, h, NOW) == "run"
    assert idempotency.decide({"status": "in_progress", "payload_hash": h, "locked_until": LATER}, h, NOW) == "wait"
    assert idempotency.decide({"status": "in_progress", "payload_hash": h, "locked_until": EARLIER}, h, NOW) == "run"
    with pytest.raises(InvalidArgumentError) as err:
        idempotency.decide({"status": "completed", "payload_hash": "other", "expires_at": LATER}, h, NOW)
    assert err.value.fields[0]["field"] == "idempotency_key"


def test_record_ids_separate_users_functions_and_keys():
    ids = {idempotency.record_id(u, f, k) for u in ("u1", "u2") for f in ("f1", "f2") for k in ("k1", "k2")}
    assert len(ids) == 8


def test_effect_decisions():
    assert effects.decide(None, NOW) == "run"
    assert effects.decide({"state": "SUCCEEDED"}, NOW) == "done"
    assert effects.decide({"state": "PROCESSING", "lease_until": LATER}, NOW) == "busy"
    assert effects.decide({"state": "PROCESSING", "lease_until": EARLIER}, NOW) == "run"
    assert effects.decide({"state": "FAILED"}, NOW) == "run"


def test_a_person_key_is_stable_and_holds_no_uid():
    from flowsuite.core.ids import person_key

    uid = "FrMZeQxpIWPmJ7zAjxtxPRMmFb4c"
    assert person_key(uid) == person_key(uid) != person_key(uid + "x")
    assert uid not in person_key(uid) and len(person_key(uid)) == 32


def test_an_event_runs_each_step_once_and_names_steps_plainly():
    import pytest
    from flowsuite.core import events
    from flowsuite.ops.events import ProbeSent

    envelope = events.envelope_for(ProbeSent(probe_id="p"), subject="s", correlation_id="c-1234567")
    done = events.Event(envelope=envelope, data=ProbeSent(probe_id="p"), steps={"push": {"sent": 1}})
    calls = []
    assert done.once("push", lambda: calls.append("push")) == {"sent": 1} and calls == []
    assert done.once("email", lambda: calls.append("email") or {"id": "m"}) == {"id": "m"}
    assert done.once("email", lambda: calls.append("again")) == {"id": "m"} and calls == ["email"]
    with pytest.raises(ValueError):
        done.once("steps.push", dict)


# ---- a leased delivery's steps and its lease's deadline (issue 22, point 5) -----------

class RecordingRef:
    """A delivery record's reference that keeps what was written (a fake, no I/O)."""

    def __init__(self):
        self.updates = []

    def update(self, fields):
        self.updates.append(fields)


def test_a_step_is_kept_on_the_record_as_soon_as_its_effect_is_done():
    """An attempt that takes a delivery over after this one stalled finds every finished effect."""
    from flowsuite.core.bus.deliver import _StepLog

    ref = RecordingRef()
    log = _StepLog(ref, deadline=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    envelope = events.envelope_for(ProbeSent(probe_id="p"), subject="s", correlation_id="c-1234567")
    event = events.Event(envelope=envelope, data=ProbeSent(probe_id="p"), step_log=log)
    assert event.once("push", lambda: {"sent": 1}) == {"sent": 1}
    assert [set(u) for u in ref.updates] == [{"steps.push", "updated_time"}]  # written before the handler goes on
    assert ref.updates[0]["steps.push"] == {"sent": 1} and log.fields() == {}


def test_no_effect_starts_past_the_leases_deadline():
    """A slow attempt past its deadline (its function would have timed out; another attempt may
    hold the delivery now) stops before the effect, and says so."""
    from flowsuite.core import claims
    from flowsuite.core.bus.deliver import _StepLog

    ref = RecordingRef()
    log = _StepLog(ref, deadline=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    envelope = events.envelope_for(ProbeSent(probe_id="p"), subject="s", correlation_id="c-1234567")
    event = events.Event(envelope=envelope, data=ProbeSent(probe_id="p"), steps={"push": {"sent": 1}}, step_log=log)
    sent = []
    assert event.once("push", lambda: sent.append("push")) == {"sent": 1}  # a finished step is answered, late or not
    with pytest.raises(claims.LeaseLostError):
        event.once("email", lambda: sent.append("email"))
    assert sent == [] and ref.updates == []


def test_a_step_whose_write_fails_stays_pending_for_the_failure_path():
    from flowsuite.core.bus.deliver import _StepLog

    class FlakyRef(RecordingRef):
        def update(self, fields):
            if not self.updates:
                self.updates.append("refused")
                raise ConnectionError("firestore went away")
            super().update(fields)

    ref = FlakyRef()
    log = _StepLog(ref, deadline=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    with pytest.raises(ConnectionError):
        log.keep("email", {"message_id": "m-1"})
    assert log.fields() == {"steps.email": {"message_id": "m-1"}}
    log.flush()  # what deliver does on the failure path
    assert ref.updates[-1]["steps.email"] == {"message_id": "m-1"} and log.fields() == {}


def test_a_protobuf_timestamp_becomes_an_aware_datetime_that_compares_with_stored_times():
    import datetime as dt

    from flowsuite.core import clock
    from google.protobuf.timestamp_pb2 import Timestamp

    stored = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    created = clock.as_datetime(Timestamp(seconds=int(stored.timestamp()) + 1))
    assert created == stored + dt.timedelta(seconds=1) and created > stored
    assert clock.as_datetime(stored) is stored and clock.as_datetime(None) is None
