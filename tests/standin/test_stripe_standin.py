"""The Stripe stand-in (devtools/stripe_standin.py), through the real stripe SDK.

A module fixture starts ``python -m devtools.stripe_standin --port <a free port> --from-scratch``
and a small HTTP server that receives its webhooks; every webhook is verified with
``stripe.Webhook.construct_event``. Each test names the Stripe behaviour it checks.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
import stripe

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nothing listens on now: `make test` runs these beside the emulators, whose
    Functions workers take ports of their own."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PORT = int(os.environ.get("FLOWSUITE_STANDIN_TEST_PORT") or free_port())
BASE = f"http://127.0.0.1:{PORT}"
SECRET = "whsec_standin_test"
RETRIES = [0.4, 0.8, 1.6]  # the compressed schedule the fixture configures

OK = "4242424242424242"
DECLINED = "4000000000000341"  # attaches, then is declined when charged
THREE_DS = "4000002500003155"  # requires authentication
DISPUTED = "4000000000000259"  # succeeds, then disputed as fraudulent
NOT_RECEIVED = "4000000000002685"  # succeeds, then disputed as product_not_received
REFUND_FAILS = "4000000000005126"  # succeeds; a refund starts succeeded, then fails asynchronously


# ---- the webhook receiver -------------------------------------------------------------

class Receiver:
    """Records every verified delivery; answers what ``policy`` says (200 by default)."""

    def __init__(self) -> None:
        self.receipts: list[dict] = []
        self.bad: list[str] = []
        self.cond = threading.Condition()
        self.failing: dict[tuple[str, str], list] = {}  # (type, object id) -> [remaining or None (always), status]

    def fail(self, kind: str, object_id: str, times: int | None, status: int = 500) -> None:
        with self.cond:
            self.failing[(kind, object_id)] = [times, status]

    def answer(self, body: bytes, signature: str) -> int:
        try:
            verified = stripe.Webhook.construct_event(body, signature, SECRET)
        except (stripe.SignatureVerificationError, ValueError) as exc:
            with self.cond:
                self.bad.append(f"{exc}")
            return 400
        event = json.loads(body)
        assert verified.id == event["id"]
        status = 200
        with self.cond:
            rule = self.failing.get((event["type"], event["data"]["object"].get("id")))
            if rule is not None and (rule[0] is None or rule[0] > 0):
                status = rule[1]
                if rule[0] is not None:
                    rule[0] -= 1
            timestamp = int(signature.split(",")[0].split("=")[1])
            self.receipts.append({"event": event, "status": status, "at": time.monotonic(), "t": timestamp})
            self.cond.notify_all()
        return status

    def find(self, pred: Callable[[dict], bool]) -> list[dict]:
        with self.cond:
            return [r for r in self.receipts if pred(r)]

    def wait(self, pred: Callable[[dict], bool], count: int = 1, timeout: float = 10.0, what: str = "") -> list[dict]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                assert not self.bad, f"a webhook failed signature verification: {self.bad}"
                found = [r for r in self.receipts if pred(r)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(r["event"]["type"], r["event"]["data"]["object"].get("id")) for r in self.receipts[-15:]]
                    raise AssertionError(f"no webhook {what or ''} after {timeout}s; last received: {seen}")
                self.cond.wait(left)

    def event(self, kind: str, object_id: str, timeout: float = 10.0) -> dict:
        """The (first accepted) event of this type about this object: the event dict."""
        receipts = self.wait(lambda r: r["event"]["type"] == kind and r["event"]["data"]["object"].get("id") == object_id
                             and r["status"] == 200, timeout=timeout, what=f"{kind} for {object_id}")
        return receipts[0]["event"]

    def types_for(self, object_id: str) -> list[str]:
        return [r["event"]["type"] for r in self.find(lambda r: r["event"]["data"]["object"].get("id") == object_id)]


class Handler(http.server.BaseHTTPRequestHandler):
    receiver: Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status = self.receiver.answer(body, self.headers.get("Stripe-Signature", ""))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """The stand-in on PORT and a webhook receiver registered with it: (receiver, log path)."""
    assert not port_open(PORT), f"port {PORT} is taken: stop what holds it or set FLOWSUITE_STANDIN_TEST_PORT"
    receiver = Receiver()
    handler = type("BoundHandler", (Handler,), {"receiver": receiver})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    logs = tmp_path_factory.mktemp("standin")
    log_path = logs / "standin.log"
    env = {**os.environ, "FLOWSUITE_STRIPE_WEBHOOK_DELAY": "0.05",
           "FLOWSUITE_STRIPE_WEBHOOK_RETRY_SCHEDULE": ",".join(str(s) for s in RETRIES),
           "FLOWSUITE_STRIPE_ASYNC_DELAY": "0.3", "FLOWSUITE_STRIPE_STATE": str(logs / "state.pickle")}
    env.pop("FLOWSUITE_STRIPE_API_VERSION", None)
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "devtools.stripe_standin", "--port", str(PORT), "--from-scratch"],
                                cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not port_open(PORT):
            assert proc.poll() is None, f"the stand-in exited with {proc.returncode}: {log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"the stand-in did not listen on {PORT}: {log_path.read_text()[-3000:]}"
            time.sleep(0.1)
        r = requests.post(f"{BASE}/_config/webhooks/standin-test",
                          data={"url": f"http://127.0.0.1:{httpd.server_address[1]}/hook", "secret": SECRET}, timeout=5)
        assert r.status_code == 200, r.text
        yield receiver, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        httpd.shutdown()


@pytest.fixture
def hooks(standin) -> Receiver:
    receiver, _ = standin
    yield receiver
    requests.delete(f"{BASE}/_config/webhooks/drop", timeout=5)
    assert not receiver.bad


@pytest.fixture(scope="module")
def client(standin) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_x", base_addresses={"api": BASE})


# ---- helpers --------------------------------------------------------------------------

def card(client, number: str) -> str:
    return client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}).id


def intent(client, amount: int = 1000, **params):
    return client.v1.payment_intents.create(params={"amount": amount, "currency": "usd",
                                                    "payment_method_types": ["card"], **params})


def pay(client, pi_id: str, number: str = OK):
    client.v1.payment_intents.update(pi_id, params={"payment_method": card(client, number)})
    return client.v1.payment_intents.confirm(pi_id)


def paid(client, amount: int = 2000, number: str = OK, metadata: dict | None = None):
    pi = intent(client, amount, metadata=metadata or {"order_id": f"o{time.time_ns()}"})
    assert pay(client, pi.id, number).status == "succeeded"
    return client.v1.payment_intents.retrieve(pi.id)


def control(path: str, **fields) -> requests.Response:
    return requests.post(f"{BASE}/_config/{path}", data=fields, timeout=5)


def stripe_error(call) -> stripe.StripeError:
    with pytest.raises(stripe.StripeError) as err:
        call()
    return err.value


# ---- 1. a decline, then another card on the same intent -----------------------------------

def test_a_declined_card_leaves_the_intent_payable_and_another_card_pays_it(client, hooks):
    customer = client.v1.customers.create(params={"email": "retry@flowsuite.test"}).id
    pi = intent(client, 1500, customer=customer, metadata={"order_id": "o-retry", "uid": "u1"})
    declined_pm = card(client, DECLINED)
    client.v1.payment_intents.update(pi.id, params={"payment_method": declined_pm})
    with pytest.raises(stripe.CardError) as err:
        client.v1.payment_intents.confirm(pi.id)
    # Stripe answers 402 with a card_error naming the code, the decline code, the intent and the method
    assert err.value.http_status == 402 and err.value.code == "card_declined"
    assert err.value.error.type == "card_error" and err.value.error.decline_code == "generic_decline"
    assert err.value.error.payment_intent.id == pi.id
    assert err.value.error.payment_intent.status == "requires_payment_method"
    assert err.value.error.payment_method.id == declined_pm

    after = client.v1.payment_intents.retrieve(pi.id)
    assert after.status == "requires_payment_method" and after.payment_method is None  # the method is detached
    error = after.last_payment_error
    assert (error.type, error.code, error.decline_code) == ("card_error", "card_declined", "generic_decline")
    assert error.message == "Your card was declined." and error.payment_method.id == declined_pm
    failed_charge = after.latest_charge
    assert isinstance(failed_charge, str) and failed_charge.startswith("ch_")
    assert client.v1.charges.retrieve(failed_charge).status == "failed"

    failed = hooks.event("payment_intent.payment_failed", pi.id)["data"]["object"]
    assert failed["metadata"] == {"order_id": "o-retry", "uid": "u1"} and failed["status"] == "requires_payment_method"
    assert failed["last_payment_error"]["code"] == "card_declined" and failed["amount"] == 1500
    failed_ch = hooks.event("charge.failed", failed_charge)["data"]["object"]
    assert failed_ch["payment_intent"] == pi.id and failed_ch["metadata"]["order_id"] == "o-retry"

    # confirming again without a method is refused, as Stripe does
    refused = stripe_error(lambda: client.v1.payment_intents.confirm(pi.id))
    assert refused.http_status == 400 and refused.code == "payment_intent_unexpected_state"

    client.v1.payment_intents.update(pi.id, params={"payment_method": card(client, OK)})
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_confirmation"
    done = client.v1.payment_intents.confirm(pi.id)
    assert done.id == pi.id and done.status == "succeeded" and done.amount_received == 1500
    assert done.latest_charge not in (None, failed_charge) and done.last_payment_error is None

    charge = client.v1.charges.retrieve(done.latest_charge)
    assert charge.paid and charge.amount == 1500 and charge.payment_intent == pi.id
    assert (charge.amount_refunded, charge.refunded, charge.disputed) == (0, False, False)
    assert charge.metadata.to_dict() == {"order_id": "o-retry", "uid": "u1"}  # copied from the intent
    ch_event = hooks.event("charge.succeeded", done.latest_charge)["data"]["object"]
    assert ch_event["metadata"] == {"order_id": "o-retry", "uid": "u1"} and ch_event["payment_intent"] == pi.id
    succeeded = hooks.event("payment_intent.succeeded", pi.id)["data"]["object"]
    assert succeeded["status"] == "succeeded" and succeeded["metadata"]["order_id"] == "o-retry"
    assert succeeded["amount_received"] == 1500 and succeeded["latest_charge"] == done.latest_charge
    assert hooks.types_for(pi.id)[0] == "payment_intent.created"


def test_confirm_accepts_a_payment_method_as_stripe_does(client, hooks):
    pi = intent(client, 700)
    done = client.v1.payment_intents.confirm(pi.id, params={"payment_method": card(client, OK)})
    assert done.status == "succeeded" and done.amount_received == 700
    with pytest.raises(stripe.CardError):
        client.v1.payment_intents.create(params={"amount": 800, "currency": "usd", "confirm": True,
                                                 "payment_method": card(client, DECLINED)})


# ---- 2. cancel ------------------------------------------------------------------------

def in_status(client, status: str):
    if status == "requires_payment_method":
        return intent(client, metadata={"case": status})
    if status == "requires_confirmation":
        return intent(client, metadata={"case": status}, payment_method=card(client, OK))
    if status == "requires_action":
        pi = intent(client, metadata={"case": status})
        return pay(client, pi.id, THREE_DS)
    pi = intent(client, metadata={"case": status}, capture_method="manual")
    return pay(client, pi.id, OK)


@pytest.mark.parametrize("status", ["requires_payment_method", "requires_confirmation", "requires_action",
                                    "requires_capture"])
def test_cancel_from_a_cancelable_status(client, hooks, status):
    pi = in_status(client, status)
    assert pi.status == status
    before = int(time.time())
    canceled = client.v1.payment_intents.cancel(pi.id, params={"cancellation_reason": "abandoned"})
    assert canceled.status == "canceled" and canceled.cancellation_reason == "abandoned"
    assert before <= canceled.canceled_at <= int(time.time())
    event = hooks.event("payment_intent.canceled", pi.id)["data"]["object"]
    assert event["status"] == "canceled" and event["cancellation_reason"] == "abandoned"
    assert event["metadata"] == {"case": status} and event["canceled_at"] == canceled.canceled_at
    if status == "requires_action":
        assert "payment_intent.requires_action" in hooks.types_for(pi.id)
    if status == "requires_capture":  # Stripe releases what was authorized
        charge = client.v1.charges.retrieve(canceled.latest_charge)
        assert charge.refunded and charge.amount_refunded == charge.amount
        assert hooks.event("charge.refunded", charge.id)["data"]["object"]["refunded"] is True


def test_cancel_is_refused_from_succeeded_processing_and_canceled(client, hooks):
    succeeded = paid(client)
    processing = intent(client, payment_method=card(client, OK))
    assert control(f"payment_intents/{processing.id}/processing").status_code == 200
    canceled = intent(client)
    client.v1.payment_intents.cancel(canceled.id)
    for pi, status in ((succeeded, "succeeded"), (processing, "processing"), (canceled, "canceled")):
        err = stripe_error(lambda pi=pi: client.v1.payment_intents.cancel(
            pi.id, params={"cancellation_reason": "abandoned"}))
        assert isinstance(err, stripe.InvalidRequestError) and err.http_status == 400
        assert err.code == "payment_intent_unexpected_state" and err.error.type == "invalid_request_error"
        assert err.error.message == (
            f"You cannot cancel this PaymentIntent because it has a status of {status}. Only a PaymentIntent "
            "with one of the following statuses may be canceled: requires_payment_method, requires_capture, "
            "requires_confirmation, requires_action, processing.")
        assert err.error.payment_intent.id == pi.id and err.error.payment_intent.status == status
        assert client.v1.payment_intents.retrieve(pi.id).status == status
    bad = stripe_error(lambda: client.v1.payment_intents.cancel(intent(client).id,
                                                                params={"cancellation_reason": "bored"}))
    assert bad.http_status == 400 and bad.param == "cancellation_reason"
    # canceled means no further operation: confirming or attaching a card is refused
    assert stripe_error(lambda: pay(client, canceled.id)).code == "payment_intent_unexpected_state"


def test_a_processing_intent_can_be_canceled_only_where_the_method_allows_it(client, hooks):
    pi = intent(client, payment_method=card(client, OK))
    assert control(f"payment_intents/{pi.id}/processing", cancelable="true").status_code == 200
    canceled = client.v1.payment_intents.cancel(pi.id, params={"cancellation_reason": "requested_by_customer"})
    assert canceled.status == "canceled" and canceled.cancellation_reason == "requested_by_customer"


# ---- 3. refunds -----------------------------------------------------------------------

def test_partial_then_full_refunds_accumulate_on_the_charge(client, hooks):
    pi = paid(client, 2000, metadata={"order_id": "o-refund"})
    partial = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 500})
    assert (partial.object, partial.amount, partial.status) == ("refund", 500, "succeeded")
    assert partial.payment_intent == pi.id and partial.charge == pi.latest_charge
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (500, False)
    first = hooks.event("charge.refunded", charge.id)["data"]["object"]
    assert (first["amount"], first["amount_refunded"], first["refunded"]) == (2000, 500, False)
    assert first["payment_intent"] == pi.id and first["metadata"] == {"order_id": "o-refund"}
    assert [r["id"] for r in first["refunds"]["data"]] == [partial.id]
    assert hooks.event("refund.created", partial.id)["data"]["object"]["amount"] == 500

    too_much = stripe_error(lambda: client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1600}))
    assert too_much.http_status == 400 and too_much.code == "amount_too_large" and too_much.param == "amount"
    assert too_much.error.message == "Refund amount ($16.00) is greater than unrefunded amount on charge ($15.00)"

    rest = client.v1.refunds.create(params={"payment_intent": pi.id, "reason": "requested_by_customer",
                                            "metadata": {"why": "cancelled"}})
    assert rest.amount == 1500 and rest.reason == "requested_by_customer" and rest.metadata.to_dict() == {"why": "cancelled"}
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (2000, True)
    second = hooks.wait(lambda r: r["event"]["type"] == "charge.refunded"
                        and r["event"]["data"]["object"]["id"] == charge.id
                        and r["event"]["data"]["object"]["refunded"], what="full charge.refunded")[0]["event"]
    assert second["data"]["object"]["amount_refunded"] == 2000
    assert {r["id"] for r in second["data"]["object"]["refunds"]["data"]} == {partial.id, rest.id}

    for params in ({"payment_intent": pi.id}, {"charge": charge.id}, {"payment_intent": pi.id, "amount": 1}):
        again = stripe_error(lambda params=params: client.v1.refunds.create(params=params))
        assert again.http_status == 400 and again.code == "charge_already_refunded"
    listed = client.v1.refunds.list(params={"payment_intent": pi.id})
    assert [r.id for r in listed.data] == [rest.id, partial.id]  # newest first
    assert client.v1.payment_intents.retrieve(pi.id).status == "succeeded"


def test_a_refund_of_an_unpaid_or_canceled_intent_is_refused(client, hooks):
    unpaid = intent(client)
    canceled = intent(client)
    client.v1.payment_intents.cancel(canceled.id)
    declined = intent(client)
    with pytest.raises(stripe.CardError):
        pay(client, declined.id, DECLINED)
    for pi in (unpaid, canceled, declined):
        err = stripe_error(lambda pi=pi: client.v1.refunds.create(params={"payment_intent": pi.id}))
        assert err.http_status == 400 and err.error.type == "invalid_request_error"
        assert "does not have a successful charge to refund" in err.error.message
    missing = stripe_error(lambda: client.v1.refunds.create(params={"payment_intent": "pi_nope"}))
    assert missing.http_status == 404 and missing.code == "resource_missing"


def test_a_refund_of_the_refund_failure_card_succeeds_then_fails_and_gives_the_money_back(client, hooks):
    """docs.stripe.com/testing#refunds: with 4000000000005126 the charge succeeds; a refund starts
    succeeded, then becomes failed and Stripe sends charge.refund.updated; the charge's
    amount_refunded goes back down (Stripe returns the money to the merchant's balance)."""
    pi = paid(client, 2000, REFUND_FAILS, metadata={"flowsuite_payment_id": "pay_rf"})
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "metadata": {"flowsuite_payment_id": "pay_rf"}})
    assert (refund.status, refund.amount, refund.failure_reason) == ("succeeded", 2000, None)
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (2000, True)  # counted while it has not failed
    assert hooks.event("charge.refunded", charge.id)["data"]["object"]["amount_refunded"] == 2000

    updated = hooks.event("charge.refund.updated", refund.id)
    obj = updated["data"]["object"]
    assert (obj["status"], obj["failure_reason"], obj["amount"]) == ("failed", "expired_or_canceled_card", 2000)
    assert obj["charge"] == charge.id and obj["payment_intent"] == pi.id
    assert obj["metadata"] == {"flowsuite_payment_id": "pay_rf"}
    assert updated["data"]["previous_attributes"]["status"] == "succeeded"
    assert hooks.event("refund.updated", refund.id)["data"]["object"]["status"] == "failed"
    assert hooks.event("refund.failed", refund.id)["data"]["object"]["status"] == "failed"

    failed = client.v1.refunds.retrieve(refund.id)
    assert (failed.status, failed.failure_reason) == ("failed", "expired_or_canceled_card")
    assert failed.failure_balance_transaction.startswith("txn_")
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (0, False)
    assert client.v1.payment_intents.retrieve(pi.id).status == "succeeded"
    listed = client.v1.events.list(params={"type": "charge.refund.updated"})
    assert refund.id in [e.data.object.id for e in listed.data]

    # The money is back with the merchant, so it can be refunded again (on this card, that one fails too).
    again = client.v1.refunds.create(params={"payment_intent": pi.id})
    assert (again.amount, again.status) == (2000, "succeeded")
    assert hooks.event("charge.refund.updated", again.id)["data"]["object"]["status"] == "failed"
    assert client.v1.charges.retrieve(pi.latest_charge).amount_refunded == 0


