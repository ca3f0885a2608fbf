"""Notifications on the real emulators and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from flowsuite.identity.events import UserCreated
from flowsuite.orders.events import OrderCancelled, OrderPaid
from flowsuite.payments.events import PaymentFailed, PaymentRefunded

from testkit import accounts, harness
from testkit.harness import AppClient, CallableError, Denied, Ref, call, eventually
from testkit.shop import publish


def inbox(db, uid: str) -> list[dict]:
    return [s.to_dict() for s in db.collection(f"users/{uid}/notifications").stream()]


def token(user, value: str | None = None, device: str = "iOS") -> str:
    value = value or f"tok-{uuid.uuid4().hex}"
    call("addFcmToken", {"userDocPath": f"users/{user.uid}", "fcmToken": value, "deviceType": device}, user=user)
    return value


def test_sign_up_sends_a_welcome_to_the_inbox_and_by_email(db):
    user = harness.sign_up(f"welcome-{uuid.uuid4().hex[:6]}@example.com", display_name="Ada")
    note = eventually(lambda: inbox(db, user.uid), what="welcome in the inbox")[0]
    assert note["type"] == "welcome" and note["read"] is False and "Ada" in note["body"]
    mail = eventually(lambda: harness.mails_to(user.email), what="welcome email")
    assert len(mail) == 1 and "Welcome to" in mail[0]["Subject"]
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in mail[0].walk() if not p.is_multipart()}
    assert "Hi there" in parts["text/plain"] and "<h1>" in parts["text/html"]
    assert "Ada" not in parts["text/plain"] + parts["text/html"]  # a typed display name never goes out by email


def test_a_display_name_cannot_turn_the_welcome_email_into_phishing(db):
    """Anyone can sign up with someone else's address: the welcome email must carry none of their text."""
    bait = "Your bank account is locked, verify it at https://evil.example/login"
    victim = f"victim-{uuid.uuid4().hex[:6]}@example.com"
    user = harness.sign_up(victim, display_name=bait)
    mail = eventually(lambda: harness.mails_to(victim), what="welcome email")
    text = mail[0]["Subject"] + "".join(p.get_payload(decode=True).decode() for p in mail[0].walk()
                                        if not p.is_multipart())
    assert "Welcome to" in text and "evil.example" not in text and "bank account" not in text
    assert bait in eventually(lambda: inbox(db, user.uid), what="inbox")[0]["body"]  # the owner's own inbox


def test_malformed_preferences_never_stop_a_notification(db, member):
    db.document(f"users/{member.uid}/settings/notifications").set({"order_paid": "email off", "welcome": ["x"]})
    event_id = publish(db, OrderPaid(order_id="o-prefs", uid=member.uid, total=100, currency="usd", payment_id="p"))
    eventually(lambda: (d := harness.doc(db, f"deliveries/{event_id}:notifications_on_order_paid")) and
               d["status"] == "processed", what="delivered despite the malformed preferences")
    assert harness.doc(db, f"users/{member.uid}/notifications/{event_id}")["type"] == "order_paid"
    assert harness.doc(db, f"dead_letters/{event_id}:notifications_on_order_paid") is None


SUBSCRIBERS = {
    "order_paid": (lambda u: OrderPaid(order_id="o-1", uid=u, total=2500, currency="usd", payment_id="p"),
                   {"inbox", "push", "email"}, "25.00 USD"),
    "order_cancelled": (lambda u: OrderCancelled(order_id="o-2", uid=u, reason="cancelled_by_customer",
                                                 was_paid=False, total=100, currency="usd"), {"inbox", "push"}, "o-2"),
    "payment_failed": (lambda u: PaymentFailed(payment_id="p", order_id="o-3", uid=u, reason="card_declined"),
                       {"inbox", "push"}, "(card declined). Your items are still reserved"),
    "payment_refunded": (lambda u: PaymentRefunded(payment_id="p", order_id="o-4", uid=u, amount=999, currency="eur"),
                         {"inbox", "push", "email"}, "9.99 EUR"),
}


@pytest.mark.parametrize("kind", sorted(SUBSCRIBERS))
def test_each_subscriber_notifies_on_its_channels(db, member, kind):
    make, channels, needle = SUBSCRIBERS[kind]
    tok = token(member)
    eventually(lambda: inbox(db, member.uid), what="welcome first")
    event_id = publish(db, make(member.uid))
    note = eventually(lambda: harness.doc(db, f"users/{member.uid}/notifications/{event_id}"), what=f"{kind} inbox")
    assert note["type"] == kind and needle in note["body"]
    if "push" in channels:
        pushed = eventually(lambda: [p for p in harness.pushes_to(db, tok) if p["data"].get("type") == kind], what="push")
        assert pushed[0]["title"] == note["title"]
    else:
        assert not [p for p in harness.pushes_to(db, tok) if p["data"].get("type") == kind]
    if "email" in channels:
        mails = eventually(lambda: [m for m in harness.mails_to(member.email) if needle in m.get_body(("plain",)).get_content()], what="email")
        assert len(mails) == 1


