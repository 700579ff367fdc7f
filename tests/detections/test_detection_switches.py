"""Which rules run is kept in the state DB: every `serve` on one state DB agrees, whatever its
home, and the detections.json an older version kept in the home is moved in once."""

import dataclasses
import json

from kandji_bridge.db import StateDB, open_state
from kandji_bridge.detections import KANDJI_PACK
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.operations import detections as ops

RULE = "kandji-api-token-created"
OTHER = "kandji-delete-burst"


def test_two_homes_on_one_state_db_agree_on_the_switches(
    state: StateDB, store: ChdbLogStore, tmp_path
) -> None:
    other_home = dataclasses.replace(state.settings, home=tmp_path / "second-serve")
    with open_state(other_home) as second:
        ops.set_enabled(state, store, RULE, True)
        assert ops.enabled_rule_names(second) == [RULE]
        assert ops.get_rule(second, store, RULE).enabled
        ops.set_enabled(second, store, RULE, False)
        assert ops.enabled_rule_names(state) == []
        assert not ops.get_rule(state, store, RULE).enabled


def test_a_home_detections_json_is_moved_into_the_state_db(
    state: StateDB, store: ChdbLogStore
) -> None:
    old = state.settings.home / "detections.json"
    old.write_text(
        json.dumps(
            {"enabled": {RULE: {"notify": ["siem"]}, OTHER: {"notify": [], "schedule": "@1m"}}}
        )
    )
    assert ops.enabled_rule_names(state) == [RULE, OTHER]
    assert not old.exists()
    assert ops.get_rule(state, store, RULE).notify == ("siem",)
    assert ops.get_rule(state, store, OTHER).detection.schedule == "@1m"
    # Moved once: a switch changed afterwards is not undone by the old file.
    ops.set_enabled(state, store, RULE, False)
    assert ops.enabled_rule_names(state) == [OTHER]


def test_enabling_the_pack_keeps_its_schedule_and_channels(
    state: StateDB, store: ChdbLogStore
) -> None:
    names = ops.enable_pack(state, "@1m", ("demo-inbox",))
    assert ops.enabled_rule_names(state) == names
    rule = ops.get_rule(state, store, OTHER)
    assert (rule.detection.schedule, rule.channels[-1]) == ("@1m", "demo-inbox")


def test_enabling_the_pack_enables_its_rules_not_their_fixtures(state: StateDB) -> None:
    names = ops.enable_pack(state, "@1m")
    assert names == sorted(path.stem for path in KANDJI_PACK.glob("*.sql"))
    assert ops.enabled_rule_names(state) == names
