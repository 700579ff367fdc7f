"""The first admin account, as a new user meets it in a real `serve` and a real Chromium: the
sign-in page says where the setup link is (the terminal and a 0600 file in the home), never a
command to run; a used or expired link says the same, and a new link replaces an expired one."""

import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state
from kandji_bridge.db.models import SetupLink, utcnow
from kandji_bridge.users import SETUP_LINK_FILE

from ..conftest import PASSWORD

SETUP_LINE = re.compile(r"No account yet: open (http://\S+/setup/\S+) to create")


@contextmanager
def serve(home: Path, log: Path) -> Iterator[tuple[str, str]]:
    """A real `serve` on a home without accounts: its URL and the setup link it printed."""
    env = {**os.environ, "KANDJI_BRIDGE_HOME": str(home)}
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "kandji_bridge", "serve", "--port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        url = link = ""
        for line in process.stdout:
            if line.startswith("Serving on "):
                url = line.split()[-1]
            if found := SETUP_LINE.search(line):
                link = found[1]
                break
        assert url and link, log.read_text()
        yield url, link
    finally:
        process.terminate()
        process.wait(timeout=60)


def no_command_in(text: str) -> None:
    assert "kandji-bridge " not in text and "user create" not in text, text


def test_the_sign_in_page_says_where_the_setup_link_is_and_an_expired_link_renews_it(
    home: Path, tmp_path: Path, browser, screenshot
) -> None:
    link_file = home / SETUP_LINK_FILE
    with serve(home, tmp_path / "serve.log") as (url, printed):
        assert link_file.read_text() == printed + "\n"
        assert stat.S_IMODE(link_file.stat().st_mode) == 0o600

        context = browser.new_context(base_url=url, viewport={"width": 1360, "height": 900})
        context.set_default_timeout(15_000)
        tab = context.new_page()
        tab.goto("/login")
        said = tab.get_by_test_id("no-account").inner_text()
        screenshot(tab, "no-account")
        assert "setup link the service printed when it started" in said
        assert str(link_file) in said
        no_command_in(tab.locator("main").inner_text())

        # A link that does not work (mistyped, or expired) says where the working one is and
        # leaves that one alone.
        tab.goto("/setup/not-a-link")
        said = tab.locator("main").inner_text()
        assert "No account exists yet" in said and str(link_file) in said
        no_command_in(said)
        assert link_file.read_text() == printed + "\n"

        with open_state(load_settings(home)) as state, state.session() as session:
            session.execute(update(SetupLink).values(expires_at=utcnow() - timedelta(minutes=1)))
        tab.goto(printed.removeprefix(url))
        said = tab.locator("main").inner_text()
        screenshot(tab, "expired-link")
        assert "has expired" in said and "a new one is there now" in said, said
        no_command_in(said)
        renewed = link_file.read_text().strip()
        assert renewed != printed and renewed.startswith(f"{url}/setup/")

        tab.goto(renewed.removeprefix(url))
        tab.fill("#f-username", "root")
        tab.fill("#f-password", PASSWORD)
        tab.fill("#f-confirm", PASSWORD)
        tab.click("button[type=submit]")
        tab.wait_for_url(re.compile(r".*/sources.*"))
        assert not link_file.exists(), "a used setup link stayed in the home"

        tab.goto(renewed.removeprefix(url))
        said = tab.locator("main").inner_text()
        assert "sign in with your account" in said
        no_command_in(said)
        context.close()