def test_a_redelivered_event_sends_nothing_twice(db, member):
    import flowsuite.notifications.functions  # noqa: F401
    from flowsuite.core import bus

    tok = token(member)
    event_id = publish(db, OrderPaid(order_id="o-dup", uid=member.uid, total=100, currency="usd", payment_id="p"))
    eventually(lambda: harness.doc(db, f"deliveries/{event_id}:notifications_on_order_paid") and
               harness.doc(db, f"deliveries/{event_id}:notifications_on_order_paid")["status"] == "processed", what="delivery")
    spec = bus.SUBSCRIBERS["notifications_on_order_paid"]
    doc = harness.doc(db, f"topics/order.paid/events/{event_id}")
    # As if the worker died after sending, before its processed mark: the lease ran
    # out and the sweep (here: a redelivery) takes the delivery over.
    record = f"deliveries/{event_id}:notifications_on_order_paid"
    assert set(harness.doc(db, record)["steps"]) == {"push", "email"}
    db.document(record).update({"status": "processing", "lease_until": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)})
    assert bus.deliver(spec, doc, via="test", db=db) == "processed"
    assert harness.doc(db, record)["attempts"] == 2
    assert len([p for p in harness.pushes_to(db, tok) if p["data"].get("order_id") == "o-dup"]) == 1
    assert len([m for m in harness.mails_to(member.email) if "o-dup" in m["Subject"]]) == 1


def test_a_replayed_receipt_for_an_order_refunded_since_sends_nothing_and_says_why(db, admin, member):
    """Issue 22: the receipt for a paid order is dead-lettered (its subscriber failing); meanwhile the
    customer cancels and the order is refunded. An admin's replay of that dead letter, once the
    subscriber is fixed, checks the order as it is now: no "we received your payment" on any
    channel; the delivery is processed and its record and log say why."""
    from testkit.payments import confirm
    from testkit.shop import events_of, order, place, product

    tok = token(member)
    db.document("_faults/notifications_on_order_paid").set({"always": True})
    out = place(member, [(product(db), 1)])
    intent = call("payments_create_intent", {"order_id": out["order_id"], "idempotency_key": uuid.uuid4().hex},
                  user=member)
    confirm(harness.doc(db, f"payments/{intent['payment_id']}")["provider_ref"])
    paid = eventually(lambda: events_of(db, "order.paid", order_id=out["order_id"]), what="order.paid")[0]
    letter_id = f"{paid['id']}:notifications_on_order_paid"
    eventually(lambda: harness.doc(db, f"dead_letters/{letter_id}"), timeout=90, what="the receipt dead-lettered")
    assert call("orders_cancel", {"order_id": out["order_id"]}, user=member)["status"] == "cancelled"
    eventually(lambda: order(db, out["order_id"])["status"] == "refunded", timeout=60, what="the order refunded")
    eventually(lambda: [n for n in inbox(db, member.uid) if n["type"] == "payment_refunded"],
               what="the refund notice (what is true now)")

    db.document("_faults/notifications_on_order_paid").delete()  # the fix, then the operator's replay
    replayed = call("ops_replay_dead_letters", {"ids": [letter_id]}, user=admin)
    assert replayed["replayed"] == [{"id": letter_id, "outcome": "processed"}]
    record = harness.doc(db, f"deliveries/{letter_id}")
    assert record["status"] == "processed"
    assert record["steps"] == {"skipped": {"sent": 0, "reason": "order_refunded", "order_id": out["order_id"]}}
    assert harness.doc(db, f"users/{member.uid}/notifications/{paid['id']}") is None
    assert [n for n in inbox(db, member.uid) if n["type"] == "order_paid"] == []
    assert [p for p in harness.pushes_to(db, tok) if p["data"].get("type") == "order_paid"] == []
    assert [m for m in harness.mails_to(member.email) if "Receipt for order" in m["Subject"]] == []
    eventually(lambda: [x for x in harness.log_lines(paid["correlation_id"])
                        if x.get("message") == "notification skipped: what it announces is no longer true"
                        and x.get("reason") == "order_refunded"], what="the skip logged with its reason")


def test_a_disabled_channel_sends_nothing(db, member):
    AppClient(member).set(f"users/{member.uid}/settings/notifications", {"order_paid": {"email": False, "push": False}})
    tok = token(member)
    event_id = publish(db, OrderPaid(order_id="o-quiet", uid=member.uid, total=100, currency="usd", payment_id="p"))
    eventually(lambda: harness.doc(db, f"users/{member.uid}/notifications/{event_id}"), what="inbox still on")
    eventually(lambda: (d := harness.doc(db, f"deliveries/{event_id}:notifications_on_order_paid")) and d["status"] == "processed",
               what="processed")
    assert [p for p in harness.pushes_to(db, tok) if p["data"].get("order_id") == "o-quiet"] == []
    assert [m for m in harness.mails_to(member.email) if "o-quiet" in m["Subject"]] == []


