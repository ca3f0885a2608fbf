"""Accounts over months (issue 22, points 3 and 8): user data follows Firebase Auth, and deleting
an account with open business. Real emulators: the Auth emulator's REST API stands for the
Firebase console, the Admin SDK and a FlutterFlow app's own Auth calls (testkit/accounts.py)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import stripe
from flowsuite.orders.events import OrderPaid

from testkit import accounts, harness
from testkit.harness import AppClient, AuthError, Ref, call, eventually
from testkit.payments import confirm, stripe_client
from testkit.shop import events_of, order, place, product, publish


def unique(prefix: str, domain: str = "example.com") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@{domain}"


def profile(db, uid: str) -> dict:
    return harness.doc(db, f"users/{uid}")


def inbox(db, uid: str, kind: str) -> list[dict]:
    return [s.to_dict() for s in db.collection(f"users/{uid}/notifications").stream() if s.get("type") == kind]


def processed(db, event_id: str, subscriber: str) -> dict:
    return eventually(lambda: (d := harness.doc(db, f"deliveries/{event_id}:{subscriber}")) and d["status"] == "processed"
                      and d, what=f"{subscriber} processed")


def email_outcome(db, event_path: str, kind: str) -> str | None:
    """What the email channel did with a notification, from its "notification delivered" log line."""
    corr = harness.doc(db, event_path)["correlation_id"]
    lines = eventually(lambda: [x for x in harness.log_lines(corr) if x.get("message") == "notification delivered"
                                and x.get("kind") == kind], what=f"{kind} delivered")
    return lines[-1]["outcomes"].get("email")


def email_changes(db, uid: str) -> list[tuple[bool, str]]:
    return [(e["data"]["first"], e["data"]["via"]) for e in events_of(db, "identity.email_changed", uid=uid)]


def pay(db, user, price: int = 1500) -> dict:
    out = place(user, [(product(db, price=price, stock=5), 1)])
    intent = call("payments_create_intent", {"order_id": out["order_id"], "idempotency_key": uuid.uuid4().hex},
                  user=user)
    assert confirm(harness.doc(db, f"payments/{intent['payment_id']}")["provider_ref"]).status == "succeeded"
    eventually(lambda: order(db, out["order_id"])["status"] == "paid", what="order paid")
    return {**out, "payment_id": intent["payment_id"]}


# ---- 3. user data follows Auth ------------------------------------------------------------

def test_sign_in_copies_an_email_changed_in_the_console_to_the_profile(db):
    user = harness.sign_up(unique("before"))
    eventually(lambda: harness.mails_to(user.email), what="the sign-up's welcome email")
    new = unique("after")
    accounts.change_in_console(user.uid, email=new)
    assert profile(db, user.uid)["email"] == user.email  # nothing of the suite ran yet

    harness.sign_in(new, user.password)
    assert profile(db, user.uid)["email"] == new  # written by the blocking function before the token came back
    assert email_changes(db, user.uid) == [(False, "sign_in")]
    processed(db, events_of(db, "identity.email_changed", uid=user.uid)[0]["id"], "notifications_on_email_changed")
    assert harness.mails_to(new) == []  # the account had its welcome already: nothing is sent again
    harness.sign_in(new, user.password)
    assert len(email_changes(db, user.uid)) == 1  # in step: nothing announced twice


def test_a_sign_in_with_an_address_moved_to_a_blocked_domain_is_refused(db):
    user = harness.sign_up(unique("moving"))
    moved = unique("moved", "blocked.test")  # BLOCKED_EMAIL_DOMAINS=blocked.test in functions/.env.local
    accounts.change_in_console(user.uid, email=moved)
    with pytest.raises(AuthError) as err:
        harness.sign_in(moved, user.password)
    assert "not allowed" in err.value.message
    assert profile(db, user.uid)["email"] == user.email and email_changes(db, user.uid) == []


def anonymous_with_profile(db):
    """An anonymous FlutterFlow user: signed in anonymously, profile created by the app (a null email
    is left out), completed by identity, welcomed in the inbox; the welcome's email had no address."""
    anon = accounts.sign_up_anonymously()
    AppClient(anon).create("users", anon.uid, {"uid": anon.uid, "display_name": "", "photo_url": "",
                                               "phone_number": "", "created_time": dt.datetime.now(dt.UTC)})
    eventually(lambda: (d := profile(db, anon.uid)) and d.get("status") == "active", what="profile completed")
    created = eventually(lambda: events_of(db, "identity.user_created", uid=anon.uid), what="user_created")[0]
    processed(db, created["id"], "notifications_on_user_created")
    assert len(inbox(db, anon.uid, "welcome")) == 1
    assert email_outcome(db, f"topics/identity.user_created/events/{created['id']}", "welcome") == "no_address"
    return anon


