"""Integration tests run against the real emulators started by `make test`."""

from __future__ import annotations

import pytest
import requests

from testkit import harness


def pytest_sessionstart(session):
    for var in ("FIRESTORE_EMULATOR_HOST", "FIREBASE_AUTH_EMULATOR_HOST", "FLOWSUITE_FUNCTIONS_URL"):
        harness.need(var)


@pytest.fixture(autouse=True)
def clean_emulators(request):
    """Every test starts with empty Firestore and Auth (the emulators' own reset endpoints).

    Modules that set ``SHARED_WORLD`` build their world once and reset it themselves."""
    if getattr(request.module, "SHARED_WORLD", False):
        yield
        return
    try:
        harness.reset_emulators()
    except requests.ConnectionError as exc:
        pytest.fail(f"the emulators are not reachable: {exc}", pytrace=False)
    yield


@pytest.fixture
def db():
    return harness.admin_db()


@pytest.fixture
def admin():
    return harness.user_with_role("admin")


@pytest.fixture
def staff():
    return harness.user_with_role("staff")


@pytest.fixture
def member():
    return harness.sign_up()
