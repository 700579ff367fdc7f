"""GET /api/v1/devices/{device_id}/details: every section of Kandji's examples, per platform.

Sections and their shapes follow the examples for a Mac, an iPad, an Apple TV and an iPad in lost
mode, quirks included: some booleans are strings ("True"), Apple TVs have no `lost_mode` or
`cellular` section, and non-Macs report `filevault_enabled: null`. Values that the list does not
carry are drawn from a per-device seeded generator, so a device's details never change by chance.
"""

import random
import uuid
from typing import Any

from kandji_bridge.simulator import catalog, timefmt
from kandji_bridge.simulator.devices import user_json
from kandji_bridge.simulator.tenant import DAY_US, Device, User

HOUR_US = 3_600_000_000


def device_details(device: Device, seed: int, last_check_in_us: int) -> dict[str, Any]:
    rng = random.Random(f"details:{seed}:{device.device_id}")
    platform = device.platform
    is_mac = platform == "Mac"
    is_tv = platform == "AppleTV"
    ade = (
        rng.random() < 0.7
    )  # enrolled through Automated Device Enrollment (Apple Business Manager)
    username = _username(device.user)
    details: dict[str, Any] = {
        "general": _general(device, username, rng),
        "mdm": _mdm(device, username, last_check_in_us),
        "activation_lock": _activation_lock(device, rng),
        "filevault": _filevault(device, rng),
    }
    if not is_tv:
        details["lost_mode"] = _lost_mode(device, rng)
    details["automated_device_enrollment"] = (
        {"auto_enroll_eligible": True, "auto_enrolled": True} if ade and not is_tv else {}
    )
    details["kandji_agent"] = _agent(device, last_check_in_us)
    details["hardware_overview"] = _hardware(device, rng)
    details["volumes"] = _volumes(device, rng)
    details["network"] = _network(device, username, rng)
    details["recovery_information"] = _recovery(device, rng)
    details["users"] = _users(device, username)
    details["installed_profiles"] = [] if is_tv else _profiles(device, rng)
    details["apple_business_manager"] = _abm(device, rng) if ade else {}
    details["security_information"] = {
        "remote_desktop_enabled": rng.random() < 0.2 if is_mac else None
    }
    if not is_tv:
        details["cellular"] = _cellular(device)
    details["tags"] = [tag.name for tag in device.tags]
    return details


def _flag(value: bool) -> str:
    """Kandji's details send some booleans as the strings "True" / "False"."""
    return "True" if value else "False"


def _username(user: User | None) -> str:
    if user is None:
        return "labadmin"
    first, *_, last = user.name.lower().split(" ")
    return f"{first[0]}{last}"


def _general(device: Device, username: str, rng: random.Random) -> dict[str, Any]:
    is_mac = device.platform == "Mac"
    return {
        "device_id": device.device_id,
        "device_name": device.device_name,
        "last_enrollment": timefmt.iso_space(device.last_enrollment_us),
        "first_enrollment": timefmt.iso_space(device.first_enrollment_us),
        "model": device.model.name,
        "platform": device.platform,
        "os_version": device.os_version,
        "supplemental_build_version": device.supplemental_build_version,
        "supplemental_os_version_extra": device.supplemental_os_version_extra,
        "system_version": f"{device.os_version} ({device.supplemental_build_version})"
        if is_mac
        else "",
        "boot_volume": "Macintosh HD" if is_mac else "",
        "time_since_boot": rng.choice(("2 hours ago", "3 days ago", "1 week ago", "1 month ago"))
        if is_mac
        else "",
        "last_user": username if is_mac else "",
        "asset_tag": device.asset_tag,
        "assigned_user": user_json(device.user),
        "blueprint_name": device.blueprint.name,
        "blueprint_uuid": device.blueprint.id,
    }


def _mdm(device: Device, username: str, last_check_in_us: int) -> dict[str, Any]:
    mdm: dict[str, Any] = {"mdm_enabled": _flag(device.mdm_enabled)}
    if device.platform != "AppleTV":  # the Apple TV example has no `supervised`
        mdm["supervised"] = "True"
    mdm["install_date"] = timefmt.iso_space(device.last_enrollment_us - 170_000)
    mdm["last_check_in"] = timefmt.iso_space(last_check_in_us)
    mdm["mdm_enabled_user"] = [username] if device.platform == "Mac" else []
    return mdm


