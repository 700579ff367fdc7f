"""Schemathesis against the REST API's own OpenAPI schema (/api/openapi.json), signed in with an
API token (or a browser session and its CSRF token), on a home with data: a simulator-backed
source whose logs were polled, a collection, and a mapping that has synced. Every generated
request must get an answer its schema declares: no 500, no undeclared status code, no body or
content type the schema does not describe.

Path names are drawn partly from the names that exist, and connection URLs partly from the
simulator's, so the generated requests reach real records and real Kandji calls (GET only),
not just 404s. What a call deletes is put back before the next one."""

import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from kandji_bridge import source_registry as sources
from kandji_bridge import users
from kandji_bridge.assets import collections
from kandji_bridge.assets.collections import FieldSpec
from kandji_bridge.assets.convert import FieldType
from kandji_bridge.db.models import Record
from kandji_bridge.errors import NotFound
from kandji_bridge.inventory import mappings
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.simulator.server import RunningSimulator
from kandji_bridge.web.app import create_app
from kandji_bridge.web.auth import sessions

from .conftest import ADMIN, PASSWORD

SOURCE = "sim"
COLLECTION = "ITAM"
MAPPING = "Kandji Device Import"
# Examples per operation: the default suite stays within a minute or two, the slow one digs.
QUICK_EXAMPLES = 8
SESSION_EXAMPLES = 3
SLOW_EXAMPLES = 150


@dataclass
class World:
    runtime: Runtime
    simulator: RunningSimulator
    headers: dict[str, str]  # what every call sends: an API token, or a session's CSRF token
    event_id: str
    cookies: dict[str, str] = field(default_factory=dict)  # a browser session's cookie
    token: str = ""  # the admin's API token, which loads the schema
    # Status codes each operation got for valid data: the fuzzing must reach real data too.
    answers: dict[str, set[int]] = field(default_factory=dict)

    def restore(self) -> None:
        """Put back the source, collection and mapping a previous call may have deleted."""
        state = self.runtime.state
        try:
            sources.get_source(state, SOURCE)
        except NotFound:
            sources.add_source(state, SOURCE, self.simulator.base_url, self.simulator.token)
        try:
            collections.get_collection(state, COLLECTION)
        except NotFound:
            make_collection(self.runtime)
        try:
            mappings.get_mapping(state, MAPPING)
        except NotFound:
            make_mapping(self.runtime)


def make_collection(runtime: Runtime) -> None:
    collections.create_collection(
        runtime.state,
        COLLECTION,
        [
            FieldSpec("Serial", FieldType.TEXT, unique=True),
            FieldSpec("Name", FieldType.TEXT),
            FieldSpec("Last Check In", FieldType.DATETIME),
        ],
    )


def make_mapping(runtime: Runtime) -> None:
    mappings.create_mapping(
        runtime.state,
        mappings.MappingSpec(
            MAPPING,
            SOURCE,
            COLLECTION,
            mappings.Pair("serial_number", "Serial"),
            [mappings.Pair("device_name", "Name"), mappings.Pair("last_check_in", "Last Check In")],
        ),
    )


@pytest.fixture
def world(
    home, allow_simulator: RunningSimulator, runtime: Runtime, admin: users.UserInfo
) -> World:
    token = users.create_api_token(runtime.state, ADMIN, "schemathesis", users.ADMIN)
    headers = {"Authorization": f"Bearer {token}"}
    sources.add_source(runtime.state, SOURCE, allow_simulator.base_url, allow_simulator.token)
    make_collection(runtime)
    make_mapping(runtime)
    with TestClient(create_app(runtime), headers=headers) as client:
        polled = client.post(f"/api/sources/{SOURCE}/poll")
        assert polled.status_code == 200 and polled.json()["error"] is None, polled.text
        synced = client.post(f"/api/mappings/{MAPPING}/sync")
        assert synced.json()["last_run"]["created"] == len(allow_simulator.devices), synced.text
        events = client.get("/api/logs/events", params={"from": "2000-01-01T00:00:00Z"}).json()
    assert events["events"], "the poll stored no events"
    return World(runtime, allow_simulator, headers, events["events"][0]["id"], token=token)


def known_values(world: World) -> dict[str, list[str]]:
    """Values that exist in this world, per parameter or body field name."""
    with world.runtime.state.session() as session:
        record_ids = [str(row.id) for row in session.query(Record).limit(3)]
    return {
        "name": [SOURCE, COLLECTION, MAPPING],
        "source": [SOURCE],
        "collection": [COLLECTION],
        "event_id": [world.event_id],
        "record_id": record_ids,
        "base_url": [world.simulator.base_url, "http://169.254.169.254", "http://127.0.0.1:1"],
        "url": [world.simulator.base_url],
        "api_key": [world.simulator.token],
        "token": [world.simulator.token],
        "sort": ["Serial", "Name", ""],
        "status": ["active", "removed", "archived", "all", ""],
    }