def test_an_anonymous_account_upgraded_to_email_gets_its_welcome_and_its_receipts(db):
    anon = anonymous_with_profile(db)
    address = unique("upgraded")
    user = accounts.link_email(anon, address)  # linkWithCredential: no blocking function sees it
    assert user.claims["email"] == address and profile(db, anon.uid).get("email", "") == ""

    assert call("identity_sync_profile", {}, user=user) == {"uid": anon.uid, "changed": ["email"]}
    assert profile(db, anon.uid)["email"] == address
    assert email_changes(db, anon.uid) == [(True, "sync")]
    welcome = eventually(lambda: harness.mails_to(address), what="the welcome email at the linked address")
    assert len(welcome) == 1 and "Welcome to" in welcome[0]["Subject"]
    assert len(inbox(db, anon.uid, "welcome")) == 1  # the inbox had its welcome: no second one

    again = harness.sign_in(address, user.password)  # a later sign-in finds everything in step
    assert call("identity_sync_profile", {}, user=again)["changed"] == []
    assert len(email_changes(db, anon.uid)) == 1

    paid = pay(db, again)
    receipt = eventually(lambda: [m for m in harness.mails_to(address) if paid["order_id"] in m["Subject"]],
                         what="the receipt at the linked address")
    assert len(receipt) == 1 and len(harness.mails_to(address)) == 2  # welcome and receipt, once each


def test_an_upgrade_nobody_announced_is_found_at_the_next_sign_in(db):
    anon = anonymous_with_profile(db)
    address = unique("upgraded-later")
    accounts.link_email(anon, address)  # the app never called identity_sync_profile
    harness.sign_in(address, "secret-password")  # beforeSignIn sees the address
    assert profile(db, anon.uid)["email"] == address
    assert email_changes(db, anon.uid) == [(True, "sign_in")]
    eventually(lambda: harness.mails_to(address), what="the welcome email")
    harness.sign_in(address, "secret-password")
    assert len(harness.mails_to(address)) == 1 and len(email_changes(db, anon.uid)) == 1


def test_email_goes_to_auths_address_at_send_time_and_reconciliation_updates_the_profile(admin, db):
    """The fallback path: no sign-in ran since the console changed the address."""
    user = harness.sign_up(unique("stale"))
    eventually(lambda: harness.mails_to(user.email), what="the sign-up's welcome email")
    new = unique("current")
    accounts.change_in_console(user.uid, email=new)

    receipt = publish(db, OrderPaid(order_id="o-follows-auth", uid=user.uid, total=1200, currency="usd",
                                    payment_id="p"))
    processed(db, receipt, "notifications_on_order_paid")
    assert [m for m in harness.mails_to(new) if "o-follows-auth" in m["Subject"]]
    assert not [m for m in harness.mails_to(user.email) if "o-follows-auth" in m["Subject"]]
    assert profile(db, user.uid)["email"] == user.email  # stale until a sign-in or reconciliation

    answer = call("identity_run_reconciliation", {}, user=admin)
    assert (answer["synced"], answer["erased"], answer["failed"]) == (1, [], 0)
    assert profile(db, user.uid)["email"] == new
    assert email_changes(db, user.uid) == [(False, "reconciliation")]
    assert call("identity_run_reconciliation", {}, user=admin)["synced"] == 0

    blocked = unique("later", "blocked.test")
    accounts.change_in_console(user.uid, email=blocked)
    refused = publish(db, OrderPaid(order_id="o-blocked-domain", uid=user.uid, total=1200, currency="usd",
                                    payment_id="p"))
    processed(db, refused, "notifications_on_order_paid")
    assert email_outcome(db, f"topics/order.paid/events/{refused}", "order_paid") == "blocked_domain"
    assert harness.mails_to(blocked) == []
    assert harness.doc(db, f"users/{user.uid}/notifications/{refused}")  # the inbox still gets it


def test_a_user_re_enabled_in_the_console_is_not_locked_out_by_a_stale_flag(admin, member, db):
    call("identity_disable_user", {"uid": member.uid, "disabled": True}, user=admin)
    assert profile(db, member.uid)["status"] == "disabled"
    accounts.change_in_console(member.uid, disableUser=False)  # re-enabled in the console, not by the suite

    back = harness.sign_in(member.email, member.password)
    assert back.uid == member.uid and profile(db, member.uid)["status"] == "active"
    assert place(back, [(product(db), 1)])["status"] == "pending_payment"

    accounts.change_in_console(member.uid, disableUser=True)  # and the other way: reconciliation mirrors it
    assert call("identity_run_reconciliation", {}, user=admin)["synced"] == 1
    assert profile(db, member.uid)["status"] == "disabled"
    accounts.change_in_console(member.uid, disableUser=False)
    assert call("identity_run_reconciliation", {}, user=admin)["synced"] == 1
    assert profile(db, member.uid)["status"] == "active"


