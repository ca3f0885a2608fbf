"""Targeted FlutterFlow pushes stay targeted: the pure checks behind ffpush.process."""

import datetime as dt
import re
from pathlib import Path

import pytest
from flowsuite.notifications import config, ffpush
from flowsuite.notifications.templates import TEMPLATES

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
RULES = (Path(__file__).resolve().parents[2] / "firestore.rules").read_text()
LIMITS = ffpush.Limits(member_cap=10, staff_cap=100, admin_cap=1000, rate=30)
BASE = {"notification_title": "Hi", "notification_text": "ping", "user_refs": "/users/a"}


def reason(doc: dict) -> str | None:
    return ffpush.check(doc)[1]


def test_a_flutterflow_push_passes():
    request, problem = ffpush.check({**BASE, "notification_image_url": "https://cdn.example.com/a.png",
                                     "notification_sound": "default", "target_audience": "iOS",
                                     "initial_page_name": "Shop", "parameter_data": '{"id":"1"}', "status": "",
                                     "scheduled_time": NOW, "timestamp": NOW, "sender": object()})
    assert problem is None and request.target_audience == "iOS" and request.scheduled_time == NOW


@pytest.mark.parametrize(("field", "value", "needle"), [
    ("notification_title", "", "required"),
    ("notification_title", "   ", "required"),
    ("notification_text", None, "required"),
    ("notification_title", 5, "required"),
    ("notification_title", "t" * 201, "notification_title"),
    ("notification_text", "x" * 1001, "notification_text"),
    ("notification_image_url", "http://example.com/a.png", "https"),
    ("notification_image_url", "javascript:alert(1)", "https"),
    ("notification_image_url", "https://" + "a" * 2048, "notification_image_url"),
    ("notification_image_url", 7, "notification_image_url"),
    ("notification_sound", ["x"], "notification_sound"),
    ("initial_page_name", "p" * 201, "initial_page_name"),
    ("parameter_data", "d" * 2001, "parameter_data"),
    ("parameter_data", {"id": 1}, "parameter_data"),
    ("user_refs", ["users/a"], "user_refs"),
    ("user_refs", "u" * 50_001, "user_refs"),
    ("target_audience", "Everyone", "target_audience"),
    ("scheduled_time", "2026-06-02T00:00:00Z", "scheduled_time"),
    ("timestamp", 1234, "timestamp"),
    ("role", "admin", "unknown fields: role"),
])
def test_each_field_is_checked_for_type_and_length(field, value, needle):
    problem = reason({**BASE, field: value})
    assert problem is not None and needle in problem


def test_server_fields_of_a_scheduled_push_are_tolerated():
    assert reason({**BASE, "scheduled_for": NOW, "admitted_time": NOW, "admitted_recipients": 1}) is None


def test_user_refs_name_users_only_and_never_reserved_ids():
    assert ffpush.parse_user_refs("users/a, /users/b,projects/p/databases/(default)/documents/users/c,users/a") == [
        "a", "b", "c"]
    assert ffpush.parse_user_refs("users/__x__,users/.,users/..,orders/o1,users/,users/" + "u" * 129) == []
    assert ffpush.parse_user_refs("") == [] and ffpush.parse_user_refs(None) == []


def test_a_time_beyond_the_schedulers_horizon_is_refused():
    assert ffpush.schedule_problem(None, NOW) is None
    assert ffpush.schedule_problem(NOW + dt.timedelta(days=29), NOW) is None
    problem = ffpush.schedule_problem(NOW + dt.timedelta(days=31), NOW)
    assert problem and "30 days" in problem


def test_the_recipient_cap_depends_on_the_senders_role():
    assert ffpush.admission("member", 10, None, NOW, LIMITS)[0] is None
    refused, state = ffpush.admission("member", 11, None, NOW, LIMITS)
    assert "at most 10" in refused and state == {}
    assert ffpush.admission("staff", 100, None, NOW, LIMITS)[0] is None
    assert "at most 100" in ffpush.admission("staff", 101, None, NOW, LIMITS)[0]
    assert ffpush.admission("admin", 1000, None, NOW, LIMITS)[0] is None
    assert ffpush.admission("owner", 11, None, NOW, LIMITS)[0] is not None  # an unknown role is a member


