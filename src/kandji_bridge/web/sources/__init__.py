"""Sources: the pages (`pages.py`), the REST API (`api.py`) and what both show (`schemas.py`)."""
