"""Admin alerts (a dispute, an order that lost its customer) go to every admin once per delivery,
whoever is added or removed between its retries (review finding 2). Pure."""

from __future__ import annotations

from flowsuite.core.events import Event
from flowsuite.core.ids import person_key
from flowsuite.notifications import service


class Crash(Exception):
    pass


def alert(event: Event, admins: list[str], sent: list[str], *, crash_after: int | None = None) -> None:
    """What the alert subscribers do for one channel: a step per admin, under the delivery's ``once``."""
    for n, admin in enumerate(admins):
        if crash_after is not None and n == crash_after:
            raise Crash
        event.once(service.admin_step("email", admin), lambda admin=admin: sent.append(admin) or {"sent": 1})


def test_an_admin_added_between_retries_gets_the_alert_and_nobody_gets_it_twice():
    event, sent = Event(envelope=None, data=None), []
    try:
        alert(event, ["bob", "carol"], sent, crash_after=1)  # the instance dies after bob's email
    except Crash:
        pass
    alert(event, ["alice", "bob", "carol"], sent)  # the retry: alice became admin meanwhile (sorted first)
    assert sorted(sent) == ["alice", "bob", "carol"]


def test_an_admin_removed_between_retries_makes_no_one_miss_the_alert():
    event, sent = Event(envelope=None, data=None), []
    try:
        alert(event, ["alice", "bob", "carol"], sent, crash_after=1)
    except Crash:
        pass
    alert(event, ["bob", "carol"], sent)  # alice was demoted before the retry
    assert sent == ["alice", "bob", "carol"]


def test_a_step_name_is_a_plain_name_per_admin_and_holds_no_uid():
    uid = "a-uid.with/odd:chars"
    name = service.admin_step("push", uid)
    assert name == f"push_admin_{person_key(uid)}" and name.isidentifier() and uid not in name
    assert service.admin_step("push", "alice") != service.admin_step("push", "bob")
    assert service.admin_step("push", "alice") != service.admin_step("email", "alice")
