"""`user create/list/set-password/token`: the accounts that sign in to `serve`'s UI and API."""

import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kandji_bridge.cli.common import (
    ListFormat,
    app_context,
    err,
    not_blank,
    out,
    print_json,
    print_table,
)
from kandji_bridge.errors import BridgeError, UsageError

user_app = typer.Typer(help="Accounts for the web UI and the REST API.", no_args_is_help=True)


class Scope(StrEnum):
    read = "read"  # users.READ
    admin = "admin"  # users.ADMIN


PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from standard input (for scripts)."),
]


def read_password(from_stdin: bool) -> str:
    """The new password from standard input, or typed twice at a hidden prompt."""
    from kandji_bridge import users

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise BridgeError("No password was read from standard input; pipe one in.")
    elif sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        raise UsageError("No terminal to ask for a password on; pass --password-stdin.")
    users.validate_password(password)
    return password


@user_app.command("create")
def create(
    ctx: typer.Context,
    username: Annotated[
        str, typer.Argument(callback=not_blank, help="The new account's username.")
    ],
    password_stdin: PasswordStdin = False,
) -> None:
    """Create an admin account (the first one can also come from `serve`'s setup link)."""
    from kandji_bridge import users
    from kandji_bridge.db import open_state

    users.validate_username(username)
    password = read_password(password_stdin)
    with open_state(app_context(ctx).settings()) as state:
        user = users.create_user(state, username, password)
    out.print(f"Created user [bold]{escape(user.username)}[/bold]; sign in at the web UI.")


@user_app.command("list")
def list_command(
    ctx: typer.Context,
    output: Annotated[ListFormat, typer.Option("--format", help="Output format.")] = (
        ListFormat.table
    ),
) -> None:
    """List the accounts."""
    from kandji_bridge import users
    from kandji_bridge.db import open_state

    with open_state(app_context(ctx).settings()) as state:
        accounts = users.list_users(state)
    if output is ListFormat.json:
        print_json(
            [
                {
                    "username": user.username,
                    "created_at": user.created_at.isoformat(),
                    "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None,
                }
                for user in accounts
            ]
        )
        return
    if not accounts:
        err.print("No users yet; create one with `kandji-bridge user create USERNAME`.")
        return
    table = Table("username", "created", "last sign-in", box=None)
    for user in accounts:
        last = user.last_login_at.strftime("%Y-%m-%d %H:%M UTC") if user.last_login_at else "never"
        table.add_row(escape(user.username), user.created_at.strftime("%Y-%m-%d %H:%M UTC"), last)
    print_table(table)


@user_app.command("set-password")
def set_password(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="Whose password to change.")],
    password_stdin: PasswordStdin = False,
) -> None:
    """Change an account's password; its browser sessions are signed out."""
    from kandji_bridge import users
    from kandji_bridge.db import open_state

    password = read_password(password_stdin)
    with open_state(app_context(ctx).settings()) as state:
        users.set_password(state, username, password)
    out.print(f"Changed the password of [bold]{escape(username)}[/bold].")


@user_app.command("token")
def token(
    ctx: typer.Context,
    username: Annotated[
        str, typer.Argument(callback=not_blank, help="The account the token acts as.")
    ],
    name: Annotated[str, typer.Option("--name", callback=not_blank, help="What the token is for.")],
    scope: Annotated[
        Scope,
        typer.Option(
            "--scope",
            help="read (the default): pages, queries and /metrics, e.g. for Prometheus or a "
            "dashboard. admin: also every change (sources, mappings, collections, users, tokens).",
        ),
    ] = Scope.read,
) -> None:
    """Create an API token for scripts; it is printed once, on standard output."""
    from kandji_bridge import users
    from kandji_bridge.db import open_state

    with open_state(app_context(ctx).settings()) as state:
        secret = users.create_api_token(state, username, name, scope.value)
    err.print(
        f"Store this {scope.value} token now; it is not shown again. Send it as "
        "'Authorization: Bearer …'."
    )
    out.print(secret, markup=False)
