"""Detections as code: RunReveal's `NAME.yaml` + `NAME.sql` rules over `kandji_logs`.

`rules` loads and validates a folder of rules, `run` runs one over a window of `receivedAt`, and
`packs/kandji/` is the pack that ships with kandji-bridge. Scheduling, storing matches and
sending alerts are built on top of these by their callers.
"""

from pathlib import Path

KANDJI_PACK = Path(__file__).resolve().parent / "packs" / "kandji"
