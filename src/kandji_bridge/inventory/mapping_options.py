"""A mapping's choices that front ends offer before anything is loaded (the CLI's help shows
them without opening the state DB); `inventory.mappings` checks and keeps them."""

from enum import StrEnum

DEFAULT_SCHEDULE_MINUTES = 60


class OnRemoved(StrEnum):
    """What happens to a record whose device vanished from Kandji or is marked removed there."""

    KEEP = "keep"  # nothing
    MARK = "mark"  # the record's status becomes "removed"
    ARCHIVE = "archive"  # the record's status becomes "archived" (left out of exports)
