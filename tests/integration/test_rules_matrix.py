"""The rules matrix: every collection x every actor x every operation, from one declaration.

Each case runs through the app's own client (Firestore REST with a real ID token
from the Auth emulator), against a target document made for that case alone, so
cases never depend on each other. Field-level cases follow the matrix.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from testkit import harness
from testkit.harness import AppClient, CallableError, Denied, Ref, call, eventually

SHARED_WORLD = True  # one reset for the module; every case makes its own target

ACTORS = ("anonymous", "owner", "other", "staff", "admin")
OPS = ("get", "list", "create", "update", "delete")
SIGNED_IN = {"owner", "other", "staff", "admin"}
NOW = dt.datetime.now(dt.UTC)


def uid_ref(uid: str):
    return Ref.to(f"users/{uid}")


@dataclasses.dataclass(frozen=True)
class Spec:
    """One collection: where a target lives, what it holds, what each op sends, who may do it."""

    name: str
    path: Callable[[str, str], str]                 # (owner uid, case id) -> document path
    stored: Callable[[str], dict[str, Any]]          # owner uid -> document as the server wrote it
    payload: Callable[[str, str], dict[str, Any]]    # (owner uid, actor uid) -> what the app writes
    allowed: dict[str, set[str]]
    owner_filter: Callable[[str], list] | None = None  # the Backend Query an app runs to list
    update: dict[str, Any] | None = None              # what an update sends, when not the payload
    needs_profile: bool = False                       # the owner's writes need an active profile


def server_only(name: str, path: Callable[[str, str], str], stored: Callable[[str], dict], readers: set[str]) -> Spec:
    return Spec(name, path, stored, lambda o, a: {"x": 1}, {"get": readers, "list": readers})


def admin_only(name: str, collection: str, stored: Callable[[str], dict] = lambda o: {"x": 1}) -> Spec:
    return server_only(name, lambda o, c: f"{collection}/{c}", stored, {"admin"})


def nobody(name: str, collection: str) -> Spec:
    return server_only(name, lambda o, c: f"{collection}/{c}", lambda o: {"uid": o}, set())


SPECS: list[Spec] = [
    Spec("users", lambda o, c: f"users/{o}",
         lambda o: {"uid": o, "email": "", "display_name": "Owner", "photo_url": "", "phone_number": "",
                    "role": "member", "status": "active", "profile_source": "blocking"},
         lambda o, a: {"uid": o, "email": "", "display_name": "New", "photo_url": "", "phone_number": "",
                       "created_time": NOW},
         {"get": {"owner"}, "create": {"owner"}, "update": {"owner"}},
         owner_filter=lambda o: [("uid", "==", o)], update={"display_name": "Renamed", "photo_url": "https://x/y.png"}),
    Spec("public_profiles", lambda o, c: f"public_profiles/{o}", lambda o: {"uid": o, "display_name": "O", "photo_url": ""},
         lambda o, a: {"uid": o, "display_name": "x"}, {"get": SIGNED_IN, "list": SIGNED_IN}),
    Spec("products", lambda o, c: f"products/p-{c}",
         lambda o: {"name": "Mug", "price": 100, "currency": "usd", "stock": 3, "active": True},
         lambda o, a: {"name": "Free", "price": 0, "currency": "usd", "stock": 99, "active": True},
         {"get": SIGNED_IN, "list": SIGNED_IN}, owner_filter=lambda o: [("active", "==", True)]),
    Spec("orders", lambda o, c: f"orders/o-{c}",
         lambda o: {"uid": o, "user_ref": uid_ref(o), "total": 100, "currency": "usd", "status": "pending_payment"},
         lambda o, a: {"uid": a or o, "total": 0, "status": "paid"},
         {"get": {"owner", "staff", "admin"}, "list": {"owner", "staff", "admin"}},
         owner_filter=lambda o: [("user_ref", "==", uid_ref(o))]),
    Spec("payments", lambda o, c: f"payments/pay-{c}",
         lambda o: {"uid": o, "user_ref": uid_ref(o), "amount": 100, "currency": "usd", "status": "requires_payment"},
         lambda o, a: {"uid": a or o, "amount": 1, "status": "succeeded"},
         {"get": {"owner", "staff", "admin"}, "list": {"owner", "staff", "admin"}},
         owner_filter=lambda o: [("uid", "==", o)]),
    server_only("stripe_customers", lambda o, c: f"stripe_customers/{o}", lambda o: {"uid": o, "customer_id": "cus_1"}, {"admin"}),
    Spec("inbox", lambda o, c: f"users/{o}/notifications/n-{c}",
         lambda o: {"type": "welcome", "title": "Hi", "body": "b", "data": {}, "read": False},
         lambda o, a: {"read": True}, {"get": {"owner"}, "list": {"owner"}, "update": {"owner"}}),
    Spec("fcm_tokens", lambda o, c: f"users/{o}/fcm_tokens/t-{c}",
         lambda o: {"fcm_token": "tok", "device_type": "iOS", "created_at": NOW},
         lambda o, a: {"fcm_token": f"tok-{a}", "device_type": "Android", "created_at": NOW},
         {"get": {"owner"}, "list": {"owner"}, "delete": {"owner"}}),  # created through addFcmToken only
    Spec("settings", lambda o, c: f"users/{o}/settings/notifications", lambda o: {"welcome": {"email": True}},
         lambda o, a: {"welcome": {"email": False}},
         {"get": {"owner"}, "list": {"owner"}, "create": {"owner"}, "update": {"owner"}, "delete": {"owner"}},
         needs_profile=True),
    Spec("ff_push_notifications", lambda o, c: f"ff_push_notifications/b-{c}",
         lambda o: {"notification_title": "t", "notification_text": "x", "status": "succeeded", "num_sent": 1},
         lambda o, a: {"notification_title": "t", "notification_text": "x", "user_refs": "users/nobody",
                       **({"sender": uid_ref(a)} if a else {})},
         {"get": {"admin"}, "list": {"admin"}, "create": {"admin"}}),
    Spec("ff_user_push_notifications", lambda o, c: f"ff_user_push_notifications/u-{c}",
         lambda o: {"notification_title": "t", "notification_text": "x", "sender": uid_ref(o), "status": "succeeded"},
         lambda o, a: {"notification_title": "t", "notification_text": "x", "user_refs": "users/nobody",
                       **({"sender": uid_ref(a)} if a else {})},
         {"get": {"owner", "admin"}, "list": {"owner", "admin"}, "create": SIGNED_IN},
         owner_filter=lambda o: [("sender", "==", uid_ref(o))]),
    nobody("push_rate_limits", "push_rate_limits"),
    nobody("order_holds", "order_holds"),
    nobody("email_suppressions", "email_suppressions"),
    server_only("events", lambda o, c: f"topics/ops.sweep_finished/events/e-{c}",
                lambda o: {"id": "e", "type": "ops.sweep_finished", "data": {}}, {"admin"}),
    admin_only("deliveries", "deliveries"),
    admin_only("dead_letters", "dead_letters"),
    admin_only("ops_probes", "ops_probes"),
    admin_only("ops_state", "ops_state"),
    admin_only("identity_state", "identity_state"),
    nobody("idempotency_records", "idempotency_records"),
    nobody("effects", "effects"),
]


@pytest.fixture(scope="module")
def world():
    harness.reset_emulators()
    owner, other = harness.sign_up(), harness.sign_up()
    return {"anonymous": None, "owner": owner, "other": other,
            "staff": harness.user_with_role("staff"), "admin": harness.user_with_role("admin"), "db": harness.admin_db()}


def for_admin(db, value):
    """The app client's Ref -> the admin client's DocumentReference."""
    if isinstance(value, Ref):
        return db.document(value.path.split("/documents/", 1)[1])
    if isinstance(value, dict):
        return {k: for_admin(db, v) for k, v in value.items()}
    return value


def run(spec: Spec, actor: str, op: str, world) -> bool:
    db, owner, user = world["db"], world["owner"], world[actor]
    case = uuid.uuid4().hex[:10]
    path = spec.path(owner.uid, case)
    if spec.needs_profile:  # other cases delete or replace the owner's profile
        db.document(f"users/{owner.uid}").set(BY_NAME["users"].stored(owner.uid))
    if op != "create":
        db.document(path).set(for_admin(db, spec.stored(owner.uid)))
    else:
        db.document(path).delete()
    if spec.name == "fcm_tokens" and op == "create":  # a live profile: a denial is the rule's, not a missing profile's
        db.document(f"users/{owner.uid}").set(for_admin(db, BY_NAME["users"].stored(owner.uid)))
    client = AppClient(user)
    actor_uid = user.uid if user else ""
    payload = spec.payload(owner.uid, actor_uid)
    if spec.name == "users" and op == "create" and user is not None:
        payload = {**payload, "uid": owner.uid, "email": owner.email if actor == "owner" else ""}
    try:
        if op == "get":
            client.get(path)
        elif op == "list":
            collection_path = path.rsplit("/", 1)[0]
            parent, _, collection = collection_path.rpartition("/")
            where = spec.owner_filter(owner.uid) if spec.owner_filter else []
            client.query(collection, where=where, parent=parent)
        elif op == "create":
            collection, doc_id = path.rsplit("/", 1)
            client.create(collection, doc_id, payload)
        elif op == "update":
            client.update(path, spec.update or payload)
        else:
            client.delete(path)
        return True
    except Denied:
        return False


CASES = [(s.name, a, op) for s, a, op in itertools.product(SPECS, ACTORS, OPS)]
BY_NAME = {s.name: s for s in SPECS}


def test_the_matrix_is_big_enough():
    assert len(CASES) >= 200 and len(BY_NAME) == len(SPECS)


@pytest.mark.parametrize(("collection", "actor", "op"), CASES, ids=["-".join(c) for c in CASES])
def test_rules(world, collection, actor, op):
    spec = BY_NAME[collection]
    expected = actor in spec.allowed.get(op, set())
    assert run(spec, actor, op, world) is expected, f"{actor} {op} {collection}: expected {'allow' if expected else 'deny'}"


# ---- field-level cases ---------------------------------------------------------------

def profile(world) -> str:
    owner = world["owner"]
    world["db"].document(f"users/{owner.uid}").set(BY_NAME["users"].stored(owner.uid))
    return f"users/{owner.uid}"


@pytest.mark.parametrize("field,value", [("role", "admin"), ("status", "disabled"), ("uid", "someone"),
                                         ("email", "new@example.com"), ("profile_source", "client"),
                                         ("created_time", dt.datetime(2020, 1, 1, tzinfo=dt.UTC))])
def test_a_user_cannot_set_server_fields_of_their_profile(world, field, value):
    path = profile(world)
    with pytest.raises(Denied):
        AppClient(world["owner"]).update(path, {field: value})


def test_a_profile_created_with_a_role_is_refused(world):
    owner = world["owner"]
    world["db"].document(f"users/{owner.uid}").delete()
    with pytest.raises(Denied):
        AppClient(owner).create("users", owner.uid, {"uid": owner.uid, "email": "", "role": "admin"})
    with pytest.raises(Denied):
        AppClient(owner).create("users", owner.uid, {"uid": owner.uid, "email": "spoofed@example.com"})


def test_marking_someone_elses_notification_read_is_refused(world):
    owner, other = world["owner"], world["other"]
    path = f"users/{owner.uid}/notifications/field-1"
    world["db"].document(path).set(BY_NAME["inbox"].stored(owner.uid))
    with pytest.raises(Denied):
        AppClient(other).update(path, {"read": True})
    with pytest.raises(Denied):
        AppClient(owner).update(path, {"read": "yes"})
    with pytest.raises(Denied):
        AppClient(owner).update(path, {"read": True, "title": "changed"})


def test_creating_a_push_as_another_sender_is_refused(world):
    me, owner = world["other"], world["owner"]
    base = {"notification_title": "t", "notification_text": "x"}
    for payload in ({**base, "sender": uid_ref(owner.uid)}, base,
                    {**base, "sender": uid_ref(me.uid), "status": "succeeded"},
                    {**base, "sender": uid_ref(me.uid), "num_sent": 5}):
        with pytest.raises(Denied):
            AppClient(me).create("ff_user_push_notifications", uuid.uuid4().hex, payload)


def test_a_broadcast_must_name_the_admin_who_creates_it(world):
    """An admin's ID token outlives a demotion by up to an hour: the function checks the named
    sender's profile when it sends, so the rules make an app-written broadcast name its caller."""
    admin, owner = world["admin"], world["owner"]
    base = {"notification_title": "t", "notification_text": "x", "user_refs": "users/nobody"}
    for payload in (base, {**base, "sender": uid_ref(owner.uid)}, {**base, "sender": f"users/{admin.uid}"},
                    {**base, "sender": None}, {**base, "sender": Ref.to(f"orders/{admin.uid}")}):
        with pytest.raises(Denied):
            AppClient(admin).create("ff_push_notifications", uuid.uuid4().hex, payload)
    AppClient(admin).create("ff_push_notifications", uuid.uuid4().hex, {**base, "sender": uid_ref(admin.uid)})


