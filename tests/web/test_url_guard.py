"""Every place the web app takes a Kandji URL refuses internal addresses before connecting:
the REST API (source create and verify, the Integrations connection) and the forms behind them.
A listener on 127.0.0.1 that is not in KANDJI_BRIDGE_ALLOWED_HOSTS must never be reached."""

import socket
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from kandji_bridge import source_registry as sources
from kandji_bridge.service.runtime import Runtime

TOKEN = "4c1d9e2a-7b3f-4a5e-9c8d-0e1f2a3b4c5d"
OTHER_INTERNAL = [
    "http://169.254.169.254",
    "https://169.254.169.254/latest/meta-data",
    "https://10.0.0.1",
    "https://192.168.1.10",
    "https://[::1]",
    "https://[::ffff:169.254.169.254]",
]


@pytest.fixture
def listener() -> Iterator[tuple[str, list[object]]]:
    """A TCP port on 127.0.0.1 that records every connection made to it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.1)
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            accepted.append(connection)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}", accepted
    stop.set()
    thread.join(timeout=5)
    server.close()


def attempts(url: str, csrf: str) -> list[tuple[str, str, dict, dict]]:
    """(method, path, json body, form fields) for each entry point, with this URL."""
    source = {"name": "internal", "api_url": url, "token": TOKEN}
    connection = {"base_url": url, "api_key": TOKEN}
    return [
        ("POST", "/api/sources", source, {}),
        ("POST", "/api/sources/verify", {"url": url, "token": TOKEN}, {}),
        ("PUT", "/api/integrations/kandji", connection, {}),
        ("POST", "/sources/verify", {}, {**source, "csrf_token": csrf}),
        ("POST", "/sources", {}, {**source, "csrf_token": csrf}),
        ("POST", "/integrations/kandji", {}, {**connection, "csrf_token": csrf}),
    ]  # fmt: skip


def test_internal_addresses_are_refused_everywhere_without_a_connection(
    runtime: Runtime, client: TestClient, listener: tuple[str, list[object]]
) -> None:
    host_port, accepted = listener
    headers = {"X-CSRF-Token": client.csrf}
    for url in (f"http://{host_port}", f"https://{host_port}", *OTHER_INTERNAL):
        for method, path, body, form in attempts(url, client.csrf):
            if form:
                response = client.request(method, path, data=form)
            else:
                response = client.request(method, path, json=body, headers=headers)
            assert response.status_code in (200, 400), (method, path, url, response.text)
            assert "internal address" in response.text, (method, path, url)
            assert "KANDJI_BRIDGE_ALLOWED_HOSTS" in response.text, (method, path, url)
            assert TOKEN not in response.text
    assert accepted == [], "a refused URL was connected to"
    assert sources.list_sources(runtime.state) == []
    assert client.get("/api/integrations/kandji").json()["connected"] is False


def test_a_listed_host_is_connected_to(
    home, listener: tuple[str, list[object]], monkeypatch: pytest.MonkeyPatch, request
) -> None:
    # The control: the same listener, once listed, is reached (and, as it answers nothing
    # Kandji-like, the check fails with what happened, not with "internal address").
    host_port, accepted = listener
    monkeypatch.setenv("KANDJI_BRIDGE_ALLOWED_HOSTS", host_port)
    client = request.getfixturevalue("api")
    response = client.post(
        "/api/sources/verify", json={"url": f"http://{host_port}", "token": TOKEN}
    )
    assert response.status_code == 200
    assert "internal address" not in response.text
    assert accepted
