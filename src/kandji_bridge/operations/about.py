"""What this installation runs with, for the About page: the version, where the data lives, and
how audit events are enriched (the IP databases and the custom rules loaded)."""

import os
from collections.abc import Mapping
from dataclasses import dataclass

from kandji_bridge import __version__
from kandji_bridge.config import Settings
from kandji_bridge.logs.enrich import ENV_RULES, Enricher
from kandji_bridge.logs.store import LogStore


@dataclass(frozen=True)
class RuleSetView:
    name: str
    path: str
    provider: str
    rules: int


@dataclass(frozen=True)
class About:
    version: str
    home: str
    log_store: str
    ip_databases: list[str]
    rules_setting: str  # the environment variable that names the rules file
    rules_file: str | None
    rule_sets: list[RuleSetView]


def about(
    settings: Settings,
    store: LogStore,
    enricher: Enricher,
    environ: Mapping[str, str] | None = None,
) -> About:
    """The running configuration; the rules file is the one the enricher was built from (the
    environment of this process)."""
    environ = os.environ if environ is None else environ
    databases = [
        f"{database.name} ({path})" if (path := getattr(database, "path", None)) else database.name
        for database in enricher.databases
    ]
    return About(
        version=__version__,
        home=str(settings.home),
        log_store=store.display_url,
        ip_databases=databases,
        rules_setting=ENV_RULES,
        rules_file=environ.get(ENV_RULES) or None,
        rule_sets=[
            RuleSetView(rule_set.name, rule_set.path, rule_set.provider, len(rule_set.rules))
            for rule_set in enricher.rule_sets
        ],
    )
