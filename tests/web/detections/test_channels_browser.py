"""The Channels page in Chromium: an email channel added through its form and sent a test over a
real SMTP server (aiosmtpd, STARTTLS, signed in), and a channel removed after a confirmation."""

import re
from pathlib import Path

from detections.receivers import SmtpReceiver
from kandji_bridge.detections.channels import list_channels
from kandji_bridge.service.runtime import Runtime

PASSWORD = "smtp-pass-of-the-browser-test"


def test_add_an_email_channel_send_it_a_test_and_remove_it(
    runtime: Runtime, page, tmp_path: Path
) -> None:
    smtp = SmtpReceiver(tmp_path, username="alerts", password=PASSWORD).start()
    try:
        page.goto("/settings/channels")
        page.fill("#e-name", "soc-mail")
        page.fill("#e-host", "127.0.0.1")
        page.fill("#e-port", str(smtp.port))
        page.fill("#e-sender", "kandji-bridge@example.com")
        page.fill("#e-recipients", "soc@example.com, oncall@example.com")
        page.fill("#e-username", "alerts")
        page.fill("#e-password", PASSWORD)
        page.fill("#e-ca", str(smtp.cert))
        page.get_by_role("button", name="Add email channel").click()
        page.wait_for_url(re.compile(r".*/settings/channels\?added=soc-mail$"))
        row = page.locator("tr[data-channel='soc-mail']")
        assert "email" in row.inner_text() and "127.0.0.1" in row.inner_text()
        assert PASSWORD not in page.content()

        row.get_by_role("button", name="Send test").click()
        page.wait_for_url(re.compile(r".*/settings/channels\?tested=soc-mail$"))
        assert page.get_by_text("Sent a test alert to soc-mail.").is_visible()
        [mail] = smtp.mails
        assert mail.over_tls
        assert mail.recipients == ["soc@example.com", "oncall@example.com"]

        # A refused form says why and keeps what was typed, except the password.
        page.fill("#e-name", "no-port")
        page.fill("#e-host", "smtp.example.com")
        page.fill("#e-port", "five")
        page.fill("#e-sender", "kandji-bridge@example.com")
        page.fill("#e-recipients", "soc@example.com")
        page.fill("#e-password", PASSWORD)
        page.get_by_role("button", name="Add email channel").click()
        assert "is not a number" in page.get_by_role("alert").inner_text()
        assert page.input_value("#e-host") == "smtp.example.com"
        assert PASSWORD not in page.content()
    finally:
        smtp.stop()

    page.goto("/settings/channels")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.locator("tr[data-channel='soc-mail']").get_by_role("button", name="Remove").click()
    assert [c.name for c in list_channels(runtime.state)] == ["soc-mail"]
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr[data-channel='soc-mail']").get_by_role("button", name="Remove").click()
    page.wait_for_url(re.compile(r".*/settings/channels\?removed=soc-mail$"))
    assert page.get_by_text("Removed channel soc-mail.").is_visible()
    assert list_channels(runtime.state) == []


def test_the_forms_refuse_plain_http_off_this_machine_and_a_missing_ca_file(
    runtime: Runtime, page, tmp_path: Path
) -> None:
    page.goto("/settings/channels")
    page.fill("#f-name", "siem")
    page.fill("#f-url", "http://siem.example.com/hooks/kandji")
    page.get_by_role("button", name="Add channel").click()
    assert page.get_by_role("alert").inner_text() == (
        "Channel siem: the webhook URL must start with https:// (plain http:// only to "
        "localhost, 127.0.0.1 or ::1, for a receiver on this machine); got http://siem.example.com."
    )

    missing = tmp_path / "private-ca.pem"
    page.fill("#e-name", "soc-mail")
    page.fill("#e-host", "smtp.example.com")
    page.fill("#e-sender", "kandji-bridge@example.com")
    page.fill("#e-recipients", "soc@example.com")
    page.fill("#e-ca", str(missing))
    page.get_by_role("button", name="Add email channel").click()
    assert (
        page.get_by_role("alert")
        .inner_text()
        .startswith(
            f"Channel soc-mail: the CA file {missing} cannot be read (no such file or directory)"
        )
    )
    assert page.locator("#e-ca").input_value() == str(missing), "the form keeps what was typed"
    assert list_channels(runtime.state) == []
