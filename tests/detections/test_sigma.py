"""Sigma rules: converted through pySigma into the pack's SQL shape, run for real on chDB.

The Sigma rules under sigma/ are twins of pack rules; on every fixture case of the pack rule
(its Kandji events through the product's transform into a real chDB store) both must match
exactly the same rows.
"""

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from kandji_bridge.detections import KANDJI_PACK
from kandji_bridge.detections.fixtures import FixtureCase, FixtureEvent, load_fixtures, run_case
from kandji_bridge.detections.rules import Detection, InvalidRules, load_rule, load_rules
from kandji_bridge.logs.store import ChdbLogStore

from .conftest import FIXTURES

SIGMA = Path(__file__).resolve().parent / "sigma"
TWINS = sorted(SIGMA.glob("*.yml"))
CASES = [
    pytest.param(path, case, id=f"{path.stem}: {'+' if case.positive else '-'} {case.name}")
    for path in TWINS
    for case in load_fixtures(FIXTURES / f"{path.stem}.fixtures.yaml")
]

GOOD = """title: Kandji Token Deleted
description: A token was deleted.
logsource:
  product: kandji
  service: audit
detection:
  selection:
    target_type|contains: token
    action: delete
  condition: selection
level: high
tags: [attack.ta0040, attack.t1531, kandji.tokens]
"""

_loaded: dict[Path, tuple[Detection, Detection]] = {}


def test_there_are_at_least_three_twins_of_pack_rules() -> None:
    assert len(TWINS) >= 3
    for path in TWINS:
        assert (KANDJI_PACK / f"{path.stem}.yaml").exists()


@pytest.mark.parametrize(("path", "case"), CASES)
def test_sigma_twin_matches_exactly_what_the_pack_rule_matches(
    store: ChdbLogStore, path: Path, case
) -> None:
    if path not in _loaded:
        _loaded[path] = (
            load_rule(KANDJI_PACK / f"{path.stem}.yaml", store),
            load_rule(path, store),
        )
    pack_rule, sigma_rule = _loaded[path]
    by_pack = run_case(store, pack_rule, case)
    by_sigma = run_case(store, sigma_rule, case)
    assert by_pack.passed, by_pack.sentence
    assert by_sigma.passed, by_sigma.sentence
    assert sorted(row["id"] for row in by_sigma.rows) == sorted(row["id"] for row in by_pack.rows)


def test_a_sigma_file_loads_as_the_same_detection_a_yaml_and_sql_rule_gives(
    store: ChdbLogStore, tmp_path: Path
) -> None:
    path = tmp_path / "kandji-token-deleted.yml"
    path.write_text(GOOD)
    detection = load_rule(path, store)
    assert isinstance(detection, Detection)
    assert detection.name == "kandji-token-deleted"
    assert detection.display_name == "Kandji Token Deleted"
    assert (detection.severity, detection.risk_score) == ("High", 75)
    assert detection.schedule == "*/15 * * * *"
    assert detection.mitre_attacks == ("TA0040",)
    assert detection.mitre_techniques == ("T1531",)
    assert detection.categories == ("kandji", "tokens")
    assert detection.source_types == ("kandji",)
    assert "receivedAt >= {from:DateTime} AND receivedAt < {to:DateTime}" in " ".join(
        detection.sql.split()
    )
    # A folder may mix both formats.
    (tmp_path / "other.yaml").write_text(
        (KANDJI_PACK / "kandji-api-token-created.yaml")
        .read_text()
        .replace("kandji-api-token-created", "other")
    )
    (tmp_path / "other.sql").write_text((KANDJI_PACK / "kandji-api-token-created.sql").read_text())
    loaded = load_rules(tmp_path, store)
    assert [str(p) for p in loaded.problems] == []
    assert {d.name for d in loaded.detections} == {"kandji-token-deleted", "other"}


