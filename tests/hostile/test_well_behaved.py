"""The hostile Kandji left alone behaves like Kandji, so a test that switches one misbehaviour on
measures that misbehaviour and nothing else."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hostile.kandji import AUDIT_PATH, HostileKandji, add_source, events_over, kandji_bridge
from kandji_bridge.kandji.client import KandjiClient


async def test_the_client_pages_through_every_event_once(hostile_kandji: HostileKandji) -> None:
    start = datetime.now(UTC) - timedelta(days=2)
    hostile_kandji.events = events_over(1_234, start)
    async with KandjiClient(
        hostile_kandji.url,
        hostile_kandji.token,
        allowed_hosts=frozenset({hostile_kandji.host_port}),
    ) as client:
        ids = [e.id async for page in client.iter_audit_pages() for e in page.events]
        later = [
            e.id
            async for page in client.iter_audit_pages(start_date=start + timedelta(seconds=1000))
            for e in page.events
        ]
    assert len(ids) == len(set(ids)) == 1_234
    assert len(later) == 234
    assert hostile_kandji.count(AUDIT_PATH) == 3 + 1


def test_logs_sync_as_a_process_stores_what_it_serves(
    home: Path, allow_hostile_kandji: HostileKandji
) -> None:
    allow_hostile_kandji.events = events_over(700, datetime.now(UTC) - timedelta(hours=3))
    add_source(allow_hostile_kandji)
    done = kandji_bridge("logs", "sync", "acme")
    assert done.returncode == 0, done.stderr
    assert "700 new events" in done.stdout
    counted = kandji_bridge("logs", "query", "SELECT count() FROM kandji_logs", "--format", "csv")
    assert counted.stdout.splitlines()[1] == "700"
    assert allow_hostile_kandji.token not in done.stdout + done.stderr + counted.stdout
