"""The package's layers: Stage II (the SRAM exploration and its files) loads no Stream or ZigZag, and no module of
stream_trapti imports itself back through others."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import stream_trapti
import stream_trapti.sram

PACKAGE = Path(stream_trapti.__file__).parent
STAGE_II = (
    *(f"stream_trapti.sram.{module.name}" for module in pkgutil.iter_modules(stream_trapti.sram.__path__)),
    "stream_trapti.reports.exploration_outputs",
    "stream_trapti.reports.sram_plots",
    "stream_trapti.trace",
)


def test_stage_ii_loads_neither_stream_nor_zigzag() -> None:
    # CACTI's source is found inside zigzag-dse: locating it must not import ZigZag either.
    probe = (
        f"import importlib, sys\nfor name in {STAGE_II!r}:\n    importlib.import_module(name)\n"
        "from stream_trapti.sram.cacti_build import shipped_source_dir\nassert shipped_source_dir().is_dir()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('stream', 'zigzag')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The stream_trapti modules ``path`` imports anywhere in it (lazy imports inside functions too: they are what
    hides a cycle), packages resolved to the module named when ``from package import module``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in modules}


def test_no_import_cycle() -> None:
    files = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    modules = set(files)
    graph = {name: _imports(path, modules) - {name} for name, path in files.items()}
    # Depth-first search; a module met again while still on the path closes a cycle.
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                cycle = path[path.index(imported) :] + [imported]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if imported not in state:
                visit(imported)
        path.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
