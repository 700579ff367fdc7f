"""What every command shares: the consoles, the global options, and reading a token safely."""

import os
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import typer
from rich.console import Console
from rich.table import Table

from kandji_bridge import redact
from kandji_bridge.config import Settings, load_settings
from kandji_bridge.errors import BridgeError, UsageError

if TYPE_CHECKING:
    from kandji_bridge.service import advert

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class Context:
    home: Path | None
    debug: bool

    def settings(self) -> Settings:
        return load_settings(self.home)


class ListFormat(StrEnum):
    table = "table"
    json = "json"


def print_json(items: list[dict[str, object]]) -> None:
    """A listing as one JSON array of objects, for scripts."""
    sys.stdout.write(orjson.dumps(items, default=str).decode() + "\n")


def print_table(table: Table) -> None:
    """A table on the terminal's width; piped, as wide as its longest cell, so nothing a user
    must type (a name) is cut or wrapped."""
    if out.is_terminal:
        out.print(table)
    else:
        Console(file=sys.stdout, width=100_000, highlight=False, soft_wrap=True).print(table)


def app_context(ctx: typer.Context) -> Context:
    return ctx.find_root().obj


def not_blank(value: str | None) -> str | None:
    """Refuse an empty or blank name while the arguments are parsed: a usage error (exit 2)."""
    if value is not None and not value.strip():
        raise typer.BadParameter("is empty; give a name.")
    return value


def read_token(token_env: str | None, token_stdin: bool) -> str:
    """The Kandji token from an environment variable or standard input, never from argv."""
    if bool(token_env) == token_stdin:
        raise UsageError("Give the token with exactly one of --token-env VAR or --token-stdin.")
    if token_env:
        token = os.environ.get(token_env, "")
        where = f"the environment variable {token_env}"
        if not token.strip():
            raise BridgeError(f"{where} is empty or not set; export it with your Kandji API token.")
    else:
        token = sys.stdin.readline()
        where = "standard input"
        if not token.strip():
            raise BridgeError(
                "No token was read from standard input; pipe your Kandji API token in."
            )
    token = token.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    redact.remember(token)
    if not token.isascii() or not token.isprintable() or " " in token:
        raise BridgeError(
            f"The token from {where} contains spaces or non-ASCII characters; "
            "copy it again from Kandji Settings → Access."
        )
    return token


def running_service(settings: Settings) -> "advert.Advert | None":
    """The `serve` holding this home's embedded log store, which commands needing the store go
    through; None when no live service holds it (the command opens the store itself)."""
    from kandji_bridge.service import advert

    if not settings.log_store.startswith("chdb://"):
        return None  # a ClickHouse server takes many clients: no need for the service
    return advert.find_running(settings)
