"""Builds the ops console: bundles console/src/*.js with the pinned Firebase JS SDK and uPlot.

    python -m devtools.console_build

esbuild (pinned in package.json) bundles the SDK and uPlot (the Metrics page's charts) into
console/app.js, and the stylesheet uPlot's module imports into console/app.css, so the page
needs no CDN (machines here have no internet) and no framework. The emulator
ports the page connects to go to console/console-emulators.json (local only).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSOLE = ROOT / "console"


def build() -> None:
    esbuild = ROOT / "node_modules" / ".bin" / "esbuild"
    subprocess.run(
        [str(esbuild), str(CONSOLE / "src" / "app.js"), "--bundle", "--format=esm", "--target=es2022",
         "--minify", "--log-level=warning", f"--outfile={CONSOLE / 'app.js'}"],
        check=True, cwd=ROOT,
    )
    emulators = json.loads((ROOT / "firebase.json").read_text())["emulators"]
    ports = {name: emulators[name]["port"] for name in ("auth", "firestore", "functions")}
    (CONSOLE / "console-emulators.json").write_text(json.dumps(ports) + "\n")


if __name__ == "__main__":
    build()
    print("setup: ops console          bundled console/app.js, console/app.css")
    sys.exit(0)
