"""Collections: the pages (pages.py), the REST API (api.py) and its bodies (schemas.py)."""
