"""Outside errors read correctly (issue 22): FCM's answers by the SDK's own exception types,
the message checked before sending, SMTP's permanent rejections, a stable Message-ID."""

import smtplib

import pytest
from firebase_admin import exceptions, messaging
from flowsuite.notifications import email as mail
from flowsuite.notifications.push import (
    FCM_MAX_PAYLOAD_BYTES,
    PushMessage,
    PushMessageError,
    PushResult,
    account,
    check,
    payload_size,
)


@pytest.mark.parametrize("exc", [messaging.UnregisteredError("gone"), messaging.SenderIdMismatchError("other")])
def test_only_unregistered_and_another_senders_tokens_are_dead(exc):
    result = PushResult()
    account(result, "tok", exc)
    assert result.invalid_tokens == ["tok"] and result.failed == 1


@pytest.mark.parametrize("exc", [exceptions.InvalidArgumentError("bad message"), messaging.QuotaExceededError("slow"),
                                 exceptions.UnavailableError("down"), messaging.ThirdPartyAuthError("apns")])
def test_any_other_fcm_error_keeps_the_token(exc):
    result = PushResult()
    account(result, "tok", exc)
    assert result.invalid_tokens == [] and result.failed == 1 and type(exc).__name__ in result.errors[0]


def test_transient_fcm_errors_are_counted():
    result = PushResult()
    account(result, "a", exceptions.UnavailableError("down"))
    account(result, "b", exceptions.InvalidArgumentError("bad"))
    account(result, "c", None)
    assert (result.sent, result.failed, result.transient) == (1, 2, 1)


def test_a_message_over_fcms_limit_is_refused_before_sending():
    small = PushMessage(title="t", body="b", data={"k": "v"})
    check(small)
    big = PushMessage(title="t", body="x" * FCM_MAX_PAYLOAD_BYTES, data={})
    assert payload_size(big) > FCM_MAX_PAYLOAD_BYTES
    with pytest.raises(PushMessageError, match="bytes"):
        check(big)


def test_multibyte_text_counts_in_bytes():
    text = "é" * 2100  # 2,100 characters, 4,200 bytes
    with pytest.raises(PushMessageError):
        check(PushMessage(title="t", body=text, data={}))


@pytest.mark.parametrize("data", [{"n": 5}, {"from": "x"}, {"google.x": "y"}])
def test_data_fcm_refuses_is_refused_first(data):
    with pytest.raises(PushMessageError):
        check(PushMessage(title="t", body="b", data=data))


def test_a_5xx_recipient_refusal_is_permanent_and_a_4xx_is_not():
    refused = mail.permanent(smtplib.SMTPRecipientsRefused({"a@x": (550, b"5.1.1 User unknown")}))
    assert refused is not None and refused.code == 550 and "User unknown" in refused.reason
    assert mail.permanent(smtplib.SMTPRecipientsRefused({"a@x": (452, b"mailbox full")})) is None
    assert mail.permanent(smtplib.SMTPDataError(554, b"rejected")).code == 554
    assert mail.permanent(smtplib.SMTPDataError(451, b"try later")) is None
    assert mail.permanent(smtplib.SMTPAuthenticationError(535, b"bad login")) is None  # our setup, not the address
    assert mail.permanent(smtplib.SMTPServerDisconnected("gone")) is None


def test_a_retry_keeps_the_message_id():
    assert mail.message_id("notify-e1-email") == mail.message_id("notify-e1-email")
    assert mail.message_id("notify-e1-email") != mail.message_id("notify-e2-email")
    assert mail.message_id("x").startswith("<") and mail.message_id("x").endswith("@flowsuite.local>")


def test_email_off_when_smtp_host_is_unset(monkeypatch):
    monkeypatch.setenv("SMTP_HOST", "")
    assert mail.enabled() is False
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    assert mail.enabled() is True


def test_the_sink_refuses_only_its_test_domain():
    from devtools import smtp_sink

    assert smtp_sink.rejects("nobody@rejects.flowsuite.test") and smtp_sink.rejects("<X@REJECTS.flowsuite.test>")
    assert not smtp_sink.rejects("member@flowsuite.test")


def test_an_invalid_argument_naming_the_token_is_a_dead_token_and_any_other_keeps_it():
    """FCM answers INVALID_ARGUMENT both for a token that is no registration token and for a message
    one platform refuses (it validates each platform's payload apart): only the first is dead."""
    from flowsuite.notifications.push import account

    result = PushResult()
    answers = [("good", None),
               ("junk", exceptions.InvalidArgumentError("The registration token is not a valid FCM registration token")),
               ("ios", exceptions.InvalidArgumentError("Request contains an invalid argument.")),
               ("down", exceptions.UnavailableError("down")), ("gone", messaging.UnregisteredError("gone"))]
    for token, exc in answers:
        account(result, token, exc)
    assert (result.sent, result.failed, result.transient) == (1, 4, 1)
    assert result.invalid_tokens == ["junk", "gone"]


def test_the_fcm_stand_in_answers_a_malformed_token_invalid_argument():
    from flowsuite.notifications.push import fcm_answer_for

    assert "not a valid FCM registration token" in str(fcm_answer_for("bad-token-device"))
    assert "not a valid" not in str(fcm_answer_for("bad-argument-device"))
    assert isinstance(fcm_answer_for("bad-argument-device"), exceptions.InvalidArgumentError)
    assert isinstance(fcm_answer_for("unavailable-only-device"), exceptions.UnavailableError)
    assert fcm_answer_for("tok-123") is None