def test_the_test_control_fails_any_refund_now_once(client, hooks):
    pi = paid(client, 1500)
    partial = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 500})
    kept = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 300})
    r = control(f"refunds/{partial.id}/fail", failure_reason="lost_or_stolen_card")
    assert r.status_code == 200 and (r.json()["status"], r.json()["failure_reason"]) == ("failed", "lost_or_stolen_card")
    assert hooks.event("charge.refund.updated", partial.id)["data"]["object"]["failure_reason"] == "lost_or_stolen_card"
    assert client.v1.charges.retrieve(pi.latest_charge).amount_refunded == 300  # the other refund still counts
    assert client.v1.refunds.retrieve(kept.id).status == "succeeded"
    again = control(f"refunds/{partial.id}/fail")
    assert again.status_code == 400 and "already failed" in again.json()["error"]["message"]
    assert control(f"refunds/{kept.id}/fail", failure_reason="bored").status_code == 400
    assert control("refunds/re_nope/fail").status_code == 404
    time.sleep(0.5)  # a card that keeps its refunds: nothing else fails on its own
    assert client.v1.refunds.retrieve(kept.id).status == "succeeded"
    assert "charge.refund.updated" not in hooks.types_for(kept.id)


def test_the_test_control_makes_the_next_refund_of_a_charge_fail_when_created(client, hooks):
    pi = paid(client, 1000)
    r = control(f"charges/{pi.latest_charge}/next_refund", status="failed", failure_reason="insufficient_funds")
    assert r.status_code == 200 and r.json()["next_refunds"] == ["failed"]
    failed = client.v1.refunds.create(params={"payment_intent": pi.id}, options={"idempotency_key": "k1"})
    assert (failed.status, failed.failure_reason, failed.amount) == ("failed", "insufficient_funds", 1000)
    assert client.v1.charges.retrieve(pi.latest_charge).amount_refunded == 0
    assert hooks.event("refund.created", failed.id)["data"]["object"]["status"] == "failed"
    ok = client.v1.refunds.create(params={"payment_intent": pi.id}, options={"idempotency_key": "k2"})
    assert ok.status == "succeeded" and client.v1.charges.retrieve(pi.latest_charge).amount_refunded == 1000
    assert control(f"charges/{pi.latest_charge}/next_refund", status="succeeded").status_code == 400
    assert control("charges/ch_nope/next_refund", status="failed").status_code == 404


