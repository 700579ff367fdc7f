"""Reference files the tests read, kept in tests/data/ (its README says where each comes from)."""

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
KANDJI_POSTMAN = DATA / "kandji-api" / "postman_collection.json"
KANDJI_OPENAPI = DATA / "kandji-api" / "openapi.yaml"
MAXMIND = DATA / "maxmind"
# RunReveal's page for its Kandji source: the kandji_logs table, 46 columns with their types.
RUNREVEAL_KANDJI_SOURCE = DATA / "vendor-docs" / "runreveal-kandji-source.txt"
# Asset Panda's page for its Kandji integration: the Kandji fields and their recommendations.
ASSETPANDA_KANDJI_INTEGRATION = DATA / "vendor-docs" / "assetpanda-kandji-integration.txt"
