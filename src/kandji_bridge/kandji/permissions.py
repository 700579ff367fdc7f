"""The Kandji API token permissions kandji-bridge uses, and how a user grants each one."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Permission:
    key: str  # our short name, as in `simulate --token VALUE:audit,devices,details`
    label: str  # the name of the checkbox in Kandji's token settings
    method: str
    path: str

    @property
    def endpoint(self) -> str:
        return f"{self.method} {self.path}"

    def how_to_grant(self) -> str:
        return (
            f'In Kandji open Settings → Access, open the token, enable "{self.label}" '
            f"({self.endpoint}) and save."
        )


AUDIT_EVENTS = Permission("audit", "List audit events", "GET", "/api/v1/audit/events")
DEVICE_LIST = Permission("devices", "Device list", "GET", "/api/v1/devices")
DEVICE_DETAILS = Permission(
    "details", "Device details", "GET", "/api/v1/devices/{device_id}/details"
)

# Names for the people behind audit events' actor ids. Kandji's OpenAPI file does not document
# this endpoint; Elastic's Kandji (Iru) integration reads it, paged with `next`, and carries on
# without names when the token may not (403). The label follows Kandji's "List ..." wording.
ADMINS = Permission("admins", "List admins", "GET", "/api/v1/admins")

ALL = (AUDIT_EVENTS, DEVICE_LIST, DEVICE_DETAILS)  # what the two pipelines need: `verify` checks
OPTIONAL = (ADMINS,)  # what makes the logs easier to read; nothing fails without it
BY_KEY = {p.key: p for p in ALL + OPTIONAL}
