"""Time as the simulator keeps it (integer µs since the epoch, UTC) and as Kandji prints it."""

from datetime import UTC, datetime, timedelta
from functools import lru_cache

_EPOCH = datetime(1970, 1, 1)  # naive: formatting it is cheaper, and every time here is UTC


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken as UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return (_EPOCH + timedelta(microseconds=us)).replace(tzinfo=UTC)


def iso_z(us: int) -> str:
    """'2025-03-04T16:29:55.253454Z', as in occurred_at and last_check_in (always six digits).
    Arithmetic plus a cached date: three times faster than datetime, and every page needs 500."""
    seconds, micros = divmod(us, 1_000_000)
    day, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3_600)
    minutes, seconds = divmod(seconds, 60)
    return f"{_date(day)}T{hours:02d}:{minutes:02d}:{seconds:02d}.{micros:06d}Z"


@lru_cache(maxsize=4096)
def _date(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")


def iso_space(us: int) -> str:
    """'2024-01-26 16:15:36.087016+00:00', as in first_enrollment and the details' dates."""
    moment = _EPOCH + timedelta(microseconds=us)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond:06d}+00:00"


def iso_seconds(us: int) -> str:
    """'2024-06-17 11:32:35+00:00', as in the agent's install_date."""
    return f"{_EPOCH + timedelta(microseconds=us):%Y-%m-%d %H:%M:%S}+00:00"
