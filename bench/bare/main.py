"""The cold-request reference: minimal functions written with the bare SDK that do the
same Firestore work as the suite's (one transaction each), with no suite code.

Served by `bench.cold_request` from a fresh Functions Framework process, exactly as
the suite's functions are. Never deployed.
"""

import uuid

from firebase_admin import initialize_app
from firebase_functions import firestore_fn, https_fn

initialize_app()  # as Firebase's samples do: the callable checks ID tokens with the default app

_db = None


def db():
    global _db
    if _db is None:
        import os

        from google.cloud import firestore

        _db = firestore.Client(project=os.environ.get("GCLOUD_PROJECT", "demo-flowsuite"))
    return _db


@https_fn.on_call()
def bare_place(req: https_fn.CallableRequest) -> dict:
    """orders_place's work: read the product, the user's hold, their profile (is the account being
    deleted?) and the order; write stock, order, hold, event."""
    from google.cloud import firestore

    client = db()
    uid = req.auth.uid if req.auth else "anon"
    product = client.document(f"products/{req.data['product_id']}")
    hold = client.document(f"bench_holds/{uid}")
    profile = client.document(f"users/{uid}")
    order = client.document(f"bench_orders/{uuid.uuid4().hex}")
    event = client.document(f"bench_events/{uuid.uuid4().hex}")

    @firestore.transactional
    def place(txn):
        order.get(transaction=txn)
        snaps = {s.reference.path: s for s in txn.get_all([product, hold, profile])}
        left = snaps[product.path].get("stock") - 1
        txn.update(product, {"stock": left})
        txn.create(order, {"product_id": product.id, "quantity": 1, "status": "pending_payment"})
        txn.set(hold, {"orders": 1, "units": 1})
        txn.create(event, {"type": "bench.placed", "order_id": order.id})

    place(client.transaction())
    return {"order_id": order.id, "status": "pending_payment"}


@https_fn.on_request()
def bare_webhook(req: https_fn.Request) -> https_fn.Response:
    """The webhook's work: read the payment, write it and an event in one transaction."""
    import os

    import stripe
    from google.cloud import firestore

    body = stripe.Webhook.construct_event(req.get_data(), req.headers.get("Stripe-Signature", ""),
                                          os.environ["STRIPE_WEBHOOK_SECRET"])  # every webhook must verify
    client = db()
    payment = client.document(f"bench_payments/{body['data']['object']['id']}")
    event = client.document(f"bench_events/{uuid.uuid4().hex}")

    @firestore.transactional
    def apply(txn):
        payment.get(transaction=txn)
        txn.set(payment, {"status": "succeeded"}, merge=True)
        txn.create(event, {"type": "bench.payment", "payment": payment.id})

    apply(client.transaction())
    return https_fn.Response("ok")


@firestore_fn.on_document_created(document="bench_topics/probe/events/{eid}")
def bare_subscriber(event: firestore_fn.Event[firestore_fn.DocumentSnapshot]) -> None:
    """A subscriber's work: read its delivery record, apply the effect and mark it processed."""
    from google.cloud import firestore

    client = db()
    delivery = client.document(f"bench_deliveries/{event.params['eid']}")
    probe = client.document(f"bench_probes/{event.params['eid']}")

    @firestore.transactional
    def run(txn):
        delivery.get(transaction=txn)
        txn.set(probe, {"received": firestore.Increment(1)}, merge=True)
        txn.set(delivery, {"status": "processed"})

    run(client.transaction())
