"""What each kind of audit event looks like, in the shapes of Kandji's examples.

A generated event is a pure function of the tenant, its time and its ULID's 80 random bits, so a
million-event history needs no stored payloads: each page renders its events when asked.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from kandji_bridge.simulator import catalog
from kandji_bridge.simulator.tenant import Admin, Device, Tenant, TokenRecord

T = TypeVar("T")
_MASK64 = (1 << 64) - 1

SYSTEM_ACTOR = ("", "system")  # (actor_id, actor_type) of Kandji's own automation


class Draws:
    """A tiny seeded generator (a 64-bit LCG), much cheaper to start than a random.Random."""

    def __init__(self, seed: int) -> None:
        self._state = seed & _MASK64

    def below(self, n: int) -> int:
        self._state = (self._state * 6364136223846793005 + 1442695040888963407) & _MASK64
        return (self._state >> 32) % n

    def chance(self, p: float) -> bool:
        return self.below(1_000_000) < p * 1_000_000

    def pick(self, items: Sequence[T]) -> T:
        return items[self.below(len(items))]

    def sample(self, items: Sequence[T], k: int) -> list[T]:
        chosen: dict[int, T] = {}
        while len(chosen) < min(k, len(items)):
            index = self.below(len(items))
            chosen.setdefault(index, items[index])
        return list(chosen.values())


@dataclass(frozen=True)
class Body:
    """Everything of an event but its id and time."""

    action: str
    actor: tuple[str, str]  # (actor_id, actor_type)
    target_id: str
    target_type: str
    target_component: str
    new_state: dict[str, Any]
    metadata: dict[str, Any]


def assemble(event_id: str, occurred_at: str, body: Body) -> dict[str, Any]:
    """The event in Kandji's field order."""
    return {
        "id": event_id,
        "action": body.action,
        "occurred_at": occurred_at,
        "actor_id": body.actor[0],
        "actor_type": body.actor[1],
        "target_id": body.target_id,
        "target_type": body.target_type,
        "target_component": body.target_component,
        "new_state": body.new_state,
        "metadata": body.metadata,
    }


# --- actors and metadata -------------------------------------------------------------------------


def _admin_or_token(tenant: Tenant, draws: Draws, token_share: float = 0.25) -> Admin | TokenRecord:
    if draws.chance(token_share):
        return draws.pick(tenant.tokens)
    return draws.pick(tenant.admins)


def _actor_of(who: Admin | TokenRecord) -> tuple[str, str]:
    return (who.id, "user") if isinstance(who, Admin) else (who.id, "api_token")


def client_metadata(tenant: Tenant, draws: Draws, who: Admin | TokenRecord) -> dict[str, Any]:
    """About a third of human and API actions carry the client's address, so enrichment has work."""
    if not draws.chance(0.35):
        return {}
    if draws.chance(0.2):
        address = draws.pick(catalog.PRIVATE_IPS)
    elif draws.chance(0.6):  # each actor mostly works from one place
        home = tenant.admins.index(who) if isinstance(who, Admin) else 7 + tenant.tokens.index(who)
        address = catalog.PUBLIC_IPS[home * 3 % len(catalog.PUBLIC_IPS)]
    else:
        address = draws.pick(catalog.PUBLIC_IPS)
    if isinstance(who, Admin):
        agent = draws.pick(catalog.BROWSER_USER_AGENTS)
        return {
            "ip_address": address,
            "user_agent": agent,
            "actor_email": who.email,
            "actor_name": who.name,
        }
    agent = draws.pick(catalog.API_USER_AGENTS)
    return {"ip_address": address, "user_agent": agent, "actor_name": who.label}


def _human(tenant: Tenant, draws: Draws, token_share: float = 0.25) -> tuple[tuple[str, str], dict]:
    who = _admin_or_token(tenant, draws, token_share)
    return _actor_of(who), client_metadata(tenant, draws, who)


def _new_id(draws: Draws) -> str:
    value = 0
    for _ in range(4):
        value = (value << 32) | draws.below(1 << 32)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-a{text[17:20]}-{text[20:32]}"


def _named(items: Sequence[Any]) -> list[dict[str, str]]:
    return [{"id": item.id, "name": item.name} for item in items]


# --- blueprints and library items ----------------------------------------------------------------


