"""Scaffold a new domain in the house shape, or remove one that was scaffolded.

    python -m devtools.domain add bookings       # make domain name=bookings
    python -m devtools.domain remove bookings    # make undomain name=bookings

``add`` writes a working domain package: a typed idempotent callable
(``<name>_create``), a document model and its collection declaration, an event it
publishes (its contract in ``flowsuite/contracts/<name>.py``) and a subscriber it
owns (``<name>_on_created``), erasure joined to the kernel's deletion registry
(``<name>_on_user_deleted``), its options declaration, a unit test and an
integration test. It joins the domain to the hand-kept lists between the
``>>> generated domains`` markers of ``functions/main.py``,
``functions/flowsuite/registry.py``, ``functions/flowsuite/core/indexes.py`` (the
app's Backend Query indexes) and ``firestore.rules`` (a deny-by-default stanza
with owner reads by uid or FlutterFlow's ``user_ref``), then regenerates the
contracts (``docs/``) and ``firestore.indexes.json``. Everything else (deploy per
domain, the manifest, the dependency and erasure checks) reads ``DOMAINS``.

A bad name (not lowercase snake case, a Python keyword, a reserved word, a clash
with a domain, function, collection or event) is refused with one line and
nothing is written. ``remove`` deletes exactly the files ``add`` wrote and the
blocks between the markers, regenerates the contracts, and names the hand-made
files that still mention the domain.
"""

from __future__ import annotations

import argparse
import keyword
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
MAX_NAME = 30  # "<name>_on_user_deleted" stays well under Cloud Functions' 63 characters
RESERVED = frozenset({
    "core", "contracts", "registry", "main", "flowsuite", "domain", "domains", "test", "tests", "testkit",
    "devtools", "bench", "console", "docs", "functions", "firebase", "firestore", "google", "users", "user",
    "events", "topics", "deliveries", "dead_letters", "effects", "idempotency_records", "public_profiles",
    "all", "none", "admin", "staff", "member",
})
BEGIN, END = ">>> generated domains", "<<< generated domains"


class Refused(Exception):
    """A name the tool will not use; the message is the one line it prints."""


@dataclass(frozen=True)
class Names:
    name: str  # bookings: the package, the collection, the function prefix

    @property
    def entity(self) -> str:  # booking: the event's entity and the id field's stem
        n = self.name
        return n[:-1] if n.endswith("s") and not n.endswith("ss") and len(n) > 1 else n

    @property
    def Entity(self) -> str:  # noqa: N802 - Booking: the class names
        return "".join(part.capitalize() for part in self.entity.split("_"))

    @property
    def title(self) -> str:  # Bookings: prose
        return self.name.replace("_", " ").capitalize()

    @property
    def id_field(self) -> str:
        return f"{self.entity}_id"

    @property
    def event(self) -> str:
        return f"{self.entity}.created"

    @property
    def functions(self) -> tuple[str, ...]:
        return (f"{self.name}_create", f"{self.name}_on_created", f"{self.name}_on_user_deleted")

    def fill(self, template: str) -> str:
        for key, value in (("{{name}}", self.name), ("{{entity}}", self.entity), ("{{Entity}}", self.Entity),
                           ("{{title}}", self.title), ("{{id_field}}", self.id_field), ("{{event}}", self.event),
                           ("{{NAME}}", self.name.upper())):
            template = template.replace(key, value)
        return template


# ---- what is generated ---------------------------------------------------------------

def generated_files(names: Names) -> dict[str, str]:
    """Repository-relative path -> text of every file ``add`` writes."""
    n = names.name
    pkg = f"functions/flowsuite/{n}"
    return {
        f"{pkg}/__init__.py": names.fill(INIT),
        f"{pkg}/config.py": names.fill(CONFIG),
        f"{pkg}/documents.py": names.fill(DOCUMENTS),
        f"{pkg}/events.py": names.fill(EVENTS),
        f"{pkg}/functions.py": names.fill(FUNCTIONS),
        f"{pkg}/models.py": names.fill(MODELS),
        f"{pkg}/service.py": names.fill(SERVICE),
        f"functions/flowsuite/contracts/{n}.py": names.fill(CONTRACT),
        f"tests/unit/test_{n}_domain.py": names.fill(UNIT_TEST),
        f"tests/integration/test_{n}.py": names.fill(INTEGRATION_TEST),
    }


