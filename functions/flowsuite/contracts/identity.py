"""Events the identity domain publishes (the contracts other domains subscribe to)."""

from typing import Literal

from flowsuite.core.events import EventData, event_type


@event_type("identity.user_created", source="identity")
class UserCreated(EventData):
    """A user signed up and their profile is complete. Published once per uid."""

    uid: str
    email: str | None = None
    display_name: str | None = None
    via: Literal["blocking", "client"]


@event_type("identity.role_changed", source="identity")
class RoleChanged(EventData):
    """An admin changed a user's role."""

    uid: str
    old_role: str
    new_role: str
    changed_by: str


@event_type("identity.user_deleted", source="identity")
class UserDeleted(EventData):
    """A user's account is gone: every domain erases or anonymises what it holds."""

    uid: str
    reason: Literal["self", "admin", "reconciliation"]


@event_type("identity.email_changed", source="identity")
class EmailChanged(EventData):
    """The profile's email was brought in step with Firebase Auth (a sign-in, a reconciliation
    pass or ``identity_sync_profile`` saw a new address). The address itself is not in the
    event: read it from Auth. ``first``: the account had none before (an anonymous account
    upgraded with linkWithCredential, a phone account that added one), so it has not had its
    welcome email yet."""

    uid: str
    first: bool = False
    via: Literal["sign_in", "reconciliation", "sync"]