def blueprint_library_items(tenant: Tenant, draws: Draws) -> Body:
    blueprint = draws.pick(tenant.blueprints)
    added = draws.sample(tenant.library_items, 1 + draws.below(2))
    removed = (
        [i for i in draws.sample(blueprint.library_items, 1) if i not in added]
        if draws.chance(0.3)
        else []
    )
    scoped = [i for i in blueprint.library_items if i not in removed and i not in added] + added
    actor, metadata = _human(tenant, draws)
    new_state = {
        "library_items_added": _named(added),
        "library_items_removed": _named(removed),
        "library_items_scoped": _named(scoped),
        "name": blueprint.name,
    }
    return Body("update", actor, blueprint.id, "blueprint", "library_items", new_state, metadata)


def blueprint_parameters(tenant: Tenant, draws: Draws) -> Body:
    blueprint = draws.pick(tenant.blueprints)
    parameters = [
        {"id": _new_id(draws), "name": name}
        for name in draws.sample(catalog.BLUEPRINT_PARAMETERS, draws.below(4))
    ]
    actor, metadata = _human(tenant, draws)
    new_state = {"parameters": parameters, "name": blueprint.name}
    return Body("update", actor, blueprint.id, "blueprint", "parameters", new_state, metadata)


def blueprint_create(tenant: Tenant, draws: Draws) -> Body:
    blueprint = draws.pick(tenant.blueprints)
    actor, metadata = _human(tenant, draws)
    new_state = {"description": "", "type": blueprint.type, "name": blueprint.name}
    metadata = {"source_id": None, "source": None, **metadata}
    return Body("create", actor, blueprint.id, "blueprint", "", new_state, metadata)


def blueprint_delete(tenant: Tenant, draws: Draws) -> Body:
    actor, metadata = _human(tenant, draws, token_share=0)
    new_state = {"name": f"old_blueprint_{draws.below(90) + 10}"}
    return Body("delete", actor, _new_id(draws), "blueprint", "", new_state, metadata)


def _library_item(action: str) -> Callable[[Tenant, Draws], Body]:
    def make(tenant: Tenant, draws: Draws) -> Body:
        item = draws.pick(tenant.library_items)
        actor, metadata = _human(tenant, draws)
        active = action != "delete" and draws.chance(0.8)
        new_state = {"active": active, "label": None, "type": item.type, "name": item.name}
        return Body(action, actor, item.id, "library_item", "", new_state, metadata)

    return make


# --- devices -------------------------------------------------------------------------------------


def _device_state(device: Device) -> dict[str, Any]:
    return {"device_name": device.device_name, "serial_number": device.serial_number}


def device_enrollment(tenant: Tenant, draws: Draws) -> Body:
    device = draws.pick(tenant.devices)
    new_state = {
        **_device_state(device),
        "model": device.model.name,
        "platform": device.platform,
        "blueprint_id": device.blueprint.id,
        "blueprint_name": device.blueprint.name,
    }
    return Body("create", SYSTEM_ACTOR, device.device_id, "device", "enrollment", new_state, {})


def device_blueprint_change(tenant: Tenant, draws: Draws) -> Body:
    device = draws.pick(tenant.devices)
    previous = draws.pick(tenant.blueprints)
    actor, metadata = _human(tenant, draws)
    new_state = {
        **_device_state(device),
        "blueprint_id": device.blueprint.id,
        "blueprint_name": device.blueprint.name,
        "previous_blueprint_id": previous.id,
        "previous_blueprint_name": previous.name,
    }
    return Body("update", actor, device.device_id, "device", "blueprint", new_state, metadata)


def device_delete(tenant: Tenant, draws: Draws) -> Body:
    device = draws.pick(tenant.devices)
    actor, metadata = _human(tenant, draws)
    return Body("delete", actor, device.device_id, "device", "", _device_state(device), metadata)


def device_mdm_removal(tenant: Tenant, draws: Draws) -> Body:
    device = draws.pick(tenant.devices)
    if draws.chance(0.5):  # the user removed the MDM profile on the device itself
        actor, metadata = SYSTEM_ACTOR, {}
    else:
        actor, metadata = _human(tenant, draws)
    new_state = {**_device_state(device), "mdm_enabled": False}
    return Body("delete", actor, device.device_id, "device", "mdm", new_state, metadata)


def device_renamed(
    device: Device, previous_name: str, body_actor: tuple[str, str], metadata: dict
) -> Body:
    new_state = {**_device_state(device), "previous_device_name": previous_name}
    return Body(
        "update", body_actor, device.device_id, "device", "device_name", new_state, metadata
    )


def device_rename(tenant: Tenant, draws: Draws) -> Body:
    device = draws.pick(tenant.devices)
    actor, metadata = _human(tenant, draws)
    return device_renamed(device, device.model.name.split(" (")[0], actor, metadata)


