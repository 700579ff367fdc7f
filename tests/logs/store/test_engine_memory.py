"""serve does not keep the pages of chDB's library that only the engine's start read: they were
most of an idle serve's resident memory."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.test_serve import serve_process


def private_library_kb(pid: int) -> int:
    """Resident pages of chDB's library that only this process maps, in kB. Pages another
    process maps too (this test run's own, once it has used chDB) are shared, and the kernel
    keeps those: they are not counted."""
    total, in_library = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):
            in_library = len(fields) >= 6 and os.path.basename(fields[5]).startswith("_chdb")
        elif in_library and fields[0] == "Private_Clean:":
            total += int(fields[1])
    return total


@pytest.mark.skipif(sys.platform != "linux", reason="Linux only (MADV_PAGEOUT, /proc)")
def test_an_idle_serve_hands_back_the_engine_start_pages(home: Path, tmp_path: Path) -> None:
    env = {**os.environ, "KANDJI_BRIDGE_HOME": str(home)}
    with serve_process(env, tmp_path / "serve.log") as (process, _):
        kept_kb = private_library_kb(process.pid)
    assert kept_kb < 20 * 1024, f"{kept_kb} kB of chDB's library still resident"


# In a fresh interpreter: open a store (chDB loads pyarrow and numpy with it), hand back.
HAND_BACK = """
import sys
from kandji_bridge.logs.store import ChdbLogStore, release_engine_pages
store = ChdbLogStore(sys.argv[1])
store.ensure_schema()
print("\\n".join(release_engine_pages()))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="Linux only (MADV_PAGEOUT, /proc)")
def test_the_hand_back_covers_the_libraries_chdb_loads_with_it(tmp_path: Path) -> None:
    """pyarrow's and numpy's libraries come with chDB's Python layer; serve never runs their
    code, so their pages go back with the engine's."""
    done = subprocess.run(
        [sys.executable, "-c", HAND_BACK, str(tmp_path / "logs")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    advised = [Path(line) for line in done.stdout.splitlines()]
    site = Path(importlib.util.find_spec("chdb").origin).parents[1]
    for package in ("chdb", "pyarrow", "numpy"):
        assert any(path.is_relative_to(site / package) for path in advised), (package, advised)
