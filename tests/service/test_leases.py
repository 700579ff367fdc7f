"""Job leases on SQLite and PostgreSQL: one holder at a time, and a dead holder's lease moves on."""

import threading
import time

from kandji_bridge.db import StateDB, open_state
from kandji_bridge.service import leases

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


def race(states: list[StateDB], job: str, tag: str) -> list[str]:
    """Every contender asks for `job` at the same moment; returns who got it."""
    barrier = threading.Barrier(len(states))
    won: list[str] = []

    def contend(index: int) -> None:
        barrier.wait()
        if leases.acquire(states[index], job, f"{tag}-{index}", ttl=0.2):
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
        time.sleep(0.3)  # that lease (ttl 0.2) has expired: race for it
        assert len(race(states, JOB, "expired")) == 1, "an expired lease"
        assert len(race(states, "mapping:m1", "other")) == 1, "another job"
    finally:
        for opened in states:
            opened.close()
