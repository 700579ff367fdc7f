"""Why a write failed, said of the disk: full, read-only, or unreadable, and what to do."""

import os
import shutil

DISK_MARKERS = ("NOT_ENOUGH_SPACE", "No space left on device", "Read-only file system")
FULL_BELOW = 64 * 1024 * 1024  # chDB reserves a few MB per insert and more per merge
RUN_AGAIN = (
    "nothing already stored is lost, and the next run collects these events again "
    "(no checkpoint moved past them)."
)


def disk_state(folder: str, written: str) -> str:
    """The end of a write-failure sentence: what is wrong with the disk under `written` (the
    table's own folder, which may be a mount of its own), said of the store `folder`."""
    try:
        free = shutil.disk_usage(written).free
        read_only = bool(os.statvfs(written).f_flag & os.ST_RDONLY) or not os.access(
            written, os.W_OK
        )
    except OSError as exc:
        return (
            f"its folder {folder} cannot be read ({exc.strerror}); check the disk it is on, "
            f"then run the command again; {RUN_AGAIN}"
        )
    if read_only:
        return (
            f"the folder {folder} is read-only ({_size(free)} free on its disk); make it "
            "writable (or point KANDJI_BRIDGE_LOG_STORE at a writable folder), then run the "
            f"command again; {RUN_AGAIN}"
        )
    if free < FULL_BELOW:
        return (
            f"the disk holding {folder} is full ({_size(free)} free); free some space there (or "
            "point KANDJI_BRIDGE_LOG_STORE at a bigger disk), then run the command again; "
            f"{RUN_AGAIN}"
        )
    return (
        f"the engine accepted them but they are not there ({_size(free)} free on the disk "
        f"holding {folder}); check that disk and the folder's permissions, then run the command "
        f"again; {RUN_AGAIN}"
    )


def _size(free: int) -> str:
    if free >= 1024**3:
        return f"{free / 1024**3:.1f} GB"
    if free >= 1024**2:
        return f"{free / 1024**2:.1f} MB"
    return f"{free / 1024:.0f} KB"