def test_an_account_deleted_by_flutterflows_own_delete_user_is_erased_by_reconciliation(admin, db):
    user = harness.sign_up(unique("ff-delete"))
    call("addFcmToken", {"userDocPath": f"users/{user.uid}", "fcmToken": f"tok-{uuid.uuid4().hex}",
                         "deviceType": "Android"}, user=user)
    accounts.delete_with_flutterflow(user)  # currentUser.delete(): the suite hears nothing
    assert not harness.account_exists(user.uid) and profile(db, user.uid)["status"] == "active"

    answer = call("identity_run_reconciliation", {}, user=admin)  # every 30 minutes in production
    assert answer["erased"] == [user.uid]
    eventually(lambda: profile(db, user.uid) is None and not list(db.collection(f"users/{user.uid}/fcm_tokens").stream()),
               what="profile and push tokens erased")


# ---- 8. deletion with open business ---------------------------------------------------------

def test_a_paid_order_not_fulfilled_is_flagged_to_staff_and_kept_for_accounting(admin, staff, db):
    user = harness.sign_up(unique("leaving"))
    open_order = pay(db, user, price=2500)
    done_order = pay(db, user, price=900)
    assert call("orders_mark_fulfilled", {"order_id": done_order["order_id"]}, user=staff)["status"] == "fulfilled"

    call("identity_delete_account", {}, user=user)
    flagged = eventually(lambda: (o := order(db, open_order["order_id"])) and o.get("needs_review") and o,
                         what="the open order flagged")
    assert (flagged["status"], flagged["review_reason"], flagged["uid"], flagged["user_ref"], flagged["anonymised"]) \
        == ("paid", "account_deleted", "deleted-user", None, True)
    assert (flagged["total"], flagged["currency"]) == (2500, "usd")  # accounting keeps the amounts
    payment = eventually(lambda: (p := harness.doc(db, f"payments/{open_order['payment_id']}")) and p.get("anonymised")
                         and p, what="the payment anonymised")
    assert (payment["status"], payment["amount"], payment["amount_refunded"], payment["uid"], payment["customer"]) \
        == ("succeeded", 2500, 0, "deleted-user", None)
    intent = stripe_client().v1.payment_intents.retrieve(payment["provider_ref"])
    assert intent.amount_received == 2500  # not refunded behind staff's back
    fulfilled = order(db, done_order["order_id"])
    assert fulfilled["anonymised"] is True and not fulfilled.get("needs_review")  # nothing left to do for it
    assert [e["data"]["order_id"] for e in events_of(db, "order.needs_review")] == [open_order["order_id"]]
    alert = eventually(lambda: inbox(db, admin.uid, "order_review"), what="the admins alerted")
    assert open_order["order_id"] in alert[0]["title"] and "25.00 USD" in alert[0]["body"]

    # staff decide: cancelling it refunds it through payments, as for any paid order
    assert call("orders_cancel", {"order_id": open_order["order_id"]}, user=staff)["status"] == "cancelled"
    eventually(lambda: order(db, open_order["order_id"])["status"] == "refunded", timeout=45, what="refunded")
    refunded = harness.doc(db, f"payments/{open_order['payment_id']}")
    assert (refunded["status"], refunded["amount_refunded"]) == ("refunded", 2500)
    assert order(db, open_order["order_id"])["needs_review"] is False


