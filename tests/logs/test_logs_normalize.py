"""normalize(): Kandji's example events into the 46 columns, and every rule the module documents."""

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from kandji_bridge.logs.enrich import Enricher
from kandji_bridge.logs.normalize import (
    ID_NAMESPACE,
    OMITTED_DEFAULTS,
    NormalizeContext,
    NormalizeError,
    full_row,
    is_read_only,
    normalize,
    normalize_event,
)
from kandji_bridge.logs.schema import COLUMN_NAMES
from kandji_bridge.logs.transform import transform

from .conftest import RECEIVED_AT, RETENTION_DAYS, SOURCE_ID, WORKSPACE_ID, Event

EMPTY_GEO = {
    "srcASCountryCode": "",
    "srcASNumber": 0,
    "srcASOrganization": "",
    "srcCity": "",
    "srcConnectionType": "",
    "srcISP": "",
    "srcLatitude": 0.0,
    "srcLongitude": 0.0,
    "srcUserType": "",
    "dstIP": "",
    "dstASCountryCode": "",
    "dstASNumber": 0,
    "dstASOrganization": "",
    "dstCity": "",
    "dstConnectionType": "",
    "dstISP": "",
    "dstLatitude": 0.0,
    "dstLongitude": 0.0,
    "dstUserType": "",
}


def base_event(**fields: Any) -> dict[str, Any]:
    event = {
        "id": "01JTEST0000000000000000001",
        "action": "update",
        "occurred_at": "2025-03-04T16:29:55.253454Z",
        "actor_id": "cf40d6e7-20cb-4da9-84a1-9ad0b7003ca5",
        "actor_type": "user",
        "target_id": "449ec92a-186a-44f2-9421-d5ac6e465eb5",
        "target_type": "blueprint",
        "target_component": "",
        "new_state": {},
        "metadata": {},
    }
    event.update(fields)
    return event


def run(event: dict[str, Any], ctx: NormalizeContext) -> dict[str, Any]:
    return normalize(event, json.dumps(event), ctx)


# --- Kandji's examples, every column written out ---------------------------------------------


def test_first_example_event_every_column(postman_events: list[Event], ctx) -> None:
    event = postman_events[0]
    normalized = normalize_event(event, ctx)
    # No public address, no rule: the IP details and enrichments are left out, at their default.
    assert list(normalized) == [name for name in COLUMN_NAMES if name not in OMITTED_DEFAULTS]
    row = full_row(normalized)
    assert list(row) == list(COLUMN_NAMES)
    assert row == {
        "workspaceID": WORKSPACE_ID,
        "sourceID": SOURCE_ID,
        "sourceType": "kandji",
        "sourceTTL": RETENTION_DAYS,
        "receivedAt": datetime(2025, 3, 6, 9, 0, 0, tzinfo=UTC),
        "id": "ca2cba63-c962-5055-af07-60bbdfa56784",
        "eventTime": datetime(2025, 3, 4, 16, 29, 55, tzinfo=UTC),
        "eventName": "blueprint.update",
        "eventID": "01JNGZW47KZKPXE1JWCFE4PHDW",
        "srcIP": "",
        **EMPTY_GEO,
        "actor": {"id": "cf40d6e7-20cb-4da9-84a1-9ad0b7003ca5", "type": "user"},
        "tags": {"target_component": "library_items", "target_name": "demo"},
        "resources": [
            "449ec92a-186a-44f2-9421-d5ac6e465eb5",  # the blueprint (target)
            "c7a5871a-1683-432f-87d4-30bbd404eb85",  # GitHub, added (and scoped)
            "6c3c34cf-36c4-4812-bd3f-712d66458c80",  # Apple Configurator, added (and scoped)
            "1af36ec2-111d-4ec4-bc3b-170facf1408b",  # Apple Developer, scoped
        ],
        "serviceName": "kandji",
        "enrichments": [],
        "readOnly": False,
        "rawLog": event.raw,
        "kandjiEventId": "01JNGZW47KZKPXE1JWCFE4PHDW",
        "action": "update",
        "actorId": "cf40d6e7-20cb-4da9-84a1-9ad0b7003ca5",
        "actorType": "user",
        "occurredAt": "2025-03-04T16:29:55.253454Z",
        "targetType": "blueprint",
        "targetId": "449ec92a-186a-44f2-9421-d5ac6e465eb5",
        "targetComponent": "library_items",
        "newState": (
            '{"library_items_added":['
            '{"id":"c7a5871a-1683-432f-87d4-30bbd404eb85","name":"GitHub"},'
            '{"id":"6c3c34cf-36c4-4812-bd3f-712d66458c80","name":"Apple Configurator"}],'
            '"library_items_removed":[],'
            '"library_items_scoped":['
            '{"id":"6c3c34cf-36c4-4812-bd3f-712d66458c80","name":"Apple Configurator"},'
            '{"id":"c7a5871a-1683-432f-87d4-30bbd404eb85","name":"GitHub"},'
            '{"id":"1af36ec2-111d-4ec4-bc3b-170facf1408b","name":"Apple Developer"}],'
            '"name":"demo"}'
        ),
        "metadata": "{}",
    }