# ---- 4. ephemeral keys ----------------------------------------------------------------

def test_ephemeral_keys_for_a_customer(client, hooks):
    customer = client.v1.customers.create(params={"email": "sheet@flowsuite.test"}).id
    key = client.v1.ephemeral_keys.create(params={"customer": customer}, options={"stripe_version": "2024-06-20"})
    assert key.id.startswith("ephkey_") and key.object == "ephemeral_key" and key.livemode is False
    assert key.secret.startswith("ek_test_")
    assert [o.to_dict() for o in key.associated_objects] == [{"id": customer, "type": "customer"}]
    assert key.expires - key.created == 3600 and abs(key.created - time.time()) < 60
    # the SDK's own pinned version is a Stripe-Version too
    assert client.v1.ephemeral_keys.create(params={"customer": customer}).secret.startswith("ek_test_")

    auth = {"Authorization": "Bearer sk_test_x"}
    no_version = requests.post(f"{BASE}/v1/ephemeral_keys", data={"customer": customer}, headers=auth, timeout=5)
    assert no_version.status_code == 400
    assert no_version.json()["error"]["type"] == "invalid_request_error"
    assert "Stripe-Version" in no_version.json()["error"]["message"]
    bad_version = requests.post(f"{BASE}/v1/ephemeral_keys", data={"customer": customer},
                                headers={**auth, "Stripe-Version": "banana"}, timeout=5)
    assert bad_version.status_code == 400 and "Invalid Stripe API version" in bad_version.json()["error"]["message"]
    unauthenticated = requests.post(f"{BASE}/v1/ephemeral_keys", data={"customer": customer},
                                    headers={"Stripe-Version": "2024-06-20"}, timeout=5)
    assert unauthenticated.status_code == 401
    missing = stripe_error(lambda: client.v1.ephemeral_keys.create(params={"customer": "cus_nope"},
                                                                   options={"stripe_version": "2024-06-20"}))
    assert missing.http_status == 404 and missing.code == "resource_missing"

    deleted = client.v1.ephemeral_keys.delete(key.id)
    assert deleted.id == key.id and deleted.object == "ephemeral_key"
    assert stripe_error(lambda: client.v1.ephemeral_keys.delete(key.id)).http_status == 404


