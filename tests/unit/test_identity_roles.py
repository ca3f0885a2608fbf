"""Roles need a verified email; the first admin comes from a devtools command."""

import json

import pytest
from flowsuite.identity import service

from devtools import grant_admin


@pytest.fixture(autouse=True)
def listed(monkeypatch):
    monkeypatch.setenv("ADMIN_EMAILS", "Boss@Example.com, root@example.com")
    monkeypatch.setenv("STAFF_EMAILS", "clerk@example.com")


def test_a_listed_email_gets_its_role_only_when_verified():
    assert service.initial_role("boss@example.com", True) == ("admin", None)
    assert service.initial_role(" BOSS@example.com ", False) == ("member", "admin")
    assert service.initial_role("clerk@example.com", True) == ("staff", None)
    assert service.initial_role("clerk@example.com", False) == ("member", "staff")


def test_an_unlisted_email_is_a_member_verified_or_not():
    for verified in (True, False):
        assert service.initial_role("someone@example.com", verified) == ("member", None)
        assert service.initial_role(None, verified) == ("member", None)


def test_listed_role_ignores_case_and_spaces():
    assert service.listed_role("ROOT@example.com") == "admin"
    assert service.listed_role("root@example.com.evil") == "member"


def test_grant_admin_arguments():
    args = grant_admin.parse(["first@example.com"])
    assert (args.email, args.role, args.project) == ("first@example.com", "admin", None)
    assert grant_admin.parse(["a@b.c", "--role", "staff", "--project", "p"]).role == "staff"
    with pytest.raises(SystemExit):
        grant_admin.parse(["a@b.c", "--role", "owner"])


def test_grant_admin_finds_the_project():
    rc = json.dumps({"projects": {"default": "from-firebaserc"}})
    assert grant_admin.resolve_project("explicit", {"GCLOUD_PROJECT": "env"}, rc) == "explicit"
    assert grant_admin.resolve_project(None, {"GCLOUD_PROJECT": "env"}, rc) == "env"
    assert grant_admin.resolve_project(None, {"GOOGLE_CLOUD_PROJECT": "gc"}, rc) == "gc"
    assert grant_admin.resolve_project(None, {}, rc) == "from-firebaserc"
    with pytest.raises(SystemExit):
        grant_admin.resolve_project(None, {}, None)
