"""How far one run may go against Kandji, so a misbehaving server can never keep it going forever.

A year's backfill of a busy tenant is about 10,000 audit pages (500 events each), and Kandji
allows 10,000 requests an hour per tenant, shared with every other integration: such a backfill
takes one to a few hours. Cycles are caught by repetition (a cursor or a page read before), not by
these ceilings; the ceilings only stop a chain of ever-new pages, at twice what that year needs.
Every run resumes where the last one stopped, so a ceiling reached costs time, never data.
"""

from dataclasses import dataclass

RESPONSE_SECONDS = 60.0  # one response, headers and body, however slowly it trickles in
RUN_SECONDS = 6 * 3600.0  # a collection pass or a device import, rate-limit waits included
MAX_AUDIT_PAGES = 20_000  # 10 million events: twice a busy tenant's year
MAX_DEVICE_PAGES = 1_000  # 300,000 devices: several times the largest fleets

ENV_RESPONSE_SECONDS = "KANDJI_BRIDGE_RESPONSE_SECONDS"
ENV_RUN_SECONDS = "KANDJI_BRIDGE_RUN_SECONDS"
ENV_MAX_AUDIT_PAGES = "KANDJI_BRIDGE_MAX_AUDIT_PAGES"
ENV_MAX_DEVICE_PAGES = "KANDJI_BRIDGE_MAX_DEVICE_PAGES"


@dataclass(frozen=True)
class KandjiLimits:
    response_seconds: float = RESPONSE_SECONDS
    run_seconds: float = RUN_SECONDS
    max_audit_pages: int = MAX_AUDIT_PAGES
    max_device_pages: int = MAX_DEVICE_PAGES