def test_an_unpaid_order_of_a_deleted_account_leaves_no_payment_or_event_naming_it(admin, db):
    """A pending order with no PaymentIntent yet, and the worst order of things: its cancel request
    is held (its subscriber failing) until every eraser has finished and ops has redacted the
    events, so payments' eraser found nothing to anonymise. The closed payment recorded once the
    request gets through, its payment.canceled and the dead letter name the deleted-user
    placeholder, never the person."""
    from flowsuite.core.ids import person_key

    user = harness.sign_up(unique("unpaid"))
    out = place(user, [(product(db, stock=3), 1)])
    db.document("_faults/payments_on_order_cancel_requested").set({"always": True})
    call("identity_delete_account", {}, user=user)
    ops_delivery = f"deliveries/{person_key(user.uid)}:ops_on_user_deleted"
    eventually(lambda: (harness.doc(db, ops_delivery) or {}).get("status") == "processed", timeout=90,
               what="every eraser done and the events redacted")
    request = eventually(lambda: events_of(db, "order.cancel_requested", order_id=out["order_id"]),
                         what="the cancel request")[0]
    letter_id = f"{request['id']}:payments_on_order_cancel_requested"
    eventually(lambda: harness.doc(db, f"dead_letters/{letter_id}"), timeout=90, what="the cancel request held")
    assert harness.doc(db, f"payments/pay_{out['order_id']}") is None  # nothing for payments' eraser to find

    db.document("_faults/payments_on_order_cancel_requested").delete()  # the fix, then the replay
    replayed = call("ops_replay_dead_letters", {"ids": [letter_id]}, user=admin)
    assert replayed["replayed"] == [{"id": letter_id, "outcome": "processed"}]
    eventually(lambda: order(db, out["order_id"])["status"] == "cancelled", what="the order cancelled")
    payment = harness.doc(db, f"payments/pay_{out['order_id']}")
    assert (payment["status"], payment["uid"], payment["user_ref"], payment.get("anonymised")) == \
        ("canceled", "deleted-user", None, True)
    assert events_of(db, "payment.canceled", order_id=out["order_id"])[0]["data"]["uid"] == "deleted-user"
    naming = [snap.reference.path for query in (db.collection("payments"), db.collection_group("events"),
                                                db.collection("dead_letters"))
              for snap in query.stream() if mentions(snap.to_dict(), user.uid)]
    assert naming == []


def test_an_intent_requested_while_the_account_is_deleted_leaves_nothing_naming_it(db):
    """payments_create_intent held between Stripe and its payment record (a fault that pauses)
    while the account is deleted, so payments' eraser runs before the call records anything:
    the call records no payment naming the user, closes at Stripe the intent it made, runs
    payments' eraser again for what it made (the Stripe customer, stripe_customers/{uid}, the
    effect records) and is refused."""
    import concurrent.futures as cf

    from flowsuite.core.ids import person_key

    user = harness.sign_up(unique("in-flight"))
    out = place(user, [(product(db, stock=3), 1)])
    payment_id = f"pay_{out['order_id']}"
    db.document("_faults/payments.after_stripe_intent").set({"pause_seconds": 8, "remaining": 1})
    with cf.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(call, "payments_create_intent",
                              {"order_id": out["order_id"], "idempotency_key": uuid.uuid4().hex}, user)
        effect = eventually(lambda: (e := harness.doc(db, f"effects/stripe-intent-{payment_id}"))
                            and e.get("state") == "SUCCEEDED" and e, timeout=45,
                            what="the intent created at Stripe (the call now held before its record)")
        call("identity_delete_account", {}, user=user)
        assert not pending.done(), "the call went on before the deletion was published: raise pause_seconds"
        ops_delivery = f"deliveries/{person_key(user.uid)}:ops_on_user_deleted"
        eventually(lambda: (harness.doc(db, ops_delivery) or {}).get("status") == "processed", timeout=90,
                   what="every eraser done and the events redacted")
        with pytest.raises(harness.CallableError) as err:
            pending.result(timeout=60)
    assert err.value.code == "permission-denied", err.value
    assert err.value.details.get("reason") == "account_deleted"
    eventually(lambda: order(db, out["order_id"])["status"] == "cancelled", timeout=45, what="the order cancelled")

    payment = harness.doc(db, f"payments/{payment_id}")  # the order's cancel request may have recorded a closed one
    assert payment is None or (payment["uid"], payment["user_ref"], payment["status"]) == ("deleted-user", None,
                                                                                           "canceled")
    assert harness.doc(db, f"stripe_customers/{user.uid}") is None
    naming = [snap.reference.path for name in ("payments", "stripe_customers", "effects")
              for snap in db.collection(name).stream() if mentions(snap.to_dict(), user.uid)]
    assert naming == []
    intent = stripe_client().v1.payment_intents.retrieve(effect["result"]["id"])
    assert intent.status == "canceled" and intent.amount_received == 0
    with pytest.raises(stripe.StripeError) as gone:  # the customer the call made or reused is deleted
        stripe_client().v1.customers.retrieve(intent.customer)
    assert gone.value.http_status == 404


def mentions(value, uid: str) -> bool:
    """Whether a document's data names the uid anywhere, references included."""
    if isinstance(value, dict):
        return any(mentions(k, uid) or mentions(v, uid) for k, v in value.items())
    if isinstance(value, list):
        return any(mentions(v, uid) for v in value)
    return uid in str(getattr(value, "path", value))


