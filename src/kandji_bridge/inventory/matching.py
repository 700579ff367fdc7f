"""Which record each listed device goes into, and which devices cannot go anywhere.

Devices are matched to records by their identifier value (upsert by identifier). A device the
mapping imported before stays with its record even if its identifier value changed. Nothing is
guessed: a value shared by two devices, a record two devices would both claim, or a device whose
link and identifier point at different records is a conflict, and those devices are left out.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from kandji_bridge.assets.convert import Value, decode, encode, text
from kandji_bridge.inventory.links import Link


@dataclass(slots=True)
class Device:
    """What a sync keeps of one listed device: its converted values, not the whole payload."""

    id: str
    name: str
    check_in: str | None  # last_check_in exactly as Kandji sent it
    removed: bool  # is_removed
    key: str | None  # the identifier's JSON value; None: empty
    values: dict[int, Value]  # collection field id -> value (detail fields once read)
    problem: str | None = None  # why it cannot be imported as it is
    details_read: bool = False

    def __str__(self) -> str:
        return f"{self.name} ({self.id})" if self.name else self.id


@dataclass(frozen=True, slots=True)
class Problem:
    device: Device
    reason: str

    def __str__(self) -> str:
        return f"device {self.device}: {self.reason}"


@dataclass(slots=True)
class Target:
    device: Device
    record_id: str | None  # None: a new record
    link: Link | None  # the device's link before this sync
    takes_over: str | None = None  # a vanished device whose record this one inherits


@dataclass
class Plan:
    targets: list[Target] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    conflicts: list[Problem] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)  # records whose device left Kandji


def match(
    devices: list[Device],
    keys: dict[str, str],
    links: dict[str, Link],
    identifier: str,
    unique: dict[int, str] | None = None,
) -> Plan:
    """`keys`: identifier JSON value -> record id; `links`: device id -> its record;
    `identifier`: the identifier's name in messages ("Serial Number"); `unique`: the other
    unique fields the devices' values fill (field id -> label), checked for shared values too.
    """
    plan = Plan()
    listed = {device.id for device in devices}
    usable = []
    for device in devices:
        if device.problem is not None:
            plan.skipped.append(Problem(device, device.problem))
        elif device.key is None:
            plan.skipped.append(Problem(device, f"its {identifier} is empty"))
        else:
            usable.append(device)
    shared = _shared_values(usable, unique or {})
    by_key: dict[str, list[Device]] = defaultdict(list)
    for device in usable:
        if device.id in shared:
            plan.conflicts.append(Problem(device, shared[device.id]))
        else:
            by_key[device.key or ""].append(device)

    record_key = {record_id: key for key, record_id in keys.items()}
    owner = {link.record_id: device_id for device_id, link in links.items()}
    claims: dict[str, list[Device]] = defaultdict(list)
    contested: dict[str, list[Device]] = defaultdict(list)  # claims by devices already in conflict
    for key, group in by_key.items():
        if len(group) > 1:
            names = ", ".join(str(device) for device in group)
            reason = f"its {identifier} {_shown(key)} is shared by {len(group)} devices: {names}"
            plan.conflicts.extend(Problem(device, reason) for device in group)
            continue
        device = group[0]
        link = links.get(device.id)
        by_value = keys.get(key)
        if link is not None and by_value is not None and link.record_id != by_value:
            plan.conflicts.append(
                Problem(
                    device,
                    f"it was imported into the record with {identifier} "
                    f"{_shown(record_key.get(link.record_id))}, but its {identifier} "
                    f"{_shown(key)} belongs to another record",
                )
            )
            contested[by_value].append(device)
            continue
        record_id = link.record_id if link is not None else by_value
        if record_id is None:
            plan.targets.append(Target(device, None, None))
        else:
            claims[record_id].append(device)

    inherited: set[str] = set()
    for record_id, claimants in claims.items():
        linked = owner.get(record_id)
        rivals = [str(device) for device in contested.get(record_id, [])]
        if linked in listed and linked != claimants[0].id and not rivals:
            rivals = [linked]  # the device it was imported from is still there
        if len(claimants) > 1 or rivals:
            names = [str(device) for device in claimants] + rivals
            reason = (
                f"the record with {identifier} {_shown(record_key.get(record_id))} is claimed "
                f"by {' and '.join(names)}"
            )
            plan.conflicts.extend(Problem(device, reason) for device in claimants)
            continue
        device = claimants[0]
        takes_over = linked if linked is not None and linked != device.id else None
        if takes_over is not None:
            inherited.add(takes_over)
        plan.targets.append(Target(device, record_id, links.get(device.id), takes_over))

    plan.vanished = [
        link.record_id
        for device_id, link in links.items()
        if device_id not in listed and device_id not in inherited
    ]
    return plan


def _shared_values(devices: list[Device], unique: dict[int, str]) -> dict[str, str]:
    """device id -> why, for devices that share a value of a unique field other than the
    identifier: the database would keep the first one, and that would be a guess."""
    conflicts: dict[str, str] = {}
    for field_id, label in unique.items():
        holders: dict[str, list[Device]] = defaultdict(list)
        for device in devices:
            value = device.values.get(field_id)
            if value is not None:
                holders[encode(value) or ""].append(device)
        for value, group in holders.items():
            if len(group) > 1:
                names = ", ".join(str(device) for device in group)
                reason = f"its {label} {_shown(value)} is shared by {len(group)} devices: {names}"
                for device in group:
                    conflicts.setdefault(device.id, reason)
    return conflicts


def _shown(key: str | None) -> str:
    return repr(text(decode(key))) if key is not None else "(unknown)"
