"""Benchmarks on the running emulators (started by `make bench` through the suite wrapper).

2. Callable overhead: orders_place against ops_ping (a trivial callable) on the
   same emulator, 16 concurrent clients, p50 and p99; the ratio of p50s.
3. Saga latency: from the Stripe webhook accepted (200) to the order `paid` and
   to the receipt in the inbox, p50 and p95.
5. Flash sale (bench/flash_sale.py) and cold request with memory (bench/cold_request.py).
4. Cost: Firestore reads and writes of one checkout (place, intent, webhook, paid,
   receipt), as the client layer counts and logs them, for a user's first checkout
   and a returning customer's; trigger invocations per event against subscribers.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

from testkit import harness  # noqa: E402
from testkit.payments import event, post_webhook, sign  # noqa: E402
from testkit.shop import start_payment  # noqa: E402

CLIENTS = 16


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


DROPPED: list[str] = []  # calls whose connection the emulator's proxy dropped (ECONNRESET under load)


def timed_concurrently(sample, per_client: int) -> list[float]:
    """Milliseconds of ``sample(i)``, ``per_client`` times in each of 16 concurrent clients. A
    call whose connection dropped is counted in ``DROPPED`` (and its row says how many), not
    timed: it measures the emulator's proxy, which production does not have."""
    def client(i: int) -> list[float]:
        out = []
        for _ in range(per_client):
            start = time.perf_counter()
            try:
                sample(i)
            except harness.TransportError as exc:
                DROPPED.append(repr(exc)[:80])
                continue
            out.append((time.perf_counter() - start) * 1000)
        return out

    with cf.ThreadPoolExecutor(CLIENTS) as pool:
        return [ms for chunk in pool.map(client, range(CLIENTS)) for ms in chunk]


def timed_calls(name: str, make_data, users, per_client: int) -> list[float]:
    return timed_concurrently(lambda i: harness.call(name, make_data(i), user=users[i], resets=0), per_client)