def ff_done(db, path: str) -> dict:
    return eventually(lambda: (d := harness.doc(db, path)) and d.get("status") in ("succeeded", "failed") and d,
                      what=f"{path} processed")


def test_deleting_an_account_erases_the_flutterflow_push_documents_naming_it(admin, db):
    leaving, friend, other = harness.sign_up(), harness.sign_up(), harness.sign_up()
    for user in (leaving, friend, other):
        call("addFcmToken", {"userDocPath": f"users/{user.uid}", "fcmToken": f"tok-{uuid.uuid4().hex}",
                             "deviceType": "iOS"}, user=user)

    def targeted(sender, doc_id: str, user_refs: str) -> None:
        AppClient(sender).create("ff_user_push_notifications", doc_id, {
            "notification_title": "Hi", "notification_text": doc_id, "user_refs": user_refs,
            "sender": Ref.to(f"users/{sender.uid}")})

    targeted(leaving, "from-leaving", f"users/{friend.uid}")
    targeted(friend, "to-leaving", f"users/{leaving.uid}")
    targeted(friend, "to-both", f"users/{leaving.uid},users/{other.uid}")  # 3 recipients: PUSH_RATE_LIMIT=3
    AppClient(admin).create("ff_push_notifications", "broadcast", {
        "notification_title": "News", "notification_text": "for two", "status": "",
        "user_refs": f"/users/{leaving.uid},/users/{other.uid}", "sender": Ref.to(f"users/{admin.uid}")})
    # written in the console with a status, so never processed: no recipients recorded
    db.document("ff_user_push_notifications/legacy").set({
        "notification_title": "Old", "notification_text": "one", "user_refs": f"users/{leaving.uid}",
        "sender": db.document(f"users/{other.uid}"), "status": "succeeded"})
    for path in ("ff_user_push_notifications/from-leaving", "ff_user_push_notifications/to-leaving",
                 "ff_user_push_notifications/to-both", "ff_push_notifications/broadcast"):
        assert ff_done(db, path)["status"] == "succeeded", path
    assert harness.doc(db, "ff_user_push_notifications/to-both")["recipient_uids"] == [leaving.uid, other.uid]

    call("identity_delete_account", {}, user=leaving)
    gone = ("ff_user_push_notifications/from-leaving", "ff_user_push_notifications/to-leaving",
            "ff_user_push_notifications/legacy")
    eventually(lambda: all(harness.doc(db, path) is None for path in gone), what="pushes sent to or by them deleted")
    both = eventually(lambda: (d := harness.doc(db, "ff_user_push_notifications/to-both"))
                      and not mentions(d, leaving.uid) and d, what="the user out of a shared push")
    assert (both["user_refs"], both["recipient_uids"], both["status"]) == (f"users/{other.uid}", [other.uid], "succeeded")
    broadcast = eventually(lambda: (d := harness.doc(db, "ff_push_notifications/broadcast"))
                           and not mentions(d, leaving.uid) and d, what="the user out of the broadcast")
    assert broadcast["user_refs"] == f"/users/{other.uid}" and broadcast["recipient_uids"] == [other.uid]
    for collection in ("ff_push_notifications", "ff_user_push_notifications"):
        assert not [s.id for s in db.collection(collection).stream() if mentions(s.to_dict(), leaving.uid)]


def test_a_scheduled_broadcast_of_an_admin_deleted_before_it_is_due_is_failed_and_keeps_no_sender(admin, db):
    """Without its sender a broadcast would pass for one written past the rules (the console) and
    go out to everyone at its time: the erased admin's pending broadcast is failed instead."""
    leaving = harness.user_with_role("admin")
    at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)  # well beyond the 10 s slack: it waits
    AppClient(leaving).create("ff_push_notifications", "pending", {
        "notification_title": "Later", "notification_text": "for all", "user_refs": "", "scheduled_time": at,
        "sender": Ref.to(f"users/{leaving.uid}")})
    eventually(lambda: harness.doc(db, "ff_push_notifications/pending").get("scheduled_for"), what="scheduled")

    call("identity_delete_account", {"uid": leaving.uid}, user=admin)
    pending = eventually(lambda: (d := harness.doc(db, "ff_push_notifications/pending"))
                         and not mentions(d, leaving.uid) and d, what="the sender erased from the broadcast")
    assert (pending["status"], pending["num_sent"], pending["sender"]) == ("failed", 0, None)
    assert "deleted before it was sent" in pending["error"]
