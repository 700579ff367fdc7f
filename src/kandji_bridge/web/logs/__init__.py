"""Logs in the web app: the explorer, one event and the SQL page (`pages`), the same under
/api/logs (`api`, with its bodies in `schemas`), and how a query's result is sent (`results`)."""
