"""The Stripe stand-in: localstripe 1.15, patched where it falls short of Stripe's API.

    python -m devtools.stripe_standin --port 8420 --from-scratch

It imports localstripe, patches its resource classes, adds routes to a copy of its
aiohttp app and serves that. Every change models a documented Stripe behaviour
(see devtools/STRIPE_STANDIN.md); nothing here is product code. What it adds:

- a declined confirmation answers 402 ``card_error`` (``decline_code``), leaves the
  intent in ``requires_payment_method`` with ``last_payment_error`` and the payment
  method detached, and the SAME intent can be given another card and confirmed;
- ``cancel`` with ``cancellation_reason`` and ``canceled_at``, refused from other
  statuses with ``payment_intent_unexpected_state`` and the intent in the error;
- partial and full refunds (``charge_already_refunded``, ``amount_too_large``,
  ``charge_disputed``), each with ``charge.refunded`` and ``refund.created``;
- refunds that fail after the fact (Stripe's test card 4000000000005126: the refund starts
  ``succeeded``, then becomes ``failed``): the charge's ``amount_refunded`` goes down, with
  ``charge.refund.updated``, ``refund.updated`` and ``refund.failed``;
- ephemeral keys (``POST /v1/ephemeral_keys`` needs a ``Stripe-Version`` header);
- lists filtered by ``created`` (gt/gte/lt/lte), newest first, with pagination;
- test-mode disputes (cards 4000000000000259 and 4000000000002685, evidence
  ``winning_evidence`` / ``losing_evidence``), ``/v1/disputes`` and ``close``;
- the events Stripe sends (``payment_intent.created``, ``charge.succeeded``, ...),
  with ``api_version``, and charges that carry the intent's metadata;
- webhook delivery with retries and backoff, per endpoint, re-signed per attempt.

Test controls (NOT part of Stripe's API; under ``/_config/`` like localstripe's own):

    POST   /_config/payment_intents/{id}/processing   [cancelable=true]
    POST   /_config/payment_intents/{id}/settle       outcome=succeeded|failed
                                                      [failure_code, failure_message, decline_code]
    POST   /_config/refunds/{id}/fail                 [failure_reason]: a refund fails now (any card)
    POST   /_config/charges/{id}/next_refund          status=failed|canceled [failure_reason]: the charge's
                                                      next refund is answered with that status
    POST   /_config/webhooks/drop                     count=N [type=event.type]  (count=0: drop no more)
    GET    /_config/webhooks/drop                     the drop rules still pending
    DELETE /_config/webhooks/drop                     forget every drop rule
    GET    /_config/webhooks/attempts                 [event=evt_..] [type=..]: delivery log
    DELETE /_config/webhooks/{id}                     unregister an endpoint
    (localstripe's own: POST /_config/webhooks/{id} url, secret [, events];
     DELETE /_config/data)

Environment (all optional):

    FLOWSUITE_STRIPE_WEBHOOK_DELAY           seconds before the first attempt (1, as localstripe)
    FLOWSUITE_STRIPE_WEBHOOK_RETRY_SCHEDULE  waits before each retry, seconds ("1,2,4,8,16";
                                             "" = no retries). Stripe retries for up to 3 days.
    FLOWSUITE_STRIPE_ASYNC_DELAY             seconds before a test-mode dispute opens or closes, or a
                                             refund of the refund-failure card fails (1)
    FLOWSUITE_STRIPE_API_VERSION             events' api_version (default: the installed stripe
                                             SDK's pinned version)
    FLOWSUITE_STRIPE_STATE                   where the store is saved after each change (default
                                             /tmp/stripe-standin-<port>.pickle, loaded at start; with
                                             --from-scratch nothing is loaded, and nothing saved unless
                                             this is set). localstripe's /tmp/localstripe.pickle is left alone.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import fnmatch
import hashlib
import hmac
import json
import logging
import os
import pickle
import re
import socket
import time
from typing import Any

import aiohttp
from aiohttp import web
from localstripe import resources, server, webhooks
from localstripe.errors import UserError
from localstripe.resources import (
    BalanceTransaction,
    Charge,
    Customer,
    Event,
    Invoice,
    List,
    PaymentIntent,
    PaymentMethod,
    Refund,
    StripeObject,
    random_id,
    store,
    try_convert_to_bool,
    try_convert_to_int,
)

log = logging.getLogger("stripe_standin")


# ---- configuration -------------------------------------------------------------------

def _seconds_list(raw: str, name: str) -> list[float]:
    try:
        values = [float(part) for part in raw.replace(" ", "").split(",") if part]
    except ValueError:
        raise SystemExit(f"stripe_standin: {name} must be seconds separated by commas, got {raw!r}") from None
    if any(v < 0 for v in values):
        raise SystemExit(f"stripe_standin: {name} must not be negative, got {raw!r}")
    return values


def _default_api_version() -> str:
    with contextlib.suppress(Exception):
        from stripe._api_version import _ApiVersion  # noqa: PLC0415 - only for the default

        return _ApiVersion.CURRENT
    return "2024-06-20"


WEBHOOK_DELAY = float(os.environ.get("FLOWSUITE_STRIPE_WEBHOOK_DELAY", "1"))
RETRY_SCHEDULE = _seconds_list(os.environ.get("FLOWSUITE_STRIPE_WEBHOOK_RETRY_SCHEDULE", "1,2,4,8,16"),
                               "FLOWSUITE_STRIPE_WEBHOOK_RETRY_SCHEDULE")
ASYNC_DELAY = float(os.environ.get("FLOWSUITE_STRIPE_ASYNC_DELAY", "1"))
API_VERSION = os.environ.get("FLOWSUITE_STRIPE_API_VERSION") or _default_api_version()
WEBHOOK_TIMEOUT_S = 30
EPHEMERAL_KEY_TTL_S = 3600
STATE_PATH: str | None = None

PI_CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation", "requires_action")
PI_CANCELABLE_LISTED = PI_CANCELABLE + ("processing",)  # as Stripe's message lists them ("in rare cases")
PI_CONFIRMABLE = ("requires_confirmation", "requires_payment_method", "requires_action")
CANCELLATION_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
# Stripe's test cards whose payment succeeds and is then disputed (docs.stripe.com/testing#disputes).
DISPUTE_CARDS = {"4000000000000259": "fraudulent", "4000000000002685": "product_not_received"}
DISPUTE_TEST_PMS = {"pm_card_createDispute": "4000000000000259",
                    "pm_card_createDisputeProductNotReceived": "4000000000002685"}
# Stripe's test card whose payment succeeds and whose refunds start succeeded, then fail
# asynchronously with charge.refund.updated (docs.stripe.com/testing#refunds).
REFUND_FAILS_CARD = "4000000000005126"
REFUND_FAILS_REASON = "expired_or_canceled_card"  # the stand-in's choice: Stripe's docs name none for the card
REFUND_FAILURE_REASONS = ("charge_for_pending_refund_disputed", "declined", "expired_or_canceled_card",
                          "insufficient_funds", "lost_or_stolen_card", "merchant_request", "unknown")
REFUND_RETURNED = ("failed", "canceled")  # the money went back to the merchant: not counted as refunded
EVIDENCE_FIELDS = (
    "access_activity_log", "billing_address", "cancellation_policy", "cancellation_policy_disclosure",
    "cancellation_rebuttal", "customer_communication", "customer_email_address", "customer_name",
    "customer_purchase_ip", "customer_signature", "duplicate_charge_documentation",
    "duplicate_charge_explanation", "duplicate_charge_id", "product_description", "receipt", "refund_policy",
    "refund_policy_disclosure", "refund_refusal_explanation", "service_date", "service_documentation",
    "shipping_address", "shipping_carrier", "shipping_date", "shipping_documentation",
    "shipping_tracking_number", "uncategorized_file", "uncategorized_text",
)
ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
                "xaf", "xof", "xpf"}
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$"}


# ---- Stripe-shaped errors ------------------------------------------------------------

def _error(status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
           param: str | None = None, **extra: Any) -> UserError:
    """A UserError whose body is shaped like Stripe's: {error: {type, code, doc_url, message, param, ...}}."""
    body: dict[str, Any] = {"message": message}
    if code:
        body["code"] = code
        body["doc_url"] = "https://stripe.com/docs/error-codes/" + code.replace("_", "-")
    if param:
        body["param"] = param
    body.update({k: v for k, v in extra.items() if v is not None})
    err = UserError(status, message, body)
    err.body["error"]["type"] = type  # UserError always says invalid_request_error
    return err