def test_second_example_event_every_column(postman_events: list[Event], ctx) -> None:
    event = postman_events[1]
    row = full_row(normalize_event(event, ctx))
    assert row == {
        "workspaceID": WORKSPACE_ID,
        "sourceID": SOURCE_ID,
        "sourceType": "kandji",
        "sourceTTL": RETENTION_DAYS,
        "receivedAt": datetime(2025, 3, 6, 9, 0, 0, tzinfo=UTC),
        "id": "b1fd9666-d931-5e5a-b7d7-281153cdfe51",
        "eventTime": datetime(2025, 3, 4, 16, 30, 14, tzinfo=UTC),
        "eventName": "blueprint.create",
        "eventID": "01JNGZWQ7WAN45PVTJ3686TXHT",
        "srcIP": "",
        **EMPTY_GEO,
        "actor": {"id": "cf40d6e7-20cb-4da9-84a1-9ad0b7003ca5", "type": "user"},
        "tags": {"target_name": "audit_event_test", "target_kind": "map"},
        "resources": ["2b1fd766-3ba4-49ba-9f88-8219d468b34c"],
        "serviceName": "kandji",
        "enrichments": [],
        "readOnly": False,
        "rawLog": event.raw,
        "kandjiEventId": "01JNGZWQ7WAN45PVTJ3686TXHT",
        "action": "create",
        "actorId": "cf40d6e7-20cb-4da9-84a1-9ad0b7003ca5",
        "actorType": "user",
        "occurredAt": "2025-03-04T16:30:14.143192Z",
        "targetType": "blueprint",
        "targetId": "2b1fd766-3ba4-49ba-9f88-8219d468b34c",
        "targetComponent": "",
        "newState": '{"description":"","type":"map","name":"audit_event_test"}',
        "metadata": '{"source_id":null,"source":null}',
    }


def test_api_token_example_event(postman_events: list[Event], ctx) -> None:
    event = postman_events[9]
    row = normalize_event(event, ctx)
    assert row["id"] == "65229406-b04f-5d93-a053-c0819a4c1ab1"
    assert row["eventName"] == "api_token.update"
    assert row["eventTime"] == datetime(2025, 3, 5, 20, 50, 28, tzinfo=UTC)
    assert row["tags"] == {"target_name": "audit log events"}
    assert row["resources"] == ["a0726ca3-717d-41b9-a3af-c7d0bad8b784"]  # permissions carry no ids
    assert row["readOnly"] is False
    assert json.loads(row["newState"]) == event.data["new_state"]
    assert row["newState"].startswith('{"description":null,"permissions":[{"path":')


