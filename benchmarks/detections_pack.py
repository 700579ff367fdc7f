"""Benchmark the Kandji detection pack: every rule over one 15-minute window on a chDB store.

The events are generated inside ClickHouse (`INSERT INTO kandji_logs SELECT ... FROM numbers(N)`)
in the shapes the normalizer writes for the pack's subjects: device changes, deletes, MDM removals
and secret views; blueprint library-item and parameter changes; library items switched off; API
tokens with permission lists; admin users with roles; directory user deletes; ~60 admins and
tokens plus the system as actors, a third of the events with a client IP in one of ten countries,
spread evenly over a year ending now (receivedAt a few seconds after eventTime). Then each rule of
the pack runs, with its default parameters, over the last 15 minutes of receivedAt, several times;
the medians per rule and of the whole pack (rules one after the other) are printed as Markdown,
in wall time and in this process's CPU time (chDB runs in it): on a shared machine the CPU time
moves less with the other load than the wall time does.

    python benchmarks/detections_pack.py                        # 1,000,000 events, 5 runs
    python benchmarks/detections_pack.py --events 5000000 --store /tmp/kb-pack   # keep / reuse
    python benchmarks/detections_pack.py --events 5000000 --index-granularity-bytes 1048576
    python benchmarks/detections_pack.py --events 5000000 --compare      # now / as before

Each rule runs as the detections job runs it (`run_detection` with the columns a stored record
never keeps left out). `--compare` also runs the pack as the job ran it before (every column,
no uncompressed cache, ClickHouse's default limit for lazy materialization), alternately, in one
run, so the two medians share the machine's load.

`--catch-up` is the first backfill instead: N events with eventTime over a year, all received
within `--backfill-minutes` (Kandji's ceiling is about 1,400 events/s: 5M events in an hour), and
the pack, every rule enabled on its own schedule, catches up on those windows through the
product's detections job (operations.detections.run_due_detections on a scratch state DB), tick
after tick until nothing is due. It prints the time, the windows run and the peak RSS meanwhile.

    python benchmarks/detections_pack.py --events 5000000 --catch-up --store /tmp/kb-catchup
"""

# Every value reaches SQL as an int, hence no S608 findings to act on.
# ruff: noqa: S608

import argparse
import os
import platform
import resource
import shutil
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state
from kandji_bridge.detections import KANDJI_PACK
from kandji_bridge.detections.results import UNUSED_COLUMNS
from kandji_bridge.detections.rules import Detection, load_rules, previous_run
from kandji_bridge.detections.run import bind_parameters, run_detection
from kandji_bridge.detections.windows import Window, record_window
from kandji_bridge.logs.schema import LOGS_TABLE
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.operations import detections as ops
from synthetic_logs import fill

WINDOW = timedelta(minutes=15)

