"""The event bus on the real emulators: routing, idempotent delivery, retries, dead letters."""

from __future__ import annotations

import uuid

import pytest
from flowsuite.core import bus, events
from flowsuite.ops.events import ProbeSent, SweepFinished
from google.cloud import firestore

from testkit import harness
from testkit.harness import call, eventually


def send_probe(admin) -> dict:
    return call("ops_send_probe", {"idempotency_key": uuid.uuid4().hex}, user=admin)


def delivery(db, event_id: str, subscriber: str = "ops_on_probe") -> dict | None:
    return harness.doc(db, f"deliveries/{event_id}:{subscriber}")


def processed(db, event_id: str):
    d = delivery(db, event_id)
    return d if d and d["status"] == "processed" else None


def test_a_subscriber_fires_for_its_type(admin, db):
    out = send_probe(admin)
    d = eventually(lambda: processed(db, out["event_id"]), what="probe delivery")
    assert d["attempts"] == 1 and d["correlation_id"] == out["correlation_id"]
    assert harness.doc(db, f"ops_probes/{out['probe_id']}")["received"] == 1


def test_a_subscriber_does_not_fire_for_another_type(admin, db):
    import flowsuite.ops.functions  # noqa: F401 - registers the subscribers in this process

    assert bus.SUBSCRIBERS["ops_on_probe"].event_type.name == "ops.probe"
    assert not any(s.event_type.name == "ops.sweep_finished" for s in bus.SUBSCRIBERS.values())
    batch = db.batch()
    other = events.publish(batch, SweepFinished(retried=0, stalled=0, lost=0, processed=0), subject="t", db=db)
    probe = events.publish(batch, ProbeSent(probe_id="p-routing"), subject="t", db=db)
    batch.commit()
    eventually(lambda: processed(db, probe.id), what="probe delivery")
    assert delivery(db, other.id) is None
    assert list(db.collection("deliveries").where(filter=firestore.FieldFilter("event_id", "==", other.id)).stream()) == []


def test_the_same_event_delivered_twice_has_one_effect(admin, db):
    import flowsuite.ops.functions  # noqa: F401 - registers subscribers

    out = send_probe(admin)
    eventually(lambda: processed(db, out["event_id"]), what="first delivery")
    event_doc = harness.doc(db, f"topics/ops.probe/events/{out['event_id']}")
    spec = bus.SUBSCRIBERS["ops_on_probe"]
    assert bus.deliver(spec, event_doc, via="test", db=db) == "duplicate"
    assert bus.deliver(spec, event_doc, via="test", db=db) == "duplicate"
    assert harness.doc(db, f"ops_probes/{out['probe_id']}")["received"] == 1
    assert delivery(db, out["event_id"])["attempts"] == 1


def test_a_failing_handler_is_retried_with_backoff_and_ends_processed(admin, db):
    db.document("_faults/ops_on_probe").set({"remaining": 2})
    out = send_probe(admin)
    d = eventually(lambda: processed(db, out["event_id"]), timeout=60, what="processed after retries")
    assert d["attempts"] == 3
    outcomes = [h["outcome"] for h in sorted(d["history"], key=lambda h: h["attempt"])]
    assert outcomes == ["failed", "failed", "processed"]
    history = sorted(d["history"], key=lambda h: h["attempt"])
    assert [h["via"] for h in history][1:] == ["retry", "retry"]
    # exponential backoff (BUS_RETRY_BASE_SECONDS=1 locally): ~1 s, then ~2 s
    gaps = [(b["at"] - a["at"]).total_seconds() for a, b in zip(history, history[1:], strict=False)]
    assert gaps[0] >= 0.4 and gaps[1] >= 1.3  # each retry waits for its due time (0.5 s early at most)
    assert harness.doc(db, f"ops_probes/{out['probe_id']}")["received"] == 1


