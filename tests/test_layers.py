"""The package's layering, read from the code: each area's docstring says what it may import
(a `May import:` line) and these tests hold the imports to it, lazy ones inside functions
included, so the docstrings cannot drift from the code. No module imports itself back
through another, at any depth."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "medqa"
MAY_IMPORT = re.compile(r"^May import: (.+?)\.?$", re.MULTILINE)
THIRD_PARTY_DECLARED = {"ray"}  # the one outside dependency the layering rules are about


def areas() -> dict[str, Path]:
    """Each package (its __init__) and each top-level module: the units the layering is about."""
    found = {p.name: p / "__init__.py" for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    found |= {p.stem: p for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")}
    return found


def area_files(area: str) -> list[Path]:
    folder = PACKAGE / area
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [PACKAGE / f"{area}.py"]


def imported_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def used_areas(area: str) -> dict[str, set[str]]:
    """{area or 'ray': files using it} for every medqa area (and Ray) this area's files import."""
    known, used = areas(), {}
    for path in area_files(area):
        for name in imported_names(path):
            parts = name.split(".")
            target = parts[1] if parts[0] == "medqa" and len(parts) > 1 else parts[0]
            if (parts[0] == "medqa" and target in known and target != area) or target in THIRD_PARTY_DECLARED:
                used.setdefault(target, set()).add(str(path.relative_to(PACKAGE)))
    return used


def declared(area: str) -> set[str]:
    doc = ast.get_docstring(ast.parse(areas()[area].read_text())) or ""
    match = MAY_IMPORT.search(doc)
    assert match, f"medqa/{area}: its docstring needs a 'May import: a, b, ray.' line (or 'nothing of medqa')"
    text = re.sub(r"\([^)]*\)", "", match.group(1)).strip()  # (notes in parentheses say why)
    return {item.strip() for item in text.split(",")} - {"nothing of medqa"}


@pytest.mark.parametrize("area", sorted(areas()))
def test_each_area_imports_only_what_its_docstring_allows(area):
    allowed = declared(area)
    assert allowed <= set(areas()) | THIRD_PARTY_DECLARED, f"{area} declares unknown areas: {allowed}"
    extra = {name: sorted(files) for name, files in used_areas(area).items() if name not in allowed}
    assert not extra, f"medqa/{area} imports what its docstring does not allow: {extra}"


def test_the_core_areas_stay_free_of_ray():
    """Configs, records, the model layer, metrics and the safety rules run in any process."""
    for area in ("config", "modeling", "safety", "reporting"):
        assert "ray" not in declared(area) and "ray" not in used_areas(area), area


def module_graph() -> dict[str, set[str]]:
    modules = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imported_names(path) if m in modules and m != name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    state, path = {}, []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = "done"
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_no_module_imports_itself_back():
    assert find_cycle(module_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []
