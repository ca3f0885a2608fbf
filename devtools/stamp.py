"""Setup's stamps: a short hash of a step's input files, in Python so setup runs anywhere.

    python -m devtools.stamp FILE...   # prints 16 hex digits

The hash is SHA-256 over the files' bytes read one after another, which is what
``cat FILE... | sha256sum | cut -c1-16`` printed before (so existing stamps stay
valid). Standard library only: setup runs it with the interpreter that builds the venvs.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable
from pathlib import Path

LENGTH = 16


def stamp_of(paths: Iterable[str | Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 16), b""):
                digest.update(chunk)
    return digest.hexdigest()[:LENGTH]


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m devtools.stamp FILE...", file=sys.stderr)
        return 2
    try:
        print(stamp_of(argv))
    except OSError as exc:
        print(f"setup: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
