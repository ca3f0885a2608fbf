"""Shapes checked: malformed documents are tolerated, emails carry no user-typed text,
reserved ids are refused, the console has a Content-Security-Policy."""

import json
import re
from pathlib import Path

import pytest
from flowsuite.core.models import DocId, Request, Uid, is_reserved_id
from flowsuite.identity.service import text_or_empty
from flowsuite.notifications.service import enabled_channels
from flowsuite.notifications.templates import TEMPLATES, for_email
from pydantic import ValidationError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("preferences", [None, "off", [], {"order_paid": "email"}, {"order_paid": None},
                                         {"order_paid": ["email"]}])
def test_malformed_preferences_turn_nothing_off(preferences):
    assert enabled_channels("order_paid", preferences) == ["inbox", "push", "email"]


def test_preferences_turn_channels_off():
    assert enabled_channels("order_paid", {"order_paid": {"email": False, "push": True}}) == ["inbox", "push"]


def test_a_display_name_never_reaches_an_email():
    phishing = "Your account is locked: sign in at https://evil.example"
    context = {"app": "flowsuite", "name": phishing, "email": "victim@example.com"}
    title, text, html = TEMPLATES["welcome"].render(for_email(context))
    assert "evil" not in title + text + html and text == "Hi there, your flowsuite account is ready."
    assert phishing in TEMPLATES["welcome"].render(context)[1]  # the owner's own inbox keeps it
    assert for_email({"order_id": "o1"}) == {"order_id": "o1"}


def test_html_bodies_escape_their_values():
    _, _, html = TEMPLATES["order_cancelled"].render({"order_id": "<script>x</script>", "reason": "a&b"})
    assert "<script>" not in html and "&lt;script&gt;" in html and "a&amp;b" in html


@pytest.mark.parametrize(("value", "shown"), [("Ada", "Ada"), (None, ""), (7, ""), ({"first": "A"}, ""), (["A"], "")])
def test_public_profiles_copy_only_text(value, shown):
    assert text_or_empty(value) == shown


class Ids(Request):
    doc: DocId
    uid: Uid


@pytest.mark.parametrize("value", ["__x__", "__name__", "__", "___"])
def test_reserved_ids_are_refused_by_doc_id_and_uid(value):
    assert is_reserved_id(value)
    with pytest.raises(ValidationError) as err:
        Ids.model_validate({"doc": value, "uid": value})
    assert {e["loc"][0] for e in err.value.errors()} == {"doc", "uid"}


@pytest.mark.parametrize("value", [".", ".."])
def test_dot_ids_are_refused(value):
    with pytest.raises(ValidationError) as err:
        Ids.model_validate({"doc": value, "uid": value})
    assert {e["loc"][0] for e in err.value.errors()} == {"doc", "uid"}


def test_ordinary_ids_pass():
    for value in ("abc", "a__b", "__a", "a__", "order-1_x"):
        assert not is_reserved_id(value)
        Ids.model_validate({"doc": value, "uid": value})


# ---- the console's Content-Security-Policy -------------------------------------------------

def csp() -> dict[str, list[str]]:
    config = json.loads((ROOT / "firebase.json").read_text())
    headers = {h["key"]: h["value"] for rule in config["hosting"]["headers"] if rule["source"] == "**"
               for h in rule["headers"]}
    policy = headers["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in (part.strip() for part in policy.split(";")) if d}


def test_the_console_is_served_with_a_strict_content_security_policy():
    policy = csp()
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert not any("unsafe" in v for values in policy.values() for v in values)


def test_the_policy_lets_the_sdk_reach_the_emulators_locally_and_google_in_production():
    connect = csp()["connect-src"]
    emulators = json.loads((ROOT / "firebase.json").read_text())["emulators"]
    for name in ("auth", "firestore", "functions"):  # what console/src/app.js connects to
        assert f"http://127.0.0.1:{emulators[name]['port']}" in connect, name
    assert {"'self'", "https://*.googleapis.com", "https://*.cloudfunctions.net"} <= set(connect)


def test_the_console_page_has_no_inline_script_or_style():
    page = (ROOT / "console" / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []
    assert " style=" not in page and not re.search(r"\son[a-z]+=", page)
    for path in sorted((ROOT / "console" / "src").glob("*.js")):  # app.js and the chart modules
        source = path.read_text()
        assert " style=" not in source and not re.search(r"\son[a-z]+=\\?[\"']", source), path.name
        assert "eval(" not in source and "new Function" not in source, path.name
        assert "setAttribute(\"style\"" not in source and "cssText" not in source, path.name  # CSSOM properties only
