"""The `kandji-bridge` command line (the contract is docs/CLI.md): the Typer app in `app`, one
module per command group. Commands only parse input and print output; the work is in the domain
packages."""

from kandji_bridge.cli.app import app, main

__all__ = ["app", "main"]
