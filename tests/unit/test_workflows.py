"""The CI/CD workflow for users is a valid GitHub Actions workflow and does what the docs say."""

import re
import shlex
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


ROOT = Path(__file__).resolve().parents[2]


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9_.-]+):(?!=)", (ROOT / "Makefile").read_text(), re.M))


def run_lines(job: dict) -> list[str]:
    return [line.strip() for step in job["steps"] for line in step.get("run", "").splitlines() if line.strip()]


def test_every_make_command_in_the_workflows_is_a_makefile_target():
    targets = make_targets()
    assert {"setup", "test"} <= targets
    for path in WORKFLOWS:
        for name, job in yaml.safe_load(path.read_text())["jobs"].items():
            for line in run_lines(job):
                words = shlex.split(line)
                if words[0] != "make":
                    continue
                wanted = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
                assert wanted and set(wanted) <= targets, f"{path.name} {name}: `{line}` runs no Makefile target"


def test_the_test_job_runs_only_make_test_on_linux_and_macos_without_root():
    test = yaml.safe_load(WORKFLOWS[0].read_text())["jobs"]["test"]
    assert run_lines(test) == ["make test"]  # what users run; setup installs the rest, as a normal user
    matrix = test["strategy"]["matrix"]
    assert matrix["os"] == ["ubuntu-latest", "macos-latest"] and test["runs-on"] == "${{ matrix.os }}"
    ubuntu = next(entry for entry in matrix["include"] if entry["os"] == "ubuntu-latest")
    assert ubuntu["chrome"] == "/usr/bin/google-chrome" and test["env"]["CHROME_PATH"] == "${{ matrix.chrome }}"
    uses = {step["uses"].split("@")[0]: step for step in test["steps"] if "uses" in step}
    assert uses["actions/setup-python"]["with"]["python-version"] == "3.11"
    assert str(uses["actions/setup-node"]["with"]["node-version"]) == "20" and uses["actions/setup-node"]["with"]["cache"] == "npm"
    cached = " ".join(step["with"]["path"] for step in test["steps"] if step.get("uses", "").startswith("actions/cache@"))
    for path in (".venv", "functions/venv", "~/.cache/firebase/emulators"):
        assert path in cached
    upload = uses["actions/upload-artifact"]
    assert upload["if"] == "failure()" and ".run/logs/" in upload["with"]["path"] and ".run/screenshots/" in upload["with"]["path"]