# One generated row per `number`; h1..h4 are independent hashes of it. Columns not listed here
# take their defaults (empty strings, zeros, empty maps and arrays).
GENERATE = """
INSERT INTO kandji_logs ({columns})
WITH
    cityHash64(number, 1) AS h1, cityHash64(number, 2) AS h2,
    cityHash64(number, 3) AS h3, cityHash64(number, 4) AS h4,
    ['device', 'device', 'device', 'device', 'device', 'device', 'device', 'device',
     'blueprint', 'blueprint', 'blueprint', 'blueprint', 'blueprint', 'library_item',
     'library_item', 'library_item', 'api_token', 'admin_user', 'directory_user', 'tenant']
        [h1 % 20 + 1] AS tt,
    multiIf(
        tt = 'device', ['', 'blueprint', 'mdm', 'device_name', 'filevault_key',
            'recovery_password', 'activation_lock_bypass_code', 'enrollment', 'os_version']
            [h2 % 9 + 1],
        tt = 'blueprint', ['library_items', 'library_items', 'parameters', ''][h2 % 4 + 1],
        tt = 'tenant', 'owner',
        '') AS tc,
    multiIf(
        tc IN ('filevault_key', 'recovery_password', 'activation_lock_bypass_code'), 'view',
        tc = 'enrollment', 'create',
        tt = 'device' AND tc IN ('', 'mdm'), 'delete',
        tt = 'directory_user', 'delete',
        tt = 'blueprint' AND tc = '', ['create', 'delete'][h2 % 2 + 1],
        tt IN ('library_item', 'api_token', 'admin_user'),
            ['create', 'update', 'update', 'delete'][h2 % 4 + 1],
        'update') AS act,
    if(tc = 'enrollment' OR tt = 'directory_user', 'system',
        ['user', 'user', 'user', 'api_token'][h3 % 4 + 1]) AS at,
    multiIf(at = 'system', '', at = 'user', concat('admin-', toString(h3 % 50)),
        concat('token-', toString(h3 % 10))) AS aid,
    if(tt = 'device', concat('dev-', leftPad(toString(h4 % 5000), 6, '0')),
        lower(hex(h4 % 100000))) AS tid,
    if(at != 'system' AND h2 % 3 = 0,
        IPv4NumToString(toUInt32(0x51000000 + (h1 % 2000) * 7919)), '') AS ip,
    if(ip = '', '', ['US', 'GB', 'DE', 'FR', 'SE', 'JP', 'AU', 'CA', 'BR', 'IN'][h1 % 10 + 1])
        AS cc,
    toDateTime({end} - intDiv(number * {span}, {total}), 'UTC') AS t,
    concat('01J', upper(substring(hex(h4), 1, 12)), upper(substring(hex(h3), 1, 11))) AS kid,
    if(ip = '', '{{}}', concat('{{"ip_address":"', ip,
        '","user_agent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)"}}')) AS meta,
    multiIf(
        tt = 'device', concat('{{"device_name":"Mac-', toString(h4 % 5000),
            '","serial_number":"C02', upper(substring(hex(h4), 1, 9)), '"}}'),
        tt = 'blueprint' AND tc = 'library_items', concat(
            '{{"library_items_added":[{{"id":"', lower(hex(h2 % 300)), '","name":"App ',
            toString(h2 % 300), '"}}],"library_items_removed":[',
            if(h4 % 10 = 0, concat('{{"id":"', lower(hex(h4 % 40)), '","name":"',
                ['FileVault', 'Firewall', 'Gatekeeper', 'Zoom', 'Slack'][h4 % 5 + 1], '"}}'), ''),
            '],"library_items_scoped":[],"name":"Blueprint ', toString(h4 % 40), '"}}'),
        tt = 'blueprint' AND tc = 'parameters',
            concat('{{"parameters":[],"name":"Blueprint ', toString(h4 % 40), '"}}'),
        tt = 'library_item', concat('{{"active":', if(h4 % 5 = 0, 'false', 'true'),
            ',"label":null,"type":"', ['vpp-app', 'custom-profile', 'firewall', 'filevault']
            [h4 % 4 + 1], '","name":"Item ', toString(h4 % 300), '"}}'),
        tt = 'api_token', concat('{{"description":null,"permissions":[{{"path":',
            '"/api/v1/audit/events","http_method":"GET"}}',
            if(h4 % 8 = 0, concat(',{{"path":"/api/v1/devices/{{device_id}}/action/erase",',
                '"http_method":"POST"}}'), ''), '],"label":"token ', toString(h4 % 10), '"}}'),
        tt = 'admin_user', concat('{{"email":"admin', toString(h4 % 50),
            '@example.com","role":"', ['admin', 'helpdesk', 'auditor'][h4 % 3 + 1], '"}}'),
        tt = 'tenant', '{{"owner_email":"admin1@example.com"}}',
        concat('{{"email":"user', toString(h4 % 2000), '@example.com","name":"User"}}'))
        AS ns
SELECT
    'ws-bench' AS workspaceID,
    ['src-a', 'src-b', 'src-c'][number % 3 + 1] AS sourceID,
    'kandji' AS sourceType,
    0 AS sourceTTL,
    {received} AS receivedAt,
    toString(generateUUIDv4(number)) AS id,
    t AS eventTime,
    concat(tt, '.', act) AS eventName,
    kid AS eventID,
    ip AS srcIP,
    cc AS srcASCountryCode,
    map('id', aid, 'type', at) AS actor,
    if(tc = '', map(), map('target_component', tc)) AS tags,
    [tid] AS resources,
    'kandji' AS serviceName,
    act = 'view' AS readOnly,
    concat('{{"id":"', kid, '","action":"', act, '","occurred_at":"',
        formatDateTime(t, '%Y-%m-%dT%H:%i:%S.000000Z', 'UTC'), '","actor_id":"', aid,
        '","actor_type":"', at, '","target_id":"', tid, '","target_type":"', tt,
        '","target_component":"', tc, '","new_state":', ns, ',"metadata":', meta, '}}') AS rawLog,
    kid AS kandjiEventId,
    act AS action,
    aid AS actorId,
    at AS actorType,
    formatDateTime(t, '%Y-%m-%dT%H:%i:%S.000000Z', 'UTC') AS occurredAt,
    tt AS targetType,
    tid AS targetId,
    tc AS targetComponent,
    ns AS newState,
    meta AS metadata
FROM numbers({first}, {count})
"""
# receivedAt: a few seconds after the event (live polling), or spread over the backfill's minutes.
LIVE_RECEIVED = "t + 3"
BACKFILL_RECEIVED = "toDateTime({{end}} - intDiv(number * {seconds}, {{total}}), 'UTC')"
GENERATED = [
    *("workspaceID", "sourceID", "sourceType", "sourceTTL", "receivedAt", "id", "eventTime"),
    *("eventName", "eventID", "srcIP", "srcASCountryCode", "actor", "tags", "resources"),
    *("serviceName", "readOnly", "rawLog", "kandjiEventId", "action", "actorId", "actorType"),
    *("occurredAt", "targetType", "targetId", "targetComponent", "newState", "metadata"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--store", help="a folder to keep the store in (reused when it matches)")
    parser.add_argument(
        "--index-granularity-bytes",
        type=int,
        help="generate the events into granules of at most this many bytes (the table's "
        "default is ClickHouse's, 10 MiB): what a window's SELECT * decompresses",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also run the pack as the detections job ran it before, alternately",
    )
    parser.add_argument(
        "--catch-up",
        action="store_true",
        help="the events were received in one backfill: time the pack catching up on it",
    )
    parser.add_argument("--backfill-minutes", type=int, default=60)
    args = parser.parse_args()
    received = (
        BACKFILL_RECEIVED.format(seconds=args.backfill_minutes * 60)
        if args.catch_up
        else LIVE_RECEIVED
    )

    folder = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="kb-pack-"))
    store = ChdbLogStore(str(folder))
    store.ensure_schema()
    try:
        shape = f"{args.events} {received}"
        marker = folder / "generated.txt"
        if store.count() != args.events or not marker.exists() or marker.read_text() != shape:
            store.query(f"TRUNCATE TABLE {LOGS_TABLE}", read_only=False)
            if args.index_granularity_bytes:
                store.query(
                    f"ALTER TABLE {LOGS_TABLE} MODIFY SETTING "
                    f"index_granularity_bytes = {int(args.index_granularity_bytes)}",
                    read_only=False,
                )
            end = int(datetime.now(UTC).timestamp())
            print(f"Generating {args.events:,} events ...", flush=True)
            template = GENERATE.replace("{received}", received)
            seconds = fill(store, template, GENERATED, args.events, end)
            marker.write_text(shape)
            print(f"Generated in {seconds:.1f} s", flush=True)
        if args.catch_up:
            catch_up(store, folder, args.backfill_minutes)
        else:
            report(store, args.runs, args.compare)
    finally:
        store.close()
        if not args.store:
            shutil.rmtree(folder, ignore_errors=True)


