"""A domain as `make domain` generates it, end to end on the emulators: its callable, its
event and subscriber, its rules and its erasure.

`make integration` (``python -m devtools.suite exec --generated-domain``) serves the emulators
from a scratch tree, ``.run/tree``: this checkout plus a domain the scaffolder generated there
(``scaffoldcheck``). Nothing generated is committed. The scaffolder also wrote that domain's
integration test into the tree; this module imports it and runs its tests here, with this
directory's fixtures (a reset before each test, ``member``, ``db``). So a kernel change that
breaks generated code fails the integration run.

Without the tree the first test fails, saying how to run the suite.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

SERVED = os.environ.get("FLOWSUITE_TREE", "")
NAME = os.environ.get("FLOWSUITE_GENERATED_DOMAIN", "")
GENERATED_TEST = Path(SERVED) / "tests" / "integration" / f"test_{NAME}.py" if SERVED and NAME else None


def load_generated_tests(path: Path) -> dict:
    """The generated module's tests. Imported by name from its folder, so pytest rewrites its asserts."""
    sys.path.insert(0, str(path.parent))
    try:
        module = importlib.import_module(path.stem)
    finally:
        sys.path.remove(str(path.parent))
    if Path(module.__file__).resolve() != path.resolve():
        raise ImportError(f"{path.stem} was imported from {module.__file__}, not from {path}")
    return {name: test for name, test in vars(module).items() if name.startswith("test_") and callable(test)}


def test_the_suite_serves_a_generated_domain_and_runs_its_tests():
    if not GENERATED_TEST:
        pytest.fail("no generated domain is served: run the integration tests with `make integration` "
                    "(python -m devtools.suite exec --generated-domain -- pytest tests/integration)", pytrace=False)
    assert GENERATED_TEST.is_file(), f"the scaffolder wrote no integration test at {GENERATED_TEST}"
    assert len(GENERATED) >= 5, f"{GENERATED_TEST} holds only {sorted(GENERATED)}"
    import flowsuite
    from flowsuite.registry import DOMAINS

    assert Path(flowsuite.__file__).resolve().is_relative_to(Path(SERVED).resolve())  # the tests import what is served
    assert NAME in DOMAINS
    assert f"// >>> {NAME}" in (Path(SERVED) / "firestore.rules").read_text()


GENERATED = load_generated_tests(GENERATED_TEST) if GENERATED_TEST and GENERATED_TEST.is_file() else {}
globals().update(GENERATED)
