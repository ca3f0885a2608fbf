"""The CI/CD workflow for users is a valid GitHub Actions workflow and does what the docs say."""

import subprocess
import sys
from pathlib import Path

import yaml

WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / ".github" / "workflows").glob("*.yml"))


def test_workflows_match_github_actions_schema():
    assert WORKFLOWS
    out = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                          *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_tests_gate_the_deploy_which_puts_rules_and_indexes_first():
    flow = yaml.safe_load(WORKFLOWS[0].read_text())
    test_steps = [s.get("run", "") for s in flow["jobs"]["test"]["steps"]]
    assert "make test" in test_steps
    deploy = flow["jobs"]["deploy"]
    assert deploy["needs"] == "test"
    runs = [s.get("run", "") for s in deploy["steps"] if "run" in s]
    rules = next(i for i, r in enumerate(runs) if "firestore:rules,firestore:indexes" in r)
    functions = next(i for i, r in enumerate(runs) if "--only functions" in r)
    assert rules < functions
    assert any("secrets.GCP_SA_KEY" in str(s.get("with", {})) for s in deploy["steps"])