def test_a_token_with_extra_fields_or_for_someone_else_is_refused(world):
    owner, other, db = world["owner"], world["other"], world["db"]
    profile(world)
    with pytest.raises(Denied):
        AppClient(owner).create(f"users/{owner.uid}/fcm_tokens", "t-extra",
                                {"fcm_token": "t", "device_type": "iOS", "role": "admin"})
    with pytest.raises(Denied):
        AppClient(other).create(f"users/{owner.uid}/fcm_tokens", "t-other", {"fcm_token": "t", "device_type": "iOS"})
    db.document(f"users/{owner.uid}/fcm_tokens/t-stored").set({"fcm_token": "t", "device_type": "iOS", "created_at": NOW})
    with pytest.raises(Denied):  # nor may the owner rewrite one addFcmToken stored
        AppClient(owner).update(f"users/{owner.uid}/fcm_tokens/t-stored", {"fcm_token": "t2"})
    db.document(f"users/{owner.uid}/fcm_tokens/t-stored").delete()


def test_unfiltered_lists_of_owned_collections_are_refused(world):
    for collection in ("orders", "payments", "ff_user_push_notifications", "users"):
        with pytest.raises(Denied):
            AppClient(world["owner"]).query(collection)
    with pytest.raises(Denied):
        AppClient(world["owner"]).query("products")  # could include archived products


