"""What users paste as their Kandji URL: every accepted form; every refusal says what to paste."""

import pytest

from kandji_bridge.kandji.errors import InvalidURLError
from kandji_bridge.kandji.urls import ApiUrl, normalize_api_url

NONE: frozenset[str] = frozenset()

ACCEPTED = [
    ("https://acme.api.kandji.io", "https://acme.api.kandji.io"),
    ("https://acme.api.kandji.io/", "https://acme.api.kandji.io"),
    ("https://acme.api.kandji.io/api/v1", "https://acme.api.kandji.io"),
    ("https://acme.api.kandji.io/api/v1/", "https://acme.api.kandji.io"),
    ("https://acme.api.kandji.io//", "https://acme.api.kandji.io"),
    ("  https://acme.api.kandji.io \n", "https://acme.api.kandji.io"),
    ("HTTPS://ACME.API.KANDJI.IO", "https://acme.api.kandji.io"),
    ("acme.api.kandji.io", "https://acme.api.kandji.io"),
    ("acme.api.kandji.io/api/v1/", "https://acme.api.kandji.io"),
    ("https://acme.api.kandji.io.", "https://acme.api.kandji.io"),
    ("https://acme-corp.api.eu.kandji.io", "https://acme-corp.api.eu.kandji.io"),
    ("https://acme.clients.us-1.kandji.io", "https://acme.clients.us-1.kandji.io"),
    ("https://acme.clients.us-1.kandji.io/api/v1", "https://acme.clients.us-1.kandji.io"),
]

DERIVED = [
    ("https://acme.kandji.io", "https://acme.api.kandji.io", "https://acme.kandji.io"),
    ("https://acme.kandji.io/", "https://acme.api.kandji.io", "https://acme.kandji.io"),
    ("acme.kandji.io", "https://acme.api.kandji.io", "https://acme.kandji.io"),
    ("https://Acme.Kandji.io/api/v1", "https://acme.api.kandji.io", "https://acme.kandji.io"),
    ("https://acme.eu.kandji.io", "https://acme.api.eu.kandji.io", "https://acme.eu.kandji.io"),
    ("acme.eu.kandji.io/", "https://acme.api.eu.kandji.io", "https://acme.eu.kandji.io"),
]

ALLOWED = [
    ("http://127.0.0.1:8089", {"127.0.0.1:8089"}, "http://127.0.0.1:8089"),
    ("http://127.0.0.1:8089/api/v1/", {"127.0.0.1:8089"}, "http://127.0.0.1:8089"),
    ("127.0.0.1:8089", {"127.0.0.1:8089"}, "https://127.0.0.1:8089"),
    ("http://127.0.0.1:9999", {"127.0.0.1"}, "http://127.0.0.1:9999"),
    ("http://localhost:8089", {"localhost:8089"}, "http://localhost:8089"),
    ("http://LocalHost:8089", {"LOCALHOST:8089"}, "http://localhost:8089"),
    ("http://[::1]:8089", {"[::1]:8089"}, "http://[::1]:8089"),
    ("http://[::1]:8089", {"::1"}, "http://[::1]:8089"),
    (
        "https://kandji.proxy.example.com",
        {"kandji.proxy.example.com"},
        "https://kandji.proxy.example.com",
    ),
    ("http://169.254.169.254", {"169.254.169.254"}, "http://169.254.169.254"),
]