def test_every_example_event_keeps_its_raw_text_and_fields(
    postman_events: list[Event], ctx
) -> None:
    event_names = []
    for event in postman_events:
        row = normalize_event(event, ctx)
        assert list(full_row(row)) == list(COLUMN_NAMES)
        assert row["rawLog"] == event.raw  # byte for byte: tabs, newlines, key order
        assert row["rawLog"].encode() == event.raw.encode()
        assert row["eventID"] == row["kandjiEventId"] == event.data["id"]
        assert row["occurredAt"] == event.data["occurred_at"]
        assert json.loads(row["newState"]) == event.data["new_state"]
        assert json.loads(row["metadata"]) == event.data["metadata"]
        assert row["resources"][0] == event.data["target_id"]
        assert len(set(row["resources"])) == len(row["resources"])
        event_names.append(row["eventName"])
    assert event_names == [
        "blueprint.update",
        "blueprint.create",
        "blueprint.update",
        "blueprint.update",
        "library_item.update",
        "blueprint.update",
        "blueprint.update",
        "blueprint.update",
        "library_item.update",
        "api_token.update",
    ]


# --- id, times ---------------------------------------------------------------------------------


def test_id_is_a_stable_uuid5_of_source_and_event(ctx) -> None:
    event = base_event()
    first, again = run(event, ctx), run(dict(event), ctx)
    assert first["id"] == again["id"]
    assert first["id"] == str(uuid.uuid5(ID_NAMESPACE, f"{SOURCE_ID}/{event['id']}"))
    other_source = NormalizeContext(WORKSPACE_ID, "src-other", 30, received_at=RECEIVED_AT)
    assert run(event, other_source)["id"] != first["id"]
    assert run(base_event(id="01JTEST0000000000000000002"), ctx)["id"] != first["id"]
    for n in range(300):  # every version/variant digit the hash can produce
        event_id = f"01JMANY{n:019d}"
        expected = str(uuid.uuid5(ID_NAMESPACE, f"{SOURCE_ID}/{event_id}"))
        assert ctx.row_id(event_id) == expected


@pytest.mark.parametrize(
    ("occurred_at", "expected"),
    [
        ("2025-03-04T16:29:55.253454Z", datetime(2025, 3, 4, 16, 29, 55, tzinfo=UTC)),
        ("2025-03-04T16:29:55Z", datetime(2025, 3, 4, 16, 29, 55, tzinfo=UTC)),
        ("2025-03-04T16:29:55.253454+00:00", datetime(2025, 3, 4, 16, 29, 55, tzinfo=UTC)),
        ("2025-03-04T18:29:55.9+02:00", datetime(2025, 3, 4, 16, 29, 55, tzinfo=UTC)),
        ("2025-03-04T11:29:55-05:00", datetime(2025, 3, 4, 16, 29, 55, tzinfo=UTC)),
        ("2025-03-05T01:59:55+09:30", datetime(2025, 3, 4, 16, 29, 55, tzinfo=UTC)),
        ("2025-03-04T16:29:55", datetime(2025, 3, 4, 16, 29, 55, tzinfo=UTC)),  # no offset: UTC
        ("2025-01-01T00:30:00+01:00", datetime(2024, 12, 31, 23, 30, 0, tzinfo=UTC)),
    ],
)
def test_event_time_is_utc_whole_seconds(occurred_at: str, expected: datetime, ctx) -> None:
    row = run(base_event(occurred_at=occurred_at), ctx)
    assert row["eventTime"] == expected
    assert row["eventTime"].utcoffset() == timedelta(0)
    assert row["occurredAt"] == occurred_at  # the original string, untouched


def test_received_at_is_utc_whole_seconds() -> None:
    local = datetime(2025, 3, 6, 11, 0, 0, 987654, tzinfo=timezone(timedelta(hours=2)))
    ctx = NormalizeContext(WORKSPACE_ID, SOURCE_ID, 7, received_at=local)
    row = run(base_event(), ctx)
    assert row["receivedAt"] == datetime(2025, 3, 6, 9, 0, 0, tzinfo=UTC)
    assert row["sourceTTL"] == 7


