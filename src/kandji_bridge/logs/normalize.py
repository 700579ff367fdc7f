"""Transform: one Kandji audit event into a `kandji_logs` row, enrichment left to `enrich`.

A row is a plain dict keyed by column name (see `schema.COLUMNS`). The columns in
`OMITTED_DEFAULTS` (the src*/dst* details of an address and `enrichments`) are left out while they
hold their default: the enricher adds those it has a value for, and a column left out of a
JSONEachRow insert is stored as its type's default ('', 0, 0.0, []), the same value. Most events
carry no public address, so most rows are smaller to build, serialize and parse. `full_row` gives
all 46 columns in column order. Decisions, in column order:

- `id`: UUIDv5 of "<sourceID>/<Kandji event id>" in a fixed namespace. Same source and event, same
  id, on every run and every machine; two sources holding the same tenant get distinct ids.
- `receivedAt`: the context's ingest time (one per fetched page), UTC, whole seconds.
- `eventTime`: `occurred_at` converted to UTC, whole seconds (the column is a DateTime). A timestamp
  without an offset is taken as UTC, which is what Kandji documents.
- `eventName`: "<target_type>.<action>" (e.g. "blueprint.update"); only one of them if the other is
  empty.
- `srcIP` / `dstIP`: the first IP-valued key found in `metadata`, then in `new_state` (keys in
  `SRC_IP_KEYS` order; `x_forwarded_for` gives its first element, a port is dropped, an IPv4-mapped
  IPv6 address becomes IPv4). Not a valid address: "". The `src*`/`dst*` details come from `enrich`.
- `actor`: id and type, plus email / name / username when `metadata` (flat, or an `actor` object
  in it) carries them; from `new_state` only `actor_*` keys count (new_state describes the target).
- `tags`: `target_component`, `target_name` (new_state name, label or device_name) and
  `target_kind` (new_state type) when present and non-empty, plus every non-empty scalar in
  `metadata` as "metadata.<key>" (e.g. "metadata.user_agent"), except the keys that already fill
  srcIP, dstIP or actor.
- `resources`: the target id, then ids referenced in new_state: objects with an `id` (alone or in
  lists, e.g. library_items_added/removed/scoped), `*_id` strings and `*_ids` lists. Unique, in
  first-seen order.
- `readOnly`: true when the action only reads or views (`READ_VERBS`, as the whole action or one
  of its words, e.g. "view_recovery_key"), or when it touches a secret (FileVault key, recovery key,
  ...) with a verb that is not a write. Create / update / delete and anything unknown: false.
- `newState` / `metadata`: compact JSON of those objects, keys in Kandji's order; null or missing
  becomes "{}" so every value is a JSON object text (`rawLog` keeps the original null).
- Other strings: null becomes "", numbers become their decimal text.

Keys Kandji adds later are ignored. An event that cannot be stored faithfully (not an object, an
element of the page that could not be read, no usable id, no parseable occurred_at, a lone
surrogate, more than `MAX_EVENT_CHARS` of JSON) raises NormalizeError so the caller quarantines it.
Fields of another type than Kandji documents are stored as text as above (the row's rawLog keeps
what was sent), so they never cost an event.
"""

import hashlib
import ipaddress
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

import orjson

from kandji_bridge.errors import BridgeError
from kandji_bridge.kandji.payloads import Unreadable
from kandji_bridge.logs.schema import COLUMN_NAMES, COLUMNS

Row = dict[str, Any]

_TYPE_DEFAULTS: dict[str, Any] = {"String": "", "UInt32": 0, "Float64": 0.0}
# The columns a row leaves out while they hold their default (see above).
OMITTED_DEFAULTS: dict[str, Any] = {
    **{
        name: _TYPE_DEFAULTS[type_]
        for name, type_ in COLUMNS
        if name.startswith(("src", "dst")) and name not in ("srcIP", "dstIP")
    },
    "enrichments": (),
}

SOURCE_TYPE = "kandji"
SERVICE_NAME = "kandji"

# Fixed forever: changing it would change every stored row id.
ID_NAMESPACE = uuid.UUID("5b0c3c1e-6a44-5d1e-9a8e-4b1d1c0a4b1a")

