"""A general asset store: collections of typed fields, their records, browsing and export.

It knows nothing of where records come from: the Kandji import (inventory/) writes into it.
"""