def _activation_lock(device: Device, rng: random.Random) -> dict[str, Any]:
    if device.platform == "AppleTV":
        return {
            "bypass_code_failed": False,
            "user_activation_lock_enabled": None,
            "device_activation_lock_enabled": False,
            "activation_lock_allowed_while_supervised": None,
            "activation_lock_supported": False,
        }
    return {
        "bypass_code_failed": False,
        "user_activation_lock_enabled": rng.random() < 0.1,
        "device_activation_lock_enabled": rng.random() < 0.3,
        "activation_lock_allowed_while_supervised": rng.random() < 0.3,
        "activation_lock_supported": True,
    }


def _filevault(device: Device, rng: random.Random) -> dict[str, Any]:
    enabled = device.filevault_enabled
    rotation = device.last_check_in_us + rng.randint(10, 90) * DAY_US
    return {
        "filevault_enabled": enabled,
        "filevault_recoverykey_type": "personal" if enabled else "",
        "filevault_prk_escrowed": bool(enabled),
        "filevault_next_rotation": timefmt.iso_z(rotation) if enabled else "",
        "filevault_regen_required": False,
    }


def _lost_mode(device: Device, rng: random.Random) -> dict[str, Any]:
    if not device.lost_mode:
        return {}
    enabled_us = device.last_check_in_us - rng.randint(1, 72) * HOUR_US
    located_us = enabled_us + rng.randint(30, 600) * 1_000_000
    return {
        "lost_mode_status": "ENABLED",
        "enabled_by": "Kandji admin",
        "enable_status_at": timefmt.iso_z(enabled_us),
        "lock_screen_message": rng.choice(catalog.LOST_MODE_MESSAGES),
        "lock_screen_phone_number": f"+1555{rng.randint(1_000_000, 9_999_999)}",
        "lock_screen_footnote": "Reward if found.",
        "disable_status": "",
        "disabled_by": "",
        "disable_status_at": "",
        "last_location_status": "SUCCESS",
        "last_location_status_at": timefmt.iso_z(located_us + 9_000),
        "last_location": {
            "latitude": f"{rng.uniform(25, 60):.14f}",
            "longitude": f"{rng.uniform(-123, 25):.14f}",
        },
        "last_location_at": timefmt.iso_z(located_us),
        "sound_status": "SUCCESS",
        "sound_status_at": timefmt.iso_z(located_us + 88_000_000),
    }


def _agent(device: Device, last_check_in_us: int) -> dict[str, Any]:
    installed = device.agent_installed
    return {
        "agent_installed": _flag(installed),
        "install_date": timefmt.iso_seconds(device.last_enrollment_us + HOUR_US)
        if installed
        else "",
        "last_check_in": timefmt.iso_z(last_check_in_us),
        "agent_version": device.agent_version,
    }


def _hardware(device: Device, rng: random.Random) -> dict[str, Any]:
    model = device.model
    if device.platform == "Mac":
        return {
            "model_name": model.name.split(" (")[0],
            "model_identifier": model.identifier,
            "processor_name": model.processor,
            "processor_speed": model.processor_speed,
            "number_of_processors": str(model.cores),
            "total_number_of_cores": str(model.cores),
            "memory": model.memory,
            "udid": str(uuid.UUID(int=rng.getrandbits(128))),
            "serial_number": device.serial_number,
        }
    if device.platform == "AppleTV":
        hardware_uuid = f"{rng.getrandbits(160):040x}"
    else:
        hardware_uuid = f"0000{rng.randint(0x8020, 0x8140):04x}-00{rng.getrandbits(56):014x}"
    return {
        "uuid": hardware_uuid,
        "serial_number": device.serial_number,
        "model_identifier": model.identifier,
    }


