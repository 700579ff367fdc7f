"""Commands load only what they use: `--help` starts without the state DB, the Kandji client or
the web service, and commands that do not touch the log store never load its engine (chDB and
the pandas/pyarrow/numpy it brings weigh hundreds of MB and most of a second)."""

import subprocess
import sys
from pathlib import Path

import pytest

from kandji_bridge.simulator.server import RunningSimulator

# Loaded only by what needs them: the log engine, the web service, Sigma conversion, migrations.
ENGINE_AND_SERVICE = {
    "chdb",
    "pandas",
    "pyarrow",
    "numpy",
    "clickhouse_connect",
    "fastapi",
    "starlette",
    "uvicorn",
    "jinja2",
    "sigma",
    "geoip2fast",
}
# `--help` needs none of the state DB, the Kandji client or password hashing either.
HELP_ALSO = {"sqlalchemy", "alembic", "httpx", "argon2", "cryptography", "yaml", "croniter"}

# Runs the CLI in this process as the console script does, then prints the top-level packages it
# loaded (one per line) on stderr, after the command's own output.
PROBE = """
import sys
from kandji_bridge.cli import main
try:
    main(sys.argv[1:])
finally:
    print("\\n".join(sorted({name.split(".")[0] for name in sys.modules})), file=sys.stderr)
"""


def loaded_by(args: list[str]) -> tuple[int, str, set[str]]:
    """Exit code, stdout and the top-level packages loaded by `kandji-bridge ARGS`."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120
    )
    return done.returncode, done.stdout, set(done.stderr.split())


def test_help_loads_no_engine_no_state_db_no_client(home: Path) -> None:
    code, out, loaded = loaded_by(["--help"])
    assert code == 0 and "source" in out and "logs" in out
    assert loaded & (ENGINE_AND_SERVICE | HELP_ALSO) == set()


@pytest.mark.parametrize("group", ["logs", "collection", "mapping", "detections", "user"])
def test_a_group_help_loads_no_engine_no_state_db(home: Path, group: str) -> None:
    code, out, loaded = loaded_by([group, "--help"])
    assert code == 0 and "Commands" in out
    assert loaded & (ENGINE_AND_SERVICE | HELP_ALSO) == set()


def test_source_list_and_verify_do_not_load_the_log_engine(
    home: Path, allow_simulator: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KANDJI_TOKEN", allow_simulator.token)
    add = ["source", "add", "--name", "acme", "--url", allow_simulator.base_url]
    code, _, loaded = loaded_by([*add, "--token-env", "KANDJI_TOKEN"])
    assert code == 0
    assert loaded & ENGINE_AND_SERVICE == set()

    code, out, loaded = loaded_by(["source", "list"])
    assert code == 0 and "acme" in out
    assert loaded & ENGINE_AND_SERVICE == set()

    code, out, loaded = loaded_by(["verify", "acme"])
    assert code == 0 and "List audit events" in out
    assert loaded & ENGINE_AND_SERVICE == set()
