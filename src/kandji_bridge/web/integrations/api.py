"""The Integrations REST API: the Kandji connection (/api/integrations/kandji) and mappings
(/api/mappings: create, which activates a mapping and starts its first sync, edit, sync,
preview, runs, remove)."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from kandji_bridge import source_registry as sources
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import BridgeError
from kandji_bridge.inventory import mappings, runs
from kandji_bridge.inventory.fields import (
    KandjiField,
)
from kandji_bridge.inventory.mappings import (
    MappingInfo,
    MappingSpec,
    MappingUpdate,
    Pair,
)
from kandji_bridge.inventory.runs import RunInfo
from kandji_bridge.operations import mappings as mapping_operations
from kandji_bridge.operations.connection import (
    current_connection,
    test_and_save_connection,
)
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.web.auth import CurrentUser, runtime_of
from kandji_bridge.web.integrations.schemas import (
    HISTORY_LIMIT,
    PREVIEW_LIMIT,
    ChangeOut,
    CheckOut,
    ConnectionIn,
    ConnectionOut,
    FieldChangeOut,
    MappedFieldOut,
    MappingIn,
    MappingOut,
    MappingPatch,
    PairIn,
    PreviewOut,
    RunOut,
)

router = APIRouter(tags=["integrations"])


@router.get("/integrations/kandji", summary="Get the Kandji connection")
def get_connection(request: Request, principal: CurrentUser) -> ConnectionOut:
    """The Kandji integration's connection (never its key)."""
    return _connection_out(current_connection(runtime_of(request).state))


@router.put(
    "/integrations/kandji",
    summary="Set the Kandji connection",
    responses={400: {"description": "The test failed; nothing saved."}},
)
def put_connection(request: Request, principal: CurrentUser, body: ConnectionIn) -> Response:
    """Test the Base URL and API Key (GET /devices and GET /device-details) and save them."""
    runtime = runtime_of(request)
    result = test_and_save_connection(
        runtime.settings, runtime.state, body.base_url, body.api_key, separate=body.separate
    )
    checks = [CheckOut(name=c.name, ok=c.ok, detail=c.detail) for c in result.checks]
    if not result.ok:
        detail = next(iter(result.errors.values()), "The connection test failed.")
        return JSONResponse(
            {"detail": detail, "checks": [check.model_dump() for check in checks]},
            status_code=400,
        )
    out = _connection_out(result.source)
    out.note = result.api_url.note if result.api_url else None
    out.checks = checks
    return JSONResponse(out.model_dump(mode="json"))


@router.get("/mappings", summary="List mappings")
def list_mappings_api(request: Request, principal: CurrentUser) -> list[MappingOut]:
    return [
        _mapping_out(summary.mapping, summary.last_run)
        for summary in mappings.list_mappings(runtime_of(request).state)
    ]


@router.post("/mappings", summary="Create a mapping", status_code=201)
def create_mapping_api(request: Request, principal: CurrentUser, body: MappingIn) -> MappingOut:
    """Create a mapping (as `mapping create`), activate it and start its first sync."""
    runtime = runtime_of(request)
    source = body.source
    if not source:
        connection = current_connection(runtime.state)
        if connection is None:
            raise BridgeError(
                "There is no Kandji connection yet; PUT /api/integrations/kandji first."
            )
        source = connection.name
    spec = MappingSpec(
        name=body.name,
        source=source,
        collection=body.collection,
        identifier=Pair(body.identifier.kandji, body.identifier.field),
        pairs=[Pair(pair.kandji, pair.field) for pair in body.fields],
        entity=body.entity,
        on_removed=body.on_removed,
        schedule_minutes=body.schedule_minutes,
    )
    mapping = mapping_operations.activate_mapping(
        runtime.jobs, runtime.state, spec, verify=body.verify
    )
    return _mapping_out(mapping, _last_run(runtime.state, mapping), _sync_word(runtime))


@router.get("/mappings/{name}", summary="Get a mapping")
def get_mapping_api(request: Request, principal: CurrentUser, name: str) -> MappingOut:
    state = runtime_of(request).state
    mapping = mappings.get_mapping(state, name)
    return _mapping_out(mapping, _last_run(state, mapping))


@router.patch("/mappings/{name}", summary="Edit a mapping")
def update_mapping_api(
    request: Request, principal: CurrentUser, name: str, body: MappingPatch
) -> MappingOut:
    """Change a mapping (as `mapping update`); a change that cannot work changes nothing."""
    state = runtime_of(request).state
    update = MappingUpdate(
        fields=tuple(Pair(pair.kandji, pair.field) for pair in body.fields),
        remove_fields=tuple(body.remove_fields),
        identifier=Pair(body.identifier.kandji, body.identifier.field) if body.identifier else None,
        enabled=body.enabled,
        schedule_minutes=body.schedule_minutes,
        on_removed=body.on_removed,
    )
    mapping = mapping_operations.update_mapping(state, name, update, verify=body.verify)
    return _mapping_out(mapping, _last_run(state, mapping))