def blocks(names: Names) -> dict[str, tuple[str, list[str]]]:
    """Repository-relative path -> (comment prefix, lines) joined between that file's markers."""
    n = names.name
    return {
        "functions/main.py": ("#", [f'if _wanted("{n}"):', f"    from flowsuite.{n}.functions import *  # noqa: F403"]),
        "functions/flowsuite/registry.py": ("#", [f'    "{n}",']),
        "functions/flowsuite/core/indexes.py": ("#", [
            f'    Index("{n}", (("user_ref", ASC), ("created_time", DESC)), "app: {n} of currentUserReference"),',
            f'    Index("{n}", (("uid", ASC), ("created_time", DESC)), "app: {n} of the signed-in uid"),',
        ]),
        "firestore.rules": ("//", [
            f"    // {names.title} (make domain): the owner reads their own, matched by uid or by",
            "    // FlutterFlow's user_ref, so a Backend Query filtered on either is allowed. The",
            f"    // app writes nothing here: only {n} functions write (admin credentials).",
            f"    match /{n}/{{{names.entity.split('_')[0]}Id}} {{",
            "      allow read: if signedIn() && (resource.data.uid == request.auth.uid",
            "                                    || resource.data.user_ref == userRef(request.auth.uid));",
            "    }",
        ]),
    }


# ---- checks ------------------------------------------------------------------------

def declarations() -> dict[str, set[str]]:
    """What the code declares today: domains, functions, collections, event entities."""
    functions = str(ROOT / "functions")
    if functions not in sys.path:
        sys.path.insert(0, functions)
    from flowsuite.core import options
    from flowsuite.registry import ALIASES, DOMAINS

    from devtools import contracts

    decl = contracts.load()
    return {
        "domains": set(DOMAINS) | {p.name for p in (ROOT / "functions/flowsuite").iterdir() if p.is_dir()},
        "functions": set(options.APPLIED) | set(ALIASES),
        "collections": {part for path in decl["collections"] for part in path.split("/")[::2]},
        "entities": {name.split(".")[0] for name in decl["events"]},
    }


def check_name(name: str, existing: dict[str, set[str]] | None = None) -> Names:
    """The name's parts, or ``Refused`` with the one line to print. Reads nothing when ``existing`` is given."""
    if not NAME_RE.match(name or ""):
        raise Refused(f"domain: {name!r} is not a lowercase snake_case Python identifier (like bookings or loyalty_points)")
    if len(name) > MAX_NAME:
        raise Refused(f"domain: {name!r} is longer than {MAX_NAME} characters")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in RESERVED:
        raise Refused(f"domain: {name!r} is a reserved word")
    names = Names(name)
    existing = declarations() if existing is None else existing
    if name in existing["domains"]:
        raise Refused(f"domain: {name!r} exists already")
    taken = sorted(set(names.functions) & existing["functions"])
    if taken:
        raise Refused(f"domain: {name!r} would define {', '.join(taken)}, which exists already")
    if name in existing["collections"]:
        raise Refused(f"domain: {name!r} would own the collection {name!r}, which another domain declares")
    if names.entity in existing["entities"] or name in existing["entities"]:
        raise Refused(f"domain: {name!r} would publish {names.event!r}, but {names.entity!r} events belong to another domain")
    clash = [path for path in generated_files(names) if (ROOT / path).exists()]
    if clash:
        raise Refused(f"domain: {name!r} would overwrite {', '.join(clash)}")
    return names


# ---- marker blocks -------------------------------------------------------------------

def _markers(text: str, path: str, prefix: str) -> tuple[int, int, list[str]]:
    lines = text.splitlines(keepends=True)
    begin = [i for i, line in enumerate(lines) if line.strip().startswith(prefix) and BEGIN in line]
    end = [i for i, line in enumerate(lines) if line.strip().startswith(prefix) and END in line]
    if len(begin) != 1 or len(end) != 1 or end[0] < begin[0]:
        raise Refused(f"domain: {path} lacks its '{BEGIN}' / '{END}' markers")
    return begin[0], end[0], lines


