"""The Integrations REST API's bodies (OpenAPI at /api/docs), and how much a page or a response
shows of a preview and of a mapping's run history."""

from datetime import datetime

from pydantic import BaseModel, Field

from kandji_bridge.assets.convert import Value
from kandji_bridge.inventory.mappings import DEFAULT_SCHEDULE_MINUTES, OnRemoved

PREVIEW_LIMIT = 20  # devices shown in a dry-run preview
HISTORY_LIMIT = 20  # runs shown on the mapping page


class ConnectionIn(BaseModel):
    base_url: str = Field(description="The Kandji web or API URL: https://yourcompany.kandji.io")
    api_key: str = Field(description="The API token; stored encrypted, never returned.")
    separate: bool = Field(
        False,
        description="Keep the token of a source already reading this URL (refused otherwise when "
        "the key lacks a permission that source uses) and save the key as its own connection.",
    )


class CheckOut(BaseModel):
    name: str
    ok: bool | None
    detail: str


class ConnectionOut(BaseModel):
    connected: bool
    source: str | None = None
    api_url: str | None = None
    logs_enabled: bool | None = None
    updated_at: datetime | None = None
    note: str | None = None  # how the API URL was derived from the web address given
    checks: list[CheckOut] = []


class PairIn(BaseModel):
    kandji: str = Field(description="A Kandji field key (serial_number) or label.")
    field: str = Field(description="The collection field's label.")


class MappingIn(BaseModel):
    name: str
    source: str | None = Field(None, description="Default: the Kandji integration's connection.")
    collection: str
    entity: str = "devices"
    identifier: PairIn
    fields: list[PairIn] = []
    schedule_minutes: int = DEFAULT_SCHEDULE_MINUTES
    on_removed: OnRemoved = OnRemoved.KEEP
    verify: bool = Field(True, description="Check the token's permissions before saving.")


class MappingPatch(BaseModel):
    """A mapping's edit; what is left out stays as it is."""

    fields: list[PairIn] = Field(
        [], description="Pairs to add, or collection fields to fill from another Kandji field."
    )
    remove_fields: list[str] = Field([], description="Collection fields no longer filled.")
    identifier: PairIn | None = Field(None, description="Its collection field must be unique.")
    enabled: bool | None = Field(None, description="A disabled mapping is not synced on schedule.")
    schedule_minutes: int | None = None
    on_removed: OnRemoved | None = None
    verify: bool = Field(True, description="Check the token's permissions a new field needs.")


class MappedFieldOut(BaseModel):
    kandji: str
    kandji_label: str
    recommendation: str
    needs_details: bool
    field: str
    field_type: str
    unique: bool
    is_identifier: bool


class RunOut(BaseModel):
    id: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    created: int
    updated: int
    unchanged: int
    skipped: int
    conflicts: int
    vanished: int
    api_requests: int
    details_requests: int
    errors: list[str]


class MappingOut(BaseModel):
    id: str
    name: str
    source: str
    entity: str
    collection: str
    identifier: PairIn
    fields: list[MappedFieldOut]
    schedule_minutes: int
    on_removed: OnRemoved
    created_at: datetime
    enabled: bool = True
    warnings: list[str] = []
    last_run: RunOut | None = None
    sync: str | None = Field(
        None, description="After create/sync: 'triggered' (the scheduler runs it) or 'ran'."
    )


class FieldChangeOut(BaseModel):
    label: str
    old: Value
    new: Value


class ChangeOut(BaseModel):
    action: str
    record: str
    device: str | None
    fields: list[FieldChangeOut]


class PreviewOut(BaseModel):
    mapping: str
    listed: int
    created: int
    updated: int
    unchanged: int
    skipped: int
    conflicts: int
    vanished: int
    api_requests: int
    details_requests: int
    changes: list[ChangeOut]
    more_changes: int
    problems: list[str]
