"""The API docs name every operation for a reader: a tag, a short summary written for it (not
FastAPI's title-cased function name) and a camelCase operationId without the path in it."""

import re

from fastapi.testclient import TestClient

METHODS = {"get", "post", "put", "patch", "delete"}


def test_every_operation_has_a_tag_a_readable_summary_and_a_short_id(api: TestClient) -> None:
    spec = api.get("/api/openapi.json")
    assert spec.status_code == 200
    ids = []
    for path, item in spec.json()["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            where = f"{method.upper()} {path}"
            assert operation.get("tags"), f"{where} has no tag"
            summary = operation.get("summary", "")
            assert summary and summary[0].isupper() and not summary.endswith("."), where
            assert not summary.startswith("Api ") and not summary.endswith(" Api"), (
                f"{where}: {summary!r} is a function name, not a summary"
            )
            assert re.fullmatch(r"[a-z][A-Za-z0-9]*", operation["operationId"]), where
            ids.append(operation["operationId"])
    assert len(ids) == len(set(ids)) and len(ids) > 20
    assert "listSources" in ids and "runASqlQuery" in ids


def test_the_api_docs_stay_behind_login(anonymous: TestClient) -> None:
    assert anonymous.get("/api/openapi.json").status_code == 401
