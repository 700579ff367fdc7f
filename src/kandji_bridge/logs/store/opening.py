"""Opening the log store a URL names: `chdb://` (embedded), or `clickhouse://`,
`clickhouses://`, `http://` or `https://` (a server)."""

from kandji_bridge.logs.store.damage import describe_damage
from kandji_bridge.logs.store.embedded import ChdbLogStore
from kandji_bridge.logs.store.interface import LogStore, LogStoreError
from kandji_bridge.logs.store.server import SCHEMES, URL_FORM, ClickHouseLogStore, mask_url
from kandji_bridge.logs.user_queries import QueryLimits


def open_log_store(url: str, limits: QueryLimits | None = None) -> LogStore:
    """The store a `chdb://` or a server URL names, schema not yet ensured; user queries
    run under `limits` (Settings.query_limits; the defaults without)."""
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == "chdb" and rest:
        return ChdbLogStore(rest, limits)
    if scheme in SCHEMES and rest:
        return ClickHouseLogStore.from_url(url, limits)
    raise LogStoreError(
        f"The log store URL {mask_url(url)!r} is not usable; write chdb://<folder> or {URL_FORM}."
    )


def open_ready_store(url: str, limits: QueryLimits | None = None) -> tuple[LogStore, str | None]:
    """The log store at `url`, its schema ensured, and a sentence on the damaged parts the engine
    moved aside when it opened (None when there are none): the caller says it to the user."""
    store = open_log_store(url, limits)
    try:
        store.ensure_schema()
        return store, describe_damage(store.damaged_parts())
    except BaseException:
        store.close()
        raise