def test_the_rate_limit_counts_recipients_not_documents():
    refused, state = ffpush.admission("member", 10, None, NOW, LIMITS)
    assert refused is None and state == {"window_start": NOW, "count": 10}
    refused, state = ffpush.admission("member", 10, state, NOW + dt.timedelta(seconds=5), LIMITS)
    assert refused is None and state["count"] == 20
    assert ffpush.admission("member", 10, state, NOW + dt.timedelta(seconds=9), LIMITS)[0] is None  # 30 of 30
    refused, after = ffpush.admission("member", 2, {**state, "count": 29}, NOW + dt.timedelta(seconds=10), LIMITS)
    assert refused.startswith("rate limit") and after == {**state, "count": 29}  # refused: nothing charged
    refused, fresh = ffpush.admission("member", 10, state, NOW + dt.timedelta(seconds=61), LIMITS)
    assert refused is None and fresh == {"window_start": NOW + dt.timedelta(seconds=61), "count": 10}


def test_staff_and_admins_may_reach_at_least_their_cap_per_window():
    assert LIMITS.budget("member") == 30 and LIMITS.budget("staff") == 100 and LIMITS.budget("admin") == 1000
    assert ffpush.admission("staff", 100, None, NOW, LIMITS)[0] is None


@pytest.mark.parametrize(("profile", "needle"), [
    (None, "no account profile"),  # deleted (erased), or never signed in
    ({"role": "admin", "status": "disabled"}, "not active (disabled)"),  # a role never lets a disabled account send
    ({"role": "member", "status": "deleting"}, "not active (deleting)"),
    ({"role": "member"}, "not active (not completed)"),  # identity has not completed the profile
    ({"status": ["active"]}, "not active (not completed)"),
    ({}, "not active"),
])
def test_only_an_active_sender_may_push(profile, needle):
    refusal = ffpush.sender_refusal(profile)
    assert refusal and needle in refusal


def test_an_active_sender_may_push():
    assert ffpush.sender_refusal({"role": "member", "status": "active"}) is None
    assert ffpush.sender_refusal({"status": "active"}) is None


@pytest.mark.parametrize(("profile", "needle"), [
    ({"role": "member", "status": "active"}, "no longer an admin (member)"),  # demoted, old token still admin
    ({"role": "staff", "status": "active"}, "no longer an admin (staff)"),
    ({"status": "active"}, "no longer an admin (no role)"),
    ({"role": ["admin"], "status": "active"}, "no longer an admin (no role)"),
    ({"role": "admin", "status": "disabled"}, "not active (disabled)"),  # the account first, then the role
    ({"role": "admin"}, "not active (not completed)"),
    (None, "no account profile"),
])
def test_only_an_active_admin_may_broadcast(profile, needle):
    refusal = ffpush.broadcast_sender_refusal(profile)
    assert refusal and needle in refusal


def test_an_active_admin_may_broadcast():
    assert ffpush.broadcast_sender_refusal({"role": "admin", "status": "active"}) is None


def test_the_rules_make_an_app_written_broadcast_name_its_sender():
    block = re.search(r"match /ff_push_notifications/\{pushId\} \{(.*?)\}", RULES, re.S).group(1)
    assert "allow create: if isAdmin() && freshPush() && request.resource.data.sender == userRef(request.auth.uid);" \
        in block


@pytest.mark.parametrize("state", [{"window_start": "yesterday", "count": "many"}, {"count": -5}, {"count": True}])
def test_a_malformed_limiter_state_starts_a_new_window(state):
    refused, new = ffpush.admission("member", 3, state, NOW, LIMITS)
    assert refused is None and new == {"window_start": NOW, "count": 3}