def insert_block(text: str, path: str, prefix: str, name: str, body: list[str]) -> str:
    """``text`` with the domain's block added just before the end marker, indented like it."""
    _, end, lines = _markers(text, path, prefix)
    indent = lines[end][: len(lines[end]) - len(lines[end].lstrip())]
    block = [f"{indent}{prefix} >>> {name}\n", *(f"{line}\n" for line in body), f"{indent}{prefix} <<< {name}\n"]
    return "".join(lines[:end] + block + lines[end:])


def remove_block(text: str, path: str, prefix: str, name: str) -> str:
    """``text`` without the domain's block (from its ``>>> name`` line to its ``<<< name`` line)."""
    begin, end, lines = _markers(text, path, prefix)
    opening = [i for i in range(begin, end) if lines[i].strip() == f"{prefix} >>> {name}"]
    closing = [i for i in range(begin, end) if lines[i].strip() == f"{prefix} <<< {name}"]
    if len(opening) != 1 or len(closing) != 1 or closing[0] < opening[0]:
        return text
    return "".join(lines[: opening[0]] + lines[closing[0] + 1:])


def has_block(text: str, prefix: str, name: str) -> bool:
    return any(line.strip() == f"{prefix} >>> {name}" for line in text.splitlines())


# ---- add / remove ----------------------------------------------------------------------

def regenerate() -> int:
    """The contracts writer and the indexes writer, in fresh processes (they import the new code)."""
    for args in (["-m", "devtools.contracts", "write"], ["-m", "devtools.indexes"]):
        code = subprocess.run([sys.executable, *args], cwd=ROOT).returncode
        if code:
            return code
    return 0


def add(name: str, *, existing: dict[str, set[str]] | None = None, write_contracts: bool = True) -> list[str]:
    names = check_name(name, existing)
    edits = {}
    for path, (prefix, body) in blocks(names).items():
        text = (ROOT / path).read_text()
        if has_block(text, prefix, name):
            raise Refused(f"domain: {path} names {name!r} between its markers already (make undomain name={name})")
        edits[path] = insert_block(text, path, prefix, name, body)
    # Every check passed: write.
    files = generated_files(names)
    for path, text in files.items():
        (ROOT / path).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / path).write_text(text)
    for path, text in edits.items():
        (ROOT / path).write_text(text)
    written = [*files, *edits]
    print(f"domain: {name} added: " + ", ".join(written))
    if write_contracts and regenerate():
        raise Refused(f"domain: {name} was written but regenerating the contracts failed (see above)")
    return written


def is_generated(name: str) -> bool:
    registry = (ROOT / "functions/flowsuite/registry.py").read_text()
    return bool(NAME_RE.match(name or "")) and has_block(registry, "#", name)


def remove(name: str, *, write_contracts: bool = True) -> tuple[list[str], list[str]]:
    """Removes a generated domain. Returns (what was removed, hand-made files that still mention it)."""
    if not is_generated(name):
        raise Refused(f"domain: {name!r} was not added by `make domain` (no block in registry.py); nothing removed")
    names = Names(name)
    removed = []
    for path in generated_files(names):
        target = ROOT / path
        if target.exists():
            target.unlink()
            removed.append(path)
        cache = target.parent / "__pycache__"
        for compiled in cache.glob(f"{target.stem}.*.pyc"):
            compiled.unlink()
        if cache.is_dir() and not any(cache.iterdir()):
            cache.rmdir()
    package = ROOT / "functions/flowsuite" / name
    if package.is_dir() and not any(package.iterdir()):
        package.rmdir()
    for path, (prefix, _) in blocks(names).items():
        text = (ROOT / path).read_text()
        if has_block(text, prefix, name):
            (ROOT / path).write_text(remove_block(text, path, prefix, name))
            removed.append(f"{path} (its block)")
    print(f"domain: {name} removed: " + ", ".join(removed))
    if write_contracts and regenerate():
        raise Refused(f"domain: {name} was removed but regenerating the contracts failed (see above)")
    left = references(name)
    if left:
        print(f"domain: hand-made files that still mention {name}:\n  " + "\n  ".join(left))
    return removed, left