def _unknown(param: str) -> UserError:
    return _error(400, f"Received unknown parameter: {param}", code="parameter_unknown", param=param)


def _reject_unknown(kwargs: dict, prefix: str = "") -> None:
    for key in kwargs:
        raise _unknown(prefix + key)


def _money(amount: int, currency: str) -> str:
    symbol = SYMBOLS.get(currency.lower(), currency.upper() + " ")
    if currency.lower() in ZERO_DECIMAL:
        return f"{symbol}{amount}"
    return f"{symbol}{amount / 100:.2f}"


def _int_param(value: Any, name: str, *, minimum: int | None = None) -> int:
    number = try_convert_to_int(value)
    if type(number) is not int:
        raise _error(400, f"Invalid integer: {value}", param=name)
    if minimum is not None and number < minimum:
        raise _error(400, f"This value must be greater than or equal to {minimum}.", param=name)
    return number


def _retrieve(cls, id):
    obj = store.get(cls.object + ":" + id) if isinstance(id, str) else None
    if obj is None:
        raise _error(404, f"No such {cls.object}: '{id}'", code="resource_missing", param="id")
    return obj


def _delete(cls, id):
    _retrieve(cls, id)
    del store[cls.object + ":" + id]
    return resources.DeletedObject(id, cls.object)


def _expand(obj: dict, expand: Any) -> dict:
    """localstripe's expansion (string ids replaced by their objects), for exports we post-process."""
    if expand is None:
        return obj
    if type(expand) is not list or not all(type(e) is str for e in expand):
        raise _error(400, "Invalid array", param="expand")

    def walk(path: str, node: Any) -> None:
        if type(node) is list:
            for item in node:
                walk(path, item)
            return
        key, rest = path.split(".", 1) if "." in path else (path, None)
        if key not in node:
            raise _error(400, f"This property cannot be expanded ({key}).", param="expand")
        if type(node[key]) is str:
            cls = StripeObject._get_class_for_id(node[key])
            node[key] = cls._api_retrieve(node[key])._export()
        if rest is not None and node[key] is not None:
            walk(rest, node[key])

    for path in expand:
        walk(path, obj)
    return obj


# ---- webhook delivery ----------------------------------------------------------------

_tasks: set[asyncio.Task] = set()
_drop_rules: list[dict[str, Any]] = []  # [{"remaining": n, "type": str | None}]
_attempts: collections.deque = collections.deque(maxlen=5000)


def _spawn(coro) -> None:
    try:
        task = asyncio.get_running_loop().create_task(coro)
    except RuntimeError:  # no loop (an import, a unit test): nothing can be delivered
        coro.close()
        return
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def _later(delay: float, fn, *args) -> None:
    async def run():
        await asyncio.sleep(delay)
        try:
            fn(*args)
        except Exception:
            log.exception("stripe_standin: deferred %s failed", getattr(fn, "__name__", fn))

    _spawn(run())


def _endpoints_for(event_type: str) -> list[tuple[str, webhooks.Webhook]]:
    return [(endpoint_id, hook) for endpoint_id, hook in webhooks._webhooks.items()
            if hook.events is None or "*" in hook.events or event_type in hook.events]


def schedule_webhook(event: Event) -> None:
    """Replaces localstripe's: drop rules, then one delivery (with retries) per endpoint."""
    for rule in _drop_rules:
        if rule["remaining"] > 0 and rule["type"] in (None, event.type):
            rule["remaining"] -= 1
            _drop_rules[:] = [r for r in _drop_rules if r["remaining"] > 0]
            _attempts.append({"event": event.id, "type": event.type, "endpoint": None, "attempt": 0,
                              "status": "dropped", "at": time.time()})
            log.info("webhook %s %s dropped (test control)", event.id, event.type)
            return
    payload = json.dumps(event._export(), indent=2, sort_keys=True).encode("utf-8")
    _spawn(_deliver_event(event.id, event.type, payload))


async def _deliver_event(event_id: str, event_type: str, payload: bytes) -> None:
    await asyncio.sleep(WEBHOOK_DELAY)
    for endpoint_id, _hook in _endpoints_for(event_type):
        _spawn(_deliver(event_id, event_type, payload, endpoint_id))


async def _deliver(event_id: str, event_type: str, payload: bytes, endpoint_id: str) -> None:
    waits = [0.0] + RETRY_SCHEDULE
    for attempt, wait in enumerate(waits, start=1):
        if wait:
            await asyncio.sleep(wait)
        hook = webhooks._webhooks.get(endpoint_id)
        if hook is None:  # unregistered meanwhile
            return
        timestamp = int(time.time())  # Stripe signs every attempt anew
        signature = hmac.new(hook.secret.encode("utf-8"), b"%d.%s" % (timestamp, payload), hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "Stripe-Signature": f"t={timestamp},v1={signature}",
                   "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"}
        try:
            timeout = aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S)
            async with aiohttp.ClientSession(timeout=timeout) as session, \
                    session.post(hook.url, data=payload, headers=headers) as response:
                status: int | str = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            status = f"error: {type(exc).__name__}: {exc}"
        _attempts.append({"event": event_id, "type": event_type, "endpoint": endpoint_id, "attempt": attempt,
                          "status": status, "at": time.time()})
        if isinstance(status, int) and 200 <= status < 300:
            log.info("webhook %s %s -> %s: %s (attempt %d)", event_id, event_type, endpoint_id, status, attempt)
            return
        if attempt < len(waits):
            log.info("webhook %s %s -> %s: %s (attempt %d), retry in %ss", event_id, event_type, endpoint_id,
                     status, attempt, waits[attempt])
        else:
            log.info("webhook %s %s -> %s: %s (attempt %d), giving up", event_id, event_type, endpoint_id,
                     status, attempt)


