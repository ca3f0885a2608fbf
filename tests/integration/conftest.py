"""Integration tests run against the real emulators started by `make test`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import requests

from testkit import fields, harness

# `make integration` serves the emulators from a scratch tree (devtools/suite.py: this
# checkout plus a generated domain). The tests import the code the emulators serve, so
# the checks here (the fields check below, the erasure registry) see that domain too.
SERVED = os.environ.get("FLOWSUITE_TREE")
if SERVED:
    _functions = Path(SERVED) / "functions"
    _loaded = sys.modules.get("flowsuite")
    if _loaded is not None and not Path(_loaded.__file__).resolve().is_relative_to(_functions.resolve()):
        raise pytest.UsageError(f"flowsuite was imported from {_loaded.__file__} before the integration tests "
                                f"could switch to the served tree {_functions}: run tests/integration on its own")
    sys.path.insert(0, str(_functions))

LOG_OFFSET = pytest.StashKey[int]()


def pytest_sessionstart(session):
    for var in ("FIRESTORE_EMULATOR_HOST", "FIREBASE_AUTH_EMULATOR_HOST", "FLOWSUITE_FUNCTIONS_URL"):
        harness.need(var)
    log = os.environ.get("FLOWSUITE_EMULATOR_LOG")
    session.config.stash[LOG_OFFSET] = Path(log).stat().st_size if log and Path(log).exists() else 0


def pytest_sessionfinish(session, exitstatus):
    """Every field the code wrote during this run is declared on its collection's document model
    (so docs/collections.md lists it): the run fails otherwise, whichever tests ran."""
    log = os.environ.get("FLOWSUITE_EMULATOR_LOG")
    if not log or not Path(log).exists() or LOG_OFFSET not in session.config.stash:
        return
    from devtools import contracts

    declared = contracts.load(Path(SERVED) if SERVED else contracts.ROOT)["collections"]
    missing = fields.undocumented(fields.written(Path(log), session.config.stash[LOG_OFFSET]), fields.declared(declared))
    if missing:
        print("\nfields written but not declared on their document models (docs/collections.md): "
              + "; ".join(f"{c}: {', '.join(names)}" for c, names in missing.items()))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
