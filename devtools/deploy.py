"""Deploy the whole suite, or one domain, with the Firebase CLI.

    python -m devtools.deploy all [--project ID] [--dry-run]
    python -m devtools.deploy domain payments [--project ID] [--dry-run]

A domain's functions are derived from the code (its ``functions.py`` ``__all__``,
the list ``main.py`` re-exports), never from a hand-kept list. ``--dry-run``
prints the exact command instead of running it.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def domain_functions(domain: str) -> list[str]:
    sys.path.insert(0, str(ROOT / "functions"))
    from flowsuite.registry import DOMAINS

    if domain not in DOMAINS:
        raise SystemExit(f"deploy: unknown domain {domain!r}; one of {', '.join(DOMAINS)}")
    return sorted(importlib.import_module(f"flowsuite.{domain}.functions").__all__)


def command(args: argparse.Namespace) -> list[str]:
    cmd = [str(ROOT / "node_modules/.bin/firebase"), "deploy"]
    if args.target == "domain":
        cmd += ["--only", ",".join(f"functions:{name}" for name in domain_functions(args.domain))]
    if args.project:
        cmd += ["--project", args.project]
    return cmd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.deploy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="target", required=True)
    everything = sub.add_parser("all", help="firebase deploy (functions, rules, indexes)")
    one = sub.add_parser("domain", help="deploy one domain's functions")
    one.add_argument("domain")
    for p in (everything, one):
        p.add_argument("--project", help="Firebase project id (default: .firebaserc)")
        p.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    args = parser.parse_args(argv)
    cmd = command(args)
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    return subprocess.run(cmd, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
