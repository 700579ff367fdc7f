"""The state database's tables. Each later feature adds its own tables with its own migration."""

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints, so later migrations can drop or alter them (SQLite batch mode needs names).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL keeps `timestamptz`; SQLite has no time zones and returns naive values, so the UTC
    wall time is stored and UTC is attached again on the way out. Naive input is refused rather
    than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime}


class Workspace(Base):
    """This installation. Exactly one row, written by the first migration.

    Its id is `workspaceID` in every `kandji_logs` row, so it must never change.
    """

    __tablename__ = "workspace"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Source(Base):
    """A Kandji tenant the product reads: its API URL and its (encrypted) token."""

    __tablename__ = "sources"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    api_url: Mapped[str] = mapped_column(String(2048))
    # Fernet ciphertext from kandji_bridge.token_vault; the plain token is never stored.
    token_ciphertext: Mapped[str] = mapped_column(Text)
    poll_interval_seconds: Mapped[int] = mapped_column(default=60)
    retention_days: Mapped[int] = mapped_column(default=730)
    # False for a connection made only to import devices (the Integrations flow): not polled.
    logs_enabled: Mapped[bool] = mapped_column(default=True)
    # The permission keys (kandji/permissions.py) the token had when last saved or verified,
    # comma-separated; None until a check ran. Shown next to each pipeline that uses the source.
    permissions: Mapped[str | None] = mapped_column(String(200), default=None)
    display_name: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# -- Device import (inventory/): collections, their records, mappings, sync runs -------------------


class Collection(Base):
    """An asset collection: typed fields, and the records imported into it."""

    __tablename__ = "collections"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CollectionField(Base):
    __tablename__ = "collection_fields"
    __table_args__ = (UniqueConstraint("collection_id", "label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[str] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]
    label: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(16))  # text, number, boolean, date, datetime, list
    is_unique: Mapped[bool] = mapped_column(default=False)
    # The records have sort keys for this field (record_sort_keys), made the first time someone
    # sorts on it: an import writes keys only for fields someone sorts on.
    has_sort_keys: Mapped[bool] = mapped_column(default=False)


class SyncRun(Base):
    """One device import of a mapping: when, what it did, what went wrong, what it cost."""

    __tablename__ = "sync_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    mapping_id: Mapped[str] = mapped_column(
        ForeignKey("mappings.id", ondelete="CASCADE"), index=True
    )
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="running")  # succeeded, failed
    created: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    conflicts: Mapped[int] = mapped_column(default=0)
    vanished: Mapped[int] = mapped_column(default=0)  # records whose device left Kandji
    api_requests: Mapped[int] = mapped_column(default=0)
    details_requests: Mapped[int] = mapped_column(default=0)
    errors: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of sentences


