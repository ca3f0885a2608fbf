"""Documents the identity domain owns."""

from typing import Literal

from flowsuite.core.documents import Document, Timestamp, collection


@collection("users/{uid}", read="the owner only",
            write="the owner creates it with FlutterFlow's fields and updates profile fields; identity writes role, "
                  "status, and keeps email and status in step with Firebase Auth",
            read_by={"payments": "whether the account lives (the profile exists and is not deleting) before a "
                                 "payment record names it, so that none is written after its erasure",
                     "orders": "whether the account lives (the profile exists and is not deleting) before an "
                               "order names it (orders_place), so that none is placed after its erasure"})
class UserDoc(Document):
    """A user's profile, FlutterFlow's schema plus server-owned fields."""

    uid: str
    email: str
    display_name: str
    photo_url: str
    phone_number: str
    created_time: Timestamp
    role: Literal["member", "staff", "admin"]
    status: Literal["active", "disabled", "deleting"]
    profile_source: Literal["blocking", "client"]
    pending_role: Literal["staff", "admin"] | None = None  # a listed email's role, granted once it is verified
    updated_time: Timestamp | None = None  # the last change identity made (role, status, email from Auth)


@collection("public_profiles/{uid}", read="any signed-in user", write="identity functions only")
class PublicProfileDoc(Document):
    """What other users may see of a user, kept in step with the profile."""

    uid: str
    display_name: str
    photo_url: str
    updated_time: Timestamp


@collection("identity_state/{name}", read="admins", write="identity functions only")
class IdentityStateDoc(Document):
    """Identity's job state, e.g. identity_state/reconciliation: where the sliced pass stands."""

    cursor: str | None = None  # the last profile id the previous run checked; None: start from the first
    updated_time: Timestamp | None = None
    pass_finished_time: Timestamp | None = None
    last_counts: dict[str, int] | None = None
    # Per collection group scanned for orphans (fcm_tokens, settings): the path of the last
    # document the previous run checked; None: start from the first.
    orphan_cursors: dict[str, str | None] | None = None