def _emit(event_type: str, obj: StripeObject, previous: dict | None = None) -> Event:
    event = Event(event_type, obj)
    if previous:
        event.data["previous_attributes"] = previous
    schedule_webhook(event)
    return event


_orig_event_init = Event.__init__


def _event_init(self, type, data):
    _orig_event_init(self, type, data)
    self.api_version = API_VERSION
    self.pending_webhooks = len(_endpoints_for(type))
    self.request = {"id": None, "idempotency_key": None}


# ---- lists: created filters, newest first, both cursors ------------------------------

class _Page(List):
    """A page cut by ``ending_before`` (localstripe's List knows only ``starting_after``)."""

    def __init__(self, url, items, limit, more):
        super().__init__(url, limit=limit)
        self._list = items
        self._more = more

    @property
    def has_more(self):
        return self._more


def _created_filter(created: Any):
    if created is None:
        return None
    if type(created) is dict:
        bounds = {}
        for op, value in created.items():
            if op not in ("gt", "gte", "lt", "lte"):
                raise _unknown(f"created[{op}]")
            bounds[op] = _int_param(value, f"created[{op}]")
        checks = {"gt": lambda c, v: c > v, "gte": lambda c, v: c >= v,
                  "lt": lambda c, v: c < v, "lte": lambda c, v: c <= v}
        return lambda obj: all(checks[op](obj.created, v) for op, v in bounds.items())
    exact = _int_param(created, "created")
    return lambda obj: obj.created == exact


def _list(cls, url, *, limit=None, starting_after=None, ending_before=None, created=None, filters=()):
    limit = 10 if limit is None else _int_param(limit, "limit", minimum=1)
    if limit > 100:
        raise _error(400, f"This value must be less than or equal to 100 (it currently is '{limit}').",
                     param="limit")
    if starting_after is not None and ending_before is not None:
        raise _error(400, "You may only specify one of these parameters: ending_before, starting_after.")
    items = [obj for key, obj in store.items() if key.startswith(cls.object + ":")]
    items.reverse()  # the store keeps creation order: newest first, then...
    items.sort(key=lambda obj: obj.created, reverse=True)  # ...by created (stable for the same second)
    checks = [f for f in (_created_filter(created), *filters) if f is not None]
    items = [obj for obj in items if all(check(obj) for check in checks)]
    if ending_before is None:
        page = List(url, limit=limit, starting_after=starting_after)
        page._list = items
        return page
    index = next((i for i, obj in enumerate(items) if obj.id == ending_before), 0)
    start = max(0, index - limit)
    return _Page(url, items[start:index], limit, start > 0)


def _match(field, value):
    return None if value is None else (lambda obj: getattr(obj, field, None) == value)


def _pi_list(cls, url, customer=None, created=None, limit=None, starting_after=None, ending_before=None, **kwargs):
    _reject_unknown(kwargs)
    return _list(cls, url, limit=limit, starting_after=starting_after, ending_before=ending_before,
                 created=created, filters=[_match("customer", customer)])


def _charge_list(cls, url, customer=None, payment_intent=None, created=None, limit=None, starting_after=None,
                 ending_before=None, **kwargs):
    _reject_unknown(kwargs)
    return _list(cls, url, limit=limit, starting_after=starting_after, ending_before=ending_before,
                 created=created, filters=[_match("customer", customer), _match("payment_intent", payment_intent)])


def _refund_list(cls, url, charge=None, payment_intent=None, created=None, limit=None, starting_after=None,
                 ending_before=None, **kwargs):
    _reject_unknown(kwargs)
    return _list(cls, url, limit=limit, starting_after=starting_after, ending_before=ending_before,
                 created=created, filters=[_match("charge", charge), _match("payment_intent", payment_intent)])


def _event_list(cls, url, type=None, types=None, created=None, limit=None, starting_after=None,
                ending_before=None, **kwargs):
    _reject_unknown(kwargs)
    wanted = types if isinstance(types, list) else None
    filters = [
        (lambda obj: fnmatch.fnmatchcase(obj.type, type)) if type else None,  # Stripe allows "charge.*"
        (lambda obj: obj.type in wanted) if wanted else None,
    ]
    return _list(cls, url, limit=limit, starting_after=starting_after, ending_before=ending_before,
                 created=created, filters=filters)


# ---- payment methods: Stripe's dispute test ids -------------------------------------

_orig_canonical = PaymentMethod._try_get_canonical_test_article.__func__


def _canonical(cls, id):
    if id in DISPUTE_TEST_PMS:
        return PaymentMethod(type="card", card={"number": DISPUTE_TEST_PMS[id], "exp_month": "12",
                                                "exp_year": "2034", "cvc": "123"})
    return _orig_canonical(cls, id)


def _pm_export(pm_id: str | None) -> dict | None:
    if not pm_id:
        return None
    with contextlib.suppress(UserError):
        return PaymentMethod._api_retrieve(pm_id)._export()
    return None


# ---- charges -------------------------------------------------------------------------

_orig_charge_init = Charge.__init__
_orig_set_auth_failure = Charge._set_auth_failure


def _charge_init(self, *args, **kwargs):
    _orig_charge_init(self, *args, **kwargs)
    self.disputed = False
    self.outcome = None
    self._decline_code = None
    self._announced = False  # charge.succeeded already sent (an authorization before its capture)


def _charge_set_auth_failure(self):
    _orig_set_auth_failure(self)
    self._decline_code = "generic_decline"
    self.outcome = {"network_status": "declined_by_network", "reason": "generic_decline", "risk_level": "normal",
                    "seller_message": "The bank did not return any further details with this decline.",
                    "type": "issuer_declined"}


def _charge_raise_failure(self):
    raise _error(402, self.failure_message, type="card_error", code=self.failure_code,
                 decline_code=getattr(self, "_decline_code", None), charge=self.id)


def _charge_amount_refunded(self):
    """Stripe counts pending and succeeded refunds; a failed or canceled one is given back."""
    return sum(refund.amount for refund in self.refunds._list
               if getattr(refund, "status", "succeeded") not in REFUND_RETURNED)


def _charge_amount_captured(self):
    return self.amount if self.captured and self.status == "succeeded" else 0


def _charge_pm_details(self):
    with contextlib.suppress(UserError):
        pm = PaymentMethod._api_retrieve(self.payment_method)
        if getattr(pm, "type", None) == "card" and isinstance(getattr(pm, "card", None), dict):
            card = pm.card
            return {"type": "card", "card": {k: card.get(k) for k in
                                             ("brand", "country", "exp_month", "exp_year", "fingerprint",
                                              "funding", "last4")}}
        if getattr(pm, "type", None) == "sepa_debit":
            return {"type": "sepa_debit", "sepa_debit": dict(pm.sepa_debit)}
    return None