class Record(Base):
    """One asset of a collection. Its values are one JSON object keyed by field id: one row per
    record keeps a 100,000-device import fast however many fields the collection has."""

    __tablename__ = "records"
    # A collection's records in creation order with their status, from the index alone: the
    # records table's unsorted pages and its counts.
    __table_args__ = (Index("ix_records_collection_id_id_status", "collection_id", "id", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    collection_id: Mapped[str] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="active")  # removed, archived
    data: Mapped[str] = mapped_column(Text, default="{}")  # {"field id": value}; empty: absent
    # The values in lower case for the records table's search (assets/keys.py).
    search: Mapped[str] = mapped_column(Text, default="")
    created_run_id: Mapped[str | None] = mapped_column(
        ForeignKey("sync_runs.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RecordKey(Base):
    """The value of each unique field of each record, so the database itself refuses a second
    record with the same value in a field marked unique."""

    __tablename__ = "record_keys"

    field_id: Mapped[int] = mapped_column(
        ForeignKey("collection_fields.id", ondelete="CASCADE"), primary_key=True
    )
    value: Mapped[str] = mapped_column(Text, primary_key=True)  # JSON, as in records.data
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"), index=True)


class RecordSortKey(Base):
    """Each record's sort key for each field someone sorts on (`has_sort_keys`; keys.py), with
    the record's status: a page sorted by the field is a walk along this primary key, index only.

    No foreign keys: their checks would cost every row an import writes (the import's rate), and
    nothing deletes a record or a field (a collection keeps its records)."""

    __tablename__ = "record_sort_keys"
    __table_args__ = (
        PrimaryKeyConstraint("field_id", "key", "record_id", postgresql_include=["status"]),
        {"sqlite_with_rowid": False},
    )

    field_id: Mapped[int]
    # Byte order on PostgreSQL, as SQLite compares text.
    key: Mapped[str] = mapped_column(Text().with_variant(Text(collation="C"), "postgresql"))
    record_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(16))


class RecordChange(Base):
    """A record's history: one row per field a sync changed (field NULL: the record's status)."""

    __tablename__ = "record_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"), index=True)
    sync_run_id: Mapped[str | None] = mapped_column(
        ForeignKey("sync_runs.id", ondelete="SET NULL"), index=True
    )
    field_id: Mapped[int | None] = mapped_column(
        ForeignKey("collection_fields.id", ondelete="CASCADE")
    )
    old_value: Mapped[str | None] = mapped_column(Text)  # JSON; NULL: empty
    new_value: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Mapping(Base):
    """Kandji devices of a source into a collection, matched on a unique identifier."""

    __tablename__ = "mappings"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # RESTRICT: a source or collection a mapping uses cannot vanish from under it.
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id", ondelete="RESTRICT"))
    entity: Mapped[str] = mapped_column(String(16), default="devices")
    collection_id: Mapped[str] = mapped_column(
        ForeignKey("collections.id", ondelete="RESTRICT"), index=True
    )
    on_removed: Mapped[str] = mapped_column(String(16), default="keep")  # mark, archive
    schedule_minutes: Mapped[int] = mapped_column(default=60)
    enabled: Mapped[bool] = mapped_column(default=True)  # disabled: the scheduler skips it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MappingField(Base):
    """A pair of the mapping: a Kandji field written into a collection field."""

    __tablename__ = "mapping_fields"

    mapping_id: Mapped[str] = mapped_column(
        ForeignKey("mappings.id", ondelete="CASCADE"), primary_key=True
    )
    field_id: Mapped[int] = mapped_column(
        ForeignKey("collection_fields.id", ondelete="CASCADE"), primary_key=True
    )
    kandji_field: Mapped[str] = mapped_column(String(64))
    is_identifier: Mapped[bool] = mapped_column(default=False)
    position: Mapped[int]


class MappedDevice(Base):
    """Which record a mapping filled from which Kandji device.

    One device, one record per mapping, and the other way round: the database refuses a record
    claimed by two devices. `details_check_in` is the device's `last_check_in` when its details
    were last read, so unchanged devices are not asked again.
    """

    __tablename__ = "mapped_devices"
    __table_args__ = (UniqueConstraint("mapping_id", "record_id"),)

    mapping_id: Mapped[str] = mapped_column(
        ForeignKey("mappings.id", ondelete="CASCADE"), primary_key=True
    )
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"), index=True)
    details_check_in: Mapped[str | None] = mapped_column(String(64))


# -- The service (service/, web/): users and their sessions, API tokens, job leases and status ----


class User(Base):
    """A person who may sign in to the web UI and the REST API."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)  # argon2id; the password is never stored
    is_admin: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class WebSession(Base):
    """A signed-in browser. The cookie holds a random secret; only its SHA-256 is kept here."""

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class ApiToken(Base):
    """A token for scripts calling the REST API. Only its SHA-256 is kept; it is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists so a token can be told apart
    # "read" (pages, queries, /metrics) or "admin" (also every change); tokens made before scopes
    # existed could do everything, so they stay "admin".
    scope: Mapped[str] = mapped_column(String(16), server_default="admin")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]