# --- srcIP / dstIP -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "new_state", "expected"),
    [
        ({"ip_address": "81.2.69.142"}, {}, "81.2.69.142"),
        ({"ip": " 89.160.20.112 "}, {}, "89.160.20.112"),
        ({"client_ip": "2001:DB8::0:1"}, {}, "2001:db8::1"),  # canonical IPv6 text
        ({"source_ip": "::ffff:81.2.69.142"}, {}, "81.2.69.142"),  # IPv4-mapped
        ({"remote_addr": "81.2.69.142:51234"}, {}, "81.2.69.142"),  # port dropped
        ({"remote_addr": "[2001:db8::7]:443"}, {}, "2001:db8::7"),
        ({"x_forwarded_for": "216.160.83.56, 10.0.0.1, 10.0.0.2"}, {}, "216.160.83.56"),
        ({"x_forwarded_for": ["1.128.0.1", "10.0.0.1"]}, {}, "1.128.0.1"),
        ({"ipAddress": "10.0.4.17"}, {}, "10.0.4.17"),  # private: kept, only not looked up
        ({}, {"ip_address": "175.16.199.1"}, "175.16.199.1"),  # new_state when metadata has none
        ({"ip": "81.2.69.142"}, {"ip": "89.160.20.112"}, "81.2.69.142"),  # metadata first
        ({"ip": "not-an-ip", "client_ip": "81.2.69.142"}, {}, "81.2.69.142"),
        ({"client_ip": "1.1.1.1", "ip": "8.8.8.8"}, {}, "8.8.8.8"),  # key rank, not key order
        ({"ip": "999.1.1.1"}, {}, ""),
        ({"ip": "81.2.69"}, {}, ""),
        ({"ip": 1234}, {}, ""),
        ({"ip": None}, {}, ""),
        ({"ip": ""}, {}, ""),
        ({"user_agent": "curl/8"}, {"name": "demo"}, ""),
    ],
)
def test_src_ip_extraction_and_validation(metadata, new_state, expected, ctx) -> None:
    row = run(base_event(metadata=metadata, new_state=new_state), ctx)
    assert row["srcIP"] == expected


def test_dst_ip_only_when_the_event_has_one(ctx) -> None:
    assert run(base_event(metadata={"ip": "81.2.69.142"}), ctx)["dstIP"] == ""
    row = run(base_event(metadata={"ip": "81.2.69.142", "destination_ip": "89.160.20.112"}), ctx)
    assert (row["srcIP"], row["dstIP"]) == ("81.2.69.142", "89.160.20.112")


# --- actor, tags, resources ----------------------------------------------------------------------


def test_actor_details_from_metadata(ctx) -> None:
    metadata = {
        "ip_address": "81.2.69.142",
        "user_agent": "Mozilla/5.0",
        "actor_email": "ana@example.com",
        "actor_name": "Ana Admin",
    }
    new_state = {"email": "target@example.com", "name": "Target User"}  # the target, not the actor
    row = run(base_event(metadata=metadata, new_state=new_state, target_type="admin_user"), ctx)
    assert row["actor"] == {
        "id": "cf40d6e7-20cb-4da9-84a1-9ad0b7003ca5",
        "type": "user",
        "email": "ana@example.com",
        "name": "Ana Admin",
    }
    assert row["tags"] == {"target_name": "Target User", "metadata.user_agent": "Mozilla/5.0"}


def test_actor_details_from_a_nested_actor_and_new_state(ctx) -> None:
    metadata = {"actor": {"email": "ops@example.com", "username": "ops"}}
    new_state = {"actor_name": "Ops Bot", "actor_email": "ignored@example.com"}
    row = run(base_event(metadata=metadata, new_state=new_state, actor_type="api_token"), ctx)
    assert row["actor"] == {
        "id": "cf40d6e7-20cb-4da9-84a1-9ad0b7003ca5",
        "type": "api_token",
        "email": "ops@example.com",
        "username": "ops",
        "name": "Ops Bot",
    }


def test_system_actor_keeps_id_and_type(ctx) -> None:
    row = run(base_event(actor_id="", actor_type="system"), ctx)
    assert row["actor"] == {"id": "", "type": "system"}
    assert (row["actorId"], row["actorType"]) == ("", "system")


