"""Cold start: what an instance imports before its first request (issue 19).

An instance serving a function with a module of its own (``registry.OWN_MODULES``), or one of
a domain's document triggers (``<domain>_on_*``, in its ``triggers`` module), imports that
module alone; its domain's ``functions`` module re-exports the very same functions, so
discovery and deploy see each once. Modules that declare models evaluate their annotations as
Python does (no ``from __future__ import annotations``): pydantic would otherwise compile
and evaluate every field's annotation string when the class is created, at import.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from flowsuite import registry

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
ROOT = FUNCTIONS / "flowsuite"


@pytest.mark.parametrize("name", sorted(registry.OWN_MODULES))
def test_an_own_module_serves_the_function_its_domain_exports(name):
    module = importlib.import_module(registry.OWN_MODULES[name])
    assert module.__all__ == [name]
    domain = importlib.import_module(f"flowsuite.{registry.domain_for(name)}.functions")
    assert name in domain.__all__ and getattr(domain, name) is getattr(module, name)
    assert registry.own_module(name) == module.__name__


@pytest.mark.parametrize("name", sorted(registry.OWN_MODULES))
def test_an_instance_serving_it_imports_neither_its_domain_functions_nor_the_bus(name):
    code = ("import sys, main\n"
            f"assert [n for n in dir(main) if not n.startswith('_')] == [{name!r}], dir(main)\n"
            "loaded = sorted(m for m in sys.modules if m.endswith('.functions') and m.startswith('flowsuite.')\n"
            "                or m in ('flowsuite.core.bus', 'flowsuite.core.erasure'))\n"
            "assert not loaded, loaded\n")
    run_as_instance(name, code)


def test_every_document_trigger_lives_in_its_domains_triggers_module():
    seen = 0
    for domain in registry.DOMAINS:
        exported = importlib.import_module(f"flowsuite.{domain}.functions")
        names = [n for n in exported.__all__ if n.startswith(f"{domain}_on_")]
        if importlib.util.find_spec(f"flowsuite.{domain}.triggers") is None:  # a generated domain
            assert all(registry.own_module(name) is None for name in names), domain  # served from functions
            continue
        triggers = importlib.import_module(f"flowsuite.{domain}.triggers")
        assert sorted(triggers.__all__) == sorted(names), domain  # all of them, and nothing else
        for name in names:
            assert getattr(exported, name) is getattr(triggers, name), name
            assert registry.own_module(name) == triggers.__name__
        seen += len(names)
    assert seen >= 20  # the suite's own five domains hold 26


@pytest.mark.parametrize("target", ["ops_on_probe", "orders_on_payment_succeeded", "notifications_on_ff_push_created",
                                    "identity_on_profile_written", "payments_on_user_deleted"])
def test_an_instance_serving_a_document_trigger_imports_its_domains_triggers_alone(target):
    # Not the callables' machinery and request models, not its domain's other functions.
    domain = registry.domain_for(target)
    code = ("import sys, main\n"
            f"assert {target!r} in dir(main), dir(main)\n"
            f"assert all(n.startswith({domain + '_on_'!r}) for n in dir(main) if not n.startswith('_')), dir(main)\n"
            "loaded = sorted(m for m in sys.modules if m.startswith('flowsuite.') and m.count('.') == 2\n"
            "                and m.rsplit('.', 1)[1] in ('functions', 'models', 'callables') and m != 'flowsuite.core.models')\n"
            "assert not loaded, loaded\n")
    run_as_instance(target, code)


@pytest.mark.parametrize("target", ["ops_on_probe", "opsRedeliver", "ops_on_user_deleted"])
def test_an_ops_instance_finds_every_subscriber_and_eraser_when_it_needs_them(target):
    # An ops instance starts with ops alone; the functions that act for every domain ask
    # all_subscribers()/all_erasers(), which import the rest: none acts on a partial list
    # (the last eraser would redact events before the other domains had erased).
    code = ("import sys, main\n"
            "from flowsuite.core import bus, erasure\n"
            "from flowsuite import registry\n"
            "started = {s.domain for s in bus.SUBSCRIBERS.values()}\n"
            "assert started == {'ops'}, started\n"
            "assert not any(f'flowsuite.{d}.functions' in sys.modules for d in registry.DOMAINS if d != 'ops')\n"
            "domains = {s.domain for s in bus.all_subscribers().values()}\n"
            "assert domains == set(registry.DOMAINS), domains\n"
            "assert set(erasure.all_erasers()) == set(registry.DOMAINS), erasure.ERASERS\n")
    run_as_instance(target, code)


def run_as_instance(target: str, code: str) -> None:
    """Runs ``code`` (its asserts) in a fresh interpreter started as an instance serving
    ``target`` starts (``FUNCTION_TARGET`` set, functions/ on the path)."""
    env = {**os.environ, "FUNCTION_TARGET": target, "PYTHONPATH": str(FUNCTIONS)}
    out = subprocess.run([sys.executable, "-c", code], cwd=FUNCTIONS, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


def declaration_modules() -> list[Path]:
    """The modules that declare models: contracts, documents, requests and answers."""
    found = [p for p in ROOT.glob("contracts/*.py") if p.name != "__init__.py"]
    found += [*ROOT.glob("*/documents.py"), *ROOT.glob("*/*models.py"), ROOT / "core" / "kernel_documents.py"]
    return sorted(found)


def test_declaration_modules_evaluate_their_annotations():
    assert len(declaration_modules()) > 15
    postponed = []
    for path in declaration_modules():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                postponed.append(str(path.relative_to(ROOT)))
    assert not postponed, f"`from __future__ import annotations` makes pydantic compile each annotation: {postponed}"


@pytest.mark.parametrize("target", ["orders_place", "ops_on_probe", ""])
def test_an_instance_imports_with_the_collector_paused_and_frozen_after(target):
    # main.py pauses the cyclic collector while it imports (flowsuite/startup.py) and freezes
    # what the import built; the collector runs again afterwards, as in any process.
    code = ("import gc, sys\n"
            "seen = []\n"
            "def paused():  # between main.py's startup.begin() and startup.done()\n"
            "    startup = sys.modules.get('flowsuite.startup')\n"
            "    return bool(startup and startup._was_enabled)\n"
            "gc.callbacks.append(lambda phase, info: seen.append(paused()))\n"
            "import main\n"
            "assert not any(seen), f'the collector ran {seen.count(True) // 2} times in the import'\n"
            "assert seen.count(False) < 10, seen  # before the pause: Python's own start\n"
            "seen.clear()\n"
            "assert gc.isenabled()\n"
            "assert gc.get_freeze_count() > 10000, gc.get_freeze_count()\n"
            "gc.collect()\n"
            "assert seen\n")
    run_as_instance(target, code)


def test_the_collector_pause_keeps_a_collector_that_was_off_off():
    import gc

    from flowsuite import startup

    was = gc.isenabled()
    try:
        gc.enable()
        startup.begin()
        assert not gc.isenabled()
        startup.done()
        assert gc.isenabled()
        gc.disable()
        startup.begin()
        startup.done()
        assert not gc.isenabled()  # someone else turned it off: not ours to turn on
    finally:
        gc.unfreeze()
        (gc.enable if was else gc.disable)()
