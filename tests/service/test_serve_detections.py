"""Detections in a real `serve`: an enabled rule fires on an event the simulator logs, the alert
reaches a local webhook once, and a rule that fails at run time is recorded without stopping the
other rule or the collector."""

import subprocess
from datetime import UTC, datetime
from pathlib import Path

from detections.receivers import HttpReceiver, signature_ok
from kandji_bridge import source_registry as sources
from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state
from kandji_bridge.detections.outbox import deliveries
from kandji_bridge.detections.windows import last_window_end
from kandji_bridge.jobs import status as jobs
from kandji_bridge.operations.alerts import add_channel

from .helpers import wait_until
from .test_serve import CLI, cli_env, serve_process

SECRET = "a signing secret of the test"
WINDOW = "receivedAt >= {from:DateTime} AND receivedAt < {to:DateTime}"
MARK = "detections-in-serve"


def write_rule(folder: Path, name: str, where: str) -> None:
    (folder / f"{name}.yaml").write_text(
        f"name: {name}\ndisplayName: {name}\ndescription: A test rule.\n"
        "severity: High\nschedule: '@1m'\n"
    )
    sql = f"SELECT * FROM kandji_logs WHERE {WINDOW} AND {where}"  # noqa: S608 (a rule file)
    (folder / f"{name}.sql").write_text(sql)


def test_serve_runs_enabled_rules_and_delivers_their_alert_once(
    home: Path, tmp_path: Path, simulator_factory
) -> None:
    sim = simulator_factory(devices=3, events=40, history_days=30, seed=61)
    env = cli_env(home, sim)
    rules = tmp_path / "rules"
    rules.mkdir()
    write_rule(rules, "device-deleted-here", f"targetComponent = '{MARK}'")
    # Passes validation (EXPLAIN) and fails when it runs on the marked event.
    write_rule(rules, "fails-at-run-time", f"throwIf(targetComponent = '{MARK}', 'boom') = 0")
    receiver = HttpReceiver().start()
    try:
        with open_state(load_settings(env=env)) as state:
            source = sources.add_source(state, "acme", sim.base_url, sim.token, poll_interval=2)
            add_channel(state, "webhook", "siem", url=receiver.url, secret=SECRET)
            for args in (
                ["detections", "import", str(rules)],
                ["detections", "enable", "device-deleted-here", "--notify", "siem"],
                ["detections", "enable", "fails-at-run-time", "--notify", "siem"],
            ):
                done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True)
                assert done.returncode == 0, done.stderr

            with serve_process(env, tmp_path / "serve.log"):
                polled = jobs.source_job(source.id)
                wait_until(
                    lambda: (s := jobs.job_status(state, polled)) and s.last_success_at,
                    "the backfill",
                )
                injected_at = datetime.now(UTC)
                sim.state.add_event(action="delete", target_type="device", target_component=MARK)
                wait_until(lambda: receiver.requests, "the alert at the webhook", timeout=240)
                wait_until(
                    lambda: all(d.status == "sent" for d in deliveries(state)),
                    "the delivery marked sent",
                )
                # The job records a rule's failure at the end of its tick, which may come after
                # the outbox has sent the other rule's alert.
                failing_job = jobs.detection_job("fails-at-run-time")
                wait_until(
                    lambda: (s := jobs.job_status(state, failing_job)) and s.last_error,
                    "the failing rule's error recorded",
                )
                failing = jobs.job_status(state, failing_job)
                assert failing is not None and failing.last_error is not None
                assert "Detection fails-at-run-time failed to run" in failing.last_error
                assert "boom" in failing.last_error
                # Its failed window is not skipped: it has not moved past the marked event.
                reached = last_window_end(state, "fails-at-run-time")
                assert reached is None or reached <= injected_at.replace(microsecond=0)
                collector = jobs.job_status(state, polled)
                assert collector is not None and collector.last_error is None
                good = jobs.job_status(state, jobs.detection_job("device-deleted-here"))
                assert good is not None and good.last_error is None
                # One job runs every enabled rule; a rule's failure is its own, not the job's.
                ran = jobs.job_status(state, jobs.DETECTIONS_JOB)
                assert ran is not None and ran.last_error is None

        assert len(receiver.requests) == 1, "the alert was sent once"
        request = receiver.requests[0]
        assert signature_ok(request, SECRET)
        alert = request.json()["alert"]
        assert alert["detection"] == "device-deleted-here"
        assert alert["matchCount"] == 1
        assert alert["matches"][0]["targetComponent"] == MARK
    finally:
        receiver.stop()
