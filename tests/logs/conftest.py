"""Shared inputs for the logs tests: Kandji's own example events, the MaxMind test databases."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kandji_bridge.logs.normalize import NormalizeContext
from kandji_bridge.logs.store import ChdbLogStore
from testdata import KANDJI_POSTMAN, MAXMIND

REPO_ROOT = Path(__file__).resolve().parents[2]

WORKSPACE_ID = "ws-test"
SOURCE_ID = "src-acme"
RECEIVED_AT = datetime(2025, 3, 6, 9, 0, 0, tzinfo=UTC)
# Long enough that the 2025 examples outlive the TTL however late these tests run.
RETENTION_DAYS = 36500


@dataclass(frozen=True)
class Event:
    """What the Kandji client hands over: the parsed event and its exact JSON text."""

    data: Any
    raw: str


def split_results(body: str) -> list[str]:
    """Each element of the page's "results" array, as the exact text of the response body."""
    decoder = json.JSONDecoder()
    index = body.index("[", body.index('"results"'))
    texts = []
    while True:
        index += 1
        while body[index] in " \t\r\n,":
            index += 1
        if body[index] == "]":
            return texts
        _, end = decoder.raw_decode(body, index)
        texts.append(body[index:end])
        index = end - 1


def _audit_example_body() -> str:
    collection = json.loads(KANDJI_POSTMAN.read_text())
    stack = list(collection["item"])
    while stack:
        item = stack.pop()
        stack.extend(item.get("item", []))
        if item.get("name") == "List audit events":
            return item["response"][0]["body"]
    pytest.fail("The Postman collection has no 'List audit events' example.")


@pytest.fixture(scope="session")
def postman_events() -> list[Event]:
    """The ten audit events of Kandji's 'List audit events' example, raw text as sent."""
    return [Event(json.loads(raw), raw) for raw in split_results(_audit_example_body())]


@pytest.fixture
def ctx() -> NormalizeContext:
    return NormalizeContext(WORKSPACE_ID, SOURCE_ID, RETENTION_DAYS, received_at=RECEIVED_AT)


@pytest.fixture(scope="session")
def maxmind() -> Path:
    return MAXMIND


@pytest.fixture
def chdb_store(tmp_path: Path) -> Iterator[ChdbLogStore]:
    store = ChdbLogStore(str(tmp_path / "logs"))
    store.ensure_schema()
    yield store
    store.close()
