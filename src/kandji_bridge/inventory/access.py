"""Before a mapping is saved: can its source's token read what the mapping needs?"""

import contextlib

from kandji_bridge.kandji.client import KandjiClient
from kandji_bridge.kandji.errors import DeviceNotFoundError
from kandji_bridge.verify import NO_SUCH_DEVICE


async def check_device_access(
    api_url: str, token: str, details: bool, allowed_hosts: frozenset[str]
) -> None:
    """One device-list call, and one details call if `details`: two requests, both GET.
    `api_url` is checked against `allowed_hosts` (the Settings').

    Raises the client's KandjiError (PermissionDeniedError names the missing permission).
    """
    async with KandjiClient(api_url, token, allowed_hosts=allowed_hosts, max_tries=3) as client:
        device_id = NO_SUCH_DEVICE
        async for page in client.iter_device_pages(limit=1):
            if page:
                device_id = str(page[0]["device_id"])
            break
        if details:
            with contextlib.suppress(DeviceNotFoundError):
                await client.get_device_details(device_id)