def test_settings_other_than_notifications_are_refused(world):
    owner = world["owner"]
    profile(world)
    with pytest.raises(Denied):
        AppClient(owner).set(f"users/{owner.uid}/settings/billing", {"plan": "free"})


# ---- field shapes (issue 16): type, size and allowed keys of every field the app writes ----

PUSH = {"notification_title": "t", "notification_text": "x", "user_refs": "users/nobody"}


@pytest.mark.parametrize(("field", "value"), [
    ("notification_title", ""), ("notification_title", 5), ("notification_title", "t" * 201),
    ("notification_text", "x" * 1001), ("notification_text", None),
    ("notification_image_url", "http://example.com/a.png"), ("notification_image_url", "javascript:alert(1)"),
    ("notification_image_url", "https://" + "a" * 2041), ("notification_image_url", 3),
    ("notification_sound", "s" * 101), ("notification_sound", True),
    ("scheduled_time", "tomorrow"), ("target_audience", "Everyone"), ("initial_page_name", "p" * 201),
    ("parameter_data", "d" * 2001), ("parameter_data", {"id": "1"}), ("user_refs", "u" * 50_001),
    ("user_refs", ["users/nobody"]), ("timestamp", "now"), ("admitted_time", NOW), ("role", "admin"),
])
def test_a_push_with_a_malformed_field_is_refused(world, field, value):
    me = world["other"]
    for collection, who, extra in (("ff_user_push_notifications", me, {"sender": uid_ref(me.uid)}),
                                   ("ff_push_notifications", world["admin"], {"sender": uid_ref(world["admin"].uid)})):
        with pytest.raises(Denied):
            AppClient(who).create(collection, uuid.uuid4().hex, {**PUSH, **extra, field: value})


