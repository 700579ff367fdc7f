"""The seeded tenant: directory users, admins, API tokens, blueprints, library items, tags, devices.

Everything is drawn from one random.Random(seed) in a fixed order, so the same seed gives the same
tenant. Devices keep compact fields; their JSON is rendered on request (see devices.py, details.py).
"""

import random
import uuid
from dataclasses import dataclass, field

from kandji_bridge.simulator import catalog
from kandji_bridge.simulator.catalog import Model

DAY_US = 86_400 * 1_000_000
_SERIAL_CHARS = "0123456789CDFGHJKLMNPQRTVWXY"  # Apple serials avoid vowels and look-alikes
_MAC_OUIS = ("fc:e2:6c", "b8:2a:a9", "3c:22:fb", "a4:83:e7", "f0:18:98")


@dataclass(slots=True)
class User:
    id: str
    name: str
    email: str
    is_archived: bool
    active: bool


@dataclass(slots=True)
class Admin:
    id: str
    name: str
    email: str
    role: str


@dataclass(slots=True)
class TokenRecord:
    """An API token of the tenant as audit events see it (not one of the simulator's own tokens)."""

    id: str
    label: str
    permissions: list[tuple[str, str]]  # (http_method, path)


@dataclass(slots=True)
class LibraryItem:
    id: str
    name: str
    type: str


@dataclass(slots=True)
class Blueprint:
    id: str
    name: str
    type: str
    library_items: list[LibraryItem]


@dataclass(slots=True)
class Tag:
    id: str
    name: str


@dataclass(slots=True)
class Device:
    index: int  # position in generation order: the default, stable list order
    device_id: str
    device_name: str
    model: Model
    serial_number: str
    os_version: str
    supplemental_build_version: str
    supplemental_os_version_extra: str
    last_check_in_us: int
    user: User | None
    asset_tag: str
    blueprint: Blueprint
    mdm_enabled: bool
    agent_installed: bool
    is_missing: bool
    is_removed: bool
    agent_version: str
    first_enrollment_us: int
    last_enrollment_us: int
    lost_mode: bool
    tags: tuple[Tag, ...]
    mac_address: str
    filevault_enabled: bool | None  # None off macOS, as Kandji reports it

    @property
    def platform(self) -> str:
        return self.model.platform


@dataclass
class Tenant:
    company: str
    domain: str
    users: list[User]
    admins: list[Admin]
    tokens: list[TokenRecord]
    library_items: list[LibraryItem]
    blueprints: list[Blueprint]
    tags: list[Tag]
    devices: list[Device]
    devices_by_id: dict[str, Device] = field(default_factory=dict)
    devices_in_id_order: list[Device] = field(default_factory=list)  # the base of every `ordering`

    def __post_init__(self) -> None:
        self.devices_by_id = {device.device_id: device for device in self.devices}
        self.devices_in_id_order = sorted(self.devices, key=lambda device: device.device_id)