def test_an_invalid_token_is_pruned(db, member):
    good, bad = token(member), token(member, "invalid-stale-device")
    publish(db, OrderPaid(order_id="o-prune", uid=member.uid, total=100, currency="usd", payment_id="p"))
    pushed = eventually(lambda: [p for p in harness.pushes_to(db, good) if p["data"].get("order_id") == "o-prune"], what="push")
    assert pushed[0]["rejected_tokens"] == [bad]
    remaining = eventually(lambda: (t := [s.get("fcm_token") for s in db.collection(f"users/{member.uid}/fcm_tokens").stream()]) == [good] and t,
                           what="pruned token")
    assert remaining == [good]


def test_add_fcm_token_ownership_and_moving(db, member):
    other = harness.sign_up()
    shared = token(other, "device-shared")
    with pytest.raises(CallableError) as err:
        call("addFcmToken", {"userDocPath": f"users/{other.uid}", "fcmToken": "x", "deviceType": "iOS"}, user=member)
    assert err.value.code == "permission-denied"
    with pytest.raises(CallableError) as err:
        call("addFcmToken", {"userDocPath": f"users/{member.uid}", "fcmToken": "x", "deviceType": "Windows"}, user=member)
    assert err.value.code == "invalid-argument" and err.value.fields == ["deviceType"]
    token(member, shared, device="Android")
    assert [s.get("fcm_token") for s in db.collection(f"users/{other.uid}/fcm_tokens").stream()] == []
    mine = [s.to_dict() for s in db.collection(f"users/{member.uid}/fcm_tokens").stream()]
    assert [(t["fcm_token"], t["device_type"]) for t in mine] == [(shared, "Android")]
    token(member, shared, device="Android")  # again: still one document
    assert len(list(db.collection(f"users/{member.uid}/fcm_tokens").stream())) == 1


def test_add_fcm_token_keeps_the_newest_ten_tokens_of_a_user(db, member):
    """The rules refuse direct writes, and addFcmToken keeps a user's newest 10 token documents
    (by created_at, server time), deleting the older ones: no user can flood the collection every
    broadcast reads."""
    def stored() -> dict[str, dict]:
        return {s.get("fcm_token"): s.to_dict() for s in db.collection(f"users/{member.uid}/fcm_tokens").stream()}

    values = [token(member, f"dev-{k:02d}-{uuid.uuid4().hex}", device="Android" if k % 2 else "iOS") for k in range(12)]
    kept = stored()
    assert sorted(kept) == sorted(values[2:])  # the two registered first are gone
    assert all(isinstance(d["created_at"], dt.datetime) for d in kept.values())
    assert [kept[v]["device_type"] for v in values[2:4]] == ["iOS", "Android"]
    token(member, values[2])  # registered again: now the newest, it stays
    newest = token(member)
    assert sorted(stored()) == sorted([values[2], *values[4:], newest])  # values[3] was the oldest left


def ff_push(db, collection: str, doc_id: str) -> dict:
    return eventually(lambda: (d := harness.doc(db, f"{collection}/{doc_id}")) and d.get("status") in ("succeeded", "failed") and d,
                      what=f"{collection} processed")


def test_flutterflow_broadcast_push_with_audience(db, admin, member):
    ios, android = token(member, device="iOS"), token(harness.sign_up(), device="Android")
    AppClient(admin).create("ff_push_notifications", "b1", {
        "notification_title": "Sale", "notification_text": "50% off", "target_audience": "iOS",
        "initial_page_name": "ShopPage", "parameter_data": '{"id":"1"}', "user_refs": "", "status": "",
        "sender": Ref.to(f"users/{admin.uid}"), "timestamp": dt.datetime.now(dt.UTC),
    })
    done = ff_push(db, "ff_push_notifications", "b1")
    assert (done["status"], done["num_sent"], done["error"]) == ("succeeded", 1, "")
    sent = harness.pushes_to(db, ios)
    assert sent[0]["data"] == {"initialPageName": "ShopPage", "parameterData": '{"id":"1"}'}
    assert harness.pushes_to(db, android) == []


def test_flutterflow_user_push_targets_only_its_recipients(db, member):
    receiver, bystander = harness.sign_up(), harness.sign_up()
    to_receiver, to_bystander = token(receiver), token(bystander)
    AppClient(member).create("ff_user_push_notifications", "u1", {
        "notification_title": "Hi", "notification_text": "ping", "user_refs": f"/users/{receiver.uid}",
        "sender": Ref.to(f"users/{member.uid}"), "target_audience": "All",
    })
    assert ff_push(db, "ff_user_push_notifications", "u1")["num_sent"] == 1
    assert len(harness.pushes_to(db, to_receiver)) == 1 and harness.pushes_to(db, to_bystander) == []


