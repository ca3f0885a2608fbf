"""The seed in emulator-data/: demo accounts and a few active products.

    python -m devtools.seed export     # rebuild emulator-data/ (make seed-export)

The accounts are made through the Auth emulator's sign-up, so the real blocking
function gives them their profile; their emails are then verified (as the link in a
verification email would) and they sign in, so the sign-in blocking function grants
the role ADMIN_EMAILS / STAFF_EMAILS name (functions/.env.local): a listed email gets
its role only once verified. The products go through the orders callable, as staff would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import requests

from devtools.suite import DEMO_ACCOUNTS, PROJECT_ID, ROOT

PRODUCTS = (
    ("demo-mug", "Flow mug", "A 350 ml ceramic mug.", 1250, 40),
    ("demo-tee", "Flow t-shirt", "Organic cotton, unisex.", 2400, 25),
    ("demo-stickers", "Sticker pack", "Six vinyl stickers.", 500, 200),
    ("demo-poster", "Poster A2", "Printed on 200 g paper.", 1800, 10),
)


def populate() -> None:
    auth = os.environ["FIREBASE_AUTH_EMULATOR_HOST"]
    functions = os.environ["FLOWSUITE_FUNCTIONS_URL"]
    tokens = {}
    identity = f"http://{auth}/identitytoolkit.googleapis.com/v1"
    for email, role, password in DEMO_ACCOUNTS:
        r = requests.post(f"{identity}/accounts:signUp", params={"key": "seed"},
                          json={"email": email, "password": password, "displayName": role.title(),
                                "returnSecureToken": True}, timeout=30)
        r.raise_for_status()
        uid = r.json()["localId"]
        r = requests.post(f"{identity}/projects/{PROJECT_ID}/accounts:update", headers={"Authorization": "Bearer owner"},
                          json={"localId": uid, "emailVerified": True}, timeout=30)
        r.raise_for_status()
        r = requests.post(f"{identity}/accounts:signInWithPassword", params={"key": "seed"},
                          json={"email": email, "password": password, "returnSecureToken": True}, timeout=30)
        r.raise_for_status()
        tokens[role] = r.json()["idToken"]
        print(f"seed: account {email} ({role})")
    for product_id, name, description, price, stock in PRODUCTS:
        r = requests.post(f"{functions}/orders_upsert_product", timeout=60,
                          headers={"Authorization": f"Bearer {tokens['staff']}"},
                          json={"data": {"product_id": product_id, "name": name, "description": description,
                                         "price": price, "currency": "usd", "stock": stock, "active": True,
                                         "idempotency_key": uuid.uuid4().hex}})
        r.raise_for_status()
        assert "result" in r.json(), r.text
        print(f"seed: product {product_id}")


def export() -> None:
    target = ROOT / "emulator-data"
    subprocess.run([str(ROOT / "node_modules/.bin/firebase"), "emulators:export", str(target), "--force",
                    "--project", PROJECT_ID], check=True, cwd=ROOT)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "export"
    if command == "populate-and-export":
        populate()
        export()
        return 0
    if command == "export":
        env = {**os.environ, "FLOWSUITE_NO_IMPORT": "1"}
        return subprocess.run([sys.executable, "-m", "devtools.suite", "exec", "--", sys.executable, "-m",
                               "devtools.seed", "populate-and-export"], cwd=ROOT, env=env).returncode
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
