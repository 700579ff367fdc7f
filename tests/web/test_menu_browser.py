"""The top menu at phone width (390 px, in real Chromium): no horizontal scroll, and every
section, the account and sign-out reachable on screen."""

import re

PHONE = {"width": 390, "height": 844}
SECTIONS = ["Sources", "Logs", "SQL", "Integrations", "Collections", "About"]


def test_the_menu_fits_a_phone_and_reaches_every_section(page) -> None:
    page.set_viewport_size(PHONE)
    page.goto("/sources")
    for name in SECTIONS:
        link = page.locator(".topbar nav a", has_text=re.compile(f"^{name}$"))
        box = link.bounding_box()
        assert box is not None and link.is_visible(), f"{name} is not on screen"
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], f"{name} is cut off"
    for selector in (
        '.topbar a[href="/about"]',
        '.topbar a[href="/account"]',
        ".topbar .user button",
    ):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["x"] + box["width"] <= PHONE["width"], selector
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow} px at phone width"
    page.locator(".topbar nav a", has_text=re.compile("^Collections$")).click()
    page.wait_for_url(re.compile(r".*/collections$"))
