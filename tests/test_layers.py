"""Who may import what: every module's imports (read with ``ast``, those inside
functions and ``TYPE_CHECKING`` blocks included) against the table in ARCHITECTURE.md,
and that table against the rules here.

- the client imports the standard library and msgspec, never the server;
- the plugin imports pytest and the client;
- the dashboard imports the server's interface (`datacat_server.web` and the public
  modules of `datacat_server.queries`) and nothing else of it;
- the server imports the dashboard only to mount it (`app.py`), the client's wire
  format anywhere, and the client library only in the commands (they are its clients).
"""

from __future__ import annotations

import ast
import dataclasses
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("datacat_client", "pytest_datacat", "dashboard", "datacat_server")
#: Typeshed's private module, imported under TYPE_CHECKING only.
STDLIB = frozenset(sys.stdlib_module_names) | {"__future__", "_typeshed"}


@dataclasses.dataclass(frozen=True)
class Rule:
    #: Third-party distributions' top-level modules the package may import.
    libraries: frozenset[str]
    #: Our modules (and their submodules) it may import, besides its own.
    ours: frozenset[str] = frozenset()


RULES = {
    "datacat_client": Rule(frozenset({"msgspec"})),
    "pytest_datacat": Rule(frozenset({"pytest"}), frozenset({"datacat_client"})),
    "dashboard": Rule(
        frozenset({"litestar", "jinja2", "markupsafe", "msgspec"}),
        frozenset({"datacat_server.web", "datacat_server.queries"}),
    ),
    "datacat_server": Rule(
        frozenset(
            {
                "litestar",
                "anyio",
                "uvicorn",
                "duckdb",
                "pyarrow",
                "msgspec",
                "defusedxml",
                "multipart",
                "prometheus_client",
                "jiter",
                "psycopg",
            }
        ),
        frozenset({"datacat_client.wire", "datacat_client", "dashboard"}),
    ),
}


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports(module: str, source: str) -> Iterator[str]:
    """The modules ``source`` (the text of ``module``) imports, absolute; ``from p
    import m`` gives ``p.m`` when ``m`` is one of our modules, and ``p`` only when it
    also imports a name that is not a module."""
    package = module if _is_package(module) else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            submodules = [f"{target}.{alias.name}" for alias in node.names]
            yield from (name for name in submodules if _is_module(name))
            if not all(_is_module(name) for name in submodules):
                yield target


def _is_package(module: str) -> bool:
    return (ROOT.joinpath(*module.split(".")) / "__init__.py").is_file()


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def problems(module: str, source: str) -> list[str]:
    """What ``module`` imports that the rules do not allow."""
    package = module.split(".", maxsplit=1)[0]
    rule = RULES[package]
    found = []
    for target in imports(module, source):
        top = target.split(".")[0]
        if top in STDLIB or _within(target, package):
            continue
        if top not in OURS:
            if top not in rule.libraries:
                found.append(f"{module} imports {target} (a library {package} may not use)")
            elif top == "psycopg" and not _within(module, "datacat_server.store.lake"):
                found.append(f"{module} imports {target} (only the lake store talks to PostgreSQL)")
            continue
        allowed = next(
            (o for o in sorted(rule.ours, key=len, reverse=True) if _within(target, o)), None
        )
        why = _special(module, target, allowed)
        if allowed is None or why:
            found.append(f"{module} imports {target}" + (f" ({why})" if why else ""))
    return found


def _special(module: str, target: str, allowed: str | None) -> str:
    """The rules a plain allow-list cannot say."""
    if allowed == "datacat_server.queries" and "._" in target.removeprefix(allowed):
        return "a private module of the query layer"
    if allowed == "dashboard":
        if module != "datacat_server.app":
            return "only app.py mounts the dashboard"
        if target != "dashboard":
            return "the dashboard's package, not its insides"
    server = _within(module, "datacat_server")
    if server and allowed == "datacat_client" and not _within(module, "datacat_server.commands"):
        return "only the commands use the client library; the rest shares its wire format"
    return ""


def modules() -> Iterator[tuple[str, Path]]:
    for package in OURS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def test_every_module_imports_only_what_its_package_may() -> None:
    found = [p for module, path in modules() for p in problems(module, path.read_text())]
    assert found == []


def test_the_checker_sees_what_breaks_a_rule() -> None:
    assert problems("dashboard.pages.x", "from datacat_server.store import Store") == [
        "dashboard.pages.x imports datacat_server.store"
    ]
    assert problems("dashboard.pages.x", "import duckdb") == [
        "dashboard.pages.x imports duckdb (a library dashboard may not use)"
    ]
    assert problems("dashboard.pages.x", "from datacat_server.queries._common import rows") == [
        "dashboard.pages.x imports datacat_server.queries._common"
        " (a private module of the query layer)"
    ]
    inside = "def f():\n    from datacat_server import auth\n"
    assert problems("dashboard.pages.x", inside) == [
        "dashboard.pages.x imports datacat_server.auth"
    ]
    assert problems("datacat_client._x", "from datacat_server import app") != []
    assert problems("pytest_datacat.x", "import litestar") != []
    assert problems("datacat_server.api.x", "from dashboard import DashboardPlugin") == [
        "datacat_server.api.x imports dashboard (only app.py mounts the dashboard)"
    ]
    assert problems("datacat_server.app", "from dashboard._mount import NAV") != []
    assert problems("datacat_server.api.x", "from datacat_client import DatacatClient") != []
    assert problems("datacat_server.queries.x", "import psycopg") == [
        "datacat_server.queries.x imports psycopg (only the lake store talks to PostgreSQL)"
    ]
    assert problems("datacat_server.store.lake.x", "import psycopg") == []
    # what is allowed passes
    assert problems("datacat_server.commands.x", "from datacat_client import DatacatClient") == []
    assert problems("datacat_server.api.x", "from datacat_client import wire") == []
    assert problems("dashboard.pages.x", "from datacat_server.web import read_cursor") == []
    assert problems("dashboard.pages.x", "from . import runs\nfrom ..x import y") == []


#: One row of the table: package, modules, what it may import.
_ROW = re.compile(r"^\| `(\w+)/` \| .* \| (?P<may>[^|]*) \|$", re.MULTILINE)


def test_architecture_md_says_the_same() -> None:
    table = {
        match.group(1): match.group("may")
        for match in _ROW.finditer((ROOT / "ARCHITECTURE.md").read_text())
    }
    for package, rule in RULES.items():
        cell = table[package]
        named = {
            name
            for name in re.findall(r"`([^`]+)`", cell)
            if re.fullmatch(r"[a-z_][a-z0-9_.]*", name) and not name.endswith(".py")
        }
        assert named == rule.libraries | rule.ours, package
        assert "stdlib" in cell, package


@pytest.mark.parametrize("package", OURS)
def test_the_walk_reads_every_package(package: str) -> None:
    assert sum(1 for module, _ in modules() if module.split(".")[0] == package) > 5