SRC_IP_KEYS: tuple[str, ...] = (
    "ip",
    "ip_address",
    "client_ip",
    "source_ip",
    "src_ip",
    "remote_addr",
    "remote_ip",
    "x_forwarded_for",
    "x-forwarded-for",
    "forwarded_for",
    "ipAddress",
    "clientIp",
    "clientIP",
    "sourceIp",
    "sourceIPAddress",
    "remoteAddr",
)
DST_IP_KEYS: tuple[str, ...] = ("dst_ip", "destination_ip", "dest_ip", "server_ip")

READ_VERBS = frozenset(
    {
        "view", "viewed", "read", "get", "list", "listed", "export", "exported", "access",
        "accessed", "show", "search", "query", "retrieve", "retrieved", "reveal", "revealed",
        "fetch", "download", "downloaded",
    }
)  # fmt: skip
WRITE_VERBS = frozenset(
    {
        "create", "created", "update", "updated", "delete", "deleted", "add", "added", "remove",
        "removed", "set", "change", "changed", "rotate", "rotated", "enable", "enabled",
        "disable", "disabled", "assign", "assigned", "unassign", "revoke", "revoked", "reset",
        "wipe", "lock", "erase", "restart", "shutdown", "install", "uninstall",
    }
)  # fmt: skip
SECRET_MARKERS = (
    "filevault",
    "recovery_key",
    "recovery_password",
    "recovery_lock",
    "bypass_code",
    "unlock_pin",
    "secret",
    "password",
)

_SRC_RANK = {key: rank for rank, key in enumerate(SRC_IP_KEYS)}
_DST_RANK = {key: rank for rank, key in enumerate(DST_IP_KEYS)}
_ACTOR_METADATA_KEYS = (
    ("email", ("actor_email", "user_email", "email")),
    ("name", ("actor_name", "user_name")),
    ("username", ("actor_username", "username")),
)
_ACTOR_NEW_STATE_KEYS = (
    ("email", ("actor_email",)),
    ("name", ("actor_name",)),
    ("username", ("actor_username",)),
)
# Metadata keys already in a column of their own (srcIP, dstIP, actor) are not repeated as tags.
_NOT_TAGS = frozenset(
    [*SRC_IP_KEYS, *DST_IP_KEYS, "actor"]
    + [key for _, keys in _ACTOR_METADATA_KEYS for key in keys]
)
_MAX_EVENT_ID = 128
# Kandji's events are a few kB; one far larger would be copied into every query that reads
# rawLog or newState (chDB took 1.5 GB of memory to insert one 100 MB event), so it is kept in
# quarantine instead, whole.
MAX_EVENT_CHARS = 1_048_576
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


class NormalizeError(BridgeError):
    """The event cannot become a row; str(error) is the reason stored with it in quarantine."""

    def __init__(self, reason: str, event_id: str = "") -> None:
        super().__init__(reason)
        self.event_id = event_id


class AuditEventLike(Protocol):
    """What the Kandji client hands over: the parsed event and its JSON text exactly as sent."""

    data: Any
    raw: str


@dataclass(frozen=True)
class NormalizeContext:
    """Per-source constants, and the ingest time of the page being transformed."""

    workspace_id: str
    source_id: str
    retention_days: int
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    _id_hash: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.retention_days < 0 or self.retention_days > 0xFFFFFFFF:
            raise ValueError("retention_days must fit a UInt32")
        received = self.received_at.astimezone(UTC).replace(microsecond=0)
        object.__setattr__(self, "received_at", received)
        prefix = ID_NAMESPACE.bytes + self.source_id.encode() + b"/"
        object.__setattr__(self, "_id_hash", hashlib.sha1(prefix, usedforsecurity=False))

    def row_id(self, event_id: str) -> str:
        """UUIDv5(ID_NAMESPACE, "<sourceID>/<event id>"), computed from a pre-hashed prefix."""
        digest = self._id_hash.copy()
        digest.update(event_id.encode())
        h = digest.hexdigest()
        # The version nibble becomes 5 and the variant bits 10, as uuid.uuid5 sets them.
        variant = _VARIANT[h[16]]
        return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


def full_row(row: Row) -> Row:
    """The row with all 46 columns, in column order: the omitted ones at their default."""
    full = {name: row.get(name, OMITTED_DEFAULTS.get(name)) for name in COLUMN_NAMES}
    full["enrichments"] = list(full["enrichments"])
    return full


def normalize_event(event: AuditEventLike, ctx: NormalizeContext) -> Row:
    return normalize(event.data, event.raw, ctx)