# ---- 5. lists -------------------------------------------------------------------------

def test_payment_intents_list_by_created_newest_first_with_auto_pagination(client, hooks):
    time.sleep(1 - time.time() % 1 + 0.01)  # a fresh second: only this test's intents are newer
    since = int(time.time())
    made = [intent(client, 100 + i, metadata={"n": str(i)}).id for i in range(7)]
    page = client.v1.payment_intents.list(params={"created": {"gte": since}, "limit": 3})
    assert [pi.id for pi in page.data] == made[::-1][:3] and page.has_more
    everything = list(client.v1.payment_intents.list(params={"created": {"gte": since}, "limit": 100})
                      .auto_paging_iter())
    assert [pi.id for pi in everything] == made[::-1]
    assert [pi.metadata["n"] for pi in everything] == [str(i) for i in range(6, -1, -1)]
    paged = list(client.v1.payment_intents.list(params={"created": {"gte": since}, "limit": 2}).auto_paging_iter())
    assert [pi.id for pi in paged] == made[::-1]
    after = client.v1.payment_intents.list(params={"created": {"gte": since}, "limit": 2, "starting_after": made[4]})
    assert [pi.id for pi in after.data] == [made[3], made[2]] and after.has_more
    before = client.v1.payment_intents.list(params={"created": {"gte": since}, "limit": 2, "ending_before": made[2]})
    assert [pi.id for pi in before.data] == [made[4], made[3]] and before.has_more
    assert not {pi.id for pi in client.v1.payment_intents.list(params={"created": {"lt": since}, "limit": 100})} & set(made)
    assert client.v1.payment_intents.list(params={"created": {"gt": int(time.time()) + 60}}).data == []
    too_many = stripe_error(lambda: client.v1.payment_intents.list(params={"limit": 101}))
    assert too_many.http_status == 400 and too_many.param == "limit"
    unknown = stripe_error(lambda: client.v1.payment_intents.list(params={"colour": "red"}))
    assert unknown.http_status == 400 and unknown.code == "parameter_unknown"


