"""Running for months (issue 22): one bad record never stops a job, outside errors are read
correctly, user data follows Auth. Real emulators, nothing mocked."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from flowsuite.core import events
from flowsuite.ops.events import ProbeSent, SweepFinished
from flowsuite.orders.events import OrderPaid

from testkit import harness
from testkit.harness import call, eventually
from testkit.shop import order, place, product, publish, stock

PAST = dt.timedelta(minutes=1)


def expire_now(db, order_id: str) -> None:
    db.document(f"orders/{order_id}").update({"expires_at": dt.datetime.now(dt.UTC) - PAST})



def tokens_of(db, uid: str) -> set[str]:
    return {s.get("fcm_token") for s in db.collection(f"users/{uid}/fcm_tokens").stream()}


def add_token(user, value: str) -> str:
    call("addFcmToken", {"userDocPath": f"users/{user.uid}", "fcmToken": value, "deviceType": "iOS"}, user=user)
    return value


def processed(db, event_id: str, subscriber: str) -> dict:
    return eventually(lambda: (d := harness.doc(db, f"deliveries/{event_id}:{subscriber}")) and d["status"] == "processed"
                      and d, what=f"{subscriber} processed")


# ---- 1. jobs isolate failures -------------------------------------------------------------

def test_expiry_runs_past_bad_orders_and_a_deleted_product(admin, db):
    buyers = [harness.sign_up() for _ in range(3)]
    kept, doomed = product(db, stock=5), product(db, stock=5, name="Gone")
    good = [place(buyers[0], [(kept, 1)]), place(buyers[1], [(kept, 1)])]
    orphan = place(buyers[2], [(kept, 1), (doomed, 1)])
    for out in [*good, orphan]:
        expire_now(db, out["order_id"])
    # N injected bad records: pending orders written past the rules, missing what expiry needs
    bad = [f"bad-order-{i}" for i in range(3)]
    for order_id in bad:
        db.document(f"orders/{order_id}").set({"status": "pending_payment",
                                               "expires_at": dt.datetime.now(dt.UTC) - PAST})
    db.document(f"products/{doomed}").delete()  # deleted in the console while its order is held

    answer = call("orders_run_expiry", {}, user=admin)
    assert sorted(answer["cancelled"]) == sorted(o["order_id"] for o in [*good, orphan])
    for out in [*good, orphan]:
        eventually(lambda out=out: order(db, out["order_id"])["status"] == "cancelled", what="expired order cancelled")
    assert stock(db, kept) == 5  # every held unit of the product that exists came back
    assert harness.doc(db, f"products/{doomed}") is None  # no ghost product re-created by the release
    assert all(harness.doc(db, f"orders/{o}")["status"] == "pending_payment" for o in bad)  # logged, skipped


def test_reconciliation_works_in_slices_from_a_saved_cursor(admin, db):
    users = [harness.sign_up() for _ in range(5)]
    gone = users[1:3]
    for user in gone:
        harness.delete_account_outside_the_suite(user.uid)
    profiles = len(list(db.collection("users").stream()))  # the admin's and the five
    assert profiles == 6

    first = call("identity_run_reconciliation", {"pages": 1, "page_size": 2, "confirm": True}, user=admin)
    assert (first["checked"], first["pass_complete"]) == (2, False) and first["cursor"]
    assert harness.doc(db, "identity_state/reconciliation")["cursor"] == first["cursor"]
    runs, checked, erased = [first], first["checked"], list(first["erased"])
    while not runs[-1]["pass_complete"]:
        runs.append(call("identity_run_reconciliation", {"pages": 1, "page_size": 2, "confirm": True}, user=admin))
        checked += runs[-1]["checked"]
        erased += runs[-1]["erased"]
        assert len(runs) <= 4, "a pass over six profiles in slices of two must end"
    assert checked == profiles and sorted(erased) == sorted(u.uid for u in gone)
    assert all(r["failed"] == 0 for r in runs)
    assert harness.doc(db, "identity_state/reconciliation")["cursor"] is None  # the next pass starts over
    eventually(lambda: all(harness.doc(db, f"users/{u.uid}") is None for u in gone), what="erased")


# ---- 4. the sweep finds what matters first ------------------------------------------------

def test_one_sweep_finds_a_lost_event_behind_a_thousand_unsubscribed_ones(admin, db):
    import flowsuite.ops.functions  # noqa: F401 - registers the subscribers in this process

    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    noise = [events.envelope_for(SweepFinished(retried=0, stalled=0, lost=0, processed=0), subject="ops_state/sweep",
                                 now=old - dt.timedelta(seconds=i)) for i in range(1200)]  # nobody subscribes
    for start in range(0, len(noise), 400):
        batch = db.batch()
        for env in noise[start:start + 400]:
            batch.set(db.document(f"topics/ops.sweep_finished/events/{env.id}"), env.model_dump())
        batch.commit()
    lost = events.envelope_for(ProbeSent(probe_id="lost-behind-noise"), subject="s", now=old)
    db.document(f"topics/ops.probe/events/{lost.id}").set(lost.model_dump())
    eventually(lambda: (harness.doc(db, f"deliveries/{lost.id}:ops_on_probe") or {}).get("status") == "processed",
               what="first delivery")
    db.document(f"deliveries/{lost.id}:ops_on_probe").delete()  # as if the trigger never ran
    db.document("ops_probes/lost-behind-noise").delete()

    counts = call("ops_run_sweep", {}, user=admin)
    assert counts["lost"] == 1
    assert harness.doc(db, "ops_probes/lost-behind-noise")["received"] == 1
    # its bookkeeping is not a bus event: the 1,200 are still all there are
    assert len(list(db.collection("topics/ops.sweep_finished/events").stream())) == 1200
    state = harness.doc(db, "ops_state/sweep")
    assert state["last_counts"]["lost"] == 1 and "ops.probe" in state["lost_scan"]
    assert "ops.sweep_finished" not in state["lost_scan"]
    assert call("ops_run_sweep", {}, user=admin)["lost"] == 0  # the cursor: nothing found twice


def test_events_carry_a_ttl(admin, db):
    out = call("ops_send_probe", {"idempotency_key": "ttl-probe"}, user=admin)
    event = harness.doc(db, f"topics/ops.probe/events/{out['event_id']}")
    assert event["expires_at"] - event["time"] == dt.timedelta(days=30)
    done = eventually(lambda: (harness.doc(db, f"deliveries/{out['event_id']}:ops_on_probe") or {}).get("expires_at"),
                      what="processed delivery with its TTL")
    assert done > event["time"] + dt.timedelta(days=29)


# ---- 2. outside errors read correctly -----------------------------------------------------

def test_only_dead_tokens_are_deleted(db, member):
    """FCM's answers come back as the SDK's own exception types (push.fcm_answer_for). A token FCM
    answers INVALID_ARGUMENT as "not a valid FCM registration token" is deleted; an invalid
    argument about the message, and a transient error, delete nothing."""
    good = add_token(member, f"tok-{uuid.uuid4().hex}")
    malformed = add_token(member, "bad-token-device")  # InvalidArgumentError: not a registration token
    transient = add_token(member, "unavailable-device")  # UnavailableError
    dead = add_token(member, "unregistered-device")  # UnregisteredError
    foreign = add_token(member, "sender-mismatch-device")  # SenderIdMismatchError
    event_id = publish(db, OrderPaid(order_id="o-fcm-errors", uid=member.uid, total=100, currency="usd", payment_id="p"))
    processed(db, event_id, "notifications_on_order_paid")
    eventually(lambda: tokens_of(db, member.uid) == {good, transient}, what="only dead tokens pruned")
    assert not {malformed, dead, foreign} & tokens_of(db, member.uid)
    assert [p for p in harness.pushes_to(db, good) if p["data"].get("order_id") == "o-fcm-errors"]
    assert harness.doc(db, f"dead_letters/{event_id}:notifications_on_order_paid") is None


def test_an_invalid_argument_for_every_token_of_a_push_deletes_none(db, member):
    """An INVALID_ARGUMENT that does not say the token is invalid may be the message's fault (FCM
    validates each platform's payload apart), so the tokens are kept."""
    first, second = add_token(member, "bad-argument-one"), add_token(member, "bad-argument-two")
    event_id = publish(db, OrderPaid(order_id="o-all-invalid", uid=member.uid, total=100, currency="usd", payment_id="p"))
    record = processed(db, event_id, "notifications_on_order_paid")
    assert record["steps"]["push"] == {"sent": 0, "failed": 2, "pruned": 0}
    assert tokens_of(db, member.uid) == {first, second}
    assert [sorted(p["rejected_tokens"]) for p in harness.pushes_to(db, first)] == [sorted([first, second])]


