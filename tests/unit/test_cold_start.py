"""Cold start: what an instance does at import (issue 19).

Modules that declare models evaluate their annotations as Python does (no ``from __future__
import annotations``): pydantic would otherwise compile and evaluate every field's annotation
string when the class is created, at import.
"""

from __future__ import annotations

import ast
from pathlib import Path

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
ROOT = FUNCTIONS / "flowsuite"


def declaration_modules() -> list[Path]:
    """The modules that declare models: contracts, documents, requests and answers."""
    found = [p for p in ROOT.glob("contracts/*.py") if p.name != "__init__.py"]
    found += [*ROOT.glob("*/documents.py"), *ROOT.glob("*/models.py"), ROOT / "core" / "kernel_documents.py"]
    return sorted(found)


def test_declaration_modules_evaluate_their_annotations():
    assert len(declaration_modules()) > 15
    postponed = []
    for path in declaration_modules():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                postponed.append(str(path.relative_to(ROOT)))
    assert not postponed, f"`from __future__ import annotations` makes pydantic compile each annotation: {postponed}"
