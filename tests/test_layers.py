"""The package layers and the one-home rules, read from the source (every import, function-level
ones included): featurestore imports no torch; encoders and seqtrain import neither each other
nor Ray nor jobs; no two modules import each other, directly or around a loop; the ABAW
vocabulary is written out only in featurestore/abaw.py."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("featurestore", "trainkit", "encoders", "seqtrain", "jobs")
FORBIDDEN = {
    "featurestore": {"torch", "ignite", "ray", "trainkit", "encoders", "seqtrain", "jobs"},
    "trainkit": {"ray", "encoders", "seqtrain", "jobs"},
    "encoders": {"ray", "seqtrain", "jobs"},
    "seqtrain": {"ray", "encoders", "jobs"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names of everything ``path`` imports."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


MODULES = _modules()
IMPORTS = {m: _imports(p, m) for m, p in MODULES.items()}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_layers(package):
    bad = sorted((m, name) for m, names in IMPORTS.items() if m.split(".")[0] == package
                 for name in names if name.split(".")[0] in FORBIDDEN[package])
    assert not bad, bad


def test_no_import_cycles():
    def own(name: str) -> str | None:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        return name or None

    # as shared/tools/import_cycles.py: a package __init__ re-exporting its children is not a
    # cycle of ideas, so edges into and out of __init__ modules are left out
    inits = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    graph = {m: {o for n in names if (o := own(n)) and o != m and o not in inits}
             for m, names in IMPORTS.items() if m not in inits}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for o in sorted(graph[m]):
            if state.get(o) == 1:
                cycles.append(stack[stack.index(o):] + [o])
            elif o not in state:
                visit(o, stack + [o])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


@pytest.mark.parametrize("literal", ['"Neutral", "Anger"', '"AU1", "AU2"', '"va", "expr", "au"',
                                     '"Train_Set"', '"image_location"'])
def test_abaw_vocabulary_has_one_home(literal):
    homes = [str(p.relative_to(REPO)) for p in MODULES.values() if literal in p.read_text()]
    assert homes == ["featurestore/abaw.py"], homes
