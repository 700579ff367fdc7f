"""The About page names the custom enrichment rules file and the rule sets the service loaded,
or says how to add rules when there are none."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kandji_bridge.logs.enrich import ENV_RULES

RULES = [
    {
        "name": "vip-admins",
        "path": "actor.email",
        "rules": [{"type": "exact", "pattern": "ceo@example.com", "data": {"tier": "vip"}}],
    },
    {
        "name": "office-networks",
        "path": "srcIP",
        "provider": "netops",
        "rules": [
            {"type": "cidr", "pattern": "10.0.0.0/8", "data": {"site": "hq"}},
            {"type": "cidr", "pattern": "192.168.0.0/16", "data": {"site": "branch"}},
        ],
    },
]


@pytest.fixture
def rules_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Set before the runtime is built, as for a service started with the variable set."""
    path = home.parent / "enrichment-rules.json"
    path.write_text(json.dumps(RULES))
    monkeypatch.setenv(ENV_RULES, str(path))
    return path


def test_the_about_page_names_the_rules_file_and_the_rules_loaded(
    rules_file: Path, client: TestClient
) -> None:
    page = client.get("/about")
    assert page.status_code == 200
    assert '<header class="topbar">' in page.text and 'href="/about"' in page.text
    assert f'<code data-testid="rules-file">{rules_file}</code>' in page.text
    assert "2 rule sets loaded" in page.text
    assert (
        "<td>vip-admins</td><td><code>actor.email</code></td><td>custom</td><td>1</td>" in page.text
    )
    assert (
        "<td>office-networks</td><td><code>srcIP</code></td><td>netops</td><td>2</td>" in page.text
    )


def test_without_rules_the_about_page_says_how_to_add_them(client: TestClient) -> None:
    page = client.get("/about")
    assert page.status_code == 200
    assert "No custom enrichment rules" in page.text and ENV_RULES in page.text
    assert "geoip2fast" in page.text