def _charge_succeeded(charge) -> None:
    charge.outcome = {"network_status": "approved_by_network", "reason": None, "risk_level": "normal",
                      "seller_message": "Payment complete.", "type": "authorized"}


# ---- payment intents -----------------------------------------------------------------

_orig_pi_init = PaymentIntent.__init__
_PI_INIT_PARAMS = {"amount", "currency", "customer", "payment_method", "metadata", "payment_method_types",
                   "capture_method", "payment_method_options"}
_PI_EXTRA_PARAMS = ("description", "receipt_email", "setup_future_usage", "automatic_payment_methods",
                    "statement_descriptor", "statement_descriptor_suffix")
_PI_IGNORED_PARAMS = ("return_url", "use_stripe_sdk", "error_on_requires_action", "mandate_data",
                      "confirmation_method")


def _pi_init(self, *args, **kwargs):
    extra = {k: kwargs.pop(k) for k in _PI_EXTRA_PARAMS if k in kwargs}
    for k in _PI_IGNORED_PARAMS:
        kwargs.pop(k, None)
    for key in kwargs:
        if key not in _PI_INIT_PARAMS:
            raise _unknown(key)
    if kwargs.get("payment_method"):
        kwargs["payment_method"] = PaymentMethod._api_retrieve(kwargs["payment_method"]).id
    _orig_pi_init(self, *args, **kwargs)
    self.payment_method_types = kwargs.get("payment_method_types") or ["card"]
    for key in _PI_EXTRA_PARAMS:
        setattr(self, key, extra.get(key))
    self.canceled_at = None
    self.cancellation_reason = None
    self._last_payment_error = None
    self._pm_after_failure = False
    self._processing_cancelable = False
    _emit("payment_intent.created", self)


def _pi_status(self):
    if self._canceled:
        return "canceled"
    charge = self.latest_charge
    if charge is not None and charge.status != "failed":
        if charge.status == "pending":
            return "processing"
        if charge.status == "succeeded":
            return "succeeded" if charge.captured else "requires_capture"
    if not self.payment_method:
        return "requires_payment_method"
    if self.next_action:
        return "requires_action"
    if charge is None:
        return "requires_confirmation"
    # The last attempt failed: Stripe detached its payment method; a new one makes it confirmable again.
    return "requires_confirmation" if getattr(self, "_pm_after_failure", False) else "requires_payment_method"


def _pi_last_payment_error(self):
    if getattr(self, "_last_payment_error", None):
        return self._last_payment_error
    if self._authentication_failed:
        return {"code": "payment_intent_authentication_failure", "type": "card_error",
                "message": "The provided PaymentMethod has failed authentication."}
    charge = self.latest_charge
    if charge is not None and charge.status == "failed":  # a failure localstripe recorded on its own
        return {"charge": charge.id, "code": charge.failure_code, "message": charge.failure_message,
                "decline_code": getattr(charge, "_decline_code", None), "type": "card_error"}
    return None


def _pi_amount_received(self):
    charge = self.latest_charge
    return charge.amount_captured if charge is not None and charge.status == "succeeded" else 0


def _pi_amount_capturable(self):
    return self.amount if self.status == "requires_capture" else 0


def _pi_export(self, expand=None):
    obj = StripeObject._export(self)
    obj.pop("charges", None)  # removed from the API in 2022-11-15
    obj["latest_charge"] = self.latest_charge.id if self.latest_charge is not None else None
    return _expand(obj, expand)


def _unexpected(pi, action: str, allowed: tuple[str, ...]) -> UserError:
    """Stripe's answer to an operation the intent's status does not allow."""
    done = {"cancel": "canceled", "confirm": "confirmed"}.get(action, action + "ed")
    return _error(400, f"You cannot {action} this PaymentIntent because it has a status of {pi.status}. Only a "
                       f"PaymentIntent with one of the following statuses may be {done}: {', '.join(allowed)}.",
                  code="payment_intent_unexpected_state", payment_intent=pi._export())


_orig_pi_confirm = PaymentIntent._confirm


def _pi_confirm(self, on_failure_now):
    _orig_pi_confirm(self, on_failure_now)
    if self.next_action:  # 3D Secure: the customer must authenticate
        _emit("payment_intent.requires_action", self)


def _pi_create_charge(self, on_failure_now):
    if self.status != "requires_confirmation":
        raise _unexpected(self, "confirm", PI_CONFIRMABLE)
    charge = Charge(amount=self.amount, currency=self.currency, customer=self.customer,
                    source=self.payment_method, capture=(self.capture_method != "manual"))
    charge.payment_intent = self.id
    charge.metadata = dict(self.metadata or {})  # Stripe copies the intent's metadata onto its charges
    charge.description = getattr(self, "description", None)
    self.latest_charge = charge
    self._last_payment_error = None
    self._pm_after_failure = False
    charge._initialize_charge(self._on_success, on_failure_now, self._report_async_failure)
    if charge.status == "succeeded" and not charge.captured:  # authorized, to capture later
        _charge_succeeded(charge)
        charge._announced = True
        _emit("charge.succeeded", charge)
        _emit("payment_intent.amount_capturable_updated", self)


def _pi_on_success(self):
    charge = self.latest_charge
    if charge is not None:
        _charge_succeeded(charge)
        _emit("charge.captured" if charge._announced else "charge.succeeded", charge)
        charge._announced = True
    _emit("payment_intent.succeeded", self)
    if self.invoice:
        Invoice._api_retrieve(self.invoice)._on_payment_success()
    reason = _dispute_reason(self.payment_method)
    if charge is not None and reason:
        _later(ASYNC_DELAY, _open_dispute, charge.id, reason)


def _record_failure(pi) -> None:
    """A failed attempt, as Stripe leaves it: requires_payment_method, the method detached, the error kept."""
    charge = pi.latest_charge
    pm = _pm_export(pi.payment_method)
    card = pm is None or pm.get("type") == "card"
    code = charge.failure_code or "card_declined"
    error = {
        "charge": charge.id,
        "code": code,
        "decline_code": charge._decline_code if card else None,
        "doc_url": "https://stripe.com/docs/error-codes/" + code.replace("_", "-"),
        "message": charge.failure_message or "Your card was declined.",
        "payment_method": pm,
        "type": "card_error" if card else "invalid_request_error",
    }
    pi._last_payment_error = {k: v for k, v in error.items() if v is not None}
    pi.payment_method = None
    pi._pm_after_failure = False
    _emit("charge.failed", charge)
    _emit("payment_intent.payment_failed", pi)


def _pi_report_failure(self):
    _record_failure(self)
    if self.invoice:
        Invoice._api_retrieve(self.invoice)._on_payment_failure_now()
    error = dict(self._last_payment_error)
    raise _error(402, error.pop("message"), type=error.pop("type"), code=error.pop("code", None),
                 payment_intent=self._export(), **{k: v for k, v in error.items() if k != "doc_url"})


def _pi_report_async_failure(self):
    _record_failure(self)
    if self.invoice:
        Invoice._api_retrieve(self.invoice)._on_payment_failure_later()


