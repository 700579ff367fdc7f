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
"""

# Every value reaches SQL as an int, hence no S608 findings to act on.
# ruff: noqa: S608

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kandji_bridge.detections import KANDJI_PACK
from kandji_bridge.detections.rules import Detection, load_rules
from kandji_bridge.detections.run import run_detection
from kandji_bridge.logs.schema import LOGS_TABLE
from kandji_bridge.logs.store import ChdbLogStore
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
    t + 3 AS receivedAt,
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
    args = parser.parse_args()

    folder = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="kb-pack-"))
    store = ChdbLogStore(str(folder))
    store.ensure_schema()
    try:
        if store.count() != args.events:
            store.query(f"TRUNCATE TABLE {LOGS_TABLE}", read_only=False)
            if args.index_granularity_bytes:
                store.query(
                    f"ALTER TABLE {LOGS_TABLE} MODIFY SETTING "
                    f"index_granularity_bytes = {int(args.index_granularity_bytes)}",
                    read_only=False,
                )
            end = int(datetime.now(UTC).timestamp())
            print(f"Generating {args.events:,} events ...", flush=True)
            seconds = fill(store, GENERATE, GENERATED, args.events, end)
            print(f"Generated in {seconds:.1f} s", flush=True)
        report(store, args.runs)
    finally:
        store.close()
        if not args.store:
            shutil.rmtree(folder, ignore_errors=True)


def report(store: ChdbLogStore, runs: int) -> None:
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

    def run_pack() -> tuple[tuple[float, float], dict[str, tuple[float, float, int]]]:
        per_rule: dict[str, tuple[float, float, int]] = {}
        started, cpu = time.perf_counter(), time.process_time()
        for detection in loaded.detections:
            per_rule[detection.name] = _run_one(store, detection, start, end)
        return (
            (time.perf_counter() - started) * 1000,
            (time.process_time() - cpu) * 1000,
        ), per_rule

    run_pack()  # warm-up
    totals: list[float] = []
    total_cpu: list[float] = []
    rule_times: dict[str, list[float]] = {d.name: [] for d in loaded.detections}
    rule_cpu: dict[str, list[float]] = {d.name: [] for d in loaded.detections}
    matches: dict[str, int] = {}
    for _ in range(runs):
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


def _run_one(
    store: ChdbLogStore, detection: Detection, start: datetime, end: datetime
) -> tuple[float, float, int]:
    started, cpu = time.perf_counter(), time.process_time()
    found = run_detection(store, detection, start, end)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return wall * 1000, cpu * 1000, len(found.rows)


if __name__ == "__main__":
    main()