SEARCHED = ("functions", "tests", "testkit", "devtools", "bench", "console/src", "docs", "firestore.rules",
            "README.md", "Makefile", "firebase.json")
SKIPPED_PARTS = {"venv", "node_modules", "__pycache__", ".run", "events"}
# Generated from the code (rewritten by the contracts writer), or about this tool.
GENERATED_DOCS = {"docs/openapi.json", "docs/collections.md", "docs/events.md", "firestore.indexes.json",
                  "devtools/domain.py", "docs/extending.md"}


def references(name: str) -> list[str]:
    """``path:line`` of every text file (outside generated docs) that still mentions the domain."""
    pattern = re.compile(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![a-z0-9])")
    out = []
    for entry in SEARCHED:
        base = ROOT / entry
        paths = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else []
        for path in paths:
            rel = path.relative_to(ROOT).as_posix()
            if rel in GENERATED_DOCS or SKIPPED_PARTS & set(path.relative_to(ROOT).parts[:-1]) \
                    or path.suffix not in {".py", ".md", ".json", ".rules", ".js", ".html", ""}:
                continue
            try:
                lines = path.read_text().splitlines()
            except (UnicodeDecodeError, OSError):
                continue
            out += [f"{rel}:{i}" for i, line in enumerate(lines, 1) if pattern.search(line)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.domain", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("add", "remove"))
    parser.add_argument("name")
    parser.add_argument("--no-contracts", action="store_true", help="skip regenerating docs/ and the indexes")
    args = parser.parse_args(argv)
    try:
        if args.action == "add":
            add(args.name, write_contracts=not args.no_contracts)
            print(f"domain: next: edit functions/flowsuite/{args.name}/ (see docs/extending.md), "
                  f"run `make unit`, deploy alone with `python -m devtools.deploy domain {args.name}`")
        else:
            remove(args.name, write_contracts=not args.no_contracts)
    except Refused as exc:
        print(exc)
        return 2
    return 0


# ---- templates ---------------------------------------------------------------------
# {{name}} bookings, {{entity}} booking, {{Entity}} Booking, {{title}} Bookings,
# {{id_field}} booking_id, {{event}} booking.created.

INIT = '''"""{{title}}: a domain generated by `make domain name={{name}}` (see docs/extending.md)."""

from flowsuite.core import options as _options

# Options every {{name}} function gets (memory, instances, timeout); the suite's apply otherwise.
OPTIONS = _options.declare(__name__, max_instances=10)
'''

CONFIG = '''"""{{title}}' settings. Parameters and secrets are declared here, never committed:

    from firebase_functions import params
    API_KEY = params.SecretParam("{{NAME}}_API_KEY", description="...")  # functions/.secret.local locally
    SECRETS = [API_KEY]  # then @callable_function(..., secrets=config.SECRETS)
"""

TITLE_MAX_LENGTH = 200
'''

CONTRACT = '''"""Events the {{name}} domain publishes (their data is the contract other domains read)."""

from __future__ import annotations

from flowsuite.core.events import EventData, event_type


@event_type("{{event}}", source="{{name}}")
class {{Entity}}Created(EventData):
    """A {{entity}} was created (by {{name}}_create)."""

    {{id_field}}: str
    uid: str
    title: str
'''

EVENTS = '''"""Events the {{name}} domain publishes: the contracts live in ``flowsuite.contracts.{{name}}``,
where subscribers in other domains import them from."""

from flowsuite.contracts.{{name}} import {{Entity}}Created

__all__ = ["{{Entity}}Created"]
'''

DOCUMENTS = '''"""Documents the {{name}} domain owns."""

from __future__ import annotations

from flowsuite.core.documents import DocRef, Document, Timestamp, collection


@collection("{{name}}/{{{id_field}}}", read="the owner (uid or user_ref)", write="{{name}} functions only")
class {{Entity}}Doc(Document):
    """A {{entity}} of a user (generated: add your own fields, every one the code writes)."""

    {{id_field}}: str
    uid: str
    user_ref: DocRef  # FlutterFlow's reference to users/{uid}: Backend Queries filter on it
    title: str
    status: str  # created, then confirmed by {{name}}_on_created
    correlation_id: str
    created_time: Timestamp
    updated_time: Timestamp
    confirmed_time: Timestamp | None = None
'''

MODELS = '''"""Requests and answers of the {{name}} callables."""

from __future__ import annotations

from pydantic import Field

from flowsuite.core.models import IdempotentRequest, Response
from flowsuite.{{name}} import config


class Create{{Entity}}(IdempotentRequest):
    title: str = Field(min_length=1, max_length=config.TITLE_MAX_LENGTH)


class {{Entity}}Answer(Response):
    {{id_field}}: str
    status: str
    event_id: str
'''

SERVICE = '''"""{{title}} service code: plain functions over the kernel, clients passed in."""

from __future__ import annotations

import hashlib

from google.cloud.firestore_v1.base_query import FieldFilter

from flowsuite.core import events
from flowsuite.core.erasure import delete_query
from flowsuite.{{name}}.documents import {{Entity}}Doc
from flowsuite.{{name}}.events import {{Entity}}Created

COLLECTION = "{{name}}"
CREATED, CONFIRMED = "created", "confirmed"


def {{id_field}}_for(uid: str, idempotency_key: str) -> str:
    """Deterministic: a repeat of the same key can never create a second {{entity}}. Pure."""
    return hashlib.sha256(f"{{name}}:{uid}\\n{idempotency_key}".encode()).hexdigest()[:20]


def create(db, *, uid: str, title: str, idempotency_key: str, correlation_id: str) -> dict:
    """Creates the {{entity}} and publishes {{event}} in the same batch (transactional outbox)."""
    from google.cloud import firestore as gcf  # noqa: PLC0415

    {{id_field}} = {{id_field}}_for(uid, idempotency_key)
    doc = {{Entity}}Doc(
        {{id_field}}={{id_field}}, uid=uid, user_ref=db.collection("users").document(uid), title=title,
        status=CREATED, correlation_id=correlation_id,
        created_time=gcf.SERVER_TIMESTAMP, updated_time=gcf.SERVER_TIMESTAMP,
    )
    batch = db.batch()
    batch.create(db.collection(COLLECTION).document({{id_field}}), doc.model_dump(exclude_none=True))
    envelope = events.publish(batch, {{Entity}}Created({{id_field}}={{id_field}}, uid=uid, title=title),
                              subject=f"{COLLECTION}/{{{id_field}}}", correlation_id=correlation_id, db=db)
    batch.commit()
    return {"{{id_field}}": {{id_field}}, "status": CREATED, "event_id": envelope.id}


def confirm(db, txn, event: events.Event[{{Entity}}Created]) -> None:
    """{{name}}_on_created: reads with the transaction, then writes (the bus adds its processed mark).
    A {{entity}} erased before its event arrived stays erased."""
    from google.cloud import firestore as gcf  # noqa: PLC0415

    ref = db.collection(COLLECTION).document(event.data.{{id_field}})
    snap = ref.get(transaction=txn)
    if not snap.exists or snap.get("status") != CREATED:
        return
    txn.update(ref, {"status": CONFIRMED, "confirmed_time": gcf.SERVER_TIMESTAMP, "updated_time": gcf.SERVER_TIMESTAMP})


def erase(db, uid: str) -> int:
    """identity.user_deleted: every {{entity}} of the user goes (idempotent: deleting what is gone is a no-op)."""
    return delete_query(db, db.collection(COLLECTION).where(filter=FieldFilter("uid", "==", uid)))
'''

FUNCTIONS = '''"""{{title}} functions: thin triggers over ``flowsuite.{{name}}.service``."""

from __future__ import annotations

from flowsuite.core import bus, clients
from flowsuite.core.callables import CallContext, callable_function
from flowsuite.core.erasure import eraser
from flowsuite.{{name}} import models, service
from flowsuite.{{name}}.events import {{Entity}}Created

__all__ = [
    "{{name}}_create",
    "{{name}}_on_created",
    "{{name}}_on_user_deleted",
]


@callable_function(request=models.Create{{Entity}}, response=models.{{Entity}}Answer, idempotent=True)
def {{name}}_create(ctx: CallContext, req: models.Create{{Entity}}) -> models.{{Entity}}Answer:
    """Creates a {{entity}} for you and publishes {{event}}; repeat with the same idempotency_key to get
    the first answer."""
    return models.{{Entity}}Answer(**service.create(
        clients.firestore(), uid=ctx.require_uid(), title=req.title, idempotency_key=req.idempotency_key,
        correlation_id=ctx.correlation_id,
    ))


@bus.subscriber({{Entity}}Created)
def {{name}}_on_created(event, txn) -> None:
    """{{event}} -> the {{entity}} is confirmed (once per event, in the bus's transaction)."""
    service.confirm(clients.firestore(), txn, event)


@eraser(collections=(service.COLLECTION,))
def {{name}}_on_user_deleted(db, uid: str) -> None:
    service.erase(db, uid)
'''

UNIT_TEST = '''"""The {{name}} domain (generated by `make domain`), without I/O: its shape and its contracts."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

ROOT = Path(__file__).resolve().parents[2]


def test_the_create_request_is_typed_and_idempotent():
    from flowsuite.{{name}} import models

    req = models.Create{{Entity}}(idempotency_key="key-12345", title="  First  ")
    assert req.title == "First"
    with pytest.raises(ValidationError):
        models.Create{{Entity}}(title="no key")
    with pytest.raises(ValidationError):
        models.Create{{Entity}}(idempotency_key="key-12345", title="x", role="admin")  # unknown fields are refused


def test_the_callable_subscriber_and_eraser_are_declared():
    from flowsuite.core.bus import SUBSCRIBERS
    from flowsuite.core.callables import CALLABLES
    from flowsuite.core.erasure import ERASERS
    from flowsuite.{{name}} import functions

    assert sorted(functions.__all__) == sorted(["{{name}}_create", "{{name}}_on_created", "{{name}}_on_user_deleted"])
    assert CALLABLES["{{name}}_create"].idempotent and CALLABLES["{{name}}_create"].domain == "{{name}}"
    assert SUBSCRIBERS["{{name}}_on_created"].event_type.name == "{{event}}"
    assert ERASERS["{{name}}"].collections == ("{{name}}",)


def test_the_event_is_a_contract_with_an_envelope():
    from flowsuite.core import events
    from flowsuite.{{name}}.events import {{Entity}}Created

    envelope = events.envelope_for({{Entity}}Created({{id_field}}="b1", uid="u1", title="t"), subject="{{name}}/b1")
    assert envelope.type == "{{event}}" and envelope.source == "{{name}}" and envelope.data["uid"] == "u1"


def test_ids_are_deterministic_per_user_and_key():
    from flowsuite.{{name}}.service import {{id_field}}_for

    assert {{id_field}}_for("u1", "key-1") == {{id_field}}_for("u1", "key-1") != {{id_field}}_for("u2", "key-1")


def test_the_collection_registry_and_options_know_the_domain():
    from flowsuite import registry
    from flowsuite.core import options
    from flowsuite.core.documents import COLLECTIONS
    from flowsuite.{{name}} import documents  # noqa: F401

    assert COLLECTIONS["{{name}}/{{{id_field}}}"].domain == "{{name}}"
    assert "{{name}}" in registry.DOMAINS and registry.domain_for("{{name}}_create") == "{{name}}"
    assert "{{name}}" in options.DECLARED


def test_the_rules_let_only_the_owner_read():
    rules = (ROOT / "firestore.rules").read_text()
    stanza = rules.split("// >>> {{name}}\\n", 1)[1].split("// <<< {{name}}", 1)[0]
    assert "match /{{name}}/" in stanza and "userRef(request.auth.uid)" in stanza
    assert "allow write" not in stanza and "allow create" not in stanza
'''

INTEGRATION_TEST = '''"""The {{name}} domain end to end on the emulators (generated by `make domain`):
callable, event, subscriber, rules, erasure."""

from __future__ import annotations

import uuid

import pytest

from testkit import harness
from testkit.harness import AppClient, CallableError, Denied, Ref, call, eventually


def create(user, title: str = "My first {{entity}}", key: str | None = None) -> dict:
    return call("{{name}}_create", {"idempotency_key": key or f"k-{uuid.uuid4().hex}", "title": title}, user=user)


def test_create_publishes_and_the_subscriber_confirms(member, db):
    answer = create(member)
    {{id_field}} = answer["{{id_field}}"]
    assert answer["status"] == "created"
    event = harness.doc(db, f"topics/{{event}}/events/{answer['event_id']}")
    assert event["source"] == "{{name}}" and event["data"]["{{id_field}}"] == {{id_field}}
    done = eventually(lambda: (harness.doc(db, f"{{name}}/{{{id_field}}}") or {}).get("status") == "confirmed"
                      and harness.doc(db, f"{{name}}/{{{id_field}}}"), what="{{name}}_on_created")
    assert done["uid"] == member.uid and done["title"] == "My first {{entity}}"
    delivery = eventually(lambda: harness.doc(db, f"deliveries/{answer['event_id']}:{{name}}_on_created"),
                          what="the delivery record")
    assert delivery["status"] == "processed"


def test_a_repeat_returns_the_first_answer_and_a_reused_key_is_refused(member):
    key = f"k-{uuid.uuid4().hex}"
    first = create(member, key=key)
    assert create(member, key=key) == first
    with pytest.raises(CallableError) as err:
        create(member, title="something else", key=key)
    assert err.value.code == "invalid-argument" and err.value.fields == ["idempotency_key"]


def test_bad_input_and_no_login_are_refused(member):
    with pytest.raises(CallableError) as err:
        call("{{name}}_create", {"idempotency_key": "short", "title": ""}, user=member)
    assert err.value.code == "invalid-argument" and {"idempotency_key", "title"} <= set(err.value.fields)
    with pytest.raises(CallableError) as err:
        call("{{name}}_create", {"idempotency_key": f"k-{uuid.uuid4().hex}", "title": "t"})
    assert err.value.code == "unauthenticated"


def test_the_owner_reads_by_uid_or_user_ref_and_nobody_else_reads_or_writes(member, db):
    {{id_field}} = create(member)["{{id_field}}"]
    owner, other = AppClient(member), AppClient(harness.sign_up())
    assert owner.get(f"{{name}}/{{{id_field}}}")["uid"] == member.uid
    assert owner.query("{{name}}", where=[("uid", "==", member.uid)])
    assert owner.query("{{name}}", where=[("user_ref", "==", Ref.to(f"users/{member.uid}"))])
    with pytest.raises(Denied):
        other.get(f"{{name}}/{{{id_field}}}")
    with pytest.raises(Denied):
        owner.query("{{name}}")  # an unfiltered list could include other users' documents
    with pytest.raises(Denied):
        owner.update(f"{{name}}/{{{id_field}}}", {"status": "confirmed"})
    with pytest.raises(Denied):
        owner.create("{{name}}", "forged", {"uid": member.uid, "title": "x"})
    with pytest.raises(Denied):
        AppClient(None).get(f"{{name}}/{{{id_field}}}")


def test_deleting_the_account_erases_its_{{name}}(member, db):
    from flowsuite.core.ids import person_key

    {{id_field}} = create(member)["{{id_field}}"]
    eventually(lambda: (harness.doc(db, f"{{name}}/{{{id_field}}}") or {}).get("status") == "confirmed",
               what="{{name}}_on_created")
    assert call("identity_delete_account", {}, user=member) == {"uid": member.uid, "deleted": True}
    eventually(lambda: harness.doc(db, f"{{name}}/{{{id_field}}}") is None, what="erasure of {{name}}")
    # identity.user_deleted's id is person_key(uid); its delivery to this domain's eraser is processed.
    eventually(lambda: (harness.doc(db, f"deliveries/{person_key(member.uid)}:{{name}}_on_user_deleted")
                        or {}).get("status") == "processed", what="{{name}}_on_user_deleted processed")
'''


if __name__ == "__main__":
    sys.exit(main())