def _use_payment_method(pi, pm_id: Any) -> None:
    if pm_id in (None, ""):
        pi.payment_method = None
        return
    if type(pm_id) is not str:
        raise _error(400, "Invalid string", param="payment_method")
    pi.payment_method = PaymentMethod._api_retrieve(pm_id).id
    pi.next_action = None
    pi._authentication_failed = False
    pi._pm_after_failure = True


_PI_UPDATABLE = {"amount", "currency", "customer", "description", "metadata", "payment_method",
                 "payment_method_types", "receipt_email", "setup_future_usage", "capture_method",
                 "statement_descriptor", "statement_descriptor_suffix"}


def _pi_api_update(cls, id, **data):
    obj = cls._api_retrieve(id)
    for key in data:
        if key not in _PI_UPDATABLE:
            raise _unknown(key)
    frozen = sorted(set(data) - {"metadata", "description"})
    if frozen and obj.status in ("succeeded", "canceled", "processing"):
        raise _error(400, f"This PaymentIntent's {frozen[0]} could not be updated because it has a status of "
                          f"{obj.status}. You may only update the {frozen[0]} of a PaymentIntent with one of the "
                          "following statuses: requires_payment_method, requires_confirmation, requires_action.",
                     code="payment_intent_unexpected_state", param=frozen[0], payment_intent=obj._export())
    if "amount" in data:
        data["amount"] = _int_param(data["amount"], "amount", minimum=1)
    if data.get("customer"):
        Customer._api_retrieve(data["customer"])
    if "payment_method" in data:
        _use_payment_method(obj, data.pop("payment_method"))
    metadata = data.pop("metadata", None)
    if metadata == "":
        obj.metadata = {}
    elif metadata is not None:
        if type(metadata) is not dict:
            raise _error(400, "Invalid object", param="metadata")
        for key, value in metadata.items():  # Stripe: an empty value unsets a key
            if value == "":
                obj.metadata.pop(key, None)
            else:
                obj.metadata[key] = value
    for key, value in data.items():
        setattr(obj, key, value)
    return obj


def _pi_api_confirm(cls, id, payment_method=None, return_url=None, off_session=None, setup_future_usage=None,
                    **kwargs):
    _reject_unknown(kwargs)
    obj = cls._api_retrieve(id)
    if obj.status not in PI_CONFIRMABLE:
        raise _unexpected(obj, "confirm", PI_CONFIRMABLE)
    if payment_method is not None:
        _use_payment_method(obj, payment_method)
    if setup_future_usage is not None:
        obj.setup_future_usage = setup_future_usage
    if obj.status == "requires_payment_method":
        raise _error(400, "You cannot confirm this PaymentIntent because it's missing a payment method. You can "
                          "either update the PaymentIntent with a payment method and then confirm it again, or "
                          "confirm it again directly with a payment method.",
                     code="payment_intent_unexpected_state", payment_intent=obj._export())
    obj.next_action = None
    obj._last_payment_error = None
    obj._pm_after_failure = True  # confirming again is allowed even after a failed attempt
    obj._confirm(on_failure_now=obj._report_failure)
    return obj


def _pi_api_cancel(cls, id, cancellation_reason=None, **kwargs):
    _reject_unknown(kwargs)
    obj = cls._api_retrieve(id)
    if cancellation_reason is not None and cancellation_reason not in CANCELLATION_REASONS:
        raise _error(400, "Invalid cancellation_reason: must be one of duplicate, fraudulent, "
                          "requested_by_customer, or abandoned", param="cancellation_reason")
    status = obj.status
    if status not in PI_CANCELABLE and not (status == "processing" and obj._processing_cancelable):
        raise _unexpected(obj, "cancel", PI_CANCELABLE_LISTED)
    charge = obj.latest_charge
    if status == "requires_capture":  # Stripe refunds what was authorized
        Refund(charge=charge.id, amount=charge.amount)
    elif status == "processing":
        charge.status, charge.failure_code = "failed", "payment_intent_canceled"
        charge.failure_message = "The PaymentIntent was canceled while it was processing."
    obj._canceled = True
    obj.next_action = None
    obj.canceled_at = int(time.time())
    obj.cancellation_reason = cancellation_reason
    if status == "requires_capture":
        _emit("charge.refunded", charge)
    _emit("payment_intent.canceled", obj)
    return obj


# ---- refunds -------------------------------------------------------------------------

_orig_refund_init = Refund.__init__


def _refund_init(self, *args, **kwargs):
    _orig_refund_init(self, *args, **kwargs)
    self.reason = None
    self.failure_reason = None
    self.failure_balance_transaction = None
    if self.payment_intent is None:  # Stripe names the intent of a charge's refund
        self.payment_intent = Charge._api_retrieve(self.charge).payment_intent


def _card_number(pm_id: str | None) -> str | None:
    if not pm_id:
        return None
    try:
        return getattr(PaymentMethod._api_retrieve(pm_id), "_card_number", None)
    except UserError:
        return None


def _fail_refund(refund_id: str, failure_reason: str = REFUND_FAILS_REASON) -> Refund:
    """A refund fails as Stripe's do after the fact: ``failed`` with a ``failure_reason``, the
    money back on the merchant's balance (a ``refund_failure`` balance transaction), the charge's
    ``amount_refunded`` lowered (``refunded`` false again), then ``charge.refund.updated``,
    ``refund.updated`` and ``refund.failed`` (each endpoint gets those it is set up for)."""
    refund = Refund._api_retrieve(refund_id)
    if refund.status in REFUND_RETURNED:
        raise _error(400, f"This refund is already {refund.status}.", code="refund_unexpected_state")
    previous = {"status": refund.status, "failure_reason": None}
    txn = BalanceTransaction(amount=refund.amount, currency=refund.currency, description="REFUND FAILURE",
                             exchange_rate=1.0, reporting_category="refund", source=refund.id, type="refund")
    txn.type = txn.reporting_category = "refund_failure"  # localstripe knows only charge and refund
    refund.status = "failed"
    refund.failure_reason = failure_reason
    refund.failure_balance_transaction = txn.id
    _emit("charge.refund.updated", refund, previous)
    _emit("refund.updated", refund, previous)
    _emit("refund.failed", refund)
    return refund


_next_refunds: dict[str, list[tuple[str, str | None]]] = {}  # charge id -> statuses its next refunds get


def _fail_refund_later(refund_id: str) -> None:
    with contextlib.suppress(UserError):  # failed meanwhile through the test control
        _fail_refund(refund_id)


def _blocking_dispute(charge) -> Dispute | None:
    """A chargeback not won: Stripe refunds no such charge. An inquiry (``warning_*``) withdrew no
    funds, and the charge can still be refunded (Stripe's disputes guide: refunding resolves it)."""
    for key, obj in store.items():
        if (key.startswith("dispute:") and obj.charge == charge.id and obj.status != "won"
                and not str(obj.status).startswith("warning_")):
            return obj
    return None


