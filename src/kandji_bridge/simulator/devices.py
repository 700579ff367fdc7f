"""GET /api/v1/devices: the documented filters, `ordering`, limit/offset, the entries' shape."""

from collections.abc import Callable
from typing import Any

from kandji_bridge.simulator import timefmt
from kandji_bridge.simulator.tenant import Device, Tenant, User

MAX_LIMIT = 300
ORDERING_FIELDS = (
    "asset_tag",
    "blueprint_id",
    "device_id",
    "device_name",
    "last_check_in",
    "model",
    "platform",
    "os_version",
    "serial_number",
    "user",
)


class DeviceQueryError(Exception):
    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.body = body


def user_json(user: User | None) -> dict[str, Any] | str:
    """Kandji sends "" for a device without a user, else the user object."""
    if user is None:
        return ""
    return {
        "email": user.email,
        "name": user.name,
        "id": user.id,
        "is_archived": user.is_archived,
        "active": user.active,
    }


def device_json(device: Device, last_check_in_us: int) -> dict[str, Any]:
    """A list entry, in the field order of Kandji's example."""
    return {
        "device_id": device.device_id,
        "device_name": device.device_name,
        "model": device.model.name,
        "serial_number": device.serial_number,
        "platform": device.platform,
        "os_version": device.os_version,
        "supplemental_build_version": device.supplemental_build_version,
        "supplemental_os_version_extra": device.supplemental_os_version_extra,
        "last_check_in": timefmt.iso_z(last_check_in_us),
        "user": user_json(device.user),
        "asset_tag": device.asset_tag,
        "blueprint_id": device.blueprint.id,
        "mdm_enabled": device.mdm_enabled,
        "agent_installed": device.agent_installed,
        "is_missing": device.is_missing,
        "is_removed": device.is_removed,
        "agent_version": device.agent_version,
        "first_enrollment": timefmt.iso_space(device.first_enrollment_us),
        "last_enrollment": timefmt.iso_space(device.last_enrollment_us),
        "blueprint_name": device.blueprint.name,
        "lost_mode_status": "ENABLED" if device.lost_mode else "",
        "tags": [tag.name for tag in device.tags],
    }


def _contains(get: Callable[[Device], str], value: str) -> Callable[[Device], bool]:
    needle = value.lower()
    return lambda d: needle in get(d).lower()


def _equals(get: Callable[[Device], str], value: str) -> Callable[[Device], bool]:
    return lambda d: get(d) == value


def _comma_list(value: str) -> set[str]:
    return {part.strip() for part in value.split(",") if part.strip()}


def _tagged(attribute: str, wanted: set[str]) -> Callable[[Device], bool]:
    """Case-sensitive, as the docs say."""
    return lambda d: any(getattr(tag, attribute) in wanted for tag in d.tags)


def _user_field(name: str) -> Callable[[Device], str]:
    return lambda d: getattr(d.user, name) if d.user is not None else ""


def _filevault(value: str) -> Callable[[Device], bool]:
    wanted = value.strip().lower() in ("true", "1", "yes")
    return lambda d: d.platform == "Mac" and d.filevault_enabled is wanted


# query parameter -> predicate builder; "contains" where Kandji's docs say so, else exact.
FILTERS: dict[str, Callable[[str], Callable[[Device], bool]]] = {
    "asset_tag": lambda v: _equals(lambda d: d.asset_tag, v),
    "blueprint_id": lambda v: _contains(lambda d: d.blueprint.id, v),
    "device_id": lambda v: _equals(lambda d: d.device_id, v),
    "device_name": lambda v: _equals(lambda d: d.device_name, v),
    "filevault_enabled": _filevault,
    "mac_address": lambda v: _equals(lambda d: d.mac_address, v.lower()),
    "model": lambda v: _contains(lambda d: d.model.name, v),
    "os_version": lambda v: _contains(lambda d: d.os_version, v),
    "platform": lambda v: _equals(lambda d: d.platform, v),
    "serial_number": lambda v: _contains(lambda d: d.serial_number, v),
    "tag_name": lambda v: _tagged("name", {v}),
    "tag_name_in": lambda v: _tagged("name", _comma_list(v)),
    "tag_id": lambda v: _tagged("id", {v}),
    "tag_id_in": lambda v: _tagged("id", _comma_list(v)),
    "user": lambda v: _contains(_user_field("name"), v),
    "user_email": lambda v: _contains(_user_field("email"), v),
    "user_email_exact": lambda v: _equals(lambda d: _user_field("email")(d).lower(), v.lower()),
    "user_id": lambda v: _equals(_user_field("id"), v),
    "user_name": lambda v: _contains(_user_field("name"), v),
}

SortKey = Callable[[Device], Any]


def _sort_keys(check_in: Callable[[Device], int]) -> dict[str, SortKey]:
    return {
        "asset_tag": lambda d: d.asset_tag,
        "blueprint_id": lambda d: d.blueprint.id,
        "device_id": lambda d: d.device_id,
        "device_name": lambda d: d.device_name,
        "last_check_in": check_in,
        "model": lambda d: d.model.name,
        "platform": lambda d: d.platform,
        "os_version": lambda d: tuple(int(p) for p in d.os_version.split(".")),
        "serial_number": lambda d: d.serial_number,
        "user": lambda d: d.user.name if d.user is not None else "",
    }


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise DeviceQueryError({name: ["A valid integer is required."]}) from None
    if value < 0:
        raise DeviceQueryError({name: ["Ensure this value is greater than or equal to 0."]})
    return value


def select(
    tenant: Tenant, params: dict[str, str], check_in: Callable[[Device], int]
) -> list[Device]:
    """The page of devices the query asks for. The default order is stable (enrollment order), and
    every `ordering` ends with device_id, so offset paging returns each device exactly once."""
    limit = min(_int_param(params, "limit", MAX_LIMIT), MAX_LIMIT) or MAX_LIMIT
    offset = _int_param(params, "offset", 0)
    ordering = [part.strip() for part in params.get("ordering", "").split(",") if part.strip()]
    keys = _sort_keys(check_in)
    unknown = [part for part in ordering if part.lstrip("-") not in keys]
    if unknown:
        raise DeviceQueryError({"ordering": [f'"{unknown[0]}" is not a valid ordering field.']})
    chosen = tenant.devices_in_id_order if ordering else tenant.devices
    for name, value in params.items():
        if name in FILTERS and value:
            keep = FILTERS[name](value)
            chosen = [d for d in chosen if keep(d)]
    if ordering:
        chosen = list(chosen)
        for part in reversed(ordering):  # stable sorts, last key first: a multi-key ordering
            chosen.sort(key=keys[part.lstrip("-")], reverse=part.startswith("-"))
    return chosen[offset : offset + limit]
