"""The transform stage as the collector runs it: a page of events in, rows and quarantine out."""

from collections.abc import Iterable
from dataclasses import dataclass, field

from kandji_bridge.logs.enrich import Enricher
from kandji_bridge.logs.normalize import (
    AuditEventLike,
    NormalizeContext,
    NormalizeError,
    Row,
    normalize,
)
from kandji_bridge.logs.store import QuarantineEntry


@dataclass
class Transformed:
    rows: list[Row] = field(default_factory=list)
    quarantine: list[QuarantineEntry] = field(default_factory=list)


def transform(
    events: Iterable[AuditEventLike], ctx: NormalizeContext, enricher: Enricher | None = None
) -> Transformed:
    """Normalize and enrich each event; one that cannot be normalized is quarantined, not lost."""
    out = Transformed()
    for event in events:
        try:
            row = normalize(event.data, event.raw, ctx)
        except NormalizeError as exc:
            out.quarantine.append(
                QuarantineEntry(
                    source_id=ctx.source_id,
                    reason=str(exc),
                    raw_log=event.raw,
                    kandji_event_id=exc.event_id,
                    received_at=ctx.received_at,
                )
            )
            continue
        if enricher is not None:
            enricher.enrich(row, event.data)
        out.rows.append(row)
    return out