def test_an_always_failing_handler_becomes_a_dead_letter_and_replays_after_a_fix(admin, db):
    db.document("_faults/ops_on_probe").set({"always": True})
    out = send_probe(admin)
    dead_id = f"{out['event_id']}:ops_on_probe"
    letter = eventually(lambda: harness.doc(db, f"dead_letters/{dead_id}"), timeout=90, what="dead letter")
    assert letter["attempts"] == 3  # BUS_MAX_ATTEMPTS in functions/.env.local
    assert "fault injected" in letter["error"] and len(letter["history"]) == 3
    assert letter["envelope"]["id"] == out["event_id"]
    listed = call("ops_list_dead_letters", {}, user=admin)["dead_letters"]
    assert dead_id in [row["id"] for row in listed]
    assert harness.doc(db, f"ops_probes/{out['probe_id']}")["received"] == 0

    db.document("_faults/ops_on_probe").delete()  # the fix
    answer = call("ops_replay_dead_letters", {"ids": [dead_id]}, user=admin)
    assert answer["replayed"] == [{"id": dead_id, "outcome": "processed"}]
    assert processed(db, out["event_id"])
    assert harness.doc(db, f"ops_probes/{out['probe_id']}")["received"] == 1
    assert dead_id not in [row["id"] for row in call("ops_list_dead_letters", {}, user=admin)["dead_letters"]]


def test_replay_needs_ids_or_all(admin):
    with pytest.raises(harness.CallableError) as err:
        call("ops_replay_dead_letters", {}, user=admin)
    assert err.value.code == "invalid-argument" and err.value.fields == ["ids"]


def test_a_state_change_whose_transaction_fails_publishes_nothing(db):
    from google.cloud import firestore

    class Abort(Exception):
        pass

    @firestore.transactional
    def change(txn):
        txn.set(db.document("ops_probes/aborted"), {"received": 0})
        events.publish(txn, ProbeSent(probe_id="aborted"), subject="ops_probes/aborted", db=db)
        raise Abort

    with pytest.raises(Abort):
        change(db.transaction())
    assert harness.doc(db, "ops_probes/aborted") is None
    assert list(db.collection("topics/ops.probe/events").stream()) == []


def test_the_sweep_delivers_a_lost_event_and_takes_over_a_stalled_one(admin, db):
    import datetime as dt

    import flowsuite.ops.functions  # noqa: F401

    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    # a lost event: in the store, no delivery record (written where no trigger listens, then moved in)
    lost = events.envelope_for(ProbeSent(probe_id="lost"), subject="s", correlation_id="c-lost", now=old)
    stalled = events.envelope_for(ProbeSent(probe_id="stalled"), subject="s", correlation_id="c-stalled", now=old)
    db.document(f"topics/ops.probe/events/{stalled.id}").set(stalled.model_dump())
    eventually(lambda: processed(db, stalled.id), what="stalled event's first delivery")
    db.document(f"deliveries/{stalled.id}:ops_on_probe").update(
        {"status": "processing", "lease_until": old, "attempts": 1}
    )
    counts_before = harness.doc(db, "ops_probes/stalled")["received"]
    # a lost event: the trigger delivered it, then its delivery record vanished (as if the
    # trigger never ran); the sweep finds events without a record and delivers them
    db.document(f"topics/ops.probe/events/{lost.id}").set(lost.model_dump())
    eventually(lambda: delivery(db, lost.id), what="trigger delivery of the lost event")
    eventually(lambda: processed(db, lost.id), what="lost event processed by trigger")
    db.document(f"deliveries/{lost.id}:ops_on_probe").delete()
    db.document("ops_probes/lost").delete()

    counts = call("ops_run_sweep", {}, user=admin)
    assert counts["stalled"] >= 1 and counts["lost"] >= 1
    assert processed(db, lost.id) and processed(db, stalled.id)
    assert harness.doc(db, "ops_probes/lost")["received"] == 1
    assert harness.doc(db, "ops_probes/stalled")["received"] == counts_before + 1
    assert harness.doc(db, "ops_state/sweep")["last_counts"]["lost"] >= 1


