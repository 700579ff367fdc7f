"""PostgreSQL for the state-DB tests: from KANDJI_BRIDGE_TEST_POSTGRES_URL, or skip (fail in CI)."""

import os
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get("KANDJI_BRIDGE_TEST_POSTGRES_URL")
ROOT_CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"


def skip_or_fail(config: pytest.Config, reason: str) -> None:
    """tests/conftest.py's skip_or_fail: skip on a developer machine, fail in CI.

    Found through pytest's plugin registry: conftest files outside a package are all imported
    under the one name `conftest`, so `from conftest import ...` gets whichever loaded last.
    """
    for plugin in config.pluginmanager.get_plugins():
        if Path(getattr(plugin, "__file__", None) or ".").resolve() == ROOT_CONFTEST:
            plugin.skip_or_fail(reason)
    raise AssertionError(f"{ROOT_CONFTEST} is not loaded")


def require_postgres(config: pytest.Config) -> str:
    """The test server's URL, or skip (fail in CI) when there is none."""
    if not POSTGRES_URL:
        skip_or_fail(config, "KANDJI_BRIDGE_TEST_POSTGRES_URL is not set, so no PostgreSQL tests")
    return POSTGRES_URL  # type: ignore[return-value]