def test_the_defaults():
    params = {p.name: p.default for p in (config.PUSH_MAX_RECIPIENTS, config.PUSH_MAX_RECIPIENTS_STAFF,
                                           config.PUSH_MAX_RECIPIENTS_ADMIN, config.PUSH_RATE_LIMIT)}
    assert params == {"PUSH_MAX_RECIPIENTS": 10, "PUSH_MAX_RECIPIENTS_STAFF": 100, "PUSH_MAX_RECIPIENTS_ADMIN": 1000,
                      "PUSH_RATE_LIMIT": 30}


def test_the_rules_check_the_same_limits_as_the_code():
    for field, limit in (("notification_title", config.PUSH_TITLE_MAX), ("notification_text", config.PUSH_TEXT_MAX)):
        assert f"d.{field}.size() <= {limit}" in RULES
    for field, limit in (("notification_image_url", config.PUSH_IMAGE_URL_MAX),
                         ("notification_sound", config.PUSH_SOUND_MAX),
                         ("initial_page_name", config.PUSH_PAGE_MAX),
                         ("parameter_data", config.PUSH_PARAMETER_DATA_MAX),
                         ("user_refs", config.PUSH_USER_REFS_MAX)):
        assert f"optString(d, '{field}', {limit})" in RULES
    audiences = re.search(r"d\.get\('target_audience', ''\) in \[([^\]]*)\]", RULES).group(1)
    assert [a.strip().strip("'") for a in audiences.split(",")] == list(config.PUSH_AUDIENCES)
    allowed = re.search(r"function freshPush\(\) \{.*?hasOnly\(\[(.*?)\]\)", RULES, re.S).group(1)
    assert [k.strip().strip("'") for k in allowed.replace("\n", " ").split(",")] == list(ffpush.APP_FIELDS)


def test_the_rules_know_every_notification_type():
    kinds = re.search(r"function preferences\(d\) \{.*?hasOnly\(\[(.*?)\]\)", RULES, re.S).group(1)
    assert sorted(k.strip().strip("'") for k in kinds.replace("\n", " ").split(",")) == sorted(TEMPLATES)
    for kind in TEMPLATES:
        assert f"(!('{kind}' in d) || switches(d.{kind}))" in RULES


def test_a_push_refused_for_a_sender_without_a_profile_keeps_no_sender():
    named = {"recipient_uids": ["u1"]}
    assert ffpush.refusal_fields(ffpush.sender_refusal(None), named) == {"recipient_uids": ["u1"], "sender": None}
    disabled = ffpush.sender_refusal({"status": "disabled"})
    assert ffpush.refusal_fields(disabled, named) == named  # a live account: still its push


# ---- a scheduled targeted push, due now: the sender's role as it is now -------------------

def test_a_push_due_now_must_fit_the_cap_of_the_senders_role_now():
    """Admitted while its sender was an admin (1,000 recipients); demoted since: refused."""
    refusal = ffpush.due_sender_refusal({"role": "member", "status": "active"}, 11, LIMITS)
    assert refusal == "too many recipients: a push may name at most 10 users (11 named) for the sender's role now (member)"
    assert ffpush.due_sender_refusal({"role": "admin", "status": "active"}, 11, LIMITS) is None
    assert ffpush.due_sender_refusal({"role": "staff", "status": "active"}, 100, LIMITS) is None
    assert "at most 100 users" in ffpush.due_sender_refusal({"role": "staff", "status": "active"}, 101, LIMITS)
    assert "(member)" in ffpush.due_sender_refusal({"role": "root", "status": "active"}, 11, LIMITS)  # unknown: member
    assert ffpush.due_sender_refusal({"role": "member", "status": "active"}, 10, LIMITS) is None


def test_a_push_due_now_checks_the_account_before_the_cap():
    assert "not active (disabled)" in ffpush.due_sender_refusal({"role": "admin", "status": "disabled"}, 1, LIMITS)
    assert ffpush.due_sender_refusal(None, 1, LIMITS) == ffpush.NO_PROFILE