def test_charges_are_listed_by_intent_and_retrieved_with_refund_and_dispute_fields(client, hooks):
    pi = paid(client, 1200)
    charges = client.v1.charges.list(params={"payment_intent": pi.id})
    assert [c.id for c in charges.data] == [pi.latest_charge]
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.amount, charge.amount_captured, charge.amount_refunded) == (1200, 1200, 0)
    assert charge.refunded is False and charge.disputed is False and charge.status == "succeeded"
    assert charge.payment_method_details.card.last4 == "4242"
    expanded = client.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge"]})
    assert expanded.latest_charge.id == charge.id
    missing = stripe_error(lambda: client.v1.charges.retrieve("ch_nope"))
    assert missing.http_status == 404 and missing.code == "resource_missing" and "No such charge" in str(missing)


# ---- 6. disputes ----------------------------------------------------------------------

def dispute_for(client, hooks, pi) -> dict:
    created = hooks.wait(lambda r: r["event"]["type"] == "charge.dispute.created"
                         and r["event"]["data"]["object"]["payment_intent"] == pi.id, what="charge.dispute.created")
    return created[0]["event"]["data"]["object"]


@pytest.mark.parametrize(("evidence", "outcome"), [("winning_evidence", "won"), ("losing_evidence", "lost")])
def test_a_dispute_test_card_is_disputed_and_evidence_decides_it(client, hooks, evidence, outcome):
    pi = paid(client, 3000, DISPUTED, metadata={"order_id": "o-dispute"})
    assert pi.status == "succeeded"
    dispute = dispute_for(client, hooks, pi)
    assert dispute["id"].startswith("du_") and dispute["object"] == "dispute"
    assert (dispute["status"], dispute["reason"], dispute["amount"]) == ("needs_response", "fraudulent", 3000)
    assert dispute["charge"] == pi.latest_charge and dispute["payment_intent"] == pi.id
    assert dispute["evidence_details"]["due_by"] > time.time()
    assert hooks.event("charge.dispute.funds_withdrawn", dispute["id"])
    assert client.v1.charges.retrieve(pi.latest_charge).disputed is True
    assert client.v1.disputes.retrieve(dispute["id"]).status == "needs_response"
    assert [d.id for d in client.v1.disputes.list(params={"payment_intent": pi.id}).data] == [dispute["id"]]
    blocked = stripe_error(lambda: client.v1.refunds.create(params={"payment_intent": pi.id}))
    assert blocked.http_status == 400 and blocked.code == "charge_disputed"

    updated = client.v1.disputes.update(dispute["id"], params={"evidence": {"uncategorized_text": evidence}})
    assert updated.status == "under_review" and updated.evidence.uncategorized_text == evidence
    assert updated.evidence_details.submission_count == 1 and updated.evidence_details.has_evidence
    assert hooks.event("charge.dispute.updated", dispute["id"])["data"]["object"]["status"] == "under_review"
    closed = hooks.event("charge.dispute.closed", dispute["id"])["data"]["object"]
    assert closed["status"] == outcome and closed["payment_intent"] == pi.id
    assert client.v1.disputes.retrieve(dispute["id"]).status == outcome
    assert client.v1.charges.retrieve(pi.latest_charge).disputed is True
    reinstated = hooks.find(lambda r: r["event"]["type"] == "charge.dispute.funds_reinstated"
                            and r["event"]["data"]["object"]["id"] == dispute["id"])
    assert bool(reinstated) == (outcome == "won")
    late = stripe_error(lambda: client.v1.disputes.update(dispute["id"], params={"evidence": {"receipt": "x"}}))
    assert late.http_status == 400


