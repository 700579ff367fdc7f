"""Verify a Kandji URL and token: the URL, the token, and each permission a pipeline needs.

The one check of a token's permissions: `verify` (the CLI, the Sources pages and API), the
device import's connection test (`operations/connection.py`) and the check before a mapping is
saved (`check_device_access`) all probe through `verify`, each asking for the permissions it needs.

The checks run in order, and a failure that makes the later ones meaningless (a URL that does not
answer, a token Kandji refuses) marks them "not checked" rather than failing them again.
"""

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from kandji_bridge.kandji import permissions
from kandji_bridge.kandji.client import KandjiClient
from kandji_bridge.kandji.errors import (
    AuthenticationError,
    ConnectError,
    DeviceNotFoundError,
    DNSError,
    EndpointNotFoundError,
    InvalidURLError,
    KandjiError,
    KandjiTimeout,
    PermissionDeniedError,
    RedirectError,
    TLSError,
)
from kandji_bridge.kandji.limits import KandjiLimits
from kandji_bridge.kandji.permissions import Permission
from kandji_bridge.kandji.urls import ApiUrl, normalize_api_url

# Kandji checks a token's permission before it looks the device up, so a details call for a
# device that does not exist still tells whether the permission is there (404, not 403).
NO_SUCH_DEVICE = "00000000-0000-0000-0000-000000000000"

URL_ERRORS = (
    InvalidURLError,
    DNSError,
    TLSError,
    ConnectError,
    KandjiTimeout,
    EndpointNotFoundError,
    RedirectError,
)

URL = "URL"
TOKEN = "token"  # noqa: S105 (the check's name)


@dataclass(frozen=True)
class Check:
    name: str  # URL, token, or a permission's label
    ok: bool | None  # None: not checked, because an earlier check made it meaningless
    detail: str
    # What Kandji answered when the check failed, for callers that raise it or explain it.
    error: KandjiError | None = field(default=None, repr=False, compare=False)
    optional: bool = False  # a permission nothing needs (kandji/permissions.py OPTIONAL)


@dataclass(frozen=True)
class VerifyReport:
    api_url: ApiUrl | None
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks if not check.optional)

    def granted(self) -> tuple[str, ...]:
        """The keys of the permissions the token was found to have, to store with a source."""
        labels = {check.name for check in self.checks if check.ok}
        return tuple(p.key for p in permissions.ALL + permissions.OPTIONAL if p.label in labels)

    def granted_since(self, recorded: tuple[str, ...] | None) -> tuple[str, ...]:
        """`recorded` (the permissions stored with a source) with what this report found: a
        permission it got Kandji's answer on is granted or not as found (a failure other than
        a refusal proves nothing); the others stay as recorded."""
        answered = {
            check.name
            for check in self.checks
            if check.ok or isinstance(check.error, PermissionDeniedError)
        }
        found = set(self.granted())
        return tuple(
            p.key
            for p in permissions.ALL + permissions.OPTIONAL
            if p.key in found or (p.label not in answered and p.key in (recorded or ()))
        )

    def check(self, name: str) -> Check:
        return next(check for check in self.checks if check.name == name)


def _not_checked(names: tuple[str, ...], why: str) -> list[Check]:
    return [Check(name, None, f"not checked: {why}") for name in names]