def _refund_api_create(cls, charge=None, payment_intent=None, amount=None, metadata=None, reason=None, **kwargs):
    _reject_unknown(kwargs)
    if (charge is None) == (payment_intent is None):
        raise _error(400, "You must pass exactly one of charge or payment_intent.",
                     param="payment_intent" if charge is None else "charge")
    if payment_intent is not None:
        pi = PaymentIntent._api_retrieve(payment_intent)
        ch = pi.latest_charge
        if ch is None or ch.status != "succeeded" or not ch.captured:
            raise _error(400, f"This PaymentIntent ({pi.id}) does not have a successful charge to refund.",
                         code="payment_intent_unexpected_state", param="payment_intent", payment_intent=pi._export())
    else:
        ch = Charge._api_retrieve(charge)
        if ch.status != "succeeded" or not ch.captured:
            raise _error(400, f"Charge {ch.id} has not been captured or has failed: there is nothing to refund.",
                         param="charge")
    if reason is not None and reason not in REFUND_REASONS:
        raise _error(400, "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer",
                     param="reason")
    if _blocking_dispute(ch) is not None:
        raise _error(400, f"Charge {ch.id} has been charged back; cannot issue a refund.", code="charge_disputed")
    remaining = ch.amount - ch.amount_refunded
    if remaining <= 0:
        raise _error(400, f"Charge {ch.id} has already been refunded.", code="charge_already_refunded")
    if amount is not None:
        amount = _int_param(amount, "amount", minimum=1)
        if amount > remaining:
            raise _error(400, f"Refund amount ({_money(amount, ch.currency)}) is greater than unrefunded amount "
                              f"on charge ({_money(remaining, ch.currency)})", code="amount_too_large", param="amount")
    refund = Refund(charge=ch.id, amount=amount or remaining, metadata=metadata)
    refund.reason = reason
    queued = _next_refunds.get(ch.id)
    if queued:  # a test control: Stripe answers this refund failed or canceled
        refund.status, refund.failure_reason = queued.pop(0)
        if not queued:
            del _next_refunds[ch.id]
        _emit("refund.created", refund)
        return refund
    _emit("refund.created", refund)
    _emit("charge.refunded", ch)
    if _card_number(ch.payment_method) == REFUND_FAILS_CARD:  # starts succeeded, fails shortly after
        _later(ASYNC_DELAY, _fail_refund_later, refund.id)
    return refund


# ---- disputes ------------------------------------------------------------------------

def _dispute_reason(pm_id: str | None) -> str | None:
    if not pm_id:
        return None
    try:
        pm = PaymentMethod._api_retrieve(pm_id)
    except UserError:
        return None
    return DISPUTE_CARDS.get(getattr(pm, "_card_number", None))


class Dispute(StripeObject):
    """A chargeback, as Stripe opens one in test mode for its dispute test cards."""

    object = "dispute"
    _id_prefix = "du_"

    def __init__(self, charge: Charge, reason: str):
        super().__init__()
        self.amount = charge.amount
        self.balance_transactions = []
        self.charge = charge.id
        self.currency = charge.currency
        self.evidence = {name: None for name in EVIDENCE_FIELDS}
        self.evidence_details = {"due_by": self.created + 7 * 86400, "has_evidence": False, "past_due": False,
                                 "submission_count": 0}
        self.is_charge_refundable = False
        self.metadata = {}
        self.payment_intent = charge.payment_intent
        card = (_charge_pm_details(charge) or {}).get("card") or {}
        self.payment_method_details = {"type": "card", "card": {
            "brand": card.get("brand"), "case_type": "chargeback",
            "network_reason_code": {"fraudulent": "10.4", "product_not_received": "13.1"}.get(reason)}}
        self.reason = reason
        self.status = "needs_response"

    @classmethod
    def _api_create(cls, **data):
        raise _error(405, "Disputes are opened by the card network: confirm a payment with a dispute test card.")

    @classmethod
    def _api_delete(cls, id):
        raise _error(405, "Disputes cannot be deleted.")

    @classmethod
    def _api_list_all(cls, url, charge=None, payment_intent=None, created=None, limit=None, starting_after=None,
                      ending_before=None, **kwargs):
        _reject_unknown(kwargs)
        return _list(cls, url, limit=limit, starting_after=starting_after, ending_before=ending_before,
                     created=created, filters=[_match("charge", charge), _match("payment_intent", payment_intent)])

    @classmethod
    def _api_update(cls, id, evidence=None, metadata=None, submit=None, **kwargs):
        _reject_unknown(kwargs)
        obj = cls._api_retrieve(id)
        submit = try_convert_to_bool(submit) if submit is not None else True
        if evidence is not None:
            if type(evidence) is not dict:
                raise _error(400, "Invalid object", param="evidence")
            _reject_unknown({k: v for k, v in evidence.items() if k not in EVIDENCE_FIELDS}, "evidence.")
            if obj.status not in ("needs_response", "warning_needs_response"):
                raise _error(400, f"This dispute has a status of {obj.status}: its evidence can no longer be "
                                  "updated.", param="evidence")
        previous: dict[str, Any] = {}
        if metadata is not None:
            if type(metadata) is not dict:
                raise _error(400, "Invalid object", param="metadata")
            previous["metadata"] = dict(obj.metadata)
            for key, value in metadata.items():
                if value == "":
                    obj.metadata.pop(key, None)
                else:
                    obj.metadata[key] = value
        decision = None
        if evidence is not None:
            previous["evidence"] = dict(obj.evidence)
            previous["evidence_details"] = dict(obj.evidence_details)
            obj.evidence.update({k: (v or None) for k, v in evidence.items()})
            obj.evidence_details["has_evidence"] = any(obj.evidence.values())
            if submit:
                previous["status"] = obj.status
                obj.evidence_details["submission_count"] += 1
                obj.status = "under_review" if obj.status == "needs_response" else "warning_under_review"
                # docs.stripe.com/testing#disputes: this text in uncategorized_text decides the outcome.
                decision = {"winning_evidence": "won", "losing_evidence": "lost"}.get(
                    (obj.evidence.get("uncategorized_text") or "").strip())
        _emit("charge.dispute.updated", obj, previous)
        if decision:
            _later(ASYNC_DELAY, _close_dispute, obj.id, decision)
        return obj

    @classmethod
    def _api_close(cls, id, **kwargs):
        _reject_unknown(kwargs)
        obj = cls._api_retrieve(id)
        if obj.status not in ("needs_response", "warning_needs_response"):
            raise _error(400, f"This dispute cannot be closed because it has a status of {obj.status}.")
        _close_dispute(obj.id, "lost")
        return obj


def _open_dispute(charge_id: str, reason: str) -> None:
    charge = Charge._api_retrieve(charge_id)
    dispute = Dispute(charge, reason)
    charge.disputed = True
    _emit("charge.dispute.created", dispute)
    _emit("charge.dispute.funds_withdrawn", dispute)


def _close_dispute(dispute_id: str, outcome: str) -> None:
    dispute = Dispute._api_retrieve(dispute_id)
    if dispute.status in ("won", "lost", "warning_closed"):
        return
    previous = {"status": dispute.status}
    dispute.status = outcome
    _emit("charge.dispute.closed", dispute, previous)
    if outcome == "won":
        _emit("charge.dispute.funds_reinstated", dispute)


