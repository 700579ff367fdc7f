"""Job leases on SQLite and PostgreSQL: one holder at a time, and a dead holder's lease moves on."""

import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest

from kandji_bridge.db import StateDB, open_state
from kandji_bridge.db.models import JobLease, utcnow
from kandji_bridge.jobs import leases

JOB = "source:0b4f8c8e-0000-4000-8000-000000000001"


def test_a_held_job_is_refused_to_others_until_released(state: StateDB) -> None:
    assert leases.acquire(state, JOB, "alpha", ttl=60)
    assert not leases.acquire(state, JOB, "beta", ttl=60)
    assert leases.acquire(state, JOB, "alpha", ttl=60), "a holder may take its own lease again"
    assert leases.holders(state) == {JOB: "alpha"}
    leases.release(state, JOB, "beta")  # not beta's: nothing happens
    assert leases.holders(state) == {JOB: "alpha"}
    leases.release(state, JOB, "alpha")
    assert leases.holders(state) == {}
    assert leases.acquire(state, JOB, "beta", ttl=60)


def test_an_expired_lease_is_taken_over_and_its_old_holder_cannot_renew(state: StateDB) -> None:
    assert leases.acquire(state, JOB, "dead", ttl=0.2)
    assert leases.renew(state, JOB, "dead", ttl=0.2)
    time.sleep(0.3)  # the holder stopped renewing: it died
    assert leases.holders(state) == {}
    assert leases.acquire(state, JOB, "alive", ttl=60)
    assert not leases.renew(state, JOB, "dead", ttl=60)
    assert leases.renew(state, JOB, "alive", ttl=60)
    assert leases.holders(state) == {JOB: "alive"}


# Long enough that a lease cannot expire while a loaded machine runs the other contenders.
RACE_TTL = 2.0


def race(states: list[StateDB], job: str, tag: str) -> list[str]:
    """Every contender asks for `job` at the same moment; returns who got it."""
    barrier = threading.Barrier(len(states))
    won: list[str] = []

    def contend(index: int) -> None:
        barrier.wait()
        if leases.acquire(states[index], job, f"{tag}-{index}", ttl=RACE_TTL):
            won.append(f"{tag}-{index}")

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(states))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won


def test_of_many_racing_processes_exactly_one_gets_the_job(state: StateDB) -> None:
    """Each contender has its own connection pool, as separate processes would."""
    states = [open_state(state.settings) for _ in range(6)]
    try:
        assert len(race(states, JOB, "new")) == 1, "a job nobody held"
        time.sleep(RACE_TTL + 0.1)  # that lease has expired: race for it
        assert len(race(states, JOB, "expired")) == 1, "an expired lease"
        assert len(race(states, "mapping:m1", "other")) == 1, "another job"
    finally:
        for opened in states:
            opened.close()


def write_lease(state: StateDB, holder: str, host: str, pid: int, started: int | None) -> None:
    """A lease row as another process (of this host or another) would have written it."""
    with state.session() as session:
        session.add(
            JobLease(
                job=JOB,
                holder=holder,
                expires_at=utcnow() + timedelta(seconds=60),
                host=host,
                pid=pid,
                pid_started=started,
            )
        )


def dead_pid() -> int:
    """The pid of a process that has ended and been collected."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_dead_holder_on_this_host_loses_its_job_at_once(state: StateDB) -> None:
    me = leases.this_process()
    write_lease(state, "killed", me.host, dead_pid(), None)
    assert leases.acquire(state, JOB, "rerun", ttl=60), "a dead holder's lease was kept"
    assert leases.holders(state) == {JOB: "rerun"}
    assert not leases.renew(state, JOB, "killed", ttl=60)


def test_a_pid_reused_by_another_process_is_not_the_holder(state: StateDB) -> None:
    me = leases.this_process()
    if me.started is None:
        pytest.skip("no /proc here: a reused pid cannot be told from the holder")
    write_lease(state, "before-reboot", me.host, me.pid, me.started - 1)  # our pid, not us
    assert leases.acquire(state, JOB, "rerun", ttl=60)
    assert leases.holders(state) == {JOB: "rerun"}


def test_a_live_holder_on_this_host_keeps_its_job(state: StateDB) -> None:
    me = leases.this_process()
    write_lease(state, "alive", me.host, me.pid, me.started)
    assert not leases.acquire(state, JOB, "other", ttl=60)
    assert leases.holders(state) == {JOB: "alive"}


def test_a_holder_on_another_host_keeps_its_job_until_its_lease_runs_out(state: StateDB) -> None:
    # Its pid means nothing here: even one that no process of this host has.
    write_lease(state, "far", "another-host.example", dead_pid(), None)
    assert not leases.acquire(state, JOB, "here", ttl=60)
    assert leases.holders(state) == {JOB: "far"}
