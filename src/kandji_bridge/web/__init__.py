"""The web side of `serve`: the REST API under /api/ and the htmx UI, both behind login."""