def test_a_push_with_every_field_well_formed_is_allowed(world):
    me = world["other"]
    AppClient(me).create("ff_user_push_notifications", uuid.uuid4().hex, {
        **PUSH, "sender": uid_ref(me.uid), "notification_image_url": "https://cdn.example.com/a.png",
        "notification_sound": "default", "scheduled_time": NOW, "target_audience": "iOS",
        "initial_page_name": "p" * 200, "parameter_data": "d" * 2000, "timestamp": NOW, "status": ""})


@pytest.mark.parametrize(("field", "value"), [
    ("display_name", 7), ("display_name", "n" * 201), ("photo_url", "http://example.com/me.png"),
    ("photo_url", "javascript:alert(1)"), ("photo_url", ["https://x"]), ("phone_number", "1" * 41),
    ("favourite_colour", "blue"), ("fcm_token", "t"),
])
def test_a_profile_field_of_the_wrong_shape_or_unknown_is_refused(world, field, value):
    path = profile(world)
    with pytest.raises(Denied):
        AppClient(world["owner"]).update(path, {field: value})
    owner = world["owner"]
    world["db"].document(path).delete()
    with pytest.raises(Denied):
        AppClient(owner).create("users", owner.uid, {"uid": owner.uid, "email": owner.email, field: value})


