"""The import closure of a module inside ppdnn/, read from the source (ast), every import
statement counted, at module level or inside a function: what a stage's code can run.

Imports by name at run time (``importlib.import_module``, how a scheme is found) are not
seen; the stages list that one scheme file (or the schemes folder) themselves.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "ppdnn"


def module_file(name: str) -> Path | None:
    base = ROOT / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(path: Path, module: str) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)  # submodules
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def closure(module: str) -> set[Path]:
    """Files under ppdnn/ that ``module`` imports, directly or not (with every parent package)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b runs a
        path = module_file(name)
        if path is not None:
            todo += sorted(_imported(path, name))
    return {module_file(n).relative_to(ROOT) for n in seen if module_file(n) is not None}


def notebook_closure(path: Path) -> set[Path]:
    """Files under ppdnn/ that the code cells of the notebook at ``path`` import."""
    import json

    cells = json.loads(Path(path).read_text())["cells"]
    source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(a.name for a in node.names if a.name.startswith(PACKAGE))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            modules.add(node.module)
            modules.update(f"{node.module}.{a.name}" for a in node.names)
    return set().union(*(closure(m) for m in modules)) if modules else set()


if __name__ == "__main__":
    import sys
    files = set().union(*(notebook_closure(ROOT / a) if a.endswith(".ipynb") else closure(a) for a in sys.argv[1:]))
    for path in sorted(files):
        print(f"      - {path}")