def mixed_in(known: dict[str, list[str]]) -> Callable:
    """A flatmap hook: each key that has known values gets one of them most of the time, and
    the generated value otherwise."""

    def hook(context: object, values: object) -> st.SearchStrategy:
        if not isinstance(values, dict):
            return st.just(values)
        options = {key: known[key] for key in values if known.get(key)}
        if not options:
            return st.just(values)
        replaced = st.fixed_dictionaries(
            {key: st.sampled_from([*opts, values[key]]) for key, opts in options.items()}
        )
        return replaced.map(lambda new: {**values, **new})

    return hook


def load_schema(world: World, mode: GenerationMode):
    """The app's schema; for valid data with the world's names mixed in (never for invalid data:
    a known value put in place of the invalid one would make the request valid)."""
    schema = schemathesis.openapi.from_asgi(
        "/api/openapi.json",
        create_app(world.runtime),
        headers={"Authorization": f"Bearer {world.token}"},
    )
    if mode is GenerationMode.POSITIVE:
        known = known_values(world)
        for part in ("path_parameters", "query", "body"):
            schema.hook(f"flatmap_{part}")(mixed_in(known))
    return schema


def run_schemathesis(world: World, examples: int) -> list[str]:
    """Each operation, with valid and with invalid data; returns one line per failing operation
    and mode (Hypothesis shrinks each to its smallest failing request)."""
    failures = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        operations = [result.ok() for result in load_schema(world, mode).get_all_operations()]
        assert len(operations) >= 20, [op.label for op in operations]
        found = (check_operation(world, operation, mode, examples) for operation in operations)
        failures += [failure for failure in found if failure]
    return failures


def check_operation(world: World, operation, mode: GenerationMode, examples: int) -> str:
    """'' when every generated request got a declared answer, else what schemathesis found."""

    @settings(max_examples=examples, **HYPOTHESIS)
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case) -> None:
        world.restore()
        # A request valid by the schema may still be refused with 400 (an unknown SQL column, a
        # cursor this API never gave out): the schema cannot say that, so that check is off;
        # what such a request must never get is 422, the answer for a schema violation.
        response = case.call_and_validate(
            headers=world.headers,
            cookies=world.cookies,
            excluded_checks=[positive_data_acceptance],
        )
        if mode is GenerationMode.POSITIVE:
            world.answers.setdefault(operation.label, set()).add(response.status_code)
            assert response.status_code != 422, (
                f"{case.as_curl_command()} is valid by the schema, but got: {response.text}"
            )

    try:
        check()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE, operation.label  # nothing to make invalid
    except (Exception, BaseExceptionGroup) as exc:  # each is reported, then the test fails
        return f"{operation.label} ({mode}): {exc}"
    return ""


HYPOTHESIS = {
    "deadline": None,
    "database": None,
    "derandomize": True,
    "suppress_health_check": list(HealthCheck),
}


def test_every_generated_request_gets_an_answer_its_schema_declares(world: World) -> None:
    failures = run_schemathesis(world, QUICK_EXAMPLES)
    assert not failures, "\n\n".join(failures)
    succeeded = {label for label, codes in world.answers.items() if any(c < 300 for c in codes)}
    for label in ("GET /api/collections/{name}/records", "GET /api/logs/events/{event_id}"):
        assert label in succeeded, world.answers


def test_a_signed_in_browser_session_gets_declared_answers_too(world: World) -> None:
    # The same with a session cookie and its CSRF token (as htmx sends it), fewer examples.
    admin = users.authenticate(world.runtime.state, ADMIN, PASSWORD)
    secret, csrf = users.start_session(world.runtime.state, admin.id)
    world.headers, world.cookies = {"X-CSRF-Token": csrf}, {sessions.SESSION_COOKIE: secret}
    failures = run_schemathesis(world, SESSION_EXAMPLES)
    assert not failures, "\n\n".join(failures)
    assert world.answers["GET /api/me"] == {200}


@pytest.mark.slow
def test_many_generated_requests_get_answers_their_schema_declares(world: World) -> None:
    failures = run_schemathesis(world, SLOW_EXAMPLES)
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
def test_the_schemathesis_command_finds_nothing_in_any_phase(world: World, request) -> None:
    """`schemathesis run` itself against the app on a real port, with every phase: the schema's
    examples, coverage (boundary values, wrong types, missing parts, unsupported methods),
    fuzzing and stateful sequences that reuse what earlier answers returned."""
    url = request.getfixturevalue("live_server")
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{url}/api/openapi.json",
        "--header", f"Authorization: Bearer {world.token}",
        "--max-examples", "25", "--seed", "1", "--workers", "1", "--max-time", "400",
        "--exclude-checks", "positive_data_acceptance", "--continue-on-failure",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    summary = done.stdout[done.stdout.rfind("SUMMARY") :]
    print(summary)  # the phases, the number of cases and the time, for benchmarks/RELIABILITY.md
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    tested = re.search(r"Tested: (\d+)", summary)
    assert tested and int(tested[1]) >= 20, summary