def normalize(data: Any, raw: str | bytes, ctx: NormalizeContext) -> Row:
    """The row for one event. Raises NormalizeError when the event cannot be stored faithfully."""
    if not isinstance(data, dict):
        if isinstance(data, Unreadable):
            raise NormalizeError(f"the event {data.reason}")
        raise NormalizeError(f"the event is a JSON {_json_kind(data)}, not an object")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if len(raw) > MAX_EVENT_CHARS:
        raise NormalizeError(
            f"the event is {len(raw):,} characters of JSON, more than the {MAX_EVENT_CHARS:,} "
            "an event stored in kandji_logs may have",
            data["id"] if _valid_event_id(data.get("id")) else "",
        )
    event_id = data.get("id")
    if not _valid_event_id(event_id):
        raise NormalizeError(f"the event id {_preview(event_id)} is missing or not a valid id")
    if "\\u" in raw and _has_lone_surrogate(data, raw):
        raise NormalizeError(
            "the event holds a lone UTF-16 surrogate escape (\\ud800-\\udfff), which is not "
            "valid Unicode text and cannot be stored",
            event_id,
        )
    occurred_at = data.get("occurred_at")
    event_time = _parse_time(occurred_at, event_id)

    action = _text(data.get("action"))
    target_type = _text(data.get("target_type"))
    target_id = _text(data.get("target_id"))
    target_component = _text(data.get("target_component"))
    actor_id = _text(data.get("actor_id"))
    actor_type = _text(data.get("actor_type"))
    new_state = data.get("new_state")
    metadata = data.get("metadata")
    state = new_state if isinstance(new_state, dict) else None
    meta = metadata if isinstance(metadata, dict) else None

    src_ip = (_find_ip(meta, _SRC_RANK) if meta else "") or (
        _find_ip(state, _SRC_RANK) if state else ""
    )
    dst_ip = _find_ip(meta, _DST_RANK) if meta else ""

    actor = {"id": actor_id, "type": actor_type}
    if meta:
        _actor_details(actor, meta)
    if state:
        _pick(actor, state, _ACTOR_NEW_STATE_KEYS)

    event_name = f"{target_type}.{action}" if target_type and action else target_type or action

    return {
        "workspaceID": ctx.workspace_id,
        "sourceID": ctx.source_id,
        "sourceType": SOURCE_TYPE,
        "sourceTTL": ctx.retention_days,
        "receivedAt": ctx.received_at,
        "id": ctx.row_id(event_id),
        "eventTime": event_time,
        "eventName": event_name,
        "eventID": event_id,
        "srcIP": src_ip,
        "dstIP": dst_ip,
        "actor": actor,
        "tags": _tags(target_component, state, meta),
        "resources": _resources(target_id, state) if state else ([target_id] if target_id else []),
        "serviceName": SERVICE_NAME,
        "readOnly": is_read_only(action, target_type, target_component),
        "rawLog": raw,
        "kandjiEventId": event_id,
        "action": action,
        "actorId": actor_id,
        "actorType": actor_type,
        "occurredAt": occurred_at,
        "targetType": target_type,
        "targetId": target_id,
        "targetComponent": target_component,
        "newState": _compact_json(new_state),
        "metadata": _compact_json(metadata),
    }


def _valid_event_id(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= _MAX_EVENT_ID
        and value.isprintable()
        and " " not in value
    )


def _has_lone_surrogate(data: dict, raw: str) -> bool:
    """Whether the parsed event holds half a surrogate pair, which no store can encode.

    Only a `\\udXXX` escape in the raw text can put one there (the body is decoded from UTF-8),
    so the full check runs on the rare event that has such an escape.
    """
    if not _SURROGATE_ESCAPE.search(raw):
        return False
    try:
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False


