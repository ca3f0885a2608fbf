"""Cold request and memory (issue 19), on the running emulators (inside `make bench`'s suite).

For each target, a fresh Functions Framework process is started as the Functions
emulator starts one (``functions-framework`` in functions/ with FUNCTION_TARGET and
FUNCTION_SIGNATURE_TYPE set), and the bench times:

- the import share: from spawning the process to its port accepting connections
  (interpreter, the Functions Framework and the source's import: it imports the
  source before it binds);
- the first-request share: the first request's round trip (clients built on first
  use, the first Firestore transaction, first-use imports);

against a minimal bare-SDK function doing the same Firestore work (bench/bare/main.py).
Every request is built before it is timed, the first one before the process starts.
Then it sends 99 more requests and reads the instance's memory with psutil: the
proportional set size (PSS) of the process and its children summed (the Functions
Framework's server imports the source, then forks the worker that serves; pages they
share count once, as in the instance's memory limit), and the largest RSS among them.
Targets: orders_place (a callable), payments_stripe_webhook (HTTP: Stripe's
payment_intent.succeeded for a payment of ours waiting for its card, so the suite records
it; each one a checkout made through the callables beforehand) and ops_on_probe (an
event subscriber; an ops instance imports ops alone and the other domains only when
redelivery or the sweep first needs them). What a measured instance publishes runs on
the emulators' own triggers; the bench waits for them (``harness.settle``) between instances.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import time
import uuid
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
VENV_BIN = FUNCTIONS / "venv" / "bin"
BARE = Path(__file__).resolve().parent / "bare"
REQUESTS_AFTER = 99  # after the first one, in each pair's first round: then its memory is read


def log_of(target: str) -> Path:
    """Where a measured instance's stderr goes (a pipe nobody reads would fill and stall it)."""
    path = ROOT / ".run" / "logs" / f"bench-{target}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def local_params() -> dict[str, str]:
    """functions/.env (deployed with the functions), then .env.local and .secret.local, which
    the Functions emulator loads for every function (the webhook's signing secret among
    them): the measured instances get the same."""
    values = {}
    for name in (".env", ".env.local", ".secret.local"):
        path = FUNCTIONS / name
        for line in path.read_text().splitlines() if path.exists() else []:
            key, sep, value = line.partition("=")
            if sep and key.strip() and not key.lstrip().startswith("#"):
                values[key.strip()] = value.strip()
    return values


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(source_dir: Path, target: str, signature: str) -> tuple[subprocess.Popen, int, float]:
    """Starts a Functions Framework process: (it, its port, seconds until it listened)."""
    port = free_port()
    env = {**os.environ, **local_params(), "FUNCTION_TARGET": target, "FUNCTION_SIGNATURE_TYPE": signature, "PORT": str(port),
           "FUNCTIONS_EMULATOR": "true", "K_SERVICE": target, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
           "FLOWSUITE_FAULTS": "off"}  # as production: no fault injection (a transaction per delivery under emulators)
    started = time.perf_counter()
    proc = subprocess.Popen([str(VENV_BIN / "functions-framework"), "--target", target, "--signature-type", signature,
                             "--port", str(port), "--source", str(source_dir / "main.py")],
                            cwd=source_dir, env=env, stdout=subprocess.DEVNULL, stderr=open(log_of(target), "wb"))
    deadline = started + 60
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{target} exited: {log_of(target).read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.05):
                return proc, port, time.perf_counter() - started
        except OSError:
            time.sleep(0.005)
    proc.kill()
    raise RuntimeError(f"{target} never listened")


def memory_mib(proc: subprocess.Popen) -> tuple[float, float]:
    """(the instance's processes' PSS summed, the largest RSS among them), in MiB."""
    root = psutil.Process(proc.pid)
    tree = [root, *root.children(recursive=True)]
    return (sum(p.memory_full_info().pss for p in tree) / 2**20, max(p.memory_info().rss for p in tree) / 2**20)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()  # only this process and its children, which it ends
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def subscriber_event(db, doc_path: str) -> tuple[dict, bytes]:
    """A CloudEvent as Eventarc delivers a Firestore document creation (protobuf data)."""
    from google.cloud.firestore_v1 import _helpers
    from google.cloud.firestore_v1.types import Document
    from google.events.cloud.firestore_v1 import DocumentEventData

    snap = db.document(doc_path).get()
    name = f"projects/{db.project}/databases/(default)/documents/{doc_path}"
    value = Document(name=name, fields=_helpers.encode_dict(snap.to_dict()),
                     create_time=snap.create_time, update_time=snap.update_time)
    data = DocumentEventData.serialize(DocumentEventData(value=DocumentEventData.meta.fields["value"].message.deserialize(
        Document.serialize(value))))
    headers = {
        "ce-id": uuid.uuid4().hex, "ce-specversion": "1.0", "ce-source":
            f"//firestore.googleapis.com/projects/{db.project}/databases/(default)",
        "ce-type": "google.cloud.firestore.document.v1.created", "ce-subject": f"documents/{doc_path}",
        "ce-time": "2026-01-01T00:00:00Z", "ce-database": "(default)", "ce-namespace": "(default)",
        "ce-document": doc_path, "ce-location": "us-central1", "ce-project": db.project,
        "Content-Type": "application/protobuf",
    }
    return headers, data


