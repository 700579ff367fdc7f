"""The Kandji device fields a mapping can import: Asset Panda's 26, plus what device details add.

The 26 list fields carry the label, description and usage recommendation of Asset Panda's
"Kandji unique identifier fields" table word for word; their key is the snake_case of the label.
Detail fields come from GET /api/v1/devices/{device_id}/details, one call per device, so a
mapping that uses one costs a request for each new or changed device.
"""

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kandji_bridge.assets.convert import Kind
from kandji_bridge.errors import BridgeError


class Suitability(StrEnum):
    """How well a field identifies one device, per Asset Panda's usage recommendation."""

    RECOMMENDED = "recommended"
    ACCEPTABLE = "acceptable"
    CONDITIONAL = "conditional"  # only if the tenant keeps it standardized and unique
    UNSUITABLE = "not suitable"


class Endpoint(StrEnum):
    LIST = "list"  # GET /api/v1/devices
    DETAILS = "details"  # GET /api/v1/devices/{device_id}/details


@dataclass(frozen=True)
class KandjiField:
    key: str
    label: str
    description: str
    recommendation: str
    path: str  # where the value is in the endpoint's JSON (dotted; user.email)
    kind: Kind
    suitability: Suitability
    endpoint: Endpoint = Endpoint.LIST
    reader: Callable[[dict[str, Any]], Any] | None = None  # when a dotted path cannot say it

    @property
    def needs_details(self) -> bool:
        return self.endpoint is Endpoint.DETAILS

    @property
    def can_identify(self) -> bool:
        """The identifier must come from the device list: every device needs one, every sync."""
        return self.endpoint is Endpoint.LIST and self.suitability is not Suitability.UNSUITABLE

    def read(self, payload: dict[str, Any]) -> Any:
        """The raw value in a device list entry (or details payload); None when absent."""
        if self.reader is not None:
            return self.reader(payload)
        return dig(payload, self.path)


class UnknownField(BridgeError):
    """A mapping names a Kandji field the catalog does not have."""


def dig(payload: Any, path: str) -> Any:
    """The value at a dotted path, or None where a step is missing or not an object (Kandji
    sends `user: ""` for a device without a user, and `{}` for sections that do not apply)."""
    for step in path.split("."):
        if not isinstance(payload, dict):
            return None
        payload = payload.get(step)
    return payload