def test_a_user_push_without_recipients_never_goes_to_everyone(db, member):
    bystander_token = token(harness.sign_up())
    AppClient(member).create("ff_user_push_notifications", "u2", {
        "notification_title": "Hi", "notification_text": "all?", "user_refs": "", "sender": Ref.to(f"users/{member.uid}"),
    })
    done = ff_push(db, "ff_user_push_notifications", "u2")
    assert (done["status"], done["num_sent"]) == ("failed", 0) and "user_refs" in done["error"]
    assert harness.pushes_to(db, bystander_token) == []


def test_empty_title_fails_with_a_reason_and_processed_documents_are_left_alone(db, admin):
    with pytest.raises(Denied):  # the rules refuse it from the app; the function refuses it from anywhere
        AppClient(admin).create("ff_push_notifications", "e0", {"notification_title": "", "notification_text": "x",
                                                                 "sender": Ref.to(f"users/{admin.uid}")})
    db.document("ff_push_notifications/e1").set({"notification_title": "", "notification_text": "x"})
    done = ff_push(db, "ff_push_notifications", "e1")
    assert done["status"] == "failed" and "required" in done["error"]
    old = f"old-{uuid.uuid4().hex[:8]}"
    db.document(f"ff_push_notifications/{old}").set({"notification_title": "t", "notification_text": "x",
                                                      "status": "succeeded"})
    eventually(lambda: [line for line in harness.log_lines(old) if line.get("message") == "flutterflow push skipped"],
               what="the trigger saw the processed document")
    assert harness.doc(db, f"ff_push_notifications/{old}").get("num_sent") is None


def test_the_per_sender_rate_limit_fails_with_a_reason(db, member):
    receiver = harness.sign_up()
    token(receiver)
    for i in range(4):  # PUSH_RATE_LIMIT=3 in functions/.env.local
        AppClient(member).create("ff_user_push_notifications", f"r{i}", {
            "notification_title": "Hi", "notification_text": str(i), "user_refs": f"users/{receiver.uid}",
            "sender": Ref.to(f"users/{member.uid}")})
    results = [ff_push(db, "ff_user_push_notifications", f"r{i}") for i in range(4)]
    assert sorted(r["status"] for r in results) == ["failed", "succeeded", "succeeded", "succeeded"]
    assert "rate limit" in next(r for r in results if r["status"] == "failed")["error"]


def test_a_scheduled_push_waits_for_its_time(db, admin, member):
    tok = token(member)
    at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=25)  # beyond the 10 s slack: it is scheduled, not sent
    AppClient(admin).create("ff_push_notifications", "s1", {
        "notification_title": "Later", "notification_text": "soon", "scheduled_time": at, "user_refs": f"users/{member.uid}",
        "sender": Ref.to(f"users/{admin.uid}")})
    eventually(lambda: harness.doc(db, "ff_push_notifications/s1").get("scheduled_for"), what="scheduled")
    assert harness.pushes_to(db, tok) == [] and not harness.doc(db, "ff_push_notifications/s1").get("status")
    done = ff_push(db, "ff_push_notifications", "s1") if eventually(
        lambda: harness.doc(db, "ff_push_notifications/s1").get("status"), timeout=90, what="sent at its time") else None
    assert done["status"] == "succeeded"
    sent_at = harness.pushes_to(db, tok)[0]["time"]
    assert at - dt.timedelta(seconds=10) <= sent_at <= at + dt.timedelta(seconds=60)


# ---- targeted pushes stay targeted (issue 16) ----------------------------------------
# functions/.env.local: PUSH_RATE_LIMIT=3 (recipients a minute); caps at their defaults
# (PUSH_MAX_RECIPIENTS=10, PUSH_MAX_RECIPIENTS_STAFF=100).

def user_push(sender, doc_id: str, recipients: list[str], **fields) -> None:
    AppClient(sender).create("ff_user_push_notifications", doc_id, {
        "notification_title": "Hi", "notification_text": "ping", "sender": Ref.to(f"users/{sender.uid}"),
        "user_refs": ",".join(f"/users/{uid}" for uid in recipients), **fields})


def charged(db, uid: str) -> int:
    return (harness.doc(db, f"push_rate_limits/{uid}") or {}).get("count", 0)


def test_a_member_push_to_more_than_ten_users_fails_and_sends_nothing(db, member):
    receiver = harness.sign_up()
    tok = token(receiver)
    user_push(member, "many", [receiver.uid] + [f"nobody-{i}" for i in range(10)])
    done = ff_push(db, "ff_user_push_notifications", "many")
    assert (done["status"], done["num_sent"]) == ("failed", 0)
    assert "at most 10" in done["error"] and "11 named" in done["error"]
    assert harness.pushes_to(db, tok) == [] and charged(db, member.uid) == 0


def test_staff_may_name_more_recipients(db, staff):
    receiver = harness.sign_up()
    tok = token(receiver)
    user_push(staff, "staff-many", [receiver.uid] + [f"nobody-{i}" for i in range(19)])
    done = ff_push(db, "ff_user_push_notifications", "staff-many")
    assert (done["status"], done["num_sent"], done["error"]) == ("succeeded", 1, "")
    assert len(harness.pushes_to(db, tok)) == 1 and charged(db, staff.uid) == 20