class SetupLink(Base):
    """The one-time link the first `serve` prints to create the first admin account."""

    __tablename__ = "setup_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class JobLease(Base):
    """Which process holds a job (a source's polling, a mapping's sync): a `serve`, or a command.

    A holder renews its lease while it lives; a lease past `expires_at` may be taken over, so a
    dead process's jobs move to another one.
    """

    __tablename__ = "job_leases"

    job: Mapped[str] = mapped_column(String(100), primary_key=True)  # "source:ID", "mapping:ID"
    holder: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime]
    # Where the holder runs, so a process on the same host can see it died and take over at once.
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None]
    pid_started: Mapped[int | None] = mapped_column(BigInteger)  # start time, in clock ticks


class JobStatus(Base):
    """The last runs of a scheduled job, for the UI and /metrics whichever process ran them."""

    __tablename__ = "job_status"

    job: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)  # one sentence; NULL after a success
    runs: Mapped[int] = mapped_column(default=0)
    failures: Mapped[int] = mapped_column(default=0)


# -- Actor names (logs/actors.py): who is behind an audit event's actor_id -------------------------


class KandjiAdmin(Base):
    """An admin of a source's tenant, as `GET /api/v1/admins` lists it: the person behind a
    `user` actor id."""

    __tablename__ = "kandji_admins"

    source_id: Mapped[str] = mapped_column(
        ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True
    )
    admin_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), default="")
    first_name: Mapped[str] = mapped_column(String(255), default="")
    last_name: Mapped[str] = mapped_column(String(255), default="")
    role: Mapped[str] = mapped_column(String(64), default="")
    is_active: Mapped[bool] = mapped_column(default=True)


class KandjiAdminsRead(Base):
    """When a source's admins were last read, and whether its token may read them: a 403 is
    remembered, so the list is not asked for again on every poll."""

    __tablename__ = "kandji_admins_reads"

    source_id: Mapped[str] = mapped_column(
        ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True
    )
    read_at: Mapped[datetime]
    denied: Mapped[bool] = mapped_column(default=False)  # 403: the token lacks "List admins"


# -- Detections (detections/): notification channels, the outbox of deliveries, windows run ------


class NotificationChannel(Base):
    """Where alerts go: a webhook, a Slack incoming webhook or an email address list (SMTP).

    `settings` is JSON of what may be shown (an SMTP host, the recipients); `secret_ciphertext`
    is Fernet ciphertext (kandji_bridge.token_vault) of JSON of what may not: a webhook's signing
    secret, a Slack webhook URL (the URL is the credential), SMTP credentials.
    """

    __tablename__ = "notification_channels"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)  # a rule's notificationNames
    kind: Mapped[str] = mapped_column(String(16))  # webhook, slack, email
    settings: Mapped[str] = mapped_column(Text)
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AlertDelivery(Base):
    """The outbox: one alert to one channel, enqueued once, sent until the receiver accepts it.

    A delivery being sent is claimed by moving `next_attempt_at` past the send's time limit, so a
    process that dies mid-send leaves it due again later; the receiver drops the repeat by its
    idempotency key (the alert id).
    """

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "channel_id"),
        Index("ix_alert_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    alert_id: Mapped[str] = mapped_column(String(64))  # the detections table's id of the alert
    channel_id: Mapped[str] = mapped_column(
        ForeignKey("notification_channels.id", ondelete="CASCADE"), index=True
    )
    payload: Mapped[str] = mapped_column(Text)  # the JSON body, as documented
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, sent, failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)  # one sentence; names the channel
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class DetectionWindow(Base):
    """Where each rule's windows have reached: the end of the last window it ran."""

    __tablename__ = "detection_windows"

    detection: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_window_to: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DetectionSwitch(Base):
    """An enabled rule (a rule without a row does not run): in the state DB, so every `serve`
    on it agrees on which rules run."""

    __tablename__ = "detection_switches"

    detection: Mapped[str] = mapped_column(String(128), primary_key=True)
    notify: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of extra channel names
    schedule: Mapped[str | None] = mapped_column(String(64))  # instead of the rule's (the demo's)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LoginFailure(Base):
    """A failed sign-in counted by the sign-in throttle (web/auth/throttle.py), in the state DB so
    every `serve` on it counts the same. `key` is the SHA-256 of what is counted (an address, or
    an address and a username), never the username typed."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(index=True)
