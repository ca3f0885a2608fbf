"""How a dispute's events are ordered: shared by payments (which records Stripe's dispute events)
and orders (which applies payment.disputed). No models here, so a module that only needs the
ordering (orders' service, on every order's import path) does not build the payment events."""

# Stripe's dispute statuses, in the order a dispute goes through them (an inquiry, ``warning_*``,
# may become a chargeback); the last three close it.
DISPUTE_STAGES = {"warning_needs_response": 0, "warning_under_review": 1, "needs_response": 2, "under_review": 3,
                  "warning_closed": 4, "won": 4, "lost": 4}
DISPUTE_CLOSED = frozenset({"won", "lost", "warning_closed"})


def dispute_step_applies(*, known_id: str | None, known_status: str | None, known_time: int,
                         dispute_id: str, status: str, created: int) -> bool:
    """Whether a dispute event (``status`` at Stripe's time ``created``) is newer than what is
    recorded (``known_*``: the newest applied). Stripe sends dispute events out of order, and
    so does the bus: an older event never steps the status back (a late
    ``charge.dispute.created``, needs_response, after an update to under_review), a closed
    dispute never reopens, and two in the same second go by the dispute's stages. An event
    with no time (0: published before events carried it) is judged by the closed rule alone.
    Pure."""
    if known_id is None:
        return True
    if known_id == dispute_id and known_status in DISPUTE_CLOSED and status not in DISPUTE_CLOSED:
        return False
    if not created:
        return True
    if created != known_time:
        return created > known_time
    return known_id != dispute_id or DISPUTE_STAGES.get(status, 0) >= DISPUTE_STAGES.get(known_status or "", 0)