# ---- ephemeral keys ------------------------------------------------------------------

class EphemeralKey(StripeObject):
    """A short-lived key for Stripe's mobile SDKs (PaymentSheet with a saved-card customer)."""

    object = "ephemeral_key"
    _id_prefix = "ephkey_"

    def __init__(self, customer: str, stripe_version: str):
        super().__init__()
        self.associated_objects = [{"id": customer, "type": "customer"}]
        self.expires = self.created + EPHEMERAL_KEY_TTL_S
        self.secret = "ek_test_" + random_id(48)
        self._stripe_version = stripe_version

    @classmethod
    def _api_create(cls, stripe_version=None, customer=None, **kwargs):
        if not stripe_version:
            raise _error(400, "Stripe-Version header is required to create an ephemeral key: pass the API "
                              "version of the mobile SDK that will use it (e.g. Stripe-Version: 2024-06-20).")
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?", stripe_version):
            raise _error(400, f"Invalid Stripe API version: {stripe_version}")
        for key in ("issuing_card", "nonce", "verification_session"):
            if key in kwargs:
                raise _error(400, f"This stand-in supports ephemeral keys for customers only ({key}).", param=key)
        _reject_unknown(kwargs)
        if not customer:
            raise _error(400, "You must pass exactly one of customer, issuing_card, nonce or verification_session.",
                         param="customer")
        Customer._api_retrieve(customer)
        return cls(customer, stripe_version)

    @classmethod
    def _api_update(cls, id, **data):
        raise _error(405, "Ephemeral keys cannot be updated.")

    @classmethod
    def _api_list_all(cls, url, **kwargs):
        raise _error(405, "Ephemeral keys cannot be listed.")

    @classmethod
    def _api_delete(cls, id, **kwargs):
        _reject_unknown(kwargs)
        key = cls._api_retrieve(id)
        del store[cls.object + ":" + id]
        key.expires = int(time.time())
        return key


async def _ephemeral_key_create(request: web.Request) -> web.Response:
    data = await server.get_post_data(request) or {}
    expand = data.pop("expand", None)
    key = EphemeralKey._api_create(stripe_version=request.headers.get("Stripe-Version"), **data)
    return server.json_response(_expand(key._export(), expand))


# ---- test controls (not Stripe's API) ------------------------------------------------

def _ctl_processing(id, cancelable=None, **kwargs):
    """Puts an intent with a payment method into `processing`, as a bank debit waits for the bank."""
    _reject_unknown(kwargs)
    pi = PaymentIntent._api_retrieve(id)
    if pi.status != "requires_confirmation":
        raise _error(400, f"Only an intent with a payment method attached (status requires_confirmation) can be "
                          f"put into processing; this one is {pi.status}.", code="payment_intent_unexpected_state",
                     payment_intent=pi._export())
    charge = Charge(amount=pi.amount, currency=pi.currency, customer=pi.customer, source=pi.payment_method,
                    capture=True)
    charge.payment_intent = pi.id
    charge.metadata = dict(pi.metadata or {})
    charge.description = getattr(pi, "description", None)
    charge.status = "pending"
    pi.latest_charge = charge
    pi._last_payment_error = None
    pi._pm_after_failure = False
    pi._processing_cancelable = try_convert_to_bool(cancelable) is True
    _emit("charge.pending", charge)
    _emit("payment_intent.processing", pi)
    return pi


def _ctl_fail_refund(id, failure_reason=None, **kwargs):
    """Fails a refund now (any card), as the refund-failure test card does on its own."""
    _reject_unknown(kwargs)
    if failure_reason is not None and failure_reason not in REFUND_FAILURE_REASONS:
        raise _error(400, f"failure_reason must be one of {', '.join(REFUND_FAILURE_REASONS)}", param="failure_reason")
    return _fail_refund(id, failure_reason or REFUND_FAILS_REASON)


def _ctl_next_refund(id, status=None, failure_reason=None, **kwargs):
    """The charge's next refund is created with ``status`` (failed or canceled): not counted in
    its ``amount_refunded``, no ``charge.refunded``."""
    _reject_unknown(kwargs)
    charge = Charge._api_retrieve(id)
    if status not in REFUND_RETURNED:
        raise _error(400, "status must be failed or canceled", param="status")
    if failure_reason is not None and failure_reason not in REFUND_FAILURE_REASONS:
        raise _error(400, f"failure_reason must be one of {', '.join(REFUND_FAILURE_REASONS)}", param="failure_reason")
    reason = (failure_reason or "declined") if status == "failed" else None
    _next_refunds.setdefault(charge.id, []).append((status, reason))
    return _Json({"charge": charge.id, "next_refunds": [s for s, _ in _next_refunds[charge.id]]})


def _ctl_settle(id, outcome=None, failure_code=None, failure_message=None, decline_code=None, **kwargs):
    """Settles a `processing` intent: succeeded, or failed (back to requires_payment_method)."""
    _reject_unknown(kwargs)
    pi = PaymentIntent._api_retrieve(id)
    if pi.status != "processing":
        raise _error(400, f"This intent is {pi.status}, not processing.", code="payment_intent_unexpected_state",
                     payment_intent=pi._export())
    charge = pi.latest_charge
    if outcome == "succeeded":
        txn = BalanceTransaction(amount=charge.amount, currency=charge.currency, description=charge.description,
                                 exchange_rate=1.0, reporting_category="charge", source=charge.id, type="charge")
        charge.balance_transaction = txn.id
        charge.status = "succeeded"
        pi._on_success()
    elif outcome == "failed":
        card = (_pm_export(pi.payment_method) or {}).get("type") == "card"
        charge.status = "failed"
        charge.failure_code = failure_code or ("card_declined" if card else "insufficient_funds")
        charge.failure_message = failure_message or (
            "Your card was declined." if card else "The customer's account has insufficient funds to cover this payment.")
        charge._decline_code = decline_code or ("generic_decline" if card else None)
        charge.outcome = {"network_status": "declined_by_network", "reason": charge._decline_code or charge.failure_code,
                          "risk_level": "normal", "seller_message": charge.failure_message, "type": "issuer_declined"}
        pi._report_async_failure()
    else:
        raise _error(400, "outcome must be succeeded or failed", param="outcome")
    return pi


class _Json(StripeObject):
    """A plain JSON answer for the controls (never stored)."""

    def __init__(self, body):
        self._body = body

    def _export(self, expand=None):
        return self._body


def _drop_state() -> dict:
    return {"object": "list", "data": [dict(rule) for rule in _drop_rules if rule["remaining"] > 0]}


def _ctl_drop(count=None, type=None, **kwargs):
    """Silently skips the next `count` events (of `type`, if given): a webhook lost for good.
    ``count=0`` forgets the pending rules (of that type, or all): webhooks flow again."""
    _reject_unknown(kwargs)
    count = _int_param(count, "count", minimum=0)
    if type is not None and (not isinstance(type, str) or not type):
        raise _error(400, "type must be an event type", param="type")
    if count == 0:
        _drop_rules[:] = [r for r in _drop_rules if type is not None and r["type"] != type]
    else:
        _drop_rules.append({"remaining": count, "type": type})
    return _Json(_drop_state())