def test_the_rate_limit_counts_recipients_not_documents(db, member):
    a, b, c = harness.sign_up(), harness.sign_up(), harness.sign_up()
    tokens = {u.uid: token(u) for u in (a, b, c)}
    user_push(member, "two", [a.uid, b.uid])
    assert ff_push(db, "ff_user_push_notifications", "two")["status"] == "succeeded"
    user_push(member, "two-more", [b.uid, c.uid])
    refused = ff_push(db, "ff_user_push_notifications", "two-more")
    assert (refused["status"], refused["num_sent"]) == ("failed", 0) and "rate limit" in refused["error"]
    assert harness.pushes_to(db, tokens[c.uid]) == [] and len(harness.pushes_to(db, tokens[b.uid])) == 1
    user_push(member, "one", [c.uid])  # the third recipient of the minute still fits
    assert ff_push(db, "ff_user_push_notifications", "one")["status"] == "succeeded"
    assert charged(db, member.uid) == 3


def test_a_disabled_or_deleted_sender_is_refused_and_sends_nothing(db, admin):
    """Firestore's rules cannot tell a disabled or deleted account's unexpired token from a live
    one, so the push document is created; the function refuses it from the sender's profile."""
    from flowsuite.core.ids import person_key

    receiver, disabled, deleted = harness.sign_up(), harness.sign_up(), harness.sign_up()
    tok = token(receiver)
    call("identity_disable_user", {"uid": disabled.uid, "disabled": True}, user=admin)
    user_push(disabled, "from-disabled", [receiver.uid])
    done = ff_push(db, "ff_user_push_notifications", "from-disabled")
    assert (done["status"], done["num_sent"]) == ("failed", 0) and "not active (disabled)" in done["error"]
    assert harness.doc(db, f"push_rate_limits/{disabled.uid}") is None
    # a scheduled push admitted before its sender was disabled, due now: refused when it is sent
    now = dt.datetime.now(dt.UTC)
    db.document("ff_user_push_notifications/due-from-disabled").set({
        "notification_title": "Hi", "notification_text": "later", "user_refs": f"users/{receiver.uid}",
        "sender": db.document(f"users/{disabled.uid}"), "status": "", "scheduled_time": now,
        "scheduled_for": now, "admitted_time": now, "admitted_recipients": 1})
    done = ff_push(db, "ff_user_push_notifications", "due-from-disabled")
    assert (done["status"], done["num_sent"]) == ("failed", 0) and "not active (disabled)" in done["error"]

    call("identity_delete_account", {}, user=deleted)
    erased = f"deliveries/{person_key(deleted.uid)}:ops_on_user_deleted"  # ops erases last
    eventually(lambda: (harness.doc(db, erased) or {}).get("status") == "processed", timeout=60, what="erasure")
    user_push(deleted, "from-deleted", [receiver.uid])
    done = ff_push(db, "ff_user_push_notifications", "from-deleted")
    assert (done["status"], done["num_sent"]) == ("failed", 0) and "no account profile" in done["error"]
    assert done["sender"] is None  # written after the erasure, which will not come again: it names no one
    assert harness.doc(db, f"push_rate_limits/{deleted.uid}") is None  # not re-created after the erasure
    assert harness.pushes_to(db, tok) == []


def test_a_broadcast_from_an_admin_demoted_since_their_token_was_issued_sends_nothing(db, admin, member):
    """The demoted admin's ID token still carries the admin claim (for up to an hour): the rules
    refuse a new broadcast from it (they read the profile, where identity_set_role wrote the new
    role), and one written past the rules naming them is refused by the function from the same
    profile. A broadcast scheduled while they were an admin is refused when it comes due."""
    demoted = harness.user_with_role("admin")  # a second admin: the last one cannot be demoted
    tok = token(member)
    sender = Ref.to(f"users/{demoted.uid}")
    at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)  # beyond the 10 s slack: scheduled, not sent
    AppClient(demoted).create("ff_push_notifications", "later-from-demoted", {
        "notification_title": "Later", "notification_text": "for all", "user_refs": "", "sender": sender,
        "scheduled_time": at})
    eventually(lambda: harness.doc(db, "ff_push_notifications/later-from-demoted").get("scheduled_for"),
               what="scheduled while the sender was an admin")

    assert call("identity_set_role", {"uid": demoted.uid, "role": "member"}, user=admin)["changed"] is True
    assert demoted.claims["role"] == "admin"  # the token issued before the demotion, still valid
    with pytest.raises(Denied):
        AppClient(demoted).create("ff_push_notifications", "refused", {
            "notification_title": "Sale", "notification_text": "for all", "user_refs": "", "sender": sender})
    assert harness.doc(db, "ff_push_notifications/refused") is None
    db.document("ff_push_notifications/from-demoted").set({  # past the rules (the console, the Admin SDK)
        "notification_title": "Sale", "notification_text": "for all", "user_refs": "", "status": "",
        "sender": db.document(f"users/{demoted.uid}")})
    done = ff_push(db, "ff_push_notifications", "from-demoted")
    assert (done["status"], done["num_sent"]) == ("failed", 0) and "no longer an admin (member)" in done["error"]

    due = eventually(lambda: (d := harness.doc(db, "ff_push_notifications/later-from-demoted"))
                     and d.get("status") in ("succeeded", "failed") and d, timeout=90, what="refused at its time")
    assert (due["status"], due["num_sent"]) == ("failed", 0) and "no longer an admin (member)" in due["error"]
    assert harness.pushes_to(db, tok) == []


