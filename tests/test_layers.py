"""The house's rules that a reader should never have to check by hand.

The layer contracts themselves are import-linter's (`[tool.importlinter]` in pyproject.toml, run
by `python3 dev.py test`). What it does not see is checked here: a cycle between a package and
one of its own modules (`bot.store` importing `bot.store.jobs`, which imports `bot.store`),
modules that grew past what one reading holds, and the Cogs' shape discord.py expects.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
from pathlib import Path

import grimp
from discord.ext import commands

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("videobot", "cogs", "discordbot", "bot")
# "About 400 lines": a module past this holds more than one thing, or says one thing at length.
MAX_MODULE_LINES = 450


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = []
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work.append((root, sorted(graph.find_modules_directly_imported_by(root))))
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.find_modules_directly_imported_by(nxt))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_sees_a_package_importing_itself_through_a_module(tmp_path: Path) -> None:
    pkg = tmp_path / "looped"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from looped.inner import thing\n")
    (pkg / "inner.py").write_text("import looped\nthing = 1\n")
    (pkg / "plain.py").write_text("from looped.inner import thing\n")
    sys.path.insert(0, str(tmp_path))
    try:
        graph = grimp.build_graph("looped", cache_dir=None)
    finally:
        sys.path.remove(str(tmp_path))
    assert cycles(graph) == [["looped", "looped.inner"]]


def test_no_import_cycles_among_the_projects_modules_package_faces_included() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert cycles(graph) == []


def _product_modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_no_module_grows_past_one_reading() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in _product_modules()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def _cog_modules() -> list[str]:
    return sorted(
        f"cogs.{path.stem}" for path in (ROOT / "cogs").glob("*.py") if path.stem != "__init__"
    )


def test_every_module_in_cogs_is_an_extension_with_a_cog_and_all_are_loaded() -> None:
    from discordbot.client import EXTENSIONS

    assert sorted(EXTENSIONS) == _cog_modules()
    for name in _cog_modules():
        module = importlib.import_module(name)
        assert inspect.iscoroutinefunction(getattr(module, "setup", None)), name
        cogs = [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj) and issubclass(obj, commands.Cog) and obj.__module__ == name
        ]
        assert cogs, f"{name} defines no commands.Cog"


def test_the_core_never_names_discord_markup_for_a_member() -> None:
    # Discord's timestamp and channel markup belong to the Discord layer (discordbot/markup.py).
    offenders = []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                continue
            if "<t:" in node.value or "<#" in node.value:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