# ---- anonymous senders ------------------------------------------------------------------

def test_the_rules_refuse_targeted_pushes_from_anonymous_accounts():
    block = re.search(r"match /ff_user_push_notifications/\{pushId\} \{(.*?)\n    \}", RULES, re.S).group(1)
    assert "request.auth.token.firebase.sign_in_provider != 'anonymous'" in block


# ---- devices: FCM's token shape, at most PUSH_TOKENS_PER_USER a user, pages ---------------

REAL_TOKEN = ("dQw4w9WgXcQ:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx_Q3wTbRnWJ9LtSq5hLzy8R8l6mNoPqRsTuVwXyZ"
              "a0b1c2d3e4f5g6h7i8j9k0l1m2n3o4p5q6r7s8t9u0v1w2x3y4z5A6B7C8D9E0F1G2H3I4J5K6L7M8N9O0P1Q2R3S4T5")


@pytest.mark.parametrize("token", [REAL_TOKEN, "tok-0f3a", "unavailable-only-device", "invalid-stale-device",
                                   "t" * config.FCM_TOKEN_MAX, "a_b:c-d"])
def test_fcm_shaped_tokens_are_usable(token):
    assert ffpush.usable_token(token)


@pytest.mark.parametrize("token", ["", "t" * (config.FCM_TOKEN_MAX + 1), "has space", "slash/y", "dot.x", "new\nline",
                                   "tok\n", "é", 5, None, ["tok"]])
def test_other_tokens_are_not(token):
    assert not ffpush.usable_token(token)


def test_the_rules_refuse_every_direct_token_write_and_addfcmtoken_checks_the_shape():
    """Tokens are registered through addFcmToken only (it keeps a user's newest 10): a direct
    create would let a member flood their fcm_tokens, which every broadcast reads."""
    from flowsuite.notifications.models import AddFcmToken

    block = re.search(r"match /fcm_tokens/\{tokenId\} \{(.*?)\n      \}", RULES, re.S).group(1)
    allows = [line.strip() for line in block.splitlines() if line.strip().startswith("allow")]
    assert allows == ["allow read, delete: if isOwner(uid);", "allow create, update: if false;"]
    ok = {"userDocPath": "users/u1", "deviceType": "iOS"}
    assert AddFcmToken.model_validate({**ok, "fcmToken": REAL_TOKEN}).fcmToken == REAL_TOKEN
    for bad in ("x" * (config.FCM_TOKEN_MAX + 1), "junk token", "a/b", "dot.x"):
        with pytest.raises(ValueError):
            AddFcmToken.model_validate({**ok, "fcmToken": bad})
    assert AddFcmToken.model_validate({**ok, "fcmToken": " tok-1\n"}).fcmToken == "tok-1"  # requests are trimmed


def row(owner: str, token, minute: int | None = None, device="iOS") -> ffpush.TokenRow:
    created = NOW + dt.timedelta(minutes=minute) if minute is not None else None
    return ffpush.TokenRow(owner=f"users/{owner}/fcm_tokens", token=token, device_type=device, created_at=created)


def test_a_user_gets_at_most_n_devices_their_newest():
    rows = [row("a", f"junk-{i}", minute=i) for i in range(30)] + [row("b", "b-only", minute=0)]
    groups = list(ffpush.newest_per_owner(rows, 10))
    assert groups == [[f"junk-{i}" for i in range(29, 19, -1)], ["b-only"]]


def test_a_token_without_created_at_is_the_oldest_and_ties_keep_the_first_read():
    rows = [row("a", "undated"), row("a", "first", minute=1), row("a", "second", minute=1), row("a", "new", minute=2)]
    assert list(ffpush.newest_per_owner(rows, 2)) == [["new", "first"]]
    assert list(ffpush.newest_per_owner(rows, 10)) == [["new", "first", "second", "undated"]]