def test_a_sweep_judges_leases_by_its_own_clock(db):
    """A live lease (a worker still running) is left alone by a sweep now, and taken
    over by a sweep whose clock is past it: the query and the claim use one clock."""
    import datetime as dt

    import flowsuite.ops.functions  # noqa: F401

    envelope = events.envelope_for(ProbeSent(probe_id="leased"), subject="s", correlation_id="c-leased")
    db.document(f"topics/ops.probe/events/{envelope.id}").set(envelope.model_dump())
    eventually(lambda: processed(db, envelope.id), what="first delivery")
    received = harness.doc(db, "ops_probes/leased")["received"]
    live_until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=100)
    db.document(f"deliveries/{envelope.id}:ops_on_probe").update(
        {"status": "processing", "lease_until": live_until, "attempts": 1})

    assert bus.sweep(db=db)["stalled"] == 0  # not due by the real clock
    spec = bus.SUBSCRIBERS["ops_on_probe"]
    assert bus.deliver(spec, envelope.model_dump(), via="sweep", db=db) == "busy"

    counts = bus.sweep(db=db, now=live_until + dt.timedelta(seconds=1))
    assert counts["stalled"] >= 1 and counts["processed"] >= 1, counts
    assert processed(db, envelope.id)["attempts"] == 2
    assert harness.doc(db, "ops_probes/leased")["received"] == received + 1


def test_a_retried_delivery_does_not_repeat_the_steps_it_finished(db):
    """Event.once on a leased delivery: a step that finished before a later step
    failed is kept on the delivery record, and the retry skips it."""
    runs = {"push": 0, "email": 0}

    def handler(event):
        event.once("push", lambda: runs.__setitem__("push", runs["push"] + 1) or {"sent": 1})
        def email():
            runs["email"] += 1
            if runs["email"] == 1:
                raise ConnectionError("SMTP went away")
            return {"message_id": "m-1"}
        event.once("email", email)

    spec = bus.Subscriber(name="test_steps", event_type=ProbeSent.event_type, handler=handler,
                          transactional=False, domain="ops")
    envelope = events.envelope_for(ProbeSent(probe_id="steps"), subject="s", correlation_id="c-steps")
    assert bus.deliver(spec, envelope.model_dump(), via="test", db=db) == "failed"
    record = delivery(db, envelope.id, "test_steps")
    assert record["status"] == "failed" and record["steps"] == {"push": {"sent": 1}}

    assert bus.deliver(spec, envelope.model_dump(), via="test", db=db) == "processed"
    assert runs == {"push": 1, "email": 2}
    record = delivery(db, envelope.id, "test_steps")
    assert record["attempts"] == 2 and record["steps"] == {"push": {"sent": 1}, "email": {"message_id": "m-1"}}
    assert bus.deliver(spec, envelope.model_dump(), via="test", db=db) == "duplicate"
    assert runs == {"push": 1, "email": 2}