def snake_case(label: str) -> str:
    """'Supplemental OS Version Extra' -> 'supplemental_os_version_extra'."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def _field(
    label: str,
    description: str,
    recommendation: str,
    kind: Kind,
    suitability: Suitability = Suitability.UNSUITABLE,
    path: str | None = None,
) -> KandjiField:
    key = snake_case(label)
    return KandjiField(key, label, description, recommendation, path or key, kind, suitability)


_T, _B, _TS, _L, _N = Kind.TEXT, Kind.BOOLEAN, Kind.TIMESTAMP, Kind.LIST, Kind.NUMBER
_S = Suitability

# Asset Panda's field table, in its order, with its words.
LIST_FIELDS: tuple[KandjiField, ...] = (
    _field("Agent Installed", "Boolean indicating if Kandji agent is installed on the device",
           "Informational; not unique", _B),
    _field("Agent Version", "Version number of the Kandji agent installed",
           "Informational; not unique", _T),
    _field("Asset Tag", "Custom asset tag assigned in Kandji",
           "Use if standardized and unique", _T, _S.CONDITIONAL),
    _field("Blueprint ID", "Internal identifier for the applied blueprint",
           "Not unique; group-level data", _T),
    _field("Blueprint Name", "Name of the assigned blueprint",
           "Not unique; group-level data", _T),
    _field("Device ID", "Internal Kandji-generated device ID",
           "Recommended unique identifier", _T, _S.RECOMMENDED),
    _field("Device Name", "User-assigned or system device name",
           "Use only if standardized", _T, _S.CONDITIONAL),
    _field("First Enrollment", "Date/time of first enrollment", "Informational", _TS),
    _field("Is Missing", "Boolean indicating if the device is marked as missing",
           "Not suitable as identifier", _B),
    _field("Is Removed", "Boolean indicating if the device is marked as removed",
           "Not suitable as identifier", _B),
    _field("Last Check In", "Timestamp of last check-in with Kandji", "Informational", _TS),
    _field("Last Enrollment", "Timestamp of most recent enrollment", "Informational", _TS),
    _field("Lost Mode Status", "Current status of Lost Mode (on/off)", "Informational", _T),
    _field("MDM Enabled", "Indicates whether MDM is enabled on the device", "Informational", _B),
    _field("Model", "Model name of the device", "Not unique", _T),
    _field("OS Version", "Operating system version", "Not unique", _T),
    _field("Platform", "Device platform (e.g., macOS, iOS)", "Not unique", _T),
    _field("Serial Number", "Manufacturer's serial number",
           "Common and acceptable identifier", _T, _S.ACCEPTABLE),
    _field("Supplemental Build Version", "Additional OS version info", "Informational", _T),
    _field("Supplemental OS Version Extra", "Additional OS version metadata", "Informational",
           _T),
    _field("Tags", "Custom tags applied to the device", "Not unique", _L),
    _field("User Active", "Boolean indicating if the user is active", "Informational", _B,
           path="user.active"),
    _field("User Email", "Email address of the assigned user", "Use only if guaranteed unique",
           _T, _S.CONDITIONAL, path="user.email"),
    _field("User ID", "Unique Kandji-assigned user ID", "Acceptable if user-focused sync", _T,
           _S.ACCEPTABLE, path="user.id"),
    _field("User Is Archived", "Boolean indicating user archive status", "Informational", _B,
           path="user.is_archived"),
    _field("User Name", "Display name of the user", "Use only if consistently formatted", _T,
           _S.CONDITIONAL, path="user.name"),
)  # fmt: skip


def _hardware_uuid(details: dict[str, Any]) -> Any:
    # Macs report it as `udid`; iPhones, iPads and Apple TVs as `uuid`.
    return dig(details, "hardware_overview.udid") or dig(details, "hardware_overview.uuid")


def _boot_volume(details: dict[str, Any]) -> dict[str, Any] | None:
    """The volume named by general.boot_volume (Macs), else the only volume (iPhone, iPad)."""
    volumes = [volume for volume in details.get("volumes") or [] if isinstance(volume, dict)]
    boot = dig(details, "general.boot_volume")
    named = [volume for volume in volumes if boot and volume.get("name") == boot]
    return (named or volumes or [None])[0]


_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]B)\s*$", re.IGNORECASE)
_GB_PER_UNIT = {"KB": 1e-6, "MB": 1e-3, "GB": 1.0, "TB": 1e3}


def _gigabytes(size: Any) -> Any:
    """'228.27 GB' -> 228.27; anything else is passed on, for the conversion to refuse."""
    match = _SIZE.match(size) if isinstance(size, str) else None
    if match is None:
        return size
    return round(float(match[1]) * _GB_PER_UNIT[match[2].upper()], 2)


def _volume_size(name: str) -> Callable[[dict[str, Any]], Any]:
    def read(details: dict[str, Any]) -> Any:
        volume = _boot_volume(details)
        return _gigabytes(volume.get(name)) if volume else None

    return read


def _detail(
    key: str,
    label: str,
    description: str,
    path: str,
    kind: Kind,
    reader: Callable[[dict[str, Any]], Any] | None = None,
    recommendation: str = "Informational",
) -> KandjiField:
    return KandjiField(
        key,
        label,
        description,
        f"{recommendation}; needs the device details call",
        path,
        kind,
        Suitability.UNSUITABLE,
        Endpoint.DETAILS,
        reader,
    )


DETAIL_FIELDS: tuple[KandjiField, ...] = (
    _detail("model_identifier", "Model Identifier", "Apple's model identifier (MacBookAir10,1)",
            "hardware_overview.model_identifier", _T, recommendation="Not unique"),
    _detail("hardware_uuid", "Hardware UUID", "Hardware UDID (Mac) or UUID of the device",
            "hardware_overview.udid | hardware_overview.uuid", _T, _hardware_uuid,
            recommendation="Unique per device, but not available as identifier"),
    _detail("processor", "Processor", "Processor name (Macs)",
            "hardware_overview.processor_name", _T),
    _detail("processor_cores", "Processor Cores", "Total number of cores (Macs)",
            "hardware_overview.total_number_of_cores", _N),
    _detail("memory", "Memory", "Installed memory (Macs), e.g. 8 GB LPDDR4",
            "hardware_overview.memory", _T),
    _detail("system_version", "System Version", "OS version with its build (Macs)",
            "general.system_version", _T),
    _detail("last_user", "Last User", "Account that last logged in (Macs)",
            "general.last_user", _T),
    _detail("boot_volume_capacity_gb", "Boot Volume Capacity (GB)",
            "Capacity of the boot volume in GB", "volumes[boot volume].capacity", _N,
            _volume_size("capacity")),
    _detail("boot_volume_free_gb", "Boot Volume Free Space (GB)",
            "Free space on the boot volume in GB", "volumes[boot volume].available", _N,
            _volume_size("available")),
    _detail("filevault_enabled", "FileVault Enabled", "Whether FileVault is on (Macs)",
            "filevault.filevault_enabled", _B),
    _detail("filevault_key_escrowed", "FileVault Key Escrowed",
            "Whether Kandji holds the FileVault personal recovery key",
            "filevault.filevault_prk_escrowed", _B),
    _detail("supervised", "Supervised", "Whether the device is supervised",
            "mdm.supervised", _B),
    _detail("mdm_install_date", "MDM Install Date", "When the MDM profile was installed",
            "mdm.install_date", _TS),
    _detail("device_activation_lock", "Device Activation Lock",
            "Whether device Activation Lock is enabled",
            "activation_lock.device_activation_lock_enabled", _B),
    _detail("user_activation_lock", "User Activation Lock",
            "Whether user Activation Lock is enabled",
            "activation_lock.user_activation_lock_enabled", _B),
    _detail("recovery_lock_enabled", "Recovery Lock Enabled",
            "Whether a Recovery Lock password is set (Macs)",
            "recovery_information.recovery_lock_enabled", _B),
    _detail("remote_desktop_enabled", "Remote Desktop Enabled",
            "Whether Remote Desktop is on (Macs)",
            "security_information.remote_desktop_enabled", _B),
    _detail("mac_address", "MAC Address", "Primary network interface's MAC address",
            "network.mac_address", _T),
    _detail("local_hostname", "Local Hostname", "Bonjour host name (Macs)",
            "network.local_hostname", _T),
    _detail("ip_address", "IP Address", "Local IP address last reported (Macs)",
            "network.ip_address", _T),
    _detail("automated_enrollment", "Automated Device Enrollment",
            "Whether the device enrolled through Automated Device Enrollment",
            "automated_device_enrollment.auto_enrolled", _B),
    _detail("abm_description", "Apple Business Manager Description",
            "Purchase description in Apple Business Manager",
            "apple_business_manager.description", _T),
    _detail("abm_color", "Apple Business Manager Color", "Color in Apple Business Manager",
            "apple_business_manager.color", _T),
    _detail("abm_assigned_date", "Apple Business Manager Assigned Date",
            "When Apple Business Manager assigned the device",
            "apple_business_manager.device_assigned_date", _TS),
)  # fmt: skip

CATALOG: dict[str, KandjiField] = {field.key: field for field in LIST_FIELDS + DETAIL_FIELDS}


def get_field(key: str) -> KandjiField:
    """The catalog field for a key (label spellings are accepted too: 'Serial Number')."""
    field = CATALOG.get(key.strip()) or CATALOG.get(snake_case(key))
    if field is None:
        close = difflib.get_close_matches(snake_case(key), CATALOG, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        wrong = f"{key.strip()!r} is not a Kandji device field; {hint}"
        raise UnknownField(
            wrong
            + "`kandji-bridge mapping fields` lists the keys (device_id, serial_number, ...).",
            in_web=wrong + "the mapping form's Kandji field list shows them "
            "(device_id, serial_number, ...).",
        )
    return field


def identifier_fields() -> list[KandjiField]:
    return [field for field in LIST_FIELDS if field.can_identify]