def test_a_targeted_push_scheduled_by_an_admin_demoted_since_is_refused_at_its_time(db, admin):
    """Admitted under the admin's cap (1,000 recipients) when it was written; due after its sender
    was demoted to member (cap 10): refused at its time, nothing sent."""
    demoted = harness.user_with_role("admin")  # a second admin: the last one cannot be demoted
    receiver = harness.sign_up()
    tok = token(receiver)
    at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)  # beyond the 10 s slack: scheduled, not sent
    user_push(demoted, "later-to-eleven", [receiver.uid] + [f"nobody-{i}" for i in range(10)], scheduled_time=at)
    eventually(lambda: harness.doc(db, "ff_user_push_notifications/later-to-eleven").get("scheduled_for"),
               what="scheduled while the sender was an admin")
    assert charged(db, demoted.uid) == 11  # admitted under the admin's cap

    assert call("identity_set_role", {"uid": demoted.uid, "role": "member"}, user=admin)["changed"] is True
    due = eventually(lambda: (d := harness.doc(db, "ff_user_push_notifications/later-to-eleven"))
                     and d.get("status") in ("succeeded", "failed") and d, timeout=90, what="refused at its time")
    assert (due["status"], due["num_sent"]) == ("failed", 0)
    assert "at most 10 users (11 named)" in due["error"] and "role now (member)" in due["error"]
    assert harness.pushes_to(db, tok) == []


def test_an_anonymous_account_may_not_send_a_targeted_push(db):
    """Anonymous accounts are free to make in bulk, each with its own per-sender limits: the rules
    refuse their targeted pushes (only the ID token says how an account signed in; a push
    written past the rules comes from a trusted server and is not refused for it)."""
    receiver = harness.sign_up()
    tok = token(receiver)
    anon = accounts.sign_up_anonymously()
    assert anon.claims["firebase"]["sign_in_provider"] == "anonymous"
    AppClient(anon).create("users", anon.uid, {"uid": anon.uid, "display_name": "", "photo_url": "",
                                               "phone_number": "", "created_time": dt.datetime.now(dt.UTC)})
    eventually(lambda: (harness.doc(db, f"users/{anon.uid}") or {}).get("status") == "active",
               what="the anonymous profile completed by identity")
    with pytest.raises(Denied):
        user_push(anon, "from-anonymous", [receiver.uid])
    assert harness.doc(db, "ff_user_push_notifications/from-anonymous") is None

    assert charged(db, anon.uid) == 0 and harness.pushes_to(db, tok) == []


def test_a_user_with_many_tokens_gets_at_most_ten_devices_of_a_broadcast(db, admin, member):
    """The rules refuse direct token writes now and addFcmToken keeps 10 a user, but documents
    written before remain: a push reaches each user's newest 10 devices, skips tokens that are not
    of FCM's shape, and everybody else still gets theirs. The emulators read tokens 7 a page
    (ffpush.EMULATOR_TOKEN_PAGE), so the member's 36 documents span pages."""
    other = harness.sign_up()
    theirs = token(other)
    mine = token(member)  # the member's real device, registered before the old documents are put back
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    junk = [f"junk-{i:02d}-{uuid.uuid4().hex}" for i in range(30)]
    for i, value in enumerate(junk):  # the newest junk token has the highest index
        db.document(f"users/{member.uid}/fcm_tokens/junk-{i:02d}").set(
            {"fcm_token": value, "device_type": "iOS", "created_at": old + dt.timedelta(seconds=i)})
    malformed = [("x " * 2048)[:4096], "a/b", "dot.token", "t" * 1025, ""]
    for i, value in enumerate(malformed):  # written before the rules checked the shape: newest of all
        db.document(f"users/{member.uid}/fcm_tokens/malformed-{i}").set(
            {"fcm_token": value, "device_type": "iOS", "created_at": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)})

    AppClient(admin).create("ff_push_notifications", "to-all", {
        "notification_title": "Sale", "notification_text": "for all", "user_refs": "", "status": "",
        "sender": Ref.to(f"users/{admin.uid}")})
    done = ff_push(db, "ff_push_notifications", "to-all")
    assert (done["status"], done["num_sent"], done["error"]) == ("succeeded", 11, "")
    pushed = [t for s in db.collection("_push_outbox").stream() for t in s.to_dict()["tokens"]]
    assert sorted(t for t in pushed if t != theirs) == sorted([mine, *junk[21:]])  # the newest 10, each once
    assert pushed.count(theirs) == 1
    assert not set(malformed) & set(pushed)


