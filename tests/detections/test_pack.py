"""The Kandji pack: every rule validates, and every rule's fixtures run for real on chDB.

Each case's Kandji events go through the product's transform (normalize + geoip2fast enrichment)
into a real chDB store, the rule runs over the fixture window, positives match and negatives don't.
"""

import fnmatch
import json
import tomllib
from pathlib import Path

import pytest

from kandji_bridge.detections import KANDJI_PACK
from kandji_bridge.detections.fixtures import (
    DEFAULT_RECEIVED,
    FixtureCase,
    FixtureEvent,
    load_fixtures,
    run_case,
)
from kandji_bridge.detections.rules import Detection, load_rule, load_rules, rule_files
from kandji_bridge.logs.store import ChdbLogStore

from .conftest import FIXTURES

RULE_FILES = rule_files(KANDJI_PACK)
PACKAGE = KANDJI_PACK.parents[2]  # src/kandji_bridge
PYPROJECT = PACKAGE.parents[1] / "pyproject.toml"
CASES = [
    pytest.param(path, case, id=f"{path.stem}: {'+' if case.positive else '-'} {case.name}")
    for path in RULE_FILES
    for case in load_fixtures(FIXTURES / f"{path.stem}.fixtures.yaml")
]


def test_every_rule_of_the_pack_validates(store: ChdbLogStore) -> None:
    loaded = load_rules(KANDJI_PACK, store)
    assert [str(p) for p in loaded.problems] == []
    assert len(loaded.detections) >= 15
    assert {d.name for d in loaded.detections} == {p.stem for p in RULE_FILES}
    for detection in loaded.detections:
        assert detection.source_types == ("kandji",)
        assert detection.categories[0] == "kandji"
        assert detection.display_name.startswith("Kandji ")


def test_every_rule_has_positive_and_negative_fixtures() -> None:
    for path in RULE_FILES:
        cases = load_fixtures(FIXTURES / f"{path.stem}.fixtures.yaml")
        assert any(c.positive for c in cases), f"{path.stem} has no positive fixture"
        assert any(not c.positive for c in cases), f"{path.stem} has no negative fixture"


def test_every_rule_ships_with_its_fixtures_in_the_package() -> None:
    """An installed product runs `detections test NAME` on the pack: each rule's fixtures sit
    next to it in the package, and the wheel's package-data takes every file of the pack."""
    for path in RULE_FILES:
        assert (KANDJI_PACK / f"{path.stem}.fixtures.yaml").is_file(), path.stem
    patterns = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-data"]
    shipped = patterns["kandji_bridge"]
    for path in KANDJI_PACK.iterdir():
        relative = path.relative_to(PACKAGE).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in shipped), relative


_loaded: dict[Path, Detection] = {}


@pytest.mark.parametrize(("path", "case"), CASES)
def test_fixture(store: ChdbLogStore, path: Path, case) -> None:
    if path not in _loaded:
        _loaded[path] = load_rule(path, store)
    result = run_case(store, _loaded[path], case)
    assert result.passed, result.sentence


def test_security_library_item_removed_names_the_removed_security_items(
    store: ChdbLogStore,
) -> None:
    """What an admin reads in the match: which of the removed items were security items."""
    rule = load_rule(KANDJI_PACK / "kandji-security-library-item-removed.yaml", store)
    removed = [
        {"id": "i1", "name": "FileVault"},
        {"id": "i2", "name": "Zoom"},
        {"id": "i3", "name": "Firewall - strict"},
    ]
    event = {
        "id": "01JNQA0000000000000000SL10",
        "action": "update",
        "occurred_at": "2025-03-06T09:02:00.000000Z",
        "actor_id": "admin-1",
        "actor_type": "user",
        "target_id": "blueprint-1",
        "target_type": "blueprint",
        "target_component": "library_items",
        "new_state": {"library_items_removed": removed, "name": "Engineering"},
        "metadata": {},
    }
    case = FixtureCase(
        name="three items removed, two of them security items",
        positive=True,
        events=[FixtureEvent(DEFAULT_RECEIVED, event, json.dumps(event))],
        matches=1,
    )
    result = run_case(store, rule, case)
    assert result.passed, result.sentence
    assert [row["removedItems"] for row in result.rows] == [["FileVault", "Firewall - strict"]]


def test_delete_burst_counts_every_delete_and_lists_up_to_a_thousand(
    store: ChdbLogStore,
) -> None:
    """A mass removal (a fleet wiped by one token) stays one small match: the count is exact,
    the lists of what was deleted hold 1,000."""
    rule = load_rule(KANDJI_PACK / "kandji-delete-burst.yaml", store)
    events = []
    for number in range(1200):
        event = {
            "id": f"01JNQA00000000000000{number:06d}",
            "action": "delete",
            "occurred_at": f"2025-03-06T09:0{number // 400}:{number % 400 // 10:02d}.000000Z",
            "actor_id": "token-mass-removal",
            "actor_type": "api_token",
            "target_id": f"device-{number}",
            "target_type": "device",
            "target_component": "",
            "new_state": {},
            "metadata": {},
        }
        events.append(FixtureEvent(DEFAULT_RECEIVED, event, json.dumps(event)))
    case = FixtureCase(name="1,200 devices deleted", positive=True, events=events, matches=1)
    result = run_case(store, rule, case)
    assert result.passed, result.sentence
    [match] = result.rows
    assert match["deletes"] == 1200
    assert len(match["deleted"]) == len(set(match["deleted"])) == 1000
    assert len(match["eventIDs"]) == len(set(match["eventIDs"])) == 1000
    assert set(match["eventIDs"]) <= {e.data["id"] for e in events}
