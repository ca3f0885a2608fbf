"""Dependencies point down: domains over contracts over the kernel, and nothing sideways.

Read from the source with ``ast`` (every import, at the top of a module or inside a
function), so a lazy import cannot hide a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

from flowsuite.registry import DOMAINS

ROOT = Path(__file__).resolve().parents[2] / "functions" / "flowsuite"


def imports_of(path: Path) -> set[str]:
    """Every flowsuite module a file imports (absolute imports; the code uses no relative ones)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            found.add(node.module or "")
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] == "flowsuite"}


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def violations(package: str, allowed: set[str]) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for module in sorted(imports_of(path)):
            if layer(module) not in allowed:
                out.append(f"{path.relative_to(ROOT)} imports {module}")
    return out


def test_the_parser_sees_every_kind_of_import(tmp_path):
    source = tmp_path / "x.py"
    source.write_text("import flowsuite.orders.service\nfrom flowsuite.core import bus\n"
                      "def f():\n    from flowsuite.payments import config\n")
    assert imports_of(source) >= {"flowsuite.orders.service", "flowsuite.core", "flowsuite.payments.config"}


def test_the_kernel_imports_no_domain():
    # The kernel may use the event contracts (the erasure registry subscribes to
    # identity.user_deleted), never a domain.
    assert not violations("core", {"core", "contracts", "registry", None})


def test_contracts_import_only_the_kernel():
    assert not violations("contracts", {"core", "contracts"})


def test_a_domain_imports_only_the_kernel_the_contracts_and_itself():
    """No domain imports another: orders and payments meet only through the contracts."""
    for domain in DOMAINS:
        assert not violations(domain, {"core", "contracts", domain})
