"""AST-guided bug injection with minimal, reversible source edits.

A :class:`Mutation` replaces one exact span of a source file (found through the AST) with new
text. Edits are made on the *text*, not by unparsing the tree, so comments and formatting
survive and the gold patch is a one- or two-line diff. A mutation is fully described by its
span, the original text of the span and the replacement, so a task is regenerated from the
corpus plus this spec; :meth:`Mutation.apply` refuses to apply to a file whose span no longer
holds the recorded text (the corpus changed: the index must be regenerated).

Operators (``Mutation.op``):

- ``boundary``: ``<`` <-> ``<=``, ``>`` <-> ``>=``
- ``negate_compare``: ``==`` <-> ``!=``, ``in`` <-> ``not in``, ``is`` <-> ``is not``
- ``flip_compare``: ``<`` <-> ``>``, ``<=`` <-> ``>=``
- ``arith``: ``+`` <-> ``-``, ``*`` -> ``+``, ``/`` -> ``*``, ``//`` -> ``/``, ``%`` -> ``//``
- ``aug_assign``: ``+=`` <-> ``-=``, ``*=`` -> ``+=``
- ``bool_op``: ``and`` <-> ``or``
- ``drop_not``: ``not x`` -> ``x``; ``drop_neg``: ``-x`` -> ``x``
- ``const_off_by_one``: integer literal ``n`` -> ``n + 1`` / ``n - 1``
- ``range_off_by_one``: a ``range(...)`` bound ``b`` -> ``b + 1`` / ``b - 1``
- ``index_off_by_one``: ``x[i]`` -> ``x[i + 1]`` / ``x[i - 1]``; slice bounds likewise
- ``swap_args``: the first two positional arguments of a call swapped
- ``swap_builtin``: ``min`` <-> ``max``, ``any`` <-> ``all``
- ``flip_bool``: ``True`` <-> ``False``
- ``wrong_return``: ``return expr`` -> ``return None``
- ``drop_statement``: a simple statement (assignment, call, ``break``, ``continue``) removed
- ``wrong_default``: a parameter's literal default changed
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import re
from dataclasses import asdict, dataclass

_CMP_SYM = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
}
_BOUNDARY = {"<": "<=", "<=": "<", ">": ">=", ">=": ">"}
_NEGATE = {"==": "!=", "!=": "==", "in": "not in", "not in": "in", "is": "is not", "is not": "is"}
_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}
_BIN_SYM = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%"}
_ARITH = {"+": "-", "-": "+", "*": "+", "/": "*", "//": "/", "%": "//"}
_AUG = {"+": "-", "-": "+", "*": "+"}
_BUILTIN_SWAP = {"min": "max", "max": "min", "any": "all", "all": "any"}
_SIMPLE = (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Break, ast.Continue)


@dataclass(frozen=True)
class Mutation:
    """Replace ``old`` at lines/cols ``(line, col)``-``(end_line, end_col)`` of ``path`` by ``new``.

    Lines are 1-based, columns 0-based character offsets (not bytes).
    """

    project: str
    path: str
    function: str
    op: str
    line: int
    col: int
    end_line: int
    end_col: int
    old: str
    new: str

    @property
    def key(self) -> str:
        """Content hash of the spec: stable across regenerations of an unchanged corpus."""
        raw = f"{self.project}|{self.path}|{self.line}:{self.col}-{self.end_line}:{self.end_col}|{self.old}|{self.new}"
        return hashlib.sha1(raw.encode()).hexdigest()[:8]

    @property
    def task_id(self) -> str:
        return f"{self.project}.{self.function}.{self.op}.{self.key}"

    def _offsets(self, source: str) -> tuple[int, int]:
        starts = [0]
        for ln in source.splitlines(keepends=True):
            starts.append(starts[-1] + len(ln))
        if self.end_line > len(starts) or self.line < 1:
            raise ValueError(f"mutation {self.task_id}: span outside {self.path}")
        return starts[self.line - 1] + self.col, starts[self.end_line - 1] + self.end_col

    def apply(self, source: str) -> str:
        """The mutated source. Raises ValueError if the span does not hold ``old``."""
        a, b = self._offsets(source)
        if source[a:b] != self.old:
            raise ValueError(
                f"mutation {self.task_id} does not match {self.project}/{self.path}: the corpus "
                "changed since the task index was generated; regenerate it (scripts/gen_coderepair_tasks.py)"
            )
        return source[:a] + self.new + source[b:]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Mutation:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def unified_diff(path: str, before: str, after: str) -> str:
    """A git-style unified diff of one text file (empty when equal)."""
    if before == after:
        return ""
    body = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{path}", f"b/{path}", n=3
    )
    lines = []
    for ln in body:
        if not ln.endswith("\n"):
            ln += "\n\\ No newline at end of file\n"
        lines.append(ln)
    return f"diff --git a/{path} b/{path}\n" + "".join(lines)


# ---------------------------------------------------------------------------------- enumeration
class _Src:
    """Source text with conversions between AST (line, byte col) and character offsets."""

    def __init__(self, text: str):
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.starts = [0]
        for ln in self.lines:
            self.starts.append(self.starts[-1] + len(ln))

    def off(self, line: int, byte_col: int) -> int:
        raw = self.lines[line - 1].encode()[:byte_col].decode(errors="replace")
        return self.starts[line - 1] + len(raw)

    def pos(self, off: int) -> tuple[int, int]:
        # Largest line start <= off; lines are short so a linear scan is fine.
        line = max(i for i, s in enumerate(self.starts[:-1]) if s <= off) + 1 if self.lines else 1
        return line, off - self.starts[line - 1]

    def node_span(self, node: ast.AST) -> tuple[int, int]:
        return self.off(node.lineno, node.col_offset), self.off(node.end_lineno, node.end_col_offset)

    def seg(self, node: ast.AST) -> str:
        a, b = self.node_span(node)
        return self.text[a:b]


def _plus(expr_text: str, node: ast.AST, delta: int) -> str:
    simple = isinstance(node, (ast.Name, ast.Constant, ast.Attribute, ast.Call, ast.Subscript))
    base = expr_text if simple or isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)) else f"({expr_text})"
    return f"{base} + {delta}" if delta > 0 else f"{base} - {-delta}"


class _Collector:
    def __init__(self, project: str, path: str, source: str):
        self.project, self.path, self.src = project, path, _Src(source)
        self.out: list[Mutation] = []

    def add(self, func: str, op: str, a: int, b: int, new: str) -> None:
        old = self.src.text[a:b]
        if old == new:
            return
        (l1, c1), (l2, c2) = self.src.pos(a), self.src.pos(b)
        self.out.append(Mutation(self.project, self.path, func, op, l1, c1, l2, c2, old, new))

    def gap_op(self, func: str, op: str, left: ast.AST, right: ast.AST, sym: str, new_sym: str) -> None:
        """Replace the operator token that sits between two operand nodes."""
        a = self.src.off(left.end_lineno, left.end_col_offset)
        b = self.src.off(right.lineno, right.col_offset)
        gap = self.src.text[a:b]
        if re.sub(r"[\s()]", "", gap) != sym.replace(" ", ""):
            return  # a comment or continuation in the gap: leave it alone
        pattern = r"\s+".join(re.escape(p) for p in sym.split())
        if sym in ("in", "is"):
            pattern = rf"\b{sym}\b"
        new_gap, n = re.subn(pattern, new_sym, gap, count=1)
        if n == 1:
            self.add(func, op, a, b, new_gap)

    def visit_function(self, func: str, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        src = self.src
        doc = ast.get_docstring(fn, clean=False) is not None
        # Defaults belong to the signature.
        for d in [*fn.args.defaults, *[k for k in fn.args.kw_defaults if k is not None]]:
            if isinstance(d, ast.Constant):
                a, b = src.node_span(d)
                v = d.value
                if isinstance(v, bool):
                    self.add(func, "wrong_default", a, b, repr(not v))
                elif isinstance(v, int):
                    self.add(func, "wrong_default", a, b, repr(v + 1))
                elif isinstance(v, str) and v:
                    self.add(func, "wrong_default", a, b, '""')
        body = fn.body[1:] if doc else fn.body
        for stmt in body:
            for node in ast.walk(stmt):
                self.visit_node(func, node)
        for node in ast.walk(fn):
            for field in ("body", "orelse", "finalbody"):
                block = getattr(node, field, None)
                if node is fn and field == "body":
                    block = body
                # Dropping the only statement of a block would not parse.
                if isinstance(block, list) and len(block) > 1:
                    for st in block:
                        self.drop(func, st)

    def drop(self, func: str, st: ast.stmt) -> None:
        if not isinstance(st, _SIMPLE):
            return
        if isinstance(st, ast.Expr) and not isinstance(st.value, ast.Call):
            return  # a docstring or bare expression: dropping it changes nothing
        src = self.src
        first = src.lines[st.lineno - 1]
        last = src.lines[st.end_lineno - 1]
        if first[: len(first) - len(first.lstrip())] != first[: src.off(st.lineno, st.col_offset) - src.starts[st.lineno - 1]]:
            return  # the statement does not start its line
        tail = last[src.off(st.end_lineno, st.end_col_offset) - src.starts[st.end_lineno - 1]:]
        if tail.strip() and not tail.strip().startswith("#"):
            return
        self.add(func, "drop_statement", src.starts[st.lineno - 1], src.starts[st.end_lineno], "")

    def visit_node(self, func: str, node: ast.AST) -> None:
        src = self.src
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            sym = _CMP_SYM[type(node.ops[0])]
            for op, table in (("boundary", _BOUNDARY), ("negate_compare", _NEGATE), ("flip_compare", _FLIP)):
                if sym in table:
                    self.gap_op(func, op, node.left, node.comparators[0], sym, table[sym])
        elif isinstance(node, ast.BinOp) and type(node.op) in _BIN_SYM:
            sym = _BIN_SYM[type(node.op)]
            # String formatting and concatenation are not arithmetic.
            if not (isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)) and not isinstance(node.left, ast.JoinedStr):
                self.gap_op(func, "arith", node.left, node.right, sym, _ARITH[sym])
        elif isinstance(node, ast.AugAssign) and type(node.op) in _BIN_SYM:
            sym = _BIN_SYM[type(node.op)]
            if sym in _AUG:
                self.gap_op(func, "aug_assign", node.target, node.value, sym + "=", _AUG[sym] + "=")
        elif isinstance(node, ast.BoolOp):
            sym = "and" if isinstance(node.op, ast.And) else "or"
            self.gap_op(func, "bool_op", node.values[0], node.values[1], sym, "or" if sym == "and" else "and")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            a, _ = src.node_span(node)
            b, _ = src.node_span(node.operand)
            if not (isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant)):
                self.add(func, "drop_not" if isinstance(node.op, ast.Not) else "drop_neg", a, b, "")
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            a, b = src.node_span(node)
            self.add(func, "const_off_by_one", a, b, repr(node.value + 1))
            if node.value > 0:
                self.add(func, "const_off_by_one", a, b, repr(node.value - 1))
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            a, b = src.node_span(node)
            self.add(func, "flip_bool", a, b, repr(not node.value))
        elif isinstance(node, ast.Call):
            self.visit_call(func, node)
        elif isinstance(node, ast.Subscript):
            self.visit_subscript(func, node)
        elif isinstance(node, ast.Return) and node.value is not None:
            if not (isinstance(node.value, ast.Constant) and node.value.value is None):
                a, b = src.node_span(node.value)
                self.add(func, "wrong_return", a, b, "None")

    def visit_call(self, func: str, node: ast.Call) -> None:
        src = self.src
        if isinstance(node.func, ast.Name) and node.func.id in _BUILTIN_SWAP:
            a, b = src.node_span(node.func)
            self.add(func, "swap_builtin", a, b, _BUILTIN_SWAP[node.func.id])
        if isinstance(node.func, ast.Name) and node.func.id == "range" and 1 <= len(node.args) <= 3:
            bounds = node.args[:2]
            for arg in bounds:
                if isinstance(arg, ast.Constant):
                    continue  # literal bounds are covered by const_off_by_one
                a, b = src.node_span(arg)
                for delta in (1, -1):
                    self.add(func, "range_off_by_one", a, b, _plus(src.seg(arg), arg, delta))
        args = node.args
        if len(args) >= 2 and not any(isinstance(x, ast.Starred) for x in args[:2]):
            s0, s1 = src.seg(args[0]), src.seg(args[1])
            if s0 != s1:
                a, _ = src.node_span(args[0])
                m, n = src.node_span(args[0])[1], src.node_span(args[1])[0]
                _, b = src.node_span(args[1])
                self.add(func, "swap_args", a, b, s1 + src.text[m:n] + s0)

    def visit_subscript(self, func: str, node: ast.Subscript) -> None:
        src = self.src
        sl = node.slice
        targets: list[ast.AST] = []
        if isinstance(sl, ast.Slice):
            targets = [x for x in (sl.lower, sl.upper) if x is not None and not isinstance(x, ast.Constant)]
        elif isinstance(sl, (ast.Name, ast.BinOp)) and isinstance(node.ctx, ast.Load):
            targets = [sl]
        for t in targets:
            if isinstance(t, ast.UnaryOp):
                continue
            a, b = src.node_span(t)
            for delta in (1, -1):
                self.add(func, "index_off_by_one", a, b, _plus(src.seg(t), t, delta))


def enumerate_mutations(project: str, path: str, source: str) -> list[Mutation]:
    """Every mutation of every top-level function and class method in ``source``.

    Mutants whose text is identical, or that do not parse, are dropped. Order is deterministic.
    """
    tree = ast.parse(source)
    col = _Collector(project, path, source)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            col.visit_function(node.name, node)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    col.visit_function(f"{node.name}.{item.name}", item)
    seen: set[str] = set()
    out = []
    for m in col.out:
        mutant = m.apply(source)
        if mutant in seen:
            continue
        try:
            ast.parse(mutant)
        except SyntaxError:
            continue
        seen.add(mutant)
        out.append(m)
    return out