def test_closing_a_dispute_accepts_it_as_lost(client, hooks):
    pi = paid(client, 900, NOT_RECEIVED)
    dispute = dispute_for(client, hooks, pi)
    assert dispute["reason"] == "product_not_received"
    closed = client.v1.disputes.close(dispute["id"])
    assert closed.status == "lost"
    assert hooks.event("charge.dispute.closed", dispute["id"])["data"]["object"]["status"] == "lost"
    assert stripe_error(lambda: client.v1.disputes.close(dispute["id"])).http_status == 400
    unknown = stripe_error(lambda: client.v1.disputes.update(dispute["id"], params={"evidence": {"colour": "red"}}))
    assert unknown.code == "parameter_unknown"
    assert client.v1.disputes.retrieve(dispute["id"]).metadata.to_dict() == {}


# ---- 7. processing (a test control) ---------------------------------------------------------

def test_processing_then_settled_as_succeeded(client, hooks):
    pi = intent(client, 2500, metadata={"order_id": "o-debit"}, payment_method=card(client, OK))
    r = control(f"payment_intents/{pi.id}/processing")
    assert r.status_code == 200 and r.json()["status"] == "processing"
    assert client.v1.payment_intents.retrieve(pi.id).status == "processing"
    event = hooks.event("payment_intent.processing", pi.id)["data"]["object"]
    assert event["status"] == "processing" and event["metadata"] == {"order_id": "o-debit"}
    assert control(f"payment_intents/{pi.id}/processing").status_code == 400  # already processing
    r = control(f"payment_intents/{pi.id}/settle", outcome="succeeded")
    assert r.status_code == 200 and r.json()["status"] == "succeeded"
    done = client.v1.payment_intents.retrieve(pi.id)
    assert done.status == "succeeded" and done.amount_received == 2500
    assert hooks.event("payment_intent.succeeded", pi.id)["data"]["object"]["metadata"] == {"order_id": "o-debit"}
    assert hooks.event("charge.succeeded", done.latest_charge)["data"]["object"]["amount"] == 2500
    assert control(f"payment_intents/{pi.id}/settle", outcome="succeeded").status_code == 400


