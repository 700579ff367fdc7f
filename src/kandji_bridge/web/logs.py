"""Placeholder router for the logs pages and API; being built now."""

from fastapi import APIRouter

pages = APIRouter(include_in_schema=False)
api = APIRouter(tags=["logs"])