@router.delete("/mappings/{name}", summary="Remove a mapping", status_code=204)
def delete_mapping_api(request: Request, principal: CurrentUser, name: str) -> Response:
    """Remove the mapping and its sync history; the collection keeps its records."""
    mapping_operations.remove_mapping(runtime_of(request).state, name)
    return Response(status_code=204)


@router.post("/mappings/{name}/sync", summary="Sync a mapping now")
def sync_mapping_api(request: Request, principal: CurrentUser, name: str) -> MappingOut:
    """Sync now: triggered in the background, or run here when no scheduler runs."""
    runtime = runtime_of(request)
    mapping = mappings.get_mapping(runtime.state, name)
    mapping_operations.start_sync(runtime.jobs, mapping)
    return _mapping_out(mapping, _last_run(runtime.state, mapping), _sync_word(runtime))


@router.post("/mappings/{name}/preview", summary="Preview a mapping")
def preview_mapping_api(
    request: Request,
    principal: CurrentUser,
    name: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = PREVIEW_LIMIT,
) -> PreviewOut:
    """A dry run: what a sync would create and update, field by field; nothing is written."""
    report = mapping_operations.preview_mapping(runtime_of(request).state, name)
    return PreviewOut(
        mapping=report.mapping,
        listed=report.listed,
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        skipped=report.skipped,
        conflicts=report.conflicts,
        vanished=report.vanished,
        api_requests=report.api_requests,
        details_requests=report.details_requests,
        changes=[
            ChangeOut(
                action=change.action,
                record=change.record,
                device=change.device,
                fields=[FieldChangeOut(label=f.label, old=f.old, new=f.new) for f in change.fields],
            )
            for change in report.changes[:limit]
        ],
        more_changes=max(0, len(report.changes) - limit),
        problems=[str(problem) for problem in report.problems],
    )


@router.get("/mappings/{name}/runs", summary="List a mapping's sync runs")
def list_runs_api(
    request: Request,
    principal: CurrentUser,
    name: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = HISTORY_LIMIT,
) -> list[RunOut]:
    """The mapping's sync runs, newest first."""
    state = runtime_of(request).state
    mapping = mappings.get_mapping(state, name)
    return [_run_out(run) for run in runs.list_runs(state, mapping.id, limit)]


def _connection_out(source: sources.SourceInfo | None) -> ConnectionOut:
    if source is None:
        return ConnectionOut(connected=False)
    return ConnectionOut(
        connected=True,
        source=source.name,
        api_url=source.api_url,
        logs_enabled=source.logs_enabled,
        updated_at=source.updated_at,
    )


def _last_run(state: StateDB, mapping: MappingInfo) -> RunInfo | None:
    return next(iter(runs.list_runs(state, mapping.id, 1)), None)


def _sync_word(runtime: Runtime) -> str:
    return "triggered" if runtime.jobs.background else "ran"


def _mapping_out(
    mapping: MappingInfo, last_run: RunInfo | None, sync: str | None = None
) -> MappingOut:
    ident = mapping.identifier
    return MappingOut(
        id=mapping.id,
        name=mapping.name,
        source=mapping.source.name,
        entity=mapping.entity,
        collection=mapping.collection.name,
        identifier=PairIn(kandji=ident.kandji.key, field=ident.field.label),
        fields=[_mapped_out(mapped.kandji, mapped) for mapped in mapping.fields],
        schedule_minutes=mapping.schedule_minutes,
        on_removed=mapping.on_removed,
        created_at=mapping.created_at,
        enabled=mapping.enabled,
        warnings=list(mapping.warnings),
        last_run=_run_out(last_run) if last_run else None,
        sync=sync,
    )


def _mapped_out(kandji: KandjiField, mapped: mappings.MappedField) -> MappedFieldOut:
    return MappedFieldOut(
        kandji=kandji.key,
        kandji_label=kandji.label,
        recommendation=kandji.recommendation,
        needs_details=kandji.needs_details,
        field=mapped.field.label,
        field_type=mapped.field.type.value,
        unique=mapped.field.unique,
        is_identifier=mapped.is_identifier,
    )


def _run_out(run: RunInfo) -> RunOut:
    return RunOut.model_validate(run, from_attributes=True)