def new_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def generate_tenant(seed: int, device_count: int, now_us: int) -> Tenant:
    rng = random.Random(seed)
    company = rng.choice(catalog.COMPANIES)
    domain = f"{company}.io"
    users = _users(rng, domain, max(5, device_count * 7 // 10))
    admins = _admins(rng, domain)
    library_items = [LibraryItem(new_uuid(rng), name, kind) for name, kind in catalog.LIBRARY_ITEMS]
    blueprints = [
        Blueprint(new_uuid(rng), name, kind, rng.sample(library_items, rng.randint(3, 9)))
        for name, kind in catalog.BLUEPRINT_NAMES
    ]
    tags = [Tag(new_uuid(rng), name) for name in catalog.TAG_NAMES]
    return Tenant(
        company=company,
        domain=domain,
        users=users,
        admins=admins,
        tokens=_token_records(rng),
        library_items=library_items,
        blueprints=blueprints,
        tags=tags,
        devices=_devices(rng, device_count, now_us, company, users, blueprints, tags),
    )


def _users(rng: random.Random, domain: str, count: int) -> list[User]:
    users = []
    taken: dict[str, int] = {}
    for _ in range(count):
        first, last = rng.choice(catalog.FIRST_NAMES), rng.choice(catalog.LAST_NAMES)
        local = f"{first}.{last}".lower()
        taken[local] = taken.get(local, 0) + 1
        if taken[local] > 1:  # emails stay unique, as a directory's are
            local += str(taken[local])
        archived = rng.random() < 0.05
        active = not archived and rng.random() > 0.08
        users.append(User(new_uuid(rng), f"{first} {last}", f"{local}@{domain}", archived, active))
    return users


def _admins(rng: random.Random, domain: str) -> list[Admin]:
    admins = []
    for index in range(rng.randint(3, 6)):
        first, last = rng.choice(catalog.FIRST_NAMES), rng.choice(catalog.LAST_NAMES)
        role = "admin" if index == 0 else rng.choice(catalog.ADMIN_ROLES)
        email = f"{first[0]}{last}@{domain}".lower()
        admins.append(Admin(new_uuid(rng), f"{first} {last}", email, role))
    return admins


_TOKEN_LABELS = ("RunReveal", "Asset Panda", "audit log events", "Okta Workflows", "MDM reporting")
_TOKEN_PERMISSIONS = (
    ("GET", "/api/v1/audit/events"),
    ("GET", "/api/v1/devices"),
    ("GET", "/api/v1/devices/{device_id}/details"),
    ("PATCH", "/api/v1/devices/{device_id}"),
    ("GET", "/api/v1/users"),
    ("GET", "/api/v1/users/{id}"),
    ("DELETE", "/api/v1/users/{id}"),
    ("GET", "/api/v1/blueprints"),
)


def _token_records(rng: random.Random) -> list[TokenRecord]:
    return [
        TokenRecord(new_uuid(rng), label, rng.sample(_TOKEN_PERMISSIONS, rng.randint(1, 5)))
        for label in rng.sample(_TOKEN_LABELS, 3)
    ]


def _devices(
    rng: random.Random,
    count: int,
    now_us: int,
    company: str,
    users: list[User],
    blueprints: list[Blueprint],
    tags: list[Tag],
) -> list[Device]:
    platforms = list(catalog.PLATFORM_WEIGHTS)
    platform_weights = list(catalog.PLATFORM_WEIGHTS.values())
    models = {p: [m for m in catalog.MODELS if m.platform == p] for p in platforms}
    blueprints_for = {
        "Mac": blueprints[:3] + blueprints[6:],
        "iPhone": [blueprints[3]],
        "iPad": [blueprints[4], blueprints[6]],
        "AppleTV": [blueprints[5]],
    }
    unassigned_share = {"Mac": 0.12, "iPhone": 0.2, "iPad": 0.5, "AppleTV": 1.0}
    serials: set[str] = set()
    devices = []
    for index in range(count):
        platform = rng.choices(platforms, platform_weights)[0]
        model = rng.choices(models[platform], [m.weight for m in models[platform]])[0]
        os_version, build, extra = rng.choice(catalog.OS_VERSIONS[platform])
        user = None if rng.random() < unassigned_share[platform] else rng.choice(users)
        first_us = now_us - rng.randint(20, 3 * 365) * DAY_US - rng.randint(0, DAY_US)
        last_us = first_us if rng.random() < 0.6 else rng.randint(first_us, now_us - DAY_US)
        is_removed = rng.random() < 0.02
        is_missing = not is_removed and rng.random() < 0.05
        if is_missing or is_removed:  # not seen for weeks, as the examples' missing devices
            check_in_us = rng.randint(last_us, max(last_us, now_us - 30 * DAY_US))
        else:
            check_in_us = now_us - rng.randint(0, DAY_US)
        is_mac = platform == "Mac"
        agent = is_mac and not is_removed and rng.random() < 0.98
        devices.append(
            Device(
                index=index,
                device_id=new_uuid(rng),
                device_name=_device_name(rng, model, user, index),
                model=model,
                serial_number=_serial(rng, serials),
                os_version=os_version,
                supplemental_build_version=build,
                supplemental_os_version_extra=extra,
                last_check_in_us=check_in_us,
                user=user,
                asset_tag=f"{company.upper()}-{index + 1:06d}" if rng.random() < 0.65 else "",
                blueprint=rng.choice(blueprints_for[platform]),
                mdm_enabled=not is_removed and rng.random() < 0.98,
                agent_installed=agent,
                is_missing=is_missing,
                is_removed=is_removed,
                agent_version=rng.choice(catalog.AGENT_VERSIONS) if agent else "",
                first_enrollment_us=first_us,
                last_enrollment_us=last_us,
                lost_mode=platform in ("iPhone", "iPad") and rng.random() < 0.04,
                tags=tuple(rng.sample(tags, rng.choice((0, 0, 1, 1, 2)))),
                mac_address=_mac_address(rng, index),
                filevault_enabled=(rng.random() < 0.9) if is_mac else None,
            )
        )
    return devices


def _device_name(rng: random.Random, model: Model, user: User | None, index: int) -> str:
    family = model.name.split(" (")[0]
    if user is None:
        if model.platform == "AppleTV":
            return f"Conference Room {index % 40 + 1}"
        if model.platform == "iPad":
            return rng.choice(("iPad", f"Shared iPad {index % 100:02d}"))
        return f"LAB-{family.replace(' ', '').upper()}-{index:03d}"
    first = user.name.split(" ")[0]
    if model.platform == "Mac" and rng.random() < 0.3:  # some fleets use hostname-style names
        return f"{first[0]}{user.name.split(' ')[-1]}-{family.replace(' ', '')}".upper()
    apostrophe = rng.choice(("\u2019", "'"))  # Apple devices name themselves with a curly one
    return f"{first}{apostrophe}s {family}"


def _serial(rng: random.Random, taken: set[str]) -> str:
    """A unique serial: 10 random characters (2021+) or the older 12-character format."""
    while True:
        length = 10 if rng.random() < 0.6 else 12
        serial = "".join(rng.choices(_SERIAL_CHARS, k=length))
        if serial not in taken:
            taken.add(serial)
            return serial


def _mac_address(rng: random.Random, index: int) -> str:
    # Multiplying by an odd constant is a bijection mod 2**24: unique suffixes for 16M devices.
    suffix = (index * 2654435761 + 12345) % (1 << 24)
    octets = f"{suffix:06x}"
    return f"{rng.choice(_MAC_OUIS)}:{octets[0:2]}:{octets[2:4]}:{octets[4:6]}"
