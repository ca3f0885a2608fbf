"""The README's layout section names what is in the tree."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLOWSUITE = ROOT / "functions" / "flowsuite"


def layout() -> str:
    text = (ROOT / "README.md").read_text()
    return re.search(r"^## Layout\n(.*?)^## ", text, re.S | re.M).group(1)


def tracked_top_level() -> set[str]:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return {f.split("/")[0] for f in files} - {".gitignore", "README.md"}


def test_every_top_level_entry_is_in_the_layout():
    text = layout()
    missing = sorted(name for name in tracked_top_level() if name not in text)
    assert not missing, f"README layout misses {missing}"


def test_every_package_and_kernel_module_is_in_the_layout():
    text = layout()
    from flowsuite.registry import DOMAINS

    packages = [p.name for p in FLOWSUITE.iterdir() if (p / "__init__.py").is_file()]
    missing = [f"flowsuite/{name}/" for name in packages if f"flowsuite/{name}/" not in text
               and name not in DOMAINS]  # domains: flowsuite/<domain>/
    kernel = [p for p in (FLOWSUITE / "core").rglob("*.py") if p.name != "__init__.py"]
    missing += [str(p.relative_to(FLOWSUITE)) for p in kernel if p.name not in text]
    missing += [d.name for d in (FLOWSUITE / "core").iterdir() if d.is_dir() and (d / "__init__.py").is_file()
                and f"{d.name}/" not in text]
    assert not missing, f"README layout misses {missing}"


def test_every_domain_module_is_in_the_layout():
    text = layout()
    from flowsuite.registry import DOMAINS

    missing = [f"{d}/{p.name}" for d in DOMAINS for p in (FLOWSUITE / d).glob("*.py")
               if p.name not in text]
    assert not missing, f"README layout misses {missing}"


def test_every_devtool_is_in_the_layout():
    text = layout()
    missing = [p.name for p in (ROOT / "devtools").iterdir()
               if p.is_file() and p.name != "__init__.py" and p.name not in text]
    assert not missing, f"README layout misses {missing}"