def _ctl_drop_get(**kwargs):
    return _Json(_drop_state())


def _ctl_drop_clear(**kwargs):
    _drop_rules.clear()
    return _Json(_drop_state())


def _ctl_attempts(event=None, type=None, **kwargs):
    rows = [a for a in _attempts if (event is None or a["event"] == event) and (type is None or a["type"] == type)]
    return _Json({"object": "list", "data": rows})


def _ctl_unregister(id, **kwargs):
    webhooks._webhooks.pop(id, None)
    return _Json({"id": id, "deleted": True})


# ---- install and serve ---------------------------------------------------------------

_installed = False


def install() -> None:
    """Applies every patch to localstripe's classes (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True

    resources.Store.dump_to_disk = _dump_to_disk
    resources.Store.try_load_from_disk = _load_from_disk
    # localstripe pickles the whole store on every write; saving after each request
    # (server.save_store_middleware) is enough, and keeps a long suite run linear.
    resources.Store.__setitem__ = dict.__setitem__
    resources.Store.__delitem__ = dict.__delitem__
    resources.schedule_webhook = schedule_webhook  # resources imported it by name
    webhooks.schedule_webhook = schedule_webhook
    Event.__init__ = _event_init
    Event._api_list_all = classmethod(_event_list)

    StripeObject._api_retrieve = classmethod(_retrieve)
    StripeObject._api_delete = classmethod(_delete)

    PaymentMethod._try_get_canonical_test_article = classmethod(_canonical)

    Charge.__init__ = _charge_init
    Charge._set_auth_failure = _charge_set_auth_failure
    Charge._raise_failure = _charge_raise_failure
    Charge.amount_captured = property(_charge_amount_captured)
    Charge.amount_refunded = property(_charge_amount_refunded)
    Charge.payment_method_details = property(_charge_pm_details)
    Charge._api_list_all = classmethod(_charge_list)

    PaymentIntent.__init__ = _pi_init
    PaymentIntent.status = property(_pi_status)
    PaymentIntent.last_payment_error = property(_pi_last_payment_error)
    PaymentIntent.amount_received = property(_pi_amount_received)
    PaymentIntent.amount_capturable = property(_pi_amount_capturable)
    PaymentIntent._export = _pi_export
    PaymentIntent._confirm = _pi_confirm
    PaymentIntent._create_charge = _pi_create_charge
    PaymentIntent._on_success = _pi_on_success
    PaymentIntent._report_failure = _pi_report_failure
    PaymentIntent._report_async_failure = _pi_report_async_failure
    PaymentIntent._api_update = classmethod(_pi_api_update)
    PaymentIntent._api_confirm = classmethod(_pi_api_confirm)
    PaymentIntent._api_cancel = classmethod(_pi_api_cancel)
    PaymentIntent._api_list_all = classmethod(_pi_list)

    Refund.__init__ = _refund_init
    Refund._api_create = classmethod(_refund_api_create)
    Refund._api_list_all = classmethod(_refund_list)


def _dump_to_disk(self) -> None:
    if not STATE_PATH:
        return
    tmp = STATE_PATH + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(dict(self), f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, STATE_PATH)


def _load_from_disk(self) -> None:
    if not STATE_PATH:
        return
    try:
        with open(STATE_PATH, "rb") as f:
            old = pickle.load(f)
    except FileNotFoundError:
        return
    dict.clear(self)
    dict.update(self, old)


def build_app() -> web.Application:
    """localstripe's routes behind ours: a route of ours replaces localstripe's for the same path."""
    install()
    app = web.Application(middlewares=[server.error_middleware, server.auth_middleware,
                                       server.save_store_middleware])
    app.on_response_prepare.append(server.add_cors_headers)
    ours = [
        ("POST", "/v1/payment_intents/{id}/confirm", server.api_extra(PaymentIntent._api_confirm, None)),
        ("POST", "/v1/payment_intents/{id}/cancel", server.api_extra(PaymentIntent._api_cancel, None)),
        ("POST", "/v1/ephemeral_keys", _ephemeral_key_create),
        ("DELETE", "/v1/ephemeral_keys/{id}", server.api_extra(EphemeralKey._api_delete, None)),
        ("GET", "/v1/disputes", server.api_list_all(Dispute, "/v1/disputes")),
        ("GET", "/v1/disputes/{id}", server.api_retrieve(Dispute, None)),
        ("POST", "/v1/disputes/{id}", server.api_update(Dispute, None)),
        ("POST", "/v1/disputes/{id}/close", server.api_extra(Dispute._api_close, None)),
        ("POST", "/_config/payment_intents/{id}/processing", server.api_extra(_ctl_processing, None)),
        ("POST", "/_config/payment_intents/{id}/settle", server.api_extra(_ctl_settle, None)),
        ("POST", "/_config/refunds/{id}/fail", server.api_extra(_ctl_fail_refund, None)),
        ("POST", "/_config/charges/{id}/next_refund", server.api_extra(_ctl_next_refund, None)),
        ("POST", "/_config/webhooks/drop", server.api_extra(_ctl_drop, None)),
        ("GET", "/_config/webhooks/drop", server.api_extra(_ctl_drop_get, None)),
        ("DELETE", "/_config/webhooks/drop", server.api_extra(_ctl_drop_clear, None)),
        ("GET", "/_config/webhooks/attempts", server.api_extra(_ctl_attempts, None)),
        ("DELETE", "/_config/webhooks/{id}", server.api_extra(_ctl_unregister, None)),
    ]
    taken = set()
    for method, path, handler in ours:
        app.router.add_route(method, path, handler)
        taken.add((method, path))
    for route in server.app.router.routes():
        key = (route.method, route.resource.canonical)
        if key not in taken:
            app.router.add_route(route.method, route.resource.canonical, route.handler)
            taken.add(key)
    return app


def main(argv: list[str] | None = None) -> None:
    global STATE_PATH
    parser = argparse.ArgumentParser(prog="python -m devtools.stripe_standin", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--from-scratch", action="store_true", help="start empty (do not load the saved store)")
    args = parser.parse_args(argv)

    STATE_PATH = os.environ.get("FLOWSUITE_STRIPE_STATE") or (
        None if args.from_scratch else f"/tmp/stripe-standin-{args.port}.pickle")
    app = build_app()
    if not args.from_scratch:
        store.try_load_from_disk()

    try:  # both IPv4 and IPv6, as localstripe listens
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::", args.port))
    except OSError:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", args.port))

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    access = logging.getLogger("aiohttp.access")
    access.setLevel(logging.INFO)
    log.info("stripe stand-in (localstripe + devtools/stripe_standin.py) on port %d; events api_version %s; "
             "webhook retries after %s s", args.port, API_VERSION, RETRY_SCHEDULE)
    web.run_app(app, sock=sock, access_log=access, print=None)


if __name__ == "__main__":
    main()
