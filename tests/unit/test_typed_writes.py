"""Typed writes: every Firestore write builds its data through the owning document model.

``Document.fields`` (a partial write) and ``Document.new`` (a whole document) refuse a
field the model does not declare, so docs/collections.md lists every field the code
writes. The scan below reads ``functions/flowsuite`` with ``ast`` and refuses a write
(``txn``/``batch``: ``.set/.update/.create(ref, data)``; a reference: ``.set/.update/.create(data)``)
whose data is not built by a model: a ``<Name>Doc.fields(...)``/``.new(...)`` call, a
``.fields``/``.new`` call on a parameter annotated ``type[Document]``, a name bound only
to such a value (and never changed after), or a call of a module function that returns
only such values. Any other ``.set/.update/.create`` call must be on a receiver known not
to be Firestore (``NOT_FIRESTORE``), so a new kind of call cannot slip past unclassified.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from flowsuite.core.documents import DocumentWriteError, is_transform
from flowsuite.core.kernel_documents import DeadLetterDoc, DeliveryDoc, EffectDoc
from flowsuite.orders.documents import OrderDoc, OrderHoldDoc, StockShardDoc
from google.cloud import firestore as gcf

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
ROOT = FUNCTIONS / "flowsuite"
WRITES = frozenset({"set", "update", "create"})
BUILDERS = frozenset({"fields", "new"})

# Receivers of .set/.update/.create that are not Firestore (the receiver's source, a full match),
# besides a name bound only to a dict display (``report = {...}; report.update(...)``) and an
# imported name (a module or class: ``service.create(db, ...)``, ``Resource.create(...)``).
NOT_FIRESTORE = {
    r"stripe\.v1\.\w+": "Stripe's API, through the SDK's client",
    r"_current|_context|_meter": "a ContextVar (the running span, the log context, the meter)",
    r"meter\.written|by_collection\.setdefault\(.*\)": "metering's sets of collection and field names",
}

# Firestore writes allowed to take a raw dict: (file under flowsuite/, enclosing function) -> why.
RAW_WRITES = {
    ("core/faults.py", "take"): "_faults/{point} is emulator-only fault injection (never written in production, "
                                "no document model; testkit/fields.py leaves `_` collections out)",
}


@dataclasses.dataclass(frozen=True)
class Write:
    path: str
    line: int
    function: str
    source: str
    typed: bool


def _name_of(node: ast.AST) -> str:
    """The last name of a receiver: ``ref`` for ``self.ref``, ``document`` for ``db.collection(x).document(y)``."""
    if isinstance(node, ast.Call):
        return _name_of(node.func)
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _is_reference(receiver: ast.AST) -> bool:
    """A Firestore DocumentReference by its name (``ref``, ``push_ref``, ``snap.reference``) or its making."""
    if isinstance(receiver, ast.Call):
        return _name_of(receiver.func) == "document"
    name = _name_of(receiver)
    return name == "ref" or name.endswith("_ref") or name == "reference"


def _local_calls(tree: ast.AST) -> list[ast.AST]:
    """The nodes of a function body, nested functions left out (they are scanned on their own)."""
    out, stack = [], list(ast.iter_child_nodes(tree))
    while stack:
        node = stack.pop()
        out.append(node)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))
    return out


class _Module:
    def __init__(self, tree: ast.Module) -> None:
        self.functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}

    def typed(self, expr: ast.AST, scopes: list[ast.AST], seen: frozenset[str] = frozenset()) -> bool:
        """Whether ``expr`` is data a document model built."""
        if isinstance(expr, ast.IfExp):
            return self.typed(expr.body, scopes, seen) and self.typed(expr.orelse, scopes, seen)
        if isinstance(expr, ast.Call):
            func = expr.func
            if isinstance(func, ast.Attribute) and func.attr in BUILDERS and isinstance(func.value, ast.Name):
                return func.value.id.endswith("Doc") or func.value.id in _model_parameters(scopes)
            if isinstance(func, ast.Name) and func.id in self.functions and func.id not in seen:
                helper = self.functions[func.id]
                returns = [n for n in _local_calls(helper) if isinstance(n, ast.Return)]
                return bool(returns) and all(
                    r.value is not None and self.typed(r.value, [helper], seen | {func.id}) for r in returns)
            return False
        if isinstance(expr, ast.Name):
            for scope in reversed(scopes):
                bound = _bindings(scope, expr.id)
                if bound is None:
                    continue
                return bool(bound) and all(v is not None and self.typed(v, scopes, seen) for v in bound)
        return False


def _model_parameters(scopes: list[ast.AST]) -> set[str]:
    """Parameters annotated ``type[Document]``: a generic writer handed its model (claims.claim)."""
    out = set()
    for scope in scopes:
        if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for arg in [*scope.args.args, *scope.args.kwonlyargs]:
                if arg.annotation is not None and ast.unparse(arg.annotation) == "type[Document]":
                    out.add(arg.arg)
    return out


def _rebinds(target: ast.AST, name: str, changes: bool) -> bool:
    """An assignment target that changes ``name`` (``name[k] = v``) or binds it with others (``a, name = ...``)."""
    if isinstance(target, ast.Tuple):
        return name in {_name_of(e) for e in target.elts}
    return changes and isinstance(target, ast.Subscript) and _name_of(target.value) == name


def _bindings(scope: ast.AST, name: str, *, changes: bool = True) -> list[ast.AST | None] | None:
    """What ``name`` is bound to in ``scope`` (None: not bound there). A parameter, a loop or
    ``with`` target, or (with ``changes``) a change after binding (``name[k] = v``,
    ``name.update(...)``) counts as an unknown value (None in the list)."""
    found: list[ast.AST | None] = []
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = scope.args
        if name in {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}:
            found.append(None)
    for node in _local_calls(scope):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == name:
                    found.append(node.value)
                elif _rebinds(target, name, changes):
                    found.append(None)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and _name_of(node.target) == name:
            found.append(getattr(node, "value", None) if isinstance(node, ast.AnnAssign) else None)
        elif isinstance(node, (ast.For, ast.comprehension, ast.withitem, ast.NamedExpr)):
            target = node.optional_vars if isinstance(node, ast.withitem) else node.target
            if target is not None and name in {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}:
                found.append(None)
        elif (changes and isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and isinstance(node.func.value, ast.Name) and node.func.value.id == name
              and node.func.attr in {"update", "setdefault", "pop", "__setitem__"}):
            found.append(None)
    return found or None


def _local_dict(receiver: ast.AST, scopes: list[ast.AST]) -> bool:
    """A name bound only to dict displays where it is bound (a dict the code builds, not Firestore)."""
    if not isinstance(receiver, ast.Name):
        return False
    for scope in reversed(scopes):
        bound = _bindings(scope, receiver.id, changes=False)
        if bound is not None:
            return all(isinstance(v, (ast.Dict, ast.DictComp)) for v in bound)
    return False


def _imported(receiver: ast.AST, imported: set[str]) -> bool:
    """An imported name or an attribute of one (``service``, ``module.Class``), with no call in
    between: ``clients.firestore().batch()`` is a Firestore object, ``clients`` is not."""
    while isinstance(receiver, ast.Attribute):
        receiver = receiver.value
    return isinstance(receiver, ast.Name) and receiver.id in imported


def scan(source: str, path: str) -> tuple[list[Write], list[str]]:
    """The Firestore writes in ``source``, each typed or not, and the .set/.update/.create calls
    that are neither a Firestore write nor on a receiver known not to be one."""
    tree = ast.parse(source, filename=path)
    module = _Module(tree)
    imported = {(alias.asname or alias.name).split(".")[0] for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    writes: list[Write] = []
    unknown: list[str] = []

    def visit(node: ast.AST, scopes: list[ast.AST]) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            scopes = [*scopes, node]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITES:
            receiver = node.func.value
            keyword = next((k.value for k in node.keywords if k.arg in ("document_data", "field_updates")), None)
            data = None
            if _imported(receiver, imported):
                pass  # a module's function or a class's (service.create, Resource.create): not Firestore
            elif len(node.args) >= 2:  # a Transaction or WriteBatch: (reference, data)
                data = node.args[1]
            elif _is_reference(receiver):  # a DocumentReference: (data)
                data = node.args[0] if node.args else keyword
            elif not _local_dict(receiver, scopes) and not any(re.fullmatch(p, ast.unparse(receiver))
                                                                for p in NOT_FIRESTORE):
                unknown.append(f"{path}:{node.lineno}: {ast.unparse(node)[:100]}")
            if data is not None:
                function = next((s.name for s in reversed(scopes) if hasattr(s, "name")), "<module>")
                writes.append(Write(path, node.lineno, function, ast.unparse(node)[:120],
                                    module.typed(data, scopes or [tree])))
        for child in ast.iter_child_nodes(node):
            visit(child, scopes)

    visit(tree, [tree])
    return writes, unknown


def scan_package(root: Path = ROOT) -> tuple[list[Write], list[str]]:
    writes, unknown = [], []
    for path in sorted(root.rglob("*.py")):
        found, odd = scan(path.read_text(), path.relative_to(root).as_posix())
        writes += found
        unknown += odd
    return writes, unknown


# ---- the scan over the code ----------------------------------------------------------

def test_every_firestore_write_goes_through_its_document_model():
    writes, unknown = scan_package()
    assert not unknown, "classify these .set/.update/.create calls (a Firestore write, or NOT_FIRESTORE):\n" + \
        "\n".join(unknown)
    raw = [w for w in writes if not w.typed and (w.path, w.function) not in RAW_WRITES]
    assert not raw, "write through the document model (SomethingDoc.fields(...) or .new(...)):\n" + "\n".join(
        f"{w.path}:{w.line} in {w.function}: {w.source}" for w in raw)
    assert len(writes) >= 60, f"the scan found only {len(writes)} writes: is it still reading the code?"


def test_every_exception_is_still_needed():
    writes, _ = scan_package()
    raw = {(w.path, w.function) for w in writes if not w.typed}
    assert set(RAW_WRITES) <= raw, f"no longer a raw write, drop it from RAW_WRITES: {set(RAW_WRITES) - raw}"
    sources = "\n".join(p.read_text() for p in ROOT.rglob("*.py"))
    for pattern in NOT_FIRESTORE:
        assert re.search(rf"\b(?:{pattern})\.(set|update|create)\(", sources), f"unused NOT_FIRESTORE entry {pattern}"


SAMPLE = '''
def helper(x):
    return OrderDoc.fields(a=x) if x else OrderDoc.fields(b=x)

def raw_helper(x):
    return {"a": x}

def generic(txn, ref, document: type[Document], other):
    txn.set(ref, document.new(x=1))
    txn.set(ref, other.new(x=1))

from flowsuite.bookings import service


def f(db, txn, batch, ref, given, step_log):
    txn.update(ref, {"a": 1})
    ref.set({"a": 1}, merge=True)
    db.collection("c").document("d").create(given)
    batch.update(ref, raw_helper(1))
    changed = OrderDoc.fields(a=1)
    changed["b"] = 2
    ref.update(changed)
    merged = OrderDoc.fields(a=1)
    merged.update(b=2)
    snap.reference.update(merged)
    ref.update(step_log.fields())
    txn.set(ref, OrderDoc.new(a=1))
    built = OrderDoc.fields(a=1)
    self.ref.update(built)
    txn.update(ref, helper(1))
    batch.create(ref, OrderDoc.new(a=1) if given else OrderDoc.new(b=1))

    def inner(t):
        t.update(ref, built)
        t.update(ref, given)

    report = {"a": 1}
    report.update(x=1)
    stripe.v1.refunds.create(params={})
    service.create(db, uid="u1")
    service.firestore().batch().set(ref, {"a": 1})
    mystery.update(x=1)
'''


def test_the_scan_tells_typed_writes_from_raw_ones():
    writes, unknown = scan(SAMPLE, "sample.py")
    verdicts = [(w.source.split("(")[0], w.typed) for w in writes]
    assert verdicts == [
        ("txn.set", True),  # document: type[Document]
        ("txn.set", False),  # other: any parameter
        ("txn.update", False),  # a dict literal
        ("ref.set", False),
        ("db.collection", False),  # a parameter
        ("batch.update", False),  # a helper returning a dict
        ("ref.update", False),  # changed after it was built
        ("snap.reference.update", False),  # merged after it was built
        ("ref.update", False),  # .fields() of something that is not a model
        ("txn.set", True),
        ("self.ref.update", True),
        ("txn.update", True),  # a helper returning only model-built data
        ("batch.create", True),
        ("t.update", True),  # bound in the enclosing function
        ("t.update", False),
        ("service.firestore", False),  # a call on an imported module's answer is Firestore
    ]
    assert unknown == ["sample.py:24: merged.update(b=2)", "sample.py:42: mystery.update(x=1)"]


# ---- the check itself ----------------------------------------------------------------

def test_fields_returns_exactly_what_it_was_given():
    ref, when = object(), dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    data = OrderDoc.fields({"status": "paid", "history": [1]}, {"status": "refunded"}, user_ref=ref, paid_time=when)
    assert data == {"status": "refunded", "history": [1], "user_ref": ref, "paid_time": when}
    assert data["user_ref"] is ref and type(data) is dict


def test_an_undeclared_field_is_refused_with_the_model_and_its_collection():
    with pytest.raises(DocumentWriteError, match=r"OrderDoc \(orders/\{order_id\}\) declares no field 'surprise'"):
        OrderDoc.fields(status="paid", surprise=1)
    with pytest.raises(DocumentWriteError, match="'also', 'surprise'"):
        OrderDoc.fields({"surprise": 1, "also": 2})
    with pytest.raises(DocumentWriteError, match="surprise"):
        OrderDoc.new(surprise=1)


def test_a_dotted_path_is_checked_by_its_first_segment():
    assert DeliveryDoc.fields({"steps.refund": {"id": "re_1"}}) == {"steps.refund": {"id": "re_1"}}
    assert DeadLetterDoc.fields({"envelope.data": {}, "envelope.subject": "x"})
    with pytest.raises(DocumentWriteError, match="'stepz.refund'"):
        DeliveryDoc.fields({"stepz.refund": {}})


@pytest.mark.parametrize("value", [gcf.SERVER_TIMESTAMP, gcf.DELETE_FIELD, gcf.Increment(1), gcf.ArrayUnion([1]),
                                   gcf.ArrayRemove([1]), gcf.Maximum(1), gcf.Minimum(1)])
def test_firestore_transforms_fit_any_declared_field(value):
    assert is_transform(value)
    assert OrderDoc.fields(total=value, status=value, updated_time=value) == {
        "total": value, "status": value, "updated_time": value}
    assert StockShardDoc.new(stock=value, updated_time=value) == {"stock": value, "updated_time": value}
    with pytest.raises(DocumentWriteError):
        OrderDoc.fields(surprise=value)


def test_plain_values_are_not_transforms():
    assert not any(is_transform(v) for v in (None, 1, "x", {}, [], dt.datetime.now(dt.UTC), object()))


def test_a_whole_document_is_validated_by_the_model():
    assert OrderHoldDoc.new(orders=1, units=3, updated_time=gcf.SERVER_TIMESTAMP)["units"] == 3
    with pytest.raises(DocumentWriteError, match=r"OrderHoldDoc \(order_holds/\{uid\}\): units: .*integer"):
        OrderHoldDoc.new(orders=1, units="three", updated_time=gcf.SERVER_TIMESTAMP)
    with pytest.raises(DocumentWriteError, match="updated_time: Field required"):
        OrderHoldDoc.new(orders=1, units=3)
    with pytest.raises(DocumentWriteError, match="paths"):
        EffectDoc.new({"result.id": "x"})


def test_a_whole_document_is_written_as_given_never_converted():
    # lax validation accepts "2" for an int; the write still carries what the code gave
    data = StockShardDoc.new(stock="2", updated_time="now")
    assert data == {"stock": "2", "updated_time": "now"}


def test_a_validation_error_names_fields_never_their_values():
    with pytest.raises(DocumentWriteError) as raised:
        OrderHoldDoc.new(orders=1, units="secret-value-9", updated_time=gcf.SERVER_TIMESTAMP)
    assert "secret-value-9" not in str(raised.value)


def test_no_document_model_is_built_at_import():
    """Cold start: importing every domain (as discovery does) declares the document models, and
    the models nested in them, but builds none: a model is built by its first ``new``."""
    code = ("import sys, main\nfrom pydantic import BaseModel\nfrom flowsuite.core.documents import COLLECTIONS\n"
            "assert len(COLLECTIONS) > 15, sorted(COLLECTIONS)\n"
            "models = [m for name, module in list(sys.modules.items()) if name.endswith('documents')\n"
            "          and name.startswith('flowsuite.') for m in vars(module).values()\n"
            "          if isinstance(m, type) and issubclass(m, BaseModel) and m.__module__ == name]\n"
            "assert len(models) > 15, models\n"
            "built = [m.__name__ for m in models if m.__pydantic_complete__]\nassert not built, built\n")
    env = {k: v for k, v in os.environ.items() if k != "FUNCTION_TARGET"}
    out = subprocess.run([sys.executable, "-c", code], cwd=FUNCTIONS, env={**env, "PYTHONPATH": str(FUNCTIONS)},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