def test_a_well_formed_profile_is_allowed(world):
    owner = world["owner"]
    world["db"].document(f"users/{owner.uid}").delete()
    AppClient(owner).create("users", owner.uid, {"uid": owner.uid, "email": owner.email, "display_name": "n" * 200,
                                                 "photo_url": "https://x/y.png", "phone_number": "+41 79 000 00 00",
                                                 "created_time": NOW})
    AppClient(owner).update(f"users/{owner.uid}", {"display_name": "Renamed", "photo_url": "", "phone_number": ""})


@pytest.mark.parametrize("preferences", [
    {"welcome": {"email": "no"}}, {"welcome": True}, {"welcome": {"sms": False}}, {"newsletter": {"email": False}},
    {"order_paid": {"push": 0}},
])
def test_notification_settings_of_the_wrong_shape_are_refused(world, preferences):
    owner = world["owner"]
    profile(world)  # refused for the shape, not for a missing profile
    with pytest.raises(Denied):
        AppClient(owner).set(f"users/{owner.uid}/settings/notifications", preferences)


def test_notification_settings_of_every_type_are_allowed(world):
    from flowsuite.notifications.templates import TEMPLATES

    owner = world["owner"]
    profile(world)
    AppClient(owner).set(f"users/{owner.uid}/settings/notifications",
                         {kind: {"inbox": True, "push": False, "email": False} for kind in TEMPLATES})


# What FCM issues: ~150-180 characters of letters, digits, '_', ':' and '-' (Android, APNs-derived, web)
REAL_TOKEN = ("dQw4w9WgXcQ:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx_Q3wTbRnWJ9LtSq5hLzy8R8l6mNoPqRsTuVwXyZ"
              "a0b1c2d3e4f5g6h7i8j9k0l1m2n3o4p5q6r7s8t9u0v1w2x3y4z5A6B7C8D9E0F1G2H3I4J5K6L7M8N9O0P1Q2R3S4T5")


@pytest.mark.parametrize("token", [
    {"fcm_token": "t" * 4097, "device_type": "iOS"}, {"fcm_token": "t" * 1025, "device_type": "iOS"},
    {"fcm_token": ("x " * 2048)[:4096], "device_type": "iOS"}, {"fcm_token": "junk token", "device_type": "iOS"},
    {"fcm_token": "a/b.c", "device_type": "iOS"}, {"fcm_token": "", "device_type": "iOS"},
    {"fcm_token": 5, "device_type": "iOS"},
    {"fcm_token": "t", "device_type": "Windows"}, {"fcm_token": "t", "device_type": "iOS", "created_at": "now"},
])
def test_a_push_token_of_the_wrong_shape_is_refused(world, token):
    """Directly by the rules (they refuse every direct create), and by addFcmToken's request
    model, with the failing field, writing nothing."""
    owner, db = world["owner"], world["db"]
    profile(world)  # active
    with pytest.raises(Denied):
        AppClient(owner).create(f"users/{owner.uid}/fcm_tokens", uuid.uuid4().hex, token)
    before = {s.id for s in db.collection(f"users/{owner.uid}/fcm_tokens").stream()}
    payload = {"userDocPath": f"users/{owner.uid}", "fcmToken": token["fcm_token"], "deviceType": token["device_type"],
               **({"created_at": token["created_at"]} if "created_at" in token else {})}
    with pytest.raises(CallableError) as err:
        call("addFcmToken", payload, user=owner)
    expected = "created_at" if "created_at" in token else "deviceType" if token["device_type"] == "Windows" else "fcmToken"
    assert err.value.code == "invalid-argument" and err.value.fields == [expected]
    assert {s.id for s in db.collection(f"users/{owner.uid}/fcm_tokens").stream()} == before