def _volumes(device: Device, rng: random.Random) -> list[dict[str, str]]:
    capacity = device.model.capacity_gb
    used = rng.uniform(0.08, 0.85)
    percent, available = f"{round(used * 100)}%", f"{capacity * (1 - used):.2f} GB"
    if device.platform == "AppleTV":
        return []
    if device.platform != "Mac":
        return [
            {
                "name": "",
                "format": "",
                "percent_used": percent,
                "identifier": "",
                "capacity": f"{capacity:.1f} GB",
                "available": available,
                "encrypted": "",
            }
        ]
    encrypted = "Yes" if device.filevault_enabled else "No"
    return [
        {
            "name": name,
            "format": "APFS",
            "percent_used": percent,
            "identifier": identifier,
            "capacity": f"{capacity:.2f} GB",
            "available": available,
            "encrypted": "No" if name == "Macintosh HD" else encrypted,
        }
        for name, identifier in (("Macintosh HD", "disk3s3s1"), ("Macintosh HD - Data", "disk3s1"))
    ]


def _network(device: Device, username: str, rng: random.Random) -> dict[str, str]:
    if device.platform == "AppleTV":
        return {}
    is_mac = device.platform == "Mac"
    family = device.model.name.split(" (")[0].replace(" ", "-")
    return {
        "local_hostname": f"{username}s-{family}" if is_mac else "",
        "mac_address": device.mac_address,
        "ip_address": rng.choice(catalog.PRIVATE_IPS) if is_mac else "",
        "public_ip": rng.choice(catalog.PUBLIC_IPS) if is_mac and rng.random() < 0.5 else "",
    }


def _recovery(device: Device, rng: random.Random) -> dict[str, Any]:
    is_mac = device.platform == "Mac"
    lock = is_mac and rng.random() < 0.6
    recovery: dict[str, Any] = {
        "recovery_lock_enabled": lock,
        "firmware_password_exist": False,
        "firmware_password_pending": False,
        "password_rotation_scheduled": (
            timefmt.iso_z(device.last_check_in_us + rng.randint(5, 60) * DAY_US) if lock else None
        ),
    }
    if device.platform != "AppleTV":
        recovery["password_has_been_set"] = lock
    return recovery


def _users(device: Device, username: str) -> dict[str, list[dict[str, str]]]:
    if device.platform != "Mac":
        return {"regular_users": [], "system_users": []}
    name = device.user.name if device.user is not None else ""
    regular = [
        {
            "username": username,
            "uid": "501",
            "path": f"/Users/{username}",
            "admin": "Yes",
            "name": name,
        }
    ]
    system = [
        {
            "username": system_name,
            "uid": uid,
            "path": path,
            "admin": "Yes" if system_name == "root" else "No",
        }
        for system_name, uid, path in catalog.SYSTEM_USERS
    ]
    return {"regular_users": regular, "system_users": system}


def _profiles(device: Device, rng: random.Random) -> list[dict[str, Any]]:
    profiles = catalog.MAC_PROFILES if device.platform == "Mac" else catalog.MOBILE_PROFILES
    installed = []
    for number, (name, identifier, payload_types) in enumerate(profiles):
        install_us = device.last_enrollment_us + number * rng.randint(0, 30) * DAY_US
        installed.append(
            {
                "name": name,
                "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "verified": "verified",
                "identifier": identifier,
                "organization": "Kandji, Inc.",
                "payload_types": list(payload_types),
                "install_date": f"{timefmt.iso_seconds(install_us)[:19]} +0000",
            }
        )
    return installed


_ABM_OS = {"Mac": "OSX", "iPhone": "iOS", "iPad": "iPadOS", "AppleTV": "tvOS"}


def _abm(device: Device, rng: random.Random) -> dict[str, str]:
    return {
        "model": device.model.abm_model or device.model.name,
        "color": rng.choice(catalog.ABM_COLORS),
        "description": device.model.abm_description,
        "serial_number": device.serial_number,
        "device_family": device.platform,
        "os": _ABM_OS[device.platform],
        "device_assigned_date": timefmt.iso_seconds(
            device.first_enrollment_us - rng.randint(1, 60) * DAY_US
        ),
        "device_assigned_by": "it-purchasing@example.com",
    }


def _cellular(device: Device) -> dict[str, Any]:
    if device.platform == "Mac":
        return {}
    return {
        "voice_roaming": False,
        "data_roaming": False,
        "cellular_technology": 1 if device.platform == "iPhone" else 0,
        "subscriptions": None,
    }
