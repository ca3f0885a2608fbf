"""The scratch tree `make integration` serves (devtools/suite.py): what it copies, what it links,
and the domain the scaffolder generates into it. File operations in a temporary folder only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools import suite

ROOT = Path(__file__).resolve().parents[2]


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.is_symlink()
            and "venv" not in p.relative_to(root).parts}


def test_this_projects_firebase_json_serves_its_functions_rules_indexes_and_console():
    config = json.loads((ROOT / "firebase.json").read_text())
    assert suite.served_paths(config) == [".firebaserc", "console", "firebase.json", "firestore.indexes.json",
                                          "firestore.rules", "functions"]


def test_every_path_a_firebase_json_names_is_served():
    config = {
        "functions": [{"source": "functions", "codebase": "default"}, {"source": "extra/", "codebase": "more"}],
        "firestore": {"rules": "rules/firestore.rules", "indexes": "firestore.indexes.json"},
        "storage": [{"target": "a", "rules": "storage.rules"}],
        "database": {"rules": "database.rules.json"},
        "hosting": [{"target": "app", "public": "web"}, {"target": "root", "public": "."}],
        "emulators": {"auth": {"port": 9099}},
    }
    assert suite.served_paths(config) == [".firebaserc", "database.rules.json", "extra", "firebase.json",
                                          "firestore.indexes.json", "functions", "rules/firestore.rules",
                                          "storage.rules", "web"]


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A small project: what the emulators read, and what they do not."""
    root = tmp_path / "checkout"
    layout = {
        "firebase.json": json.dumps({"functions": [{"source": "functions"}], "hosting": {"public": "console"},
                                     "firestore": {"rules": "firestore.rules", "indexes": "firestore.indexes.json"}}),
        ".firebaserc": "{}",
        "firestore.rules": "rules_version = '2';",
        "firestore.indexes.json": "{}",
        "functions/main.py": "",
        "functions/requirements.txt": "",
        "functions/.env.local": "PUSH_RATE_LIMIT=3",
        "functions/.secret.local": "STRIPE_SECRET_KEY=sk_test",
        "functions/flowsuite/__init__.py": "",
        "functions/flowsuite/__pycache__/__init__.cpython-311.pyc": "",
        "functions/flowsuite/stale.pyc": "",
        "functions/venv/bin/python": "",
        "functions/node_modules/x/index.js": "",
        "console/index.html": "",
        "console/app.js": "",
        "console/src/app.js": "",
        "README.md": "",
        "tests/unit/test_x.py": "",
        "emulator-data/firebase-export-metadata.json": "{}",
        "node_modules/firebase-tools/index.js": "",
        ".run/logs/emulators.log": "",
    }
    for path, text in layout.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def test_the_tree_holds_what_the_emulators_read_and_links_the_venv(checkout, tmp_path):
    tree = tmp_path / "run" / "tree"
    copied = suite.build_tree(checkout, tree)
    assert copied == [".firebaserc", "console", "firebase.json", "firestore.indexes.json", "firestore.rules", "functions"]
    assert files(tree) == {
        "firebase.json", ".firebaserc", "firestore.rules", "firestore.indexes.json",
        "functions/main.py", "functions/requirements.txt", "functions/.env.local", "functions/.secret.local",
        "functions/flowsuite/__init__.py", "console/index.html", "console/app.js", "console/src/app.js",
    }  # no caches, venvs, node_modules, tests, docs, seed or logs
    venv = tree / "functions" / "venv"
    assert venv.is_symlink() and venv.resolve() == (checkout / "functions" / "venv").resolve()
    assert (venv / "bin" / "python").is_file()
    assert (tree / "functions" / ".env.local").read_text() == "PUSH_RATE_LIMIT=3"