def test_tags(ctx) -> None:
    row = run(
        base_event(
            target_type="library_item",
            target_component="settings",
            new_state={"active": False, "label": None, "type": "vpp-app", "name": "Pocket Casts"},
            metadata={"framework": "cis", "level": 2, "strict": True, "none": None, "empty": ""},
        ),
        ctx,
    )
    assert row["tags"] == {
        "target_component": "settings",
        "target_name": "Pocket Casts",
        "target_kind": "vpp-app",
        "metadata.framework": "cis",
        "metadata.level": "2",
        "metadata.strict": "true",
    }
    device = run(base_event(target_type="device", new_state={"device_name": "Ana's Mac"}), ctx)
    assert device["tags"] == {"target_name": "Ana's Mac"}


def test_resources_collect_referenced_ids_once_in_order(ctx) -> None:
    new_state = {
        "device_name": "Ana's Mac",
        "serial_number": "C02XYZ",
        "blueprint_id": "bp-new",
        "previous_blueprint_id": "bp-old",
        "library_items_removed": [{"id": "li-1", "name": "Zoom"}, {"name": "no id"}],
        "device_ids": ["dev-2", "dev-3", 44],
        "owner": {"id": "user-9", "name": "Ana"},
        "parameters": [{"id": "bp-new"}],  # seen already: not repeated
        "count": 3,
        "tags": ["finance", "vip"],  # strings in a list that is not *_ids: not ids
    }
    row = run(base_event(target_id="dev-1", target_type="device", new_state=new_state), ctx)
    assert row["resources"] == [
        "dev-1",
        "bp-new",
        "bp-old",
        "li-1",
        "dev-2",
        "dev-3",
        "44",
        "user-9",
    ]


def test_resources_without_target_or_state(ctx) -> None:
    assert run(base_event(target_id="", new_state=None), ctx)["resources"] == []
    assert run(base_event(target_id=None, new_state={"blueprint_id": "bp"}), ctx)["resources"] == [
        "bp"
    ]


# --- readOnly ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "target_type", "target_component", "read_only"),
    [
        ("create", "blueprint", "", False),
        ("update", "blueprint", "library_items", False),
        ("delete", "device", "mdm", False),
        ("view", "device", "filevault_key", True),
        ("view", "device", "recovery_password", True),
        ("view", "device", "activation_lock_bypass_code", True),
        ("access", "device", "filevault_key", True),
        ("reveal", "device", "recovery_key", True),
        ("read", "report", "", True),
        ("list", "devices", "", True),
        ("export", "audit_log", "", True),
        ("Export", "audit_log", "", True),
        ("get", "device", "details", True),
        ("view_recovery_key", "device", "", True),
        ("filevault_key_viewed", "device", "", True),
        ("copy", "device", "filevault_key", True),  # an unknown verb on a secret: only a read
        ("update", "device", "filevault_key", False),  # rotating a secret writes
        ("rotate", "device", "recovery_password", False),
        ("update_and_view", "device", "", False),  # both a write and a read word: a write
        ("enroll", "device", "", False),  # unknown verb, nothing secret
        ("", "device", "filevault_key", False),
    ],
)
def test_read_only(action, target_type, target_component, read_only, ctx) -> None:
    assert is_read_only(action, target_type, target_component) is read_only
    event = base_event(action=action, target_type=target_type, target_component=target_component)
    assert run(event, ctx)["readOnly"] is read_only


# --- odd but valid input -----------------------------------------------------------------------


def test_unknown_fields_are_ignored(ctx) -> None:
    plain = base_event(metadata={"ip": "81.2.69.142"})
    extended = {
        **plain,
        "severity": "high",
        "tenant": {"id": "t-1", "region": "eu"},
        "occurred_at_ms": 1741105795253,
        "new_thing": [1, 2, 3],
    }
    plain_row, extended_row = run(plain, ctx), run(extended, ctx)
    assert extended_row.pop("rawLog") != plain_row.pop("rawLog")
    assert extended_row == plain_row