def open_payments(db, count: int) -> list[dict]:
    """``count`` payments of ours waiting for their card, each an order placed and an intent
    created through the callables (as the app does), as the PaymentIntents Stripe's events
    carry (the metadata naming the payment included), read back from the Stripe stand-in."""
    from testkit import harness
    from testkit.payments import stripe_client
    from testkit.shop import start_payment

    product = f"cold-pay-{uuid.uuid4().hex[:8]}"
    db.document(f"products/{product}").set({"name": "Cold", "price": 700, "currency": "usd", "stock": 10**6,
                                             "active": True, "description": "", "image_url": ""})
    intents, buyer = [], None
    for n in range(count):
        if n % 3 == 0:  # ORDER_MAX_UNPAID_ORDERS (3) per user
            buyer = harness.sign_up()
        _, _, pi = start_payment(db, buyer, product)
        intent = stripe_client().v1.payment_intents.retrieve(pi).to_dict()
        intents.append({**intent, "status": "succeeded", "amount_received": intent["amount"]})
    return intents


def cases(db, user, rounds: int, requests_after: int) -> dict[str, dict]:
    """Per measured pair: how to start each side and how to make its n-th request: (the
    keyword arguments of its POST, the answer it must get or None for any 2xx)."""
    from flowsuite.core import events
    from flowsuite.ops.events import ProbeSent
    from flowsuite.orders.service import split_stock  # noqa: F401 - the suite imports cleanly here

    from testkit.payments import event, sign

    product = f"cold-{uuid.uuid4().hex[:8]}"
    db.document(f"products/{product}").set({"name": "Cold", "price": 100, "currency": "usd", "stock": 10**6,
                                             "active": True, "description": "", "image_url": ""})
    buyers = [user]
    placed = [0]  # across every instance measured: each round's first request continues the count

    def place(i: int) -> tuple[dict, dict | None]:
        from testkit import harness

        if placed[0] and placed[0] % 3 == 0:  # ORDER_MAX_UNPAID_ORDERS (3) per user: a new buyer every third order
            buyers.append(harness.sign_up())
        placed[0] += 1
        body = {"data": {"items": [{"product_id": product, "quantity": 1}], "idempotency_key": uuid.uuid4().hex}}
        return {"json": body, "headers": {"Authorization": f"Bearer {buyers[-1].id_token}"}}, None

    def bare_place(i: int) -> tuple[dict, dict | None]:
        return {"json": {"data": {"product_id": product}}, "headers": {"Authorization": f"Bearer {user.id_token}"}}, None

    intents = open_payments(db, rounds + requests_after)
    unsent = {"suite": list(intents), "bare": list(intents)}  # each side gets every event once

    def signed(side: str) -> tuple[dict, dict | None]:
        payload = event("payment_intent.succeeded", unsent[side].pop())
        return ({"data": payload.encode(), "headers": {"Stripe-Signature": sign(payload),
                                                        "Content-Type": "application/json"}},
                {"received": True, "outcome": "succeeded"} if side == "suite" else None)

    def webhook(i: int) -> tuple[dict, dict | None]:
        return signed("suite")  # the suite records the payment succeeded, with payment.succeeded

    def bare_webhook(i: int) -> tuple[dict, dict | None]:
        return signed("bare")  # the same signed events: both verify them before any Firestore work

    def probe(i: int) -> tuple[dict, dict | None]:
        probe_id = f"cold-{uuid.uuid4().hex[:10]}"
        batch = db.batch()
        batch.set(db.document(f"bench_cold_probes/{probe_id}"), {"probe_id": probe_id})
        envelope = events.publish(batch, ProbeSent(probe_id=probe_id), subject=f"ops_probes/{probe_id}", db=db)
        batch.commit()
        headers, data = subscriber_event(db, f"{ProbeSent.event_type.collection}/{envelope.id}")
        return {"data": data, "headers": headers}, None

    def bare_probe(i: int) -> tuple[dict, dict | None]:
        eid = uuid.uuid4().hex
        db.document(f"bench_topics/probe/events/{eid}").set({"n": i})
        headers, data = subscriber_event(db, f"bench_topics/probe/events/{eid}")
        return {"data": data, "headers": headers}, None

    return {
        "orders_place": {"suite": ("orders_place", "http", place), "bare": ("bare_place", "http", bare_place)},
        "payments_stripe_webhook": {"suite": ("payments_stripe_webhook", "http", webhook),
                                    "bare": ("bare_webhook", "http", bare_webhook)},
        "ops_on_probe (subscriber)": {"suite": ("ops_on_probe", "cloudevent", probe),
                                      "bare": ("bare_subscriber", "cloudevent", bare_probe)},
    }


