"""Transform, as the collector runs it (source → transform → sink): a page of events in, rows and
quarantine out; `normalize` makes the rows, `enrich` fills their IP and rule columns."""

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
    """Normalize and enrich each event; one that cannot be normalized is quarantined, not lost.

    Any other exception raised on one event quarantines that event too, with what it was: an
    event nobody foresaw must not fail the page it came in, pass after pass.
    """
    out = Transformed()
    for event in events:
        try:
            row = normalize(event.data, event.raw, ctx)
            if enricher is not None:
                enricher.enrich(row, event.data)
        except NormalizeError as exc:
            out.quarantine.append(_entry(ctx, str(exc), event.raw, exc.event_id))
            continue
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"[:200]
            reason = f"kandji-bridge could not normalize the event ({detail})"
            out.quarantine.append(_entry(ctx, reason, _storable(event.raw), ""))
            continue
        out.rows.append(row)
    return out


def _entry(ctx: NormalizeContext, reason: str, raw: str, event_id: str) -> QuarantineEntry:
    return QuarantineEntry(
        source_id=ctx.source_id,
        reason=reason,
        raw_log=raw,
        kandji_event_id=event_id,
        received_at=ctx.received_at,
    )


def _storable(raw: str | bytes) -> str:
    """The raw text as the store can hold it: bytes decoded, lone surrogates escaped."""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "backslashreplace")
    return raw.encode("utf-8", "backslashreplace").decode("utf-8")