def test_null_objects_become_empty_json_objects(ctx) -> None:
    row = run(base_event(new_state=None, metadata=None, target_component=None), ctx)
    assert (row["newState"], row["metadata"], row["targetComponent"]) == ("{}", "{}", "")
    missing = {k: v for k, v in base_event().items() if k not in ("new_state", "metadata")}
    row = run(missing, ctx)
    assert (row["newState"], row["metadata"]) == ("{}", "{}")


def test_non_object_state_and_non_string_fields(ctx) -> None:
    row = run(base_event(new_state=["a", 1], target_id=12345, action=None), ctx)
    assert row["newState"] == '["a",1]'
    assert row["targetId"] == "12345"
    assert row["resources"] == ["12345"]
    assert (row["action"], row["eventName"]) == ("", "blueprint")


def test_integers_beyond_64_bits_still_serialize(ctx) -> None:
    row = run(base_event(new_state={"serial": 2**80, "name": "ü"}), ctx)
    assert row["newState"] == '{"serial":1208925819614629174706176,"name":"ü"}'


def test_raw_bytes_are_decoded(ctx) -> None:
    event = base_event()
    raw = json.dumps(event).encode()
    assert normalize(event, raw, ctx)["rawLog"] == raw.decode()


# --- what goes to quarantine -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason", "event_id"),
    [
        (["not", "an", "object"], "the event is a JSON array, not an object", ""),
        ("text", "the event is a JSON string, not an object", ""),
        (None, "the event is a JSON null, not an object", ""),
        (base_event(id=None), "the event id None is missing or not a valid id", ""),
        (base_event(id=""), "the event id '' is missing or not a valid id", ""),
        (base_event(id=42), "the event id 42 is missing or not a valid id", ""),
        (base_event(id="01J BAD"), "the event id '01J BAD' is missing or not a valid id", ""),
        (base_event(id="x" * 129), "is missing or not a valid id", ""),
        (
            base_event(occurred_at=None),
            "occurred_at None is missing",
            "01JTEST0000000000000000001",
        ),
        (
            base_event(occurred_at="yesterday"),
            "occurred_at 'yesterday' is not an ISO 8601 timestamp",
            "01JTEST0000000000000000001",
        ),
        (
            base_event(occurred_at="2025-13-04T16:29:55Z"),
            "is not an ISO 8601 timestamp",
            "01JTEST0000000000000000001",
        ),
        (
            base_event(occurred_at="1969-12-31T23:59:59Z"),
            "is outside what a DateTime holds (1970 to 2105)",
            "01JTEST0000000000000000001",
        ),
    ],
)
def test_events_that_cannot_be_normalized_raise(data, reason: str, event_id: str, ctx) -> None:
    with pytest.raises(NormalizeError) as caught:
        normalize(data, json.dumps(data), ctx)
    assert reason in str(caught.value)
    assert caught.value.event_id == event_id


def test_context_rejects_a_retention_a_uint32_cannot_hold() -> None:
    with pytest.raises(ValueError, match="UInt32"):
        NormalizeContext(WORKSPACE_ID, SOURCE_ID, -1)


# --- the transform stage -------------------------------------------------------------------------


def test_transform_quarantines_what_cannot_be_normalized(postman_events: list[Event], ctx) -> None:
    bad_time = base_event(id="01JBADTIME0000000000000001", occurred_at="soon")
    page = [
        *postman_events[:2],
        Event(bad_time, json.dumps(bad_time)),
        Event(["oops"], '["oops"]'),
    ]
    out = transform(page, ctx, Enricher([]))
    assert [row["kandjiEventId"] for row in out.rows] == [
        "01JNGZW47KZKPXE1JWCFE4PHDW",
        "01JNGZWQ7WAN45PVTJ3686TXHT",
    ]
    assert [(q.kandji_event_id, q.reason, q.raw_log) for q in out.quarantine] == [
        (
            "01JBADTIME0000000000000001",
            "occurred_at 'soon' is not an ISO 8601 timestamp",
            json.dumps(bad_time),
        ),
        ("", "the event is a JSON array, not an object", '["oops"]'),
    ]
    assert all(q.source_id == SOURCE_ID and q.received_at == RECEIVED_AT for q in out.quarantine)
