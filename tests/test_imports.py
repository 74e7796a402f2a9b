"""The package's seams: a light codec import, the accessor registered in either import order, no cycles,
no module reaching into another's private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xdiffc"
HEAVY = ("xarray", "dask", "torch", "cf_xarray", "distributed")


def run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.parametrize("module", ["xdiffc.codec", "xdiffc.zarr_codec", "xdiffc"])
def test_loading_the_codec_imports_no_xarray_dask_or_torch(module):
    """What Zarr's and numcodecs' entry points load, in a reader that may have none of them."""
    loaded = run(f"import sys, {module}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert loaded == "[]"


@pytest.mark.parametrize("order", ["import xdiffc, xarray", "import xarray, xdiffc", "import xdiffc.metrics, xarray",
                                   "import xdiffc.xarray.variables, xarray", "import xdiffc.conversion.run, xarray"])
def test_the_accessor_registers_in_either_import_order(order):
    assert run(f"{order}; print(hasattr(xarray.Dataset(), 'gcdtc'))") == "True"


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = (ast.parse(path.read_text()), path.name == "__init__.py")
    return out


def _imports(name: str, tree: ast.Module, is_package: bool, top_level_only: bool):
    """(imported module, imported names) of every ``from`` import of the package in ``tree``."""
    package = name if is_package else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            target = f"{base}.{node.module}" if node.module else base
            yield target, [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("xdiffc"):
            yield node.module, [a.name for a in node.names]


@pytest.mark.parametrize("top_level_only", [True, False], ids=["module level", "in functions too"])
def test_no_circular_imports(top_level_only):
    modules = _modules()
    graph = {}
    for name, (tree, is_package) in modules.items():
        deps = set()
        for target, names in _imports(name, tree, is_package, top_level_only):
            for n in names:  # "from . import grids" imports the submodule xdiffc.grids
                deps.add(f"{target}.{n}" if f"{target}.{n}" in modules else target)
        graph[name] = {d for d in deps if d in modules and d != name and not name.startswith(d + ".")}
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for dep in sorted(graph[node]):
            assert state.get(dep) != 1, f"import cycle: {' -> '.join(path + [dep])}"
            if dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_no_module_imports_another_modules_private_names():
    offences = [f"{name} imports {n} from {target}"
                for name, (tree, is_package) in _modules().items()
                for target, names in _imports(name, tree, is_package, top_level_only=False)
                for n in names if n.startswith("_") and n != "__version__"]
    assert not offences, offences


def test_the_first_compilation_is_announced_once(tmp_path):
    """With an empty numba cache the first calls compile for tens of seconds: stderr says so, once; a second run,
    which loads the kernels from the cache, says nothing."""
    import subprocess
    import sys

    code = ("from xdiffc.byteio import Reader, uvarint\n"  # one small kernel: compiled in a second, not a minute
            "assert Reader(uvarint(300), 'a varint').uvarint() == 300\n")
    env = {**__import__("os").environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0 and first.stderr.count("compiling its kernels") == 1, first.stderr[-2000:]
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0 and "compiling" not in again.stderr, again.stderr[-2000:]
