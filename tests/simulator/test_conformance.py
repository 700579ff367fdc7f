"""Every field of Kandji's example responses (the OpenAPI spec's and the Postman collection's,
copied in kandji_examples.json) appears in the simulator's answers, nested keys too, with a JSON
type the examples use for it."""

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kandji_bridge.simulator.config import SimulatorConfig
from kandji_bridge.simulator.server import RunningSimulator, running_simulator

from .helpers import all_devices, all_events, client

EXAMPLES = json.loads((Path(__file__).parent / "kandji_examples.json").read_text())


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


EMPTY = "empty object"  # a section some example leaves empty ({}), like lost_mode off lost mode


def shape(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, JSON type) of a value and everything nested in it; list items share `path[]`."""
    yield path, json_type(value)
    if value == {}:
        yield path, EMPTY
    if isinstance(value, dict):
        for key, item in value.items():
            yield from shape(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for item in value:
            yield from shape(item, f"{path}[]")


def types_by_path(values: list[Any]) -> dict[str, set[str]]:
    """The types the examples use at each path (a path null in one example and an object in
    another, like `user`, accepts both)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for value in values:
        for path, kind in shape(value):
            seen[path].add(kind)
    return seen


def assert_conforms(actual: Any, example: Any, allowed: dict[str, set[str]]) -> None:
    """Every path of `example` is in `actual` with a type the examples use there (an empty
    object only where an example has one). Below a value of another type than the example's
    (a user "" where the example has an object), an empty list or an empty object, there is
    nothing to compare; other answers cover those paths."""
    actual_shape: dict[str, set[str]] = defaultdict(set)
    counts = Counter(shape(actual))
    for path, kind in counts:
        actual_shape[path].add(kind)
    not_comparable: list[str] = []
    for path, kind in shape(example):
        if any(path.startswith((p + ".", p + "[]")) for p in not_comparable):
            continue
        assert path in actual_shape, f"{path!r} (a {kind} in Kandji's example) is missing"
        parent = path.rpartition(".")[0]
        if parent.endswith("[]") and not path.endswith(
            "[]"
        ):  # a key of list items: every item has it
            items = counts[parent, "object"]
            assert sum(n for (p, _), n in counts.items() if p == path) == items, f"{path!r}"
        wrong = actual_shape[path] - allowed[path]
        assert not wrong, f"{path!r} is {wrong}; Kandji's examples use {allowed[path]}"
        if (
            kind not in actual_shape[path]
            or (kind == "array" and f"{path}[]" not in actual_shape)
            or EMPTY in actual_shape[path]
        ):
            not_comparable.append(path)


@pytest.fixture(scope="module")
def big_tenant() -> Iterator[RunningSimulator]:
    """Enough devices for every platform and a device in lost mode."""
    config = SimulatorConfig(devices=400, events=3000, seed=3, rate_per_second=0)
    with running_simulator(config) as simulator:
        yield simulator


def test_audit_events_have_every_field_of_the_examples(big_tenant: RunningSimulator) -> None:
    bodies = [example["body"] for example in EXAMPLES["audit_events"]]
    allowed = types_by_path(bodies)
    with client(big_tenant) as http:
        response = http.get("/api/v1/audit/events", params={"limit": "2"})
        events = all_events(http, {"limit": "500"})
    envelope = {key: value for key, value in bodies[0].items() if key != "results"}
    assert_conforms({k: v for k, v in response.json().items() if k != "results"}, envelope, allowed)
    assert list(response.json()) == ["next", "previous", "results"]
    # Each example event's kind (target type, component, action) is generated in its shape.
    event_allowed = types_by_path([e for body in bodies for e in body["results"]])
    by_kind: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for event in events:
        by_kind[event["target_type"], event["target_component"], event["action"]].append(event)
    for body in bodies:
        for example in body["results"]:
            kind = (example["target_type"], example["target_component"], example["action"])
            assert by_kind[kind], f"the simulator never generates a {kind} event"
            for event in by_kind[kind][:20]:
                assert_conforms(event, example, event_allowed)
                assert list(event)[:10] == list(bodies[1]["results"][0])  # Kandji's field order


def test_devices_have_every_field_of_the_examples(big_tenant: RunningSimulator) -> None:
    bodies = [
        device
        for example in EXAMPLES["devices"]
        for device in (example["body"] if isinstance(example["body"], list) else [example["body"]])
    ]
    allowed = types_by_path(bodies)
    with client(big_tenant) as http:
        devices = all_devices(http)
    for device in devices:
        for example in bodies:
            assert_conforms(device, example, allowed)
        assert list(device) == list(bodies[1])  # Kandji's field order
    user_types = {json_type(device["user"]) for device in devices}
    assert user_types == {"string", "object"}, "both a device without a user and one with"
    assert all(device["user"] == "" for device in devices if isinstance(device["user"], str))


def _example_for(details: dict[str, Any]) -> str:
    general = details["general"]
    if details.get("lost_mode"):
        return "lost"
    return general["platform"] if general["platform"] != "iPhone" else "iPad"


def test_device_details_have_every_section_and_field_of_the_examples(
    big_tenant: RunningSimulator,
) -> None:
    by_case: dict[str, list[dict]] = defaultdict(list)
    for example in EXAMPLES["details"]:
        by_case[_example_for(example["body"])].append(example["body"])
    assert set(by_case) == {"Mac", "iPad", "AppleTV", "lost"}
    allowed = types_by_path([example["body"] for example in EXAMPLES["details"]])
    checked: set[str] = set()
    with client(big_tenant) as http:
        for device in big_tenant.devices:
            details = http.get(f"/api/v1/devices/{device.device_id}/details").json()
            case = _example_for(details)
            for example in by_case[case]:
                assert_conforms(details, example, allowed)
                assert set(details) == set(example), "the same sections as Kandji's example"
            checked.add(case)
    assert checked == set(by_case), "every platform (and lost mode) was compared"
