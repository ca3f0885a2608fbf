"""Cold import counted in instructions (valgrind's callgrind), for the instances that
bench.cold_request times: each target's ``import main`` against the bare-SDK reference's
(bench/bare/main.py), and the reference plus pydantic alone.

Wall-clock ratios on this kind of machine move by 10-20% between runs (its speed drifts from
minute to minute); an instruction count is the same every run, so it shows what each part of
an instance's import costs: the SDK (both sides), pydantic (the suite's models, events and
documents are built on it), and the suite's own modules. main.py pauses the cyclic collector
while it imports (flowsuite/startup.py), which a bare function does not: the reference is also
counted with the same pause, to show what the pause alone is worth. No emulator is needed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = ROOT / "functions" / "venv" / "bin" / "python"
BARE = Path(__file__).resolve().parent / "bare"

SUITE_TARGETS = ("orders_place", "payments_stripe_webhook", "ops_on_probe")
# What the suite's import needs of pydantic at least (every model module imports these).
PYDANTIC = "from pydantic import BaseModel, ConfigDict, Field, TypeAdapter\n"


def instructions(source_dir: Path, target: str, code: str = "import main\n") -> int:
    """Instructions a fresh interpreter executes to start and run ``code`` as an instance serving
    ``target``, up to the end of ``code``: it ends with ``os._exit``, so the interpreter's shutdown
    (which a cold start never waits for, and whose collections a frozen heap makes cheaper) is
    not counted."""
    env = {**os.environ, "FUNCTION_TARGET": target, "K_SERVICE": target, "FLOWSUITE_FAULTS": "off",
           "PYTHONHASHSEED": "0"}
    code += "import os\nos._exit(0)\n"
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", str(PY), "-c", code],
                         cwd=source_dir, env=env, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count: {out.stderr[-500:]}")
    return int(found.group(1))


def run() -> list[dict]:
    # main.py pauses the cyclic collector while it imports; the bare reference does not, as a
    # function written with the bare SDK would not: it is also counted paused the same way.
    from bench.cold_start import PAUSE, RESUME, compile_sources

    if shutil.which("valgrind") is None:
        return [{"benchmark": "cold import in instructions", "measured": "not measured: valgrind is not installed",
                 "reference": "-", "ratio": "-", "target": "-"}]
    compile_sources()
    jobs = {"bare": (BARE, "bare_place", "import main\n"),
            "bare + pydantic": (BARE, "bare_place", "import main\n" + PYDANTIC),
            "bare, paused": (BARE, "bare_place", PAUSE + "import main\n" + RESUME),
            "bare + pydantic, paused": (BARE, "bare_place", PAUSE + "import main\n" + PYDANTIC + RESUME),
            **{t: (ROOT / "functions", t, "import main\n") for t in SUITE_TARGETS}}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = dict(zip(jobs, pool.map(lambda job: instructions(*job), jobs.values()), strict=True))
    bare, pydantic = counts["bare"], counts["bare + pydantic"]
    paused, pydantic_paused = counts["bare, paused"], counts["bare + pydantic, paused"]
    rows = [{
        "benchmark": "cold import in instructions: the bare SDK reference + pydantic alone (no suite code)",
        "measured": f"{pydantic / 1e6:.0f} M", "reference": f"bare SDK {bare / 1e6:.0f} M",
        "ratio": f"{pydantic / bare:.2f}x", "target": "-",
    }, {
        "benchmark": "cold import in instructions: the bare SDK reference with main.py's collector pause",
        "measured": f"{paused / 1e6:.0f} M (+ pydantic {pydantic_paused / 1e6:.0f} M)",
        "reference": f"bare SDK {bare / 1e6:.0f} M",
        "ratio": f"{paused / bare:.2f}x (+ pydantic {pydantic_paused / bare:.2f}x)", "target": "-",
    }]
    for target in SUITE_TARGETS:
        rows.append({
            "benchmark": f"cold import in instructions: `{target}` (collector paused)",
            "measured": f"{counts[target] / 1e6:.0f} M (pydantic {(pydantic_paused - paused) / 1e6:.0f} M, "
                        f"the suite's own {(counts[target] - pydantic_paused) / 1e6:.0f} M)",
            "reference": f"bare SDK {bare / 1e6:.0f} M",
            "ratio": f"{counts[target] / bare:.2f}x ({counts[target] / paused:.2f}x of the bare SDK paused too)",
            "target": "-",
        })
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
