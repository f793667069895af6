"""``pip install .`` (the README's first command) gives Roster every module it imports:
each third-party import of ``src/roster`` comes from a declared dependency or one of
theirs, never from the dev extras alone (SCIM's Bulk once imported httpx, which only
the dev extras installed, and ``roster serve --demo`` failed on a fresh machine)."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "src" / "roster"


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _installed_without_extras(distribution: str) -> set[str]:
    """``distribution`` and everything its requirements pull in, extras left out."""
    wanted, seen = [distribution], set()
    while wanted:
        name = wanted.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        wanted += [_name(r) for r in requires if "extra ==" not in r.replace('"', "")]
    return seen


def _imported_top_levels() -> set[str]:
    found: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    # _typeshed exists only for type checkers (imported under TYPE_CHECKING).
    return found - set(sys.stdlib_module_names) - {"roster", "__future__", "_typeshed"}


def test_every_import_comes_with_pip_install_dot() -> None:
    installed = _installed_without_extras("roster")
    providers = metadata.packages_distributions()
    missing = {
        module: providers.get(module, ["?"])
        for module in sorted(_imported_top_levels())
        if not any(_name(d) in installed for d in providers.get(module, []))
    }
    assert missing == {}
