"""The web UI never tells a user to run a CLI command to go on: a refusal or a hint says what to
do in the UI. (The API-token refusals in web/auth/sessions.py are answers to scripts, in JSON.)"""

import re
from pathlib import Path

from fastapi.testclient import TestClient

from kandji_bridge import source_registry as sources
from kandji_bridge.service.runtime import Runtime

WEB = Path(__file__).parents[2] / "src" / "kandji_bridge" / "web"
FOR_SCRIPTS = {WEB / "auth" / "sessions.py"}
COMMAND = re.compile(
    r"kandji-bridge (serve|user|logs|source|mapping|collection|inventory|detections|alerts|"
    r"channel|demo|verify)\b"
)


def test_no_page_or_message_of_the_web_ui_names_a_command() -> None:
    found = []
    for path in sorted(WEB.rglob("*")):
        if path.suffix not in (".html", ".py") or path in FOR_SCRIPTS:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if COMMAND.search(line):
                found.append(f"{path.relative_to(WEB)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


def test_without_background_jobs_the_sources_pages_say_to_use_poll_now(
    runtime: Runtime, client: TestClient
) -> None:
    sources.add_source(runtime.state, "acme", "https://acme.api.kandji.io", "a-token")
    for path in ("/sources", "/sources/acme"):
        page = client.get(path).text
        banner = re.search(r"Background jobs are not running[^<]*", page)
        assert banner and "Poll now" in banner[0], path
        assert "kandji-bridge " not in banner[0]


def test_refusals_in_pages_and_api_answers_name_no_command(
    runtime: Runtime, client: TestClient, api: TestClient
) -> None:
    """What the UI and the API say for a name that is not there or is taken says where to look
    in the UI, not which command to run."""
    taken = {"name": "Laptops", "fields": [{"label": "Serial", "type": "text", "unique": True}]}
    assert api.post("/api/collections", json=taken).status_code == 201
    answers = {
        "/collections/Nope": client.get("/collections/Nope"),
        "/api/collections/Nope": api.get("/api/collections/Nope"),
        "/integrations/mappings/Nope": client.get("/integrations/mappings/Nope"),
        "/api/mappings/Nope": api.get("/api/mappings/Nope"),
        "/detections/nope": client.get("/detections/nope"),
        "POST /api/detections/nope/enable": api.post("/api/detections/nope/enable"),
        "POST /api/collections (taken)": api.post("/api/collections", json=taken),
    }
    for what, answer in answers.items():
        assert answer.status_code in (404, 409), (what, answer.status_code)
        assert "No " in answer.text or "no " in answer.text or "already" in answer.text, what
        assert "kandji-bridge " not in answer.text and "`" not in answer.text, (what, answer.text)