def test_a_real_shaped_push_token_is_denied_directly_and_registered_through_addfcmtoken(world):
    """A direct create is refused for every account, live or not: a member could otherwise write
    hundreds of thousands of token documents for every broadcast to read. addFcmToken registers
    the same token."""
    owner, db = world["owner"], world["db"]
    path = profile(world)
    for doc_id, token in (("real", {"fcm_token": REAL_TOKEN, "device_type": "Android", "created_at": NOW}),
                          ("longest", {"fcm_token": "t" * 1024, "device_type": "iOS"})):
        with pytest.raises(Denied):
            AppClient(owner).create(f"users/{owner.uid}/fcm_tokens", doc_id, token)
    for status in ("disabled", "deleting"):  # an unexpired ID token of an account that is no longer live
        db.document(path).update({"status": status})
        with pytest.raises(Denied):
            AppClient(owner).create(f"users/{owner.uid}/fcm_tokens", f"when-{status}", {
                "fcm_token": REAL_TOKEN, "device_type": "Android"})
    db.document(path).delete()  # deleted (erased), or never created
    with pytest.raises(Denied):
        AppClient(owner).create(f"users/{owner.uid}/fcm_tokens", "without-profile", {
            "fcm_token": REAL_TOKEN, "device_type": "Android"})
    profile(world)
    assert not {"real", "longest", "when-disabled", "when-deleting", "without-profile"} & {
        s.id for s in db.collection(f"users/{owner.uid}/fcm_tokens").stream()}
    for value, device in ((REAL_TOKEN, "Android"), ("t" * 1024, "iOS")):
        token_id = call("addFcmToken", {"userDocPath": f"users/{owner.uid}", "fcmToken": value, "deviceType": device},
                        user=owner)["token_id"]
        stored = db.document(f"users/{owner.uid}/fcm_tokens/{token_id}").get().to_dict()
        assert (stored["fcm_token"], stored["device_type"]) == (value, device)
        assert isinstance(stored["created_at"], dt.datetime)
        AppClient(owner).delete(f"users/{owner.uid}/fcm_tokens/{token_id}")  # the owner still removes their own


# ---- admin and staff reads follow the profile as it is now, not only the token: an ID token keeps
# its role claim for up to an hour after a demotion, a disabling or a deletion ------------------

def privileged_reads(world, user) -> dict[str, bool]:
    """Whether each admin or staff read is allowed for ``user``'s token, on documents made for it."""
    db, owner = world["db"], world["owner"]
    case = uuid.uuid4().hex[:10]
    db.document(f"dead_letters/d-{case}").set({"x": 1})
    db.document(f"orders/o-{case}").set(for_admin(db, BY_NAME["orders"].stored(owner.uid)))
    db.document(f"payments/pay-{case}").set(for_admin(db, BY_NAME["payments"].stored(owner.uid)))
    db.document(f"ff_push_notifications/b-{case}").set(BY_NAME["ff_push_notifications"].stored(owner.uid))
    client = AppClient(user)
    reads = {
        "dead_letters get": lambda: client.get(f"dead_letters/d-{case}"),
        "dead_letters list": lambda: client.query("dead_letters"),
        "orders get": lambda: client.get(f"orders/o-{case}"),
        "orders list": lambda: client.query("orders"),  # every order, unfiltered
        "payments get": lambda: client.get(f"payments/pay-{case}"),
        "ff_push_notifications get": lambda: client.get(f"ff_push_notifications/b-{case}"),
        "ff_push_notifications list": lambda: client.query("ff_push_notifications"),
    }
    allowed = {}
    for name, read in reads.items():
        try:
            read()
            allowed[name] = True
        except Denied:
            allowed[name] = False
    return allowed


ADMIN_READS = {"dead_letters get": True, "dead_letters list": True, "orders get": True, "orders list": True,
               "payments get": True, "ff_push_notifications get": True, "ff_push_notifications list": True}