def test_a_retry_later_outlasts_the_attempts_but_not_the_maximum_age(db, monkeypatch):
    """A RetryLaterError (Stripe still processing a debit) does not use up BUS_MAX_ATTEMPTS, but a
    delivery failing for longer than BUS_MAX_RETRY_HOURS (72) is a dead letter; a replay starts over."""
    import datetime as dt

    from flowsuite.core.errors import RetryLaterError

    monkeypatch.setenv("BUS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("BUS_RETRY_BASE_SECONDS", "1")
    state = {"settled": False}

    def handler(event):
        if not state["settled"]:
            raise RetryLaterError("the debit is still processing")

    spec = bus.Subscriber(name="test_retry_later", event_type=ProbeSent.event_type, handler=handler,
                          transactional=False, domain="ops")
    monkeypatch.setitem(bus.SUBSCRIBERS, spec.name, spec)  # the replay below finds it in this process
    envelope = events.envelope_for(ProbeSent(probe_id="later"), subject="s", correlation_id="c-later")
    db.document(f"topics/ops.probe/events/{envelope.id}").set(envelope.model_dump())  # the replay reads it
    for _ in range(3):
        assert bus.deliver(spec, envelope.model_dump(), via="test", db=db) == "failed"
    record = delivery(db, envelope.id, spec.name)
    assert record["status"] == "failed" and record["attempts"] == 3  # past BUS_MAX_ATTEMPTS, still waiting
    assert record["next_attempt_at"] <= record["failing_since"] + dt.timedelta(hours=72)
    dead_id = f"{envelope.id}:{spec.name}"
    assert harness.doc(db, f"dead_letters/{dead_id}") is None

    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=73)
    db.document(f"deliveries/{dead_id}").update({"failing_since": long_ago})
    assert bus.deliver(spec, envelope.model_dump(), via="test", db=db) == "dead"
    letter = harness.doc(db, f"dead_letters/{dead_id}")
    assert letter["dead_reason"] == "age" and "still processing" in letter["error"] and letter["attempts"] == 4
    assert delivery(db, envelope.id, spec.name)["status"] == "dead"

    state["settled"] = True
    assert bus.replay_dead_letter(dead_id, db=db) == "processed"
    record = delivery(db, envelope.id, spec.name)
    assert record["status"] == "processed" and record["failing_since"] is None  # the replay reset the clock


def test_the_last_eraser_waits_for_a_dead_eraser_until_an_admin_replays_it(member, db):
    """ops erases last and waits for the other erasers, as a "retry later": past BUS_MAX_ATTEMPTS
    (3 locally), bounded by ERASURE_MAX_WAIT_HOURS, naming a dead one to replay. Once an admin
    replays that one, ops' next retry finishes the erasure."""
    import datetime as dt

    from flowsuite.core.ids import person_key

    db.document("_faults/notifications_on_user_deleted").set({"always": True})
    call("identity_delete_account", {}, user=member)
    event_id = person_key(member.uid)
    ops_delivery = f"deliveries/{event_id}:ops_on_user_deleted"
    eventually(lambda: harness.doc(db, f"dead_letters/{event_id}:notifications_on_user_deleted"), timeout=60,
               what="the failing eraser dead-lettered")
    waiting = eventually(lambda: (d := harness.doc(db, ops_delivery)) and d["attempts"] > 3
                         and f"dead letters to replay: ['{event_id}:notifications_on_user_deleted']"
                         in (d.get("last_error") or "") and d,
                         timeout=90, what="ops still waiting past BUS_MAX_ATTEMPTS, naming the dead eraser")
    assert waiting["status"] in ("failed", "processing")
    assert harness.doc(db, f"dead_letters/{event_id}:ops_on_user_deleted") is None

    db.document("_faults/notifications_on_user_deleted").delete()  # the fix, then the replay
    admin = harness.user_with_role("admin")
    replayed = call("ops_replay_dead_letters", {"ids": [f"{event_id}:notifications_on_user_deleted"]}, user=admin)
    assert replayed["replayed"][0]["outcome"] == "processed"
    db.document(ops_delivery).update({"next_attempt_at": dt.datetime.now(dt.UTC)})  # its next retry, due now
    eventually(lambda: call("ops_run_sweep", {}, user=admin) is not None and (harness.doc(db, ops_delivery) or {}).get(
        "status") == "processed", timeout=60, interval=1, what="ops finished the erasure")
    assert harness.doc(db, f"topics/identity.user_deleted/events/{event_id}")["data"]["uid"] == "deleted-user"


