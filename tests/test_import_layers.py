"""The package layer order of docs/DEVELOPING.md ("Which package may import which"), as a test.

Every module of `a2f_jax` is parsed with `ast` (imports inside functions included, relative imports resolved) and
mapped to its layer by the longest matching prefix of `LAYERS`. The tests fail on
- an import of a higher layer (within one package too: a layer-7 part may not import its package's layer-9 app),
- an import between the layer-7 parts of different packages (train / deploy / infer),
- an import of an unknown top-level package of this repository (the old `export`),
- an import cycle among module-level imports,
- an import inside a function without a comment on its line or the line before saying why (or, for a module
  that imports lazily by design, one module-level `# lazy imports: <why>` line).

`python tests/test_import_layers.py` prints the layer-to-layer import counts and every in-function import.
"""

from __future__ import annotations

import ast
import collections
import dataclasses
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "a2f_jax"

# Longest prefix wins. Keep in step with the table in docs/DEVELOPING.md.
LAYERS: dict[str, int] = {
    "a2f_jax": 0,
    "a2f_jax.errors": 0,
    "a2f_jax.io_utils": 0,
    "a2f_jax.config": 1,
    "a2f_jax.ops": 2,
    "a2f_jax.data": 3,
    "a2f_jax.models": 4,
    "a2f_jax.runs": 5,
    "a2f_jax.rundir": 5,
    "a2f_jax.preproc": 6,
    "a2f_jax.blendshapes": 6,
    "a2f_jax.train": 7,
    "a2f_jax.deploy": 7,
    "a2f_jax.infer": 7,
    "a2f_jax.networks": 8,
    "a2f_jax.train.entry": 9,
    "a2f_jax.infer.regression": 9,
    "a2f_jax.infer.diffusion": 9,
    "a2f_jax.infer.run_cli": 9,
    "a2f_jax.infer.evaluate": 9,
    "a2f_jax.deploy.run_bundle": 9,
    "a2f_jax.serve": 9,
    "a2f_jax.demo": 9,
    "a2f_jax.benchmarks": 9,
    "a2f_jax.device_check": 9,
    "a2f_jax.cli": 9,
    "a2f_jax.commands": 9,
}
LAYER_NAMES = {0: "foundation", 1: "config", 2: "ops", 3: "data", 4: "models", 5: "runs",
               6: "preproc/blendshapes", 7: "parts", 8: "networks", 9: "apps"}
# Layer 7 holds one part per package; parts of different packages must not import each other.
PARTS_LAYER = 7
# A module-level comment line starting with this justifies every in-function import of that file at once
# (modules that import lazily by design, e.g. benchmarks: `bench.py --only X` must not import every area).
LAZY_PRAGMA = "# lazy imports:"
# Top-level names that would be this repository's own code outside the package (the old `export/` root).
FOREIGN_ROOTS = ("export",)


@dataclasses.dataclass(frozen=True)
class Import:
    module: str  # importing module
    target: str  # imported module (a2f_jax.*), or a foreign root
    path: str  # repo-relative file
    line: int
    in_function: bool
    type_checking: bool
    commented: bool
    internal: bool


def module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, pathlib.Path]:
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py")) if "__pycache__" not in p.parts}


def layer_of(module: str) -> int:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise KeyError(module)