def test_processing_then_settled_as_failed_returns_to_requires_payment_method(client, hooks):
    pi = intent(client, 2600, metadata={"order_id": "o-debit-failed"}, payment_method=card(client, OK))
    assert control(f"payment_intents/{pi.id}/processing").status_code == 200
    r = control(f"payment_intents/{pi.id}/settle", outcome="failed")
    assert r.status_code == 200 and r.json()["status"] == "requires_payment_method"
    after = client.v1.payment_intents.retrieve(pi.id)
    assert after.status == "requires_payment_method" and after.last_payment_error.code == "card_declined"
    failed = hooks.event("payment_intent.payment_failed", pi.id)["data"]["object"]
    assert failed["last_payment_error"]["code"] == "card_declined" and failed["metadata"]["order_id"] == "o-debit-failed"
    assert pay(client, pi.id).status == "succeeded"  # and the same intent can still be paid
    assert control(f"payment_intents/{intent(client).id}/processing").status_code == 400  # no method attached
    assert control("payment_intents/pi_nope/settle", outcome="failed").status_code == 404
    assert control(f"payment_intents/{pi.id}/settle", outcome="maybe").status_code == 400


# ---- 8. webhook delivery ----------------------------------------------------------------

def test_events_carry_created_api_version_and_signatures(client, hooks):
    pi = intent(client, metadata={"probe": "yes"})
    event = hooks.event("payment_intent.created", pi.id)
    assert event["object"] == "event" and event["id"].startswith("evt_") and event["livemode"] is False
    assert isinstance(event["created"], int) and abs(event["created"] - time.time()) < 60
    assert event["api_version"] == stripe.api_version
    assert event["data"]["object"]["metadata"] == {"probe": "yes"}
    listed = client.v1.events.list(params={"type": "payment_intent.*", "limit": 100})
    assert event["id"] in [e.id for e in listed.data]


def attempts_of(event_id: str, count: int, timeout: float = 5.0) -> list[tuple[int, int | str]]:
    """The stand-in's delivery log of one event, once it holds ``count`` attempts: an attempt is
    logged when the endpoint's answer is back, a moment after the endpoint saw it."""
    deadline = time.monotonic() + timeout
    while True:
        log = requests.get(f"{BASE}/_config/webhooks/attempts", params={"event": event_id}, timeout=5).json()["data"]
        if len(log) >= count or time.monotonic() > deadline:
            return [(a["attempt"], a["status"]) for a in log]
        time.sleep(0.05)


def test_a_failing_endpoint_is_retried_with_backoff_then_given_up(client, hooks):
    marker = f"retry-{time.time_ns()}"
    customer = client.v1.customers.create(params={"email": f"{marker}@flowsuite.test"})
    hooks.fail("customer.updated", customer.id, 2, 500)
    client.v1.customers.update(customer.id, params={"metadata": {"m": marker}})
    receipts = hooks.wait(lambda r: r["event"]["type"] == "customer.updated"
                          and r["event"]["data"]["object"]["id"] == customer.id, count=3, what="3 attempts")
    assert [r["status"] for r in receipts] == [500, 500, 200]
    assert len({r["event"]["id"] for r in receipts}) == 1  # the same event, re-sent
    gaps = [b["at"] - a["at"] for a, b in zip(receipts, receipts[1:], strict=False)]
    assert gaps[0] >= RETRIES[0] * 0.9 and gaps[1] >= RETRIES[1] * 0.9 and gaps[1] > gaps[0], gaps
    assert receipts[0]["t"] <= receipts[2]["t"]  # each attempt is signed anew
    assert attempts_of(receipts[0]["event"]["id"], 3) == [(1, 500), (2, 500), (3, 200)]

    doomed = client.v1.customers.create(params={"email": f"doomed-{marker}@flowsuite.test"})
    hooks.fail("customer.updated", doomed.id, None, 503)
    client.v1.customers.update(doomed.id, params={"metadata": {"m": "doomed"}})
    tries = hooks.wait(lambda r: r["event"]["type"] == "customer.updated"
                       and r["event"]["data"]["object"]["id"] == doomed.id, count=1 + len(RETRIES),
                       timeout=sum(RETRIES) + 5, what="every attempt")
    time.sleep(RETRIES[-1] + 0.5)
    assert len(hooks.find(lambda r: r["event"]["type"] == "customer.updated"
                          and r["event"]["data"]["object"]["id"] == doomed.id)) == len(tries) == 1 + len(RETRIES)