def serve(source_dir: Path, target: str, signature: str, make_request, requests_after: int) -> dict:
    first = make_request(0)  # built before the process starts: nothing but the request is timed
    proc, port, listening = start(source_dir, target, signature)
    try:
        timings = []
        for i in range(1 + requests_after):
            kwargs, expect = first if i == 0 else make_request(i)
            t = time.perf_counter()
            r = requests.post(f"http://127.0.0.1:{port}/", timeout=60, **kwargs)
            timings.append(time.perf_counter() - t)
            # a refused request, or one that did less than asked, would measure less work than the reference
            if r.status_code >= 400 or (expect is not None and r.json() != expect):
                raise RuntimeError(f"{target}: {r.status_code} {r.text[:200]}; its log: {log_of(target).read_text()[-1500:]}")
        return {"import": listening, "first": timings[0], "memory": memory_mib(proc) if requests_after else None}
    finally:
        stop(proc)


def run(rounds: int = 9) -> list[dict]:
    from bench.cold_start import compile_sources
    from testkit import harness

    compile_sources()
    db = harness.admin_db()
    user = harness.sign_up()
    rows = []
    for label, pair in cases(db, user, rounds, REQUESTS_AFTER).items():
        suite, bare = [], []
        try:
            for r in range(rounds):  # alternate, so machine noise hits both
                for side, source, out in (("suite", FUNCTIONS, suite), ("bare", BARE, bare)):
                    harness.settle(db)  # the triggers of what the last instance published run elsewhere first
                    out.append(serve(source, *pair[side], requests_after=REQUESTS_AFTER if r == 0 else 0))
        except Exception as exc:  # noqa: BLE001 - a failed pair is a row saying so; the others still run
            rows.append({"benchmark": f"cold request: {label}", "p50": f"failed: {exc!r}"[:400], "p99/p95": "-",
                         "ratio": "-", "target": "<= 1.15x"})
            continue

        def med(samples, key):
            return statistics.median(s[key] for s in samples) * 1000

        s_total, b_total = med(suite, "import") + med(suite, "first"), med(bare, "import") + med(bare, "first")
        # The ratio is the median of each round's own ratio (suite, then bare, back to back):
        # this machine's speed drifts by hundreds of ms between minutes, which a ratio of two
        # medians taken over the whole run would count as ours.
        paired = statistics.median((s["import"] + s["first"]) / (b["import"] + b["first"]) for s, b in zip(suite, bare, strict=True))
        rows.append({
            "benchmark": f"cold request: {label}",
            "p50": f"{s_total:.0f} ms (import {med(suite, 'import'):.0f} + first request {med(suite, 'first'):.0f})",
            "p99/p95": f"bare SDK {b_total:.0f} ms (import {med(bare, 'import'):.0f} + first {med(bare, 'first'):.0f})",
            "ratio": f"{paired:.2f}x (of medians {s_total / b_total:.2f}x)", "target": "<= 1.15x",
        })
        (s_pss, s_rss), (b_pss, b_rss) = suite[0]["memory"], bare[0]["memory"]
        rows.append({
            "benchmark": f"memory: {label}, after {1 + REQUESTS_AFTER} requests (all processes' PSS; largest RSS)",
            "p50": f"{s_pss:.0f} MiB (RSS {s_rss:.0f})", "p99/p95": f"bare SDK {b_pss:.0f} MiB (RSS {b_rss:.0f})",
            "ratio": f"{s_pss / b_pss:.2f}x", "target": "<= 128 MiB",
        })
    return rows


if __name__ == "__main__":
    print(json.dumps(run(1), indent=1))
