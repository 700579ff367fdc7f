"""The collections REST API: list, create, show, edit and delete collections, page through
records, a record."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from kandji_bridge.assets import browse
from kandji_bridge.assets.collections import CollectionInfo
from kandji_bridge.assets.editing import CollectionEdit
from kandji_bridge.operations import collections as operation
from kandji_bridge.operations.collections import CollectionOverview
from kandji_bridge.web.auth import CurrentUser, runtime_of
from kandji_bridge.web.collections.schemas import (
    ChangeOut,
    CollectionIn,
    CollectionOut,
    CollectionPatch,
    DeviceEventOut,
    FieldOut,
    RecordDetailOut,
    RecordOut,
    RecordPageOut,
)

router = APIRouter(tags=["collections"])


def _collection_out(summary: CollectionOverview) -> CollectionOut:
    collection = summary.collection
    return CollectionOut(
        name=collection.name,
        fields=[
            FieldOut(label=f.label, type=f.type.value, unique=f.unique) for f in collection.fields
        ],
        records=summary.records,
        mappings=summary.mappings,
        created_at=collection.created_at,
    )


def _record_out(collection: CollectionInfo, row: browse.RecordRow) -> RecordOut:
    return RecordOut(
        id=row.id,
        status=row.status,
        values={field.label: row.values.get(field.id) for field in collection.fields},
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get("/collections", summary="List collections")
def api_list(request: Request, user: CurrentUser) -> list[CollectionOut]:
    """Every collection with its fields, record counts and mappings."""
    return [_collection_out(s) for s in operation.list_collections(runtime_of(request).state)]


@router.post("/collections", summary="Create a collection", status_code=201)
def api_create(request: Request, user: CurrentUser, body: CollectionIn) -> CollectionOut:
    """Create a collection; 409 if the name is taken, 400 for a field that cannot be used."""
    specs = [operation.field_spec(field.label, field.type, field.unique) for field in body.fields]
    return _collection_out(operation.create_collection(runtime_of(request).state, body.name, specs))


@router.get("/collections/{name}", summary="Get a collection")
def api_get(request: Request, user: CurrentUser, name: str) -> CollectionOut:
    return _collection_out(operation.show_collection(runtime_of(request).state, name))


@router.patch("/collections/{name}", summary="Edit a collection")
def api_update(
    request: Request, user: CurrentUser, name: str, body: CollectionPatch
) -> CollectionOut:
    """Rename, add or remove fields; 400 (nothing changed) for an edit that would break a
    mapping, naming it."""
    edit = CollectionEdit(
        rename=body.rename,
        add_fields=tuple(operation.field_spec(f.label, f.type, f.unique) for f in body.add_fields),
        remove_fields=tuple(body.remove_fields),
        not_unique=tuple(body.not_unique),
    )
    return _collection_out(operation.update_collection(runtime_of(request).state, name, edit))


@router.delete("/collections/{name}", summary="Remove a collection", status_code=204)
def api_delete(request: Request, user: CurrentUser, name: str) -> Response:
    """Delete the collection with its records; 400 while a mapping imports into it."""
    operation.remove_collection(runtime_of(request).state, name)
    return Response(status_code=204)


@router.get("/collections/{name}/records", summary="List a collection's records")
def api_records(
    request: Request,
    user: CurrentUser,
    name: str,
    search: Annotated[str, Query(description="Text inside any value, any case.")] = "",
    sort: Annotated[str, Query(description="A field label to sort by.")] = "",
    desc: Annotated[bool, Query(description="Sort in descending order.")] = False,
    status: Annotated[
        str, Query(description="active, removed, archived or all; none: active and removed.")
    ] = "",
    page: int = 1,
    page_size: int = browse.DEFAULT_PAGE_SIZE,
) -> RecordPageOut:
    """One page of the collection's records; 400 for an unknown sort field or status."""
    result = operation.browse_records(
        runtime_of(request).state,
        name,
        search=search,
        sort_field=sort or None,
        descending=desc,
        status=status,
        page=page,
        page_size=page_size,
    )
    return RecordPageOut(
        records=[_record_out(result.collection, row) for row in result.rows],
        total=result.total,
        page=result.page,
        pages=result.pages,
        page_size=result.page_size,
    )


@router.get("/collections/{name}/records/{record_id}", summary="Get a record")
def api_record(request: Request, user: CurrentUser, name: str, record_id: str) -> RecordDetailOut:
    """A record with its change history and the audit events that targeted its device."""
    runtime = runtime_of(request)
    imported = operation.show_record(runtime.state, runtime.store, name, record_id)
    record, timeline = imported.record, imported.timeline
    return RecordDetailOut(
        id=record.id,
        status=record.status,
        values=record.values,
        created_at=record.created_at,
        updated_at=record.updated_at,
        device_id=imported.device_id,
        mapping=imported.mapping,
        history=[ChangeOut(**vars(entry)) for entry in imported.history],
        history_total=record.history_total,
        device_events=[DeviceEventOut(**vars(event)) for event in timeline.events]
        if timeline
        else [],
        device_events_error=timeline.error if timeline else "",
    )