def test_a_rebuild_starts_afresh_and_never_touches_the_linked_venv(checkout, tmp_path):
    tree = tmp_path / "tree"
    suite.build_tree(checkout, tree)
    (tree / "functions" / "flowsuite" / "left_over.py").write_text("")
    (tree / "firebase-debug.log").write_text("")
    suite.build_tree(checkout, tree)
    assert not (tree / "functions" / "flowsuite" / "left_over.py").exists()
    assert not (tree / "firebase-debug.log").exists()
    assert (checkout / "functions" / "venv" / "bin" / "python").is_file()  # rmtree removed the link, not the venv
    assert (tree / "functions" / "venv").is_symlink()


def test_without_a_venv_nothing_is_linked(checkout, tmp_path):
    import shutil

    shutil.rmtree(checkout / "functions" / "venv")
    suite.build_tree(checkout, tmp_path / "tree")
    assert not os.path.lexists(tmp_path / "tree" / "functions" / "venv")


def test_the_tree_is_never_built_over_the_checkout(checkout):
    for target in (checkout, checkout.parent):
        with pytest.raises(suite.SuiteError, match="refusing to build the tree"):
            suite.build_tree(checkout, target)
    assert (checkout / "functions" / "main.py").is_file()


# ---- the generated domain, from this checkout ---------------------------------------------

def tracked_state() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Path:
    """This checkout's tree with the integration run's domain generated into it, as `make integration` builds it."""
    before = tracked_state()
    tree = tmp_path_factory.mktemp("run") / "tree"
    suite.build_tree(ROOT, tree)
    suite.generate_domain(tree, suite.GENERATED_DOMAIN)
    assert tracked_state() == before  # nothing generated lands in the checkout
    return tree


def test_the_domain_is_generated_into_the_tree_only(served):
    from devtools import domain

    name = suite.GENERATED_DOMAIN
    for path in domain.generated_files(domain.Names(name)):
        assert (served / path).is_file(), path
        assert not (ROOT / path).exists(), path
    assert f'if _wanted("{name}"):' in (served / "functions/main.py").read_text()
    assert f"match /{name}/" in (served / "firestore.rules").read_text()
    assert f'"{name}",' in (served / "functions/flowsuite/registry.py").read_text()
    assert f"// >>> {name}" not in (ROOT / "firestore.rules").read_text()


def test_the_generated_name_is_one_the_scaffolder_accepts_for_this_checkout():
    from devtools import domain

    names = domain.check_name(suite.GENERATED_DOMAIN, existing={"domains": set(), "functions": set(),
                                                                "collections": set(), "entities": set()})
    assert names.functions == ("scaffoldcheck_create", "scaffoldcheck_on_created", "scaffoldcheck_on_user_deleted")


def test_the_tree_imports_and_the_generated_unit_test_passes_there(served):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{served / 'functions'}{os.pathsep}{ROOT}"}
    name = suite.GENERATED_DOMAIN
    out = subprocess.run([sys.executable, "-c", f"import main, flowsuite.{name}.functions as f; print(f.__file__)"],
                         cwd=served / "functions", capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.startswith(str(served)), out.stdout + out.stderr
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(served),
                          f"tests/unit/test_{name}_domain.py"], cwd=served, capture_output=True, text=True, env=env)
    assert out.returncode == 0 and " passed" in out.stdout, out.stdout + out.stderr


def test_a_root_without_devtools_is_refused_unless_contracts_are_skipped(served):
    before = files(served)
    out = subprocess.run([sys.executable, "-m", "devtools.domain", "add", "loyalty", "--root", str(served)],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2 and "has no devtools/" in out.stdout and "--no-contracts" in out.stdout, out.stdout
    assert files(served) == before


def test_a_root_that_is_not_a_checkout_is_refused(tmp_path):
    out = subprocess.run([sys.executable, "-m", "devtools.domain", "add", "loyalty", "--root", str(tmp_path),
                          "--no-contracts"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2 and out.stdout.strip() == f"domain: {tmp_path} is not a flowsuite checkout " \
                                                         "(no functions/flowsuite/registry.py)"