def test_sigma_string_matches_ignore_case_and_treat_percent_literally(
    store: ChdbLogStore, tmp_path: Path
) -> None:
    path = tmp_path / "kandji-token-deleted.yml"
    path.write_text(GOOD.replace("action: delete", "action: delete\n    target_id: 50%_off"))
    detection = load_rule(path, store)

    def event(target_id: str) -> FixtureEvent:
        data = {
            "id": f"01J{target_id.encode().hex()[:20].upper():0<20}",
            "action": "DELETE",
            "occurred_at": "2025-03-06T09:01:00Z",
            "actor_id": "u1",
            "actor_type": "user",
            "target_id": target_id,
            "target_type": "API_TOKEN",
            "target_component": "",
            "new_state": {},
            "metadata": {},
        }
        return FixtureEvent(timedelta(minutes=5), data, json.dumps(data))

    found = run_case(store, detection, FixtureCase("c", True, [event("50%_off")]))
    assert len(found.rows) == 1  # DELETE on API_TOKEN: Sigma ignores case
    other = run_case(store, detection, FixtureCase("c", True, [event("50xxoff")]))
    assert other.rows == []  # % and _ in a Sigma value are the characters, not wildcards


@pytest.mark.parametrize(
    ("change", "sentence"),
    [
        (
            ("product: kandji", "product: windows"),
            "Sigma rule bad: logsource {product: windows, service: audit} is not supported; "
            "kandji-bridge runs rules for logsource {product: kandji, service: audit}.",
        ),
        (
            ("target_type|contains", "TargetUserName|contains"),
            'Sigma rule bad: the field "TargetUserName" is not a Kandji audit field; use '
            "Kandji's fields (id, action, occurred_at, actor_id, actor_type, target_id, "
            "target_type, target_component, new_state, metadata, new_state.KEY, metadata.KEY) "
            "or a kandji_logs column (actor.KEY, tags.KEY for a key of those maps).",
        ),
        (
            ("target_type|contains", "target_type|base64"),
            'Sigma rule bad: the modifier "base64" on "target_type" is not supported; use '
            "contains, startswith, endswith, all, exists, cidr, gt, gte, lt, lte, re "
            "(with i, m, s) and cased.",
        ),
        (
            (
                "  selection:\n    target_type|contains: token\n    action: delete\n",
                "  selection:\n    - token\n",
            ),
            "Sigma rule bad: keyword searches (values without a field) are not supported; "
            "name the field each value is matched on.",
        ),
    ],
)
def test_a_sigma_rule_we_cannot_run_gets_one_sentence(
    store: ChdbLogStore, tmp_path: Path, change: tuple[str, str], sentence: str
) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(InvalidRules) as raised:
        load_rule(path, store)
    assert [str(p) for p in raised.value.problems] == [sentence]


# In a fresh interpreter: what serve imports, then the pack's rules, then one Sigma rule.
LOADS_PYSIGMA = """
import sys
from pathlib import Path

import kandji_bridge.service.serve
import kandji_bridge.web.app
from kandji_bridge.detections import KANDJI_PACK
from kandji_bridge.detections.rules import load_rule, load_rules
from kandji_bridge.logs.store import ChdbLogStore

def sigma_loaded():
    return any(name == "sigma" or name.startswith("sigma.") for name in sys.modules)

store = ChdbLogStore(sys.argv[1])
store.ensure_schema()
print(sigma_loaded())
pack = load_rules(KANDJI_PACK, store)
print(len(pack.detections), len(pack.problems), sigma_loaded())
print(load_rule(Path(sys.argv[2]), store).name, sigma_loaded())
"""


def test_pysigma_is_loaded_by_a_sigma_rule_only(tmp_path: Path) -> None:
    """serve and the pack's rules run without pySigma (about 12 MB a process keeps once loaded);
    a Sigma rule still loads, and loads it."""
    done = subprocess.run(
        [sys.executable, "-c", LOADS_PYSIGMA, str(tmp_path / "logs"), str(TWINS[0])],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    at_start, after_pack, after_sigma = done.stdout.splitlines()
    assert at_start == "False"
    assert after_pack.split()[1:] == ["0", "False"] and int(after_pack.split()[0]) >= 16
    assert after_sigma == f"{TWINS[0].stem} True"