def test_a_broadcast_written_past_the_rules_is_sent_without_a_sender_and_checked_with_one(db, member):
    """The console, the Admin SDK or FlutterFlow's dashboard may write a broadcast without a
    sender (the rules never see it): it goes out as it always did. One that names a sender is
    held to the sender's profile, wherever it was written."""
    tok = token(member)
    db.document("ff_push_notifications/console").set({
        "notification_title": "News", "notification_text": "from the console", "user_refs": "", "status": ""})
    done = ff_push(db, "ff_push_notifications", "console")
    assert (done["status"], done["num_sent"], done["error"]) == ("succeeded", 1, "")
    assert len(harness.pushes_to(db, tok)) == 1
    db.document("ff_push_notifications/console-as-member").set({
        "notification_title": "News", "notification_text": "as a member", "user_refs": "", "status": "",
        "sender": db.document(f"users/{member.uid}")})
    done = ff_push(db, "ff_push_notifications", "console-as-member")
    assert (done["status"], done["num_sent"]) == ("failed", 0) and "no longer an admin (member)" in done["error"]
    assert len(harness.pushes_to(db, tok)) == 1


@pytest.mark.parametrize(("field", "value", "needle"), [
    ("notification_image_url", "http://example.com/a.png", "https"),
    ("notification_title", 42, "required"),
    ("parameter_data", "d" * 2001, "parameter_data"),
    ("target_audience", "Everyone", "target_audience"),
    ("user_refs", ["users/x"], "user_refs"),
    ("scheduled_time", "tomorrow", "scheduled_time"),
    ("role", "admin", "unknown fields"),
])
def test_a_malformed_push_written_past_the_rules_fails_with_its_reason(db, member, field, value, needle):
    receiver = harness.sign_up()
    tok = token(receiver)
    doc_id = f"bad-{field}"
    db.document(f"ff_user_push_notifications/{doc_id}").set({
        "notification_title": "Hi", "notification_text": "ping", "user_refs": f"users/{receiver.uid}",
        "sender": db.document(f"users/{member.uid}"), field: value})
    done = ff_push(db, "ff_user_push_notifications", doc_id)
    assert (done["status"], done["num_sent"]) == ("failed", 0) and needle in done["error"]
    assert harness.pushes_to(db, tok) == [] and charged(db, member.uid) == 0


def test_a_scheduled_push_is_checked_and_charged_when_created(db, member):
    a, b = harness.sign_up(), harness.sign_up()
    tok = token(a)
    at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    user_push(member, "later-many", [a.uid] + [f"nobody-{i}" for i in range(10)], scheduled_time=at)
    refused = ff_push(db, "ff_user_push_notifications", "later-many")  # at once, not in two hours
    assert refused["status"] == "failed" and "at most 10" in refused["error"]
    assert refused.get("scheduled_for") is None
    user_push(member, "later", [a.uid, b.uid], scheduled_time=at)
    eventually(lambda: harness.doc(db, "ff_user_push_notifications/later").get("scheduled_for"), what="scheduled")
    assert charged(db, member.uid) == 2 and not harness.doc(db, "ff_user_push_notifications/later").get("status")
    user_push(member, "now", [a.uid, b.uid])  # the scheduled push took 2 of the minute's 3
    assert "rate limit" in ff_push(db, "ff_user_push_notifications", "now")["error"]
    assert harness.pushes_to(db, tok) == []


def test_a_time_beyond_the_schedulers_horizon_is_refused_at_once(db, admin, member):
    tok = token(member)
    at = dt.datetime.now(dt.UTC) + dt.timedelta(days=45)
    AppClient(admin).create("ff_push_notifications", "far", {
        "notification_title": "Much later", "notification_text": "x", "scheduled_time": at,
        "user_refs": f"users/{member.uid}", "sender": Ref.to(f"users/{admin.uid}")})
    done = ff_push(db, "ff_push_notifications", "far")
    assert done["status"] == "failed" and "30 days" in done["error"] and done.get("scheduled_for") is None
    user_push(member, "far-user", [member.uid], scheduled_time=at)
    done = ff_push(db, "ff_user_push_notifications", "far-user")
    assert done["status"] == "failed" and "30 days" in done["error"]
    assert charged(db, member.uid) == 0 and harness.pushes_to(db, tok) == []


# ---- rules -------------------------------------------------------------------------

