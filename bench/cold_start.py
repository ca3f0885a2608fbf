"""Cold start: importing functions/main.py against the import floor of the SDK.

Each sample is a fresh interpreter from functions/venv (what an instance runs),
timing only the import inside it. The floor imports the SDK trigger modules the
suite uses plus firebase_admin; the suite's import is main.py, once as the CLI's
discovery does (everything) and once per domain as a serving instance does
(FUNCTION_TARGET set). Samples alternate floor/suite so machine noise hits both.
"""

from __future__ import annotations

import os
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = ROOT / "functions" / "venv" / "bin" / "python"

FLOOR = (
    "import firebase_admin, firebase_admin.auth\n"
    "from firebase_functions import https_fn, firestore_fn, identity_fn, scheduler_fn, tasks_fn, options, params\n"
)
SUITE = "import main\n"
# pydantic is a dependency the suite is built on (models, events, documents): the
# floor plus importing it shows how much of the gap is pydantic's, and how much ours.
WITH_PYDANTIC = FLOOR + "from pydantic import BaseModel, ConfigDict, Field, TypeAdapter\n"
# main.py's collector pause (flowsuite/startup.py), for code with no suite in it: a reference
# paused the same way shows what the pause alone is worth (here and in bench.cold_instructions).
PAUSE, RESUME = "import gc\ngc.disable()\n", "gc.freeze()\ngc.enable()\n"
PAUSED_FLOOR = PAUSE + FLOOR + RESUME
TIMER = "import time\nt=time.perf_counter()\n{body}print(time.perf_counter()-t)\n"

TARGETS = {
    "discovery (all domains)": "",
    "identity instance": "identity_set_role",
    "ops instance (ops alone; the rest on its first sweep)": "ops_run_sweep",
}


def sample(body: str, target: str) -> float:
    env = {k: v for k, v in os.environ.items() if k != "FUNCTION_TARGET"}
    if target:
        env["FUNCTION_TARGET"] = target
    out = subprocess.run(
        [str(PY), "-X", "frozen_modules=on", "-c", TIMER.format(body=body)],
        cwd=ROOT / "functions", env=env, capture_output=True, text=True, check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def compile_sources() -> None:
    """Bytecode for the suite and the bare reference before anything is timed, so neither side
    pays compiling its own modules: this environment sets PYTHONDONTWRITEBYTECODE, so a source
    changed since its .pyc would be compiled again at every start of a measured process (the
    installed packages were compiled when pip installed them)."""
    import compileall

    bare = Path(__file__).resolve().parent / "bare"
    for source in (ROOT / "functions" / "flowsuite", bare):
        compileall.compile_dir(str(source), quiet=1)
    compileall.compile_file(str(ROOT / "functions" / "main.py"), quiet=1)


def run(rounds: int = 7) -> list[dict]:
    compile_sources()
    rows = []
    for label, target in TARGETS.items():
        floor, suite = [], []
        for _ in range(rounds):
            floor.append(sample(FLOOR, target))
            suite.append(sample(SUITE, target))
        f, s = statistics.median(floor), statistics.median(suite)
        rows.append({
            "benchmark": f"cold start: {label}",
            "measured": f"{s * 1000:.0f} ms",
            "reference": f"floor {f * 1000:.0f} ms",
            "ratio": f"{s / f:.2f}x",
            "target": "<= 1.10x",
        })
    floor, pyd, suite, paused = [], [], [], []
    for _ in range(rounds):
        floor.append(sample(FLOOR, ""))
        pyd.append(sample(WITH_PYDANTIC, ""))
        suite.append(sample(SUITE, ""))
        paused.append(sample(PAUSED_FLOOR, ""))
    f, p, s, z = (statistics.median(x) for x in (floor, pyd, suite, paused))
    rows.append({
        "benchmark": "cold start: the SDK floor + pydantic, against discovery",
        "measured": f"{p * 1000:.0f} ms (main {s * 1000:.0f} ms)",
        "reference": f"floor {f * 1000:.0f} ms",
        "ratio": f"{p / f:.2f}x (main {s / p:.2f}x of it)",
        "target": "-",
    })
    rows.append({
        "benchmark": "cold start: the SDK floor with main.py's collector pause (flowsuite/startup.py)",
        "measured": f"{z * 1000:.0f} ms", "reference": f"floor {f * 1000:.0f} ms",
        "ratio": f"{z / f:.2f}x (main {s / z:.2f}x of it)", "target": "-",
    })
    return rows
