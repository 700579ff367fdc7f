"""Detections as code: RunReveal's `NAME.yaml` + `NAME.sql` rules over `kandji_logs`.

`rules` loads and validates a folder of rules (`sigma` converts Sigma rules into the same),
`run` runs one over a window of `receivedAt`, `windows` says which windows are due, `results`
stores what a run matched in the `detections` table as alerts and signals, `channels` and
`outbox` deliver alerts, and `packs/kandji/` is the pack that ships with kandji-bridge.
"""

from pathlib import Path

KANDJI_PACK = Path(__file__).resolve().parent / "packs" / "kandji"