def _parse_time(value: Any, event_id: str) -> datetime:
    if not isinstance(value, str) or not value:
        raise NormalizeError(f"occurred_at {_preview(value)} is missing", event_id)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise NormalizeError(
            f"occurred_at {_preview(value)} is not an ISO 8601 timestamp", event_id
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    elif parsed.utcoffset():
        try:
            parsed = parsed.astimezone(UTC)
        except OverflowError:  # year 1 or 9999, shifted past what a datetime holds
            raise _out_of_range(value, event_id) from None
    if parsed.microsecond:  # subtracting is 4x cheaper than replace(microsecond=0) per event
        parsed -= timedelta(microseconds=parsed.microsecond)
    if not 1970 <= parsed.year < 2106:
        raise _out_of_range(value, event_id)
    return parsed


def _out_of_range(value: str, event_id: str) -> NormalizeError:
    return NormalizeError(
        f"occurred_at {_preview(value)} is outside what a DateTime holds (1970 to 2105)", event_id
    )


def _text(value: Any) -> str:
    if value.__class__ is str:
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return _compact_json(value)


def _compact_json(value: Any) -> str:
    if value is None:
        return "{}"
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer beyond 64 bits: the standard library still writes it
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _find_ip(obj: dict, ranks: dict[str, int]) -> str:
    """The best-ranked key of obj holding a valid IP address, as canonical text, or ""."""
    found = [key for key in obj if key in ranks]
    if len(found) > 1:
        found.sort(key=ranks.__getitem__)
    for key in found:
        ip = _ip_from_value(obj[key])
        if ip:
            return ip
    return ""


def _ip_from_value(value: Any) -> str:
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, str):
        return ""
    return canonical_ip(value.split(",", 1)[0].strip())


@lru_cache(maxsize=65536)
def canonical_ip(text: str) -> str:
    """The address in text as ipaddress writes it ("" if none): port, brackets and zone dropped."""
    if not text or len(text) > 64:
        return ""
    candidate = text
    if candidate.startswith("["):  # [v6]:port
        candidate = candidate[1 : candidate.find("]")] if "]" in candidate else ""
    elif candidate.count(":") == 1:  # v4:port
        candidate = candidate.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(candidate.split("%", 1)[0])
    except ValueError:
        return ""
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def _actor_details(actor: dict[str, str], meta: dict) -> None:
    nested = meta.get("actor")
    if isinstance(nested, dict):
        for key in ("email", "name", "username"):
            value = nested.get(key)
            if isinstance(value, str) and value:
                actor[key] = value
    _pick(actor, meta, _ACTOR_METADATA_KEYS)


def _pick(actor: dict[str, str], obj: dict, keys: tuple[tuple[str, tuple[str, ...]], ...]) -> None:
    for field_name, candidates in keys:
        if field_name in actor:
            continue
        for key in candidates:
            value = obj.get(key)
            if isinstance(value, str) and value:
                actor[field_name] = value
                break


def _tags(target_component: str, state: dict | None, meta: dict | None) -> dict[str, str]:
    tags: dict[str, str] = {}
    if target_component:
        tags["target_component"] = target_component
    if state:
        name = state.get("name") or state.get("label") or state.get("device_name")
        if isinstance(name, str) and name:
            tags["target_name"] = name
        kind = state.get("type")
        if isinstance(kind, str) and kind:
            tags["target_kind"] = kind
    if meta:
        for key, value in meta.items():
            if (
                value is not None
                and value != ""
                and key not in _NOT_TAGS
                and isinstance(value, str | int | float)
            ):
                tags[f"metadata.{key}"] = _text(value)
    return tags


def _resources(target_id: str, state: dict) -> list[str]:
    ids: dict[str, None] = {target_id: None} if target_id else {}
    for key, value in state.items():
        kind = type(value)
        if kind is list:
            if key.endswith("_ids"):
                for item in value:
                    _add_id(ids, item)
            else:
                for item in value:
                    if type(item) is dict:
                        _add_id(ids, item.get("id"))
        elif kind is dict:
            _add_id(ids, value.get("id"))
        elif (kind is str or kind is int) and (key == "id" or key.endswith("_id")):
            _add_id(ids, value)
    return list(ids)


def _add_id(ids: dict[str, None], value: Any) -> None:
    if isinstance(value, str):
        if value:
            ids[value] = None
    elif isinstance(value, int) and not isinstance(value, bool):
        ids[str(value)] = None


@lru_cache(maxsize=4096)
def is_read_only(action: str, target_type: str = "", target_component: str = "") -> bool:
    """True for events that only read or view data (see the module docstring for the rule)."""
    verb = action.lower()
    words = set(verb.replace("-", "_").replace(".", "_").replace(" ", "_").split("_"))
    if verb in READ_VERBS or (words & READ_VERBS and not words & WRITE_VERBS):
        return True
    subject = f"{target_type} {target_component} {verb}".lower()
    touches_secret = any(marker in subject for marker in SECRET_MARKERS)
    return touches_secret and bool(verb) and verb not in WRITE_VERBS and not words & WRITE_VERBS


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, int | float) else type(value).__name__


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