def package_of(module: str) -> str:
    """`a2f_jax.train.loop` -> `a2f_jax.train`; top-level modules are their own package."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _commented(lines: list[str], node: ast.stmt) -> bool:
    own = lines[node.lineno - 1]
    before = lines[node.lineno - 2].strip() if node.lineno >= 2 else ""
    end = lines[(node.end_lineno or node.lineno) - 1]
    return "#" in own or "#" in end or before.startswith("#")


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: pathlib.Path, modules: dict[str, pathlib.Path]) -> list[Import]:
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source, filename=str(path))
    rel = str(path.relative_to(ROOT))
    is_package = path.name == "__init__.py"
    found: list[Import] = []
    seen: set[tuple[int, str]] = set()
    lazy_file = any(line.startswith(LAZY_PRAGMA) for line in lines)

    def add(node: ast.stmt, target: str, in_function: bool, type_checking: bool) -> None:
        if (node.lineno, target) in seen:  # `from x import a, b` of one module counts once
            return
        seen.add((node.lineno, target))
        root = target.split(".")[0]
        internal = root == PACKAGE or root in FOREIGN_ROOTS
        found.append(Import(module, target, rel, node.lineno, in_function, type_checking,
                            lazy_file or _commented(lines, node), internal))

    def visit(node: ast.AST, in_function: bool, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, True, type_checking)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    visit_stmt(stmt, in_function, True)
                for stmt in child.orelse:
                    visit_stmt(stmt, in_function, type_checking)
            else:
                visit_stmt(child, in_function, type_checking)

    def visit_stmt(node: ast.AST, in_function: bool, type_checking: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node, alias.name, in_function, type_checking)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node)
            if base.split(".")[0] != PACKAGE:
                add(node, base, in_function, type_checking)
                return
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                add(node, sub if sub in modules else base, in_function, type_checking)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            visit(node, True, type_checking)
        else:
            visit(node, in_function, type_checking)

    visit(tree, False, False)
    return found


def all_imports() -> list[Import]:
    modules = all_modules()
    out: list[Import] = []
    for name, path in modules.items():
        out += imports_of(name, path, modules)
    return out


def _where(imp: Import) -> str:
    return f"{imp.path}:{imp.line}"


def layer_violations(imports: list[Import]) -> list[str]:
    bad = []
    for imp in imports:
        if not imp.internal:
            continue
        if imp.target.split(".")[0] in FOREIGN_ROOTS:
            bad.append(f"{_where(imp)}: {imp.module} imports {imp.target!r}, a second import root (use a2f_jax.*)")
            continue
        if imp.target == imp.module:
            continue
        src, dst = layer_of(imp.module), layer_of(imp.target)
        if dst > src:
            bad.append(f"{_where(imp)}: {imp.module} (layer {src} {LAYER_NAMES[src]}) imports {imp.target} "
                       f"(layer {dst} {LAYER_NAMES[dst]})")
        elif src == dst == PARTS_LAYER and package_of(imp.module) != package_of(imp.target):
            bad.append(f"{_where(imp)}: {imp.module} imports {imp.target}: layer-7 parts of different packages "
                       "must not import each other (move what they share down)")
    return bad


def module_cycles(imports: list[Import], include_function_level: bool = False) -> list[list[str]]:
    """Strongly connected components (more than one module) of the module-level import graph (with
    `include_function_level`, of the graph that also has the imports inside functions: cycles they hide)."""
    graph: dict[str, set[str]] = collections.defaultdict(set)
    for imp in imports:
        if (imp.internal and (include_function_level or not imp.in_function) and not imp.type_checking
                and imp.target != imp.module):
            graph[imp.module].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:  # Tarjan, iterative enough for this graph's depth
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return comps


def _cycle_edges(comp: list[str], imports: list[Import]) -> list[str]:
    members = set(comp)
    return [f"{_where(i)}: {i.module} -> {i.target}" for i in imports
            if i.internal and not i.in_function and not i.type_checking and i.module in members and i.target in members]


def uncommented_function_imports(imports: list[Import]) -> list[str]:
    return [f"{_where(i)}: {i.module} imports {i.target} inside a function without a comment saying why "
            "(heavy optional dependency, or a cycle breaker)"
            for i in imports if i.in_function and not i.type_checking and not i.commented]


# ----------------------------------------------------------------------------------------------- tests


def test_every_module_has_a_layer():
    missing = [m for m in all_modules() if _safe_layer(m) is None]
    assert not missing, f"modules without a layer in LAYERS (and docs/DEVELOPING.md): {missing}"


def _safe_layer(module: str) -> int | None:
    try:
        return layer_of(module)
    except KeyError:
        return None


def test_imports_follow_the_layer_order():
    bad = layer_violations(all_imports())
    assert not bad, f"{len(bad)} imports against the layer order (docs/DEVELOPING.md):\n" + "\n".join(bad)


def test_no_module_level_import_cycles():
    imports = all_imports()
    comps = module_cycles(imports)
    report = []
    for comp in comps:
        report.append("cycle: " + ", ".join(comp) + "\n  " + "\n  ".join(_cycle_edges(comp, imports)))
    assert not comps, f"{len(comps)} module-level import cycles:\n" + "\n".join(report)


def test_imports_inside_functions_say_why():
    bad = uncommented_function_imports(all_imports())
    assert not bad, f"{len(bad)} uncommented imports inside functions:\n" + "\n".join(bad)


def test_the_checker_sees_violations():
    """The test itself: a fake upward import, a cross-part import and a cycle are all caught."""
    fake = [
        Import("a2f_jax.models.x", "a2f_jax.train.loop", "m.py", 1, False, False, True, True),
        Import("a2f_jax.train.loop", "a2f_jax.infer.metrics", "t.py", 2, False, False, True, True),
        Import("a2f_jax.train.loop", "a2f_jax.train.entry", "t.py", 3, True, False, False, True),
        Import("a2f_jax.data.a", "a2f_jax.data.b", "a.py", 4, False, False, True, True),
        Import("a2f_jax.data.b", "a2f_jax.data.a", "b.py", 5, False, False, True, True),
        Import("a2f_jax.demo", "export.bundle", "d.py", 6, False, False, True, True),
    ]
    bad = layer_violations(fake)
    assert any("m.py:1" in b for b in bad) and any("t.py:2" in b for b in bad) and any("t.py:3" in b for b in bad)
    assert any("d.py:6" in b for b in bad)
    assert module_cycles(fake) == [["a2f_jax.data.a", "a2f_jax.data.b"]]
    assert [b.split(":")[0] for b in uncommented_function_imports(fake)] == ["t.py"]


# ---------------------------------------------------------------------------------------------- report


def report() -> str:
    imports = all_imports()
    internal = [i for i in imports if i.internal]
    counts: collections.Counter = collections.Counter()
    for i in internal:
        if i.target.split(".")[0] == PACKAGE and i.target != i.module:
            counts[(layer_of(i.module), layer_of(i.target))] += 1
    lines = ["imports between layers (row imports column):", "      " + " ".join(f"{c:>4}" for c in range(10))]
    for r in range(10):
        lines.append(f"{r:>2} {LAYER_NAMES[r][:3]:>3}" + " ".join(f"{counts.get((r, c), 0) or '.':>4}" for c in range(10)))
    in_fn = [i for i in imports if i.in_function and not i.type_checking]
    own = [i for i in in_fn if i.internal]
    lines.append(f"\nimports inside functions: {len(in_fn)} ({len(own)} of a2f_jax modules, "
                 f"{len(in_fn) - len(own)} of other packages); uncommented: {sum(not i.commented for i in in_fn)}")
    src_lines: dict[str, list[str]] = {}
    for i in in_fn:
        text = src_lines.setdefault(i.path, (ROOT / i.path).read_text().splitlines())
        why = text[i.line - 1].split("#", 1)[1].strip() if "#" in text[i.line - 1] else (
            text[i.line - 2].strip().lstrip("#").strip() if i.line >= 2 and text[i.line - 2].strip().startswith("#") else "-")
        lines.append(f"  {_where(i)}: {i.target}  [{why}]")
    bad = layer_violations(imports)
    lines.append(f"\nagainst the layer order: {len(bad)}")
    lines += ["  " + b for b in bad]
    comps = module_cycles(imports)
    lines.append(f"\nmodule-level cycles: {len(comps)}")
    lines += ["  " + ", ".join(c) for c in comps]
    hidden = module_cycles(imports, include_function_level=True)
    lines.append(f"cycles once imports inside functions count too: {len(hidden)}")
    lines += ["  " + ", ".join(c) for c in hidden]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(report())
