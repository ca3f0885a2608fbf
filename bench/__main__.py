"""python -m bench: run the benchmarks and print a Markdown table for the README."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

from bench import cold_instructions, cold_start


def machine() -> str:
    cpu = platform.processor() or platform.machine() or "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):  # Linux names the model; elsewhere platform's answer stays
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if sys.platform == "darwin":
        brand = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True)
        cpu = brand.stdout.strip() or cpu
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-emulator", action="store_true", help="only the cold start (no suite needed)")
    args = parser.parse_args()
    rows = cold_start.run(args.rounds) + cold_instructions.run()
    if not args.no_emulator:
        out = subprocess.run([sys.executable, "-m", "devtools.suite", "exec", "--", sys.executable, "-m", "bench.emulator"],
                             capture_output=True, text=True)
        found = [line for line in out.stdout.splitlines() if line.startswith("BENCH-ROWS ")]
        if out.returncode != 0 or not found:
            print(out.stdout[-3000:], out.stderr[-3000:])
            raise SystemExit("bench: the emulator benchmarks failed")
        for row in json.loads(found[-1].removeprefix("BENCH-ROWS ")):
            rows.append({"benchmark": row["benchmark"], "measured": row["p50"], "reference": row["p99/p95"],
                         "ratio": row["ratio"], "target": row["target"]})
    cols = list(rows[0])
    print(f"machine: {machine()}; median of {args.rounds} runs\n")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
