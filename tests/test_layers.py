"""The package's architecture holds: imports only point down the layers (never sideways between
packages of one layer, never in a cycle), no import hides inside a function, and no private name is
imported from another module."""

import ast
from pathlib import Path

from .helpers import ROOT

PACKAGE = ROOT / "jaxstyle"
# bottom to top; a module may import from its own layer's package and from lower layers only
LAYERS = [("errors", "imaging", "interrupts"), ("hosts",), ("io",), ("nets",), ("objective",), ("optim",), ("config",), ("schedules",),
          ("video", "audio"), ("feedforward",), ("api",), ("batch",), ("cli",), ("__init__", "__main__")]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
# optional dependencies imported where they are needed, so the package works without them
LAZY = {("nets/weights.py", "torch"), ("nets/weights.py", "h5py"), ("nets/weights.py", "numpy._core.multiarray"),
        ("io/ffmpeg.py", "imageio_ffmpeg")}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _target(path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an import refers to."""
    if not node.level:
        return node.module or ""
    base = _module_name(path).split(".")
    if path.name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _internal_imports():
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _target(path, node)
                if target == "jaxstyle" or target.startswith("jaxstyle."):
                    yield path, node, target


def test_imports_point_down():
    wrong = []
    for path, node, target in _internal_imports():
        here = _top(_module_name(path))
        # "from .. import imaging, schedules" names modules; "from ..io.images import x" names one
        layers = [alias.name for alias in node.names] if target == "jaxstyle" else [_top(target)]
        for layer in layers:
            if layer != here and RANK[layer] >= RANK[here]:
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {target} ({here} -> {layer})")
    assert not wrong, "\n".join(wrong)


def _is_module(name: str) -> bool:
    path = ROOT / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or path.is_dir()


def test_no_cycles_between_modules():
    graph: dict[str, set[str]] = {}
    for path, node, target in _internal_imports():
        src = _module_name(path)
        for alias in node.names:
            dest = f"{target}.{alias.name}" if _is_module(f"{target}.{alias.name}") else target
            if dest != src:
                graph.setdefault(src, set()).add(dest)
    done: set[str] = set()

    def cycle_from(module, stack):
        if module in stack:
            return stack[stack.index(module):] + [module]
        if module in done:
            return None
        for dep in sorted(graph.get(module, ())):
            found = cycle_from(dep, stack + [module])
            if found:
                return found
        done.add(module)
        return None

    for module in sorted(graph):
        found = cycle_from(module, [])
        assert not found, " -> ".join(found)


def test_no_imports_inside_functions():
    hidden = []
    for path, tree in _modules():
        for func in ast.walk(tree):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(func):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                        for name in names:
                            if (str(path.relative_to(PACKAGE)), name) not in LAZY:
                                hidden.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name} in {func.name}")
    assert not hidden, "\n".join(hidden)


def test_no_private_names_across_modules():
    private = [f"{path.relative_to(ROOT)}:{node.lineno} imports {target}.{alias.name}"
               for path, node, target in _internal_imports() for alias in node.names
               if alias.name.startswith("_") and alias.name != "__version__"]
    assert not private, "\n".join(private)
