"""Integrations: the pages and their forms (pages.py), the REST API (api.py), its bodies
(schemas.py)."""