def test_an_event_newer_than_its_consumer_waits_instead_of_dying(db):
    """A publisher deployed before its consumer: version 2 of ops.probe, which this code (version 1)
    cannot read, is retried as a "retry later" past BUS_MAX_ATTEMPTS (3 locally), not dead-lettered."""
    envelope = events.envelope_for(ProbeSent(probe_id="from-the-future"), subject="s", correlation_id="c-future")
    doc = {**envelope.model_dump(), "schema_version": 2, "data": {"probe": {"id": "from-the-future"}}}
    db.document(f"topics/ops.probe/events/{envelope.id}").set(doc)
    record = eventually(lambda: (d := delivery(db, envelope.id)) and d["attempts"] >= 4 and d, timeout=90,
                        what="a fourth attempt")
    assert record["status"] in ("failed", "processing") and "newer than this consumer" in record["last_error"]
    assert harness.doc(db, f"dead_letters/{envelope.id}:ops_on_probe") is None
    assert harness.doc(db, "ops_probes/from-the-future") is None


# ---- slow handlers: leases, holders and late finishers (issue 22, point 5) ---------------
# These run a leased subscriber in this process with a 2 s lease (effects may start during
# its first 1 s), so a lease really runs out on the real clock within the test; the takeover
# is the real sweep, in another thread, as another instance would run it.

def short_leases(monkeypatch) -> None:
    from flowsuite.core import settings

    monkeypatch.setattr(settings, "BUS_LEASE_SECONDS", 2)
    monkeypatch.setattr(settings, "LEASE_MARGIN_SECONDS", 1)


def leased_subscriber(name: str, handler, monkeypatch) -> bus.Subscriber:
    spec = bus.Subscriber(name=name, event_type=ProbeSent.event_type, handler=handler, transactional=False,
                          domain="ops")
    monkeypatch.setitem(bus.SUBSCRIBERS, spec.name, spec)  # the sweep finds it in this process
    return spec


def stored_event(db, probe_id: str) -> events.Envelope:
    envelope = events.envelope_for(ProbeSent(probe_id=probe_id), subject="s", correlation_id=f"c-{probe_id}")
    db.document(f"topics/ops.probe/events/{envelope.id}").set(envelope.model_dump())  # the sweep reads it
    return envelope


def first_attempt_in_background(spec, envelope) -> tuple:
    """Starts attempt 1 in another thread, as the trigger's instance; returns it and its outcome."""
    import threading

    outcome: dict = {}
    worker = threading.Thread(target=lambda: outcome.update(
        first=bus.deliver(spec, envelope.model_dump(), via="trigger", db=harness.admin_db())))
    worker.start()
    return worker, outcome


def take_over_once_the_lease_ran_out(db, record_path: str) -> dict:
    """Waits (real clock) until attempt 1's lease has run out, then runs the sweep, which finds
    the delivery stalled and takes it over."""
    import datetime as dt
    import time

    lease_until = eventually(lambda: (harness.doc(db, record_path) or {}).get("lease_until"), what="attempt 1's lease")
    time.sleep(max(0.0, (lease_until - dt.datetime.now(dt.UTC)).total_seconds()) + 0.2)
    counts = bus.sweep(db=db)
    assert counts["stalled"] >= 1 and counts["processed"] >= 1, counts
    return counts


def test_a_slow_handler_taken_over_cannot_overwrite_the_takeover_and_its_effect_happens_once(db, monkeypatch, capsys):
    """Attempt 1 sends, then stalls past its lease (a handler slower than its function's timeout).
    The sweep takes the delivery over (attempt 2), finds the send kept on the record, does not send
    again, and marks it processed. When attempt 1 finally finishes, its processed mark is refused
    (the record is held by attempt 2's token) and it logs why: one send, one processed mark."""
    import threading

    short_leases(monkeypatch)
    sent: list[int] = []
    taken_over = threading.Event()

    def handler(event):
        event.once("send", lambda: sent.append(event.attempt) or {"sent_by": event.attempt})
        if event.attempt == 1:
            assert taken_over.wait(30), "the sweep never took the delivery over"  # slow, after its effect

    spec = leased_subscriber("test_slow_after_send", handler, monkeypatch)
    envelope = stored_event(db, "slow-after-send")
    record_path = f"deliveries/{envelope.id}:{spec.name}"
    worker, outcome = first_attempt_in_background(spec, envelope)
    eventually(lambda: "send" in ((harness.doc(db, record_path) or {}).get("steps") or {}),
               what="attempt 1's send kept on the record at once")
    try:
        take_over_once_the_lease_ran_out(db, record_path)
    finally:
        taken_over.set()
        worker.join(30)
    assert outcome["first"] == bus.LEASE_LOST

    record = harness.doc(db, record_path)
    assert sent == [1]  # the takeover found the send and did not repeat it
    assert record["status"] == "processed" and record["attempts"] == 2 and record["holder"]
    assert record["steps"] == {"send": {"sent_by": 1}}
    assert [(h["attempt"], h["outcome"], h["via"]) for h in record["history"]] == [(2, "processed", "sweep")]
    assert "delivery finished after its lease was taken over" in capsys.readouterr().out
    assert bus.deliver(spec, envelope.model_dump(), via="test", db=db) == "duplicate" and sent == [1]


