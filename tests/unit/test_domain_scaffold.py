"""`make domain` / `make undomain` (devtools/domain.py), on a scratch copy of the repository.

The copy is made once per module; each test that generates a domain runs the tool in a
fresh process whose working directory is the copy, so the copy's own ``devtools`` and
``flowsuite`` are imported, never this checkout's."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devtools import domain

ROOT = Path(__file__).resolve().parents[2]
IGNORED = ("venv", ".venv", "node_modules", ".run", ".git", "__pycache__", ".pytest_cache", ".ruff_cache")


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (outside caches and venvs) and its content."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not set(p.relative_to(root).parts) & set(IGNORED)}


def run(copy: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, *args], cwd=copy, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{copy}/functions:{copy}"})
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("repo") / "flowsuite"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(*IGNORED), symlinks=False)
    return copy


@pytest.fixture
def copy(original, tmp_path) -> Path:
    """A fresh copy of the original copy, for one test to change."""
    target = tmp_path / "flowsuite"
    shutil.copytree(original, target)
    return target


@pytest.fixture(scope="module")
def generated(original, tmp_path_factory) -> Path:
    """One copy with the bookings domain generated (shared by the read-only checks below)."""
    target = tmp_path_factory.mktemp("generated") / "flowsuite"
    shutil.copytree(original, target)
    out = run(target, "-m", "devtools.domain", "add", "bookings")
    assert "domain: bookings added" in out.stdout and "contracts: wrote" in out.stdout
    return target


def test_the_generated_package_imports_and_its_own_unit_tests_pass(generated):
    for path in domain.generated_files(domain.Names("bookings")):
        assert (generated / path).is_file(), path
    run(generated, "-c", "import main, flowsuite.bookings.functions as f; print(f.__all__)")
    out = run(generated, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/test_bookings_domain.py",
              "tests/unit/test_dependencies.py", "tests/unit/test_registry.py", "tests/unit/test_typed_writes.py",
              "tests/unit/test_cold_start.py::test_every_document_trigger_lives_in_its_domains_triggers_module")
    assert " passed" in out.stdout and "failed" not in out.stdout


def test_the_generated_code_and_tests_pass_the_linter(generated):
    paths = [*domain.generated_files(domain.Names("bookings")), *domain.blocks(domain.Names("bookings"))]
    out = run(generated, "-m", "ruff", "check", "--no-cache", *[p for p in paths if p.endswith(".py")], check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_contracts_indexes_and_docs_include_it_and_stay_fresh(generated):
    openapi = json.loads((generated / "docs/openapi.json").read_text())
    assert "/bookings_create" in openapi["paths"] and {"name": "bookings"} in openapi["tags"]
    assert "idempotency_key" in openapi["components"]["schemas"]["CreateBooking"]["required"]
    assert (generated / "docs/events/booking.created.json").is_file()
    catalogue = (generated / "docs/events.md").read_text()
    assert "| `booking.created` | bookings | 1 | `bookings_on_created` |" in catalogue
    assert "## `bookings/{booking_id}`" in (generated / "docs/collections.md").read_text()
    indexes = json.loads((generated / "firestore.indexes.json").read_text())
    assert {"collectionGroup": "bookings", "queryScope": "COLLECTION", "fields": [
        {"fieldPath": "user_ref", "order": "ASCENDING"}, {"fieldPath": "created_time", "order": "DESCENDING"}]} \
        in indexes["indexes"]
    assert "contracts: up to date" in run(generated, "-m", "devtools.contracts", "check").stdout
    out = run(generated, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/test_contracts.py",
              "tests/unit/test_indexes.py", "-k", "not console")
    assert "failed" not in out.stdout


def test_the_rules_registry_and_main_name_it(generated):
    rules = (generated / "firestore.rules").read_text()
    stanza = rules.split("// >>> bookings\n")[1].split("// <<< bookings")[0]
    assert "match /bookings/{bookingId}" in stanza and "resource.data.user_ref == userRef(request.auth.uid)" in stanza
    assert "write" not in stanza.split("{bookingId}")[1]
    assert rules.index("// >>> bookings") < rules.index("// <<< generated domains")
    assert 'if _wanted("bookings"):' in (generated / "functions/main.py").read_text()
    out = run(generated, "-c", "from flowsuite import registry; print(registry.DOMAINS[-1], "
                               "registry.domain_for('bookings_on_user_deleted'))")
    assert out.stdout.split() == ["bookings", "bookings"]


def test_the_manifest_and_per_domain_deploy_pick_it_up(generated):
    out = run(generated, "-m", "devtools.deploy", "domain", "bookings", "--project", "acme", "--dry-run")
    only = set(out.stdout.split()[3].split(","))
    assert only == {"functions:bookings_create", "functions:bookings_on_created", "functions:bookings_on_user_deleted"}
    venv = (ROOT / "functions" / "venv" / "bin" / "python")
    if not venv.exists():
        pytest.skip("functions/venv is not built")
    discover = ("from firebase_functions.private.serving import functions_as_yaml, get_functions\n"
                "print(functions_as_yaml(get_functions()))\n")
    manifest = subprocess.run([str(venv), "-c", discover], cwd=generated / "functions", capture_output=True,
                              text=True, check=True, env={"PATH": "/usr/bin:/bin"}).stdout
    import yaml

    endpoints = yaml.safe_load(manifest)["endpoints"]
    assert "callableTrigger" in endpoints["bookings_create"]
    assert endpoints["bookings_on_created"]["eventTrigger"]["eventFilterPathPatterns"]["document"] == \
        "topics/booking.created/events/{event_id}"
    assert endpoints["bookings_on_user_deleted"]["eventTrigger"]["eventFilterPathPatterns"]["document"] == \
        "topics/identity.user_deleted/events/{event_id}"
    assert endpoints["bookings_create"]["maxInstances"] == 10  # its OPTIONS declaration


def test_a_second_add_is_refused(generated):
    before = tree(generated)
    out = run(generated, "-m", "devtools.domain", "add", "bookings", check=False)
    assert out.returncode == 2 and out.stdout.strip() == "domain: 'bookings' exists already"
    assert tree(generated) == before


@pytest.mark.parametrize(("name", "why"), [
    ("Bookings", "not a lowercase snake_case"),
    ("2fast", "not a lowercase snake_case"),
    ("book-ings", "not a lowercase snake_case"),
    ("bookings_", "not a lowercase snake_case"),
    ("", "not a lowercase snake_case"),
    ("class", "reserved word"),
    ("core", "reserved word"),
    ("users", "reserved word"),
    ("orders", "exists already"),
    ("products", "collection 'products'"),
    ("payment", "'payment' events belong to another domain"),
    ("x" * 31, "longer than 30"),
])
def test_bad_names_are_refused_with_one_line_and_nothing_written(original, name, why):
    before = tree(original)
    out = run(original, "-m", "devtools.domain", "add", name, check=False)
    assert out.returncode == 2, out.stdout + out.stderr
    assert len(out.stdout.strip().splitlines()) == 1 and why in out.stdout, out.stdout
    assert tree(original) == before


def test_a_clash_with_an_existing_function_is_refused():
    existing = {"domains": set(), "functions": {"bookings_create"}, "collections": set(), "entities": set()}
    with pytest.raises(domain.Refused, match="bookings_create, which exists already"):
        domain.check_name("bookings", existing)


def test_removal_leaves_the_copy_as_it_was_and_names_hand_made_references(copy):
    before = tree(copy)
    run(copy, "-m", "devtools.domain", "add", "loyalty_points")
    assert tree(copy) != before
    (copy / "tests/unit/test_hand_made.py").write_text("from flowsuite.loyalty_points import service  # noqa\n")
    out = run(copy, "-m", "devtools.domain", "remove", "loyalty_points")
    assert "tests/unit/test_hand_made.py:1" in out.stdout
    (copy / "tests/unit/test_hand_made.py").unlink()
    after = tree(copy)
    assert sorted(set(after) ^ set(before)) == []
    changed = [path for path in before if before[path] != after[path]]
    assert not changed, changed
    assert not (copy / "functions/flowsuite/loyalty_points").exists()


def test_only_a_generated_domain_is_removed(original):
    before = tree(original)
    out = run(original, "-m", "devtools.domain", "remove", "orders", check=False)
    assert out.returncode == 2 and "was not added by `make domain`" in out.stdout
    assert tree(original) == before


def test_marker_blocks_round_trip():
    text = "a\n  # >>> generated domains\n  # <<< generated domains\nb\n"
    added = domain.insert_block(text, "x", "#", "chat", ["  one", "  two"])
    assert added == "a\n  # >>> generated domains\n  # >>> chat\n  one\n  two\n  # <<< chat\n  # <<< generated domains\nb\n"
    assert domain.remove_block(added, "x", "#", "chat") == text
    with pytest.raises(domain.Refused, match="lacks its"):
        domain.insert_block("no markers\n", "x", "#", "chat", [])


def test_flowsuite_imports_are_sorted_wherever_the_name_falls():
    text = ("from __future__ import annotations\n\nfrom flowsuite.core import bus\nfrom flowsuite.bookings import models\n"
            "\ndef f():\n    from flowsuite.zeta import x\n    from flowsuite import registry\n    return x\n")
    assert domain.sort_flowsuite_imports(text) == (
        "from __future__ import annotations\n\nfrom flowsuite.bookings import models\nfrom flowsuite.core import bus\n"
        "\ndef f():\n    from flowsuite import registry\n    from flowsuite.zeta import x\n    return x\n")


def test_names():
    n = domain.Names("bookings")
    assert (n.entity, n.Entity, n.id_field, n.event) == ("booking", "Booking", "booking_id", "booking.created")
    assert domain.Names("loyalty_points").Entity == "LoyaltyPoint" and domain.Names("chat").event == "chat.created"