async def verify(
    url: str,
    token: str,
    allowed_hosts: frozenset[str],
    limits: KandjiLimits | None = None,
    wanted: tuple[Permission, ...] = permissions.ALL,
    optional: tuple[Permission, ...] = (),
) -> VerifyReport:
    """Check `url`, `token` and each permission of `wanted`, in that order, then each of
    `optional`, whose absence fails nothing. Raises only InvalidTokenError (a token no Kandji
    token can be); every other failure is a Check."""
    try:
        api_url = normalize_api_url(url, allowed_hosts)
    except InvalidURLError as exc:
        return VerifyReport(
            None,
            [
                Check(URL, False, str(exc), exc),
                *_not_checked((TOKEN, *(p.label for p in wanted)), "the URL is not usable"),
            ],
        )

    async with KandjiClient(api_url, token, max_tries=3, limits=limits) as client:
        device_ids: list[str] = []

        async def audit_events() -> None:
            async for _ in client.iter_audit_pages(limit=1):
                break

        async def device_list() -> None:
            async for page in client.iter_device_pages(limit=1):
                device_ids.extend(str(device.get("device_id", "")) for device in page)
                break

        async def device_details() -> None:
            with contextlib.suppress(DeviceNotFoundError):
                await client.get_device_details(device_ids[0] if device_ids else NO_SUCH_DEVICE)

        async def admins() -> None:
            async for _ in client.iter_admins(limit=1):
                break

        probe_of: dict[Permission, Callable[[], Awaitable[None]]] = {
            permissions.AUDIT_EVENTS: audit_events,
            permissions.DEVICE_LIST: device_list,
            permissions.DEVICE_DETAILS: device_details,
            permissions.ADMINS: admins,
        }
        url_detail = api_url.base_url + (f" ({api_url.note})" if api_url.note else "")
        results: list[Check] = []
        token_accepted = False
        for index, permission in enumerate(wanted):
            later = tuple(p.label for p in wanted[index:])
            try:
                await probe_of[permission]()
                results.append(Check(permission.label, True, f"{permission.endpoint} allowed"))
                token_accepted = True
            except PermissionDeniedError as exc:
                results.append(Check(permission.label, False, str(exc), exc))
                token_accepted = True
            except URL_ERRORS as exc:
                return VerifyReport(
                    api_url,
                    [
                        Check(URL, False, str(exc), exc),
                        *_not_checked((TOKEN, *later), "Kandji did not answer"),
                    ],
                )
            except AuthenticationError as exc:
                return VerifyReport(
                    api_url,
                    [
                        Check(URL, True, url_detail),
                        Check(TOKEN, False, str(exc), exc),
                        *_not_checked(later, "Kandji refused the token"),
                    ],
                )
            except KandjiError as exc:
                results.append(Check(permission.label, False, str(exc), exc))
        token_check = (
            Check(TOKEN, True, "Kandji accepted the token")
            if token_accepted
            else Check(TOKEN, None, "not checked: Kandji answered every check with an error")
        )
        if token_accepted:
            results.extend([await _optional_check(permission, probe_of) for permission in optional])
        return VerifyReport(api_url, [Check(URL, True, url_detail), token_check, *results])


# What each optional permission adds, as verify says it.
ADDS = {permissions.ADMINS.key: "audit log actors show as admins' names instead of ids"}


async def _optional_check(
    permission: Permission, probe_of: dict[Permission, Callable[[], Awaitable[None]]]
) -> Check:
    """An optional permission: allowed, or not granted (never a failure)."""
    adds = ADDS[permission.key]
    try:
        await probe_of[permission]()
    except PermissionDeniedError as exc:
        return Check(
            permission.label,
            None,
            f"optional, not granted: with it {adds}. {permission.how_to_grant()}",
            exc,
            optional=True,
        )
    except KandjiError as exc:
        return Check(permission.label, None, f"optional, not checked: {exc}", exc, optional=True)
    return Check(
        permission.label, True, f"{permission.endpoint} allowed (optional): {adds}", optional=True
    )


async def device_access(
    api_url: str, token: str, details: bool, allowed_hosts: frozenset[str]
) -> VerifyReport:
    """Before a mapping is saved: can its source's token list devices (and read their details,
    if `details`)? Two GET requests at most."""
    wanted = (
        (permissions.DEVICE_LIST, permissions.DEVICE_DETAILS)
        if details
        else (permissions.DEVICE_LIST,)
    )
    return await verify(api_url, token, allowed_hosts, wanted=wanted)


def access_refused(report: VerifyReport) -> KandjiError | None:
    """What Kandji answered to the first check that failed (PermissionDeniedError names the
    missing permission); None when every check passed."""
    failed = next((check for check in report.checks if check.ok is False), None)
    return failed.error if failed is not None else None


async def check_device_access(
    api_url: str, token: str, details: bool, allowed_hosts: frozenset[str]
) -> None:
    """`device_access`, raising what Kandji answered (a KandjiError) when a check failed."""
    error = access_refused(await device_access(api_url, token, details, allowed_hosts))
    if error is not None:
        raise error