def test_rules_inbox_tokens_settings(db, member):
    other = harness.sign_up()
    note = eventually(lambda: list(db.collection(f"users/{member.uid}/notifications").stream()), what="welcome")[0]
    path = f"users/{member.uid}/notifications/{note.id}"
    mine, theirs = AppClient(member), AppClient(other)
    assert mine.get(path)["type"] == "welcome"
    mine.update(path, {"read": True})
    with pytest.raises(Denied):
        mine.update(path, {"title": "edited"})
    with pytest.raises(Denied):
        theirs.get(path)
    with pytest.raises(Denied):
        theirs.update(path, {"read": True})
    with pytest.raises(Denied):
        mine.create(f"users/{member.uid}/notifications", "fake", {"title": "x"})
    with pytest.raises(Denied):
        mine.delete(path)
    with pytest.raises(Denied):  # tokens are registered through addFcmToken only
        mine.create(f"users/{member.uid}/fcm_tokens", "t1", {"fcm_token": "abc", "device_type": "iOS",
                                                             "created_at": dt.datetime.now(dt.UTC)})
    t1 = call("addFcmToken", {"userDocPath": f"users/{member.uid}", "fcmToken": "abc", "deviceType": "iOS"},
              user=member)["token_id"]
    assert mine.get(f"users/{member.uid}/fcm_tokens/{t1}")["fcm_token"] == "abc"
    with pytest.raises(Denied):
        theirs.create(f"users/{member.uid}/fcm_tokens", "t2", {"fcm_token": "evil", "device_type": "iOS"})
    with pytest.raises(Denied):
        theirs.get(f"users/{member.uid}/fcm_tokens/{t1}")
    with pytest.raises(Denied):
        theirs.delete(f"users/{member.uid}/fcm_tokens/{t1}")
    mine.delete(f"users/{member.uid}/fcm_tokens/{t1}")
    assert harness.doc(db, f"users/{member.uid}/fcm_tokens/{t1}") is None
    mine.set(f"users/{member.uid}/settings/notifications", {"welcome": {"email": False}})
    with pytest.raises(Denied):
        mine.set(f"users/{member.uid}/settings/other", {"x": 1})
    with pytest.raises(Denied):
        theirs.set(f"users/{member.uid}/settings/notifications", {"welcome": {"email": True}})
    with pytest.raises(Denied):
        AppClient(None).get(path)


def test_rules_flutterflow_push_documents(db, admin, member):
    me = Ref.to(f"users/{member.uid}")
    with pytest.raises(Denied):
        AppClient(member).create("ff_push_notifications", "x", {"notification_title": "t", "notification_text": "x",
                                                                "sender": me})
    with pytest.raises(Denied):
        AppClient(member).create("ff_user_push_notifications", "as-other",
                                 {"notification_title": "t", "notification_text": "x", "sender": Ref.to("users/someone")})
    with pytest.raises(Denied):
        AppClient(member).create("ff_user_push_notifications", "pre",
                                 {"notification_title": "t", "notification_text": "x", "sender": me, "status": "succeeded"})
    with pytest.raises(Denied):
        AppClient(None).create("ff_user_push_notifications", "anon", {"notification_title": "t", "notification_text": "x"})
    AppClient(member).create("ff_user_push_notifications", "ok", {"notification_title": "t", "notification_text": "x", "sender": me})
    assert AppClient(member).get("ff_user_push_notifications/ok")["notification_title"] == "t"
    with pytest.raises(Denied):
        AppClient(harness.sign_up()).get("ff_user_push_notifications/ok")
    with pytest.raises(Denied):
        AppClient(member).update("ff_user_push_notifications/ok", {"status": "succeeded"})


def test_deleting_the_account_erases_notifications_tokens_and_settings(db, member):
    token(member)
    AppClient(member).set(f"users/{member.uid}/settings/notifications", {"welcome": {"email": False}})
    eventually(lambda: inbox(db, member.uid), what="welcome")
    call("identity_delete_account", {}, user=member)
    for sub in ("notifications", "fcm_tokens", "settings"):
        eventually(lambda sub=sub: list(db.collection(f"users/{member.uid}/{sub}").stream()) == [], what=f"{sub} erased")


def test_user_created_event_model_round_trips():
    assert UserCreated(uid="u", via="client").model_dump()["via"] == "client"


def test_an_order_notification_reaches_at_most_ten_devices_of_its_user(db, member):
    """Order notifications read the user's devices as broadcasts do: their newest 10 usable tokens,
    a page at a time, however many they registered (the emulators read 7 a page)."""
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for k in range(14):
        db.document(f"users/{member.uid}/fcm_tokens/many-{k:02d}").set({
            "fcm_token": f"many-{k:02d}", "device_type": "Android", "created_at": base + dt.timedelta(minutes=k)})
    db.document(f"users/{member.uid}/fcm_tokens/junk").set({"fcm_token": "not a token", "device_type": "Android",
                                                             "created_at": base + dt.timedelta(days=1)})
    publish(db, OrderPaid(order_id="o-many", uid=member.uid, total=100, currency="usd", payment_id="p"))
    newest = {f"many-{k:02d}" for k in range(4, 14)}
    eventually(lambda: all(harness.pushes_to(db, t) for t in newest), timeout=60, what="the receipt on the newest 10")
    assert not any(harness.pushes_to(db, f"many-{k:02d}") for k in range(4))
    assert harness.pushes_to(db, "not a token") == []
