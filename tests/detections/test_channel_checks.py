"""What a channel must be when it is added, and what a Slack message carries: https URLs (plain
http only to this machine), an email channel's CA bundle read at save time, and the idempotency
key in the Slack message, checked at a real local receiver."""

from pathlib import Path

import pytest

from kandji_bridge.db import StateDB
from kandji_bridge.detections import channels
from kandji_bridge.detections.channels import ChannelError, EmailServer
from kandji_bridge.detections.outbox import deliver_due, enqueue

from .receivers import HttpReceiver, self_signed_certificate
from .test_outbox import NOW, make_alert

KEY = "5c0f00000000000000000000000000e1"  # the alert's id: the same for every repeat


@pytest.mark.parametrize(
    "url",
    [
        "http://siem.example.com/hooks/kandji",
        "http://10.0.0.5:8080/hooks",
        "http://127.0.0.1.example.com/hooks",
    ],
)
def test_a_plain_http_url_off_this_machine_is_refused(state: StateDB, url: str) -> None:
    host = url.split("/")[2].split(":")[0]
    for add, what in ((channels.add_webhook, "webhook"), (channels.add_slack, "Slack webhook")):
        with pytest.raises(ChannelError) as refused:
            add(state, "siem", url)
        assert str(refused.value) == (
            f"Channel siem: the {what} URL must start with https:// (plain http:// only to "
            f"localhost, 127.0.0.1 or ::1, for a receiver on this machine); got http://{host}."
        )
    assert channels.list_channels(state) == []


def test_https_and_plain_http_to_this_machine_are_accepted(state: StateDB) -> None:
    for index, url in enumerate(
        (
            "https://siem.example.com/hooks/kandji",
            "http://127.0.0.1:9000/hooks",
            "http://localhost:9000/hooks",
            "http://[::1]:9000/hooks",
        )
    ):
        channels.add_webhook(state, f"hook-{index}", url)
    channels.add_slack(state, "slack", "http://127.0.0.1:9001/services/T0/B0/X")
    assert len(channels.list_channels(state)) == 5


def test_a_slack_message_carries_the_idempotency_key(state: StateDB) -> None:
    slack = HttpReceiver().start()
    try:
        channels.add_slack(state, "secops-slack", slack.url)
        enqueue(state, make_alert(KEY), ["secops-slack"], NOW)
        assert deliver_due(state, NOW).sent == 1
    finally:
        slack.stop()
    blocks = slack.requests[0].json()["blocks"]
    assert blocks[-1] == {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": "idempotency key 5c0f00000000000000000000000000e1"}
        ],
    }


def email(ca_file: str) -> EmailServer:
    return EmailServer("127.0.0.1", 587, "kb@example.com", ["soc@example.com"], ca_file=ca_file)


def test_an_email_ca_file_is_read_when_the_channel_is_added(state: StateDB, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ChannelError) as refused:
        channels.add_email(state, "soc-mail", email(str(missing)))
    assert str(refused.value) == (
        f"Channel soc-mail: the CA file {missing} cannot be read (no such file or directory); "
        "give the path of a PEM bundle readable on this server, or none to trust the system's "
        "CAs."
    )
    with pytest.raises(ChannelError, match=r"cannot be read \(is a directory\)"):
        channels.add_email(state, "soc-mail", email(str(tmp_path)))
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate\n")
    with pytest.raises(ChannelError) as refused:
        channels.add_email(state, "soc-mail", email(str(not_pem)))
    assert str(refused.value) == (
        f"Channel soc-mail: the CA file {not_pem} holds no PEM certificate; give the path of a "
        "PEM bundle (-----BEGIN CERTIFICATE-----), or none to trust the system's CAs."
    )
    assert channels.list_channels(state) == []

    certificate, _ = self_signed_certificate(tmp_path)
    added = channels.add_email(state, "soc-mail", email(str(certificate)))
    assert added.settings["ca_file"] == str(certificate)