def test_a_push_too_large_for_fcm_fails_with_its_reason_and_keeps_every_token(db, admin, member):
    tok = add_token(member, f"tok-{uuid.uuid4().hex}")
    # each field within its own limit, together over FCM's 4,096 bytes (3 bytes a euro sign)
    db.document("ff_push_notifications/too-large").set({
        "notification_title": "Sale", "notification_text": "€" * 1000, "parameter_data": "x" * 2000,
        "user_refs": f"users/{member.uid}", "status": "", "timestamp": dt.datetime.now(dt.UTC),
    })
    done = eventually(lambda: (d := harness.doc(db, "ff_push_notifications/too-large")) and d.get("status") == "failed"
                      and d, what="failed push")
    assert done["num_sent"] == 0 and "4096" in done["error"] and "bytes" in done["error"]
    assert tokens_of(db, member.uid) == {tok}
    assert harness.pushes_to(db, tok) == []


def test_a_permanent_smtp_rejection_marks_the_address_undeliverable_without_retries(db):
    """The SMTP sink (devtools/smtp_sink.py) answers 550 5.1.1 for this domain, as a real server does."""
    user = harness.sign_up(f"gone-{uuid.uuid4().hex[:6]}@rejects.flowsuite.test")
    welcome = eventually(lambda: [e for e in db.collection("topics/identity.user_created/events").stream()
                                  if e.get("data")["uid"] == user.uid], what="user_created")[0]
    first = processed(db, welcome.id, "notifications_on_user_created")
    assert first["attempts"] == 1  # no retry
    assert harness.doc(db, f"dead_letters/{welcome.id}:notifications_on_user_created") is None
    mark = harness.doc(db, f"email_suppressions/{user.uid}")
    assert mark["code"] == 550 and "unknown" in mark["reason"].lower()
    assert user.email not in str(mark)  # only its hash is kept
    assert harness.mails_to(user.email) == []

    receipt = publish(db, OrderPaid(order_id="o-undeliverable", uid=user.uid, total=100, currency="usd", payment_id="p"))
    again = processed(db, receipt, "notifications_on_order_paid")
    assert again["attempts"] == 1
    assert harness.doc(db, f"users/{user.uid}/notifications/{receipt}")  # the inbox still gets it