STAFF_READS = {**ADMIN_READS, "dead_letters get": False, "dead_letters list": False,
               "ff_push_notifications get": False, "ff_push_notifications list": False}
NO_READS = dict.fromkeys(ADMIN_READS, False)


@pytest.mark.parametrize("how", ["identity_set_role", "profile_written_by_the_server"])
def test_an_admin_demoted_since_their_token_was_issued_reads_nothing_an_admin_reads(world, how):
    demoted = harness.user_with_role("admin")
    assert privileged_reads(world, demoted) == ADMIN_READS
    if how == "identity_set_role":
        assert call("identity_set_role", {"uid": demoted.uid, "role": "member"}, user=world["admin"])["changed"]
        assert harness.claims_of(demoted.uid)["role"] == "member"
    else:
        world["db"].document(f"users/{demoted.uid}").update({"role": "member"})
    assert demoted.claims["role"] == "admin"  # the token issued before the demotion, still unexpired
    assert privileged_reads(world, demoted) == NO_READS


def test_an_admin_demoted_to_staff_keeps_the_staff_reads_only(world):
    demoted = harness.user_with_role("admin")
    world["db"].document(f"users/{demoted.uid}").update({"role": "staff"})
    assert demoted.claims["role"] == "admin"
    assert privileged_reads(world, demoted) == STAFF_READS


def test_a_disabled_staff_reads_no_one_elses_orders(world):
    staff = harness.user_with_role("staff")
    assert privileged_reads(world, staff) == STAFF_READS
    call("identity_disable_user", {"uid": staff.uid, "disabled": True}, user=world["admin"])
    assert harness.doc(world["db"], f"users/{staff.uid}")["status"] == "disabled"
    assert staff.claims["role"] == "staff"
    assert privileged_reads(world, staff) == NO_READS


def test_a_deleted_admin_reads_nothing_an_admin_reads(world):
    gone = harness.user_with_role("admin")
    assert privileged_reads(world, gone) == ADMIN_READS
    call("identity_delete_account", {"uid": gone.uid}, user=world["admin"])
    eventually(lambda: harness.doc(world["db"], f"users/{gone.uid}") is None, timeout=60, what="the profile erased")
    assert gone.claims["role"] == "admin"
    assert privileged_reads(world, gone) == NO_READS


def test_a_broadcast_from_a_demoted_admins_token_is_refused_by_the_rules(world):
    demoted = harness.user_with_role("admin")
    world["db"].document(f"users/{demoted.uid}").update({"role": "member"})
    with pytest.raises(Denied):
        AppClient(demoted).create("ff_push_notifications", uuid.uuid4().hex, {
            "notification_title": "t", "notification_text": "x", "user_refs": "users/nobody",
            "sender": uid_ref(demoted.uid)})


def test_a_deleted_accounts_token_writes_no_notification_settings(world):
    """users/{uid}/settings/notifications needs the profile to exist and be active: after an
    erasure no pass of reconciliation (which pages profiles) would find the document."""
    db = world["db"]
    leaving = harness.sign_up()
    path = f"users/{leaving.uid}/settings/notifications"
    AppClient(leaving).set(path, {"welcome": {"email": False}})  # allowed while the account is live
    call("identity_delete_account", {}, user=leaving)
    eventually(lambda: harness.doc(db, f"users/{leaving.uid}") is None and harness.doc(db, path) is None,
               timeout=60, what="the profile and the settings erased")
    for write in (lambda: AppClient(leaving).set(path, {"welcome": {"push": False}}),
                  lambda: AppClient(leaving).create(f"users/{leaving.uid}/settings", "notifications",
                                                    {"order_paid": {"email": False}})):
        with pytest.raises(Denied):
            write()
    assert harness.doc(db, path) is None


def test_a_disabled_accounts_token_writes_no_notification_settings(world):
    db = world["db"]
    user = harness.sign_up()
    path = f"users/{user.uid}/settings/notifications"
    db.document(f"users/{user.uid}").update({"status": "disabled"})
    with pytest.raises(Denied):
        AppClient(user).set(path, {"welcome": {"email": False}})
    db.document(f"users/{user.uid}").update({"status": "active"})
    AppClient(user).set(path, {"welcome": {"email": False}})
    assert harness.doc(db, path) == {"welcome": {"email": False}}