def device_os_updated(device: Device, previous_version: str) -> Body:
    new_state = {
        **_device_state(device),
        "os_version": device.os_version,
        "supplemental_build_version": device.supplemental_build_version,
        "supplemental_os_version_extra": device.supplemental_os_version_extra,
        "previous_os_version": previous_version,
    }
    return Body("update", SYSTEM_ACTOR, device.device_id, "device", "os_version", new_state, {})


def device_os_update(tenant: Tenant, draws: Draws) -> Body:
    device = draws.pick(tenant.devices)
    versions = catalog.OS_VERSIONS[device.platform]
    return device_os_updated(device, draws.pick(versions)[0])


def _secret_view(component: str, token_share: float) -> Callable[[Tenant, Draws], Body]:
    """Read-only access to a device secret (FileVault key, Recovery Lock password, bypass code)."""

    def make(tenant: Tenant, draws: Draws) -> Body:
        device = draws.pick(tenant.devices)
        actor, metadata = _human(tenant, draws, token_share)
        return Body(
            "view", actor, device.device_id, "device", component, _device_state(device), metadata
        )

    return make


# --- access: API tokens, admins, directory users, tenant owner ----------------------------------


def _api_token(action: str) -> Callable[[Tenant, Draws], Body]:
    def make(tenant: Tenant, draws: Draws) -> Body:
        token = draws.pick(tenant.tokens)
        actor, metadata = _human(tenant, draws, token_share=0)
        permissions = [{"path": path, "http_method": method} for method, path in token.permissions]
        new_state = {"description": None, "permissions": permissions, "label": token.label}
        return Body(action, actor, token.id, "api_token", "", new_state, metadata)

    return make


def _admin_user(action: str) -> Callable[[Tenant, Draws], Body]:
    def make(tenant: Tenant, draws: Draws) -> Body:
        admin = draws.pick(tenant.admins)
        actor, metadata = _human(tenant, draws, token_share=0)
        new_state = {
            "email": admin.email,
            "name": admin.name,
            "role": admin.role,
            "active": action != "delete",
        }
        return Body(action, actor, admin.id, "admin_user", "", new_state, metadata)

    return make


def directory_user_delete(tenant: Tenant, draws: Draws) -> Body:
    user = draws.pick(tenant.users)
    new_state = {
        "email": user.email,
        "name": user.name,
        "integration": draws.pick(catalog.DIRECTORY_INTEGRATIONS),
    }
    return Body("delete", SYSTEM_ACTOR, user.id, "directory_user", "", new_state, {})


def tenant_owner_update(tenant: Tenant, draws: Draws) -> Body:
    owner, previous = draws.sample(tenant.admins, 2)
    actor, metadata = _human(tenant, draws, token_share=0)
    new_state = {"owner_email": owner.email, "previous_owner_email": previous.email}
    return Body("update", actor, owner.id, "tenant", "owner", new_state, metadata)


Maker = Callable[[Tenant, Draws], Body]

# (weight, maker): how often each kind appears in a tenant's history.
TENANT_KINDS: tuple[tuple[int, Maker], ...] = (
    (14, blueprint_library_items),
    (6, blueprint_parameters),
    (2, blueprint_create),
    (1, blueprint_delete),
    (3, _library_item("create")),
    (10, _library_item("update")),
    (1, _library_item("delete")),
    (2, _api_token("create")),
    (3, _api_token("update")),
    (1, _api_token("delete")),
    (2, _admin_user("create")),
    (3, _admin_user("update")),
    (1, _admin_user("delete")),
    (4, directory_user_delete),
    (1, tenant_owner_update),
)
DEVICE_KINDS: tuple[tuple[int, Maker], ...] = (  # only in a tenant that has devices
    (8, device_enrollment),
    (6, device_blueprint_change),
    (2, device_delete),
    (2, device_mdm_removal),
    (2, device_rename),
    (3, device_os_update),
    (6, _secret_view("filevault_key", 0.3)),
    (4, _secret_view("recovery_password", 0.2)),
    (2, _secret_view("activation_lock_bypass_code", 0.1)),
)
_TABLE = [maker for weight, maker in TENANT_KINDS + DEVICE_KINDS for _ in range(weight)]
_TABLE_WITHOUT_DEVICES = [maker for weight, maker in TENANT_KINDS for _ in range(weight)]


def generated_body(tenant: Tenant, seed: int, randomness: int) -> Body:
    """The content of a generated event, from the tenant seed and the event's ULID randomness."""
    draws = Draws(randomness ^ (seed * 0x9E3779B97F4A7C15))
    return draws.pick(_TABLE if tenant.devices else _TABLE_WITHOUT_DEVICES)(tenant, draws)