def test_drop_makes_the_next_matching_events_vanish_but_stay_listed(client, hooks):
    r = control("webhooks/drop", count=1, type="payment_intent.created")
    assert r.status_code == 200 and r.json()["data"] == [{"remaining": 1, "type": "payment_intent.created"}]
    customer = client.v1.customers.create(params={"email": "drop@flowsuite.test"})
    lost = intent(client, metadata={"case": "lost"})
    kept = intent(client, metadata={"case": "kept"})
    hooks.event("payment_intent.created", kept.id)
    hooks.event("customer.created", customer.id)  # another type is not dropped
    time.sleep(0.5)
    assert hooks.types_for(lost.id) == []
    listed = [e for e in client.v1.events.list(params={"type": "payment_intent.created", "limit": 100}).data
              if e.data.object.id == lost.id]
    assert len(listed) == 1  # Stripe still has the event: reconciliation can find it
    log = requests.get(f"{BASE}/_config/webhooks/attempts", params={"event": listed[0].id}, timeout=5).json()["data"]
    assert [a["status"] for a in log] == ["dropped"]
    assert requests.get(f"{BASE}/_config/webhooks/drop", timeout=5).json()["data"] == []

    assert control("webhooks/drop", count=2).status_code == 200
    a, b, c = intent(client), intent(client), intent(client)
    hooks.event("payment_intent.created", c.id)
    time.sleep(0.3)
    assert hooks.types_for(a.id) == [] and hooks.types_for(b.id) == []

    assert control("webhooks/drop", count=50).status_code == 200
    assert control("webhooks/drop", count=0).status_code == 200  # webhooks flow again
    d = intent(client)
    hooks.event("payment_intent.created", d.id)
    assert control("webhooks/drop", count=-1).status_code == 400
    assert control("webhooks/drop").status_code == 400


# ---- what localstripe already did still works ----------------------------------------------

def test_localstripe_basics_still_work(client, hooks):
    customer = client.v1.customers.create(params={"email": "basic@flowsuite.test", "metadata": {"uid": "u9"}})
    assert client.v1.customers.retrieve(customer.id).email == "basic@flowsuite.test"
    pm = card(client, OK)
    client.v1.payment_methods.attach(pm, params={"customer": customer.id})
    assert [p.id for p in client.v1.payment_methods.list(params={"customer": customer.id, "type": "card"}).data] == [pm]
    pi = intent(client, 4200, customer=customer.id, metadata={"a": "1"})
    client.v1.payment_intents.update(pi.id, params={"metadata": {"b": "2"}})
    assert client.v1.payment_intents.retrieve(pi.id).metadata.to_dict() == {"a": "1", "b": "2"}
    client.v1.payment_intents.update(pi.id, params={"payment_method": pm})
    assert client.v1.payment_intents.confirm(pi.id).status == "succeeded"
    assert hooks.event("customer.created", customer.id)["data"]["object"]["metadata"] == {"uid": "u9"}
    client.v1.customers.delete(customer.id)
    gone = stripe_error(lambda: client.v1.customers.retrieve(customer.id))
    assert gone.http_status == 404 and "No such customer" in str(gone)
    assert requests.post(f"{BASE}/_config/webhooks/nourl", data={"secret": "x"}, timeout=5).status_code == 400


def test_the_retry_schedule_comes_from_the_environment():
    def schedule(value: str | None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "FLOWSUITE_STRIPE_WEBHOOK_RETRY_SCHEDULE"}
        if value is not None:
            env["FLOWSUITE_STRIPE_WEBHOOK_RETRY_SCHEDULE"] = value
        return subprocess.run([sys.executable, "-c", "import devtools.stripe_standin as s; print(s.RETRY_SCHEDULE)"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    assert schedule(None).stdout.strip() == "[1.0, 2.0, 4.0, 8.0, 16.0]"
    assert schedule("0.5, 3").stdout.strip() == "[0.5, 3.0]"
    assert schedule("").stdout.strip() == "[]"
    bad = schedule("soon")
    assert bad.returncode != 0 and "FLOWSUITE_STRIPE_WEBHOOK_RETRY_SCHEDULE" in bad.stderr


def test_without_from_scratch_the_store_survives_a_restart(tmp_path):
    """localstripe's own behaviour, kept: a restart without --from-scratch reloads the store."""
    port, state = free_port(), tmp_path / "state.pickle"
    env = {**os.environ, "FLOWSUITE_STRIPE_STATE": str(state)}

    def run(*args: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "devtools.stripe_standin", "--port", str(port), *args],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not port_open(port):
            assert proc.poll() is None and time.monotonic() < deadline, "the stand-in did not start"
            time.sleep(0.1)
        return proc

    def stop(proc: subprocess.Popen) -> None:
        proc.terminate()
        proc.wait(10)

    local = stripe.StripeClient("sk_test_x", base_addresses={"api": f"http://127.0.0.1:{port}"})
    proc = run("--from-scratch")
    try:
        customer = local.v1.customers.create(params={"email": "kept@flowsuite.test"}).id
        key = local.v1.ephemeral_keys.create(params={"customer": customer}, options={"stripe_version": "2024-06-20"})
    finally:
        stop(proc)
    proc = run()
    try:
        assert local.v1.customers.retrieve(customer).email == "kept@flowsuite.test"
        assert local.v1.ephemeral_keys.delete(key.id).id == key.id
    finally:
        stop(proc)
    proc = run("--from-scratch")
    try:
        assert stripe_error(lambda: local.v1.customers.retrieve(customer)).http_status == 404
    finally:
        stop(proc)


def test_no_error_in_the_standin_log(standin):
    _, log_path = standin
    text = log_path.read_text()
    assert "Traceback" not in text and "Error handling request" not in text, text[-4000:]