# ---- 9. edges of the API --------------------------------------------------------------------

@pytest.mark.parametrize("body", [b"not json", b'{"data": ', b"[1, 2]", b"42", b'"data"', b'{"x": 1}'])
def test_a_callable_body_that_is_not_json_answers_invalid_argument(admin, body):
    answer = harness.SESSION.post(f"{harness.functions_url()}/ops_ping", data=body, timeout=60,
                                  headers={"Content-Type": "application/json",
                                           "Authorization": f"Bearer {admin.id_token}"})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and error["details"]["fields"][0]["field"] == "data"


# ---- 6. staff edits cannot oversell ---------------------------------------------------------

def test_a_staff_edit_never_overwrites_reserved_stock(db, staff, member):
    def upsert(**fields):
        return call("orders_upsert_product", {"name": "Mug", "price": 1250, "currency": "usd",
                                              "idempotency_key": uuid.uuid4().hex, **fields}, user=staff)

    product_id = upsert(stock=5)["product_id"]
    loaded = stock(db, product_id)  # the staff form loads 5
    place(member, [(product_id, 2)])  # meanwhile a customer reserves 2
    with pytest.raises(harness.CallableError) as err:
        upsert(product_id=product_id, stock=10, expected_stock=loaded)
    assert err.value.code == "failed-precondition"
    assert stock(db, product_id) == 3
    renamed = upsert(product_id=product_id, name="Big mug", price=1500)  # no stock field: stock untouched
    assert renamed["stock"] == 3 and stock(db, product_id) == 3
    assert harness.doc(db, f"products/{product_id}")["price"] == 1500
    assert upsert(product_id=product_id, stock_delta=7)["stock"] == 10 and stock(db, product_id) == 10
    assert upsert(product_id=product_id, stock=12, expected_stock=10)["stock"] == 12
    with pytest.raises(harness.CallableError) as err:
        upsert(product_id=product_id, stock=12)  # an absolute value without what the form loaded
    assert err.value.code == "invalid-argument" and err.value.fields == ["expected_stock"]


# ---- 7. scheduled pushes never vanish -------------------------------------------------------

def ff_done(db, path: str, timeout: float = 30.0) -> dict:
    return eventually(lambda: (d := harness.doc(db, path)) and d.get("status") in ("succeeded", "failed") and d,
                      timeout=timeout, what=f"{path} finished")


def test_a_push_moved_later_in_the_console_is_sent_at_its_new_time(db, admin, member):
    tok = add_token(member, f"tok-{uuid.uuid4().hex}")
    first = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20)
    db.document("ff_push_notifications/moved").set({
        "notification_title": "Later", "notification_text": "moved", "scheduled_time": first,
        "user_refs": f"users/{member.uid}", "status": ""})
    eventually(lambda: harness.doc(db, "ff_push_notifications/moved").get("scheduled_for"), what="scheduled")
    moved = first + dt.timedelta(seconds=20)  # far enough that a send at `first` fails the check below
    db.document("ff_push_notifications/moved").update({"scheduled_time": moved})  # an admin moves it in the console
    done = ff_done(db, "ff_push_notifications/moved", timeout=150)
    assert done["status"] == "succeeded" and done["num_sent"] == 1
    sent_at = harness.pushes_to(db, tok)[0]["time"]
    assert sent_at >= moved - dt.timedelta(seconds=10)


def test_a_transient_fcm_failure_ends_failed_with_its_reason(db, member):
    add_token(member, "unavailable-only-device")
    db.document("ff_user_push_notifications/transient").set({
        "notification_title": "Hi", "notification_text": "there", "user_refs": f"users/{member.uid}",
        "sender": db.document(f"users/{member.uid}"), "status": ""})
    done = ff_done(db, "ff_user_push_notifications/transient")
    assert done["status"] == "failed" and done["num_sent"] == 0 and "UnavailableError" in done["error"]
    assert tokens_of(db, member.uid) == {"unavailable-only-device"}  # a transient error never prunes