def report(store: ChdbLogStore, runs: int, compare: bool = False) -> None:
    loaded = load_rules(KANDJI_PACK, store)
    if loaded.problems:
        raise SystemExit("\n".join(str(p) for p in loaded.problems))
    newest = store.query(f"SELECT toUnixTimestamp(max(receivedAt)) FROM {LOGS_TABLE}").rows[0][0]
    end = datetime.fromtimestamp(int(newest) + 1, UTC)
    start = end - WINDOW
    in_window = store.query(
        f"SELECT count() FROM {LOGS_TABLE} WHERE receivedAt >= "
        f"toDateTime({int(start.timestamp())}, 'UTC') AND receivedAt < "
        f"toDateTime({int(end.timestamp())}, 'UTC')"
    ).rows[0][0]

    def run_pack(
        cached: bool = True,
    ) -> tuple[tuple[float, float], dict[str, tuple[float, float, int]]]:
        per_rule: dict[str, tuple[float, float, int]] = {}
        started, cpu = time.perf_counter(), time.process_time()
        for detection in loaded.detections:
            per_rule[detection.name] = _run_one(store, detection, start, end, cached)
        return (
            (time.perf_counter() - started) * 1000,
            (time.process_time() - cpu) * 1000,
        ), per_rule

    run_pack()  # warm-up
    uncached: list[tuple[float, float]] = []
    totals: list[float] = []
    total_cpu: list[float] = []
    rule_times: dict[str, list[float]] = {d.name: [] for d in loaded.detections}
    rule_cpu: dict[str, list[float]] = {d.name: [] for d in loaded.detections}
    matches: dict[str, int] = {}
    for _ in range(runs):
        if compare:
            uncached.append(run_pack(cached=False)[0])
        (total, cpu), per_rule = run_pack()
        totals.append(total)
        total_cpu.append(cpu)
        for name, (ms, cpu_ms, count) in per_rule.items():
            rule_times[name].append(ms)
            rule_cpu[name].append(cpu_ms)
            matches[name] = count
    print()
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(
        f"Store: {store.count():,} events; window {start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC "
        f"(receivedAt): {int(in_window):,} events; median of {runs} runs after a warm-up; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print()
    print("| rule | median ms | median CPU ms | matches |")
    print("|---|---:|---:|---:|")
    for name, times in sorted(rule_times.items(), key=lambda item: -statistics.median(item[1])):
        cpu = statistics.median(rule_cpu[name])
        print(f"| {name} | {statistics.median(times):,.1f} | {cpu:,.1f} | {matches[name]} |")
    whole, whole_cpu = statistics.median(totals), statistics.median(total_cpu)
    print(
        f"| **whole pack ({len(loaded.detections)} rules)** | {whole:,.0f} | {whole_cpu:,.0f} | |"
    )
    if uncached:
        wall = statistics.median(t for t, _ in uncached)
        cpu = statistics.median(c for _, c in uncached)
        print(f"| whole pack as the job ran it before | {wall:,.0f} | {cpu:,.0f} | |")


def _run_one(
    store: ChdbLogStore, detection: Detection, start: datetime, end: datetime, cached: bool
) -> tuple[float, float, int]:
    started, cpu = time.perf_counter(), time.process_time()
    if cached:
        count = len(run_detection(store, detection, start, end, omit=UNUSED_COLUMNS).rows)
    else:  # the statement the detections job ran before
        params = bind_parameters(detection)
        params.update({"from": f"{start:%Y-%m-%d %H:%M:%S}", "to": f"{end:%Y-%m-%d %H:%M:%S}"})
        count = len(
            store.query(
                f"SELECT * FROM ({detection.statement}) LIMIT 10001 SETTINGS "
                "max_execution_time = 60, use_uncompressed_cache = 0",
                params=params,
            ).rows
        )
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return wall * 1000, cpu * 1000, count


def catch_up(store: ChdbLogStore, folder: Path, backfill_minutes: int) -> None:
    """Every rule of the pack enabled, its windows reached up to the backfill's start; the
    detections job's ticks until nothing is due, as serve runs them (one after the other)."""
    first, newest = store.query(
        f"SELECT toUnixTimestamp(min(receivedAt)), toUnixTimestamp(max(receivedAt)) "
        f"FROM {LOGS_TABLE}"
    ).rows[0]
    now = datetime.fromtimestamp(int(newest) + 1, UTC)
    home = folder / "catch-up-home"
    shutil.rmtree(home, ignore_errors=True)
    settings = load_settings(env={"KANDJI_BRIDGE_HOME": str(home)})
    store.query("DROP TABLE IF EXISTS detections", read_only=False)
    with open_state(settings) as state:
        names = ops.enable_pack(state, "*/15 * * * *")
        start = previous_run("*/15 * * * *", datetime.fromtimestamp(int(first), UTC))
        for name in names:
            record_window(state, name, Window(start - WINDOW, start))
        peak = _PeakRss()
        loaded = ops.LoadedRules()
        started, cpu = time.perf_counter(), time.process_time()
        windows, ticks, errors = 0, 0, {}
        with peak:
            while True:
                tick = ops.run_due_detections(settings, state, store, now, loaded)
                ticks += 1
                errors.update(tick.errors)
                ran = sum(len(w) for w in tick.ran.values())
                windows += ran
                if not ran:
                    break
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    stored = store.query("SELECT count(), sum(recordsReturned) FROM detections FINAL").rows[0]
    print()
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(
        f"Store: {store.count():,} events, eventTime over a year, received within "
        f"{backfill_minutes} min; the pack ({len(names)} rules) from {start:%H:%M} to "
        f"{now:%H:%M} UTC"
    )
    print(
        f"Catch-up: {windows} windows in {ticks} ticks, {wall:.1f} s wall, {cpu:.1f} s CPU; "
        f"{stored[0]} detections rows ({stored[1]} matches); peak RSS {peak.mb:.0f} MB "
        f"(before {peak.before_mb:.0f} MB); load average {os.getloadavg()[0]:.1f}"
    )
    for name, error in sorted(errors.items()):
        print(f"  {name}: {error}")
    print()
    print("| rule | seconds in its runs (those with matches) | matches |")
    print("|---|---:|---:|")
    for name, seconds, matches in store.query(
        "SELECT detectionName, sum(runTime) / 1e9 AS s, sum(recordsReturned) FROM detections "
        "FINAL GROUP BY detectionName ORDER BY s DESC"
    ).rows:
        print(f"| {name} | {float(seconds):.1f} | {matches} |")


class _PeakRss:
    """The highest RSS of this process while the block runs (sampled every 50 ms)."""

    def __init__(self) -> None:
        self.before_mb = self.mb = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "_PeakRss":
        self.before_mb = self.mb = _rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._done.wait(0.05):
            self.mb = max(self.mb, _rss_mb())


def _rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 1e6


if __name__ == "__main__":
    main()
