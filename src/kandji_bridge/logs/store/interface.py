"""What the rest of the product sees of the log store: the LogStore interface both engines
implement, the records it takes and returns, and its errors."""

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from kandji_bridge.errors import BridgeError
from kandji_bridge.logs.normalize import Row
from kandji_bridge.logs.store.damage import DamagedPart
from kandji_bridge.logs.user_queries import QueryLimits


class LogStoreError(BridgeError):
    """The log store cannot be opened or refused an operation."""


class StoreBusy(LogStoreError):
    """Another process owns the embedded store."""


class StoreWriteError(LogStoreError):
    """An insert the engine did not store (a full disk, a read-only folder, a refusal)."""


@dataclass(frozen=True)
class Checkpoint:
    """Where a source's stored history ends: the latest eventTime and the events stored at it."""

    event_time: datetime
    event_ids: frozenset[str]


@dataclass(frozen=True)
class QuarantineEntry:
    """An event that could not be normalized, kept whole with the reason."""

    source_id: str
    reason: str
    raw_log: str
    kandji_event_id: str = ""
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]


Select = Callable[[str], QueryResult]  # runs one statement on a session, gives its result


class LogStore(Protocol):
    """What the collector, the CLI and the service use; both engines implement it."""

    display_url: str
    # The ClickHouse cluster the schema is made ON CLUSTER (None: one server, or chDB), and the
    # database it is made in: what the detections table needs to be made the same way.
    cluster: str | None
    database: str

    def ensure_schema(self) -> None: ...

    def insert(self, rows: Sequence[Row]) -> int: ...

    def insert_quarantine(self, entries: Sequence[QuarantineEntry]) -> int: ...

    def existing_event_ids(
        self,
        source_id: str,
        event_ids: Iterable[str],
        between: tuple[datetime, datetime] | None = None,
    ) -> set[str]: ...

    def latest_checkpoint(
        self, source_id: str, not_after: datetime | None = None
    ) -> Checkpoint | None: ...

    def damaged_parts(self) -> list[DamagedPart]: ...

    def set_retention(self, source_id: str, days: int) -> None: ...

    def count(self, source_id: str | None = None) -> int: ...

    def quarantine_count(self, source_id: str | None = None) -> int: ...

    def delete_source_events(self, source_id: str) -> int: ...

    def quarantined(
        self, source_id: str | None = None, limit: int = 100
    ) -> list[QuarantineEntry]: ...

    def query(
        self, sql: str, *, read_only: bool = True, params: Mapping[str, str] | None = None
    ) -> QueryResult: ...

    @property
    def query_limits(self) -> QueryLimits: ...

    def user_session(self, user: str) -> AbstractContextManager[Select]: ...

    def cancel_user_queries(self) -> None: ...

    def user_queries_running(self) -> int: ...

    def close(self) -> None: ...

    def __enter__(self) -> "LogStore": ...

    def __exit__(self, *exc: object) -> None: ...
