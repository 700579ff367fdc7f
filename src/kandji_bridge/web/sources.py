"""Placeholder router for the sources pages and API; being built now."""

from fastapi import APIRouter

pages = APIRouter(include_in_schema=False)
api = APIRouter(tags=["sources"])