# (input, allowed hosts, text the message must contain)
REFUSED = [
    ("", NONE, "No Kandji API URL"),
    ("   ", NONE, "No Kandji API URL"),
    ("https://acme api.kandji.io", NONE, "spaces"),
    ("https://acme.api.kandji.io\x00", NONE, "control characters"),
    ("https://", NONE, "no host name"),
    ("https:///api/v1", NONE, "no host name"),
    ("https://acme.api.kandji.io:notaport", NONE, "not a valid URL"),
    ("https://acme.api.kandji.io:99999", NONE, "not a valid URL"),
    ("https://acme..kandji.io", NONE, "not a valid host name"),
    ("https://-acme.api.kandji.io", NONE, "not a valid host name"),
    ("https://acme_corp.api.kandji.io", NONE, "not a valid host name"),
    ("https://a cme.kandji.io", NONE, "spaces"),
    ("ftp://acme.api.kandji.io", NONE, "scheme ftp://"),
    ("file:///etc/passwd", NONE, "scheme file://"),
    ("javascript://alert(1)", NONE, "scheme javascript://"),
    ("https://user:secret@acme.api.kandji.io", NONE, "user name or password"),
    ("https://user@acme.api.kandji.io", NONE, "user name or password"),
    ("https://acme.api.kandji.io?x=1", NONE, "query"),
    ("https://acme.api.kandji.io/api/v1?limit=1", NONE, "query"),
    ("https://acme.api.kandji.io/#frag", NONE, "fragment"),
    ("https://acme.api.kandji.io/?", NONE, "query"),
    ("https://acme.api.kandji.io/api/v1/devices", NONE, "path"),
    ("https://acme.api.kandji.io/api/v2", NONE, "path"),
    ("https://acme.kandji.io/devices", NONE, "use https://acme.api.kandji.io"),
    ("https://example.com", NONE, "example.com is not a Kandji host"),
    ("https://kandji.io.evil.com", NONE, "kandji.io.evil.com is not a Kandji host"),
    ("https://evilkandji.io", NONE, "evilkandji.io is not a Kandji host"),
    ("https://kandji.io", NONE, "own site"),
    ("https://www.kandji.io", NONE, "own site"),
    ("https://api.kandji.io", NONE, "own site"),
    ("https://api.eu.kandji.io", NONE, "own site"),
    ("https://support.kandji.io", NONE, "own site"),
    ("https://localhost", NONE, "no domain name"),
    ("http://localhost:8089", NONE, "no domain name"),
    ("http://acme.api.kandji.io", NONE, "use https://acme.api.kandji.io"),
    ("http://acme.kandji.io", NONE, "use https://acme.api.kandji.io"),
    ("http://127.0.0.1:8089", NONE, "internal address 127.0.0.1"),
    ("https://127.0.0.1", NONE, "internal address 127.0.0.1"),
    ("https://[::1]", NONE, "internal address ::1"),
    ("https://169.254.169.254/latest/meta-data", NONE, "internal address 169.254.169.254"),
    ("https://10.1.2.3", NONE, "internal address 10.1.2.3"),
    ("https://172.16.0.1", NONE, "internal address 172.16.0.1"),
    ("https://192.168.1.1", NONE, "internal address 192.168.1.1"),
    ("https://0.0.0.0", NONE, "internal address 0.0.0.0"),
    ("https://[fe80::1]", NONE, "internal address fe80::1"),
    ("https://[fd00::1]", NONE, "internal address fd00::1"),
    ("https://[::ffff:127.0.0.1]", NONE, "internal address ::ffff:7f00:1"),
    ("https://8.8.8.8", NONE, "IP address 8.8.8.8"),
    # Other spellings of internal addresses, and URL tricks that put one behind a Kandji name.
    ("https://[::ffff:169.254.169.254]", NONE, "internal address ::ffff:a9fe:a9fe"),
    ("https://[0:0:0:0:0:ffff:a00:1]", NONE, "internal address ::ffff:a00:1"),
    ("https://[::]", NONE, "internal address ::"),
    ("https://100.64.0.1", NONE, "internal address 100.64.0.1"),
    ("HTTPS://10.0.0.1", NONE, "internal address 10.0.0.1"),
    ("https://2130706433", NONE, "no domain name"),
    ("https://0x7f000001", NONE, "no domain name"),
    ("https://127.1", NONE, "127.1 is not a Kandji host"),
    ("https://0177.0.0.1", NONE, "0177.0.0.1 is not a Kandji host"),
    ("https://169.254.169.254.nip.io", NONE, "not a Kandji host"),
    ("https://acme.api.kandji.io@127.0.0.1", NONE, "user name or password"),
    ("https://127.0.0.1#.api.kandji.io", NONE, "internal address 127.0.0.1"),
    ("https://127.0.0.1\\.api.kandji.io", NONE, "not a valid host name"),
    ("https://%31%32%37.0.0.1", NONE, "not a valid host name"),
    ("https://127.0.0.1%2F.api.kandji.io", NONE, "not a valid host name"),
    # Allowed hosts are matched on host[:port], not on a prefix or another port.
    ("http://127.0.0.1:8090", frozenset({"127.0.0.1:8089"}), "internal address 127.0.0.1"),
    ("https://proxy.example.com.evil.io", frozenset({"proxy.example.com"}), "not a Kandji host"),
]


@pytest.mark.parametrize(("url", "base_url"), ACCEPTED)
def test_api_urls_are_accepted_as_they_are(url: str, base_url: str) -> None:
    assert normalize_api_url(url, NONE) == ApiUrl(base_url, None)


@pytest.mark.parametrize(("url", "base_url", "web_app"), DERIVED)
def test_web_app_urls_give_the_api_url_and_say_so(url: str, base_url: str, web_app: str) -> None:
    api_url = normalize_api_url(url, NONE)
    assert api_url.base_url == base_url
    assert api_url.note == f"Using the API URL {base_url} for the web-app URL {web_app}."


@pytest.mark.parametrize(("url", "allowed", "base_url"), ALLOWED)
def test_allowed_hosts_may_be_anything_and_use_http(
    url: str, allowed: set[str], base_url: str
) -> None:
    assert normalize_api_url(url, frozenset(allowed)) == ApiUrl(base_url, None)


@pytest.mark.parametrize(("url", "allowed", "expected"), REFUSED)
def test_refusals_say_what_is_wrong_and_what_to_paste(
    url: str, allowed: frozenset[str], expected: str
) -> None:
    with pytest.raises(InvalidURLError) as caught:
        normalize_api_url(url, allowed)
    message = str(caught.value)
    assert expected in message
    # Actionable: it says what to paste or use instead, in one sentence.
    assert (
        "paste your API URL from Kandji Settings → Access" in message or "use https://" in message
    )
    assert message.endswith(".")
    assert ". " not in message


def test_refusals_never_repeat_secrets_from_the_input() -> None:
    # A token pasted into the URL field, or a password in the URL, is not echoed back.
    token = "0b1c2d3e-1234-5678-9abc-def012345678"
    for url in (token, f"https://{token}", "https://me:s3cr3t-pw@acme.api.kandji.io"):
        with pytest.raises(InvalidURLError) as caught:
            normalize_api_url(url, NONE)
        assert token not in str(caught.value)
        assert "s3cr3t-pw" not in str(caught.value)


def test_the_api_url_names_its_host() -> None:
    assert normalize_api_url("acme.api.kandji.io", NONE).host == "acme.api.kandji.io"
    allowed = frozenset({"127.0.0.1:8089"})
    assert normalize_api_url("http://127.0.0.1:8089", allowed).host == "127.0.0.1:8089"
