"""What importing adaptergit costs: allowlists of the modules the CLI and the git hooks load
(after pallets/click's tests/test_imports.py), and no import cycle inside the package."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import adaptergit

PACKAGE = Path(adaptergit.__file__).parent

_PROBE = """
import json, sys
before = set(sys.modules)
{statement}
print(json.dumps(sorted({{m.split(".")[0] for m in set(sys.modules) - before}})))
"""

# Top-level modules `import adaptergit.cli` may load: click and the standard library pieces that
# click, pathlib and dataclasses bring. Anything else (torch, numpy, DVC, GitPython, YAML, ...)
# belongs inside the functions that need it.
ALLOWED_CLI = {
    "_ast", "_datetime", "_locale", "_opcode", "_typing", "_uuid", "_weakrefset", "adaptergit",
    "ast", "click", "collections", "datetime", "dis", "enum", "functools", "gettext", "inspect",
    "linecache", "locale", "math", "opcode", "platform", "threading", "token", "tokenize",
    "typing", "uuid", "weakref",
}  # fmt: skip

# The hook entry point runs on every `git commit`, `checkout` and `push`: not even click.
ALLOWED_HOOK = {
    "_ast", "_bisect", "_locale", "_opcode", "_posixsubprocess", "_random", "_sha512", "_typing",
    "_weakrefset", "adaptergit", "ast", "bisect", "collections", "copy", "dataclasses", "dis",
    "enum", "fcntl", "functools", "inspect", "linecache", "locale", "math", "opcode", "random",
    "select", "selectors", "signal", "subprocess", "threading", "token", "tokenize", "typing",
    "weakref",
}  # fmt: skip


def _loaded(statement: str) -> set[str]:
    code = _PROBE.format(statement=statement)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out))


def test_cli_imports_only_allowlisted_modules() -> None:
    extra = _loaded("import adaptergit.cli") - ALLOWED_CLI
    assert not extra, f"importing adaptergit.cli loads {sorted(extra)}"


def test_hook_entry_imports_only_allowlisted_modules() -> None:
    extra = _loaded("import adaptergit.__main__, adaptergit.ops.hooks") - ALLOWED_HOOK
    assert not extra, f"the hook entry point loads {sorted(extra)}"


def _module_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, function-local and TYPE_CHECKING ones included."""
    files = {
        ".".join(f.relative_to(PACKAGE.parent).with_suffix("").parts): f
        for f in PACKAGE.rglob("*.py")
        if f.stem not in ("__init__", "__main__")
    }

    def owner(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                target = owner(name)
                if target and target != module:
                    graph[module].add(target)
    return graph


def test_no_import_cycles_inside_the_package() -> None:
    graph = _module_graph()
    cycles: list[list[str]] = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_core_imports_no_operation() -> None:
    graph = _module_graph()
    core = {"adaptergit.registry", "adaptergit.index", "adaptergit.gitrepo", "adaptergit.dvcrepo"}
    for module in core:
        ops = sorted(m for m in graph[module] if m.startswith("adaptergit.ops."))
        assert not ops, f"{module} imports operations {ops}"
