"""The sign-in page in a real headless Chromium."""

import re

from ..conftest import ADMIN


def test_sign_in_and_out_in_a_browser(page, screenshot) -> None:
    page.goto("/account")
    screenshot(page, "signed-in")
    assert page.locator("header .user a").inner_text() == ADMIN
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r".*/login.*"))
    assert page.locator("h1").inner_text() == "Sign in to kandji-bridge"
    page.goto("/account")
    page.wait_for_url(re.compile(r".*/login\?next=%2Faccount"))
    page.fill("#f-username", ADMIN)
    page.fill("#f-password", "wrong password here")
    page.click("button[type=submit]")
    assert "Wrong username or password" in page.locator(".alert.error").inner_text()
    assert page.input_value("#f-username") == ADMIN
    screenshot(page, "wrong-password")
