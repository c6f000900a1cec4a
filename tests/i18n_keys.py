"""Every member-facing template in the source, found the way `tests/test_i18n.py` checks the
catalogs: the literal template of each `t(locale, template, ...)` and `notice(template, ...)`
call under bot/, discordbot/ and cogs/."""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "discordbot", "cogs")
# Which argument is the template, by the called name.
TEMPLATE_ARG = {"t": 1, "notice": 0}
# The functions that pass a template on (their own argument), not a place a template is written.
PASSING_ON = {("discordbot/i18n.py", "t")}


@dataclass
class Found:
    templates: dict[str, list[str]] = field(default_factory=dict)
    # Calls whose template is not a literal: extraction would miss them.
    not_literal: list[str] = field(default_factory=list)


def _called(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and func.attr in TEMPLATE_ARG:
        return func.attr
    return None


@functools.cache  # the source does not change while the tests run
def source_templates(root: Path = ROOT) -> Found:
    found = Found()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            tree = ast.parse(path.read_text(encoding="utf-8"), rel)
            passing = {
                id(node)
                for outer in ast.walk(tree)
                if isinstance(outer, ast.FunctionDef) and (rel, outer.name) in PASSING_ON
                for node in ast.walk(outer)
            }
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or id(node) in passing:
                    continue
                name = _called(node)
                if name not in TEMPLATE_ARG:
                    continue
                where = f"{rel}:{node.lineno}"
                index = TEMPLATE_ARG[name]
                arg = node.args[index] if len(node.args) > index else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.templates.setdefault(arg.value, []).append(where)
                else:
                    found.not_literal.append(where)
    return found
