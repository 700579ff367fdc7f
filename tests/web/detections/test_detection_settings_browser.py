"""The detection settings a user reads in Chromium: how old a match's event may be and still be
sent, on the Detections page and beside the notification channels."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from kandji_bridge.service.runtime import Runtime


@pytest.fixture(autouse=True)
def signal_age(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Set after `home` clears the environment and before the runtime loads its settings.
    monkeypatch.setenv("KANDJI_BRIDGE_SIGNAL_AGE_HOURS", "6")
    monkeypatch.setenv("KANDJI_BRIDGE_DETECTION_SECONDS", "30")
    yield


def test_the_signal_age_is_shown_where_rules_and_channels_are_set(runtime: Runtime, page) -> None:
    expected = (
        "Matches on events older than 6 h are stored as signals and not sent (the service's "
        "setting KANDJI_BRIDGE_SIGNAL_AGE_HOURS); a rule may run 30 s "
        "(KANDJI_BRIDGE_DETECTION_SECONDS)."
    )
    for path in ("/detections", "/settings/channels"):
        page.goto(path)
        assert page.get_by_test_id("signal-age").inner_text() == expected