def callable_overhead(per_client: int = 12) -> list[dict]:
    db = harness.admin_db()
    users = [harness.sign_up() for _ in range(CLIENTS)]
    # One product per client: this measures the callable's overhead, not contention on
    # one hot document (which the emulator resolves only by lock timeouts).
    products = [f"bench-{i}-{uuid.uuid4().hex[:6]}" for i in range(CLIENTS)]
    for product_id in products:
        db.document(f"products/{product_id}").set({"name": "Bench", "price": 100, "currency": "usd", "stock": 10**6,
                                                    "active": True, "description": "", "image_url": ""})

    def order(i: int) -> dict:
        return {"items": [{"product_id": products[i], "quantity": 1}], "idempotency_key": uuid.uuid4().hex}

    # The orders stay unpaid, and a user may hold only ORDER_MAX_UNPAID_ORDERS of them at
    # once (no stock hoarding): each client takes turns among enough buyers of its own.
    from flowsuite.core import settings
    from flowsuite.orders import config as orders_config

    per_buyer = settings.int_value(orders_config.MAX_UNPAID_ORDERS)
    needed = -(-(per_client + 2) // per_buyer)
    buyers = [itertools.cycle([users[i], *(harness.sign_up() for _ in range(needed - 1))]) for i in range(CLIENTS)]

    def place_order(i: int) -> dict:
        return harness.call("orders_place", order(i), user=next(buyers[i]), resets=0)

    # the sign-ups' triggers done, then both warmed: every worker the emulator starts is a cold start
    if pending := harness.settle(db):
        print(f"callable overhead: {len(pending)} deliveries still pending after 300 s", flush=True)
    timed_calls("ops_ping", lambda i: {}, users, 2)
    timed_concurrently(place_order, 2)
    DROPPED.clear()
    floor = timed_calls("ops_ping", lambda i: {}, users, per_client)
    floor_dropped = len(DROPPED)
    place = timed_concurrently(place_order, per_client)
    place_dropped = len(DROPPED) - floor_dropped
    alone = emulator_transactions(products, per_client)
    return [
        {"benchmark": "callable: ops_ping (floor), 16 clients", "p50": f"{pct(floor, 50):.0f} ms",
         "p99/p95": f"p99 {pct(floor, 99):.0f} ms; dropped connections {floor_dropped}", "ratio": "1.00x",
         "target": "-"},
        {"benchmark": "callable: orders_place, 16 clients", "p50": f"{pct(place, 50):.0f} ms",
         "p99/p95": f"p99 {pct(place, 99):.0f} ms; dropped connections {place_dropped}",
         "ratio": f"{pct(place, 50) / pct(floor, 50):.2f}x p50", "target": "p50 <= 1.5x"},
        {"benchmark": "the Firestore emulator alone: orders_place's transaction, 16 clients",
         "p50": f"{pct(alone, 50):.0f} ms", "p99/p95": f"p99 {pct(alone, 99):.0f} ms",
         "ratio": f"{pct(alone, 50) / pct(floor, 50):.2f}x p50", "target": "-"},
    ]


def emulator_transactions(products: list[str], per_client: int) -> list[float]:
    """What orders_place asks of Firestore (one transaction: read the product and the
    order id, write stock, order and event), sent straight to the emulator from 16
    threads, with no function around it: the part of orders_place that is the
    emulator's. Written to bench_* collections no trigger listens to."""
    from google.cloud import firestore

    db = harness.admin_db()

    def sample(i: int) -> None:
        product = db.document(f"products/{products[i]}")
        order = db.collection("bench_orders").document(uuid.uuid4().hex)
        event = db.collection("bench_events").document(uuid.uuid4().hex)

        @firestore.transactional
        def place(txn):
            snap = product.get(transaction=txn)
            order.get(transaction=txn)
            txn.update(product, {"stock": snap.get("stock") - 1})
            txn.create(order, {"items": [{"product_id": products[i], "quantity": 1}], "total": 100})
            txn.create(event, {"type": "bench.placed", "order_id": order.id})

        place(db.transaction())

    return timed_concurrently(sample, per_client)


def saga_latency(rounds: int = 15) -> list[dict]:
    db = harness.admin_db()
    user = harness.sign_up()
    product_id = f"saga-{uuid.uuid4().hex[:6]}"
    db.document(f"products/{product_id}").set({"name": "Saga", "price": 500, "currency": "usd", "stock": 10**6,
                                                "active": True, "description": "", "image_url": ""})
    paid, inboxed = [], []
    for i in range(rounds + 2):
        out, _, pi = start_payment(db, user, product_id)
        payload = event("payment_intent.succeeded", {"id": pi, "object": "payment_intent"})
        r = post_webhook(payload, sign(payload))
        accepted = time.perf_counter()
        assert r.status_code == 200, r.text
        order_ref = db.document(f"orders/{out['order_id']}")
        t_paid = t_inbox = None
        deadline = accepted + 30
        while time.perf_counter() < deadline and (t_paid is None or t_inbox is None):
            if t_paid is None and order_ref.get().get("status") == "paid":
                t_paid = time.perf_counter()
            if t_inbox is None and any(n.get("data", {}).get("order_id") == out["order_id"]
                                       for n in (s.to_dict() for s in db.collection(f"users/{user.uid}/notifications").stream())):
                t_inbox = time.perf_counter()
            time.sleep(0.01)
        if i >= 2:  # the first two warm the workers
            paid.append((t_paid - accepted) * 1000)
            inboxed.append((t_inbox - accepted) * 1000)
    return [
        {"benchmark": "saga: webhook accepted -> order paid", "p50": f"{statistics.median(paid):.0f} ms",
         "p99/p95": f"p95 {pct(paid, 95):.0f} ms", "ratio": "-", "target": "p50 <= 1000 ms"},
        {"benchmark": "saga: webhook accepted -> receipt in inbox", "p50": f"{statistics.median(inboxed):.0f} ms",
         "p99/p95": f"p95 {pct(inboxed, 95):.0f} ms", "ratio": "-", "target": "p50 <= 1000 ms"},
    ]


def checkout_cost(rounds: int = 3) -> list[dict]:
    import main  # noqa: F401 - every domain's subscribers, as discovery sees them

    from testkit.shop import checkout_cost as measure
    from testkit.shop import product

    db = harness.admin_db()
    first, again = [], []
    for _ in range(rounds):
        user = harness.sign_up()
        first.append(measure(db, user, product(db, stock=100)))
        again.append(measure(db, user, product(db, stock=100)))

    def row(name: str, runs: list[dict]) -> dict:
        reads = statistics.median(r["reads"] for r in runs)
        writes = statistics.median(r["writes"] for r in runs)
        parts = ", ".join(f"{f.split('_', 1)[1]} {c['reads']}r/{c['writes']}w" for f, c in runs[0]["per_function"].items())
        return {"benchmark": name, "p50": f"{reads:.0f} reads, {writes:.0f} writes", "p99/p95": parts,
                "ratio": "-", "target": "<= 10 reads, <= 15 writes"}

    events = [e for run in first + again for e in run["events"].values()]
    exact = sum(1 for e in events if e["invocations"] == e["subscribers"])
    return [
        row("cost: a user's first checkout", first),
        row("cost: a returning customer's checkout", again),
        {"benchmark": "cost: trigger invocations per event", "p50": f"{exact}/{len(events)} events = subscribers",
         "p99/p95": ", ".join(sorted({f"{e['type']} {e['subscribers']}" for e in events})),
         "ratio": "-", "target": "= subscribers"},
    ]


def throughput(count: int = 1000) -> list[dict]:
    """1,000 events through one subscriber (ops_on_probe): events/s, lost, processed twice."""
    from flowsuite.core import events
    from flowsuite.ops.events import ProbeSent

    db = harness.admin_db()
    ids = [f"tp-{i}-{uuid.uuid4().hex[:6]}" for i in range(count)]
    start = time.perf_counter()
    for chunk in range(0, count, 250):
        batch = db.batch()
        for probe_id in ids[chunk:chunk + 250]:
            batch.set(db.document(f"ops_probes/{probe_id}"), {"probe_id": probe_id, "received": 0})
            events.publish(batch, ProbeSent(probe_id=probe_id), subject=f"ops_probes/{probe_id}", db=db)
        batch.commit()
    deadline = start + 600
    processed = 0
    while time.perf_counter() < deadline:
        processed = db.collection("deliveries").where("subscriber", "==", "ops_on_probe").where(
            "status", "==", "processed").count().get()[0][0].value
        if processed >= count:
            break
        time.sleep(0.5)
    elapsed = time.perf_counter() - start
    received = [s.get("received") for s in db.collection("ops_probes").stream() if s.id.startswith("tp-")]
    lost = sum(1 for r in received if not r)
    doubled = sum(1 for r in received if r and r > 1)
    return [{"benchmark": f"throughput: {count} events through one subscriber", "p50": f"{processed / elapsed:.1f} events/s",
             "p99/p95": f"lost {lost}, doubled {doubled}", "ratio": "-", "target": "0 lost, 0 doubled"}]


def main() -> None:
    import json
    import traceback

    from bench import cold_request, flash_sale

    parts = (callable_overhead, saga_latency, checkout_cost, throughput, flash_sale.run, cold_request.run)
    only = set(sys.argv[1:])  # e.g. `python -m bench.emulator flash_sale cold_request`: only those modules or functions
    rows = []
    for part in [p for p in parts if not only or {p.__name__, p.__module__.rsplit(".", 1)[-1]} & only]:
        try:
            rows += part()
        except Exception as exc:  # noqa: BLE001 - one failed benchmark is a row saying so, not a lost table
            traceback.print_exc()
            rows.append({"benchmark": f"{part.__module__}.{part.__name__}", "p50": f"failed: {exc!r}"[:300],
                         "p99/p95": "-", "ratio": "-", "target": "-"})
        print("BENCH-ROWS " + json.dumps(rows), flush=True)  # the last line printed is the table so far


if __name__ == "__main__":
    main()
