"""The package's layers, checked on its imports: a lower layer never imports a higher one.

Each rule names a package and the kandji_bridge modules it may import (prefixes); anything else
of kandji_bridge it imports is a layering break. Imports inside functions count too.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "kandji_bridge"

# package -> the kandji_bridge modules it may import (besides itself)
ALLOWED = {
    # The simulated tenant knows Kandji's permission names and nothing else of the product.
    "simulator": ("kandji_bridge.kandji.permissions",),
    # The Kandji client: Kandji's API and the product's error and redaction basics, no pipeline.
    "kandji": ("kandji_bridge.errors", "kandji_bridge.redact", "kandji_bridge.__version__"),
    # The asset store: collections and records, whoever fills them; nothing of Kandji.
    "assets": ("kandji_bridge.db", "kandji_bridge.errors"),
    # Detections read the log store and its guard, and keep their channels, outbox and windows
    # in the state DB (secrets through the token vault); they know nothing of the service or the
    # web.
    "detections": (
        "kandji_bridge.config",
        "kandji_bridge.db",
        "kandji_bridge.token_vault",
        "kandji_bridge.errors",
        "kandji_bridge.logs.normalize",
        "kandji_bridge.logs.enrich",
        "kandji_bridge.logs.schema",
        "kandji_bridge.logs.sql_guard",
        "kandji_bridge.logs.store",
        "kandji_bridge.logs.transform",
        "kandji_bridge.kandji.payloads",
    ),
    # The audit-log pipeline reads Kandji through its client; of the state DB only the actor
    # names it caches (logs/actors.py); nothing of the inventory or the operations.
    "logs": ("kandji_bridge.errors", "kandji_bridge.kandji", "kandji_bridge.db"),
    # The sink knows rows, the table and the user-query sessions; not the collector, the guard
    # or Kandji.
    "logs.store": (
        "kandji_bridge.errors",
        "kandji_bridge.logs.normalize",
        "kandji_bridge.logs.schema",
        "kandji_bridge.logs.user_queries",
    ),
    # Enrichment fills a normalized row's columns; it reads nothing else of the pipeline.
    "logs.enrich": (
        "kandji_bridge.errors",
        "kandji_bridge.logs.normalize",
        "kandji_bridge.logs.schema",
    ),
}


def all_imports(path: Path) -> set[str]:
    """Every module `path` imports (and `kandji_bridge.x` for `from kandji_bridge import x`)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "kandji_bridge":
                names.update(f"kandji_bridge.{alias.name}" for alias in node.names)
            else:
                names.add(node.module)
    return names


def imported(path: Path) -> set[str]:
    """The kandji_bridge modules `path` imports."""
    return {name for name in all_imports(path) if name.startswith("kandji_bridge")}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_what_its_layer_allows(package: str) -> None:
    own = f"kandji_bridge.{package}"
    breaks = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in sorted((PACKAGE / package.replace(".", "/")).rglob("*.py"))
        for name in sorted(imported(path))
        if not (name == own or name.startswith(own + "."))
        and not any(
            name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED[package]
        )
    ]
    assert breaks == []


# The domain: what the product does, whoever asks. The front ends (the CLI, the web app, the
# service that runs them) call into it, never the other way round.
DOMAIN = ("assets", "db", "detections", "inventory", "jobs", "kandji", "logs", "simulator")
FRONT_ENDS = ("kandji_bridge.cli", "kandji_bridge.web", "kandji_bridge.service")


@pytest.mark.parametrize("package", (*DOMAIN, "operations"))
def test_the_domain_and_the_operations_never_import_a_front_end(package: str) -> None:
    breaks = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for name in sorted(imported(path))
        if any(name == front or name.startswith(front + ".") for front in FRONT_ENDS)
    ]
    assert breaks == []


@pytest.mark.parametrize("package", DOMAIN)
def test_the_domain_never_imports_an_operation(package: str) -> None:
    breaks = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for name in sorted(imported(path))
        if name == "kandji_bridge.operations" or name.startswith("kandji_bridge.operations.")
    ]
    assert breaks == []


def test_operations_never_import_a_front_end() -> None:
    breaks = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in sorted((PACKAGE / "operations").rglob("*.py"))
        for name in sorted(imported(path))
        if any(name == front or name.startswith(front + ".") for front in FRONT_ENDS)
    ]
    assert breaks == []


@pytest.mark.parametrize("package", DOMAIN)
def test_only_the_cli_uses_typer(package: str) -> None:
    users = [
        str(path.relative_to(PACKAGE.parent))
        for path in sorted((PACKAGE / package).rglob("*.py"))
        if "typer" in {name.split(".")[0] for name in all_imports(path)}
    ]
    assert users == []


@pytest.mark.parametrize("package", DOMAIN)
def test_the_domain_never_imports_the_operations(package: str) -> None:
    breaks = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for name in sorted(imported(path))
        if name == "kandji_bridge.operations" or name.startswith("kandji_bridge.operations.")
    ]
    assert breaks == []