def test_a_token_registered_twice_by_one_user_counts_once():
    rows = [row("a", "same", minute=1), row("a", "same", minute=5), row("a", "other", minute=3)]
    assert list(ffpush.newest_per_owner(rows, 2)) == [["same", "other"]]


def test_each_users_group_ends_where_the_next_user_starts_across_pages():
    """Rows come a page at a time, ordered by document path: one user's rows may span pages, but
    they arrive together, and the grouping only sees the stream."""
    rows = [row("a", f"a{i}", minute=i) for i in range(12)] + [row("b", f"b{i}", minute=i) for i in range(3)]
    pages = [rows[i:i + 7] for i in range(0, len(rows), 7)]  # a's rows span two pages
    streamed = (r for page in pages for r in page)
    assert list(ffpush.newest_per_owner(streamed, 10)) == [[f"a{i}" for i in range(11, 1, -1)], ["b2", "b1", "b0"]]


def test_malformed_tokens_and_other_audiences_are_skipped_before_the_cap():
    rows = [row("a", "x" * 4096, minute=9), row("a", "junk token", minute=8), row("a", 7, minute=7),
            row("a", "android-1", minute=6, device="Android"), row("a", "ios-1", minute=1)]
    kept = ffpush.wanted(rows, "iOS")
    assert list(ffpush.newest_per_owner(kept, 1)) == [["ios-1"]]
    assert [r.token for r in ffpush.wanted(rows, "All")] == ["android-1", "ios-1"]


def test_batches_hold_at_most_size_tokens_each_once():
    groups = [["a", "b", "c"], ["c", "d"], ["e"]]
    assert list(ffpush.batches(groups, 2)) == [["a", "b"], ["c", "d"], ["e"]]
    assert list(ffpush.batches([["a", "b"], ["a", "c"]], 500)) == [["a", "b", "c"]]
    assert list(ffpush.batches([], 500)) == []


def test_the_per_user_cap_and_page_size():
    assert config.PUSH_TOKENS_PER_USER == 10 and config.PUSH_TOKEN_PAGE == 500 and config.FCM_CHUNK == 500
    assert config.PUSH_SEND_BUDGET_SECONDS < 120  # stops before the notifications functions' timeout


def test_reading_stops_once_the_deadline_has_passed():
    """paged checks this before each page: a push reads no further than its send budget."""
    from flowsuite.notifications import devices

    assert not devices.past(None, 10**9)  # no deadline: reads everything
    assert not devices.past(100.0, 99.9)
    assert devices.past(100.0, 100.0) and devices.past(100.0, 250.0)


def test_a_stopped_push_says_when_and_how_far_it_got():
    assert ffpush.stopped_reason(90.7, 1500) == ("stopped after 90 s, before the function's time ran out: "
                                                 "1500 devices reached, the remaining recipients were not")
    assert "0 devices reached" in ffpush.stopped_reason(91, 0)  # stopped while still reading


def test_a_user_keeps_the_newest_tokens_and_the_one_just_registered():
    from flowsuite.notifications import devices

    newest_first = [f"t{i}" for i in range(12)]
    assert devices.surplus(newest_first, 10, "t0") == ["t10", "t11"]
    assert devices.surplus(newest_first[:10], 10, "t0") == []
    # an older document dated in the future by a device's clock does not push out the new one
    assert devices.surplus(newest_first, 10, "t11") == ["t9", "t10"]
    assert devices.surplus(["new"], 10, "new") == [] and devices.surplus([], 10, "new") == []


@pytest.mark.parametrize(("doc", "sent"), [({"num_sent": 42}, 42), ({}, 0), ({"num_sent": None}, 0),
                                           ({"num_sent": True}, 0), ({"num_sent": -3}, 0), ({"num_sent": "7"}, 0)])
def test_a_push_failing_unexpectedly_keeps_the_devices_it_recorded(doc, sent):
    assert ffpush.recorded_sent(doc) == sent