def test_a_handler_slow_before_its_effect_starts_nothing_once_its_lease_ran_out(db, monkeypatch):
    """Attempt 1 stalls before its send, past its lease's deadline; the sweep takes the delivery
    over and sends. Attempt 1 then reaches its send and stops (lease_lost) instead of sending a
    second time; it writes nothing."""
    import threading

    short_leases(monkeypatch)
    sent: list[int] = []
    taken_over = threading.Event()

    def handler(event):
        if event.attempt == 1:
            assert taken_over.wait(30), "the sweep never took the delivery over"  # slow, before its effect
        event.once("send", lambda: sent.append(event.attempt) or {"sent_by": event.attempt})

    spec = leased_subscriber("test_slow_before_send", handler, monkeypatch)
    envelope = stored_event(db, "slow-before-send")
    record_path = f"deliveries/{envelope.id}:{spec.name}"
    worker, outcome = first_attempt_in_background(spec, envelope)
    try:
        take_over_once_the_lease_ran_out(db, record_path)
        assert sent == [2]
    finally:
        taken_over.set()
        worker.join(30)
    assert outcome["first"] == bus.LEASE_LOST
    assert sent == [2]
    record = harness.doc(db, record_path)
    assert record["status"] == "processed" and record["attempts"] == 2 and record["steps"] == {"send": {"sent_by": 2}}
    assert [(h["attempt"], h["outcome"]) for h in record["history"]] == [(2, "processed")]


def test_an_effect_that_outlived_its_lease_does_not_overwrite_the_attempt_that_took_over(db):
    """effects.once: attempt 1's call is slower than its lease; attempt 2 takes the effect over and
    succeeds. Attempt 1's late SUCCEEDED is refused (the record is held by attempt 2's token), so
    the record keeps the outcome of the attempt that holds it."""
    import threading
    import time

    from flowsuite.core import effects

    key = f"test-slow-effect-{uuid.uuid4().hex[:8]}"
    started, release = threading.Event(), threading.Event()
    results: dict = {}

    def slow() -> dict:
        started.set()
        assert release.wait(30)
        return {"by": "attempt 1"}

    worker = threading.Thread(target=lambda: results.update(
        first=effects.once(key, slow, lease_seconds=1, meta={"kind": "test"}, db=harness.admin_db())))
    worker.start()
    try:
        assert started.wait(30)
        time.sleep(1.2)  # attempt 1's lease (1 s) runs out while its call is in flight
        assert effects.once(key, lambda: {"by": "attempt 2"}, lease_seconds=1, meta={"kind": "test"},
                            db=db) == {"by": "attempt 2"}
    finally:
        release.set()
        worker.join(30)
    assert results["first"] == {"by": "attempt 1"}  # its caller still gets what its own call did
    record = harness.doc(db, f"effects/{key}")
    assert record["state"] == "SUCCEEDED" and record["result"] == {"by": "attempt 2"} and record["attempts"] == 2
    assert effects.once(key, lambda: {"by": "attempt 3"}, db=db) == {"by": "attempt 2"}
