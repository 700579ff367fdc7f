"""One server store shared by threads, as serve's job threads and web requests share it: calls
from several threads at once all answer (the store's client holds one server session)."""

from concurrent.futures import ThreadPoolExecutor

from kandji_bridge.logs.store import open_log_store


def test_threads_sharing_a_server_store_all_get_their_answers(clickhouse_url: str) -> None:
    store = open_log_store(clickhouse_url)
    try:
        store.ensure_schema()

        def count(_: int) -> int:
            return int(store.query("SELECT count() FROM kandji_logs").rows[0][0])

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(count, range(64))) == [0] * 64
    finally:
        store.close()
