"""The REST API's bodies for collections and their records (OpenAPI at /api/docs)."""

from datetime import datetime

from pydantic import BaseModel, Field

from kandji_bridge.assets.browse import STATUS_LABEL
from kandji_bridge.assets.convert import Value


class FieldIn(BaseModel):
    label: str = Field(description="The field's label, e.g. Serial.")
    type: str = Field(description="text, number, boolean, date, datetime or list.")
    unique: bool = Field(False, description="No two records may hold the same value.")


class CollectionIn(BaseModel):
    name: str = Field(description="The collection's name, e.g. ITAM.")
    fields: list[FieldIn]


class CollectionPatch(BaseModel):
    """A collection's edit; what is left out stays as it is."""

    rename: str | None = Field(None, description="A new name for the collection.")
    add_fields: list[FieldIn] = Field([], description="New fields, empty in every record.")
    remove_fields: list[str] = Field([], description="Labels of fields to remove, with values.")
    not_unique: list[str] = Field([], description="Unique fields whose values may repeat.")


class FieldOut(BaseModel):
    label: str
    type: str
    unique: bool


class CollectionOut(BaseModel):
    name: str
    fields: list[FieldOut]
    records: dict[str, int] = Field(description="Records by status: active, removed, archived.")
    mappings: list[str] = Field(description="The mappings that import into the collection.")
    created_at: datetime


class RecordOut(BaseModel):
    id: str
    status: str
    values: dict[str, Value] = Field(description="Field label -> value; null when empty.")
    created_at: datetime
    updated_at: datetime


class RecordPageOut(BaseModel):
    records: list[RecordOut]
    total: int = Field(description="Records matching the search and status, on every page.")
    page: int
    pages: int
    page_size: int


class ChangeOut(BaseModel):
    field: str = Field(description=f"The field's label, or {STATUS_LABEL!r}.")
    old: Value
    new: Value
    sync_run_id: str | None
    mapping: str | None
    changed_at: datetime


class DeviceEventOut(BaseModel):
    id: str
    kandji_event_id: str
    event_time: str
    event_name: str
    action: str
    actor_type: str
    actor: str


class RecordDetailOut(RecordOut):
    device_id: str | None = Field(description="The Kandji device the record was imported from.")
    mapping: str | None
    history: list[ChangeOut] = Field(description="Newest first.")
    history_total: int
    device_events: list[DeviceEventOut] = Field(
        description="Audit events whose target is the device, newest first."
    )
    device_events_error: str = ""
