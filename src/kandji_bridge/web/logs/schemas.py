"""The logs API's parameters and bodies, and the explorer's parameters the pages share."""

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from kandji_bridge.logs.search import SearchQuery

PAGE_SIZE = 50
RANGES = {
    "1h": ("Last 1 hour", timedelta(hours=1)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
}
DEFAULT_RANGE = "24h"
# URL parameter -> SearchQuery field; the parameter names are the column names users know.
FILTER_PARAMS = {
    "eventName": "event_name",
    "action": "action",
    "actorType": "actor_type",
    "targetType": "target_type",
    "sourceID": "source_id",
    "targetId": "target_id",
    "actorId": "actor_id",
}
SELECT_FILTERS = (
    ("eventName", "eventName"),
    ("action", "action"),
    ("actorType", "actorType"),
    ("targetType", "targetType"),
)


class EventOut(BaseModel):
    id: str
    eventTime: datetime
    eventName: str
    action: str
    actorType: str
    actor: str = Field(description="The actor's email, else name, else id, else type.")
    targetType: str
    targetId: str
    target: str = Field(description="The target's name when the event carries one, else its id.")
    srcIP: str
    srcASCountryCode: str
    sourceID: str
    source: str = Field(description="The source's name, or 'removed source'.")
    actorName: str = Field(description="A person's name, a token's label, else as `actor`.")
    actorKind: Literal["person", "token", "unknown"]
    viewed: str | None = Field(description="What a `view` event showed, in words.")


class EventsPage(BaseModel):
    events: list[EventOut]
    offset: int
    limit: int
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page.")


class Bucket(BaseModel):
    start: datetime
    count: int


class HistogramOut(BaseModel):
    bucket_seconds: int
    total: int
    buckets: list[Bucket]


class AssetRecordOut(BaseModel):
    collection: str
    mapping: str
    record_id: str
    url: str


class EventDetail(BaseModel):
    columns: dict[str, Any] = Field(description="Every column of kandji_logs, by name.")
    asset_records: list[AssetRecordOut] = Field(
        description="For a device target: its records in the collections a mapping fills."
    )


class QueryIn(BaseModel):
    sql: str = Field(description="One read-only statement (SELECT, WITH, SHOW, DESCRIBE, ...).")
    limit: int | None = Field(
        default=1000, ge=1, description="At most this many rows; null for the whole result."
    )
    format: Literal["json", "csv"] = "json"


class QueryOut(BaseModel):
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    truncated: bool = Field(description="True when the result had more rows than `limit`.")


class SearchParams(BaseModel):
    """The explorer's filters as query parameters (default range: the last 24 hours)."""

    start: datetime | None = Field(
        None, alias="from", description="Range start (ISO 8601, with its offset)."
    )
    end: datetime | None = Field(
        None, alias="to", description="Range end (ISO 8601, with its offset); now."
    )
    q: str = Field("", description="Case-insensitive text to find in rawLog.")
    eventName: str = ""
    action: str = ""
    actorType: str = ""
    targetType: str = ""
    sourceID: str = ""
    targetId: str = ""
    actorId: str = ""

    @field_validator("start", "end", mode="before")
    @classmethod
    def _iso_date_time(cls, value: object) -> object:
        """Only what the schema says: an ISO 8601 date and time with its UTC offset, not the
        Unix timestamps or bare dates pydantic would otherwise take."""
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None or "T" not in value.upper():
            raise ValueError(
                "give an ISO 8601 date and time with its offset, like 2025-03-01T09:30:00Z"
            )
        return parsed

    def query(self) -> SearchQuery:
        end = self.end or datetime.now(UTC).replace(microsecond=0)
        start = self.start or end - RANGES[DEFAULT_RANGE][1]
        filters = {field: getattr(self, param) for param, field in FILTER_PARAMS.items()}
        return SearchQuery(start=start, end=end, text=self.q, **filters)


class DamagedPartOut(BaseModel):
    table: str = Field(description="kandji_logs or kandji_logs_quarantine.")
    name: str = Field(description="The part's folder name, with the engine's reason prefix.")
    reason: str = Field(description="Why the engine moved it aside: broken-on-start, ...")
    path: str = Field(description="Where the part was moved.")
    partition: str = Field(description="kandji_logs: the month of its events, YYYYMM.")
    rows: int | None = Field(description="Rows in the part, when the store can read its count.")


class StorageOut(BaseModel):
    damaged_parts: list[DamagedPartOut]
    notice: str | None = Field(description="What happened and how to recover; null when healthy.")
